"""Synthetic-data benchmark: pairs per minute at 256², spp-121 quality (tio2-sem: 25 traced
samples, denoised; its 26 meshes or ``--meshes N``), with 1 and 2 worker processes, and the
time per pair split into placement, rendering and labels, and as a fraction of Mitsuba's own
spp-121 render of the same scene measured in the same run (host-independent).

A tiny run (1 epoch on rendered patches) supplies the generator; what is measured does not
depend on how well it is trained. Target: 1000 pairs in ≤ 10 minutes on 2 cores.

Run: ``.venv/bin/python benchmarks/bench_generate.py [--count 24] [--spp 121] [--meshes N]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_diffrendergan.config import preset
from napari_diffrendergan.gan.recovery import TRUTH, recover, render_truth_patches
from napari_diffrendergan.gan.run import load_generator
from napari_diffrendergan.gan.synthesis import PairRenderer, generate
from napari_diffrendergan.render.placement import constellation
from napari_diffrendergan.render.shading import trace

# Mitsuba `direct` at spp 121 on the host where the targets were set (docs/rendering.md):
# 10 min per 1000 pairs there is 0.6 s per pair, i.e. this fraction of that render.
REFERENCE_MITSUBA_S = 1.69
TARGET_RATIO = 0.6 / REFERENCE_MITSUBA_S


def mitsuba_seconds(scene, config, spp: int, repeats: int = 3) -> float:
    """Median seconds of placing a constellation and rendering it with Mitsuba itself."""
    rng = np.random.default_rng(1)
    scene.render(seed=0, spp=spp)  # kernel compilation
    times = []
    for seed in range(1, repeats + 1):
        start = time.perf_counter()
        scene.place(constellation(config, rng))
        scene.render(seed=seed, spp=spp)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def tiny_run(folder: Path, meshes: int | None) -> Path:
    config = preset("tio2-sem")
    config.meshes.count = meshes or config.meshes.count
    render_truth_patches(folder / "patches", 256, 4, TRUTH, config=config)
    recover(folder / "patches", folder / "run", 1, 4, config=config, fid_images=4)
    return folder / "run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--spp", type=int, default=121)
    parser.add_argument("--meshes", type=int, help="mesh count (default: the preset's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = tiny_run(tmp, args.meshes)
        renderer = PairRenderer(load_generator(run), seed=0, spp=args.spp, device="cpu")
        renderer.render(0)  # kernel compilation
        scene = renderer.scene
        timings = {"placement": [], "render": [], "labels": []}
        rng = np.random.default_rng(0)
        for i in range(1, 6):
            start = time.perf_counter()
            scene.place(constellation(renderer.config, rng))
            timings["placement"].append(time.perf_counter() - start)
            start = time.perf_counter()
            trace(scene, seed=i, spp=args.spp).render()
            timings["render"].append(time.perf_counter() - start)
            start = time.perf_counter()
            scene.instances()
            timings["labels"].append(time.perf_counter() - start)
        print(
            f"256², {renderer.config.meshes.count} meshes, spp {args.spp}: placement "
            f"{np.median(timings['placement']):.3f} s, render "
            f"{np.median(timings['render']):.2f} s, labels {np.median(timings['labels']):.3f} s"
        )
        mitsuba = mitsuba_seconds(scene, renderer.config, args.spp)
        print(f"Mitsuba direct spp {args.spp} (placement + render, same scene): {mitsuba:.2f} s")
        rates = {}
        for workers in (1, 2):
            start = time.perf_counter()
            summary = generate(
                run, tmp / f"out{workers}", args.count, spp=args.spp, workers=workers, device="cpu"
            )
            seconds = time.perf_counter() - start
            rates[workers] = args.count / seconds * 60
            print(
                f"{workers} worker(s): {args.count} pairs in {seconds:.1f} s = "
                f"{rates[workers]:.1f} pairs/min ({summary['rejected']} rejected) → 1000 pairs "
                f"≈ {1000 / rates[workers]:.1f} min"
            )
        for workers, rate in rates.items():
            ratio = 60 / rate / mitsuba
            minutes = ratio * REFERENCE_MITSUBA_S * 1000 / 60
            print(
                f"{workers} worker(s): a pair costs {ratio:.3f} × Mitsuba's spp-{args.spp} render "
                f"(target ≤ {TARGET_RATIO:.3f}: 0.6 s per pair where that render takes "
                f"{REFERENCE_MITSUBA_S} s) → 1000 pairs ≈ {minutes:.1f} min on the reference host"
            )
        import tifffile

        labels_same = all(
            (tmp / "out1" / sub / f.name).read_bytes() == f.read_bytes()
            for sub in ("labelsTr", "instances")
            for f in (tmp / "out2" / sub).iterdir()
        )
        image_difference = max(
            float(
                np.abs(
                    tifffile.imread(f) - tifffile.imread(tmp / "out1" / "imagesTr" / f.name)
                ).max()
            )
            for f in (tmp / "out2" / "imagesTr").iterdir()
        )
        print(
            f"scaling 2 vs 1 worker: {rates[2] / rates[1]:.2f}×; labels identical: "
            f"{labels_same}; largest image difference {image_difference:.2g}"
        )


if __name__ == "__main__":
    main()
