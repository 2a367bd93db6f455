"""Files: atomic writes, TIFFs with a JSON sidecar (pixel size in nm, provenance), CSV, reading
images, groups of files that are complete or absent, and the lock of a folder being written.

Every write goes through :func:`atomic_path`: a temporary file beside the target, renamed over
it only when complete, with the permissions the user's umask asks for. Failing writes (full
disk, no permission) raise :class:`~napari_diffrendergan.errors.OutputError` naming the file.
Whatever writes a folder (a run, dataset, model, patch set or output folder) holds its
:class:`FolderLock`, so two writers never mix their files.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import socket
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from pickle import UnpicklingError  # the exception only: nothing here unpickles
from typing import Any

import numpy as np

from .errors import InputError, OutputError

INCOMPLETE_SUFFIX = ".incomplete"
LOCK_NAME = ".diffrendergan.lock"

log = logging.getLogger(__name__)


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
        tmp = _new_file_beside(path)
    except OSError as err:
        raise output_error(path, err) from err
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise output_error(path, err) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _new_file_beside(path: Path) -> Path:
    """A new empty file ``.<name>.<random>.part`` beside ``path``, created with mode 0666 so
    that the system applies the umask (and a folder's default ACL) as to any new file: no
    process-wide umask change to learn it. Writers that reopen it keep its mode."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path))


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


def relative_path(target: str | Path, folder: str | Path) -> str:
    """``target`` relative to ``folder`` (e.g. ``../patches``), how a file names another folder
    without recording where the user keeps their files; absolute only where no relative path
    exists (another drive on Windows)."""
    target, folder = Path(target).resolve(), Path(folder).resolve()
    try:
        return Path(os.path.relpath(target, folder)).as_posix()
    except ValueError:
        return str(target)


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


class FolderBusyError(OutputError):
    """Another process is writing the folder; the message names it and how to go on."""


class FolderLock:
    """The right to write ``folder``, held by one process at a time::

        with FolderLock(run_folder, "GAN training"):
            ...

    The lock is the file ``.diffrendergan.lock`` in the folder (a hidden name readers pass
    over), locked with ``flock``, which the system drops when its process ends however it
    ends, and holding who writes (pid, host, command, what, since): a second writer gets a
    :class:`FolderBusyError` naming them. A lock file left by a process that ended without
    releasing it (a crash) is taken over, with a note (:attr:`notes`, also logged). On release
    the file is removed, and the folder too if the lock created it and it is still empty.
    Where the file system has no ``flock``, the recorded process is probed instead (same host:
    alive or not; another host: assumed alive)."""

    def __init__(self, folder: str | Path, what: str):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self.notes: list[str] = []
        self._fd: int | None = None
        self._kernel_lock = False
        self._created = False

    def __enter__(self) -> FolderLock:
        self._created = not self.folder.exists()
        make_folder(self.folder)
        try:
            self._acquire()
        except BaseException:
            self._remove_created_folder()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def _acquire(self) -> None:
        for _ in range(20):  # retried when the file was replaced while we locked it
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as err:
                raise output_error(self.path, err) from err
            try:
                locked = _flock(fd)
                holder = _read_holder(fd)
                if locked is False or (locked is None and holder and _may_run(holder)):
                    raise FolderBusyError(self._busy(holder, locked is None))
                if not _same_file(fd, self.path):
                    os.close(fd)
                    continue
                if holder:
                    self._note_taken_over(holder)
                _write_holder(fd, self._record())
            except BaseException:
                os.close(fd)
                raise
            self._fd, self._kernel_lock = fd, bool(locked)
            return
        raise FolderBusyError(f"{self.folder} is in use: its lock keeps changing; try again")

    def release(self) -> None:
        """Give the folder back (also done when the ``with`` block ends)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        mine = False
        try:
            mine = _same_file(fd, self.path)
            if mine and self._kernel_lock:  # removed while locked: no one takes a dying lock
                self.path.unlink(missing_ok=True)
        except OSError:
            pass
        finally:
            os.close(fd)
        if mine and not self._kernel_lock:
            self.path.unlink(missing_ok=True)
        self._remove_created_folder()

    def _remove_created_folder(self) -> None:
        if self._created:
            with contextlib.suppress(OSError):  # only when empty: a failed start leaves no trace
                self.folder.rmdir()

    def _record(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": _command(),
            "what": self.what,
            "since": _now(),
        }

    def _busy(self, holder: dict, probed: bool) -> str:
        if not holder:
            who = "another process (starting just now)"
        else:
            who = (
                f"{holder.get('what', 'a writer')} (process {holder.get('pid')} on "
                f"{holder.get('host')}, {holder.get('command')}, since {holder.get('since')})"
            )
        gone = f"; if that process is gone, delete {self.path}" if probed else ""
        return (
            f"{self.folder} is in use by {who}: wait until it has finished or stop it, or "
            f"choose another folder{gone}"
        )

    def _note_taken_over(self, holder: dict) -> None:
        note = (
            f"{self.folder}: took over the lock left by process {holder.get('pid')} on "
            f"{holder.get('host')} ({holder.get('what')}, since {holder.get('since')}), which "
            "ended without releasing it; files it was writing are redone or replaced"
        )
        self.notes.append(note)
        log.warning(note)


def _flock(fd: int) -> bool | None:
    """Lock ``fd`` exclusively without waiting: True when locked, False when another holds it,
    None where the system or file system has no ``flock``."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: no locks on this file system
        return None
    return True


def _read_holder(fd: int) -> dict:
    """The record in a lock file (empty when there is none or it is unreadable)."""
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 1 << 16)
    try:
        holder = json.loads(data) if data.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"what": "an unknown writer", "pid": "?", "host": "?", "since": "?"}
    return holder if isinstance(holder, dict) else {}


def _write_holder(fd: int, record: dict) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(record) + "\n").encode())


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file ``fd`` (not removed or replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def _may_run(holder: dict) -> bool:
    """Without ``flock``: whether the recorded writer may still run (only a process of this
    host can be seen to have ended)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def _command() -> str:
    """The program and its subcommand, e.g. ``diffrendergan generate`` (no paths)."""
    words = [Path(sys.argv[0]).name] if sys.argv and sys.argv[0] else ["python"]
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-") and os.sep not in sys.argv[1]:
        words.append(sys.argv[1])
    return " ".join(words)


def _now() -> str:
    from datetime import datetime

    return datetime.now().astimezone().isoformat(timespec="seconds")


class ImageReadError(InputError):
    """A file cannot be read as an image; the message names it."""


IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def read_image(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Pixels of a TIFF/PNG/JPEG/BMP file and its pixel size (nm) if known
    (:func:`image_pixel_size`: the JSON sidecar's, else the TIFF metadata's).
    An :class:`ImageReadError` names the file when it is missing, a folder, not a readable
    image (corrupt, truncated, empty) or when its sidecar's pixel size is no pixel size."""
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder, not an image file")
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    problems: list[str] = []
    try:
        with _reader_messages(problems):
            data = np.asarray(_read_pixels(path))
    except Exception as err:  # readers raise many types for corrupt files
        problems.insert(0, str(err))
        data = None
    if data is None or data.size == 0 or data.dtype.kind not in "biuf":
        detail = "; ".join(problems) or ("no pixels" if data is not None else "unreadable")
        raise ImageReadError(
            f"{path} is not a readable image ({detail[:200]}): check that it is a complete "
            "TIFF, PNG, JPEG or BMP file"
        )
    return data, image_pixel_size(path)[0]


def _read_pixels(path: Path):
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    import imageio.v3 as iio

    return iio.imread(path)


@contextmanager
def _reader_messages(messages: list[str]) -> Iterator[None]:
    """Collect what tifffile logs (e.g. a corrupt page offset, after which it returns no
    pixels) into ``messages`` instead of printing it."""
    import logging

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger, handler = logging.getLogger("tifffile"), Collect(logging.WARNING)
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def read_sidecar(path: str | Path) -> dict:
    """The JSON sidecar of ``path`` (empty when there is none or it is unreadable)."""
    sidecar = sidecar_path(path)
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def image_pixel_size(path: str | Path) -> tuple[float | None, str]:
    """The pixel size (nm) of an image file and where it was found: the JSON sidecar (written
    by the plugin, or by a user correcting the instrument) before the file's own metadata
    (:func:`~napari_diffrendergan.data.scans.pixel_size_from_metadata`); ``(None, "")`` when
    neither has one. An :class:`ImageReadError` when the sidecar's is no pixel size."""
    size = _sidecar_pixel_size(Path(path))
    if size is not None:
        return size, f"sidecar {sidecar_path(path).name}"
    from .data.scans import pixel_size_from_metadata

    return pixel_size_from_metadata(path)


def chosen_pixel_size(path: str | Path, given: float | None = None) -> tuple[float | None, list]:
    """``given`` (nm, e.g. ``--pixel-size``) if any, else the file's (:func:`image_pixel_size`)
    with a note saying where it was found."""
    if given is not None:
        return positive_pixel_size(given), []
    size, found = image_pixel_size(path)
    return size, [f"pixel size {size:g} nm from the {found}"] if size else []


def _sidecar_pixel_size(path: Path) -> float | None:
    sidecar = sidecar_path(path)
    try:
        return positive_pixel_size(read_sidecar(path).get("pixel_size_nm"))
    except InputError as err:
        raise ImageReadError(f"{sidecar}: {err}: correct or delete this sidecar") from err


def file_message(path: str | Path, err: Exception) -> str:
    """``err``'s message naming ``path``: prefixed with it unless it names the file already."""
    message = " ".join(str(err).split())
    return message if str(path) in message else f"{path}: {message}"


def distinct_files(paths) -> list[Path]:
    """``paths`` with each file once (a file named twice, or by two spellings, keeps the
    first)."""
    distinct: dict[str, Path] = {}
    for path in map(Path, paths):
        distinct.setdefault(os.path.realpath(path), path)
    return list(distinct.values())


def output_names(paths: list[Path]) -> list[str]:
    """The name of each input's outputs: its stem, or stem + suffix where two inputs share a
    stem (``x.tif`` and ``x.png`` → ``x_tif``, ``x_png``), so no output overwrites another;
    an :class:`InputError` naming both files where that still leaves two equal names (the same
    file name in two folders)."""
    stems = Counter(p.stem for p in paths)
    names = [p.stem if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in paths]
    first: dict[str, Path] = {}
    for path, name in zip(paths, names, strict=True):
        if name in first:
            raise InputError(
                f"{first[name]} and {path} have the same name, so their outputs would "
                "overwrite each other in one folder: rename one of them, or run them with "
                "different output folders"
            )
        first[name] = path
    return names


def refuse_overwriting(inputs, outputs) -> None:
    """An :class:`InputError` naming the first of ``inputs`` that one of ``outputs`` would
    replace (e.g. ``x_mask.tif`` listed beside ``x.tif``, segmented into their folder)."""
    written = {os.path.realpath(path) for path in outputs}
    for path in inputs:
        if os.path.realpath(path) in written:
            raise InputError(
                f"{path} would be overwritten by an output of the same name: choose another "
                "output folder"
            )


def as_gray(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """float32 2D image from uint8/uint16/float gray or RGB(A) data, with notes on conversions.
    Raises :class:`InputError` for other shapes or types and for NaN/infinite values."""
    image = np.asarray(image)
    notes = []
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        notes.append("RGB converted to gray (luminance)")
    elif image.ndim == 3 and image.shape[-1] == 2:
        image = image[..., 0]
        notes.append("gray + alpha: the alpha channel left out")
    if image.ndim == 3:
        raise InputError(
            f"expected a 2D gray or RGB image, got a stack or multichannel image of shape "
            f"{image.shape}: save the plane to use as a 2D image of its own"
        )
    if image.ndim != 2:
        raise InputError(f"expected a 2D gray or RGB image, got shape {image.shape}")
    if image.dtype.kind not in "biuf":
        raise InputError(f"unsupported image type {image.dtype}")
    if not np.isfinite(image).all():
        raise InputError("the image contains NaN or infinite values")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise InputError("the image holds values beyond ±3.4e38: rescale it first")
    return image, notes


PIXEL_SIZE_RANGE_NM = (1e-3, 1e6)  # 1 pm (below atomic resolution) to 1 mm per pixel


def positive_pixel_size(value: float | None, what: str = "pixel size") -> float | None:
    """``value`` if it is a number of nm per pixel within :data:`PIXEL_SIZE_RANGE_NM` (or
    None); an :class:`InputError` otherwise."""
    if value is None:
        return None
    low, high = PIXEL_SIZE_RANGE_NM
    if not (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and np.isfinite(value)
        and low <= value <= high
    ):
        raise InputError(
            f"{what} must be a positive number of nm per pixel from {low:g} to {high:g} "
            f"(1 pm to 1 mm), got {value!r}"
        )
    return float(value)
