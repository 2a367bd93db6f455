"""Parameter recovery: can DiffRenderGAN find known material values?

"Real" patches are rendered with known BSDF values and noise (``TRUTH``), then a GAN starting
from the middle of every range is trained on them. Prints, per parameter, the truth, the
start (mid-range), the learned mean ± std after each epoch, and the fraction of the distance
to the truth that was covered.

Run: ``.venv/bin/python benchmarks/parameter_recovery.py [--size 64] [--epochs 4]
[--iterations 100] [--dropout 0.2] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_diffrendergan.config import preset
from napari_diffrendergan.gan.networks import ParameterSpace
from napari_diffrendergan.gan.recovery import TRUTH, recover, render_truth_patches
from napari_diffrendergan.gan.run import fit_scene_to_patches


def figure(path: Path, rows: dict, space: ParameterSpace) -> None:
    """Learned mean per epoch of every parameter, its truth and its start, on its limits."""
    from matplotlib.figure import Figure

    from napari_diffrendergan.io import write_figure

    fig = Figure(figsize=(3 * len(rows), 2.6))
    for ax, (name, row) in zip(fig.subplots(1, len(rows)), rows.items(), strict=True):
        i = space.names.index(name)
        ax.plot(range(len(row["means"])), row["means"], "o-", ms=3, label="learned mean")
        ax.axhline(row["truth"], color="tab:green", ls="--", label="truth")
        ax.axhline(row["start"], color="grey", ls=":", label="start (mid-range)")
        ax.set_ylim(space.low[i], space.high[i])
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.axes[0].legend(fontsize=6)
    fig.tight_layout()
    write_figure(path, fig, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--patches", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=64)
    parser.add_argument("--out", help="keep the run here (default: a temporary folder)")
    parser.add_argument("--figure", type=Path, help="write the learned means per epoch here")
    parser.add_argument("--dropout", type=float, default=0.2, help="the generator's dropout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        started = time.perf_counter()
        truth = render_truth_patches(out / "patches", args.size, args.patches)
        metrics = recover(
            out / "patches", out / "run", args.epochs, args.iterations, dropout=args.dropout
        )
        space = ParameterSpace.from_config(fit_scene_to_patches(preset("tio2-sem"), args.size))
        start = dict(zip(space.names, space.scale(np.full(len(space.names), 0.5)), strict=True))
        print(
            f"{args.patches} truth patches {args.size}², {args.epochs} epochs × "
            f"{args.iterations} iterations, dropout {args.dropout}, "
            f"{time.perf_counter() - started:.0f} s"
        )
        rows = {}
        for name in TRUTH:
            learned = [e["parameters"][name] for e in metrics["epochs"]]
            covered = (start[name] - learned[-1]["mean"]) / (start[name] - truth[name])
            error = abs(learned[-1]["mean"] - truth[name]) / truth[name]
            rows[name] = {
                "truth": truth[name],
                "start": float(start[name]),
                "means": [p["mean"] for p in learned],
                "covered": covered,
                "relative_error": error,
            }
            trail = " → ".join(f"{p['mean']:.3g}" for p in learned)
            print(
                f"  {name:20s} truth {truth[name]:.3g}, start {start[name]:.3g}: {trail} "
                f"({covered:.0%} of the way, {error:.0%} off)"
            )
        print("  FID per epoch: " + ", ".join(f"{e['fid']:.0f}" for e in metrics["epochs"]))
        if args.figure:
            figure(args.figure, rows, space)
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
