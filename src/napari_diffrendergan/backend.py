"""The one place that chooses the compute backend: Mitsuba variant and torch device.

Mitsuba's CPU variants (``llvm_ad_*``) need libLLVM >= 17; with an older LLVM the first
render aborts the whole process, so the library is located and its version checked
*before* Mitsuba or Dr.Jit is imported.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .errors import DiffRenderGANError

MIN_LLVM_MAJOR = 17
DEVICES = ("auto", "cpu", "cuda")
LLVM_INSTALL_HINT = (
    "Install libLLVM >= 17 (Debian/Ubuntu: `sudo apt-get install libllvm19`) or point "
    "DRJIT_LIBLLVM_PATH at such a libLLVM.so."
)


class BackendError(DiffRenderGANError):
    """No usable compute backend; the message says what to install or change."""


@dataclass(frozen=True)
class Backend:
    """A resolved compute backend."""

    variant: str  # Mitsuba variant, e.g. "llvm_ad_mono"
    torch_device: str  # "cpu" or "cuda"
    llvm_path: str | None  # libLLVM used by Dr.Jit's CPU backend (None on CUDA)

    def describe(self) -> str:
        where = f" (libLLVM: {self.llvm_path})" if self.llvm_path else ""
        return f"Mitsuba variant {self.variant}, torch device {self.torch_device}{where}"


def llvm_major_version(path: str | os.PathLike) -> int | None:
    """Major version encoded in a libLLVM file name (``libLLVM-19.so.1``, ``libLLVM.so.19.1``)."""
    name = Path(path).name
    match = re.search(r"libLLVM[-.]?(?:so\.)?(\d+)", name)
    if match:
        return int(match.group(1))
    real = Path(path).resolve().name
    match = re.search(r"libLLVM[-.]?(?:so\.)?(\d+)", real)
    return int(match.group(1)) if match else None


def _llvm_candidates() -> list[str]:
    patterns = [
        "/usr/lib/llvm-*/lib/libLLVM*.so*",
        "/usr/lib/x86_64-linux-gnu/libLLVM*.so*",
        "/usr/lib/aarch64-linux-gnu/libLLVM*.so*",
        "/usr/lib64/libLLVM*.so*",
        "/usr/local/lib/libLLVM*.so*",
        "/opt/homebrew/opt/llvm/lib/libLLVM.dylib",
        "/usr/local/opt/llvm/lib/libLLVM.dylib",
    ]
    found = [p for pattern in patterns for p in glob.glob(pattern)]
    by_ldconfig = ctypes.util.find_library("LLVM")
    if by_ldconfig:
        found.append(by_ldconfig)
    return found


def find_libllvm() -> tuple[str | None, list[str]]:
    """Newest libLLVM >= 17 on this machine, and the candidates rejected (for messages).

    ``DRJIT_LIBLLVM_PATH``, when set, is the only candidate considered.
    """
    override = os.environ.get("DRJIT_LIBLLVM_PATH")
    candidates = [override] if override else _llvm_candidates()
    usable: list[tuple[int, str]] = []
    rejected: list[str] = []
    for path in candidates:
        major = llvm_major_version(path)
        if major is not None and major >= MIN_LLVM_MAJOR and Path(path).exists():
            usable.append((major, path))
        else:
            rejected.append(f"{path} (LLVM {major if major is not None else 'unknown version'})")
    if not usable:
        return None, rejected
    return max(usable)[1], rejected


@cache
def cuda_available() -> bool:
    """True when an NVIDIA GPU with a working driver is visible."""
    try:
        result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "GPU" in result.stdout


def torch_device(device: str = "auto") -> str:
    """``cuda`` or ``cpu`` for a device choice in {auto, cpu, cuda}; errors say what to do."""
    device = (device or "auto").lower()
    if device not in DEVICES:
        raise BackendError(f"Unknown device {device!r}: choose one of {', '.join(DEVICES)}.")
    if device == "cuda" and not cuda_available():
        raise BackendError(
            "Device 'cuda' was requested but no NVIDIA GPU/driver is visible "
            "(nvidia-smi failed). Use --device cpu or auto."
        )
    return "cuda" if device == "cuda" or (device == "auto" and cuda_available()) else "cpu"


def resolve_backend(device: str = "auto") -> Backend:
    """Choose variant and torch device for ``device`` in {auto, cpu, cuda} without importing
    Mitsuba. Raises :class:`BackendError` with what to install when none is usable."""
    if torch_device(device) == "cuda":
        return Backend(variant="cuda_ad_mono", torch_device="cuda", llvm_path=None)
    path, rejected = find_libllvm()
    if path is None:
        seen = "; ".join(rejected) if rejected else "none found"
        raise BackendError(
            f"Mitsuba's CPU renderer needs libLLVM >= {MIN_LLVM_MAJOR} (found: {seen}). "
            + LLVM_INSTALL_HINT
        )
    return Backend(variant="llvm_ad_mono", torch_device="cpu", llvm_path=path)


_active: Backend | None = None


def activate(device: str = "auto"):
    """Resolve the backend, then import Mitsuba with that variant set; returns the module.

    Switching between CPU and CUDA in one process is allowed (Mitsuba supports it).
    """
    global _active
    backend = resolve_backend(device)
    if backend.llvm_path:
        os.environ["DRJIT_LIBLLVM_PATH"] = backend.llvm_path
    import mitsuba as mi

    if _active != backend:
        mi.set_variant(backend.variant)
        _active = backend
    return mi


def active_backend() -> Backend | None:
    """The backend set by the last :func:`activate`, if any."""
    return _active


def evaluate(*values) -> None:
    """Evaluate drjit ``values`` and wait for their kernels without holding the GIL. Dr.Jit runs
    kernels asynchronously, and the next operation that needs their results (``dr.compress``,
    ``.numpy()``) waits *holding* the GIL: a thread worker's 0.8-s trace froze napari for all of
    it (measured); ``dr.sync_thread`` waits with the GIL released."""
    import drjit as dr

    dr.eval(*values)
    dr.sync_thread()
