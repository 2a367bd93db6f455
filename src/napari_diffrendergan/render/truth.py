"""Rendered scans whose particle sizes and density are known: the truth that the calibration of
a scene prior from unannotated scans (:mod:`..analysis.calibration`) is checked against, for
bright particles on a dark stage and dark particles on a bright one.

A particle's true outline is its *silhouette*: the pixels whose centre ray meets it when no
other particle hides it (the instance labels lose what other particles cover), from its
placed mesh through the scene's perspective camera.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..config import MaterialConfig
from .meshes import rasterise, width

POLARITIES = ("bright", "dark")
# BSDF values of the truth scans: particles clearly brighter or darker than the stage
POLARITY_BSDF = {
    "bright": {
        "particle.base_color": 2.5,
        "particle.roughness": 4.0,
        "particle.sheen": 0.0,
        "stage.base_color": 0.1,
    },
    "dark": {"particle.base_color": 0.02, "particle.sheen": 0.0, "stage.base_color": 0.6},
}
# a small light straight above, which throws no visible shadow, fills the particles: bright ones
# keep the preset's ring light too, which brightens their edges as in secondary-electron images;
# dark ones on a bright stage are lit from above alone, as in bright-field TEM or a BSE image
# (the ring light would cast long shadows across the bright stage, a broad light darken the
# gaps between particles)
POLARITY_SCENE = {
    "bright": {"rect_radiance": 30.0, "rect_size": 0.3},
    "dark": {"torus_radiance": 0.0, "rect_radiance": 100.0, "rect_size": 0.3},
}
NOISE = 0.03  # detector noise σ (full scale 1)
FULL_SCALE = 0.9  # the clean render's 99.9th percentile, as a microscopist sets the contrast


@dataclass
class TruthScan:
    """A rendered scan (noise included), its instance labels, every particle's silhouette
    ((n, H, W) bool) and the image position (row, column) of every particle's centre."""

    image: np.ndarray
    instances: np.ndarray
    silhouettes: np.ndarray
    centres: np.ndarray

    def whole(self) -> np.ndarray:
        """Silhouettes in the image that do not touch its border."""
        edge = np.zeros(self.image.shape, bool)
        edge[[0, -1], :] = edge[:, [0, -1]] = True
        seen = self.silhouettes.any((1, 2))
        return self.silhouettes[seen & ~(self.silhouettes & edge).any((1, 2))]

    def counted(self) -> int:
        """Particles whose centre lies inside the image, hidden or not: the density's count."""
        inside = (self.centres >= 0) & (self.centres < np.array(self.image.shape))
        return int(inside.all(1).sum())


def true_median_and_density(
    scans: list[TruthScan], pixel_size_nm: float, wires: bool
) -> tuple[float, float]:
    """The true median diameter (nm) of ``scans``' whole particles (equivalent circular
    diameter of the silhouette; wires: the width of every wire) and their true density (per
    µm², particles whose centre lies in the image)."""
    if wires:
        diameters = [width(s) for scan in scans for s in scan.silhouettes if s.any()]
    else:
        diameters = [2 * np.sqrt(s.sum() / np.pi) for scan in scans for s in scan.whole()]
    area = sum(scan.image.size for scan in scans) * (pixel_size_nm / 1000) ** 2
    median = float(np.median(diameters)) if diameters else float("nan")
    return median * pixel_size_nm, sum(s.counted() for s in scans) / area


def render_truth_scans(
    config: MaterialConfig,
    polarity: str,
    seed: int,
    count: int,
    spp: int = 4,
    device: str = "cpu",
    monitor=None,
) -> list[TruthScan]:
    """``count`` scans of ``config``'s size and placement distributions with ``polarity``
    particles and detector noise, drawn from ``seed``."""
    from ..progress import ensure
    from .sampling import AnnotatedRenderer, RenderValues, mid_range_values

    monitor = ensure(monitor)

    config = dataclasses.replace(
        config, scene=dataclasses.replace(config.scene, **POLARITY_SCENE[polarity])
    )
    renderer = AnnotatedRenderer(config, device=device, spp=spp)
    values = RenderValues.named(mid_range_values(config)[0] | POLARITY_BSDF[polarity], 0.0)
    rng = np.random.default_rng(seed)
    scans = []
    for index in range(count):
        monitor.check()
        monitor.report(index, count, f"rendering scene {index + 1} of {count}")
        sample = renderer.render(
            (seed, index), lambda phi, rng: values, max_attempts=1, require_contrast=False
        )
        clean = sample.image * FULL_SCALE / max(np.percentile(sample.image, 99.9), 1e-6)
        image = np.clip(clean + rng.normal(0, NOISE, clean.shape), 0, 1).astype(np.float32)
        phi = np.asarray(sample.info["phi"], np.float32)
        outlines, centres = silhouettes(renderer.scene.meshes, phi, config)
        scans.append(TruthScan(image, sample.instances, outlines, centres))
    return scans


def silhouettes(meshes, phi: np.ndarray, config: MaterialConfig):
    """(n, H, W) bool: the pixels whose centre ray meets each placed mesh, ignoring the other
    particles (the union of its projected triangles); and (n, 2) the image position (row,
    column) of each mesh's centre."""
    s = config.scene
    out = np.zeros((len(meshes), s.height, s.width), bool)
    centres = np.zeros((len(meshes), 2))
    for index, (mesh, (x, y, z, scale)) in enumerate(zip(meshes, phi, strict=True)):
        placed = mesh.vertices * scale + np.array([x, y, z - mesh.bottom * scale], np.float32)
        points = _project(placed.astype(np.float64), config)
        out[index] = rasterise(points[mesh.faces.astype(np.int64)], (s.height, s.width))
        centres[index] = _project(placed.mean(0, keepdims=True).astype(np.float64), config)[0]
    return out, centres


def _project(vertices: np.ndarray, config: MaterialConfig) -> np.ndarray:
    """Image coordinates (row, column; pixel centres at .5) of world points seen by the scene's
    camera: at ``camera_height · field_width`` above the stage, looking down, ``field_width``
    spanning the image width at z = 0."""
    s = config.scene
    distance = s.camera_height * s.field_width
    zoom = distance / (distance - vertices[:, 2]) * s.width / s.field_width
    return np.column_stack(
        [s.height / 2 - vertices[:, 1] * zoom, s.width / 2 + vertices[:, 0] * zoom]
    )
