"""Local thickness of nanowire masks (paper Fig. 5), its distributions and per-wire statistics.

Local thickness at a foreground pixel is the diameter of the largest disk that contains the
pixel and lies inside the foreground (Hildebrand & Rüegsegger 1997). With ``D`` the Euclidean
distance of a pixel centre to the nearest background pixel centre, the disk centred at ``c`` is
``{p : |p - c| < D(c)}`` and the thickness is ``2 max D(c)`` over the disks containing ``p``; this
is the convention of the ``localthickness`` package (it returns the radius ``D``), so a wire ``w``
pixels wide measures ``w`` (``w + 1`` for odd ``w``).

:func:`local_thickness` computes it exactly and fast: disks contained in a neighbour's disk are
dropped (an exact test on the pixel grid) and only the remaining ones are painted, one radius at
a time. :func:`local_thickness_reference` is the slow definition itself. The ``localthickness``
package (Dahl & Dahl 2023) can be chosen instead (``method="localthickness"``): it approximates
the distance map and disks by iterated morphology, slower and up to tens of px off at wire
crossings and ends (docs/thickness.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..progress import Monitor, ensure

NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
METHODS = ("exact", "localthickness")


class ThicknessError(InputError):
    """The input cannot be analysed; the message says why."""


def as_binary_mask(mask: np.ndarray) -> np.ndarray:
    """A 2D boolean foreground mask (every nonzero pixel) from a binary or label image, with
    clear errors; fractional values (a probability map or a scan, not a mask) are refused."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ThicknessError(
            f"local thickness needs a 2D mask, got shape {mask.shape}"
            + (" (3D/RGB: pick one plane or channel first)" if mask.ndim == 3 else "")
        )
    if mask.dtype.kind not in "biuf":
        raise ThicknessError(f"the mask must be numeric or boolean, got {mask.dtype}")
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise ThicknessError("the mask contains NaN or infinite values")
    if mask.dtype.kind == "f" and (mask != np.round(mask)).any():
        raise ThicknessError(
            "the mask holds fractional values (a probability map or an image?): threshold it "
            "into a mask first"
        )
    binary = mask != 0
    if not binary.any():
        raise ThicknessError("the mask is empty: no foreground pixel to measure")
    if binary.all():
        raise ThicknessError(
            "the mask is foreground everywhere: thickness is undefined without background"
        )
    return binary


def _distance(binary: np.ndarray) -> np.ndarray:
    import edt

    return edt.edt(binary, black_border=False, parallel=0).astype(np.float32)


def _disk_offsets(radius_squared: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (dy, dx) with dy² + dx² < radius_squared."""
    r = int(np.ceil(np.sqrt(radius_squared)))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    inside = dy**2 + dx**2 < radius_squared
    return dy[inside], dx[inside]


def _farthest_table(values: np.ndarray) -> np.ndarray:
    """For each neighbour direction k and disk radius² ``values[i]``: the largest squared
    distance from the neighbour's centre to a point of the disk (a running maximum over the
    grid points sorted by their distance to the disk's centre)."""
    dy, dx = _disk_offsets(int(values.max()))
    squared = dy**2 + dx**2
    order = np.argsort(squared, kind="stable")
    dy, dx = dy[order], dx[order]
    inside = np.searchsorted(squared[order], values)  # how many points have d² < value
    table = np.empty((len(NEIGHBOURS), len(values)), np.int64)
    for k, (oy, ox) in enumerate(NEIGHBOURS):
        table[k] = np.maximum.accumulate((dy - oy) ** 2 + (dx - ox) ** 2)[inside - 1]
    return table


def _maximal_centres(radii_squared: np.ndarray, values: np.ndarray, farthest: np.ndarray):
    """(ys, xs) of the foreground pixels whose disk is not inside an 8-neighbour's disk of equal
    or larger radius: ``disk(c) ⊆ disk(n)`` iff ``farthest[k, r²(c)] < r²(n)`` (exact on the
    grid)."""
    ys, xs = np.nonzero(radii_squared)
    own = radii_squared[ys, xs]
    row = np.searchsorted(values, own)
    padded = np.pad(radii_squared, 1)
    redundant = np.zeros(len(ys), bool)
    for k, (oy, ox) in enumerate(NEIGHBOURS):
        neighbour = padded[ys + 1 + oy, xs + 1 + ox]
        redundant |= (neighbour >= own) & (neighbour > farthest[k, row])
    return ys[~redundant], xs[~redundant]


def local_thickness(mask: np.ndarray, scale: float = 1.0, method: str = "exact") -> np.ndarray:
    """Local thickness (diameter) of a 2D mask, float32, 0 outside; in units of ``scale``
    (e.g. nm per pixel), by one of :data:`METHODS`."""
    if method not in METHODS:
        raise ThicknessError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    binary = as_binary_mask(mask)
    if method == "localthickness":
        return _package_thickness(binary) * np.float32(scale)
    radii_squared = np.rint(_distance(binary) ** 2).astype(np.int64)  # integer on the grid
    values = np.unique(radii_squared[binary])
    ys, xs = _maximal_centres(radii_squared, values, _farthest_table(values))
    thickness = 2 * _paint_disks(binary.shape, ys, xs, radii_squared[ys, xs])
    thickness[~binary] = 0
    return thickness * np.float32(scale)


def _package_thickness(binary: np.ndarray) -> np.ndarray:
    """The ``localthickness`` package's local thickness (it returns the radius) as a diameter."""
    import localthickness

    thickness = 2 * np.asarray(localthickness.local_thickness(binary), np.float32)
    thickness[~binary] = 0
    return thickness


def local_thickness_reference(mask: np.ndarray) -> np.ndarray:
    """The definition, every foreground pixel a disk centre: slow, for testing only."""
    binary = as_binary_mask(mask)
    distance = _distance(binary)
    ys, xs = np.nonzero(binary)
    radii_squared = np.rint(distance[ys, xs] ** 2).astype(np.int64)
    thickness = 2 * _paint_disks(binary.shape, ys, xs, radii_squared)
    thickness[~binary] = 0
    return thickness


def _paint_disks(shape, ys, xs, radii_squared, chunk: int = 4096) -> np.ndarray:
    """Every centre writes sqrt(r²) into its open disk, radii in ascending order (so each
    pixel keeps the largest disk covering it)."""
    pad = int(np.ceil(np.sqrt(radii_squared.max()))) + 1
    out = np.zeros((shape[0] + 2 * pad, shape[1] + 2 * pad), np.float32)
    flat, width = out.ravel(), out.shape[1]
    for value in np.unique(radii_squared):
        dy, dx = _disk_offsets(int(value))
        offsets = dy * width + dx
        (members,) = np.nonzero(radii_squared == value)
        for start in range(0, len(members), chunk):
            part = members[start : start + chunk]
            base = (ys[part] + pad) * width + xs[part] + pad
            flat[(base[:, None] + offsets[None, :]).ravel()] = np.sqrt(value)
    return out[pad:-pad, pad:-pad]


@dataclass
class ThicknessResult:
    """Local thickness of one mask with its distributions (units: nm if pixel size known)."""

    thickness: np.ndarray  # (H, W) float32, 0 outside the mask
    skeleton: np.ndarray  # (H, W) bool, medial lines of the wires
    wires: np.ndarray  # (H, W) int32 connected components (8-connected), 0 = background
    unit: str  # "nm" or "px"
    pixel_size_nm: float | None
    method: str = "exact"

    @property
    def pixel_values(self) -> np.ndarray:
        """Thickness of every foreground pixel (biased toward thick wires)."""
        return self.thickness[self.thickness > 0]

    @property
    def skeleton_values(self) -> np.ndarray:
        """Thickness along the skeleton: the wire-diameter distribution."""
        return self.thickness[self.skeleton]

    def summary(self) -> dict[str, float]:
        values = self.skeleton_values if self.skeleton.any() else self.pixel_values
        p5, p25, p50, p75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
        return {
            "unit": self.unit,
            "method": self.method,
            "n_wires": int(self.wires.max()),
            "mean": float(values.mean()),
            "median": float(p50),
            "std": float(values.std()),
            "p5": float(p5),
            "p25": float(p25),
            "p75": float(p75),
            "p95": float(p95),
            "pixel_weighted_mean": float(self.pixel_values.mean()),
        }

    def per_wire(self) -> list[dict[str, float]]:
        """One row per connected component: area, skeleton length, thickness statistics."""
        from scipy import ndimage

        step = self.pixel_size_nm or 1.0
        labels = np.arange(1, self.wires.max() + 1)
        area = ndimage.sum_labels(np.ones_like(self.wires), self.wires, labels) * step**2
        length = ndimage.sum_labels(self.skeleton, self.wires, labels) * step
        skeleton_wires = np.where(self.skeleton, self.wires, 0)
        rows = []
        for index, label in enumerate(labels):
            values = self.thickness[skeleton_wires == label]
            if values.size == 0:
                values = self.thickness[self.wires == label]
            rows.append(
                {
                    "wire": int(label),
                    f"area_{self.unit}2": float(area[index]),
                    f"skeleton_length_{self.unit}": float(length[index]),
                    f"median_thickness_{self.unit}": float(np.median(values)),
                    f"mean_thickness_{self.unit}": float(values.mean()),
                    f"max_thickness_{self.unit}": float(values.max()),
                }
            )
        return rows


def analyse(
    mask: np.ndarray,
    pixel_size_nm: float | None = None,
    monitor: Monitor | None = None,
    method: str = "exact",
) -> ThicknessResult:
    """Local thickness (by one of :data:`METHODS`), skeleton and wire components of a mask (nm
    when pixel size given)."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    from ..io import positive_pixel_size

    monitor = ensure(monitor)
    pixel_size_nm = positive_pixel_size(pixel_size_nm)
    binary = as_binary_mask(mask)
    monitor.report(0, 2, "local thickness")
    thickness = local_thickness(binary, scale=pixel_size_nm or 1.0, method=method)
    monitor.check()
    monitor.report(1, 2, "skeleton and wires")
    wires, _ = ndimage.label(binary, structure=np.ones((3, 3)))
    skeleton = skeletonize(binary)
    monitor.report(2, 2, "done")
    return ThicknessResult(
        thickness=thickness,
        skeleton=skeleton,
        wires=wires.astype(np.int32),
        unit="nm" if pixel_size_nm else "px",
        pixel_size_nm=pixel_size_nm,
        method=method,
    )


def synthetic_wires(
    shape: tuple[int, int],
    widths,
    seed: int = 0,
    bend: float = 0.0,
) -> np.ndarray:
    """A test mask of wires with known widths (px): one wire per width, random straight or
    (``bend`` > 0) curved centre lines across the image; wires may cross."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros(shape, bool)
    for width in widths:
        angle = rng.uniform(0, np.pi)
        direction = np.array([np.sin(angle), np.cos(angle)])
        normal = np.array([-direction[1], direction[0]])
        centre = rng.uniform(0.25, 0.75, 2) * (h, w)
        along = (yy - centre[0]) * direction[0] + (xx - centre[1]) * direction[1]
        across = (yy - centre[0]) * normal[0] + (xx - centre[1]) * normal[1]
        across = across - bend * along**2 / max(h, w)
        length = rng.uniform(0.5, 0.9) * max(h, w)
        mask |= (np.abs(across) < width / 2) & (np.abs(along) < length / 2)
    return mask


def histogram_bins(values: np.ndarray, unit: str, pixel_size_nm: float | None) -> np.ndarray:
    """Bin edges one pixel wide (thickness comes in whole pixels ± grid steps)."""
    step = pixel_size_nm or 1.0
    top = max(float(values.max()), step) if values.size else step
    return np.arange(0, top + 2 * step, step)


def distribution_rows(result: ThicknessResult) -> list[dict[str, float]]:
    """Histogram table: per thickness bin, counts over skeleton pixels and over all pixels."""
    edges = histogram_bins(result.pixel_values, result.unit, result.pixel_size_nm)
    skeleton, _ = np.histogram(result.skeleton_values, edges)
    pixels, _ = np.histogram(result.pixel_values, edges)
    return [
        {
            f"bin_start_{result.unit}": float(lo),
            f"bin_end_{result.unit}": float(hi),
            "skeleton_pixels": int(s),
            "foreground_pixels": int(p),
        }
        for lo, hi, s, p in zip(edges[:-1], edges[1:], skeleton, pixels, strict=True)
    ]


def plot_distributions(result: ThicknessResult, axes) -> None:
    """Skeleton (wire diameter) and pixel-weighted thickness histograms on one axes."""
    edges = histogram_bins(result.pixel_values, result.unit, result.pixel_size_nm)
    axes.hist(
        result.pixel_values,
        edges,
        density=True,
        alpha=0.35,
        color="tab:gray",
        label="all foreground pixels",
    )
    if result.skeleton.any():
        axes.hist(
            result.skeleton_values,
            edges,
            density=True,
            alpha=0.8,
            color="tab:orange",
            label="skeleton (wire diameter)",
        )
    median = result.summary()["median"]
    axes.axvline(median, color="k", lw=1, ls="--", label=f"median {median:.3g} {result.unit}")
    axes.set_xlabel(f"local thickness ({result.unit})")
    axes.set_ylabel("density")
    axes.legend(fontsize=8)


def output_paths(out, name: str) -> dict:
    """Where :func:`write_outputs` writes the files of ``name`` in the folder ``out``."""
    from pathlib import Path

    out = Path(out)
    return {
        "thickness": out / f"{name}_thickness.tif",
        "wires": out / f"{name}_thickness.csv",
        "distribution": out / f"{name}_thickness_distribution.csv",
        "histogram": out / f"{name}_thickness.png",
    }


def write_outputs(result: ThicknessResult, out, name: str, source: str = "") -> dict[str, str]:
    """``<name>_thickness.tif`` (+ JSON sidecar with the summary and the source's file name),
    ``<name>_thickness.csv`` (per wire), ``<name>_thickness_distribution.csv`` and
    ``<name>_thickness.png``, with the output folder locked
    (:class:`~napari_diffrendergan.io.FolderLock`)."""
    from pathlib import Path

    from matplotlib.figure import Figure

    from ..io import FolderLock, file_group, write_csv, write_figure, write_tiff

    paths = output_paths(out, name)
    figure = Figure(figsize=(5, 3.2))
    axes = figure.add_subplot()
    plot_distributions(result, axes)
    axes.set_title(name, fontsize=9)
    figure.tight_layout()
    with FolderLock(out, "thickness output"), file_group(out, f"{name}_thickness") as written:
        written.extend(paths.values())
        write_tiff(
            paths["thickness"],
            result.thickness,
            pixel_size_nm=result.pixel_size_nm,
            unit=result.unit,
            source=Path(source).name,
            summary=result.summary(),
        )
        write_csv(paths["wires"], result.per_wire())
        write_csv(paths["distribution"], distribution_rows(result))
        write_figure(paths["histogram"], figure)
    return {k: str(v) for k, v in paths.items()}
