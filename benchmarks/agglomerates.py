"""How crowded particles are and how their joins look, in the training scans' manual masks and
in synthetic datasets: the share of particles in agglomerates of ≥ 5, ≥ 10 and ≥ 20
particles, the share of a particle's outline that touches another particle, and at each join
the brightness of the darker particle over the brighter one and of the join itself over the
darker particle (medians). The preset ``tio2-sem``'s ``placement.dense_fraction`` was set so
the agglomerate shares agree; the join figures show what its 1-unit slab does not match
(docs/segmentation.md).

An agglomerate is a group of particles whose outlines come within 2 px of each other (the
manual masks separate touching particles by 1-px lines); two particles touch where they come
within 2 px; particles under 20 px are not counted.

With ``--patches`` (a patch set, e.g. an experiment's ``patches/``) each dataset also gets the
FID of its first ``--pairs`` images against the set's particle patches: how a placement changes
realism with the generator held fixed.

Run: ``.venv/bin/python benchmarks/agglomerates.py [--dataset DIR ...] [--pairs N]
[--patches DIR]``
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from tio2_data import SHARED, read_scan, split

SIZES = (5, 10, 20)
FLOOR = 20  # px: smaller labels are fragments, not particles
GAP = 2  # px: outlines this close touch


def agglomerate_sizes(instances: np.ndarray) -> list[int]:
    """Particles (≥ :data:`FLOOR` px) per agglomerate of an instance label image."""
    from scipy import ndimage
    from skimage.measure import label

    closed = ndimage.binary_closing(instances > 0, iterations=GAP) | (instances > 0)
    groups = label(closed, connectivity=2)
    big = np.bincount(instances.ravel()) >= FLOOR
    big[0] = False
    pairs = np.unique(np.stack([groups.ravel(), instances.ravel()]), axis=1)
    pairs = pairs[:, big[pairs[1]]]
    return np.bincount(pairs[0])[np.unique(pairs[0])].tolist()


def contacts(image: np.ndarray, instances: np.ndarray) -> tuple[list, list, list]:
    """Per particle (≥ :data:`FLOOR` px) the share of its outline within :data:`GAP` px of
    another particle; per touching pair the darker/brighter mean intensity and the mean of
    the join band (pixels near both) over the darker particle's mean."""
    from scipy import ndimage

    areas = np.bincount(instances.ravel())
    means = np.bincount(instances.ravel(), image.ravel()) / np.maximum(areas, 1)
    near = np.ones((2 * GAP + 1,) * 2, bool)
    touching, ratios, joins = [], [], []
    for index, box in enumerate(ndimage.find_objects(instances), 1):
        if box is None or areas[index] < FLOOR:
            continue
        box = tuple(slice(max(s.start - GAP - 1, 0), s.stop + GAP + 1) for s in box)
        labels, me = instances[box], instances[box] == index
        outline = me & ~ndimage.binary_erosion(me)
        others = (labels > 0) & ~me
        touching.append((outline & ndimage.binary_dilation(others, near)).sum() / outline.sum())
        around = ndimage.binary_dilation(me, near)
        for other in np.unique(labels[around & others]):
            if other < index or areas[other] < FLOOR:
                continue  # each pair once, fragments not at all
            darker, brighter = sorted((means[index], means[other]))
            band = around & ndimage.binary_dilation(labels == other, near)
            ratios.append(darker / brighter)
            joins.append(image[box][band].mean() / darker)
    return touching, ratios, joins


def crowding(scenes) -> dict:
    """Crowding and join figures pooled over ``(image, instances)`` pairs."""
    sizes, touching, ratios, joins = [], [], [], []
    for image, instances in scenes:
        instances = np.asarray(instances, np.int64)
        sizes += agglomerate_sizes(instances)
        share, ratio, join = contacts(np.asarray(image, np.float64), instances)
        touching += share
        ratios += ratio
        joins += join
    sizes = np.asarray(sizes)
    shares = {k: float(sizes[sizes >= k].sum() / max(sizes.sum(), 1)) for k in SIZES}
    return {
        "agglomerates": len(sizes),
        "particles": int(sizes.sum()),
        "shares": shares,
        "contact": float(np.mean(touching)),
        "ratio": float(np.median(ratios)),
        "join": float(np.median(joins)),
    }


def manual_scenes():
    from napari_diffrendergan.analysis.evaluation import to_instances

    ids = sorted(p.stem for p in (SHARED / "images").glob("*.tif"))
    for image_id in split(ids)[0]:
        image, mask = read_scan(image_id)
        yield image, to_instances(mask, "binary")


def dataset_scenes(folder: str, pairs: int):
    from napari_diffrendergan.data.dataset import NnunetDataset, pair_name
    from napari_diffrendergan.io import read_image

    dataset = NnunetDataset(folder)
    for index in dataset.done_pairs()[:pairs]:
        name = pair_name(index)
        yield read_image(dataset.image_path(name))[0], read_image(dataset.instances_path(name))[0]


def fid_against(patches: str):
    """A function giving the FID of an image stack against a patch set's particle patches
    (their Inception statistics computed once)."""
    from napari_diffrendergan.gan.fid import InceptionFeatures, frechet_distance, statistics
    from napari_diffrendergan.gan.run import load_real_patches

    features = InceptionFeatures()
    real = statistics(features(load_real_patches(patches)[0]))
    return lambda images: frechet_distance(*statistics(features(images)), *real)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", nargs="*", default=[], help="synthetic nnU-Net datasets")
    parser.add_argument("--pairs", type=int, default=300, help="pairs read per dataset")
    parser.add_argument("--patches", help="patch set: also each dataset's FID against it")
    args = parser.parse_args()
    rows = []
    if (SHARED / "masks").is_dir():
        rows.append(("manual masks, training scans", crowding(manual_scenes())))
    else:
        print(f"real TiO2 SEM masks not found at {SHARED}: manual row skipped", file=sys.stderr)
    fid = fid_against(args.patches) if args.patches else None
    for folder in args.dataset:
        scenes = list(dataset_scenes(folder, args.pairs))
        row = crowding(scenes)
        if fid:
            row["fid"] = fid(np.stack([image for image, _ in scenes]))
        rows.append((folder, row))
    print(
        "| source | agglomerates | particles | "
        + " | ".join(f"in ≥ {k}" for k in SIZES)
        + " | outline touching | darker/brighter | join/darker |"
        + (" FID |" if fid else "")
    )
    for name, row in rows:
        cells = " | ".join(f"{100 * row['shares'][k]:.0f} %" for k in SIZES)
        realism = f" {row['fid']:.1f} |" if "fid" in row else (" – |" if fid else "")
        print(
            f"| {name} | {row['agglomerates']} | {row['particles']} | {cells} | "
            f"{100 * row['contact']:.0f} % | {row['ratio']:.2f} | {row['join']:.2f} |{realism}"
        )


if __name__ == "__main__":
    main()
