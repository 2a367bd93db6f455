import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

from napari_diffrendergan.config import (
    ConfigError,
    MaterialConfig,
    PlacementConfig,
    SizeDistribution,
    preset,
)
from napari_diffrendergan.render.placement import (
    PlacementError,
    sample_positions,
    sample_sizes,
    transformation_tensor,
)


def test_lognormal_sizes_follow_their_distribution():
    rng = np.random.default_rng(1)
    size = SizeDistribution("lognormal", {"median": 1.2, "sigma": 0.3}, 0.001, 100)
    values = sample_sizes(size, 4000, rng)
    result = stats.kstest(values, stats.lognorm(s=0.3, scale=1.2).cdf)
    assert result.pvalue > 0.01
    assert stats.kstest(values, stats.lognorm(s=0.3, scale=1.5).cdf).pvalue < 1e-6


def test_normal_and_bimodal_sizes():
    rng = np.random.default_rng(2)
    normal = sample_sizes(
        SizeDistribution("normal", {"mean": 1.0, "std": 0.1}, 0.01, 10), 4000, rng
    )
    assert stats.kstest(normal, stats.norm(1.0, 0.1).cdf).pvalue > 0.01
    bimodal = SizeDistribution(
        "bimodal",
        {"mean1": 0.5, "std1": 0.05, "mean2": 1.5, "std2": 0.05, "weight2": 0.25},
        0.01,
        10,
    )
    values = sample_sizes(bimodal, 4000, rng)
    assert np.mean(values > 1.0) == pytest.approx(0.25, abs=0.03)
    assert np.median(values[values > 1.0]) == pytest.approx(1.5, abs=0.01)


def test_sizes_are_clipped():
    rng = np.random.default_rng(3)
    values = sample_sizes(SizeDistribution("normal", {"mean": 1.0, "std": 2.0}, 0.5, 1.5), 500, rng)
    assert values.min() >= 0.5 and values.max() <= 1.5


def test_poisson_disk_minimum_distance_holds():
    rng = np.random.default_rng(4)
    placement = PlacementConfig("poisson-3d", agglomerates=3, min_distance=0.9, slab_height=1.0)
    points = sample_positions(placement, 40, 10.0, rng)
    assert points.shape == (40, 3)
    assert pdist(points).min() >= 0.9 - 1e-9
    assert points[:, 2].min() >= 0 and points[:, 2].max() <= 1.0


@pytest.mark.parametrize("extent, height", [(8.8, 1.0), (8.8, 0.0), (8.8, 0.3), (2.2, 1.0)])
def test_poisson_disk_fills_the_slab(extent, height):
    """Maximal sampling: no point of the slab is 2 radii from every sample (thin and small
    slabs included), and no two samples are closer than the radius."""
    from scipy.spatial import cKDTree

    from napari_diffrendergan.render.placement import poisson_disk_points

    radius = 0.85
    points = poisson_disk_points(extent, height, radius, np.random.default_rng(8))
    assert pdist(points).min() >= radius - 1e-9
    assert np.abs(points[:, :2]).max() <= extent / 2
    assert points[:, 2].min() >= 0 and points[:, 2].max() <= height
    grid = np.linspace(-extent / 2, extent / 2, 40)
    queries = np.stack(np.meshgrid(grid, grid, [height / 2]), -1).reshape(-1, 3)
    gaps = cKDTree(points).query(queries)[0]
    assert np.quantile(gaps, 0.99) < 2 * radius


def test_agglomerates_are_tighter_than_random():
    rng = np.random.default_rng(5)
    clustered = sample_positions(PlacementConfig("poisson-3d", agglomerates=2), 30, 10.0, rng)
    scattered = sample_positions(PlacementConfig("random-3d"), 30, 10.0, rng)

    def mean_nearest(p):
        d = np.linalg.norm(p[:, None, :2] - p[None, :, :2], axis=-1)
        np.fill_diagonal(d, np.inf)
        return d.min(axis=1).mean()

    assert mean_nearest(clustered) < mean_nearest(scattered)


def test_random_2d_lies_on_the_stage():
    rng = np.random.default_rng(6)
    placement = PlacementConfig("random-2d", margin=0.1)
    points = sample_positions(placement, 200, 4.0, rng)
    assert (points[:, 2] == 0).all()
    assert np.abs(points[:, :2]).max() <= 2.4


def test_crowded_poisson_placement_says_what_to_change():
    rng = np.random.default_rng(7)
    with pytest.raises(PlacementError, match="min_distance"):
        sample_positions(
            PlacementConfig("poisson-3d", min_distance=3.0, slab_height=0.5), 100, 4.0, rng
        )


def test_transformation_tensor_is_seeded():
    config = preset("tio2-sem")
    phi = transformation_tensor(config, 3, seed=11)
    assert phi.shape == (3, config.meshes.count, 4) and phi.dtype == np.float32
    np.testing.assert_array_equal(phi, transformation_tensor(config, 3, seed=11))
    assert not np.array_equal(phi, transformation_tensor(config, 3, seed=12))


def test_transformation_tensor_round_trip(tmp_path):
    from napari_diffrendergan.render.placement import (
        load_transformation_tensor,
        save_transformation_tensor,
    )

    phi = transformation_tensor(preset("agnw-sem"), 4, seed=9)
    save_transformation_tensor(tmp_path / "phi.npz", phi, seed=9)
    loaded, seed = load_transformation_tensor(tmp_path / "phi.npz")
    np.testing.assert_array_equal(loaded, phi)
    assert seed == 9
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(PlacementError, match="bad.npz: not a transformation tensor"):
        load_transformation_tensor(tmp_path / "bad.npz")


def test_dense_constellations_form_one_central_agglomerate():
    """With ``dense_fraction`` 1 every constellation is one agglomerate seeded in the field's
    central half: its particles crowd closer to their centre than three agglomerates' do."""
    rng = np.random.default_rng(9)

    def spread(placement):
        points = sample_positions(placement, 26, 8.0, rng)[:, :2]
        return np.linalg.norm(points - points.mean(0), axis=1).mean(), points

    three = [spread(PlacementConfig("poisson-3d", agglomerates=3))[0] for _ in range(20)]
    dense = [
        spread(PlacementConfig("poisson-3d", agglomerates=3, dense_fraction=1.0)) for _ in range(20)
    ]
    assert np.mean([d for d, _ in dense]) < 0.7 * np.mean(three)
    # the seed lies in the central half, so the agglomerate's centre does too (within a radius)
    assert all(np.abs(p.mean(0)).max() < 8.0 * 1.1 / 4 + 1.5 for _, p in dense)


def test_dense_fraction_is_validated():
    data = preset("tio2-sem").to_dict()
    data["placement"]["dense_fraction"] = 1.5
    with pytest.raises(ConfigError, match=r"placement.dense_fraction must lie in \[0, 1\]"):
        MaterialConfig.from_dict(data)
