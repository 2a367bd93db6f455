"""Closing the loop on a calibrated prior (analysis/matching.py)."""

import copy

import numpy as np
import pytest

from napari_diffrendergan.analysis import calibration as cal
from napari_diffrendergan.analysis import matching
from test_calibration import PIXEL_NM, disk_scan, wire_scan

SCANS = {"spheres": lambda seed: disk_scan(seed)[0], "wires": wire_scan}


@pytest.fixture(scope="module")
def seen():
    return cal.calibrate([(f"s{i}", disk_scan(i)[0]) for i in range(3)], PIXEL_NM)


def test_corrected_scales_the_fits_the_median_and_the_density(seen):
    kept = copy.deepcopy(seen)
    out = matching.corrected(seen, 1.5, 0.8, 2.0)
    fit, before = out["size_fit"]["lognormal"], kept["size_fit"]["lognormal"]
    assert fit["median"] == pytest.approx(1.5 * before["median"])
    assert fit["sigma"] == before["sigma"]  # a spread in log units is no length
    assert fit["bic"] == before["bic"]
    assert out["median_diameter_nm"] == pytest.approx(0.8 * seen["median_diameter_nm"])
    assert out["median_diameter_px"] == pytest.approx(0.8 * seen["median_diameter_px"])
    assert out["density_per_um2"] == pytest.approx(2.0 * seen["density_per_um2"])
    assert out["estimates"] == seen["estimates"]
    two, two_before = out["size_fit"]["bimodal"], kept["size_fit"]["bimodal"]  # 90 disks
    for key in ("mean1", "std1", "mean2", "std2"):
        assert two[key] == pytest.approx(1.5 * two_before[key])
    assert two["weight2"] == two_before["weight2"]
    assert seen == kept  # a copy was changed


@pytest.mark.slow
@pytest.mark.parametrize("family", ["spheres", "wires"])
def test_matching_renders_the_prior_and_corrects_by_what_its_renders_show(family, monkeypatch):
    from napari_diffrendergan.progress import Monitor

    seen = cal.calibrate([(f"s{i}", SCANS[family](i)) for i in range(3)], PIXEL_NM)
    assert seen["family"] == family
    monkeypatch.setattr(matching, "SCANS", 6)
    stages = []
    monitor = Monitor(lambda done, total, message: stages.append(message))
    matched = matching.match_prior(seen, None, monitor)
    record, rounds = matched["matching"], matched["matching"]["rounds"]
    assert len(rounds) == matching.ROUNDS and all(r["polarity"] == "bright" for r in rounds)
    assert record["seen"]["median_diameter_nm"] == seen["median_diameter_nm"]
    last = rounds[-1]
    true, found = last["rendered"]["median_diameter_nm"], last["measured"]["median_diameter_nm"]
    assert last["diameter_factor"] == pytest.approx(true / found)
    assert matched["median_diameter_nm"] == pytest.approx(seen["median_diameter_nm"] * true / found)
    assert matched["estimates"] == seen["estimates"]  # what the scans showed stays on record
    # the fit is scaled, round by round, until the renders' sizes measure like the scans'
    fit = np.prod(
        [seen["median_diameter_nm"] / r["measured"]["median_diameter_nm"] for r in rounds]
    )
    assert record["fit_scale"] == pytest.approx(fit)
    lognormal = matched["size_fit"]["lognormal"]
    assert lognormal["median"] == pytest.approx(fit * seen["size_fit"]["lognormal"]["median"])
    # wires' density until the renders cover as much of the field; compact particles keep theirs
    cover = seen["estimates"]["coverage"]["value"]
    density = np.prod([cover / r["measured"]["coverage"] for r in rounds])
    expected = density if family == "wires" else 1.0
    assert record["density_scale"] == pytest.approx(expected)
    assert matched["density_per_um2"] == pytest.approx(seen["density_per_um2"] * expected)
    assert any(m.startswith("matching round 1 of") for m in stages)


def test_matching_needs_a_pixel_size():
    report = cal.calibrate([(f"s{i}", disk_scan(i)[0]) for i in range(3)])
    with pytest.raises(cal.CalibrationError, match="--pixel-size"):
        matching.match_prior(report)


def test_matching_stops_with_a_note_when_its_renders_show_nothing(seen, monkeypatch):
    def nothing(config, monitor):
        raise cal.CalibrationError("no particles found: nothing stands out")

    monkeypatch.setattr(matching, "_render_and_measure", nothing)
    matched = matching.match_prior(seen)
    assert matched["median_diameter_nm"] == seen["median_diameter_nm"]
    assert matched["matching"]["rounds"] == []
    assert "matching stopped" in matched["notes"][-1]
    assert seen["notes"] == [] or "matching stopped" not in seen["notes"][-1]


def crowded_left(seed: int) -> np.ndarray:
    """A 256 × 512 scan: disks in its left half, its right half empty background."""
    left = disk_scan(seed, shape=(256, 256), count=40)[0]
    rng = np.random.default_rng(seed + 100)
    right = (0.25 + rng.normal(0, 0.04, (256, 256))).astype(np.float32)
    return np.concatenate([left, right], axis=1)


@pytest.fixture(scope="module")
def half_empty(tmp_path_factory):
    """The report of scans half full, half empty (no matching round)."""
    scans = [(f"h{i}", crowded_left(i)) for i in range(3)]
    rounds, matching.ROUNDS = matching.ROUNDS, 0
    try:
        return scans, matching.measure_prior(scans, PIXEL_NM)
    finally:
        matching.ROUNDS = rounds


def test_the_prior_renders_the_density_of_the_particle_patches(half_empty):
    from napari_diffrendergan.data.patches import cut_patches

    scans, report = half_empty
    fields = report["fields"]
    kept = [cut_patches(image, name) for name, image in scans]
    expected = sum(p.role == "particle" for found, _, _ in kept for p in found)
    assert fields["count"] == expected > 0
    # the patches the GAN gets lie in the crowded halves or straddle them (stride 128): at
    # x = 0 (full) and 128 (half full), so 1.5 × the scans' coverage
    scans_coverage = report["estimates"]["coverage"]["value"]
    assert fields["coverage"] > 1.3 * scans_coverage
    assert fields["scale"] == pytest.approx(fields["coverage"] / scans_coverage)
    # the scans' density stays on record; the preset renders the fields'
    assert report["density_per_um2"] == report["estimates"]["density_per_um2"]["value"]
    config = cal.calibrated_config(report)
    prior = report["density_per_um2"] * fields["scale"]
    assert config.physical.density_per_um2 == pytest.approx(prior)
    assert "particle fields" in config.description
    # editing starts from the prior's density, and is not scaled twice
    assert cal.preset_values(report)["density_per_um2"] == pytest.approx(prior)
    untouched = cal.edited_config(report, {})
    assert untouched.physical.density_per_um2 == pytest.approx(prior)
    assert untouched.description == config.description  # "(in the particle fields)" kept
    typed = cal.edited_config(report, {"density_per_um2": 5.0})
    assert typed.physical.density_per_um2 == 5.0
    assert "particle fields" not in typed.description and "Edited by hand: density" in (
        typed.description
    )


def test_no_particle_field_leaves_the_density_as_measured():
    scans = [(f"s{i}", disk_scan(i, shape=(200, 200), count=20)[0]) for i in range(3)]
    report = matching.measure_prior(scans)  # no pixel size: no matching, fields still measured
    assert report["fields"] is None  # scans smaller than a 256 px field
    assert cal.fields_scale(report) == 1.0
    assert "0 field(s) of 256 px hold three whole particles" in report["notes"][-1]


@pytest.mark.slow
def test_the_shape_is_chosen_by_rendering_each_against_the_particle_fields(monkeypatch):
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.errors import Cancelled
    from napari_diffrendergan.gan import prior_choice
    from napari_diffrendergan.progress import Monitor

    monkeypatch.setattr(prior_choice, "FIELDS", 4)
    monkeypatch.setattr(matching, "MIN_SHAPE_FIELDS", 4)
    like = preset("sio2-him").resized(64, 64)
    like.scene.spp = 4
    scans = [(f"s{i}", disk_scan(i, median=8.0, count=60)[0]) for i in range(2)]
    report = cal.calibrate(scans, PIXEL_NM)
    fields = [x for _, _, x in matching.particle_fields(scans, "bright", 64)]
    assert len(fields) > 4 and all(f.shape == (64, 64) for f in fields)
    kept = copy.deepcopy(report)
    stages = []
    monitor = Monitor(lambda done, total, message: stages.append(message))
    chosen = matching.choose_shape(report, like, fields, "cpu", monitor)
    choice = chosen["shape_choice"]
    assert set(choice["fids"]) == set(prior_choice.SHAPES)
    assert all(np.isfinite(f) and f > 0 for f in choice["fids"].values())
    assert len(set(choice["fids"].values())) == 3  # each shape rendered, not one scored thrice
    assert chosen["family"] == min(choice["fids"], key=choice["fids"].get)
    assert choice["measured"] == report["family"] and choice["fields"] == 4
    assert cal.calibrated_config(chosen, like).meshes.library == chosen["family"]
    assert report == kept
    assert any(m.startswith("shape by rendering: prior 3 of 3 (spheres)") for m in stages)
    cancelled = Monitor()
    cancelled.cancel()
    with pytest.raises(Cancelled):
        matching.choose_shape(report, like, fields, "cpu", cancelled)


def test_wires_keep_their_shape_without_rendering(monkeypatch):
    from napari_diffrendergan.gan import prior_choice

    def never(*args, **kwargs):
        raise AssertionError("wires need no shape comparison")

    monkeypatch.setattr(prior_choice, "prior_fids", never)
    report = cal.calibrate([(f"w{i}", wire_scan(i)) for i in range(3)], PIXEL_NM)
    assert matching.choose_shape(report, None, [np.zeros((256, 256))]) is report


def test_shapes_are_compared_only_on_enough_fields_with_finite_fids(seen, monkeypatch):
    from napari_diffrendergan.gan import prior_choice

    fids = {"pebbles": float("nan"), "cubes": 250.0, "spheres": 200.0}
    monkeypatch.setattr(prior_choice, "prior_fids", lambda *args: dict(fids))
    few = [np.zeros((256, 256))] * (matching.MIN_SHAPE_FIELDS - 1)
    kept = matching.choose_shape(seen, None, few)
    assert kept["family"] == seen["family"] and "shape_choice" not in kept
    needed = matching.MIN_SHAPE_FIELDS
    assert (
        f"shapes not compared: {needed - 1} particle field(s), {needed} needed"
        in (kept["notes"][-1])
    )
    enough = few + [np.zeros((256, 256))]
    chosen = matching.choose_shape(seen, None, enough)
    assert chosen["family"] == "spheres"  # the lowest finite FID; NaN is no score
    assert np.isnan(chosen["shape_choice"]["fids"]["pebbles"])  # but stays on record
    fids.update(cubes=float("nan"), spheres=float("inf"))
    with pytest.raises(cal.CalibrationError, match="no shape's renders gave a finite FID"):
        matching.choose_shape(seen, None, enough)
