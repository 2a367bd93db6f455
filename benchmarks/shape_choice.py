"""Does rendering choose the right shape? (docs/calibration.md, "Shape by rendering")

Rendered scans with known truth (``render/truth.py``, as ``benchmarks/calibration.py`` makes
them, but ``--scans`` scans of 512² px so that they hold enough 256² particle fields): each
compact preset (``tio2-sem`` pebbles, ``tio2-him`` cubes, ``sio2-him`` spheres) × bright and
dark particles, seed 0, at a nominal 2 nm/px. Each is calibrated with ``--like`` the truth
preset (its lighting, so that the candidates differ in shape only), its particle fields cut,
and ``calibrate --compare-shapes`` run (matching left out: it does not take part in the
choice). Printed: the family the calibration measured, the one rendering chose, the truth,
and every FID.

Run: ``.venv/bin/python benchmarks/shape_choice.py [--scans N] [--json FILE]``
"""

from __future__ import annotations

import argparse
import time

from napari_diffrendergan.analysis import matching
from napari_diffrendergan.config import preset
from napari_diffrendergan.io import write_json_atomic
from napari_diffrendergan.render.truth import POLARITIES, render_truth_scans

PIXEL_NM = 2.0
SIZE = 512
COMPACT = ("tio2-sem", "tio2-him", "sio2-him")
HEADER = (
    "| preset | particles | fields (density ×) | truth | measured | chosen "
    "| FID pebbles / cubes / spheres |"
)


def case(name: str, polarity: str, count: int) -> dict:
    """Calibrate ``count`` truth scans of preset ``name`` and choose their shape by rendering."""
    truth = preset(name)
    scans = render_truth_scans(preset(name).resized(SIZE, SIZE), polarity, 0, count)
    images = [(f"{name}-{i}", scan.image) for i, scan in enumerate(scans)]
    start = time.perf_counter()
    report = matching.measure_prior(images, PIXEL_NM, truth, shapes=True, device="cpu")
    choice = report.get("shape_choice") or {}
    return {
        "preset": name,
        "polarity": polarity,
        "truth": truth.meshes.library,
        "measured": choice.get("measured", report["family"]),
        "chosen": report["family"],
        "fields": (report["fields"] or {}).get("count", 0),
        "fields_scale": (report["fields"] or {}).get("scale"),
        "fids": choice.get("fids"),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=8, help="truth scans per case")
    parser.add_argument("--json", help="write the cases to this file")
    args = parser.parse_args()
    matching.ROUNDS = 0  # the shape is chosen before matching
    cases = []
    print(HEADER)
    print("|---|---|---|---|---|---|---|")
    for name in COMPACT:
        for polarity in POLARITIES:
            row = case(name, polarity, args.scans)
            cases.append(row)
            fids = " / ".join(f"{f:.1f}" for f in (row["fids"] or {}).values()) or "–"
            print(
                f"| {name} | {polarity} | {row['fields']} (×{row['fields_scale'] or 1:.2f}) "
                f"| {row['truth']} | {row['measured']} "
                f"| {row['chosen']} | {fids} |",
                flush=True,
            )
    for key in ("measured", "chosen"):
        right = sum(row[key] == row["truth"] for row in cases)
        print(f"{key}: right in {right} of {len(cases)}")
    if args.json:
        write_json_atomic(args.json, cases)


if __name__ == "__main__":
    main()
