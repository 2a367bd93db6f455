"""Local thickness benchmark: 1252×1092 mask with 30 wires 10–25 px wide (a MultiSEM tile).

Compares the ``localthickness`` package (scale 1), this project's exact method and the exact
reference (every foreground pixel a disk centre); prints times and mean absolute error (px)
against the reference.

Run: ``.venv/bin/python benchmarks/bench_thickness.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import time

import localthickness
import numpy as np

from napari_diffrendergan.analysis.thickness import (
    local_thickness,
    local_thickness_reference,
    synthetic_wires,
)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    mask = synthetic_wires((1092, 1252), rng.uniform(10, 25, 30), seed=3, bend=0.3)
    print(f"mask 1252x1092, 30 wires 10-25 px, foreground {mask.mean():.1%}")

    _, ref_time, reference = best_of(lambda: local_thickness_reference(mask), 1)
    rows = [
        ("localthickness (scale 1)", lambda: 2 * localthickness.local_thickness(mask)),
        ("napari-diffrendergan", lambda: local_thickness(mask)),
    ]
    print(f"{'method':28s} {'best s':>8s} {'median s':>9s} {'MAE px':>8s} {'max err px':>11s}")
    print(f"{'exact reference':28s} {ref_time:>8.3f} {ref_time:>9.3f} {0:>8.3f} {0:>11.3f}")
    baseline = None
    for name, fn in rows:
        best, median, result = best_of(fn, args.repeats)
        error = np.abs(result - reference)[mask]
        print(f"{name:28s} {best:>8.3f} {median:>9.3f} {error.mean():>8.3f} {error.max():>11.3f}")
        baseline = baseline or median
    print(f"speed-up over localthickness (median): {baseline / median:.1f}x")


if __name__ == "__main__":
    main()
