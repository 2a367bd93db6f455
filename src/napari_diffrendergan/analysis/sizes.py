"""Particle sizes a microscopist can report: number-based D10/D50/D90 with bootstrap confidence
intervals, shape summaries, number density, the EU nanomaterial screen by number, and the
comparison of two size distributions (a model against manual labels, or two samples).

Tables are :func:`~napari_diffrendergan.analysis.particles.particle_table` columns plus a
``touches_border`` column (:func:`sized_table`). Particles touching the border of the image (or
of the analysed region) are cut, so they are left out of the sizes by default but counted;
particles under a resolution floor of ``min_area_px`` pixels are left out too. Every result is a
plain dict that ``json.dumps(..., allow_nan=False)`` accepts (None where undefined).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .particles import MIN_AREA, particle_table

PERCENTILES = {"D10": 10, "D50": 50, "D90": 90}
SIZE_COLUMNS = ("equivalent_diameter", "feret_min", "feret_max")
RESAMPLES = 2000
BOOTSTRAP_VALUES = 4_000_000  # resampled values held in memory at once
SEED = 0
NANO_RANGE_NM = (1.0, 100.0)  # Commission Recommendation 2022/C 229/01
NANO_SHARE = 0.5
WILSON_Z = 1.959963984540054  # two-sided 95 %


def touches_border(
    instances: np.ndarray, region: tuple[int, int, int, int] | None = None, margin: int = 1
) -> dict[int, bool]:
    """For each label inside the image (or the ``region`` (y0, y1, x0, x1)), whether it comes
    within ``margin`` pixels of that rectangle's border (1: touches it)."""
    crop = _crop(np.asarray(instances), region)
    if margin < 1:
        raise InputError(f"border margin {margin} px: give 1 or more")
    edge = np.concatenate(
        [crop[:margin].ravel(), crop[-margin:].ravel(), crop[:, :margin].ravel()]
        + [crop[:, -margin:].ravel()]
    )
    on_edge = set(np.unique(edge).tolist())
    return {int(label): int(label) in on_edge for label in np.unique(crop) if label != 0}


def sized_table(
    instances: np.ndarray,
    pixel_size_nm: float | None = None,
    region: tuple[int, int, int, int] | None = None,
    margin: int = 1,
) -> dict:
    """:func:`particle_table` of the particles inside ``region`` (the whole image without one)
    with a ``touches_border`` column (within ``margin`` px of the border)."""
    crop = _crop(np.asarray(instances), region)
    return flag_border(particle_table(crop, pixel_size_nm), crop, margin=margin)


def flag_border(
    table: dict,
    instances: np.ndarray,
    region: tuple[int, int, int, int] | None = None,
    margin: int = 1,
) -> dict:
    """``table`` (of ``instances``, every particle inside ``region``) with a ``touches_border``
    column: whether the particle comes within ``margin`` px of the border of ``region`` (the
    whole image without one)."""
    border = touches_border(instances, region, margin)
    flags = np.array([border[int(label)] for label in table["label"]], bool)
    return {**table, "touches_border": flags}


def size_statistics(
    tables: list[dict],
    pixel_size_nm: float | None = None,
    analysed_area_px: float | None = None,
    min_area_px: int = MIN_AREA,
    keep_border: bool = False,
) -> dict:
    """Number-based size statistics of one image's table or pooled over several: D10/D50/D90 of
    the equivalent diameter, minimum and maximum Feret with percentile-bootstrap 95 % CIs;
    median and 10th/90th percentiles of aspect ratio (Feret max / min) and circularity; counts
    and the number density per µm² of ``analysed_area_px`` (all particles above the floor,
    border ones included)."""
    table, unit = _pooled(tables, pixel_size_nm)
    measured, counts = selected_particles(table, pixel_size_nm, min_area_px, keep_border)
    sizes = {name: _percentiles_with_ci(table[f"{name}_{unit}"][measured]) for name in SIZE_COLUMNS}
    feret_min = table[f"feret_min_{unit}"][measured]
    aspect = table[f"feret_max_{unit}"][measured] / np.where(feret_min > 0, feret_min, np.nan)
    return {
        "unit": unit,
        "pixel_size_nm": pixel_size_nm,
        "min_area_px": min_area_px,
        "border_particles_included": keep_border,
        "count": counts,
        "analysed_area_um2": _area_um2(analysed_area_px, pixel_size_nm),
        "number_density_per_um2": _density(counts, analysed_area_px, pixel_size_nm),
        "sizes": sizes,
        "shape": {
            "aspect_ratio": _spread(aspect[np.isfinite(aspect)]),
            "circularity": _spread(table["circularity"][measured]),
        },
    }


def size_report(
    table: dict,
    pixel_size_nm: float | None,
    analysed_area_px: float,
    min_area_px: int = MIN_AREA,
    keep_border: bool = False,
) -> dict:
    """One image's size statistics and EU screen (what ``diffrendergan segment`` writes as
    ``<name>_sizes.json``); ``table`` has the ``touches_border`` column."""
    tables = [table]
    return {
        "statistics": size_statistics(
            tables, pixel_size_nm, analysed_area_px, min_area_px, keep_border
        ),
        "nanomaterial_screen": nanomaterial_screen(tables, pixel_size_nm, min_area_px, keep_border),
    }


def statistics_rows(statistics: dict) -> list[dict]:
    """:func:`size_statistics` as CSV rows: quantity, value, ci_low, ci_high, unit."""
    unit = statistics["unit"]
    rows = [_row(f"count {name}", value) for name, value in statistics["count"].items()]
    rows.append(_row("analysed area", statistics["analysed_area_um2"], unit="um2"))
    rows.append(_row("number density", statistics["number_density_per_um2"], unit="1/um2"))
    for name, percentiles in statistics["sizes"].items():
        for key, entry in percentiles.items():
            rows.append(_row(f"{name} {key}", entry["value"], entry, unit))
    for name, spread in statistics["shape"].items():
        rows.extend(_row(f"{name} {key}", value) for key, value in spread.items())
    return rows


def nanomaterial_screen(
    tables: list[dict],
    pixel_size_nm: float | None,
    min_area_px: int = MIN_AREA,
    keep_border: bool = False,
) -> dict:
    """EU screen by number (Commission Recommendation 2022/C 229/01): the share of particles
    whose smallest external dimension (minimum Feret of the projection) lies in 1–100 nm, with
    a Wilson 95 % interval, and the verdict at ≥ 50 %. Undefined (None) without a pixel size;
    the caveats say what a 2D projection at this resolution cannot tell."""
    if not pixel_size_nm:
        return {
            "share": None,
            "ci_low": None,
            "ci_high": None,
            "count": None,
            "nanomaterial": None,
            "verdict": None,
            "caveats": ["pixel size unknown: sizes in nm, and so the screen, are undefined"],
        }
    table, unit = _pooled(tables, pixel_size_nm)
    measured, counts = selected_particles(table, pixel_size_nm, min_area_px, keep_border)
    smallest = table[f"feret_min_{unit}"][measured]
    low, high = NANO_RANGE_NM
    nano = int(((smallest >= low) & (smallest <= high)).sum())
    share = nano / len(smallest) if len(smallest) else None
    ci_low, ci_high = _wilson(nano, len(smallest))
    nanomaterial = None if share is None else share >= NANO_SHARE
    return {
        "share": share,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "count": {**counts, "nano": nano},
        "nanomaterial": nanomaterial,
        "verdict": _verdict(nanomaterial),
        "caveats": _caveats(pixel_size_nm, min_area_px, counts, keep_border, ci_low, ci_high),
    }


def compare_sizes(
    tables_a: list[dict],
    tables_b: list[dict],
    pixel_size_nm: float | None = None,
    min_area_px: int = MIN_AREA,
    keep_border: bool = False,
    pixel_size_b_nm: float | None = None,
) -> dict:
    """Equivalent diameters of ``b`` against ``a`` (a model against manual labels, or sample B
    against sample A), with the same border and floor rules on both sides: each side's
    D10/D50/D90 with 95 % CIs, B's D-values off A's in % of A's, the D50 difference B − A with
    a bootstrap 95 % CI, the two-sample KS statistic and p-value, the Wasserstein distance (in
    the tables' unit), and the count and number-density ratios B / A (the ratio of particles
    above the floor, border ones included: equal analysed areas assumed). ``pixel_size_b_nm``:
    B's pixel size where it differs from A's (both in nm then)."""
    from scipy.stats import ks_2samp, wasserstein_distance

    pixel_b = pixel_size_nm if pixel_size_b_nm is None else pixel_size_b_nm
    if bool(pixel_size_nm) != bool(pixel_b):
        raise InputError(
            "one side's sizes are in nm and the other's in px: give both pixel sizes (nm) or "
            "neither"
        )
    a, unit, counts_a = measured_diameters(tables_a, pixel_size_nm, min_area_px, keep_border)
    b, _, counts_b = measured_diameters(tables_b, pixel_b, min_area_px, keep_border)
    result = {
        "unit": unit,
        "min_area_px": min_area_px,
        "border_particles_included": keep_border,
        "count_a": counts_a,
        "count_b": counts_b,
        "a": _percentiles_with_ci(a),
        "b": _percentiles_with_ci(b),
        "count_ratio": _ratio(len(b), len(a)),
        "density_ratio": _ratio(_above_floor(counts_b), _above_floor(counts_a)),
    }
    for key in PERCENTILES:
        value_a, value_b = result["a"][key]["value"], result["b"][key]["value"]
        error = 100 * (value_b / value_a - 1) if value_a and value_b is not None else None
        result[f"{key}_difference_percent"] = _number(error)
    result["D50_difference"] = _median_difference(a, b)
    result["D50_b_interval_covers_a"] = _covers(result["b"]["D50"], result["a"]["D50"]["value"])
    both = len(a) and len(b)
    ks = ks_2samp(a, b) if both else None
    result["ks_statistic"] = float(ks.statistic) if both else None
    result["ks_pvalue"] = float(ks.pvalue) if both else None
    result[f"wasserstein_{unit}"] = float(wasserstein_distance(a, b)) if both else None
    return result


def cumulative_distribution(values: np.ndarray) -> dict:
    """Empirical cumulative distribution of ``values`` with its 95 % confidence band
    (Dvoretzky–Kiefer–Wolfowitz, Massart's constant): ``x`` sorted, ``cdf`` the share of values
    ≤ x, ``low``/``high`` the band."""
    x = np.sort(np.asarray(values, float))
    n = len(x)
    cdf = np.arange(1, n + 1) / n if n else np.zeros(0)
    half = math.sqrt(math.log(2 / 0.05) / (2 * n)) if n else 0.0
    return {
        "x": x,
        "cdf": cdf,
        "low": np.clip(cdf - half, 0, 1),
        "high": np.clip(cdf + half, 0, 1),
    }


def measured_diameters(
    tables: list[dict],
    pixel_size_nm: float | None = None,
    min_area_px: int = MIN_AREA,
    keep_border: bool = False,
) -> tuple[np.ndarray, str, dict]:
    """The equivalent diameters of the particles the statistics measure (the border and floor
    rules applied), their unit (nm or px) and the counts."""
    table, unit = _pooled(tables, pixel_size_nm)
    measured, counts = selected_particles(table, pixel_size_nm, min_area_px, keep_border)
    return table[f"equivalent_diameter_{unit}"][measured], unit, counts


def _crop(instances: np.ndarray, region: tuple[int, int, int, int] | None) -> np.ndarray:
    if instances.ndim != 2:
        raise InputError(f"instance labels must be 2D, got shape {instances.shape}")
    if region is None:
        return instances
    y0, y1, x0, x1 = (int(v) for v in region)
    height, width = instances.shape
    if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
        raise InputError(
            f"region (y0, y1, x0, x1) = {region} does not lie inside the image {instances.shape}:"
            " give 0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width"
        )
    return instances[y0:y1, x0:x1]


def _pooled(tables: list[dict], pixel_size_nm: float | None) -> tuple[dict, str]:
    """The tables' columns concatenated, and their length unit (nm or px)."""
    unit = "nm" if pixel_size_nm else "px"
    names = [f"{name}_{unit}" for name in SIZE_COLUMNS] + [f"area_{unit}2", "circularity"]
    for table in tables:
        missing = [name for name in (*names, "touches_border") if name not in table]
        if missing:
            raise InputError(
                f"particle table lacks {', '.join(missing)} (lengths in {unit}): measure with "
                "sizes.sized_table and the same pixel size"
            )
    return {
        name: np.concatenate([np.asarray(t[name]) for t in tables]) if tables else np.zeros(0)
        for name in (*names, "touches_border")
    }, unit


def selected_particles(
    table: dict, pixel_size_nm: float | None, min_area_px: int, keep_border: bool
) -> tuple[np.ndarray, dict]:
    """Which particles are measured, and the counts: detected, border, below floor, measured."""
    unit = "nm" if pixel_size_nm else "px"
    area_px = table[f"area_{unit}2"] / float(pixel_size_nm or 1.0) ** 2
    below = area_px < min_area_px - 1e-9
    border = table["touches_border"].astype(bool)
    measured = ~below & (keep_border | ~border)
    counts = {
        "detected": int(len(area_px)),
        "touching_border": int(border.sum()),
        "below_floor": int(below.sum()),
        "measured": int(measured.sum()),
    }
    return measured, counts


def _above_floor(counts: dict) -> int:
    return counts["detected"] - counts["below_floor"]


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _covers(interval: dict, value: float | None) -> bool | None:
    if value is None or interval["ci_low"] is None:
        return None
    return interval["ci_low"] <= value <= interval["ci_high"]


def _median_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Median of ``b`` minus median of ``a``, with a percentile-bootstrap 95 % CI (both samples
    resampled independently; seeded)."""
    if len(a) == 0 or len(b) == 0:
        return {"value": None, "ci_low": None, "ci_high": None}
    rng = np.random.default_rng(SEED)
    boot = _bootstrap_percentiles(b, [50], rng)[0] - _bootstrap_percentiles(a, [50], rng)[0]
    low, high = np.percentile(boot, [2.5, 97.5])
    value = float(np.median(b) - np.median(a))
    return {"value": value, "ci_low": float(low), "ci_high": float(high)}


def _bootstrap_percentiles(
    values: np.ndarray, q: list[float], rng: np.random.Generator
) -> np.ndarray:
    """Percentiles ``q`` of :data:`RESAMPLES` resamples of ``values``: shape (len(q),
    RESAMPLES), computed in chunks of bounded memory."""
    per_chunk = max(1, BOOTSTRAP_VALUES // len(values))
    return np.concatenate(
        [
            np.percentile(values[rng.integers(0, len(values), (count, len(values)))], q, axis=1)
            for count in _chunks(RESAMPLES, per_chunk)
        ],
        axis=1,
    )


def _percentiles_with_ci(values: np.ndarray) -> dict:
    """D10/D50/D90 of ``values`` with percentile-bootstrap 95 % CIs (seeded, deterministic)."""
    if len(values) == 0:
        return {key: {"value": None, "ci_low": None, "ci_high": None} for key in PERCENTILES}
    q = list(PERCENTILES.values())
    boot = _bootstrap_percentiles(values, q, np.random.default_rng(SEED))
    low, high = np.percentile(boot, [2.5, 97.5], axis=1)
    point = np.percentile(values, q)
    return {
        key: {"value": float(point[i]), "ci_low": float(low[i]), "ci_high": float(high[i])}
        for i, key in enumerate(PERCENTILES)
    }


def _chunks(total: int, size: int) -> list[int]:
    """``total`` split into chunks of at most ``size``."""
    return [min(size, total - start) for start in range(0, total, size)]


def _spread(values: np.ndarray) -> dict:
    """Median and 10th/90th percentiles (None when empty)."""
    if len(values) == 0:
        return {"median": None, "p10": None, "p90": None}
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return {"median": float(median), "p10": float(p10), "p90": float(p90)}


def _area_um2(area_px: float | None, pixel_size_nm: float | None) -> float | None:
    if area_px is None or not pixel_size_nm:
        return None
    return float(area_px) * (pixel_size_nm / 1000.0) ** 2


def _density(counts: dict, area_px: float | None, pixel_size_nm: float | None) -> float | None:
    area = _area_um2(area_px, pixel_size_nm)
    if not area:
        return None
    return (counts["detected"] - counts["below_floor"]) / area


def _wilson(successes: int, total: int) -> tuple[float | None, float | None]:
    """Wilson score 95 % interval of a proportion."""
    if total == 0:
        return None, None
    share = successes / total
    z2 = WILSON_Z**2
    centre = (share + z2 / (2 * total)) / (1 + z2 / total)
    half = WILSON_Z * math.sqrt(share * (1 - share) / total + z2 / (4 * total**2))
    half /= 1 + z2 / total
    return max(0.0, centre - half), min(1.0, centre + half)


def _verdict(nanomaterial: bool | None) -> str | None:
    if nanomaterial is None:
        return None
    if nanomaterial:
        return "nanomaterial by number (≥ 50 %)"
    return "not a nanomaterial by number (< 50 %)"


def _caveats(
    pixel_size_nm: float,
    min_area_px: int,
    counts: dict,
    keep_border: bool,
    ci_low: float | None,
    ci_high: float | None,
) -> list[str]:
    floor_nm = 2 * math.sqrt(min_area_px / math.pi) * pixel_size_nm
    caveats = [
        "2D projection: the minimum Feret of the projection stands in for the smallest "
        "external dimension; a particle's thickness along the beam is not seen",
        f"resolution limit: pixel size {pixel_size_nm:g} nm; particles under {min_area_px} px "
        f"(equivalent diameter < {floor_nm:.1f} nm) are left out "
        f"({counts['below_floor']} here), which can only lower the nano share",
    ]
    if keep_border:
        caveats.append(
            f"border particles included ({counts['touching_border']}): cut particles look "
            "smaller than they are"
        )
    else:
        caveats.append(
            f"border exclusion: {counts['touching_border']} particles touching the border are "
            "left out; large particles touch it more often"
        )
    if ci_low is not None and ci_low < NANO_SHARE <= ci_high:
        caveats.append("the 95 % interval of the share includes 50 %: the verdict is uncertain")
    return caveats


def _row(quantity: str, value, interval: dict | None = None, unit: str = "") -> dict:
    interval = interval or {}
    return {
        "quantity": quantity,
        "value": value,
        "ci_low": interval.get("ci_low"),
        "ci_high": interval.get("ci_high"),
        "unit": unit,
    }


def _number(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
