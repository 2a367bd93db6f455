"""Scene priors measured from unannotated scans (docs/calibration.md): accuracy on rendered
scans with known truth and on the real TiO2 SEM training scans, and speed.

1. Rendered truth (``render/truth.py``): each built-in preset × bright and dark particles ×
   three seeds, ``--scans`` scans of 256² px (default 32) at spp 4 with detector noise,
   calibrated at a nominal pixel size. The true diameters are those of the whole particles'
   silhouettes (equivalent circular diameter; wires: width) — the instance labels lose what
   other particles hide —, the true density counts the particles whose centre lies in the
   image. Targets: median diameter within 10 %, density within 15 %, polarity right every time.
2. TiO2 SEM: the 24 training scans (data bar left out, 7.34 nm/px) calibrated without their
   masks; the median diameter of the isolated particles it found is scored against that of the
   manual masks' isolated particles (the masks are read only to score). The same on the
   inverted scans (1 − image), which must come out dark with the same estimates. Speed: the 24
   scans in one process (target ≤ 30 s on 2 cores), wall-clock and CPU time (the CPU time
   does not count waiting for cores other programs hold).

Run: ``.venv/bin/python benchmarks/calibration.py [--scans N] [--markdown]`` (``--markdown``
prints the tables for docs/calibration.md and writes docs/images/calibration.png).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from napari_diffrendergan.analysis import calibration as cal
from napari_diffrendergan.analysis.matching import match_prior
from napari_diffrendergan.config import PRESETS, preset
from napari_diffrendergan.render.truth import (
    POLARITIES,
    render_truth_scans,
    true_median_and_density,
)
from tio2_data import PIXEL_SIZE_NM, SHARED, read_scan, split

PIXEL_NM = 2.0  # nominal pixel size of the rendered scans
SEEDS = (0, 1, 2)
TARGETS = {"diameter": 0.10, "density": 0.15}
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "images" / "calibration.png"
GAP = 2  # px: mask particles this close belong to one agglomerate (as benchmarks/agglomerates.py)


def rendered_case(name: str, polarity: str, seed: int, count: int) -> dict:
    scans = render_truth_scans(preset(name), polarity, seed, count)
    wires = preset(name).meshes.library == "wires"
    diameter, density = true_median_and_density(scans, PIXEL_NM, wires)
    seen = cal.calibrate([(f"{name}-{i}", s.image) for i, s in enumerate(scans)], PIXEL_NM)
    report = match_prior(seen)
    return {
        "preset": name,
        "polarity": polarity,
        "seed": seed,
        "found_polarity": report["polarity"],
        "family": report["family"],
        "measured": report["counts"]["measured"],
        "diameter": (diameter, report["median_diameter_nm"]),
        "density": (density, report["density_per_um2"]),
        "diameter_seen": (diameter, seen["median_diameter_nm"]),
        "density_seen": (density, seen["density_per_um2"]),
        "matching": report["matching"],
        "size_fit": report["size_fit"]["chosen"],
    }


def error(pair) -> float:
    truth, estimate = pair
    return estimate / truth - 1


def mask_isolated_diameters(mask: np.ndarray) -> list[float]:
    """Equivalent diameters (nm) of the manual mask's isolated particles: 4-connected instances
    (the masks separate touching particles by 1-px lines) with no other instance within
    :data:`GAP` px, not cut by the border, at least 20 px."""
    from scipy import ndimage
    from skimage.measure import label, regionprops

    instances = label(mask, connectivity=1)
    groups = label(ndimage.binary_dilation(mask, iterations=GAP), connectivity=2)
    pairs = np.unique(np.stack([groups[mask], instances[mask]]), axis=1)
    members = np.bincount(pairs[0], minlength=groups.max() + 1)
    height, width = mask.shape
    return [
        r.equivalent_diameter_area * PIXEL_SIZE_NM
        for r in regionprops(instances)
        if r.area >= 20
        and members[groups[tuple(r.coords[0])]] == 1
        and min(r.bbox[:2]) > 0
        and r.bbox[2] < height
        and r.bbox[3] < width
    ]


def mask_particles(mask: np.ndarray) -> int:
    """The manual mask's particles of at least 20 px (4-connected instances)."""
    from skimage.measure import label

    sizes = np.bincount(label(mask, connectivity=1).ravel())[1:]
    return int((sizes >= 20).sum())


def tio2_case() -> dict:
    ids = sorted(p.stem for p in (SHARED / "images").glob("*.tif"))
    train, _ = split(ids)
    scans = [(i, *read_scan(i)) for i in train]
    truth = np.median([d for _, _, mask in scans for d in mask_isolated_diameters(mask)])
    area = sum(image.size for _, image, _ in scans) * (PIXEL_SIZE_NM / 1000) ** 2
    counted = sum(mask_particles(mask) for _, _, mask in scans)
    results = {
        "truth_isolated_median_nm": float(truth),
        "truth_density_per_um2": counted / area,
        "scans": len(scans),
    }
    for name, flip in (("original", False), ("inverted", True)):
        images = [(i, 1 - image if flip else image) for i, image, _ in scans]
        started, cpu = time.perf_counter(), time.process_time()
        report = cal.calibrate(images, PIXEL_SIZE_NM)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        started, matching_cpu = time.perf_counter(), time.process_time()
        matched = match_prior(report, preset("tio2-sem"))
        matching_seconds = time.perf_counter() - started
        matching_cpu = time.process_time() - matching_cpu
        isolated = report["estimates"]["diameter"]["isolated_median"]
        results[name] = {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "polarity": report["polarity"],
            "family": report["family"],
            "isolated_median_nm": isolated["value"],
            "isolated_ci_nm": isolated["ci"],
            "median_nm": report["median_diameter_nm"],
            "density_per_um2": report["density_per_um2"],
            "matched_median_nm": matched["median_diameter_nm"],
            "matched_density_per_um2": matched["density_per_um2"],
            "matching": matched["matching"],
            "matching_seconds": matching_seconds,
            "matching_cpu_seconds": matching_cpu,
            "coverage": report["estimates"]["coverage"]["value"],
            "share_in_clusters": report["estimates"]["share_in_clusters"]["value"],
            "size_fit": report["size_fit"]["chosen"],
            "counts": report["counts"],
        }
    return results


def case_rows(cases: list[dict]) -> list[str]:
    rows = [
        "| preset | particles | seed | polarity found | family | measured | median diameter "
        "true → seen → matched (nm) | error seen → matched | density true → seen → matched "
        "(/µm²) | error seen → matched |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        mark = "" if c["found_polarity"] == c["polarity"] else " ✗"
        cells = []
        for key in ("diameter", "density"):
            truth, matched = c[key]
            seen = c[f"{key}_seen"][1]
            cells.append(f"{truth:.1f} → {seen:.1f} → {matched:.1f}")
            cells.append(f"{100 * error(c[f'{key}_seen']):+.1f} → {100 * error(c[key]):+.1f} %")
        rows.append(
            f"| {c['preset']} | {c['polarity']} | {c['seed']} | {c['found_polarity']}{mark} | "
            f"{c['family']} | {c['measured']} | " + " | ".join(cells) + " |"
        )
    return rows


def summary(cases: list[dict]) -> list[str]:
    lines = []
    polarity = sum(c["found_polarity"] == c["polarity"] for c in cases)
    lines.append(f"polarity right: {polarity} of {len(cases)}")
    for key, target in TARGETS.items():
        for variant, suffix in (("seen", "_seen"), ("matched", "")):
            counts = []
            for name in sorted({c["preset"] for c in cases}, key=list(PRESETS).index):
                errors = [abs(error(c[key + suffix])) for c in cases if c["preset"] == name]
                counts.append(f"{name} {sum(e <= target for e in errors)}/{len(errors)}")
            within = sum(abs(error(c[key + suffix])) <= target for c in cases)
            lines.append(
                f"{key} within {target:.0%} ({variant}): {within} of {len(cases)} "
                f"({', '.join(counts)})"
            )
    return lines


def tio2_lines(tio2: dict) -> list[str]:
    truth = tio2["truth_isolated_median_nm"]
    lines = [
        f"TiO2 SEM, {tio2['scans']} training scans; masks' isolated particles: {truth:.1f} nm, "
        f"masks' density {tio2['truth_density_per_um2']:.3g} /µm²"
    ]
    for name in ("original", "inverted"):
        r = tio2[name]
        low, high = r["isolated_ci_nm"]
        lines.append(
            f"  {name}: polarity {r['polarity']}, family {r['family']}, isolated median "
            f"{r['isolated_median_nm']:.1f} nm (95 % CI {low:.1f}–{high:.1f}; "
            f"{100 * (r['isolated_median_nm'] / truth - 1):+.1f} % of the masks'), measured "
            f"median {r['median_nm']:.1f} nm, {r['density_per_um2']:.3g} /µm², coverage "
            f"{100 * r['coverage']:.1f} %, {100 * r['share_in_clusters']:.0f} % in clusters, "
            f"{r['size_fit']} sizes; {r['seconds']:.1f} s ({r['cpu_seconds']:.1f} s of CPU) for "
            f"{tio2['scans']} scans; matched (--like tio2-sem): median "
            f"{r['matched_median_nm']:.1f} nm, {r['matched_density_per_um2']:.3g} /µm² in "
            f"{r['matching_seconds']:.1f} s "
            f"({r['matching_cpu_seconds']:.1f} s of CPU)"
        )
    return lines


def figure(cases: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    from napari_diffrendergan.io import write_figure

    fig = Figure(figsize=(9, 4.2))
    colours = dict(zip(PRESETS, ("C0", "C1", "C2", "C3"), strict=True))
    markers = {"bright": "o", "dark": "s"}
    for axis, key, unit, target in zip(
        fig.subplots(1, 2), ("diameter", "density"), ("nm", "1/µm²"), TARGETS.values(), strict=True
    ):
        values = np.array([c[key] for c in cases])
        line = np.array([values.min() * 0.8, values.max() * 1.2])
        axis.plot(line, line, "k-", lw=0.8)
        axis.fill_between(line, line * (1 - target), line * (1 + target), color="0.9")
        for c in cases:
            axis.plot(*c[key], markers[c["polarity"]], color=colours[c["preset"]], ms=5)
        axis.set(xscale="log", yscale="log", xlabel=f"true {key} ({unit})")
        for ticks in (axis.xaxis, axis.yaxis):  # 1, 2, 5 per decade: the ranges span less
            ticks.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ticks.set_major_formatter(ScalarFormatter())
            ticks.set_minor_formatter(NullFormatter())
        axis.set(ylabel=f"estimated {key} ({unit})", title=f"{key} (band: ±{target:.0%})")
    handles = [fig.axes[0].plot([], [], "o", color=c, label=n)[0] for n, c in colours.items()]
    handles += [
        fig.axes[0].plot([], [], m, color="k", mfc="none", label=p)[0] for p, m in markers.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.22, wspace=0.3)
    write_figure(path, fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scans",
        type=int,
        default=32,
        help="rendered scans of 256² px per case (default %(default)s: the area of two scans "
        "of 1024 × 1024 px)",
    )
    parser.add_argument("--markdown", action="store_true", help="tables and figure for the docs")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    cases = []
    for name in PRESETS:
        for polarity in POLARITIES:
            for seed in SEEDS:
                cases.append(rendered_case(name, polarity, seed, args.scans))
                print(case_rows(cases[-1:])[-1], flush=True)
    tio2 = tio2_case() if (SHARED / "images").is_dir() else None
    print("\n".join(case_rows(cases) if args.markdown else []))
    print("\n".join(summary(cases)))
    if tio2:
        print("\n".join(tio2_lines(tio2)))
    else:
        print(f"TiO2 SEM data not found at {SHARED}: left out", file=sys.stderr)
    if args.markdown:
        figure(cases, FIGURE)
        print(f"figure: {FIGURE}")
    if args.json:
        args.json.write_text(json.dumps({"cases": cases, "tio2": tio2}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
