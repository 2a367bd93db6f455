"""Deferred shading: trace a constellation's geometry once, re-shade it for any BSDF values.

Training DiffRenderGAN changes only BSDF parameters; geometry is fixed per constellation φ.
:func:`trace` runs the ray-tracing half of a direct-illumination estimator once (camera rays,
one emitter sample and one BSDF sample per pixel sample, visibility, emitted radiance, MIS
weights) and keeps per-sample local directions and weights in a :class:`ShadingCache`.
:meth:`ShadingCache.shade` then evaluates the principled BSDFs on those samples and splats
them through the film's reconstruction filter: a few dozen milliseconds instead of a full
render, and differentiable with respect to the BSDF parameters.

The estimator is Mitsuba's ``direct`` integrator (emitter sampling + BSDF sampling, balance
heuristic), except that the BSDF-sampled directions come from the BSDFs as they were when
:func:`trace` ran. Their pdf therefore does not depend on the parameters being learned, the
estimate stays unbiased for any parameters, and no ray has to be traced again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from .scene import VirtualScene


@dataclass
class _Samples:
    """Cached samples hitting one BSDF (drjit arrays)."""

    cell: object  # UInt32, index of the sample's stratum cell in the (H*s, W*s) grid
    wi: object  # Vector3f, local incident direction
    wo_emitter: object  # Vector3f, local direction of the emitter sample
    weight_emitter: object  # Float, Le / pdf × MIS weight (0 when occluded)
    wo_bsdf: object  # Vector3f, local direction of the BSDF sample
    weight_bsdf: object  # Float, Le / pdf × MIS weight (0 when no emitter is hit)


@dataclass
class ShadingCache:
    """Everything needed to re-shade one constellation: per-BSDF samples on a grid of
    ``strata`` × ``strata`` cells per pixel, and the radiance of camera rays that see an
    emitter directly."""

    scene: VirtualScene
    samples: dict  # role -> _Samples
    emitted: object  # Float grid of directly seen emitted radiance (constant)
    strata: int

    @property
    def nbytes(self) -> int:
        import drjit as dr

        return 4 * (12 * sum(dr.width(s.cell) for s in self.samples.values()) + self.cells)

    @property
    def cells(self) -> int:
        s = self.scene.config.scene
        return s.width * s.height * self.strata**2

    def shade_cells(self):
        """Radiance of every stratum cell (drjit ``Float``) for the scene's current BSDF
        parameters, differentiable with respect to any parameter with gradients enabled."""
        import drjit as dr

        mi = self.scene.mi
        context = mi.BSDFContext()
        frame = mi.Frame3f(mi.Vector3f(1, 0, 0), mi.Vector3f(0, 1, 0), mi.Vector3f(0, 0, 1))
        cells = mi.Float(self.emitted)
        for role, samples in self.samples.items():
            if dr.width(samples.cell) == 0:  # no sample hit this role (e.g. no particle in view)
                continue
            bsdf = self.scene.bsdf_objects[role]
            si = dr.zeros(mi.SurfaceInteraction3f, dr.width(samples.cell))
            si.wi = samples.wi
            si.sh_frame = frame
            value = bsdf.eval(context, si, samples.wo_emitter)[0] * samples.weight_emitter
            value += bsdf.eval(context, si, samples.wo_bsdf)[0] * samples.weight_bsdf
            dr.scatter(cells, value, samples.cell)
        return cells

    def render(self) -> np.ndarray:
        """The image (float32 (H, W)) for the scene's current BSDF parameters. Reconstructed
        with sparse filter matrices in float64 on one thread: fast at any spp, and bit-for-bit
        reproducible (no atomic additions as in a film, no thread-dependent sums)."""
        s = self.scene.config.scene
        rows, columns, norm = _sparse_filter(s.width, s.height, self.strata, s.filter_stddev)
        grid = self.shade_cells().numpy().astype(np.float64)
        grid = grid.reshape(s.height * self.strata, s.width * self.strata)
        return ((columns.T @ (rows @ grid).T).T / norm).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _sparse_filter(width: int, height: int, strata: int, stddev: float):
    from scipy import sparse

    rows, columns, norm = filter_matrices(width, height, strata, stddev)
    return (
        sparse.csr_matrix(rows.numpy().astype(np.float64)),
        sparse.csr_matrix(columns.numpy().astype(np.float64)),
        norm.numpy().astype(np.float64),
    )


@functools.lru_cache(maxsize=8)
def filter_matrices(width: int, height: int, strata: int, stddev: float):
    """Mitsuba's Gaussian reconstruction filter (radius 4 σ, shifted to 0 there) as two banded
    matrices: ``rows @ cells @ columns`` sums the weighted cells around every pixel, and
    ``norm`` holds the summed weights (borders get fewer cells, as in Mitsuba's film)."""
    radius = 4 * stddev

    def matrix(pixels: int) -> np.ndarray:
        centres = (np.arange(pixels * strata) + 0.5) / strata
        offsets = centres[:, None] - (np.arange(pixels) + 0.5)[None, :]
        weights = np.exp(-(offsets**2) / (2 * stddev**2)) - np.exp(-(radius**2) / (2 * stddev**2))
        return np.where(np.abs(offsets) < radius, np.maximum(weights, 0), 0).astype(np.float32)

    columns, rows = torch.from_numpy(matrix(width)), torch.from_numpy(matrix(height).T.copy())
    norm = torch.outer(rows.sum(1), columns.sum(0))
    return rows, columns, norm


def reconstruct(cells, cache: ShadingCache):
    """(H, W) image from the cell radiance (torch, differentiable): each pixel is the
    filter-weighted mean of the cells around it, as Mitsuba's film does with its samples."""
    s = cache.scene.config.scene
    rows, columns, norm = (
        m.to(cells.device)
        for m in filter_matrices(s.width, s.height, cache.strata, s.filter_stddev)
    )
    grid = cells.reshape(s.height * cache.strata, s.width * cache.strata)
    return rows @ grid @ columns / norm


def _sampler(mi, spp: int, seed: int, count: int):
    sampler = mi.load_dict({"type": "stratified", "sample_count": spp})
    sampler.seed(seed, count)
    return sampler


def trace(scene: VirtualScene, seed: int = 0, spp: int | None = None) -> ShadingCache:
    """Trace the current constellation of ``scene`` and cache its samples (see module doc).

    ``spp`` must be a square number (one sample per stratum cell). BSDF samples are drawn
    from the BSDFs' current parameter values: set them to the values you expect (e.g. the
    generator's latest output) for the lowest variance.
    """
    import drjit as dr

    if scene.phi is None:
        raise RuntimeError("place() particles before tracing")
    mi = scene.mi
    spp = spp or scene.config.scene.spp
    strata = int(round(np.sqrt(spp)))
    if strata * strata != spp:
        raise InputError(f"spp must be a square number (1, 4, 9, 16, 25, ...), got {spp}")
    sensor = scene.scene.sensors()[0]
    width, height = scene.config.scene.width, scene.config.scene.height
    count = width * height * spp
    with dr.suspend_grad():
        sampler = mi.load_dict({"type": "stratified", "sample_count": spp})
        sampler.seed(seed, count)
        lane = dr.arange(mi.UInt32, count)
        pixel = mi.Vector2u((lane // spp) % width, (lane // spp) // width)
        stratum = mi.Vector2u(lane % strata, (lane % spp) // strata)
        pos = mi.Vector2f(pixel) + (mi.Vector2f(stratum) + sampler.next_2d()) / strata
        cell = (pixel.y * strata + stratum.y) * (width * strata) + pixel.x * strata + stratum.x
        ray, _ = sensor.sample_ray(0.0, 0.0, pos / mi.ScalarVector2f(width, height), 0.5)
        si = scene.scene.ray_intersect(ray)
        valid = si.is_valid()
        context = mi.BSDFContext()
        bsdf = si.bsdf(ray)

        emitter_sample, emitter_value = scene.scene.sample_emitter_direction(
            si, sampler.next_2d(), True, valid
        )
        wo_emitter = si.to_local(emitter_sample.d)
        pdf_bsdf = bsdf.pdf(context, si, wo_emitter, valid)
        weight_emitter = dr.select(
            valid & (emitter_sample.pdf > 0),
            emitter_value[0] * emitter_sample.pdf / (emitter_sample.pdf + pdf_bsdf),
            0.0,
        )

        bsdf_sample, _ = bsdf.sample(context, si, sampler.next_1d(), sampler.next_2d(), valid)
        sampled = valid & (bsdf_sample.pdf > 0)
        si_light = scene.scene.ray_intersect(si.spawn_ray(si.to_world(bsdf_sample.wo)), sampled)
        radiance = si_light.emitter(scene.scene, sampled).eval(si_light, sampled)[0]
        pdf_emitter = scene.scene.pdf_emitter_direction(
            si, mi.DirectionSample3f(scene.scene, si_light, si), sampled
        )
        weight_bsdf = dr.select(
            sampled & (radiance > 0), radiance / (bsdf_sample.pdf + pdf_emitter), 0.0
        )
        emitted = dr.zeros(mi.Float, width * height * spp)
        dr.scatter(emitted, si.emitter(scene.scene, valid).eval(si, valid)[0], cell, valid)

        shape = dr.reinterpret_array(mi.UInt32, si.shape)
        stage = dr.reinterpret_array(mi.UInt32, mi.ShapePtr(scene.stage_shape))[0]
        particle = valid & ~si.shape.is_emitter() & (shape != stage)
        roles = {"particle": particle, "stage": valid & (shape == stage)}
        dr.eval(cell, si.wi, wo_emitter, weight_emitter, bsdf_sample.wo, weight_bsdf, roles)
        samples = {}
        for role, mask in roles.items():
            chosen = dr.compress(mask)
            samples[role] = _Samples(
                cell=dr.gather(mi.UInt32, cell, chosen),
                wi=dr.gather(mi.Vector3f, si.wi, chosen),
                wo_emitter=dr.gather(mi.Vector3f, wo_emitter, chosen),
                weight_emitter=dr.gather(mi.Float, weight_emitter, chosen),
                wo_bsdf=dr.gather(mi.Vector3f, bsdf_sample.wo, chosen),
                weight_bsdf=dr.gather(mi.Float, weight_bsdf, chosen),
            )
        dr.eval(samples, emitted)
    return ShadingCache(scene, samples, emitted, strata)


def shade_torch(cache: ShadingCache, names: list[str], values):
    """(H, W) torch image of ``cache`` with BSDF parameters ``names`` set to the torch vector
    ``values``; gradients flow back into ``values``."""
    return reconstruct(_ShadeCells.apply(values, cache, tuple(names)), cache)


class _ShadeCells(torch.autograd.Function):
    """Bridge: torch parameter vector -> drjit shading -> torch cell radiance."""

    @staticmethod
    def forward(ctx, values, cache, names):
        import drjit as dr

        scene = cache.scene
        mi = scene.mi
        tracked = [mi.Float(float(v)) for v in values.detach().cpu()]
        for name, value in zip(names, tracked, strict=True):
            dr.enable_grad(value)
            scene.params[scene.bsdf_key(name)] = value
            scene.bsdf[name] = float(value[0])
        scene.params.update()
        cells = cache.shade_cells()
        ctx.state = (cells, tracked, scene, names)
        return torch.from_numpy(cells.numpy()).to(values.device)

    @staticmethod
    def backward(ctx, grad):
        import drjit as dr

        cells, tracked, scene, names = ctx.state
        mi = scene.mi
        dr.backward(dr.sum(cells * mi.Float(grad.detach().cpu().numpy().ravel())))
        grads = [float(dr.grad(value)[0]) for value in tracked]
        scene.set_bsdf({name: scene.bsdf[name] for name in names})  # drop AD tracking
        ctx.state = None
        return torch.tensor(grads, dtype=grad.dtype, device=grad.device), None, None
