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
