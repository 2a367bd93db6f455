"""Geometry-guided denoising: spp-121 quality from a trace of 25 samples per pixel.

The grain of a direct-illumination render comes from sampling the ring light; the true image
varies smoothly wherever the surface does. :class:`GuidedFilter` averages every pixel with its
neighbours (Gaussian of :data:`SPATIAL_SIGMA` px) that show the same surface: similar normal
(:data:`NORMAL_SIGMA`) and depth (:data:`DEPTH_SIGMA` pixel footprints). The weights depend only
on the geometry seen by the camera, never on radiance, so the filter is *linear*: filtering
each basis image of a constellation and summing gives the filtered render, exactly, and
gradients pass through it unchanged. Its bias (the filtered spp-1024 reference against itself)
and the quality per traced spp are measured by ``benchmarks/bench_render.py`` (docs/rendering.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPATIAL_SIGMA = 2.5  # px
NORMAL_SIGMA = 0.3  # distance between unit normals
DEPTH_SIGMA = 2.56  # pixel footprints at the stage
RADIUS = 7  # px: the window's half width (2.8 σ)
MAX_DENOISED_SPP = 256  # above this quality the filter's own bias exceeds the grain it removes
MIN_PIXELS_PER_UNIT = 28  # px per mesh unit (particle size 1): coarser images blur too much


def applies(scene_config, spp: int) -> bool:
    """Whether a render of quality ``spp`` is denoised: the scene asks for it, the quality is
    at most :data:`MAX_DENOISED_SPP`, and particles are resolved finely enough (at
    :data:`MIN_PIXELS_PER_UNIT` or more; measured at 32, the tio2-sem preset, the filter's
    bias at 21 px per unit is twice the grain it removes)."""
    fine = scene_config.width / scene_config.field_width >= MIN_PIXELS_PER_UNIT
    return bool(scene_config.denoise) and spp <= MAX_DENOISED_SPP and fine


def traced_spp(spp: int, denoise: bool) -> int:
    """Samples per pixel to trace for the quality of ``spp`` (a square number): the square of
    ⌈5/11 · √spp⌉ when denoising (25 for spp 121, 16 for 64), else ``spp`` itself."""
    if not denoise or spp > MAX_DENOISED_SPP:
        return spp
    strata = round(spp**0.5)
    return ((5 * strata + 10) // 11) ** 2


@dataclass
class GuidedFilter:
    """Per-pixel normalised weights of the (2 r + 1)² neighbours, from geometry guides."""

    weights: np.ndarray  # (K, H, W) float32, summing to 1 over K

    @classmethod
    def from_guides(cls, normals: np.ndarray, depth: np.ndarray, pixel_size: float):
        """``normals`` (3, H, W) and ``depth`` (H, W) as the camera sees them (each pixel's mean
        over its samples; 0 normal where it sees nothing), ``pixel_size`` in scene units."""
        guides = np.concatenate(
            [normals / NORMAL_SIGMA, depth[None] / (DEPTH_SIGMA * pixel_size)]
        ).astype(np.float32)
        height, width = depth.shape
        r = RADIUS
        # The weight between two pixels is symmetric: each offset o gives the weights of o and
        # of −o at once when computed over the image grown by r (guides padded by 2 r).
        padded = np.pad(guides, ((0, 0), (2 * r, 2 * r), (2 * r, 2 * r)), mode="edge")
        grown = (slice(None), slice(r, r + height + 2 * r), slice(r, r + width + 2 * r))
        centre = padded[grown]
        difference = np.empty_like(centre)
        pair = np.empty(centre.shape[1:], np.float32)
        weights = np.empty((len(_OFFSETS), height, width), np.float32)
        for k, (dy, dx) in enumerate(_OFFSETS[: len(_OFFSETS) // 2 + 1]):
            shifted = padded[:, r + dy : r + dy + height + 2 * r, r + dx : r + dx + width + 2 * r]
            np.subtract(shifted, centre, out=difference)
            np.square(difference, out=difference)
            np.sum(difference, axis=0, out=pair)
            pair += (dy * dy + dx * dx) / SPATIAL_SIGMA**2
            np.minimum(pair, 170, out=pair)  # exp(−85) is float32's smallest normal: no
            np.exp(-0.5 * pair, out=pair)  # subnormal results, which take 10× as long
            weights[k] = pair[r : r + height, r : r + width]
            weights[-1 - k] = pair[r - dy : r - dy + height, r - dx : r - dx + width]
        weights /= weights.sum(0)
        return cls(weights)

    def __call__(self, image):
        """The filtered image: numpy (float32) or torch (differentiable, on the image's
        device)."""
        height, width = image.shape
        if isinstance(image, np.ndarray):
            weights = self.weights
            padded = np.pad(image.astype(np.float32), RADIUS, mode="edge")
        else:
            import torch

            weights = self._torch_weights(image.device, image.dtype)
            padded = torch.nn.functional.pad(image[None, None], (RADIUS,) * 4, mode="replicate")
            padded = padded[0, 0]
        out = 0
        for k, (dy, dx) in enumerate(_OFFSETS):
            rows = slice(RADIUS + dy, RADIUS + dy + height)
            out = out + weights[k] * padded[rows, RADIUS + dx : RADIUS + dx + width]
        return out

    def _torch_weights(self, device, dtype):
        import torch

        cached = self.__dict__.setdefault("_torch", {})
        key = (str(device), dtype)
        if key not in cached:
            cached[key] = torch.from_numpy(self.weights).to(device=device, dtype=dtype)
        return cached[key]


_OFFSETS = [(dy, dx) for dy in range(-RADIUS, RADIUS + 1) for dx in range(-RADIUS, RADIUS + 1)]
