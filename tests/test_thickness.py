from pathlib import Path

import numpy as np
import pytest

from napari_diffrendergan.analysis.thickness import (
    ThicknessError,
    analyse,
    local_thickness,
    local_thickness_reference,
    synthetic_wires,
)
from napari_diffrendergan.errors import InputError


def test_straight_strip_has_its_width():
    mask = np.zeros((60, 80), bool)
    mask[20:30, 5:75] = True  # 10 px wide
    thickness = local_thickness(mask)
    assert thickness[25, 40] == pytest.approx(10.0)
    assert (thickness[~mask] == 0).all() and (thickness[mask] > 0).all()


@pytest.mark.parametrize("width", [6, 9, 14, 21])
@pytest.mark.parametrize("bend", [0.0, 0.6])
def test_median_skeleton_thickness_within_one_pixel(width, bend):
    mask = synthetic_wires((200, 240), [width], seed=width, bend=bend)
    result = analyse(mask)
    assert abs(np.median(result.skeleton_values) - width) <= 1.0


def test_crossing_wires_keep_their_own_widths():
    mask = np.zeros((200, 200), bool)
    mask[95:103, 10:190] = True  # 8 px, horizontal
    mask[10:190, 40:56] = True  # 16 px, vertical
    result = analyse(mask)
    assert result.summary()["n_wires"] == 1  # crossing wires form one component
    thickness = result.thickness
    assert thickness[99, 150] == pytest.approx(8.0, abs=1)
    assert thickness[150, 48] == pytest.approx(16.0, abs=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_method_equals_exact_reference(seed):
    rng = np.random.default_rng(seed)
    mask = synthetic_wires((90, 110), rng.uniform(4, 14, 4), seed=seed, bend=0.5)
    mask |= rng.random(mask.shape) > 0.985  # ragged speckles and odd shapes
    fast = local_thickness(mask)
    exact = local_thickness_reference(mask)
    np.testing.assert_array_equal(fast, exact)


def test_pixel_size_scales_to_nm():
    mask = synthetic_wires((100, 100), [10], seed=3)
    px = analyse(mask)
    nm = analyse(mask, pixel_size_nm=7.5)
    np.testing.assert_allclose(nm.thickness, px.thickness * 7.5, rtol=1e-6)
    assert nm.unit == "nm" and px.unit == "px"
    rows, rows_px = nm.per_wire(), px.per_wire()
    assert rows[0]["median_thickness_nm"] == pytest.approx(7.5 * rows_px[0]["median_thickness_px"])
    assert rows[0]["skeleton_length_nm"] == pytest.approx(7.5 * rows_px[0]["skeleton_length_px"])
    assert rows[0]["area_nm2"] == pytest.approx(7.5**2 * rows_px[0]["area_px2"])


def test_skeleton_distribution_is_not_biased_toward_thick_wires():
    mask = synthetic_wires((300, 300), [6, 24], seed=5)
    result = analyse(mask)
    assert np.median(result.skeleton_values) < np.median(result.pixel_values)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.zeros((20, 20)), "empty"),
        (np.ones((20, 20)), "foreground everywhere"),
        (np.ones((4, 20, 20)), "2D mask"),
        (np.full((20, 20), np.nan), "NaN"),
    ],
)
def test_bad_masks_get_clear_messages(mask, message):
    with pytest.raises(ThicknessError, match=message):
        analyse(mask)
    for bad in (-1, 0, 1e300, float("nan")):
        with pytest.raises(InputError, match="pixel size"):
            analyse(synthetic_wires((50, 50), [5]), pixel_size_nm=bad)


def test_same_convention_as_localthickness_package():
    """localthickness returns the radius D; on a clean strip both give thickness 2 D."""
    import localthickness

    mask = np.zeros((50, 120), bool)
    mask[10:23, 10:110] = True  # 13 px wide
    ours = local_thickness(mask)
    theirs = 2 * localthickness.local_thickness(mask)
    np.testing.assert_allclose(ours[12:21, 20:100], theirs[12:21, 20:100])
    chosen = local_thickness(mask, scale=2.0, method="localthickness")
    np.testing.assert_allclose(chosen, 2 * np.where(mask, theirs, 0))


def test_method_is_a_choice_recorded_in_the_outputs(tmp_path):
    import json

    from napari_diffrendergan.analysis.thickness import write_outputs

    mask = synthetic_wires((80, 80), [9, 14])
    exact = analyse(mask, 5.0)
    package = analyse(mask, 5.0, method="localthickness")
    assert exact.summary()["method"] == "exact"
    assert package.summary()["method"] == "localthickness"
    assert not np.array_equal(exact.thickness, package.thickness)
    assert abs(package.summary()["median"] - exact.summary()["median"]) <= 2 * 5.0
    paths = write_outputs(package, tmp_path, "w")
    sidecar = json.loads(Path(paths["thickness"]).with_suffix(".json").read_text())
    assert sidecar["summary"]["method"] == "localthickness"
    with pytest.raises(InputError, match="unknown method 'fast'.*exact, localthickness"):
        analyse(mask, method="fast")


def test_cli_method_option(tmp_path, capsys):
    import tifffile

    from napari_diffrendergan.cli import main

    tifffile.imwrite(tmp_path / "w.tif", synthetic_wires((80, 80), [10]).astype(np.uint8))
    out = tmp_path / "out"
    assert (
        main(
            ["thickness", str(tmp_path / "w.tif"), "--out", str(out), "--method", "localthickness"]
        )
        == 0
    )
    assert "localthickness" in (out / "w_thickness.json").read_text()
    with pytest.raises(SystemExit):
        main(["thickness", str(tmp_path / "w.tif"), "--out", str(out), "--method", "fast"])
