"""DiffRenderGAN on the real TiO2 SEM scans (../shared/data/tio2-sem), paper-sized: 124 particle
patches, preset tio2-sem, FID after every epoch.

The 32 scans are split with a fixed seed into 24 training and 8 validation scans (the
validation scans are never touched here); patches (256², stride 128, ≥ 3 whole particles) are
cut from training scans, data bar excluded, until 124 particle patches are collected. Prints
FID per epoch, the best epoch, seconds per iteration and per epoch, and an estimate for 50
epochs.

Run: ``.venv/bin/python benchmarks/gan_tio2_sem.py --out DIR [--epochs 10] [--resume]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from napari_diffrendergan.config import preset
from napari_diffrendergan.data.patches import PatchSet, cut_patches
from napari_diffrendergan.gan.run import GanRun, TrainingSettings
from napari_diffrendergan.gan.training import train_iter
from napari_diffrendergan.io import as_gray
from tio2_data import DATA_BAR_ROWS, PATCHES, PIXEL_SIZE_NM, SHARED, split


def training_patches(folder: Path, train_ids: list[str], data: Path) -> int:
    """Particle patches from the training scans (no masks used), at most :data:`PATCHES`."""
    import tifffile

    total = 0
    for image_id in train_ids:
        image, _ = as_gray(tifffile.imread(data / "images" / f"{image_id}.tif"))
        image = image[: image.shape[0] - DATA_BAR_ROWS]
        patches, pixels, _ = cut_patches(image, f"{image_id}.tif", role="auto")
        keep = [i for i, p in enumerate(patches) if p.role == "particle"][: PATCHES - total]
        if keep:
            PatchSet.save(
                folder,
                [patches[i] for i in keep],
                [pixels[i] for i in keep],
                PIXEL_SIZE_NM,
                {"source": "tio2-sem training scans", "stride": 128},
            )
        total += len(keep)
        if total >= PATCHES:
            break
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--data", default=str(SHARED))
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    if not (data / "images").is_dir():
        sys.exit(f"real TiO2 SEM data not found at {data}: nothing to do")
    ids = sorted(p.stem for p in (data / "images").glob("*.tif"))
    train_ids, validation_ids = split(ids)
    print(
        f"{len(train_ids)} training / {len(validation_ids)} validation scans; "
        f"validation: {', '.join(validation_ids)}"
    )
    run = out / "run"
    if not args.resume:
        count = training_patches(out / "patches", train_ids, data)
        print(f"{count} particle patches in {out / 'patches'}")
        GanRun.create(
            run, out / "patches", preset("tio2-sem"), TrainingSettings(epochs=args.epochs)
        )
    started, trained = time.perf_counter(), 0
    for event in train_iter(run, epochs=args.epochs):
        if event.kind == "epoch":
            trained += 1
            m = event.metrics
            print(
                f"epoch {event.epoch:2d}: FID {m['fid']:6.1f}  loss G {m['loss_g']:.3f}  "
                f"loss D {m['loss_d']:.3f}  {m['seconds_per_iteration']:.3f} s/it  "
                f"FID {m['seconds_fid']:.0f} s  breadth {m['breadth']:.3f}",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    metrics = GanRun(run).metrics()
    epochs = metrics["epochs"]
    best = metrics["best_epoch"]
    print(
        f"best epoch {best} (FID {next(e['fid'] for e in epochs if e['epoch'] == best):.1f}); "
        f"{elapsed:.0f} s for this call; per epoch "
        f"{elapsed / max(1, len(epochs)):.0f} s → 50 epochs ≈ "
        f"{50 * elapsed / max(1, len(epochs)) / 60:.0f} min"
    )
    for name, stats in epochs[best - 1]["parameters"].items():
        print(f"  {name:22s} {stats['mean']:.3g} ± {stats['std']:.2g}")


if __name__ == "__main__":
    main()
