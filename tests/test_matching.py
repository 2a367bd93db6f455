"""Closing the loop on a calibrated prior (analysis/matching.py)."""

import numpy as np
import pytest

from napari_diffrendergan.analysis import calibration as cal
from napari_diffrendergan.analysis import matching
from test_calibration import PIXEL_NM, disk_scan


@pytest.fixture(scope="module")
def seen():
    return cal.calibrate([(f"s{i}", disk_scan(i)[0]) for i in range(3)], PIXEL_NM)


def test_corrected_scales_the_fits_the_median_and_the_density(seen):
    out = matching.corrected(seen, 1.5, 0.8, 2.0)
    fit, before = out["size_fit"]["lognormal"], seen["size_fit"]["lognormal"]
    assert fit["median"] == pytest.approx(1.5 * before["median"])
    assert fit["sigma"] == before["sigma"]  # a spread in log units is no length
    assert fit["bic"] == before["bic"]
    assert out["median_diameter_nm"] == pytest.approx(0.8 * seen["median_diameter_nm"])
    assert out["median_diameter_px"] == pytest.approx(0.8 * seen["median_diameter_px"])
    assert out["density_per_um2"] == pytest.approx(2.0 * seen["density_per_um2"])
    assert out["estimates"] == seen["estimates"]
    assert seen["size_fit"]["lognormal"]["median"] == before["median"]  # a copy was changed


@pytest.mark.slow
def test_matching_renders_the_prior_and_corrects_by_what_its_renders_hide(seen, monkeypatch):
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.progress import Monitor

    monkeypatch.setattr(matching, "SCANS", 6)
    stages = []
    monitor = Monitor(lambda done, total, message: stages.append(message))
    matched = matching.match_prior(seen, preset("sio2-him"), monitor)
    record = matched["matching"]
    assert len(record["rounds"]) == matching.ROUNDS
    assert record["seen"]["median_diameter_nm"] == seen["median_diameter_nm"]
    last = record["rounds"][-1]
    true, found = last["rendered"]["median_diameter_nm"], last["measured"]["median_diameter_nm"]
    assert last["diameter_factor"] == pytest.approx(true / found)
    assert matched["median_diameter_nm"] == pytest.approx(seen["median_diameter_nm"] * true / found)
    assert matched["estimates"] == seen["estimates"]  # what the scans showed stays on record
    # the fit and the density are scaled, round by round, until the renders measure like the
    # scans: sizes by their median, the density by the share of the field covered
    rounds = record["rounds"]
    fit = np.prod(
        [seen["median_diameter_nm"] / r["measured"]["median_diameter_nm"] for r in rounds]
    )
    cover = seen["estimates"]["coverage"]["value"]
    density = np.prod([cover / r["measured"]["coverage"] for r in rounds])
    assert (record["fit_scale"], record["density_scale"]) == pytest.approx((fit, density))
    assert matched["density_per_um2"] == pytest.approx(seen["density_per_um2"] * density)
    lognormal = matched["size_fit"]["lognormal"]
    assert lognormal["median"] == pytest.approx(fit * seen["size_fit"]["lognormal"]["median"])
    assert any(m.startswith("matching round 1 of") for m in stages)


def test_matching_stops_with_a_note_when_its_renders_show_nothing(seen, monkeypatch):
    def nothing(config, monitor):
        raise cal.CalibrationError("no particles found: nothing stands out")

    monkeypatch.setattr(matching, "_render_and_measure", nothing)
    matched = matching.match_prior(seen)
    assert matched["median_diameter_nm"] == seen["median_diameter_nm"]
    assert matched["matching"]["rounds"] == []
    assert "matching stopped" in matched["notes"][-1]
    assert seen["notes"] == [] or "matching stopped" not in seen["notes"][-1]
