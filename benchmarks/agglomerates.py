"""How crowded particles are: the share of particles lying in agglomerates of ≥ 5, ≥ 10 and
≥ 20 particles, in the training scans' manual masks and in synthetic datasets. The synthetic
scenes' ``placement.dense_fraction`` (preset ``tio2-sem``) was set so the two agree.

An agglomerate is a group of particles whose outlines come within 2 px of each other (the
manual masks separate touching particles by 1-px lines); particles under 20 px are not counted.

Run: ``.venv/bin/python benchmarks/agglomerates.py [--dataset DIR ...] [--pairs N]``
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from tio2_data import SHARED, read_scan, split

SIZES = (5, 10, 20)
FLOOR = 20  # px: smaller labels are fragments, not particles


def agglomerate_sizes(instances: np.ndarray, gap: int = 2) -> list[int]:
    """Particles (≥ :data:`FLOOR` px) per agglomerate of an instance label image."""
    from scipy import ndimage
    from skimage.measure import label

    instances = np.asarray(instances, np.int64)
    closed = ndimage.binary_closing(instances > 0, iterations=gap) | (instances > 0)
    groups = label(closed, connectivity=2)
    big = np.bincount(instances.ravel()) >= FLOOR
    big[0] = False
    pairs = np.unique(np.stack([groups.ravel(), instances.ravel()]), axis=1)
    pairs = pairs[:, big[pairs[1]]]
    return np.bincount(pairs[0])[np.unique(pairs[0])].tolist()


def shares(sizes: list[int]) -> dict[int, float]:
    sizes = np.asarray(sizes)
    return {k: float(sizes[sizes >= k].sum() / max(sizes.sum(), 1)) for k in SIZES}


def manual_sizes() -> list[int]:
    from napari_diffrendergan.analysis.evaluation import to_instances

    ids = sorted(p.stem for p in (SHARED / "images").glob("*.tif"))
    sizes = []
    for image_id in split(ids)[0]:
        sizes += agglomerate_sizes(to_instances(read_scan(image_id)[1], "binary"))
    return sizes


def dataset_sizes(folder: str, pairs: int) -> list[int]:
    from napari_diffrendergan.data.dataset import NnunetDataset, pair_name
    from napari_diffrendergan.io import read_image

    dataset = NnunetDataset(folder)
    sizes = []
    for index in dataset.done_pairs()[:pairs]:
        sizes += agglomerate_sizes(read_image(dataset.instances_path(pair_name(index)))[0])
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", nargs="*", default=[], help="synthetic nnU-Net datasets")
    parser.add_argument("--pairs", type=int, default=300, help="pairs read per dataset")
    args = parser.parse_args()
    rows = []
    if (SHARED / "masks").is_dir():
        rows.append(("manual masks, training scans", manual_sizes()))
    else:
        print(f"real TiO2 SEM masks not found at {SHARED}: manual row skipped", file=sys.stderr)
    rows += [(folder, dataset_sizes(folder, args.pairs)) for folder in args.dataset]
    print("| source | agglomerates | particles | " + " | ".join(f"in ≥ {k}" for k in SIZES) + " |")
    for name, sizes in rows:
        share = shares(sizes)
        cells = " | ".join(f"{100 * share[k]:.0f} %" for k in SIZES)
        print(f"| {name} | {len(sizes)} | {sum(sizes)} | {cells} |")


if __name__ == "__main__":
    main()
