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

The GAN compares its renders with *particle patches* (:func:`particle_fields`: the windows
``patches --role auto`` keeps, those with at least three whole particles), which hold more
particles than the scans on average. So the preset renders the density of those fields: the
scans' density times the fields' covered share over the scans' (both measured the same way).
Matching renders at the scans' own density, under which their sizes were measured, and the
density reported stays the scans'. Optionally the shape family is chosen by rendering
(:mod:`..gan.prior_choice`).
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
MIN_FIELDS = 3  # particle fields needed to measure their density
MIN_SHAPE_FIELDS = 16  # particle fields needed to compare shapes by FID (fewer: noise)


def measure_prior(
    scans, pixel_size_nm=None, like=None, monitor=None, shapes: bool = False, device="auto"
) -> dict:
    """:func:`~.calibration.calibrate` ``scans`` and their particle fields
    (:func:`fields_record`), then, with a pixel size, choose the shape by rendering if
    ``shapes`` (:func:`choose_shape`, on ``device``) and :func:`match_prior`: the report a
    preset is made from (``calibrate``, the Scene prior dock)."""
    from ..progress import ensure

    monitor = ensure(monitor)
    report = calibrate(scans, pixel_size_nm, monitor.stage("measuring the scans"))
    polarity, size = report["polarity"], _field_size(report, like)
    fields = particle_fields(scans, polarity, size, monitor.stage("cutting particle fields"))
    report["fields"] = fields_record(scans, fields, polarity)
    if report["fields"] is None:
        report["notes"].append(
            f"{len(fields)} field(s) of {size} px hold three whole particles (the particle "
            f"patches a GAN trains on; {MIN_FIELDS} needed to measure them): the preset keeps "
            "the scans' density"
        )
    if not pixel_size_nm:
        if shapes:
            report["notes"].append("shapes not compared: rendering them needs the pixel size")
        return report
    if shapes:
        report = choose_shape(report, like, [x for _, _, x in fields], device, monitor)
    return match_prior(report, like, monitor)


def particle_fields(scans, polarity: str, size: int, monitor=None) -> list[tuple]:
    """``(scan index, Patch, pixels)`` of the particle patches of ``scans`` (``(name, image)``
    pairs) that ``patches --role auto`` keeps for the GAN (``size`` px, at least three whole
    particles of ``polarity``); scans smaller than a field give none."""
    from ..data.patches import cut_patches
    from ..progress import ensure

    monitor, fields = ensure(monitor), []
    for index, (name, image) in enumerate(scans):
        monitor.report(index, len(scans), name)
        if min(image.shape[:2]) >= size:
            found, pixels, _ = cut_patches(
                image, name, size=size, polarity=polarity, monitor=monitor.silent()
            )
            kept = zip(found, pixels, strict=True)
            fields += [(index, p, x) for p, x in kept if p.role == "particle"]
    return fields


def fields_record(scans, fields: list[tuple], polarity: str) -> dict | None:
    """How many particle ``fields`` (:func:`particle_fields`) there are, their covered share
    and its ratio to the scans' (the factor the preset's density takes), both read off each
    scan's own particle phase of ``polarity`` (as :func:`~.calibration.calibrate` finds it);
    None with fewer than :data:`MIN_FIELDS` fields."""
    from ..data.phases import MIN_CONTRAST, scan_phases
    from .calibration import particle_foreground

    if len(fields) < MIN_FIELDS:
        return None
    phases = [scan_phases(image, name) for name, image in scans]
    phase = {
        i: particle_foreground(p, polarity)
        for i, p in enumerate(phases)
        if p.contrast >= MIN_CONTRAST
    }
    scans_coverage = sum(f.sum() for f in phase.values()) / sum(f.size for f in phase.values())
    inside = [(phase[i], p) for i, p, _ in fields if i in phase]
    if not inside or not scans_coverage:
        return None
    covered = sum(f[p.y : p.y + p.size, p.x : p.x + p.size].sum() for f, p in inside)
    coverage = float(covered / sum(p.size**2 for _, p in inside))
    return {"count": len(fields), "coverage": coverage, "scale": coverage / scans_coverage}


def choose_shape(report: dict, like, fields: list, device="auto", monitor=None) -> dict:
    """``report`` with the compact family whose preset (as :func:`calibrated_config` makes it
    with ``like``; ``like`` None: each family's own preset) renders closest to the particle
    ``fields`` (pixels; lowest untrained FID, :func:`~..gan.prior_choice.prior_fids`);
    ``shape_choice`` records the FIDs and the family measured. Wires: ``report`` unchanged;
    fewer than :data:`MIN_SHAPE_FIELDS` fields: unchanged, with a note."""
    from ..gan.prior_choice import FIELDS, SHAPES, prior_fids

    if report["family"] == "wires":
        return report
    chosen = copy.deepcopy(report)
    if len(fields) < MIN_SHAPE_FIELDS:
        chosen["notes"].append(
            f"shapes not compared: {len(fields)} particle field(s), {MIN_SHAPE_FIELDS} needed "
            "for a FID that is more than noise; the measured shape is kept"
        )
        return chosen
    priors = {shape: calibrated_config({**report, "family": shape}, like) for shape in SHAPES}
    stage = monitor.stage("shape by rendering") if monitor else None
    fids = prior_fids(priors, fields, report["pixel_size_nm"], device, stage)
    finite = {shape: fid for shape, fid in fids.items() if math.isfinite(fid)}
    if not finite:
        raise CalibrationError(
            "shapes not compared: no shape's renders gave a finite FID against the particle "
            "fields; calibrate without comparing shapes"
        )
    chosen["family"] = min(finite, key=finite.get)
    scored = min(len(fields), FIELDS)
    chosen["shape_choice"] = {"measured": report["family"], "fids": fids, "fields": scored}
    return chosen


def prior_rows(report: dict) -> list[tuple[str, str]]:
    """(label, text) of what the preset takes from the particle fields and the shape
    comparison, for the CLI and the Scene prior dock."""
    from .calibration import fields_scale

    rows = []
    fields = report.get("fields")
    if fields:
        density = report["density_per_um2"]
        renders = f"{density * fields_scale(report):.4g} per µm²" if density else "denser"
        rows.append(
            (
                "Particle fields",
                f"{fields['count']} patches with ≥ 3 whole particles (what the GAN compares "
                f"with), {100 * fields['coverage']:.1f} % covered: the preset renders "
                f"{renders} (×{fields['scale']:.3g} the scans' density)",
            )
        )
    choice = report.get("shape_choice")
    if choice:
        fids = ", ".join(f"{shape} {fid:.1f}" for shape, fid in choice["fids"].items())
        rows.append(
            (
                "Shape by rendering",
                f"{report['family']} (untrained FID against {choice['fields']} particle "
                f"fields: {fids}; measured {choice['measured']})",
            )
        )
    return rows


def _field_size(report: dict, like) -> int:
    """The prior's field in px: ``like``'s, else the family preset's."""
    from ..config import preset
    from .calibration import FAMILY_PRESETS

    config = like if like is not None else preset(FAMILY_PRESETS[report["family"]])
    return config.scene.width


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
            found = _render_and_measure(calibrated_config(_at_scan_density(matched), like), stage)
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


def _at_scan_density(report: dict) -> dict:
    """``report`` without its particle fields: a prior at the scans' own crowding, under
    which their sizes were measured (denser renders measure smaller)."""
    return {key: value for key, value in report.items() if key != "fields"}


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
