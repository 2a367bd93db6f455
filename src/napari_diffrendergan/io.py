"""File helpers: atomic writes and TIFFs with a JSON sidecar (pixel size in nm, provenance)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def sidecar_path(path: str | Path) -> Path:
    """``image.tif`` -> ``image.json``: where a file's metadata lives."""
    return Path(path).with_suffix(".json")


def write_tiff(
    path: str | Path, data: np.ndarray, *, pixel_size_nm: float | None = None, **metadata: Any
) -> None:
    """Write ``data`` atomically as TIFF, plus a JSON sidecar carrying pixel size and metadata."""
    import tifffile

    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data)
    write_json_atomic(
        sidecar_path(path),
        {
            "pixel_size_nm": pixel_size_nm,
            "shape": list(data.shape),
            "dtype": str(data.dtype),
            **metadata,
        },
    )


def _json_default(value: Any):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_csv(path, rows: list[dict]) -> None:
    """Write dict rows as CSV, atomically."""
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows(rows)


class ImageReadError(ValueError):
    """A file cannot be read as an image; the message names it."""


def read_image(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Pixels of a TIFF/PNG/JPEG/BMP file and its pixel size (nm) from a JSON sidecar, if any."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            data = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            data = iio.imread(path)
    except Exception as err:  # readers raise many types for corrupt files
        raise ImageReadError(f"{path}: cannot be read as an image ({err})") from err
    sidecar = sidecar_path(path)
    pixel_size = None
    if sidecar.is_file():
        try:
            pixel_size = json.loads(sidecar.read_text()).get("pixel_size_nm")
        except (json.JSONDecodeError, AttributeError):
            pixel_size = None
    return np.asarray(data), pixel_size


def as_gray(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """float32 2D image from uint8/uint16/float gray or RGB(A) data, with notes on conversions.
    Raises ValueError for other shapes or types and for NaN/infinite values."""
    image = np.asarray(image)
    notes = []
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        notes.append("RGB converted to gray (luminance)")
    if image.ndim != 2:
        raise ValueError(f"expected a 2D gray or RGB image, got shape {image.shape}")
    if image.dtype.kind not in "biuf":
        raise ValueError(f"unsupported image type {image.dtype}")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError("the image contains NaN or infinite values")
    return image, notes
