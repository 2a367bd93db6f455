"""Particle sizes and positions, and the transformation tensor Φ (m × n × (x, y, z, scale)).

Coordinates are mesh units with the image centre at the origin; ``z`` is the height of a
particle's lowest point above the stage (0 = resting on it).
"""

from __future__ import annotations

import zipfile

import numpy as np

from ..config import MaterialConfig, PlacementConfig, SizeDistribution
from ..errors import InputError

PHI_COLUMNS = ("x", "y", "z", "scale")


class PlacementError(InputError):
    """Particles cannot be placed as configured; the message says what to change."""


def sample_sizes(size: SizeDistribution, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` scale factors from the configured distribution, clipped to [minimum, maximum]."""
    p = size.params
    if size.kind == "normal":
        values = rng.normal(p["mean"], p["std"], n)
    elif size.kind == "lognormal":
        values = rng.lognormal(np.log(p["median"]), p["sigma"], n)
    elif size.kind == "bimodal":
        second = rng.random(n) < p["weight2"]
        values = np.where(
            second, rng.normal(p["mean2"], p["std2"], n), rng.normal(p["mean1"], p["std1"], n)
        )
    else:
        raise PlacementError(f"unknown size distribution {size.kind!r}")
    return np.clip(values, size.minimum, size.maximum)


def typical_size(size: SizeDistribution) -> float:
    """A representative scale (mean or median) used to turn relative distances into units."""
    p = size.params
    if size.kind == "bimodal":
        return (1 - p["weight2"]) * p["mean1"] + p["weight2"] * p["mean2"]
    return p.get("mean", p.get("median"))


def poisson_disk_points(
    extent_xy: float, height: float, radius: float, rng: np.random.Generator, tries: int = 30
) -> np.ndarray:
    """Bridson Poisson-disk points (no two closer than ``radius``) filling the slab
    [-extent/2, extent/2]² × [0, height]; candidates leaving a thin slab are reflected back
    into it, so slabs thinner than ``radius`` fill as densely as thick ones."""
    size = np.array([extent_xy, extent_xy, height], float)
    cell = radius / np.sqrt(3)  # at most one point per grid cell
    shape = np.maximum(1, np.ceil(size / cell)).astype(int)
    grid = np.full(shape + 4, -1)  # 2 cells of padding on each side: no bounds checks
    offsets = np.stack(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    points = np.empty((shape.prod() + 1, 3))  # one point per cell at most
    points[0] = rng.random(3) * size
    count = 1
    grid[tuple((points[0] // cell).astype(int) + 2)] = 0
    active = [0]
    while active:
        pick = int(rng.integers(len(active)))
        direction = rng.normal(size=(tries, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        distance = radius * np.cbrt(1 + 7 * rng.random(tries))  # uniform in the r..2r shell
        candidates = points[active[pick]] + direction * distance[:, None]
        z = np.abs(candidates[:, 2]) % (2 * height) if height > 0 else 0.0
        candidates[:, 2] = np.where(z > height, 2 * height - z, z)
        candidates = candidates[((candidates[:, :2] >= 0) & (candidates[:, :2] < size[:2])).all(1)]
        cells = np.minimum((candidates // cell).astype(int), shape - 1) + 2
        near = grid[tuple((cells[:, None, :] + offsets).transpose(2, 0, 1))]  # (tries, 125)
        which, slot = np.nonzero(near >= 0)  # distances to stored neighbours only
        gaps = np.linalg.norm(points[near[which, slot]] - candidates[which], axis=1)
        blocked = np.zeros(len(candidates), bool)
        blocked[which[gaps < radius]] = True
        free = np.flatnonzero(~blocked)
        if free.size:
            grid[tuple(cells[free[0]])] = count
            points[count] = candidates[free[0]]
            active.append(count)
            count += 1
        else:
            active[pick] = active[-1]
            active.pop()
    result = points[:count]
    result[:, :2] -= extent_xy / 2
    return result


def sample_positions(
    placement: PlacementConfig,
    n: int,
    field_width: float,
    rng: np.random.Generator,
    unit: float = 1.0,
) -> np.ndarray:
    """``n`` particle positions (x, y, z) for one constellation.

    ``unit`` is the typical particle size; Poisson-disk distances are multiples of it.
    """
    extent = field_width * (1 + 2 * placement.margin)
    if placement.kind == "random-2d":
        xy = rng.uniform(-extent / 2, extent / 2, (n, 2))
        return np.column_stack([xy, np.zeros(n)])
    if placement.kind == "random-3d":
        xy = rng.uniform(-extent / 2, extent / 2, (n, 2))
        return np.column_stack([xy, rng.uniform(0, placement.slab_height, n)])
    if placement.kind == "poisson-3d":
        radius = placement.min_distance * unit
        height = max(placement.slab_height, 1e-6)
        points = poisson_disk_points(extent, height, radius, rng)
        if len(points) < n:
            raise PlacementError(
                f"Only {len(points)} Poisson-disk points fit a {extent:.3g}×{extent:.3g}×"
                f"{height:.3g} slab at min_distance {radius:.3g}; {n} particles need more room: "
                "lower placement.min_distance or the mesh count, or raise scene.field_width or "
                "placement.slab_height."
            )
        if placement.dense_fraction > 0 and rng.random() < placement.dense_fraction:
            # one agglomerate grown from the field's central half, so the image holds most of it
            return _agglomerate(points, n, 1, rng, np.abs(points[:, :2]).max(1) <= extent / 4)
        return _agglomerate(points, n, placement.agglomerates, rng)
    raise PlacementError(f"unknown placement {placement.kind!r}")


def _agglomerate(
    points: np.ndarray,
    n: int,
    clusters: int,
    rng: np.random.Generator,
    seedable: np.ndarray | None = None,
):
    """Pick ``n`` of ``points`` as ``clusters`` compact groups: each group grows from a random
    seed point (among the ``seedable`` ones, if given) by taking the unused point nearest to
    it, round-robin across groups."""
    clusters = min(clusters, n)
    candidates = np.arange(len(points)) if seedable is None else np.flatnonzero(seedable)
    if len(candidates) < clusters:
        candidates = np.arange(len(points))
    seeds = points[rng.choice(candidates, clusters, replace=False)]
    order = [np.argsort(np.linalg.norm(points[:, :2] - s[:2], axis=1)) for s in seeds]
    cursor = [0] * clusters
    used = np.zeros(len(points), bool)
    chosen = []
    while len(chosen) < n:
        for c in range(clusters):
            if len(chosen) == n:
                break
            while used[order[c][cursor[c]]]:
                cursor[c] += 1
            index = order[c][cursor[c]]
            used[index] = True
            chosen.append(index)
    return points[chosen]


def constellation(config: MaterialConfig, rng: np.random.Generator) -> np.ndarray:
    """One constellation φ: (n, 4) array of x, y, z, scale."""
    n = config.meshes.count
    sizes = sample_sizes(config.size, n, rng)
    positions = sample_positions(
        config.placement, n, config.scene.field_width, rng, unit=typical_size(config.size)
    )
    positions[:, 2] += config.placement.lift
    return np.column_stack([positions, sizes]).astype(np.float32)


def transformation_tensor(config: MaterialConfig, m: int, seed: int) -> np.ndarray:
    """Φ: ``m`` seeded constellations, shape (m, n, 4) with columns :data:`PHI_COLUMNS`."""
    rng = np.random.default_rng(seed)
    return np.stack([constellation(config, rng) for _ in range(m)])


def save_transformation_tensor(path, phi: np.ndarray, seed: int) -> None:
    """Write Φ atomically as ``.npz`` with its seed and column names, for reuse by a run."""
    from ..io import write_npz_atomic

    write_npz_atomic(path, phi=phi, seed=seed, columns=np.array(PHI_COLUMNS))


def load_transformation_tensor(path) -> tuple[np.ndarray, int]:
    """Φ and its seed from :func:`save_transformation_tensor`; clear errors for bad files."""
    try:
        with np.load(path) as data:
            phi, seed, columns = data["phi"], int(data["seed"]), tuple(data["columns"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise PlacementError(f"{path}: not a transformation tensor file ({err})") from err
    if columns != PHI_COLUMNS or phi.ndim != 3 or phi.shape[2] != 4:
        raise PlacementError(f"{path}: expected an (m, n, 4) tensor with columns {PHI_COLUMNS}")
    return phi, seed
