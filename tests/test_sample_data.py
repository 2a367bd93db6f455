import numpy as np
import pytest

from napari_diffrendergan.data import sample_data
from napari_diffrendergan.data.sample_data import (
    TIO2_ENV,
    TIO2_PIXEL_SIZE_NM,
    SampleDataError,
    tio2_sem_sample,
)


def test_tio2_sample_from_local_folder(tio2_dir, monkeypatch):
    monkeypatch.setenv(TIO2_ENV, str(tio2_dir))
    (image, image_kwargs, kind), (labels, label_kwargs, label_kind) = tio2_sem_sample()
    assert (kind, label_kind) == ("image", "labels")
    assert image.shape == (712, 1024) and image.dtype == np.float32  # data bar left out
    assert image.min() >= 0 and image.max() <= 1
    assert labels.shape == image.shape and labels.max() > 10
    assert image_kwargs["scale"] == (TIO2_PIXEL_SIZE_NM, TIO2_PIXEL_SIZE_NM)
    assert image_kwargs["metadata"]["pixel_size_nm"] == TIO2_PIXEL_SIZE_NM
    assert "CC BY-NC-ND 4.0" in image_kwargs["metadata"]["attribution"]
    assert label_kwargs["scale"] == image_kwargs["scale"]


def test_every_shared_file_is_pinned(tio2_dir):
    import hashlib

    for path in sorted(tio2_dir.glob("*/*.tif")):
        key = f"{path.parent.name}/{path.name}"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert sample_data.REGISTRY[key] == f"sha256:{digest}"


def test_missing_local_file_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv(TIO2_ENV, str(tmp_path))
    with pytest.raises(SampleDataError, match="has no images/1908248.tif"):
        sample_data.read_tio2()
    with pytest.raises(SampleDataError, match="Unknown TiO2 SEM sample"):
        sample_data.tio2_file("images", "123")


@pytest.mark.slow
def test_offline_the_sample_is_a_rendered_stand_in(tmp_path, monkeypatch):
    monkeypatch.setenv(TIO2_ENV, str(tmp_path))  # no files there: as offline
    with pytest.warns(UserWarning, match="rendered stand-in"):
        (image, image_kwargs, _), (labels, label_kwargs, _) = tio2_sem_sample()
    assert image.shape == labels.shape == (712, 1024) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1 and labels.max() > 50
    assert image_kwargs["scale"] == (TIO2_PIXEL_SIZE_NM, TIO2_PIXEL_SIZE_NM)
    meta = image_kwargs["metadata"]
    assert "has no images/1908248.tif" in meta["source"]
    assert meta["truth"] == sample_data.HIDDEN_TRUTH
    # the stand-in is the same every time (seeded), and darker where there are no particles
    again = sample_data.demo_scan()
    np.testing.assert_array_equal(again.image, image)
    assert image[labels == 0].mean() < image[labels > 0].mean()
