"""Files: atomic writes, TIFFs with a JSON sidecar (pixel size in nm, provenance), CSV, reading
images, and groups of files that are complete or absent.

Every write goes through :func:`atomic_path`: a temporary file beside the target, renamed over
it only when complete, with the permissions the user's umask asks for. Failing writes (full
disk, no permission) raise :class:`~napari_diffrendergan.errors.OutputError` naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from pickle import UnpicklingError  # the exception only: nothing here unpickles
from typing import Any

import numpy as np

from .errors import InputError, OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
INCOMPLETE_SUFFIX = ".incomplete"


def output_error(path: str | Path, err: OSError) -> OutputError:
    """An :class:`OutputError` naming ``path`` and what to do about ``err`` (writers report a
    full disk as ENOSPC, or as a short write: the free space tells)."""
    if err.errno == errno.ENOSPC or _disk_full(Path(path).parent):
        hint = "the disk is full: free some space or choose another output folder"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "no permission to write there: choose another output folder"
    else:
        hint = err.strerror or str(err)
    return OutputError(f"cannot write {path}: {hint}")


def _disk_full(folder: Path, margin: int = 1 << 20) -> bool:
    import shutil

    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def make_folder(path: str | Path) -> Path:
    """Create ``path`` (and parents); an :class:`OutputError` when that is impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:
        raise OutputError(f"cannot create folder {path}: a file of that name exists") from err
    except OSError as err:
        raise output_error(path, err) from err
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.close(fd)
    except OSError as err:
        raise output_error(path, err) from err
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as err:
        raise output_error(path, err) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def write_npz_atomic(path: str | Path, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parsed JSON of ``path``; an :class:`InputError` naming the file when it is missing or
    corrupt."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise InputError(f"{path}: {what} is missing") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: {what} is corrupt ({err})") from err


class UnsafeFileError(InputError):
    """A file holds objects other than weights, which could run code when loaded; refused."""


def _global_name(allowed) -> str:
    """The name a pickle gives an allowed global: ``(object, name)`` or the object's own."""
    return (
        allowed[1] if isinstance(allowed, tuple) else f"{allowed.__module__}.{allowed.__qualname__}"
    )


def _reason(err: Exception) -> str:
    """One line of a torch loading error (its weights-only part when there is one)."""
    text = str(err).split("WeightsUnpickler error:")[-1].split("Check the documentation")[0]
    return " ".join(text.split()) or type(err).__name__


def load_weights(path: str | Path, what: str, allowed: Sequence = ()) -> Any:
    """``torch.load`` of a file that may only hold tensors, plain containers, numbers and strings
    (and the ``allowed`` globals, as for ``torch.serialization.safe_globals``). A file holding
    anything else is refused before it is unpickled (:class:`UnsafeFileError`); a damaged one,
    or one not written by ``torch.save``, raises an :class:`InputError` naming it."""
    import torch

    path = Path(path)

    def refuse(reason: str) -> UnsafeFileError:
        return UnsafeFileError(
            f"{path} holds objects other than weights ({reason}); loading it could run code, so "
            f"it is refused. Ask its sender for a {what} written by napari-diffrendergan"
        )

    def damaged(err: Exception) -> InputError:
        return InputError(f"{path}: {what} is damaged or not a {what} ({_reason(err)})")

    try:  # reads the pickle's instructions without running them
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as err:  # torch raises many types for damaged files
        raise damaged(err) from err
    refused = sorted(set(needed) - {_global_name(item) for item in allowed})
    if refused:
        raise refuse(", ".join(refused))
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except UnpicklingError as err:  # an object of a type that is not allowed
        raise refuse(_reason(err)) from None
    except Exception as err:
        raise damaged(err) from err


def sidecar_path(path: str | Path) -> Path:
    """``image.tif`` -> ``image.json``: where a file's metadata lives."""
    return Path(path).with_suffix(".json")


def write_tiff(
    path: str | Path, data: np.ndarray, *, pixel_size_nm: float | None = None, **metadata: Any
) -> None:
    """Write ``data`` as TIFF with a JSON sidecar carrying pixel size and metadata. The sidecar
    is written first, so a TIFF that exists always has its metadata."""
    import tifffile

    write_json_atomic(
        sidecar_path(path),
        {
            "pixel_size_nm": pixel_size_nm,
            "shape": list(data.shape),
            "dtype": str(data.dtype),
            **metadata,
        },
    )
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data)


def write_figure(path: str | Path, figure, dpi: int = 100) -> None:
    """Save a matplotlib ``Figure`` as PNG, atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")


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


@contextmanager
def file_group(folder: str | Path, name: str) -> Iterator[list[Path]]:
    """Write several files that belong together (e.g. a mask, its instances and their CSV):
    append each path to the yielded list *before* writing it. A marker ``.<name>.incomplete``
    exists while they are written; if the block fails, every listed file is removed, so the
    group is complete or absent (after a crash, :func:`group_incomplete` tells)."""
    folder = make_folder(folder)
    marker = folder / f".{name}{INCOMPLETE_SUFFIX}"
    written: list[Path] = []
    write_text_atomic(marker, "")
    try:
        yield written
    except BaseException:
        for path in written:
            for leftover in (path, sidecar_path(path) if path.suffix == ".tif" else None):
                if leftover is not None and leftover.exists():
                    leftover.unlink()
        raise
    finally:
        marker.unlink(missing_ok=True)


def group_incomplete(folder: str | Path, name: str) -> bool:
    """True when a :func:`file_group` of that name was interrupted by a crash."""
    return (Path(folder) / f".{name}{INCOMPLETE_SUFFIX}").exists()


class ImageReadError(InputError):
    """A file cannot be read as an image; the message names it."""


IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def read_image(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Pixels of a TIFF/PNG/JPEG/BMP file and its pixel size (nm) from a JSON sidecar, if any."""
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder, not an image file")
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
    return np.asarray(data), read_sidecar(path).get("pixel_size_nm")


def read_sidecar(path: str | Path) -> dict:
    """The JSON sidecar of ``path`` (empty when there is none or it is unreadable)."""
    sidecar = sidecar_path(path)
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def as_gray(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """float32 2D image from uint8/uint16/float gray or RGB(A) data, with notes on conversions.
    Raises :class:`InputError` for other shapes or types and for NaN/infinite values."""
    image = np.asarray(image)
    notes = []
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        notes.append("RGB converted to gray (luminance)")
    if image.ndim != 2:
        raise InputError(f"expected a 2D gray or RGB image, got shape {image.shape}")
    if image.dtype.kind not in "biuf":
        raise InputError(f"unsupported image type {image.dtype}")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise InputError("the image contains NaN or infinite values")
    return image, notes


def positive_pixel_size(value: float | None, what: str = "pixel size") -> float | None:
    """``value`` if it is a positive, finite number of nm (or None); an :class:`InputError`
    otherwise."""
    if value is None:
        return None
    if not (isinstance(value, int | float) and np.isfinite(value) and 0 < value < 1e9):
        raise InputError(f"{what} must be a positive number of nm per pixel, got {value!r}")
    return float(value)
