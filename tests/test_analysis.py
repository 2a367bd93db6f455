import numpy as np
import pytest

from napari_diffrendergan.analysis.particles import (
    MIN_SEED_AREA,
    instances_from_mask,
    particle_table,
)
from napari_diffrendergan.errors import InputError
from napari_diffrendergan.render.labels import semantic_mask


def disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


def test_touching_particles_separated_by_contour_are_recovered():
    truth = np.zeros((60, 90), np.uint16)
    truth[disk(truth.shape, (30, 25), 12)] = 1
    truth[disk(truth.shape, (30, 48), 12) & (truth == 0)] = 2  # touches particle 1
    truth[disk(truth.shape, (30, 75), 8)] = 3
    mask = semantic_mask(truth, 1)
    instances = instances_from_mask(mask, contour_thickness=1)
    assert instances.max() == 3
    for label in (1, 2, 3):  # each truth particle maps onto one predicted instance
        values, counts = np.unique(instances[truth == label], return_counts=True)
        assert counts.max() / counts.sum() > 0.97 and values[counts.argmax()] > 0
    assert ((instances > 0) == (mask > 0)).sum() / mask.size > 0.995


def test_watershed_splits_touching_disks_without_contour():
    mask = np.zeros((60, 90), np.uint8)
    mask[disk(mask.shape, (30, 28), 14) | disk(mask.shape, (30, 52), 14)] = 1
    assert instances_from_mask(mask).max() == 1
    assert instances_from_mask(mask, watershed=True).max() == 2


def test_watershed_keeps_an_elongated_particle_whole():
    """Maxima closer than ``split_distance`` along an ellipse's ridge are not particles."""
    yy, xx = np.mgrid[:60, :90]
    mask = ((((yy - 30) / 11.0) ** 2 + ((xx - 45) / 22.0) ** 2) <= 1).astype(np.uint8)
    assert instances_from_mask(mask, watershed=True).max() == 1
    assert instances_from_mask(mask, watershed=True, split_distance=3).max() > 1


def two_touching_cores():
    """Two disks merged into one particle-class core, the network's particle probability
    dipping to 0.55 along the line where they touch."""
    yy, xx = np.mgrid[:60, :90]
    left, right = disk((60, 90), (30, 30), 14), disk((60, 90), (30, 54), 14)
    mask = (left | right).astype(np.uint8)
    probability = np.where(left | right, 0.95, 0.02).astype(np.float32)
    probability[(np.abs(xx - 42) <= 1) & (mask > 0)] = 0.55
    return mask, probability, left, right


def test_cores_split_where_the_particle_probability_dips():
    mask, probability, left, right = two_touching_cores()
    assert instances_from_mask(mask).max() == 1  # argmax alone: one merged core
    split = instances_from_mask(mask, particle_probability=probability, core_threshold=0.7)
    assert split.max() == 2
    assert len(np.unique(split[left & ~right])) == 1 and len(np.unique(split[right & ~left])) == 1
    assert np.unique(split[left & ~right]) != np.unique(split[right & ~left])
    assert ((split > 0) == (mask > 0)).all()  # the split loses no pixel
    # a threshold under the dip keeps it whole; noise-sized confident specks seed nothing
    assert (
        instances_from_mask(mask, particle_probability=probability, core_threshold=0.5).max() == 1
    )
    speckled = np.where(mask > 0, 0.6, 0.0).astype(np.float32)
    speckled[30, 30] = speckled[30, 54] = 0.99
    assert instances_from_mask(mask, particle_probability=speckled, core_threshold=0.7).max() == 1


def test_confident_cores_smaller_than_the_seed_area_split_nothing():
    """One particle whose probability dips along an internal arc between two confident
    patches of ~50 px (facets, shading): whole by default, split with smaller seeds."""
    mask = disk((60, 60), (30, 30), 20).astype(np.uint8)
    probability = np.where(mask > 0, 0.85, 0.0).astype(np.float32)
    left, right = disk((60, 60), (30, 22), 4), disk((60, 60), (30, 38), 4)
    probability[left | right] = 0.97
    assert 40 < left.sum() < MIN_SEED_AREA
    whole = instances_from_mask(mask, particle_probability=probability, core_threshold=0.9)
    assert whole.max() == 1
    split = instances_from_mask(
        mask, particle_probability=probability, core_threshold=0.9, min_seed_area=40
    )
    assert split.max() == 2 and ((split > 0) == (mask > 0)).all()


def test_distance_watershed_keeps_cores_split_at_dips_apart():
    mask, probability, left, right = two_touching_cores()
    for distance in (6, 20):  # no sliver along the cut, and no re-merge by a wide window
        both = instances_from_mask(
            mask,
            watershed=True,
            split_distance=distance,
            min_area=1,
            particle_probability=probability,
            core_threshold=0.7,
        )
        assert both.max() == 2


def test_distance_watershed_after_dips_leaves_no_slivers():
    """Many cores split at noisy dips, then by the watershed: every piece is a basin of its
    own core (a basin flooding into a touching core left 1-3 px slivers)."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.random((96, 96)), 4)
    mask = (field > np.quantile(field, 0.4)).astype(np.uint8)
    probability = ndimage.gaussian_filter(rng.random((96, 96)), 2)
    probability = (probability - probability.min()) / np.ptp(probability)
    pieces = instances_from_mask(
        mask,
        watershed=True,
        split_distance=6,
        min_area=1,
        particle_probability=probability,
        core_threshold=0.6,
        min_seed_area=4,
    )
    dips_only = instances_from_mask(
        mask, min_area=1, particle_probability=probability, core_threshold=0.6, min_seed_area=4
    )
    assert pieces.max() >= dips_only.max() > 5
    assert np.bincount(pieces.ravel())[1:].min() >= 4


def test_watershed_keeps_a_particle_that_fills_the_image():
    assert instances_from_mask(np.ones((20, 20), np.uint8), watershed=True).max() == 1


def test_core_threshold_needs_a_matching_probability_map():
    mask, probability, _, _ = two_touching_cores()
    with pytest.raises(InputError, match="particle probability map"):
        instances_from_mask(mask, core_threshold=0.7)
    with pytest.raises(InputError, match="particle probability map"):
        instances_from_mask(mask, particle_probability=probability[:10], core_threshold=0.7)


def test_statistics_of_a_disk_and_a_rectangle_in_nm():
    labels = np.zeros((100, 100), np.uint16)
    labels[disk(labels.shape, (30, 30), 20)] = 1
    labels[70:80, 20:60] = 2  # 10 x 40 px
    table = particle_table(labels, pixel_size_nm=2.0)
    disk_row, rect = 0, 1
    assert table["equivalent_diameter_nm"][disk_row] == pytest.approx(80, rel=0.02)
    assert table["circularity"][disk_row] > 0.85
    assert table["feret_max_nm"][rect] == pytest.approx(2 * np.hypot(10, 40), rel=1e-6)
    assert table["feret_min_nm"][rect] == pytest.approx(20.0, rel=1e-6)
    assert table["area_nm2"][rect] == pytest.approx(400 * 4)
    assert table["circularity"][rect] < table["circularity"][disk_row]
    assert list(particle_table(labels))[1] == "area_px2"


def test_confidence_is_the_mean_foreground_probability_per_particle():
    labels = np.zeros((20, 20), np.uint16)
    labels[2:6, 2:6], labels[10:15, 10:12] = 4, 9
    foreground = np.full(labels.shape, 0.1, np.float32)
    foreground[2:4, 2:6], foreground[4:6, 2:6] = 1.0, 0.5  # particle 4: mean 0.75
    table = particle_table(labels, foreground=foreground)
    assert table["label"].tolist() == [4, 9]
    assert table["confidence"] == pytest.approx([0.75, 0.1])
    assert "confidence" not in particle_table(labels)


def test_empty_segmentation_gives_empty_table():
    table = particle_table(np.zeros((10, 10), np.uint16))
    assert all(len(column) == 0 for column in table.values())


def test_classic_otsu_watershed_splits_two_touching_disks():
    import numpy as np

    from napari_diffrendergan.analysis.particles import classic_instances

    yy, xx = np.mgrid[:80, :120]
    image = 0.1 + 0.7 * (
        ((yy - 40) ** 2 + (xx - 40) ** 2 < 20**2) | ((yy - 40) ** 2 + (xx - 76) ** 2 < 20**2)
    )
    image += np.random.default_rng(0).normal(0, 0.02, image.shape)
    image[5:7, 5:7] = 0.9  # a speck under the size floor
    instances = classic_instances(image)
    assert instances.max() == 2
    assert instances[40, 40] != instances[40, 76] and instances[6, 6] == 0


def test_classic_otsu_finds_dark_particles_with_dark_polarity():
    import numpy as np

    from napari_diffrendergan.analysis.particles import classic_instances

    yy, xx = np.mgrid[:80, :120]
    disks = ((yy - 40) ** 2 + (xx - 40) ** 2 < 20**2) | ((yy - 40) ** 2 + (xx - 76) ** 2 < 20**2)
    image = 0.8 - 0.6 * disks + np.random.default_rng(0).normal(0, 0.02, disks.shape)
    dark = classic_instances(image, polarity="dark")
    assert dark.max() == 2 and dark[40, 40] != dark[40, 76] and dark[40, 40] and dark[40, 76]
    assert not dark[~disks].any()
    bright = classic_instances(image)  # the bright default takes the background instead
    assert bright[40, 40] == 0 and bright[5, 5] > 0
    with pytest.raises(InputError, match="polarity"):
        classic_instances(image, polarity="auto")


@pytest.mark.parametrize("diameter", [17, 33, 60])
def test_seed_area_is_the_core_inside_the_contour_band_of_a_particle(diameter):
    import numpy as np

    from napari_diffrendergan.analysis.particles import seed_area_for
    from napari_diffrendergan.render.labels import PARTICLE, semantic_mask

    yy, xx = np.mgrid[:100, :100]
    disk = ((yy - 49.5) ** 2 + (xx - 49.5) ** 2 < (diameter / 2) ** 2).astype(np.int32)
    for contour in (1, 2, 4):
        core = int((semantic_mask(disk, contour) == PARTICLE).sum())
        assert abs(seed_area_for(diameter, contour) - core) <= 0.15 * core + 4


def test_seed_area_rule_edges():
    from napari_diffrendergan.analysis.particles import seed_area_for

    assert seed_area_for(3, 2) == 1  # a particle all contour still needs one seed pixel
    assert seed_area_for(20, 2) < seed_area_for(30, 2) and seed_area_for(30, 4) < seed_area_for(
        30, 2
    )
    for bad in (0, -5, float("nan")):
        with pytest.raises(InputError, match="diameter"):
            seed_area_for(bad, 2)
