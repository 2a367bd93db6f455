"""Reportable sizes on synthetic disks of known diameters."""

import json

import numpy as np
import pytest

from napari_diffrendergan.analysis import sizes
from napari_diffrendergan.analysis.particles import particle_table
from napari_diffrendergan.errors import InputError

MEDIAN_PX = 24.0  # true D50 of the lognormal diameters, px
SIGMA = 0.25


def draw_disks(shape, diameters, rng, centres=None):
    """Instance labels of non-overlapping disks (rejection sampling of uniform centres unless
    ``centres`` is given); returns the labels and the diameters actually drawn."""
    from skimage.draw import disk

    labels = np.zeros(shape, np.int32)
    placed_centres, placed_radii, drawn = [], [], []
    for i, diameter in enumerate(diameters):
        radius = diameter / 2
        for _ in range(200):
            if centres is None:
                centre = rng.uniform(radius + 1, np.array(shape) - radius - 1)
            else:
                centre = np.asarray(centres[i], float)
            if all(
                np.hypot(*(centre - c)) > radius + r + 2
                for c, r in zip(placed_centres, placed_radii, strict=True)
            ):
                break
            if centres is not None:
                centre = None
                break
        else:
            centre = None
        if centre is None:
            continue
        rr, cc = disk(tuple(centre), radius, shape=shape)
        labels[rr, cc] = len(drawn) + 1
        placed_centres.append(centre)
        placed_radii.append(radius)
        drawn.append(diameter)
    return labels, np.array(drawn)


def lognormal_diameters(rng, count, median=MEDIAN_PX):
    return median * np.exp(SIGMA * rng.standard_normal(count))


def test_touches_border_image_and_region():
    labels = np.zeros((20, 20), np.int32)
    labels[0:3, 5:8] = 1  # top edge
    labels[8:12, 8:12] = 2  # inside
    labels[14:20, 14:17] = 3  # bottom edge
    assert sizes.touches_border(labels) == {1: True, 2: False, 3: True}
    # region rows 5..15, cols 0..20: 2 inside, 3 cut by the region's bottom, 1 outside
    assert sizes.touches_border(labels, (5, 15, 0, 20)) == {2: False, 3: True}
    with pytest.raises(InputError, match="region"):
        sizes.touches_border(labels, (5, 30, 0, 20))


def test_flag_border_marks_particles_on_the_region_edge_of_a_whole_image_table():
    labels = np.zeros((20, 20), np.int32)
    labels[6:9, 5:8] = 1  # inside rows 5..15
    labels[12:15, 12:15] = 2  # cut by the region's bottom
    table = particle_table(labels)
    flagged = sizes.flag_border(table, labels, (5, 15, 0, 20))
    assert flagged["touches_border"].tolist() == [False, True]
    assert "touches_border" not in table  # the input is left as it was
    assert sizes.flag_border(table, labels)["touches_border"].tolist() == [False, False]


def test_size_report_keeps_border_particles_when_asked():
    labels = np.zeros((60, 60), np.int32)
    labels[0:10, 20:30] = 1  # on the border
    labels[30:40, 30:40] = 2
    table = sizes.sized_table(labels, 5.0)
    left_out = sizes.size_report(table, 5.0, 3600)
    kept = sizes.size_report(table, 5.0, 3600, keep_border=True)
    assert left_out["statistics"]["count"]["measured"] == 1
    assert kept["statistics"]["count"]["measured"] == 2
    assert kept["statistics"]["border_particles_included"] is True
    assert kept["nanomaterial_screen"]["count"]["measured"] == 2


def test_d50_confidence_interval_covers_the_true_d50():
    rng = np.random.default_rng(41)
    labels, drawn = draw_disks((1000, 1000), lognormal_diameters(rng, 300), rng)
    assert len(drawn) == 300
    table = sizes.sized_table(labels)
    stats = sizes.size_statistics([table])
    d50 = stats["sizes"]["equivalent_diameter"]["D50"]
    assert d50["ci_low"] <= MEDIAN_PX <= d50["ci_high"]
    assert d50["ci_high"] - d50["ci_low"] < 0.15 * MEDIAN_PX
    # minimum and maximum Feret of a disk bracket its diameter
    assert (
        stats["sizes"]["feret_min"]["D50"]["value"] <= stats["sizes"]["feret_max"]["D50"]["value"]
    )
    assert stats["count"]["measured"] == 300
    assert 1.0 <= stats["shape"]["aspect_ratio"]["median"] < 1.2
    # deterministic
    assert sizes.size_statistics([table]) == stats


def test_border_exclusion_removes_the_bias_of_cut_particles():
    rng = np.random.default_rng(7)
    shape = (900, 900)
    inner = lognormal_diameters(rng, 100, median=40)
    # 15 per side centred on the border lines: cut roughly in half
    edge = lognormal_diameters(rng, 60, median=40)
    t = np.tile(np.linspace(80, 820, 15), 4)
    side = np.repeat(np.arange(4), 15)
    centres = np.stack(
        [
            np.select([side == 0, side == 1], [0.0, 899.0], t),
            np.select([side == 2, side == 3], [0.0, 899.0], t),
        ],
        1,
    )
    labels, edge_drawn = draw_disks(shape, edge, rng, centres=centres)
    more, inner_drawn = draw_disks(shape, inner, rng)
    true_d50 = np.median(np.concatenate([edge_drawn, inner_drawn]))
    free = labels == 0
    labels[free & (more > 0)] = more[free & (more > 0)] + labels.max()
    table = sizes.sized_table(labels)
    assert table["touches_border"].sum() >= 50

    excluded = sizes.size_statistics([table])["sizes"]["equivalent_diameter"]["D50"]
    included = sizes.size_statistics([table], keep_border=True)["sizes"]["equivalent_diameter"]
    assert excluded["ci_low"] <= true_d50 <= excluded["ci_high"]
    assert included["D50"]["value"] < 0.92 * true_d50
    assert included["D50"]["value"] < excluded["ci_low"]


def test_floor_leaves_tiny_particles_out_but_counts_them():
    labels = np.zeros((60, 60), np.int32)
    labels[10:13, 10:13] = 1  # 9 px, below the 20 px floor
    labels[30:40, 30:40] = 2
    stats = sizes.size_statistics([sizes.sized_table(labels)], analysed_area_px=3600)
    assert stats["count"] == {"detected": 2, "touching_border": 0, "below_floor": 1, "measured": 1}
    assert stats["number_density_per_um2"] is None  # no pixel size
    with_nm = sizes.size_statistics(
        [sizes.sized_table(labels, 10.0)], pixel_size_nm=10.0, analysed_area_px=3600
    )
    assert with_nm["analysed_area_um2"] == pytest.approx(0.36)
    assert with_nm["number_density_per_um2"] == pytest.approx(1 / 0.36)
    assert with_nm["sizes"]["equivalent_diameter"]["D50"]["value"] == pytest.approx(
        2 * np.sqrt(100 / np.pi) * 10
    )


def disks_of(diameter_nm, pixel_size_nm, count, rng):
    diameters = np.full(count, diameter_nm / pixel_size_nm)
    return draw_disks((800, 800), diameters, rng)[0]


@pytest.mark.parametrize(
    ("small", "large", "nano"), [(40, 0, True), (0, 40, False), (16, 24, False), (24, 16, True)]
)
def test_eu_screen_on_60_and_160_nm_disks(small, large, nano):
    rng = np.random.default_rng(3)
    pixel = 5.0
    labels = disks_of(60, pixel, small, rng)
    drawn_small = int(labels.max())
    big = disks_of(160, pixel, large, rng)
    # no overlap between the two sets: only keep large disks entirely on free pixels
    for lab in np.unique(big[big > 0]):
        where = big == lab
        if (labels[where] == 0).all():
            labels[where] = labels.max() + 1
    table = sizes.sized_table(labels, pixel)
    screen = sizes.nanomaterial_screen([table], pixel)
    assert screen["share"] == pytest.approx(drawn_small / len(table["label"]))
    assert screen["nanomaterial"] is nano
    assert screen["ci_low"] <= screen["share"] <= screen["ci_high"]
    assert ("≥ 50 %" in screen["verdict"]) is nano
    assert any("2D projection" in c for c in screen["caveats"])
    assert any("5 nm" in c for c in screen["caveats"])
    json.dumps(screen, allow_nan=False)


def test_eu_screen_share_matches_construction():
    rng = np.random.default_rng(5)
    labels = disks_of(60, 5.0, 30, rng)
    table = sizes.sized_table(labels, 5.0)
    # a 60 nm disk's minimum Feret lies in 1-100 nm
    assert sizes.nanomaterial_screen([table], 5.0)["share"] == 1.0
    table160 = sizes.sized_table(disks_of(160, 5.0, 30, rng), 5.0)
    assert sizes.nanomaterial_screen([table160], 5.0)["share"] == 0.0
    pooled = sizes.nanomaterial_screen([table, table160], 5.0)
    assert pooled["share"] == pytest.approx(0.5)
    assert pooled["nanomaterial"] is True
    assert any("includes 50 %" in c for c in pooled["caveats"])


def test_eu_screen_undefined_without_pixel_size():
    table = sizes.sized_table(disks_of(60, 5.0, 5, np.random.default_rng(1)))
    screen = sizes.nanomaterial_screen([table], None)
    assert screen["share"] is None and screen["verdict"] is None
    assert screen["caveats"]


def test_compare_sizes_with_itself_and_with_a_known_scaling():
    rng = np.random.default_rng(11)
    labels, _ = draw_disks((800, 800), lognormal_diameters(rng, 150), rng)
    table = sizes.sized_table(labels, 2.0)
    same = sizes.compare_sizes([table], [table], 2.0)
    for key in ("D10_difference_percent", "D50_difference_percent", "D90_difference_percent"):
        assert same[key] == 0
    assert same["ks_statistic"] == 0
    assert same["wasserstein_nm"] == 0
    assert same["count_ratio"] == same["density_ratio"] == 1
    assert same["D50_difference"]["value"] == 0
    assert same["D50_difference"]["ci_low"] <= 0 <= same["D50_difference"]["ci_high"]
    assert same["D50_b_interval_covers_a"] is True

    scaled = dict(table)
    for name in ("equivalent_diameter_nm", "feret_max_nm", "feret_min_nm"):
        scaled[name] = table[name] * 1.1
    scaled["area_nm2"] = table["area_nm2"] * 1.21
    result = sizes.compare_sizes([table], [scaled], 2.0)
    assert result["D50_difference_percent"] == pytest.approx(10.0)
    d50 = result["a"]["D50"]["value"]
    assert result["D50_difference"]["value"] == pytest.approx(0.1 * d50)
    assert 0 < result["D50_difference"]["ci_low"] < 0.1 * d50 < result["D50_difference"]["ci_high"]
    assert result["ks_statistic"] > 0.1
    expected = 0.1 * table["equivalent_diameter_nm"].mean()
    assert result["wasserstein_nm"] == pytest.approx(expected)
    json.dumps(result, allow_nan=False)


def test_compare_sizes_two_samples_of_one_distribution_and_of_two():
    rng = np.random.default_rng(0)
    a, _ = draw_disks((900, 900), lognormal_diameters(rng, 120), rng)
    b, _ = draw_disks((900, 900), lognormal_diameters(rng, 120), rng)
    c, _ = draw_disks((900, 900), lognormal_diameters(rng, 120) * 1.3, rng)
    tables = [sizes.sized_table(x, 1.0) for x in (a, b, c)]
    alike = sizes.compare_sizes([tables[0]], [tables[1]], 1.0)
    unlike = sizes.compare_sizes([tables[0]], [tables[2]], 1.0)
    assert alike["D50_difference"]["ci_low"] < 0 < alike["D50_difference"]["ci_high"]
    assert unlike["D50_difference"]["ci_low"] > 0
    assert alike["ks_pvalue"] > 0.05 > unlike["ks_pvalue"]


def test_compare_sizes_applies_rules_to_both_sides():
    labels = np.zeros((50, 50), np.int32)
    labels[0:10, 0:10] = 1  # border
    labels[20:30, 20:30] = 2
    pred = labels.copy()
    pred[40:42, 40:42] = 3  # below floor
    result = sizes.compare_sizes([sizes.sized_table(labels)], [sizes.sized_table(pred)])
    assert result["count_a"]["measured"] == result["count_b"]["measured"] == 1
    assert result["count_b"]["below_floor"] == 1 and result["count_a"]["touching_border"] == 1
    assert result["D50_difference_percent"] == 0
    assert result["density_ratio"] == 1


def test_compare_sizes_of_two_pixel_sizes_in_nm():
    rng = np.random.default_rng(5)
    diameters = lognormal_diameters(rng, 80)
    coarse, drawn = draw_disks((600, 600), diameters, rng)
    fine, _ = draw_disks((1200, 1200), 2 * drawn, rng)  # the same particles at half the pixel
    result = sizes.compare_sizes(
        [sizes.sized_table(coarse, 4.0)], [sizes.sized_table(fine, 2.0)], 4.0, pixel_size_b_nm=2.0
    )
    assert result["unit"] == "nm"
    assert result["count_a"]["measured"] == result["count_b"]["measured"] == len(drawn)
    assert abs(result["D50_difference_percent"]) < 3
    assert result["D50_difference"]["ci_low"] < 0 < result["D50_difference"]["ci_high"]
    with pytest.raises(InputError, match="nm"):
        sizes.compare_sizes(
            [sizes.sized_table(coarse)], [sizes.sized_table(fine, 2.0)], None, pixel_size_b_nm=2.0
        )


def test_cumulative_distribution_band_covers_the_true_distribution():
    from scipy.stats import lognorm

    rng = np.random.default_rng(3)
    shape, scale = 0.3, 100.0
    values = lognorm.rvs(shape, scale=scale, size=400, random_state=rng)
    cdf = sizes.cumulative_distribution(values)
    assert np.all(np.diff(cdf["x"]) >= 0) and cdf["cdf"][-1] == 1
    truth = lognorm.cdf(cdf["x"], shape, scale=scale)
    assert np.all((cdf["low"] <= truth) & (truth <= cdf["high"]))
    half = (cdf["high"] - cdf["low"])[len(values) // 2] / 2
    assert half == pytest.approx(np.sqrt(np.log(40) / 800))


def test_output_is_strict_json_and_csv_rows():
    rng = np.random.default_rng(2)
    labels, _ = draw_disks((300, 300), lognormal_diameters(rng, 20), rng)
    stats = sizes.size_statistics(
        [sizes.sized_table(labels, 3.0)], pixel_size_nm=3.0, analysed_area_px=300 * 300
    )
    assert json.loads(json.dumps(stats, allow_nan=False)) == stats
    empty = sizes.size_statistics([sizes.sized_table(np.zeros((20, 20), np.int32))])
    json.dumps(empty, allow_nan=False)
    assert empty["sizes"]["equivalent_diameter"]["D50"]["value"] is None
    rows = sizes.statistics_rows(stats)
    d50 = next(r for r in rows if r["quantity"] == "equivalent_diameter D50")
    assert d50["value"] == stats["sizes"]["equivalent_diameter"]["D50"]["value"]
    assert d50["unit"] == "nm"
    assert {tuple(r) for r in rows} == {("quantity", "value", "ci_low", "ci_high", "unit")}


def test_tables_without_border_column_are_refused():
    table = particle_table(np.ones((30, 30), np.int32))
    with pytest.raises(InputError, match="sized_table"):
        sizes.size_statistics([table])


def rendered_spheres(scales, centres, width=384, field_width=8.0):
    """Instance labels of spheres of diameter ``scales`` (world units) at ``centres`` (x, y),
    ray-traced by the renderer's own label pass; and the pixels per world unit."""
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.render.scene import VirtualScene

    config = preset("sio2-him")
    config.meshes.count = len(scales)
    config.scene.width = config.scene.height = width
    config.scene.field_width = field_width
    config.scene.spp = 1
    scene = VirtualScene(config, device="cpu")
    phi = np.column_stack([centres, np.zeros(len(scales)), scales]).astype(np.float32)
    scene.place(phi)
    return scene.instances(), width / field_width


def spread_centres(scales, rng, field_width, on_border):
    """Non-overlapping centres inside the field, or (``on_border``) on its left/right edges."""
    centres = []
    half = field_width / 2
    for scale in scales:
        for _ in range(500):
            if on_border:
                centre = (rng.choice([-half, half]), rng.uniform(-half, half))
            else:
                centre = tuple(rng.uniform(-half + scale, half - scale, 2))
            gaps = [np.hypot(*np.subtract(centre, c)) - (scale + s) / 2 for c, s in centres]
            if all(g > 0.1 for g in gaps):
                centres.append((centre, scale))
                break
    return np.array([c for c, _ in centres]), np.array([s for _, s in centres])


@pytest.mark.slow
def test_rendered_spheres_sizes_recover_the_truth_and_border_cuts_bias_them():
    rng = np.random.default_rng(2)
    field = 8.0
    inside, inner_scales = spread_centres(
        0.6 * np.exp(0.2 * rng.standard_normal(16)), rng, field, False
    )
    edge, edge_scales = spread_centres(
        0.6 * np.exp(0.2 * rng.standard_normal(24)), rng, field, True
    )
    scales = np.concatenate([inner_scales, edge_scales])
    keep = np.ones(len(scales), bool)
    for i in range(len(inner_scales)):  # inside centres may still collide with edge ones
        gaps = np.hypot(*(edge - inside[i]).T) - (edge_scales + inner_scales[i]) / 2
        keep[i] = bool((gaps > 0.1).all())
    centres = np.concatenate([inside, edge])[keep]
    scales = scales[keep]
    labels, px_per_unit = rendered_spheres(scales, centres, field_width=field)
    table = sizes.sized_table(labels, 1.0)
    border = table["touches_border"]
    assert border.sum() >= 15 and (~border).sum() >= 12
    true_d50 = np.median(scales[: keep[: len(inner_scales)].sum()]) * px_per_unit

    whole = sizes.size_statistics([table], 1.0)["sizes"]["equivalent_diameter"]
    assert whole["D50"]["ci_low"] <= true_d50 <= whole["D50"]["ci_high"]
    assert whole["D50"]["value"] == pytest.approx(true_d50, rel=0.05)

    cut = sizes.size_statistics([table], 1.0, keep_border=True)["sizes"]["equivalent_diameter"]
    assert cut["D50"]["ci_high"] < true_d50  # half-spheres pull the median down
    assert cut["D10"]["ci_high"] < whole["D10"]["ci_low"]
