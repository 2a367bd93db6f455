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

from ..backend import evaluate
from ..errors import InputError
from .denoise import GuidedFilter, applies, traced_spp
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
    denoiser: GuidedFilter | None = None  # applied to every render (linear in the radiance)

    @property
    def nbytes(self) -> int:
        import drjit as dr

        return 4 * (12 * sum(dr.width(s.cell) for s in self.samples.values()) + self.cells)

    @property
    def cells(self) -> int:
        s = self.scene.config.scene
        return s.width * s.height * self.strata**2

    def shade_cells(self, roles=None, emitted: bool = True):
        """Radiance of every stratum cell (drjit ``Float``) for the scene's current BSDF
        parameters (of ``roles``, default all, plus directly seen emitters unless not
        ``emitted``), differentiable with respect to any parameter with gradients enabled."""
        import drjit as dr

        mi = self.scene.mi
        context = mi.BSDFContext()
        frame = mi.Frame3f(mi.Vector3f(1, 0, 0), mi.Vector3f(0, 1, 0), mi.Vector3f(0, 0, 1))
        cells = mi.Float(self.emitted) if emitted else dr.zeros(mi.Float, self.cells)
        for role, samples in self.samples.items():
            if roles is not None and role not in roles:
                continue
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

    def render(self, roles=None, emitted: bool = True) -> np.ndarray:
        """The image (float32 (H, W)) for the scene's current BSDF parameters (see
        :meth:`shade_cells`). Reconstructed with sparse filter matrices in float64 on one
        thread: fast at any spp, and bit-for-bit reproducible (no atomic additions as in a
        film, no thread-dependent sums)."""
        s = self.scene.config.scene
        rows, columns, norm = _sparse_filter(s.width, s.height, self.strata, s.filter_stddev)
        cells = self.shade_cells(roles, emitted)
        evaluate(cells)
        grid = cells.numpy().astype(np.float64)
        grid = grid.reshape(s.height * self.strata, s.width * self.strata)
        image = ((columns.T @ (rows @ grid).T).T / norm).astype(np.float32)
        return self.denoiser(image) if self.denoiser else image

    def coverage(self, role: str = "stage") -> np.ndarray:
        """float32 (H, W): how much of every pixel (filter-weighted share of its samples)
        the camera sees of ``role``."""
        import drjit as dr

        mi = self.scene.mi
        cells = dr.zeros(mi.Float, self.cells)
        samples = self.samples[role]
        if dr.width(samples.cell):
            dr.scatter(cells, mi.Float(1.0), samples.cell)
            evaluate(cells)
        s = self.scene.config.scene
        rows, columns, norm = _sparse_filter(s.width, s.height, self.strata, s.filter_stddev)
        grid = cells.numpy().astype(np.float64).reshape(s.height * self.strata, -1)
        return ((columns.T @ (rows @ grid).T).T / norm).astype(np.float32)

    def reduce(self, basis: ShadingBasis) -> BasisImages:
        """The few per-pixel images that render this constellation exactly for any values of
        the learned parameters (see :class:`ShadingBasis`); the per-sample cache can then be
        dropped. Restores the scene's BSDF values."""
        scene = self.scene
        before = {name: scene.bsdf[name] for name in basis.names}
        terms = []
        try:
            for role in basis.roles:
                probes = []
                for point in role.points:
                    scene.set_bsdf(dict(zip(role.names, point, strict=True)))
                    probes.append(self.render(roles=(role.role,), emitted=False))
                images = np.tensordot(role.inverse, np.stack(probes), axes=1).astype(np.float32)
                for exponents, image in zip(role.monomials, images, strict=True):
                    powers = dict(zip(role.names, exponents, strict=True))
                    terms.append((tuple(powers.get(n, 0) for n in basis.names), image))
        finally:
            scene.set_bsdf(before)
        emitted = self.render(roles=(), emitted=True)
        return BasisImages(basis.names, emitted, terms, self.coverage("stage"))


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
    image = rows @ grid @ columns / norm
    return cache.denoiser(image) if cache.denoiser else image


def trace(scene: VirtualScene, seed: int = 0, spp: int | None = None) -> ShadingCache:
    """Trace the current constellation of ``scene`` and cache its samples (see module doc).

    ``spp`` (a square number) is the quality asked for: with the scene's ``denoise`` on, fewer
    samples are traced (:func:`.denoise.traced_spp`) and every render is filtered by the
    geometry-guided :class:`.denoise.GuidedFilter`; otherwise one sample per stratum cell. BSDF
    samples are drawn from the BSDFs' current parameter values: set them to the values you
    expect (e.g. the generator's latest output) for the lowest variance.
    """
    import drjit as dr

    if scene.phi is None:
        raise RuntimeError("place() particles before tracing")
    mi = scene.mi
    spp = spp or scene.config.scene.spp
    if round(np.sqrt(spp)) ** 2 != spp:
        raise InputError(f"spp must be a square number (1, 4, 9, 16, 25, ...), got {spp}")
    denoise = applies(scene.config.scene, spp)
    spp = traced_spp(spp, denoise)
    strata = int(round(np.sqrt(spp)))
    sensor = scene.scene.sensors()[0]
    width, height = scene.config.scene.width, scene.config.scene.height
    count = width * height * spp
    with dr.suspend_grad():
        sampler = mi.load_dict({"type": scene.config.scene.sampler, "sample_count": spp})
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
        # roughness far above 1 (allowed) makes the principled pdf NaN at a few grazing
        # directions: count them as not reachable by BSDF sampling
        pdf_bsdf = dr.select(dr.isfinite(pdf_bsdf), pdf_bsdf, 0.0)
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
        guides = _guide_cells(scene, si, valid, cell, strata) if denoise else []
        traced = (cell, si.wi, wo_emitter, weight_emitter, bsdf_sample.wo, weight_bsdf)
        evaluate(*traced, roles, guides)
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
        evaluate(samples, emitted)
    denoiser = None
    if denoise:
        s = scene.config.scene
        *normals, depth = (_pixel_means(g.numpy(), s.height, s.width, strata) for g in guides)
        denoiser = GuidedFilter.from_guides(np.stack(normals), depth, s.field_width / s.width)
    return ShadingCache(scene, samples, emitted, strata, denoiser)


def _pixel_means(cells: np.ndarray, height: int, width: int, strata: int) -> np.ndarray:
    """(H, W) mean of each pixel's strata² cells, rows summed first, then columns: 2 ms at
    256², where ``reshape(H, s, W, s).mean((1, 3))`` took 50 ms right after a Dr.Jit kernel
    (6 ms otherwise)."""
    rows = cells.reshape(height, strata, width * strata).sum(1).reshape(height, width, strata)
    return rows.sum(2) / strata**2


def _guide_cells(scene: VirtualScene, si, valid, cell, strata: int) -> list:
    """The denoiser's guides per stratum cell: the normal (x, y, z) and depth that each camera
    sample saw (nothing seen: normal 0, depth far away). One sample per cell: no atomic sums,
    so the guides are bit-for-bit reproducible."""
    import drjit as dr

    mi = scene.mi
    s = scene.config.scene
    normal = si.sh_frame.n
    far = 10 * s.camera_height * s.field_width
    guides = []
    for value, missed in ((normal.x, 0.0), (normal.y, 0.0), (normal.z, 0.0), (si.t, far)):
        cells = dr.zeros(mi.Float, s.width * s.height * strata**2)
        dr.scatter(cells, dr.select(valid, value, missed), cell)
        guides.append(cells)
    return guides


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
        evaluate(cells)
        ctx.state = (cells, tracked, scene, names)
        return cells.torch().to(values.device)  # DLPack: no copy through the host on CUDA

    @staticmethod
    def backward(ctx, grad):
        import drjit as dr

        cells, tracked, scene, names = ctx.state
        mi = scene.mi
        dr.backward(dr.sum(cells * mi.Float(grad.detach().ravel().contiguous())))
        gradients = [dr.grad(value) for value in tracked]
        evaluate(*gradients)
        grads = [float(g[0]) for g in gradients]
        scene.set_bsdf({name: scene.bsdf[name] for name in names})  # drop AD tracking
        ctx.state = None
        return torch.tensor(grads, dtype=grad.dtype, device=grad.device), None, None


# --- polynomial basis shading -----------------------------------------------------------------

MAX_DEGREE = 2  # per parameter; principled BSDFs are at most quadratic in roughness
MAX_MONOMIALS = 243
MAX_CONDITION = 1e8  # of the probe matrix whose inverse turns probe renders into basis images


@dataclass
class RoleBasis:
    """How one role's BSDF depends on its learned parameters: exactly a sum of ``monomials``
    (tuples of exponents, one per name); ``points`` are parameter values whose renders,
    combined with ``inverse``, give the image of each monomial."""

    role: str
    names: list[str]
    monomials: list[tuple[int, ...]]
    points: np.ndarray  # (K, P)
    inverse: np.ndarray  # (K, K)


@dataclass
class ShadingBasis:
    """The polynomial structure of every role's BSDF in the learned parameters ``names``."""

    names: list[str]
    roles: list[RoleBasis]


def find_shading_basis(
    scene: VirtualScene, names: list[str], limits: dict[str, tuple[float, float]], seed: int = 0
) -> ShadingBasis | None:
    """The polynomial basis of the scene's BSDFs in the learned ``names`` (each within its
    ``limits``), found by evaluating the BSDFs on random directions at random parameter values
    and checked on others; None when some role is not an exact polynomial of degree <= 2 per
    parameter, or no probe values separate its monomials (then shade per sample instead)."""
    import itertools

    rng = np.random.default_rng(seed)
    wi, wo = _hemisphere(rng, 256), _hemisphere(rng, 256)
    before = {name: scene.bsdf[name] for name in names}
    roles = []
    try:
        for role in sorted({n.split(".", 1)[0] for n in names}):
            mine = [n for n in names if n.startswith(role + ".")]
            candidates = list(itertools.product(range(MAX_DEGREE + 1), repeat=len(mine)))
            if len(candidates) > MAX_MONOMIALS:
                return None
            low = np.array([limits[n][0] for n in mine])
            high = np.array([limits[n][1] for n in mine])
            points = low + rng.random((2 * len(candidates) + 8, len(mine))) * (high - low)
            values = np.stack(
                [_eval_role(scene, role, dict(zip(mine, p, strict=True)), wi, wo) for p in points]
            )
            kept = _sparsest_fit(_monomials(points, candidates), values, candidates)
            if kept is None:
                return None
            probes = _probes(rng, low, high, kept)
            if probes is None:
                return None
            inverse = np.linalg.inv(_monomials(probes, kept))
            roles.append(RoleBasis(role, mine, kept, probes, inverse))
    finally:
        scene.set_bsdf(before)
    return ShadingBasis(list(names), roles)


def _probes(rng, low: np.ndarray, high: np.ndarray, kept: list) -> np.ndarray | None:
    """Parameter values (one row per monomial of ``kept``) whose monomial matrix can be
    inverted well: random, else evenly spaced; None when neither is (then the basis images
    could not be told apart, and the caller shades per sample)."""
    probes = low + rng.random((len(kept), len(low))) * (high - low)
    if np.linalg.cond(_monomials(probes, kept)) > MAX_CONDITION:
        probes = low + (np.arange(len(kept))[:, None] + 0.5) / len(kept) * (high - low)
    return None if np.linalg.cond(_monomials(probes, kept)) > MAX_CONDITION else probes


def _sparsest_fit(design: np.ndarray, values: np.ndarray, candidates: list, tolerance=1e-5):
    """The fewest monomials (columns of ``design``) that still fit ``values`` exactly (relative
    residual below ``tolerance``), dropping one at a time; None if all of them do not."""

    def residual(columns) -> float:
        fit = np.linalg.lstsq(design[:, columns], values, rcond=None)[0]
        return float(np.abs(design[:, columns] @ fit - values).max())

    scale = float(np.abs(values).max()) or 1.0
    columns = list(range(len(candidates)))
    if residual(columns) > tolerance * scale:
        return None
    while len(columns) > 1:
        trials = [(residual([c for c in columns if c != drop]), drop) for drop in columns]
        best, drop = min(trials)
        if best > tolerance * scale:
            break
        columns.remove(drop)
    return [candidates[c] for c in columns]


def _hemisphere(rng, count: int) -> np.ndarray:
    v = rng.normal(size=(count, 3))
    v[:, 2] = np.abs(v[:, 2]) + 1e-3
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _monomials(points: np.ndarray, exponents: list[tuple[int, ...]]) -> np.ndarray:
    """(N, M): every point's value of every monomial."""
    return np.stack([np.prod(points ** np.array(e), axis=1) for e in exponents], axis=1)


def _eval_role(scene: VirtualScene, role: str, values: dict, wi, wo) -> np.ndarray:
    import drjit as dr

    mi = scene.mi
    scene.set_bsdf(values)
    si = dr.zeros(mi.SurfaceInteraction3f, len(wi))
    si.wi = mi.Vector3f(wi.T.astype(np.float32))
    si.sh_frame = mi.Frame3f(mi.Vector3f(1, 0, 0), mi.Vector3f(0, 1, 0), mi.Vector3f(0, 0, 1))
    out = scene.bsdf_objects[role].eval(mi.BSDFContext(), si, mi.Vector3f(wo.T.astype(np.float32)))
    return np.asarray(out[0], np.float64)


@dataclass
class BasisImages:
    """One traced constellation as per-pixel images: the render for learned values θ is
    ``emitted + Σ_terms Π_i θ_i^e_i · image`` exactly (the same Monte-Carlo estimate as shading
    the cached samples), at any spp for the cost of a few image additions."""

    names: list[str]
    emitted: np.ndarray  # (H, W) float32
    terms: list[tuple[tuple[int, ...], np.ndarray]]  # (exponents over names, image)
    coverage: np.ndarray  # (H, W) float32: the stage's share of every pixel

    @property
    def nbytes(self) -> int:
        return self.emitted.nbytes * (2 + len(self.terms))

    def _factors(self, values) -> list:
        """Each term's coefficient for ``values`` (a sequence over :attr:`names`, numpy or
        torch scalars)."""
        factors = []
        for exponents, _ in self.terms:
            factor = 1.0
            for value, power in zip(values, exponents, strict=True):
                for _ in range(power):
                    factor = factor * value
            factors.append(factor)
        return factors

    def render(self, values) -> np.ndarray:
        """float32 (H, W) image for learned ``values`` (numpy, ordered as :attr:`names`)."""
        image = self.emitted.astype(np.float64)
        for factor, (_, term) in zip(self._factors(values), self.terms, strict=True):
            image = image + float(factor) * term
        return image.astype(np.float32)

    def render_torch(self, values):
        """(H, W) torch image, differentiable with respect to the torch vector ``values``; the
        images are moved to its device once and kept there."""
        emitted, *terms = self._on(values.device)
        image = emitted
        for factor, term in zip(self._factors(list(values)), terms, strict=True):
            image = image + factor * term
        return image

    def _on(self, device) -> list:
        import torch

        cached = self.__dict__.setdefault("_devices", {})
        if str(device) not in cached:
            images = [self.emitted] + [term for _, term in self.terms]
            cached[str(device)] = [torch.from_numpy(i).to(device) for i in images]
        return cached[str(device)]
