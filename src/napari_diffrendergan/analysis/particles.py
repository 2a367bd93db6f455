"""Particles from a 3-class segmentation, and their size and shape statistics (Mill et al.)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..render.labels import CONTOUR, PARTICLE

STATISTICS = ("area", "equivalent_diameter", "feret_max", "feret_min", "circularity")
# the default instance rule (how touching particles are split); docs/segmentation.md says how
# each value was chosen and what it measured
CORE_THRESHOLD = 0.95  # particle probability below which a dip splits; None: off
WATERSHED = False
SPLIT_DISTANCE = 12  # px between watershed peaks
MIN_AREA = 20  # px: smaller fragments are dropped
# px: a confident core smaller than this seeds no particle of its own when splitting at dips
MIN_SEED_AREA = 120


def instances_from_mask(
    mask: np.ndarray,
    contour_thickness: int = 1,
    watershed: bool = False,
    min_area: int = 4,
    split_distance: int = SPLIT_DISTANCE,
    particle_probability: np.ndarray | None = None,
    core_threshold: float | None = None,
    min_seed_area: int = MIN_SEED_AREA,
) -> np.ndarray:
    """Particle instances (uint16) from a 3-class mask.

    Particle-class pixels form 4-connected components (the contour class separates touching
    particles); each component then grows back into the surrounding contour ring. With
    ``core_threshold`` (and the network's ``particle_probability``), a component is split
    where that probability dips below the threshold between two confident cores of at least
    ``min_seed_area`` px (seeded watershed of the probability): touching particles whose
    contour the network only half drew. With ``watershed``, components are further split at
    narrow necks (distance-transform watershed from maxima at least ``split_distance`` px
    apart, about a half of a typical particle diameter) to separate touching particles the
    contour missed.
    Components smaller than ``min_area`` pixels are dropped.
    """
    from skimage.measure import label
    from skimage.segmentation import expand_labels, relabel_sequential

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"segmentation mask must be 2D, got shape {mask.shape}")
    cores = label(mask == PARTICLE, connectivity=1)
    if core_threshold is not None and not 0 < core_threshold < 1:
        raise InputError(f"core threshold must lie between 0 and 1, got {core_threshold}")
    if core_threshold is not None and cores.max() > 0:
        if particle_probability is None or np.shape(particle_probability) != mask.shape:
            raise InputError(
                "splitting at probability dips needs the particle probability map of the same "
                f"shape as the mask {mask.shape}: segment with the model again"
            )
        cores = _split_at_dips(
            cores, np.asarray(particle_probability), core_threshold, min_seed_area
        )
    if watershed and cores.max() > 0:
        cores = _split_touching(cores, split_distance)
    sizes = np.bincount(cores.ravel())
    cores[sizes[cores] < min_area] = 0
    particles = (mask == PARTICLE) | (mask == CONTOUR)
    grown = expand_labels(cores, distance=contour_thickness + 1)
    grown[~particles] = 0
    relabelled, _, _ = relabel_sequential(grown)
    return relabelled.astype(np.uint16)


def classic_instances(
    image: np.ndarray, split_distance: int = SPLIT_DISTANCE, min_area: int = MIN_AREA
) -> np.ndarray:
    """The classic route without a network (what one would do in Fiji): Otsu threshold, then a
    distance-transform watershed with peaks ``split_distance`` apart; pieces under
    ``min_area`` px dropped. The baseline the learned segmentations are compared with."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    from skimage.segmentation import relabel_sequential

    image = np.asarray(image, np.float32)
    components = label(image > threshold_otsu(image), connectivity=1)
    if components.max():
        components = _split_touching(components, split_distance)
    sizes = np.bincount(components.ravel())
    components[sizes[components] < min_area] = 0
    return relabel_sequential(components)[0].astype(np.uint16)


def _split_at_dips(
    cores: np.ndarray, probability: np.ndarray, threshold: float, min_seed_area: int
) -> np.ndarray:
    """Labelled ``cores`` split by a watershed of ``probability`` seeded from its 4-connected
    regions ≥ ``threshold`` (at least ``min_seed_area`` px); a core without such a seed stays
    whole."""
    from skimage.measure import label
    from skimage.segmentation import watershed

    seeds = label((probability >= threshold) & (cores > 0), connectivity=1)
    sizes = np.bincount(seeds.ravel())
    seeds[sizes[seeds] < min_seed_area] = 0
    seeded = np.zeros(int(cores.max()) + 1, bool)
    seeded[cores[seeds > 0]] = True
    seeded[0] = True
    whole = ~seeded[cores]
    seeds[whole] = seeds.max() + cores[whole]
    return watershed(-probability, seeds, mask=cores > 0, connectivity=1)


def _split_touching(cores: np.ndarray, min_distance: int) -> np.ndarray:
    """:func:`_split_apart` of labelled ``cores``; where labels touch (cores split at
    probability dips), label by label, so no basin floods from one into the other."""
    from scipy import ndimage

    if not _labels_touch(cores):
        return _split_apart(cores, min_distance)
    split = np.zeros(cores.shape, np.int64)
    count = 0
    for index, box in enumerate(ndimage.find_objects(cores), 1):
        if box is None:
            continue
        piece = _split_apart((cores[box] == index).astype(np.int32), min_distance)
        split[box][piece > 0] = piece[piece > 0] + count
        count += int(piece.max())
    return split


def _split_apart(cores: np.ndarray, min_distance: int) -> np.ndarray:
    """Distance-transform watershed of labelled ``cores`` that do not touch: one seed per local
    maximum of the distance (maximum over a (2·min_distance + 1)² window; a plateau of equal
    maxima is one seed), and one at the deepest point of any component left without a seed.
    Linear in the image size (skimage's ``peak_local_max`` slows to minutes on big flat
    blobs)."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    inside = cores > 0
    distance = ndimage.distance_transform_edt(inside)
    window = ndimage.maximum_filter(distance, size=2 * min_distance + 1)
    markers, count = ndimage.label((distance == window) & inside, structure=np.ones((3, 3)))
    seeded = np.zeros(int(cores.max()) + 1, bool)
    seeded[cores[markers > 0]] = True
    unseeded = np.flatnonzero(~seeded[1:]) + 1
    if len(unseeded):
        deepest = ndimage.maximum_position(distance, cores, unseeded)
        markers[tuple(np.array(deepest).T)] = count + np.arange(1, len(unseeded) + 1)
    return watershed(-distance, markers, mask=inside)


def _labels_touch(labels: np.ndarray) -> bool:
    """Whether two different non-zero labels are 4-neighbours anywhere."""
    for a, b in ((labels[:-1], labels[1:]), (labels[:, :-1], labels[:, 1:])):
        if ((a != b) & (a > 0) & (b > 0)).any():
            return True
    return False


def _feret(coords: np.ndarray) -> tuple[float, float]:
    """Max and min caliper diameters of a pixel set (convex hull of the pixel corners)."""
    from scipy.spatial import ConvexHull, QhullError

    corners = (
        (coords[:, None, :] + np.array([[0, 0], [0, 1], [1, 0], [1, 1]])[None])
        .reshape(-1, 2)
        .astype(np.float64)
    )
    try:
        hull = corners[ConvexHull(corners).vertices]
    except QhullError:  # degenerate (a line of pixels)
        extent = corners.max(axis=0) - corners.min(axis=0)
        return float(np.hypot(*extent)), float(extent.min())
    differences = hull[:, None, :] - hull[None, :, :]
    feret_max = float(np.sqrt((differences**2).sum(-1)).max())
    edges = np.roll(hull, -1, axis=0) - hull
    normals = np.stack([-edges[:, 1], edges[:, 0]], 1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    widths = (hull @ normals.T).max(axis=0) - (hull @ normals.T).min(axis=0)
    return feret_max, float(widths.min())


def particle_table(
    instances: np.ndarray, pixel_size_nm: float | None = None, foreground: np.ndarray | None = None
) -> dict:
    """Per-instance statistics as columns (dict of arrays), lengths in nm when the pixel size is
    known (else px): label, area, equivalent diameter, Feret max/min, circularity, centroid;
    with a ``foreground`` probability map also each particle's ``confidence`` (its mean
    foreground probability, which ranks detections for COCO-style AP)."""
    from skimage.measure import regionprops

    unit = "nm" if pixel_size_nm else "px"
    step = float(pixel_size_nm or 1.0)
    rows = []
    regions = regionprops(np.asarray(instances), intensity_image=foreground)
    for region in regions:
        feret_max, feret_min = _feret(region.coords)
        perimeter = region.perimeter
        circularity = 4 * np.pi * region.area / perimeter**2 if perimeter > 0 else 1.0
        rows.append(
            (
                region.label,
                region.area * step**2,
                region.equivalent_diameter_area * step,
                feret_max * step,
                feret_min * step,
                min(float(circularity), 1.0),
                region.centroid[0] * step,
                region.centroid[1] * step,
            )
        )
    names = [
        "label",
        f"area_{unit}2",
        f"equivalent_diameter_{unit}",
        f"feret_max_{unit}",
        f"feret_min_{unit}",
        "circularity",
        f"centroid_y_{unit}",
        f"centroid_x_{unit}",
    ]
    columns = np.array(rows, dtype=np.float64).reshape(-1, len(names))
    table = {name: columns[:, i] for i, name in enumerate(names)}
    table["label"] = table["label"].astype(np.int64)
    if foreground is not None:
        table["confidence"] = np.array([r.intensity_mean for r in regions], np.float64)
    return table


def table_rows(table: dict) -> list[dict]:
    """Columns to CSV-ready rows."""
    names = list(table)
    return [dict(zip(names, values, strict=True)) for values in zip(*table.values(), strict=True)]
