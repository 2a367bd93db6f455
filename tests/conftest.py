import os
from pathlib import Path

import pytest

SHARED_TIO2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tio2-sem"

if SHARED_TIO2.is_dir():
    os.environ.setdefault("DIFFRENDERGAN_TIO2_SEM_DIR", str(SHARED_TIO2))


@pytest.fixture
def tio2_dir() -> Path:
    if not SHARED_TIO2.is_dir():
        pytest.skip(f"real TiO2 SEM data not found at {SHARED_TIO2} (../shared/data/tio2-sem)")
    return SHARED_TIO2


def blob_sample(seed: int, shape=(128, 128), n: int = 8):
    """A synthetic image of bright disks (some touching) with instances and 3-class mask."""
    import numpy as np

    from napari_diffrendergan.labels import semantic_mask

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    instances = np.zeros(shape, np.uint16)
    for i in range(n):
        centre, radius = rng.uniform(10, min(shape) - 10, 2), rng.uniform(5, 10)
        disk = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2
        instances[disk & (instances == 0)] = i + 1
    image = 0.2 + 0.5 * (instances > 0) + rng.normal(0, 0.05, shape)
    return image.astype(np.float32), semantic_mask(instances, 1), instances


@pytest.fixture(scope="session")
def blob_dataset(tmp_path_factory) -> Path:
    from napari_diffrendergan.segmentation import write_dataset

    samples = [blob_sample(seed) for seed in range(8)]
    folder = tmp_path_factory.mktemp("datasets") / "Dataset001_Blobs"
    return write_dataset(folder, [s[0] for s in samples], [s[1] for s in samples])


@pytest.fixture(scope="session")
def tiny_model(blob_dataset, tmp_path_factory) -> Path:
    """A small nnU-Net trained for 60 iterations on blob images (about a minute on 2 cores)."""
    from napari_diffrendergan.segmentation import train_model

    out = tmp_path_factory.mktemp("models") / "blobs"
    train_model(blob_dataset, out, config="small", iterations=60, device="cpu")
    return out
