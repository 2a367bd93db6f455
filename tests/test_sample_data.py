import numpy as np
import pytest

from napari_diffrendergan import sample_data
from napari_diffrendergan.sample_data import (
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


def test_offline_the_sample_fails_fast_in_one_line(tmp_path, monkeypatch):
    import socket
    import time

    import pooch

    def hang(*args, **kwargs):  # a network that drops packets: no answer for a long time
        time.sleep(60)
        raise TimeoutError("timed out")

    def no_download(*args, **kwargs):
        raise AssertionError("no download may be tried offline")

    monkeypatch.delenv(TIO2_ENV, raising=False)
    monkeypatch.setattr(pooch, "os_cache", lambda name: tmp_path)  # nothing downloaded yet
    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(pooch, "HTTPDownloader", no_download)
    started = time.perf_counter()
    with pytest.raises(SampleDataError) as failed:
        tio2_sem_sample()
    assert time.perf_counter() - started < sample_data.REACH_SECONDS + 0.5
    message = str(failed.value)
    assert "\n" not in message and len(message) < 300
    assert "cannot be reached" in message and TIO2_ENV in message and "Rendered TiO2" in message


@pytest.mark.slow
def test_offline_the_demo_scan_is_a_rendered_stand_in(tmp_path, monkeypatch):
    monkeypatch.setenv(TIO2_ENV, str(tmp_path))  # no files there: as offline
    with pytest.raises(SampleDataError, match="has no images/1908248.tif"):
        tio2_sem_sample()
    scan = sample_data.demo_scan()
    image, labels = scan.image, scan.instances
    assert image.shape == labels.shape == (712, 1024) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1 and labels.max() > 50
    assert scan.pixel_size_nm == TIO2_PIXEL_SIZE_NM
    assert "has no images/1908248.tif" in scan.source and scan.truth == sample_data.HIDDEN_TRUTH
    # the stand-in is the same every time (seeded), and darker where there are no particles
    np.testing.assert_array_equal(sample_data.demo_scan().image, image)
    assert image[labels == 0].mean() < image[labels > 0].mean()


@pytest.mark.slow
def test_the_rendered_sample_has_the_pixel_size_of_the_scans_it_imitates():
    layers = sample_data.rendered_sample()
    for data, kwargs, _ in layers:
        assert (
            kwargs["scale"] == (TIO2_PIXEL_SIZE_NM, TIO2_PIXEL_SIZE_NM) and kwargs["units"] == "nm"
        )
        assert kwargs["metadata"]["pixel_size_nm"] == TIO2_PIXEL_SIZE_NM
        assert data.shape == (256, 256)
