"""Parameter recovery: can DiffRenderGAN find known material values?

"Real" patches are rendered with known BSDF values and noise (``TRUTH``), then a GAN starting
from the middle of every range is trained on them. Prints, per parameter, the truth, the
start (mid-range), the learned mean ± std after each epoch, and the fraction of the distance
to the truth that was covered.

Run: ``.venv/bin/python benchmarks/parameter_recovery.py [--size 64] [--epochs 4]
[--iterations 100] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from napari_diffrendergan.config import preset
from napari_diffrendergan.gan.recovery import TRUTH, recover, render_truth_patches
from napari_diffrendergan.gan.run import fit_scene_to_patches
from napari_diffrendergan.render.sampling import mid_range_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--patches", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--out", help="keep the run here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        started = time.perf_counter()
        truth = render_truth_patches(out / "patches", args.size, args.patches)
        metrics = recover(out / "patches", out / "run", args.epochs, args.iterations)
        config = fit_scene_to_patches(preset("tio2-sem"), args.size)
        start, _ = mid_range_values(config)
        start["noise"] = sum(config.learning.noise_limits) / 2
        print(
            f"{args.patches} truth patches {args.size}², {args.epochs} epochs × "
            f"{args.iterations} iterations, {time.perf_counter() - started:.0f} s"
        )
        rows = {}
        for name in TRUTH:
            learned = [e["parameters"][name] for e in metrics["epochs"]]
            covered = (start[name] - learned[-1]["mean"]) / (start[name] - truth[name])
            rows[name] = {
                "truth": truth[name],
                "start": start[name],
                "means": [p["mean"] for p in learned],
                "covered": covered,
            }
            trail = " → ".join(f"{p['mean']:.3g}±{p['std']:.2g}" for p in learned)
            print(
                f"  {name:20s} truth {truth[name]:.3g}, start {start[name]:.3g}: {trail} "
                f"({covered:.0%} of the way)"
            )
        print("  FID per epoch: " + ", ".join(f"{e['fid']:.0f}" for e in metrics["epochs"]))
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
