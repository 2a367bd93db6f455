"""Synthetic-data benchmark: pairs per minute at 256², spp 64 (tio2-sem; its 20 meshes or
``--meshes N``), with 1 and 2 worker processes, and the time per pair split into placement,
rendering and labels.

A tiny run (1 epoch on rendered patches) supplies the generator; what is measured does not
depend on how well it is trained. Target: 1000 pairs in ≤ 10 minutes on 2 cores.

Run: ``.venv/bin/python benchmarks/bench_generate.py [--count 24] [--spp 64] [--meshes N]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_diffrendergan.config import preset
from napari_diffrendergan.gan import TrainingSettings, load_generator, prepare_run, train_iter
from napari_diffrendergan.patches import Patch, save_patch_set
from napari_diffrendergan.placement import constellation
from napari_diffrendergan.scene import render_samples
from napari_diffrendergan.synthesis import PairRenderer, generate


def tiny_run(folder: Path, meshes: int | None) -> Path:
    config = preset("tio2-sem")
    config.meshes.count = meshes or config.meshes.count
    samples = list(render_samples(config, 4, seed=1, device="cpu", spp=4))
    images = [np.clip(s.image, 0, 1) for s in samples]
    patches = [Patch("bench", 0, 0, 256, "particle", 0.0, 3) for _ in images]
    save_patch_set(folder / "patches", patches, images, None, {})
    settings = TrainingSettings(
        epochs=1, iterations_per_epoch=4, fid_images=4, fid_constellations=2, pool=2, device="cpu"
    )
    prepare_run(folder / "run", folder / "patches", config, settings)
    for _ in train_iter(folder / "run"):
        pass
    return folder / "run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--spp", type=int, default=64)
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
            constellation(renderer.config, rng)
            timings["placement"].append(time.perf_counter() - start)
            start = time.perf_counter()
            scene.render(seed=i, spp=args.spp)
            timings["render"].append(time.perf_counter() - start)
            start = time.perf_counter()
            scene.instances()
            timings["labels"].append(time.perf_counter() - start)
        print(
            f"256², {renderer.config.meshes.count} meshes, spp {args.spp}: placement "
            f"{np.median(timings['placement']):.3f} s, render "
            f"{np.median(timings['render']):.2f} s, labels {np.median(timings['labels']):.3f} s"
        )
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
