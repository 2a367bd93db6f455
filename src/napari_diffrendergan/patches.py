"""Training patches from real scans: tiling of user regions, content scores, patch sets.

The paper trains on 256² patches holding at least three whole particles and keeps real
particle-free patches as background for nnU-Net. Particles are found with an Otsu threshold of
the whole scan; a particle is *whole* when its 4-connected component does not touch the patch
border. A patch set is a folder of float32 TIFFs plus ``patches.json`` (source file,
coordinates, role, scores, pixel size).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .io import as_gray

ROLES = ("particle", "background", "auto")


class PatchError(ValueError):
    """Patches cannot be cut as asked; the message says why."""


@dataclass
class Patch:
    source: str
    y: int
    x: int
    size: int
    role: str  # "particle" or "background"
    foreground_fraction: float
    whole_particles: int
    file: str = ""


def clip_region(region, shape, size: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) clipped to the image; an error if less than one patch remains."""
    y0, y1, x0, x1 = (int(round(v)) for v in region)
    y0, x0 = max(0, min(y0, y1)), max(0, min(x0, x1))
    y1, x1 = min(shape[0], max(y0, y1)), min(shape[1], max(x0, x1))
    if y1 - y0 < size or x1 - x0 < size:
        raise PatchError(
            f"region {tuple(region)} is {y1 - y0}×{x1 - x0} px inside the image, "
            f"smaller than one {size}×{size} patch: draw a larger region or "
            "choose a smaller patch size"
        )
    return y0, y1, x0, x1


def tile_positions(region, size: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of patches covering a (clipped) region, the last row/column flush
    with its far edge."""
    y0, y1, x0, x1 = region

    def starts(lo, hi):
        values = list(range(lo, hi - size + 1, stride))
        if values[-1] != hi - size:
            values.append(hi - size)
        return values

    return [(y, x) for y in starts(y0, y1) for x in starts(x0, x1)]


def score_patch(foreground: np.ndarray, min_area: int) -> tuple[float, int, int]:
    """Foreground fraction, the number of whole particles (not touching the border) and the
    number of particle-sized components anywhere (border-touching ones included)."""
    from skimage.measure import label
    from skimage.segmentation import clear_border

    components = label(foreground, connectivity=1)
    whole = np.bincount(clear_border(components).ravel())[1:]
    every = np.bincount(components.ravel())[1:]
    return float(foreground.mean()), int((whole >= min_area).sum()), int((every >= min_area).sum())


def cut_patches(
    image: np.ndarray,
    source: str,
    regions=None,
    size: int = 256,
    stride: int = 128,
    role: str = "auto",
    min_particles: int = 3,
    max_background_fraction: float = 0.01,
    min_area: int = 20,
    max_overlap: float = 0.5,
) -> tuple[list[Patch], list[np.ndarray], list[str]]:
    """Patches of ``image`` inside ``regions`` (whole image if None), their pixels and notes.

    ``role="auto"`` keeps particle patches (≥ ``min_particles`` whole particles) and
    background patches (foreground ≤ ``max_background_fraction`` and no foreground component of
    ``min_area`` pixels, not even one cut by the border) and drops the rest; patches
    overlapping an already kept one by more than ``max_overlap`` of their area are dropped.
    """
    from skimage.filters import threshold_otsu

    if role not in ROLES:
        raise PatchError(f"role must be one of {', '.join(ROLES)}")
    if size < 16 or stride < 1:
        raise PatchError("patch size must be at least 16 px and stride at least 1 px")
    try:
        image, notes = as_gray(image)
    except ValueError as err:
        raise PatchError(str(err)) from err
    if min(image.shape) < size:
        raise PatchError(f"image {image.shape} is smaller than one {size}×{size} patch")
    foreground = image > threshold_otsu(image)
    regions = regions or [(0, image.shape[0], 0, image.shape[1])]
    candidates = []
    for region in regions:
        clipped = clip_region(region, image.shape, size)
        if tuple(clipped) != tuple(int(round(v)) for v in region):
            notes.append(f"region {tuple(region)} clipped to the image: {clipped}")
        for y, x in tile_positions(clipped, size, stride):
            fraction, whole, cut = score_patch(foreground[y : y + size, x : x + size], min_area)
            if role == "auto":
                kind = (
                    "particle"
                    if whole >= min_particles
                    else "background"
                    if fraction <= max_background_fraction and cut == 0
                    else None
                )
            else:
                kind = role
            if kind:
                candidates.append(Patch(source, y, x, size, kind, fraction, whole))
    candidates.sort(key=lambda p: (p.role != "particle", -p.whole_particles, p.y, p.x))
    kept: list[Patch] = []
    for patch in candidates:
        overlaps = (
            max(0, size - abs(patch.y - k.y)) * max(0, size - abs(patch.x - k.x)) for k in kept
        )
        if all(o <= max_overlap * size * size for o in overlaps):
            kept.append(patch)
    kept.sort(key=lambda p: (p.y, p.x))
    pixels = [image[p.y : p.y + size, p.x : p.x + size].copy() for p in kept]
    return kept, pixels, notes


def save_patch_set(
    folder: str | Path,
    patches: list[Patch],
    pixels: list[np.ndarray],
    pixel_size_nm: float | None,
    settings: dict,
) -> Path:
    """Write ``patch_NNNNN.tif`` files and ``patches.json`` (atomically, appended if present)."""
    import tifffile

    from .io import atomic_path, write_json_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    existing = load_patch_set(folder)[0] if (folder / "patches.json").is_file() else []
    for index, (patch, data) in enumerate(zip(patches, pixels, strict=True), start=len(existing)):
        patch.file = f"patch_{index:05d}.tif"
        with atomic_path(folder / patch.file) as tmp:
            tifffile.imwrite(tmp, data.astype(np.float32))
    all_patches = existing + patches
    write_json_atomic(
        folder / "patches.json",
        {
            "pixel_size_nm": pixel_size_nm,
            "settings": settings,
            "counts": {
                r: sum(p.role == r for p in all_patches) for r in ("particle", "background")
            },
            "patches": [asdict(p) for p in all_patches],
        },
    )
    return folder


def load_patch_set(folder: str | Path) -> tuple[list[Patch], dict]:
    """Patches listed in ``patches.json`` (files checked) and the set's metadata."""
    folder = Path(folder)
    index = folder / "patches.json"
    if not index.is_file():
        raise PatchError(f"{folder} is not a patch set (no patches.json)")
    try:
        meta = json.loads(index.read_text())
        patches = [Patch(**p) for p in meta["patches"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise PatchError(f"{index} is corrupt: {err}") from err
    missing = [p.file for p in patches if not (folder / p.file).is_file()]
    if missing:
        raise PatchError(f"{folder}: patch files missing: {', '.join(missing[:5])}")
    return patches, meta
