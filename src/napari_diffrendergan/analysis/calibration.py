"""A scene prior measured from a user's own unannotated scans (docs/calibration.md).

A first-pass classic segmentation of each scan, which is not told whether the particles are
brighter or darker than the background, gives what such a segmentation supports:

- **phases**: the smoothed scan is split at Otsu's threshold (the same for the scan and its
  negative) into a bright and a dark phase; specks under :data:`MIN_AREA` px, and components
  that nowhere reach halfway from the threshold to their phase's median (texture, not
  objects), go to the other phase;
- **polarity**: the background is the phase that surrounds the other: its pixels lie far from
  the other phase, while every particle pixel lies within a particle radius of the
  background. So the particles are the *thinner* phase (the 90th percentile of its distance
  transform is the smaller), whichever is brighter; the scans vote, weighted by how clear each
  is;
- **particles**: the particle phase, holes filled, is split at narrow necks (a watershed of
  its distance transform, seeds a quarter of a first-guess diameter apart). A particle is
  *measured* if the image border does not cut it, it is convex (one particle, not two merged)
  and at least 60 % of its outline has no other particle within :data:`GAP` px: isolated
  particles and those on the rim of agglomerates, not those inside one, which others hide;
- **sizes**: the measured particles' equivalent circular diameters (wires: widths), their
  median, and a lognormal, a normal and a two-mode normal mixture fitted to them (BIC
  decides);
- **density** per µm²: the covered area over the mean area of a measured particle (wires:
  their ends, two per wire), and the covered area fraction;
- **agglomeration**: particles within :data:`GAP` px form a cluster; the share of particles in
  clusters of two or more and the cluster sizes;
- **shape family** (pebbles, spheres, cubes, wires) from the isolated particles' aspect ratio
  and the components' elongation;
- **film texture**: σ over mean of the lightly smoothed scan on the background away from the
  particles (per tile, the median): a calibrated preset's support film may reach
  :data:`FILM_HEADROOM` times it, so that a bright stage is not given the blotches a dark one
  hides.

Every figure has a percentile-bootstrap 95 % interval: over the measured particles for sizes
and shapes, over tiles of the scans (2 × 2 per scan) for coverage and agglomeration, both for
the density. No setting here was read off manual masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..data.phases import (
    MIN_AREA,
    MIN_CONTRAST,
    ScanPhases,
    polarity,
    scan_phases,
)
from ..errors import InputError
from ..render.meshes import width

FAMILIES = ("pebbles", "spheres", "cubes", "wires")
FAMILY_PRESETS = {
    "pebbles": "tio2-sem",
    "cubes": "tio2-him",
    "spheres": "sio2-him",
    "wires": "agnw-sem",
}
SOLIDITY = 0.9  # a component this convex, alone, is one particle (first-guess sizes)
GAP = 1  # px: particles this close touch (one cluster), as in the manual masks' 1-px lines
FREE_OUTLINE = 0.6  # share of a particle's outline touching none for it to be measured
MIN_MEASURED = 3  # measured particles needed for sizes
MIN_BIMODAL = 10  # measured particles needed to fit two modes
BIC_MARGIN = 6.0  # two modes only with strong evidence (Kass & Raftery 1995: ΔBIC > 6)
MIN_MODE_SHARE = 0.1  # and only where each mode holds this share of the particles
ONE_MODE = ("lognormal", "normal")  # the one-mode fits, of two parameters each
MIN_ISOLATED = 5  # isolated particles needed for the shape, else all measured ones are used
RESAMPLES = 1000
FILM_SMOOTHING = 2.0  # px: Gaussian σ that leaves the film's texture and removes pixel noise
FILM_MARGIN = 5  # px of background left out around the particles (their rims and halos)
FILM_MIN_PIXELS = 2000  # background pixels a tile needs for its texture
FILM_HEADROOM = 2.0  # a calibrated film's contrasts reach up to this multiple of the texture
SEED = 0
TILES = 2  # each scan is cut into TILES × TILES blocks for the bootstrap of area figures
# shape families, from renders of the built-in libraries (docs/calibration.md): the median
# length/width of the components, and the median aspect ratio (Feret max/min) of isolated
# particles, 1.03–1.12 for spheres, 1.2 for pebbles and 1.3–1.4 for the deformed cubes
WIRE_ELONGATION = 10.0
SPHERE_ASPECT = 1.15
CUBE_ASPECT = 1.27
PARTICLE_COLUMNS = (
    "tile",
    "component",
    "cut",
    "free",
    "diameter",
    "area",
    "aspect",
    "circularity",
    "solidity",
)
COMPONENT_COLUMNS = ("tile", "particles", "width", "elongation", "ends")


# a scene for dark particles on a bright stage, given to a calibrated preset whose --like is
# not a dark preset already (docs/calibration.md): lit from straight above alone (a ring light casts
# long shadows across a bright stage), a stage that reaches the detector's top, and particles
# darker than the stage over their whole range
DARK_SCENE = {"torus_radiance": 0.0, "rect_radiance": 220.0, "rect_size": 0.3}
DARK_LIMITS = {"particle_limits": (0.01, 0.8), "stage_limits": (0.1, 1.0)}


NO_PIXEL_SIZE = (
    "a preset states sizes in nm, and the pixel size of these scans is unknown: give it with "
    "--pixel-size NM (nm per pixel), or leave out --out to see the sizes in px"
)


class CalibrationError(InputError):
    """Scans that a scene prior cannot be measured from; the message says why."""


@dataclass(eq=False)
class ScanParticles:
    """The particles of one scan (one row per watershed piece of the particle phase) and its
    components (connected particles), with the tile (of :data:`TILES`²) each lies in."""

    name: str
    foreground: np.ndarray  # bool, the particle phase with holes filled
    particles: dict[str, np.ndarray]
    components: dict[str, np.ndarray]
    tiles: np.ndarray  # (TILES², 2): area (px) and foreground (px) of each tile


def scan_particles(phases: ScanPhases, polarity: str, split: float) -> ScanParticles:
    """The particles and components of a scan whose particles have ``polarity``, split at
    necks with watershed seeds ``split`` px apart."""
    from scipy import ndimage
    from skimage.measure import label, regionprops

    from .particles import _split_apart

    foreground = particle_foreground(phases, polarity)
    pieces = _split_apart(label(foreground, connectivity=2), max(1, round(split)))
    components = label(ndimage.binary_dilation(foreground, iterations=GAP), connectivity=2)
    components[~foreground] = 0
    alone = _alone(pieces)
    rows = [
        _particle_row(region, components, alone)
        for region in regionprops(pieces)
        if region.area >= MIN_AREA
    ]
    particles = _columns(rows, PARTICLE_COLUMNS)
    counts = np.bincount(particles["component"].astype(int), minlength=components.max() + 1)
    parts = [
        _component_row(r, counts[r.label], foreground.shape)
        for r in regionprops(components)
        if counts[r.label]
    ]
    return ScanParticles(
        phases.name, foreground, particles, _columns(parts, COMPONENT_COLUMNS), _tiles(foreground)
    )


def particle_foreground(phases: ScanPhases, polarity: str) -> np.ndarray:
    """The scan's particles of ``polarity``: its phase of that brightness, holes filled."""
    from scipy import ndimage

    return ndimage.binary_fill_holes(phases.bright if polarity == "bright" else ~phases.bright)


def _columns(rows: list[dict], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {name: np.array([row[name] for row in rows], float) for name in names}


def _tile(centre, shape) -> int:
    """Index of the tile (row-major, :data:`TILES` × :data:`TILES`) holding ``centre``."""
    row = min(int(centre[0] * TILES / shape[0]), TILES - 1)
    column = min(int(centre[1] * TILES / shape[1]), TILES - 1)
    return row * TILES + column


def _tile_windows(shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """The :data:`TILES` × :data:`TILES` windows of an image of ``shape`` (row-major)."""
    rows = np.array_split(np.arange(shape[0]), TILES)
    columns = np.array_split(np.arange(shape[1]), TILES)
    return [np.s_[r[0] : r[-1] + 1, c[0] : c[-1] + 1] for r in rows for c in columns]


def _tiles(foreground: np.ndarray) -> np.ndarray:
    """Area and covered area (px) of each tile."""
    return np.array(
        [(foreground[w].size, foreground[w].sum()) for w in _tile_windows(foreground.shape)],
        float,
    )


def _cut(bbox, shape) -> bool:
    top, left, bottom, right = bbox
    return min(top, left) == 0 or bottom == shape[0] or right == shape[1]


def _alone(pieces: np.ndarray) -> np.ndarray:
    """Pixels with no other particle within :data:`GAP` px."""
    from scipy import ndimage

    size = 2 * GAP + 1
    highest = ndimage.maximum_filter(pieces, size=size)
    lowest = ndimage.minimum_filter(np.where(pieces > 0, pieces, pieces.max() + 1), size=size)
    return (highest == pieces) & (lowest == pieces)


def _particle_row(region, components: np.ndarray, alone: np.ndarray) -> dict:
    """One particle's tile and cluster, whether the border cuts it, the share of its outline
    with no other particle within :data:`GAP` px (``free``), its size (px) and shape."""
    from scipy import ndimage

    from .particles import _feret

    outline = region.image & ~ndimage.binary_erosion(region.image, border_value=0)
    feret_max, feret_min = _feret(region.coords)
    perimeter = region.perimeter
    return {
        "tile": _tile(region.centroid, components.shape),
        "component": components[tuple(region.coords[0])],
        "cut": _cut(region.bbox, components.shape),
        "free": alone[region.slice][outline].mean() if outline.any() else 0.0,
        "diameter": region.equivalent_diameter_area,
        "area": region.area,
        "aspect": feret_max / max(feret_min, 1.0),
        "circularity": min(4 * np.pi * region.area / perimeter**2, 1.0) if perimeter else 1.0,
        "solidity": region.solidity,
    }


def _component_row(region, particles: int, shape: tuple[int, int]) -> dict:
    """One component's tile, particles, width (px), length/width and skeleton ends that lie
    more than a width from the image border (the ends of wires)."""
    from skimage.morphology import skeletonize

    ridge = skeletonize(np.pad(region.image, 1))
    wide = width(region.image)
    ends = np.argwhere(ridge & (_neighbours(ridge) == 1)) - 1 + np.array(region.bbox[:2])
    margin = max(wide, 1.0)
    inside = (ends >= margin).all(1) & (ends < np.array(shape) - margin).all(1)
    return {
        "tile": _tile(region.centroid, shape),
        "particles": particles,
        "width": wide,
        "elongation": ridge.sum() / max(wide, 1.0),
        "ends": int(inside.sum()),
    }


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """Number of 8-neighbours in ``mask`` of every pixel."""
    from scipy import ndimage

    kernel = np.ones((3, 3), int)
    kernel[1, 1] = 0
    return ndimage.convolve(mask.astype(int), kernel, mode="constant")


def calibrate(images, pixel_size_nm: float | None = None, monitor=None) -> dict:
    """The scene prior of ``images`` (``(name, 2D array)`` pairs) as a JSON-ready report:
    polarity, shape family, sizes (nm with a pixel size, else px), density, coverage and
    agglomeration, each with a 95 % interval (module docstring)."""
    from ..progress import ensure

    monitor = ensure(monitor)
    steps = 2 * len(images)
    phases, notes = [], []
    for done, (name, image) in enumerate(images):
        monitor.check()
        monitor.report(done, steps, f"phases of {name}")
        phases.append(scan_phases(image, name))
    usable = [p for p in phases if p.contrast >= MIN_CONTRAST]
    notes += [
        f"{p.name}: no particles stand out from the noise; left out"
        for p in phases
        if p.contrast < MIN_CONTRAST
    ]
    if not usable:
        raise CalibrationError(
            "no particles found: no scan holds anything that stands out from its noise "
            f"(needs a contrast of {MIN_CONTRAST:g} noise σ): check the files"
        )
    chosen, evidence = polarity(usable)
    split = _split_distance(usable, chosen)
    scans, textures = [], []
    pixels = [image for (_, image), p in zip(images, phases, strict=True) if p in usable]
    for done, (scan, image) in enumerate(zip(usable, pixels, strict=True), len(images)):
        monitor.check()
        monitor.report(done, steps, f"particles of {scan.name}")
        scans.append(scan_particles(scan, chosen, split))
        textures.append(background_texture(image, scans[-1].foreground))
    report = _report(scans, pixel_size_nm)
    report["estimates"]["film_texture"] = _median_with_ci(np.concatenate(textures))
    report.update(polarity=chosen, polarity_evidence=evidence, scans=len(scans))
    report["notes"] = notes + report["notes"]
    return report


def background_texture(image: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """σ / mean of ``image`` smoothed by :data:`FILM_SMOOTHING` px over its background at least
    :data:`FILM_MARGIN` px from the ``foreground``, per tile (:data:`TILES`²); tiles with too
    little background or a mean ≤ 0 (no zero to be relative to) are left out."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(np.asarray(image, np.float64), FILM_SMOOTHING)
    background = ~ndimage.binary_dilation(foreground, iterations=FILM_MARGIN)
    textures = []
    for window in _tile_windows(image.shape):
        values = smooth[window][background[window]]
        if len(values) >= FILM_MIN_PIXELS and values.mean() > 0:
            textures.append(values.std() / values.mean())
    return np.array(textures)


def _split_distance(scans: list[ScanPhases], chosen: str) -> float:
    """A quarter of the median diameter of the convex particle-phase components that the
    border does not cut (a first guess of the particle size), at least 2 px."""
    from skimage.measure import label, regionprops

    diameters = []
    for scan in scans:
        phase = scan.bright if chosen == "bright" else ~scan.bright
        diameters += [
            r.equivalent_diameter_area
            for r in regionprops(label(phase, connectivity=2))
            if r.solidity >= SOLIDITY and not _cut(r.bbox, phase.shape)
        ]
    return max(2.0, float(np.median(diameters)) / 4) if diameters else 2.0


def _pooled(scans: list[ScanParticles], table: str) -> dict[str, np.ndarray]:
    """One table of every scan's ``particles`` or ``components``, tiles numbered across scans."""
    tiles = TILES * TILES
    pooled = {
        name: np.concatenate([getattr(s, table)[name] for s in scans])
        for name in getattr(scans[0], table)
    }
    offsets = [np.full(len(getattr(s, table)["tile"]), i * tiles) for i, s in enumerate(scans)]
    pooled["tile"] = pooled["tile"] + np.concatenate(offsets)
    return pooled


def _report(scans: list[ScanParticles], pixel_size_nm: float | None) -> dict:
    particles, components = _pooled(scans, "particles"), _pooled(scans, "components")
    tiles = np.concatenate([s.tiles for s in scans])
    measured = (
        (particles["cut"] == 0)
        & (particles["free"] >= FREE_OUTLINE)
        & (particles["solidity"] >= SOLIDITY)
    )
    family, shape = shape_family(particles, components, measured)
    diameters = components["width"] if family == "wires" else particles["diameter"][measured]
    if len(diameters) < MIN_MEASURED:
        raise CalibrationError(
            f"no particles found: only {len(diameters)} whole particle(s) with most of their "
            f"outline free (needs {MIN_MEASURED}); give more scans or scans with more particles"
        )
    unit, step = ("nm", pixel_size_nm) if pixel_size_nm else ("px", 1.0)
    sizes = size_summary(diameters * step)
    isolated = measured & (particles["free"] >= 1)
    sizes["isolated_median"] = _median_with_ci(particles["diameter"][isolated] * step)
    density = _density(particles, components, tiles, measured, family, pixel_size_nm)
    report = {
        "unit": unit,
        "pixel_size_nm": pixel_size_nm,
        "family": family,
        "median_diameter_nm": sizes["median"]["value"] if pixel_size_nm else None,
        "median_diameter_px": sizes["median"]["value"] / step,
        "density_per_um2": density["value"] if pixel_size_nm else None,
        "counts": {
            "particles": len(particles["area"]),
            "measured": int(measured.sum()),
            "isolated": int((measured & (particles["free"] >= 1)).sum()),
            "clusters": int((components["particles"] >= 2).sum()),
        },
        "estimates": {
            "diameter": sizes,
            "density_per_um2" if pixel_size_nm else "density_per_megapixel": density,
            "coverage": _tile_ratio(tiles[:, 1], tiles[:, 0]),
            **agglomeration(components),
            "shape": shape,
        },
        "size_fit": fit_sizes(diameters * step),
        "diameters": [float(d) for d in diameters * step],
        "notes": []
        if pixel_size_nm
        else ["pixel size unknown: sizes in px, density per megapixel"],
    }
    return report


def _density(particles, components, tiles, measured, family: str, pixel_size_nm) -> dict:
    """Particles per µm² (per megapixel without a pixel size): the covered area over the mean
    area of a measured particle (watershed splits of agglomerates miscount them), with an
    interval from resampling tiles and measured particles; wires by their ends, two per wire
    (a wire's area depends on its unknown length)."""
    area = tiles[:, 0] * ((pixel_size_nm / 1000) ** 2 if pixel_size_nm else 1e-6)
    if family == "wires":
        ends = np.bincount(components["tile"].astype(int), components["ends"] / 2, len(tiles))
        return _tile_ratio(ends, area)
    coverage = _tile_draws(tiles[:, 1], area)
    sizes = particles["area"][measured]
    rng = np.random.default_rng(SEED + 1)
    mean_area = sizes[rng.integers(len(sizes), size=(RESAMPLES, len(sizes)))].mean(1)
    low, high = np.percentile(coverage / mean_area, [2.5, 97.5])
    value = tiles[:, 1].sum() / area.sum() / sizes.mean()
    return {"value": float(value), "ci": [float(low), float(high)]}


def agglomeration(components: dict[str, np.ndarray]) -> dict:
    """Share of particles in clusters of two or more (tile bootstrap) and the clusters' sizes
    in particles (median with an interval over clusters, 90th percentile, largest)."""
    sizes = components["particles"]
    tiles = components["tile"].astype(int)
    count = int(tiles.max()) + 1 if len(tiles) else 1
    clustered = np.bincount(tiles, np.where(sizes >= 2, sizes, 0), count)
    share = _tile_ratio(clustered, np.bincount(tiles, sizes, count))
    clusters = sizes[sizes >= 2]
    return {
        "share_in_clusters": share,
        "cluster_size": {
            **_median_with_ci(clusters),
            "p90": float(np.percentile(clusters, 90)) if len(clusters) else None,
            "largest": int(clusters.max()) if len(clusters) else None,
        },
    }


def shape_family(particles, components, measured: np.ndarray) -> tuple[str, dict]:
    """Pebbles, spheres, cubes or wires (module constants), and the shape figures it rests on:
    the isolated particles' (else all measured ones') aspect ratio, circularity and solidity,
    and the components' length/width."""
    isolated = measured & (particles["free"] >= 1)
    chosen = isolated if isolated.sum() >= MIN_ISOLATED else measured
    shape = {
        name: _median_with_ci(particles[name][chosen])
        for name in ("aspect", "circularity", "solidity")
    }
    shape["elongation"] = _median_with_ci(components["elongation"])
    aspect, elongation = shape["aspect"]["value"], shape["elongation"]["value"]
    if elongation is not None and elongation >= WIRE_ELONGATION:
        family = "wires"
    elif aspect is None or SPHERE_ASPECT <= aspect < CUBE_ASPECT:
        family = "pebbles"
    else:
        family = "spheres" if aspect < SPHERE_ASPECT else "cubes"
    return family, shape


def interval_text(estimate: dict, scale: float = 1.0) -> str:
    """An estimate's 95 % interval as "low–high", times ``scale`` ("?" for an unknown bound)."""
    return "–".join(f"{scale * v:.3g}" if v is not None else "?" for v in estimate["ci"])


def size_summary(diameters: np.ndarray) -> dict:
    """Median, 10th and 90th percentile of ``diameters`` with bootstrap intervals."""
    return {
        "median": _median_with_ci(diameters),
        "p10": _percentile_with_ci(diameters, 10),
        "p90": _percentile_with_ci(diameters, 90),
        "count": int(len(diameters)),
    }


def _median_with_ci(values: np.ndarray) -> dict:
    return _percentile_with_ci(values, 50)


def _percentile_with_ci(values: np.ndarray, q: float) -> dict:
    """The ``q``-th percentile of ``values`` and its percentile-bootstrap 95 % interval."""
    values = np.asarray(values, float)
    if not len(values):
        return {"value": None, "ci": [None, None]}
    rng = np.random.default_rng(SEED)
    draws = values[rng.integers(len(values), size=(RESAMPLES, len(values)))]
    low, high = np.percentile(np.percentile(draws, q, axis=1), [2.5, 97.5])
    return {"value": float(np.percentile(values, q)), "ci": [float(low), float(high)]}


def _tile_ratio(numerator: np.ndarray, denominator: np.ndarray) -> dict:
    """Σ numerator / Σ denominator over tiles, with a bootstrap interval over tiles."""
    total = denominator.sum()
    if total <= 0:
        return {"value": None, "ci": [None, None]}
    low, high = np.percentile(_tile_draws(numerator, denominator), [2.5, 97.5])
    return {"value": float(numerator.sum() / total), "ci": [float(low), float(high)]}


def _tile_draws(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """:data:`RESAMPLES` ratios Σ numerator / Σ denominator of tiles drawn with replacement."""
    rng = np.random.default_rng(SEED)
    picks = rng.integers(len(numerator), size=(RESAMPLES, len(numerator)))
    return numerator[picks].sum(1) / np.maximum(denominator[picks].sum(1), 1e-12)


def fit_sizes(diameters: np.ndarray) -> dict:
    """A lognormal, a normal and (from :data:`MIN_BIMODAL` particles) a two-mode normal
    mixture fitted by maximum likelihood, each with its BIC; ``chosen``: the mixture where its
    BIC is lower than the better one-mode fit's by more than :data:`BIC_MARGIN` and each mode
    holds :data:`MIN_MODE_SHARE` of the particles (a smaller mode is a tail: merged particles,
    debris), else the one-mode fit of the lower BIC (a lognormal's long tail of large particles
    or a normal's symmetric spread: whichever the diameters show)."""
    fits = {"lognormal": fit_lognormal(diameters), "normal": fit_normal(diameters)}
    one = _better_one_mode(fits)
    if len(diameters) >= MIN_BIMODAL:
        fits["bimodal"] = fit_bimodal(diameters)
    two = fits.get("bimodal", {"bic": math.inf, "weight2": 0.0})
    clear = two["bic"] < fits[one]["bic"] - BIC_MARGIN
    populous = MIN_MODE_SHARE <= two["weight2"] <= 1 - MIN_MODE_SHARE
    return {"chosen": "bimodal" if clear and populous else one, **fits}


def fit_lognormal(values: np.ndarray) -> dict:
    """Maximum-likelihood lognormal: median, sigma (σ of the log) and BIC."""
    logs = np.log(values)
    mu, sigma = float(logs.mean()), max(float(logs.std()), 1e-6)
    loglik = _normal_loglik(logs, mu, sigma) - float(logs.sum())
    return {"median": math.exp(mu), "sigma": sigma, "bic": _bic(loglik, 2, len(values))}


def fit_normal(values: np.ndarray) -> dict:
    """Maximum-likelihood normal: mean, std and BIC."""
    mean, std = float(values.mean()), max(float(values.std()), 1e-6 * float(values.mean()))
    loglik = _normal_loglik(values, mean, std)
    return {"mean": mean, "std": std, "bic": _bic(loglik, 2, len(values))}


def _normal_loglik(values: np.ndarray, mean: float, std: float) -> float:
    """Log likelihood of ``values`` under a normal."""
    return float(
        np.sum(-np.log(std * math.sqrt(2 * math.pi)) - (values - mean) ** 2 / (2 * std**2))
    )


def _better_one_mode(fits: dict) -> str:
    """The one-mode fit (:data:`ONE_MODE`) of the lower BIC among those in ``fits``."""
    return min((kind for kind in ONE_MODE if kind in fits), key=lambda kind: fits[kind]["bic"])


def fit_bimodal(values: np.ndarray, iterations: int = 500) -> dict:
    """Two-mode normal mixture by expectation-maximisation, started from splits at the
    quartiles and the median (the best likelihood kept): mean1/std1 the smaller mode,
    mean2/std2 and weight2 the larger, and the BIC."""
    best = None
    for split in np.percentile(values, [25, 50, 75]):
        fit = _em(values, values > split, iterations)
        if fit and (best is None or fit[1] > best[1]):
            best = fit
    if best is None:
        return {"bic": math.inf, "weight2": 0.0}
    (w2, m1, s1, m2, s2), loglik = best
    return {
        "mean1": m1,
        "std1": s1,
        "mean2": m2,
        "std2": s2,
        "weight2": w2,
        "bic": _bic(loglik, 5, len(values)),
    }


def _em(values: np.ndarray, second: np.ndarray, iterations: int):
    """EM from the split ``second``; ((weight2, mean1, std1, mean2, std2), log likelihood)."""
    if second.all() or not second.any():
        return None
    floor = 1e-3 * float(np.median(values))
    resp = second.astype(float)
    for _ in range(iterations):
        w2 = resp.mean()
        m1, m2 = np.average(values, weights=1 - resp), np.average(values, weights=resp)
        s1 = max(math.sqrt(np.average((values - m1) ** 2, weights=1 - resp)), floor)
        s2 = max(math.sqrt(np.average((values - m2) ** 2, weights=resp)), floor)
        p1 = (1 - w2) * _normal(values, m1, s1)
        p2 = w2 * _normal(values, m2, s2)
        total = np.maximum(p1 + p2, 1e-300)
        resp = p2 / total
        if not 0 < resp.sum() < len(values):
            return None
    params = (w2, m1, s1, m2, s2) if m1 <= m2 else (1 - w2, m2, s2, m1, s1)
    return tuple(float(p) for p in params), float(np.log(total).sum())


def _normal(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return np.exp(-((x - mean) ** 2) / (2 * std**2)) / (std * math.sqrt(2 * math.pi))


def _bic(loglik: float, parameters: int, count: int) -> float:
    return float(parameters * math.log(count) - 2 * loglik)


def read_scans(
    paths, pixel_size_nm: float | None = None, exclude_bottom: int | str = 0
) -> tuple[list[tuple[str, np.ndarray]], float | None]:
    """The scans named (files, or the images in folders) as ``(name, gray image)``, a data bar
    of ``exclude_bottom`` rows left out (``"auto"``: the bar each scan shows, at its bottom or
    top, :func:`~napari_diffrendergan.data.scans.find_data_bar`), and their pixel size:
    ``pixel_size_nm``, else the one their sidecars (or metadata) agree on, else None."""
    from pathlib import Path

    from ..io import IMAGE_SUFFIXES, distinct_files, positive_pixel_size, read_image

    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    if not files:
        raise CalibrationError("no scans given: name image files or folders holding them")
    scans, sidecars = [], {}
    for path in distinct_files(files):
        image, sidecars[path.name] = read_image(path)
        scans.append((path.stem, without_bar(image, exclude_bottom, str(path))))
    return scans, positive_pixel_size(pixel_size_nm) or _agreed(sidecars)


def without_bar(image: np.ndarray, exclude_bottom: int | str, name: str) -> np.ndarray:
    """``image`` (gray or RGB) as a gray float image without the data bar ``exclude_bottom``
    names (rows at the bottom, or ``"auto"``: the bar it shows); ``name`` for errors."""
    from ..data.scans import bar_to_leave_out
    from ..io import as_gray

    image = as_gray(image)[0]
    bar = bar_to_leave_out(image, exclude_bottom)
    top, stop = bar.kept_rows(image.shape[0]) if bar else (0, image.shape[0])
    if stop - top < 16:
        raise CalibrationError(
            f"{name}: cannot leave out {bar.rows} of its {image.shape[0]} rows (at least 16 "
            "must remain): lower the rows to exclude"
        )
    return image[top:stop]


def _agreed(sidecars: dict[str, float | None]) -> float | None:
    """The pixel size all scans' sidecars give, None if none gives one."""
    sizes = {size for size in sidecars.values() if size is not None}
    if len(sizes) > 1 or (sizes and None in sidecars.values()):
        listed = ", ".join(f"{name}: {size or 'none'}" for name, size in sidecars.items())
        raise CalibrationError(
            f"the scans' sidecars disagree on the pixel size ({listed[:300]}): calibrate scans of "
            "one pixel size together, or give it with --pixel-size"
        )
    return sizes.pop() if sizes else None


def measured_family(report: dict) -> str:
    """The shape family the scans showed (``family`` is the preset's: rendering may choose
    another, :func:`~.matching.choose_shape`)."""
    return report.get("shape_choice", {}).get("measured", report["family"])


def fields_scale(report: dict) -> float:
    """The factor from the scans' density to that of their particle fields, which the prior
    renders (:func:`~.matching.fields_record`; 1 without fields)."""
    fields = report.get("fields")
    return fields["scale"] if fields else 1.0


def calibrated_config(report: dict, like=None, name: str = "calibrated"):
    """A :class:`~napari_diffrendergan.config.MaterialConfig` with the measured geometry in a
    ``physical`` section (the chosen size fit, the density of the particle fields, the
    polarity) and the family's mesh library; everything else (lighting, learning limits,
    placement) from ``like``, default the preset of the family (:data:`FAMILY_PRESETS`). Dark
    particles get :data:`DARK_SCENE` and :data:`DARK_LIMITS` unless ``like`` is a dark preset
    already."""
    import copy

    from ..config import PhysicalConfig, SizeDistribution, preset

    if not report.get("pixel_size_nm"):
        raise CalibrationError(NO_PIXEL_SIZE)
    config = copy.deepcopy(like) if like is not None else preset(FAMILY_PRESETS[report["family"]])
    source = config.name
    relit = report["polarity"] == "dark" and config.polarity != "dark"
    if relit:
        config.scene = replace(config.scene, **DARK_SCENE)
        config.learning = replace(config.learning, **DARK_LIMITS)
    film = _film_cap(config, report)
    fit = report["size_fit"]
    params = {k: v for k, v in fit[fit["chosen"]].items() if k != "bic"}
    typical = report["median_diameter_nm"]
    config.physical = PhysicalConfig(
        pixel_size_nm=report["pixel_size_nm"],
        diameter=SizeDistribution(fit["chosen"], params, 0.05 * typical, 10 * typical),
        density_per_um2=report["density_per_um2"] * fields_scale(report),
        polarity=report["polarity"],
    )
    config.name = name
    config.meshes.library = report["family"]
    config.description = (
        f"Calibrated from {report['scans']} scan(s) without annotation: {report['polarity']} "
        f"{report['family']}, median diameter {typical:.4g} nm, "
        f"{config.physical.density_per_um2:.4g} particles/µm²"
        + (" (in the particle fields)" if report.get("fields") else "")
        + f" at {report['pixel_size_nm']:.4g} nm/px; scene and learning of {source}"
        + (", lit from above with a bright stage for dark particles." if relit else ".")
        + film
    )
    return config.validate()


def _film_cap(config, report: dict) -> str:
    """Caps ``config``'s film contrasts at :data:`FILM_HEADROOM` × the scans' film texture
    where that is lower than its limit; what it did, for the description ("" if nothing)."""
    texture = report.get("estimates", {}).get("film_texture", {}).get("value")
    low, high = config.learning.film_limits
    if not config.learning.film or texture is None or not low < FILM_HEADROOM * texture < high:
        return ""
    cap = FILM_HEADROOM * texture
    config.learning = replace(config.learning, film_limits=(low, cap))
    return (
        f" Support-film contrasts up to {cap:.3g} ({FILM_HEADROOM:g} × the scans' texture "
        f"{texture:.3g}; {config.name} allows {high:.3g})."
    )


def size_fit_reason(fit: dict) -> str:
    """Why :func:`fit_sizes` chose its fit, for people."""
    one = _better_one_mode(fit)
    other = ONE_MODE[1 - ONE_MODE.index(one)]
    lead = one
    if other in fit:  # reports made before normal fits have only the lognormal
        lead += f": BIC {fit[other]['bic'] - fit[one]['bic']:.1f} lower than a {other}'s"
    if "bimodal" not in fit:
        return f"{lead}; two modes need {MIN_BIMODAL} particles measured whole"
    two = fit["bimodal"]
    gain = fit[one]["bic"] - two["bic"]
    smaller = 100 * min(two["weight2"], 1 - two["weight2"])
    if fit["chosen"] == "bimodal":
        return (
            f"two modes: BIC lower by {gain:.1f} than a {one}'s (> {BIC_MARGIN:g}) and the "
            f"smaller mode holds {smaller:.0f} % of the particles"
        )
    if gain <= 0:
        return f"{lead}; two modes raise the BIC by {-gain:.1f}"
    if gain <= BIC_MARGIN:
        return f"{lead}; two modes lower the BIC by {gain:.1f}, not more than {BIC_MARGIN:g}"
    return (
        f"{lead}; two modes lower the BIC by {gain:.1f}, but the smaller mode holds only "
        f"{smaller:.0f} % (under {100 * MIN_MODE_SHARE:.0f} %: a tail, not a population)"
    )


EDITABLE = {
    "kind": "size distribution",
    "median_nm": "median diameter",
    "sigma": "spread",
    "density_per_um2": "density",
    "polarity": "polarity",
    "family": "shape family",
}


def preset_values(report: dict) -> dict:
    """The values :func:`calibrated_config` puts into the preset, as :func:`edited_config`
    takes them: ``kind`` (the size fit), ``median_nm`` (the fit's typical diameter: a
    lognormal's median, a normal's mean, the mean of two modes), ``sigma`` (the spread: of
    the log for a lognormal, std over mean for a normal; two modes show the lognormal's),
    ``density_per_um2``, ``polarity`` and ``family``."""
    from ..config import SizeDistribution, _typical

    fit = report["size_fit"]
    params = {k: v for k, v in fit[fit["chosen"]].items() if k != "bic"}
    return {
        "kind": fit["chosen"],
        "median_nm": _typical(SizeDistribution(fit["chosen"], params)),
        "sigma": (
            params["std"] / params["mean"]
            if fit["chosen"] == "normal"
            else fit["lognormal"]["sigma"]
        ),
        "density_per_um2": report["density_per_um2"] * fields_scale(report),
        "polarity": report["polarity"],
        "family": report["family"],
    }


def edited_config(report: dict, values: dict, like=None, name: str = "calibrated"):
    """:func:`calibrated_config` with ``values`` (keys of :func:`preset_values`) in place of
    the measured ones: two modes are scaled to the typical diameter given, a lognormal or a
    normal takes it as its median and ``sigma`` as its spread (values not given: those of the
    fit of ``kind``); the description names what was edited."""
    import copy

    edited = copy.deepcopy(report)
    fit = edited["size_fit"]
    kind = values.get("kind", fit["chosen"])
    if kind not in fit:
        why = "the scans gave too few particles for two modes"
        if kind != "bimodal":
            why = "the calibration was made before this fit existed; calibrate again"
        raise CalibrationError(f"no {kind} fit to edit: {why}")
    fit["chosen"] = kind
    measured = preset_values(edited)
    values = {**measured, **values}
    if kind == "lognormal":
        fit["lognormal"].update(median=values["median_nm"], sigma=values["sigma"])
    elif kind == "normal":
        fit["normal"].update(mean=values["median_nm"], std=values["sigma"] * values["median_nm"])
    else:
        factor = values["median_nm"] / measured["median_nm"]
        for key in ("mean1", "std1", "mean2", "std2"):
            fit["bimodal"][key] *= factor
    edited.update({k: values[k] for k in ("polarity", "family")})
    if values["density_per_um2"] != measured["density_per_um2"]:
        edited.pop("fields", None)  # the density given is the preset's, fields included
        edited["density_per_um2"] = values["density_per_um2"]
    changed = ["kind"] if kind != report["size_fit"]["chosen"] else []
    changed += [key for key in measured if key != "kind" and values[key] != measured[key]]
    if "median_nm" in changed:
        edited["median_diameter_nm"] = values["median_nm"]
    config = calibrated_config(edited, like, name)
    if changed:
        names = ", ".join(EDITABLE[key] for key in changed)
        config.description += f" Edited by hand: {names}."
    return config
