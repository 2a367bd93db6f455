"""Raw microscope scans: the pixel size their TIFF metadata records, and the data bar (the
microscope's info band with text and scale bar) along their bottom or top edge.

The metadata is read with tifffile's own parsers (Zeiss ``CZ_SEM``, FEI/Thermo ``FEI_SFEG`` /
``FEI_HELIOS``, OME-XML, ImageJ); only the pixel size is picked from what they return. Missing,
damaged or implausible metadata gives no pixel size, never an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import as_gray, positive_pixel_size

log = logging.getLogger(__name__)

NM_PER_UNIT = {
    "pm": 1e-3,
    "å": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "µm": 1e3,
    "um": 1e3,
    "micron": 1e3,
    "micrometer": 1e3,
    "mm": 1e6,
    "cm": 1e7,
    "m": 1e9,
}


def nm_per_unit(unit) -> float | None:
    """Nanometres in one ``unit`` (``"µm"``, ``"micron"``, ``"nm"``…), None when unknown."""
    if not isinstance(unit, str):
        return None
    unit = unit.strip().lower().replace("\\u00b5", "µ").replace("μ", "µ")  # ImageJ, Greek mu
    return NM_PER_UNIT.get(unit.removesuffix("s"))


def _in_nm(value, unit) -> float | None:
    """``value`` in ``unit`` as nm per pixel, or None when either is no pixel size."""
    factor = nm_per_unit(unit)
    if factor is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return positive_pixel_size(float(value) * factor)
    except InputError:  # out of range
        return None


def _zeiss(tif) -> float | None:
    metadata = tif.sem_metadata or {}
    for key in ("ap_image_pixel_size", "ap_pixel_size"):  # ('Image Pixel Size', 7.344, 'nm')
        entry = metadata.get(key)
        if isinstance(entry, tuple) and len(entry) == 3 and _in_nm(entry[1], entry[2]):
            return _in_nm(entry[1], entry[2])
    return None


def _fei(tif) -> float | None:
    metadata = tif.fei_metadata or {}
    for section in ("Scan", "EScan"):
        scan = metadata.get(section)
        if isinstance(scan, dict) and _in_nm(scan.get("PixelWidth"), "m"):
            return _in_nm(scan.get("PixelWidth"), "m")
    return None


def _ome(tif) -> float | None:
    import tifffile

    if not tif.is_ome:
        return None
    image = tifffile.xml2dict(tif.ome_metadata).get("OME", {}).get("Image", {})
    pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})
    return _in_nm(pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeXUnit", "µm"))


def _imagej(tif) -> float | None:
    metadata = tif.imagej_metadata or {}
    resolution = tif.pages.first.tags.valueof("XResolution")  # pixels per unit, as a fraction
    if not (isinstance(resolution, tuple) and len(resolution) == 2 and resolution[0] > 0):
        return None
    return _in_nm(resolution[1] / resolution[0], metadata.get("unit"))


METADATA_KINDS = (
    ("Zeiss metadata (CZ_SEM)", _zeiss),
    ("FEI/Thermo metadata", _fei),
    ("OME metadata", _ome),
    ("ImageJ metadata", _imagej),
)


def pixel_size_from_metadata(path: str | Path) -> tuple[float | None, str]:
    """The pixel size (nm) that a TIFF's own metadata records and which metadata gave it, e.g.
    ``(7.344, "Zeiss metadata (CZ_SEM)")``; ``(None, "")`` for other files and for TIFFs
    without a usable one (plain resolution tags without ImageJ's unit are screen dpi, not a
    calibration, and are left out)."""
    import tifffile

    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return None, ""
    try:
        with tifffile.TiffFile(path) as tif:
            for kind, read in METADATA_KINDS:
                try:
                    size = read(tif)
                except Exception as err:  # damaged metadata: tifffile raises many types
                    log.debug("%s: %s unreadable (%s)", path, kind, err)
                    continue
                if size is not None:
                    return size, kind
    except Exception as err:  # not a TIFF tifffile can open: read_image says why
        log.debug("%s: no TIFF metadata (%s)", path, err)
    return None, ""


# --- the data bar -------------------------------------------------------------------------

BAR_SHARE = (0.02, 0.25)  # a data bar covers 2–25 % of the height (typical SEM: 5–15 %)
MIN_BAR_ROWS = 4
EDGE_ROWS = 3  # rows of other content allowed between the bar and the image edge
GAP_ROWS = 2  # rows inside the bar where text may cover more than half the width
DOMINANT = 0.5  # a bar row: at least half its pixels at the bar's own grey level
STRAY = 0.05  # at most this share of the image's pixels may have the bar's grey level


@dataclass(frozen=True)
class DataBar:
    """The microscope's data bar: ``rows`` rows at the ``edge`` ("bottom" or "top")."""

    edge: str
    rows: int

    def kept_rows(self, height: int) -> tuple[int, int]:
        """The rows (start, stop) of a ``height``-row image that hold the sample."""
        return (0, height - self.rows) if self.edge == "bottom" else (self.rows, height)

    def __str__(self) -> str:
        return f"{self.rows} rows at the {self.edge}"


def find_data_bar(image: np.ndarray) -> DataBar | None:
    """The data bar of a scan, if it has one: a band of 2–25 % of the height at the bottom (or
    top) edge whose rows are mostly one grey level that is rare in the image above it (below
    it), with text or a scale bar in other levels. Images without such a band give None."""
    levels = _grey_levels(as_gray(image)[0])
    for edge, rows in (("bottom", levels[::-1]), ("top", levels)):
        count = _band_rows(rows)
        if count:
            return DataBar(edge, count)
    return None


def _grey_levels(image: np.ndarray) -> np.ndarray:
    """``image`` as 256 grey levels (integer images of 8 bits as they are)."""
    if np.array_equal(image, np.round(image)) and image.min() >= 0 and image.max() <= 255:
        return image.astype(np.uint8)
    low, high = float(image.min()), float(image.max())
    scale = 255 / (high - low) if high > low else 0.0
    return np.round((image - low) * scale).astype(np.uint8)


def _row_modes(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's most frequent grey level and the share of the row's pixels at it."""
    count, width = rows.shape
    keyed = rows.astype(np.int64) + 256 * np.arange(count)[:, None]
    histograms = np.bincount(keyed.ravel(), minlength=256 * count).reshape(count, 256)
    return histograms.argmax(axis=1), histograms.max(axis=1) / width


def _band_rows(rows: np.ndarray) -> int:
    """How many rows from the edge (``rows[0]``) a data bar takes, 0 when there is none."""
    height = rows.shape[0]
    most = int(BAR_SHARE[1] * height)
    mode, share = _row_modes(rows[: most + EDGE_ROWS + GAP_ROWS + 1])
    starts = np.flatnonzero(share[: EDGE_ROWS + 1] >= DOMINANT)
    if not len(starts):
        return 0
    start, level = int(starts[0]), int(mode[starts[0]])
    inside = (np.abs(mode.astype(int) - level) <= 1) & (share >= DOMINANT)
    stop = start + 1
    for row in range(start + 1, len(inside)):
        if row - stop > GAP_ROWS:
            break
        if inside[row]:
            stop = row + 1
    sample = rows[stop:]
    plausible = max(MIN_BAR_ROWS, BAR_SHARE[0] * height) <= stop - start and stop <= most
    written = share[start:stop].min() < 0.97  # text or a scale bar in it
    rare = plausible and np.mean(np.abs(sample.astype(int) - level) <= 1) < STRAY
    return stop if plausible and written and rare else 0


def bar_to_leave_out(image: np.ndarray, exclude_bottom: int | str = "auto") -> DataBar | None:
    """What to leave out of ``image``: ``"auto"`` its data bar if :func:`find_data_bar` finds
    one, a number that many rows at the bottom (0: nothing)."""
    if exclude_bottom == "auto":
        return find_data_bar(image)
    return DataBar("bottom", int(exclude_bottom)) if exclude_bottom else None
