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

    from napari_diffrendergan.render.labels import semantic_mask

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
    from napari_diffrendergan.data.dataset import NnunetDataset

    samples = [blob_sample(seed) for seed in range(8)]
    folder = tmp_path_factory.mktemp("datasets") / "Dataset001_Blobs"
    NnunetDataset(folder).write(
        [s[0] for s in samples], [s[1] for s in samples], contour_thickness=1
    )
    return folder


@pytest.fixture(scope="session")
def tiny_model(blob_dataset, tmp_path_factory) -> Path:
    """A small nnU-Net trained for 60 iterations on blob images (about a minute on 2 cores)."""
    from napari_diffrendergan.segment.training import train_model

    out = tmp_path_factory.mktemp("models") / "blobs"
    train_model(blob_dataset, out, config="small", iterations=60, device="cpu")
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A DiffRenderGAN run trained for 1 epoch × 3 iterations on 64-px blob patches (7 nm per
    pixel), beside its patch set ``patches`` (6 particle + 3 background patches); ~30 s."""
    import numpy as np

    from napari_diffrendergan.config import preset
    from napari_diffrendergan.data.patches import Patch, PatchSet
    from napari_diffrendergan.gan.run import GanRun, TrainingSettings
    from napari_diffrendergan.gan.training import train

    work = tmp_path_factory.mktemp("gan")
    particles = [(blob_sample(s, (64, 64), n=3)[0] * 255).clip(0, 255) for s in range(6)]
    rng = np.random.default_rng(0)
    backgrounds = [(50 + rng.normal(0, 5, (64, 64))).astype(np.float32) for _ in range(3)]
    roles = ["particle"] * len(particles) + ["background"] * len(backgrounds)
    listed = [Patch("blobs", 0, 0, 64, role, 0.0, 3) for role in roles]
    patches = PatchSet.save(work / "patches", listed, particles + backgrounds, 7.0, {}).folder
    settings = TrainingSettings(
        epochs=1,
        iterations_per_epoch=3,
        device="cpu",
        fid_images=4,
    )
    run = GanRun.create(work / "run", patches, preset("tio2-sem"), settings)
    train(run)
    return run.folder


@pytest.fixture
def shapes_scored(monkeypatch) -> list:
    """The shape comparison replaced by fixed FIDs (cubes lowest; the real one:
    test_matching.py), matching rounds off and 3 particle fields enough; the list records each
    call's (shapes, fields, pixel size, device)."""
    from napari_diffrendergan.analysis import matching
    from napari_diffrendergan.gan import prior_choice

    asked = []

    def scored(priors, fields, pixel_nm, device, monitor):
        assert all(config.meshes.library == shape for shape, config in priors.items())
        asked.append((tuple(priors), len(fields), pixel_nm, device))
        return {"pebbles": 300.0, "cubes": 200.0, "spheres": 250.0}

    monkeypatch.setattr(prior_choice, "prior_fids", scored)
    monkeypatch.setattr(matching, "ROUNDS", 0)
    monkeypatch.setattr(matching, "MIN_SHAPE_FIELDS", 3)
    return asked
