"""The CUDA path (``cuda_ad_mono`` + CUDA torch); skipped cleanly on machines without a GPU."""

import numpy as np
import pytest

from napari_diffrendergan.backend import cuda_available

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.slow,
    pytest.mark.skipif(not cuda_available(), reason="no NVIDIA GPU/driver visible (nvidia-smi)"),
]


def test_cuda_renders_match_the_cpu():
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.render.sampling import (
        AnnotatedRenderer,
        RenderValues,
        mid_range_values,
    )

    config = preset("tio2-sem").resized(64, 64)
    mid = RenderValues.named(*mid_range_values(config))
    images = {
        device: AnnotatedRenderer(config, device=device).render((3,), lambda p, r: mid)
        for device in ("cpu", "cuda")
    }
    np.testing.assert_array_equal(images["cpu"].instances, images["cuda"].instances)
    assert np.abs(images["cpu"].image - images["cuda"].image).mean() < 0.02  # Monte Carlo


def test_cuda_training_runs(tiny_run, tmp_path):
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.gan.run import GanRun, TrainingSettings
    from napari_diffrendergan.gan.training import train

    settings = TrainingSettings(epochs=1, iterations_per_epoch=3, device="cuda", fid_images=4)
    run = GanRun.create(tmp_path / "run", tiny_run.parent / "patches", preset("tio2-sem"), settings)
    metrics = train(run)
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1]
    assert all(np.isfinite(e["fid"]) for e in metrics["epochs"])
