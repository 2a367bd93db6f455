"""Set-up time of a GAN training and of a resume, with and without the kept set-up.

A tiny run (tio2-sem fitted to 6 patches of ``--size`` px, 3 constellations, spp of the
preset) is trained for one epoch, then resumed twice in the same process: once without a
:class:`~napari_diffrendergan.gan.training.SetupCache` (scene, traces and FID statistics made
again, as every resume did before and the CLI does) and once with the cache of its first
training (what the dock's Resume does). Prints the seconds from the call to the first training
iteration and when each set-up stage began.

Run: ``.venv/bin/python benchmarks/bench_gan_resume.py [--size 64]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_diffrendergan.config import preset
from napari_diffrendergan.data.patches import Patch, PatchSet
from napari_diffrendergan.gan.run import GanRun, TrainingSettings
from napari_diffrendergan.gan.training import SetupCache, train_iter
from napari_diffrendergan.progress import Monitor


def blob_patches(folder: Path, size: int, count: int = 6) -> Path:
    """``count`` 0–255 patches of bright disks on a dark noisy ground, 7 nm per pixel."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images = []
    for _ in range(count):
        image = 50 + rng.normal(0, 5, (size, size))
        for centre in rng.uniform(0.2 * size, 0.8 * size, (3, 2)):
            image[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < (0.12 * size) ** 2] = 180
        images.append(image.astype(np.float32))
    listed = [Patch("blobs", 0, 0, size, "particle", 0.0, 3) for _ in images]
    return PatchSet.save(folder, listed, images, 7.0, {}).folder


def set_up_seconds(run: Path, epochs: int, cache: SetupCache | None) -> dict[str, float]:
    """Train ``run`` to ``epochs``: seconds from the call to the first iteration, and when
    each set-up stage began."""
    began: dict[str, float] = {}
    started = time.perf_counter()

    def report(done: int, total: int, message: str) -> None:
        if message.startswith(("set-up", "reusing", "training")):
            began.setdefault(message.split(": ")[0], time.perf_counter() - started)

    for event in train_iter(run, epochs, Monitor(report), cache):
        if event.kind == "iteration":
            began.setdefault("first iteration", time.perf_counter() - started)
    return began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-gan-resume-"))
    settings = TrainingSettings(
        epochs=1, iterations_per_epoch=3, device="cpu", fid_images=4, fid_constellations=2
    )
    patches = blob_patches(work / "patches", args.size)
    run = GanRun.create(work / "run", patches, preset("tio2-sem"), settings).folder
    cache = SetupCache()
    cases = [
        ("first training (epoch 0 FID too)", 1, cache),
        ("resume without the kept set-up (before; CLI)", 2, None),
        ("resume, set-up kept (dock)", 3, cache),
    ]
    for name, epochs, kept in cases:
        began = set_up_seconds(run, epochs, kept)
        first = began.pop("first iteration")
        stages = ", ".join(f"{stage} at {seconds:.2f} s" for stage, seconds in began.items())
        print(f"{name}: {first:.2f} s to the first iteration ({stages})")


if __name__ == "__main__":
    main()
