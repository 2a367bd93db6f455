"""Closing the loop on a calibrated scene prior (docs/calibration.md, "Matching").

What a projection shows of the particles is not all that is there: particles inside
agglomerates are hidden by others, the measurement keeps only whole particles with a free
outline, and blur widens thin ones. So the prior measured from the scans is rendered (scenes
with known truth, :mod:`..render.truth`), the renders are measured exactly as the scans were,
and the median diameter is multiplied by the ratio of what the renders hold to what their
measurement found. The prior's size distribution is scaled until its renders measure like the
scans (its fit alone need not: a lognormal's median is not the sample median of a skewed
sample); for wires, whose count from their ends is weak, the density is scaled until the renders
cover as much of the field as the scans. Compact particles keep the measured density: how many
a projection hides depends on the placement, which the prior borrows from a preset rather than
measures (both corrections tried made the density worse on the rendered truth). The next round
renders the corrected prior from the same seed. No manual mask is involved.
"""

from __future__ import annotations

import copy
import math

from ..config import SIZE_LENGTHS
from .calibration import NO_PIXEL_SIZE, CalibrationError, calibrate, calibrated_config

ROUNDS = 2
SCANS = 48  # rendered scenes per round: fewer leave the factors to chance (docs/calibration.md)
SPP = 4
SEED = 1000  # the same scenes' draws in every round, apart from the scans' truth scenes


def measure_prior(scans, pixel_size_nm=None, like=None, monitor=None) -> dict:
    """:func:`~.calibration.calibrate` ``scans``, then, with a pixel size, :func:`match_prior`:
    the report a preset is made from (``calibrate``, the Scene prior dock)."""
    from ..progress import ensure

    monitor = ensure(monitor)
    report = calibrate(scans, pixel_size_nm, monitor.stage("measuring the scans"))
    return match_prior(report, like, monitor) if pixel_size_nm else report


def match_prior(report: dict, like=None, monitor=None) -> dict:
    """``report`` (of :func:`~.calibration.calibrate`, with a pixel size) with its median
    diameter, size fit and density corrected by rendering the prior that ``like``
    (:func:`~.calibration.calibrated_config`) makes of it; ``matching`` says by how much,
    round by round, and what was seen. The measured ``estimates`` are left as they are."""
    from ..progress import ensure

    if not report.get("pixel_size_nm"):
        raise CalibrationError(NO_PIXEL_SIZE)
    monitor = ensure(monitor)
    matched, rounds, stopped = report, [], None
    fit_scale = density_scale = 1.0
    for index in range(ROUNDS):
        stage = monitor.stage(f"matching round {index + 1} of {ROUNDS}")
        try:
            found = _render_and_measure(calibrated_config(matched, like), stage)
        except CalibrationError as err:
            stopped = f"matching stopped: its renders showed {err}"
            break
        rounds.append(found)
        fit_scale *= report["median_diameter_nm"] / found["measured"]["median_diameter_nm"]
        if report["family"] == "wires":
            density_scale *= _coverage(report) / found["measured"]["coverage"]
        matched = corrected(report, fit_scale, found["diameter_factor"], density_scale)
    matched = copy.deepcopy(matched)
    if stopped:
        matched["notes"].append(stopped)
    matched["matching"] = {
        "seen": {
            "median_diameter_nm": report["median_diameter_nm"],
            "density_per_um2": report["density_per_um2"],
            "coverage": _coverage(report),
        },
        "fit_scale": fit_scale,
        "density_scale": density_scale,
        "rounds": rounds,
        "diameter_factor": rounds[-1]["diameter_factor"] if rounds else 1.0,
    }
    return matched


def record(report: dict) -> dict | None:
    """The report's ``matching`` record, if matching corrected anything."""
    matching = report.get("matching")
    return matching if matching and matching["rounds"] else None


def _coverage(report: dict) -> float:
    return report["estimates"]["coverage"]["value"]


def _render_and_measure(config, monitor) -> dict:
    """The truth of :data:`SCANS` scenes of ``config`` and what calibrating them finds."""
    from ..render.truth import render_truth_scans, true_median_and_density

    pixel = config.physical.pixel_size_nm
    polarity = config.physical.polarity
    scans = render_truth_scans(config, polarity, SEED, SCANS, spp=SPP, monitor=monitor)
    monitor.report(SCANS, SCANS + 1, "measuring the renders")
    images = [(f"render {i}", scan.image) for i, scan in enumerate(scans)]
    measured = calibrate(images, pixel, monitor.silent())
    wires = config.meshes.library == "wires"
    if measured["polarity"] != polarity or (measured["family"] == "wires") != wires:
        raise CalibrationError(
            f"{measured['polarity']} {measured['family']}, not the prior's {polarity} "
            f"{config.meshes.library}"
        )
    median, density = true_median_and_density(scans, pixel, wires)
    if not math.isfinite(median):
        raise CalibrationError("no whole particle")
    return {
        "rendered": {"median_diameter_nm": median, "density_per_um2": density},
        "measured": {
            "median_diameter_nm": measured["median_diameter_nm"],
            "density_per_um2": measured["density_per_um2"],
            "coverage": _coverage(measured),
        },
        "polarity": measured["polarity"],
        "diameter_factor": median / measured["median_diameter_nm"],
    }


def corrected(report: dict, fit_scale: float, diameter_factor: float, density_scale: float) -> dict:
    """``report`` with every diameter of its size fits multiplied by ``fit_scale``, its median
    diameter by ``diameter_factor``, its density by ``density_scale``."""
    out = copy.deepcopy(report)
    for fit in out["size_fit"].values():
        if isinstance(fit, dict):
            fit.update({k: v * fit_scale for k, v in fit.items() if k in SIZE_LENGTHS})
    out["median_diameter_nm"] *= diameter_factor
    out["median_diameter_px"] *= diameter_factor
    out["density_per_um2"] *= density_scale
    return out
