"""Segmentation speed/quality trade-off on real TiO2 SEM scans (1024×712 after the data bar).

Trains (once, cached in --work) the small nnU-Net on 256² patches of the training images with
their manual masks, then segments the held-out validation images with several predictor
settings (nnU-Net's sliding window, or the whole image in one network pass) and prints seconds
per image and Dice against the manual masks, relative to nnU-Net's default settings (sliding
window, step 0.5, mirroring) measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_segment.py [--iterations 300] [--work DIR]``
Needs ../shared/data/tio2-sem (skips with a message otherwise).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from skimage.measure import label

from napari_diffrendergan.analysis.evaluation import score_image
from napari_diffrendergan.data.dataset import NnunetDataset
from napari_diffrendergan.progress import Monitor
from napari_diffrendergan.render.labels import semantic_mask
from napari_diffrendergan.sample_data import TIO2_DATA_BAR_ROWS
from napari_diffrendergan.segment.model import ModelFolder
from napari_diffrendergan.segment.predict import Segmenter
from napari_diffrendergan.segment.training import train_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tio2-sem"
SETTINGS = [  # (name, window, step, mirroring, threads)
    ("nnU-Net default: sliding 0.5, mirror all", "sliding", 0.5, "all", 2),
    ("sliding 0.5, no mirroring", "sliding", 0.5, "none", 2),
    ("sliding 0.75, no mirroring", "sliding", 0.75, "none", 2),
    ("sliding 1.0, mirror all", "sliding", 1.0, "all", 2),
    ("whole image, mirror all", "whole", 0.5, "all", 2),
    ("whole image, mirror x", "whole", 0.5, "x", 2),
    ("whole image, no mirroring", "whole", 0.5, "none", 2),
    ("whole image, no mirroring, 1 thread", "whole", 0.5, "none", 1),
]


def split(ids: list[str], seed: int = 0, n_validation: int = 8) -> tuple[list[str], list[str]]:
    """Fixed train/validation split of image ids."""
    order = np.random.default_rng(seed).permutation(sorted(ids))
    return sorted(order[n_validation:]), sorted(order[:n_validation])


def load(image_id: str) -> tuple[np.ndarray, np.ndarray]:
    keep = slice(0, 768 - TIO2_DATA_BAR_ROWS)
    image = tifffile.imread(DATA / "images" / f"{image_id}.tif")[keep]
    mask = tifffile.imread(DATA / "masks" / f"{image_id}_m.tif")[keep]
    return image.astype(np.float32), label(mask > 0, connectivity=1)


def patches(image, instances, size=256):
    h, w = image.shape
    for y in np.linspace(0, h - size, int(np.ceil(h / size))).astype(int):
        for x in np.linspace(0, w - size, int(np.ceil(w / size))).astype(int):
            yield image[y : y + size, x : x + size], instances[y : y + size, x : x + size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--work", type=Path, default=Path("/tmp/diffrendergan-bench-segment"))
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"skipped: real TiO2 SEM data not found at {DATA}")
    ids = sorted(p.stem for p in (DATA / "images").glob("*.tif"))
    train_ids, validation_ids = split(ids)
    model = args.work / f"model-small-{args.iterations}"
    if not ModelFolder(model).is_complete:
        images, masks = [], []
        for image_id in train_ids:
            for image, instances in patches(*load(image_id)):
                images.append(image)
                masks.append(semantic_mask(instances, 1))
        dataset = (
            NnunetDataset(args.work / "Dataset001_TiO2real")
            .write(images, masks, contour_thickness=1)
            .folder
        )
        start = time.perf_counter()
        train_model(
            dataset,
            model,
            config="small",
            iterations=args.iterations,
            device="cpu",
            resume=ModelFolder(model).workspace.is_dir(),
            monitor=Monitor(lambda d, t, m: print(f"  [{time.perf_counter() - start:6.0f} s] {m}")),
        )
        print(
            f"trained on {len(images)} patches of {len(train_ids)} images in "
            f"{time.perf_counter() - start:.0f} s"
        )
    validation = [load(i) for i in validation_ids]
    print(
        f"validation: {len(validation)} images {validation[0][0].shape[1]}x"
        f"{validation[0][0].shape[0]}, model {model.name}"
    )
    rows, reference = [], None
    for name, window, step, mirroring, threads in SETTINGS:
        segmenter = Segmenter(
            model, device="cpu", window=window, step=step, mirroring=mirroring, threads=threads
        )
        segmenter.predict(validation[0][0])  # warm-up
        seconds, dice, masks = [], [], []
        for image, instances in validation:
            start = time.perf_counter()
            mask = segmenter.predict(image)
            seconds.append(time.perf_counter() - start)
            found = label(mask == 1, connectivity=1)
            dice.append(score_image(instances, found, "", "instances", "instances").dsc)
            masks.append(mask)
        if reference is None:
            reference = masks
        agreement = np.mean([(m == r).mean() for m, r in zip(masks, reference, strict=True)])
        rows.append((name, np.median(seconds), np.mean(dice), agreement))
    base_time, base_dice = rows[0][1], rows[0][2]
    print(
        f"{'setting':40s} {'s/image':>8s} {'speed-up':>9s} {'Dice':>7s} {'ΔDice':>8s} "
        f"{'pixels = default':>17s}"
    )
    for name, sec, dsc, agree in rows:
        print(
            f"{name:40s} {sec:>8.2f} {base_time / sec:>8.1f}x {dsc:>7.4f} "
            f"{dsc - base_dice:>+8.4f} {agree:>16.2%}"
        )


if __name__ == "__main__":
    main()
