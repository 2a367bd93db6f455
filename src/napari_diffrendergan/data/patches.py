"""Training patches from real scans: tiling of user regions, content scores, patch sets.

The paper trains on 256² patches holding at least three whole particles and keeps real
particle-free patches as background for nnU-Net. Particles are the side of an Otsu threshold of
the whole scan that their polarity says: above it when they are brighter than the background,
below it when darker (by default found on the scan itself, as ``diffrendergan calibrate`` finds
it); a particle is *whole* when its 4-connected component does not touch the patch border. A
patch set is a folder of float32 TIFFs plus ``patches.json`` (source file, coordinates, role,
polarity, scores, pixel size).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ..errors import InputError
from ..io import as_gray, positive_pixel_size
from ..progress import Monitor, ensure

ROLES = ("particle", "background", "auto")
POLARITIES = ("auto", "bright", "dark")  # auto: found on each scan
# pixel sizes this close are one calibration, written with different rounding (a Zeiss file's
# "Image Pixel Size" 7.344 nm and its field width / columns, 7.34375 nm)
SAME_PIXEL_SIZE = 1e-3


class PatchError(InputError):
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
    polarity: str = "bright"  # the particles' polarity the patch was cut with


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


def particle_phase(image: np.ndarray, polarity: str) -> np.ndarray:
    """The particles of ``image`` at its Otsu threshold: the pixels above it for ``polarity``
    "bright", below it for "dark"."""
    from skimage.filters import threshold_otsu

    threshold = threshold_otsu(image)
    return image > threshold if polarity == "bright" else image < threshold


def scan_polarity(image: np.ndarray, regions) -> tuple[str, list[str]]:
    """The particles' polarity in ``regions`` of ``image`` (calibration's rule: the thinner
    phase), and a note saying what was found."""
    from .phases import image_polarity

    found = image_polarity([image[y0:y1, x0:x1] for y0, y1, x0, x1 in regions])
    if found is None:
        return "bright", ["polarity: nothing stands out from the noise, bright particles assumed"]
    return found, [f"polarity: {found} particles found"]


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
    monitor: Monitor | None = None,
    polarity: str = "auto",
) -> tuple[list[Patch], list[np.ndarray], list[str]]:
    """Patches of ``image`` inside ``regions`` (whole image if None), their pixels and notes.

    ``role="auto"`` keeps particle patches (≥ ``min_particles`` whole particles) and
    background patches (foreground ≤ ``max_background_fraction`` and no foreground component of
    ``min_area`` pixels, not even one cut by the border) and drops the rest; patches
    overlapping an already kept one by more than ``max_overlap`` of their area are dropped.
    The foreground is the particles of ``polarity`` (:func:`particle_phase`; "auto": the
    polarity found in the regions, :func:`scan_polarity`).
    """
    monitor = ensure(monitor)
    if role not in ROLES:
        raise PatchError(f"role must be one of {', '.join(ROLES)}")
    if polarity not in POLARITIES:
        raise PatchError(f"polarity must be one of {', '.join(POLARITIES)}")
    if size < 16 or stride < 1:
        raise PatchError("patch size must be at least 16 px and stride at least 1 px")
    image, notes = as_gray(image)
    if min(image.shape) < size:
        fix = (
            f"choose a patch size of at most {min(image.shape)} px"
            if min(image.shape) >= 16
            else "patches need an image of at least 16×16 px"
        )
        raise PatchError(
            f"the image ({image.shape[0]}×{image.shape[1]} px) is smaller than one "
            f"{size}×{size} patch: {fix}"
        )
    regions = regions or [(0, image.shape[0], 0, image.shape[1])]
    clipped = [clip_region(region, image.shape, size) for region in regions]
    for region, inside in zip(regions, clipped, strict=True):
        if tuple(inside) != tuple(int(round(v)) for v in region):
            notes.append(f"region {tuple(region)} clipped to the image: {inside}")
    if polarity == "auto":
        polarity, found = scan_polarity(image, clipped)
        notes += found
    foreground = particle_phase(image, polarity)
    candidates = []
    for number, region in enumerate(clipped, start=1):
        tiles = tile_positions(region, size, stride)
        for done, (y, x) in enumerate(tiles):
            if done % 64 == 0:
                monitor.check()
                monitor.report(done, len(tiles), f"region {number}/{len(regions)}")
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
                candidates.append(
                    Patch(source, y, x, size, kind, fraction, whole, polarity=polarity)
                )
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


def _check_confined(folder: Path, index: str, number: int, file) -> None:
    """Refuse an index entry whose file is not a file of the set's own folder (a path such as
    ``../../x.tif``, an absolute path, or a link out of the folder): a shared set must not
    make the plugin read other files."""
    name = file if isinstance(file, str) else ""
    plain = name not in ("", ".", "..") and PurePosixPath(name).name == name
    plain = plain and PureWindowsPath(name).name == name
    if plain and (folder / name).is_symlink():
        plain = (folder / name).resolve().parent == folder.resolve()
    if not plain:
        raise PatchError(
            f"{folder / index}: entry {number} names the file {file!r}, which is not in the "
            "patch set folder: patch files must lie in the folder itself; the index is damaged "
            "or made to read other files, so do not use this patch set"
        )


class PatchSet:
    """A patch set folder: ``patch_NNNNN.tif`` files (float32) and ``patches.json`` (written
    last: the index of what is complete)."""

    INDEX = "patches.json"

    def __init__(self, folder: str | Path, patches: list[Patch], meta: dict):
        self.folder = Path(folder)
        self.patches = patches
        self.meta = meta

    @classmethod
    def is_patch_set(cls, folder: str | Path) -> bool:
        return (Path(folder) / cls.INDEX).is_file()

    @classmethod
    def open(cls, folder: str | Path) -> PatchSet:
        """The set in ``folder`` (every listed file checked); clear errors otherwise."""
        from ..io import read_json

        folder = Path(folder)
        if not folder.is_dir():
            raise PatchError(f"{folder} is not a patch set (no such folder)")
        if not cls.is_patch_set(folder):
            raise PatchError(f"{folder} is not a patch set (no patches.json)")
        try:
            meta = read_json(folder / cls.INDEX, "the patch index")
            patches = [Patch(**p) for p in meta["patches"]]
        except (InputError, KeyError, TypeError) as err:
            raise PatchError(f"{folder / cls.INDEX} is corrupt: {err}") from err
        for number, patch in enumerate(patches):
            _check_confined(folder, cls.INDEX, number, patch.file)
        missing = [p.file for p in patches if not (folder / p.file).is_file()]
        if missing:
            raise PatchError(f"{folder}: patch files missing: {', '.join(missing[:5])}")
        return cls(folder, patches, meta)

    @property
    def pixel_size_nm(self) -> float | None:
        return self.meta.get("pixel_size_nm")

    @property
    def polarity(self) -> str:
        """The particles' polarity the patches were cut with: "bright", "dark" or "mixed"
        (sets made before it was recorded: bright)."""
        return self.meta.get("polarity", "bright")

    def with_role(self, role: str) -> list[Patch]:
        return [p for p in self.patches if p.role == role]

    def read(self, patch: Patch) -> np.ndarray:
        import tifffile

        return tifffile.imread(self.folder / patch.file).astype(np.float32)

    def read_stack(self, patches: list[Patch]) -> np.ndarray:
        return np.stack([self.read(p) for p in patches])

    @staticmethod
    def intensity_range(images: np.ndarray) -> float:
        """The full range of the source type, inferred from the largest value: 1 for float data
        in [0, 1], else 255 or 65535."""
        top = float(np.max(images))
        return 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0

    @classmethod
    def save(
        cls,
        folder: str | Path,
        patches: list[Patch],
        pixels: list[np.ndarray],
        pixel_size_nm: float | None,
        settings: dict,
    ) -> PatchSet:
        """Write the patches into ``folder``, appended to the set there if any: patches already
        listed (same source name, position and pixels) are skipped, so a retry after a failure
        adds nothing twice. Refuses a folder holding patch files without an index, and a pixel
        size other than the set's. The folder is locked meanwhile
        (:class:`~napari_diffrendergan.io.FolderLock`); sources are recorded by name only."""
        from ..io import FolderLock

        pixel_size_nm = positive_pixel_size(pixel_size_nm)
        with FolderLock(folder, "patch saving"):
            return cls._save(Path(folder), patches, pixels, pixel_size_nm, settings)

    @classmethod
    def _save(cls, folder: Path, patches, pixels, pixel_size_nm, settings) -> PatchSet:
        import tifffile

        from ..io import atomic_path, write_json_atomic

        if cls.is_patch_set(folder):
            existing = cls.open(folder)
            if (
                existing.pixel_size_nm is not None
                and pixel_size_nm is not None
                and not np.isclose(existing.pixel_size_nm, pixel_size_nm, rtol=SAME_PIXEL_SIZE)
            ):
                raise PatchError(
                    f"{folder} holds patches at {existing.pixel_size_nm:g} nm per pixel, these "
                    f"are at {pixel_size_nm:g}: save them into another patch set"
                )
            listed, pixel_size_nm = existing.patches, existing.pixel_size_nm or pixel_size_nm
        elif any(folder.glob("patch_*.tif")):
            raise PatchError(
                f"{folder} holds patch files but no patches.json: choose another folder (or move "
                "the files away)"
            )
        else:
            listed = []
        seen, written = {_place(p): p for p in listed}, cls(folder, listed, {})
        added = []
        for patch, data in zip(patches, pixels, strict=True):
            patch.source, data = Path(patch.source).name, np.asarray(data, np.float32)
            twin = seen.get(_place(patch))
            if twin is not None and np.array_equal(written.read(twin), data):
                continue
            patch.file = f"patch_{len(listed) + len(added):05d}.tif"
            with atomic_path(folder / patch.file) as tmp:
                tifffile.imwrite(tmp, data)
            added.append(patch)
        everything = listed + added
        meta = {
            "pixel_size_nm": pixel_size_nm,
            "settings": settings,
            "counts": {r: sum(p.role == r for p in everything) for r in ("particle", "background")},
            "polarity": _common_polarity(everything),
            "patches": [asdict(p) for p in everything],
        }
        write_json_atomic(folder / cls.INDEX, meta)
        return cls(folder, everything, meta)


def _place(patch: Patch) -> tuple:
    """Where a patch was cut: source name (sets made before names only were recorded hold
    paths), position and size."""
    return Path(patch.source).name, patch.y, patch.x, patch.size


def _common_polarity(patches: list[Patch]) -> str:
    """The polarity all ``patches`` were cut with, "mixed" where they differ."""
    found = {p.polarity for p in patches} or {"bright"}
    return found.pop() if len(found) == 1 else "mixed"
