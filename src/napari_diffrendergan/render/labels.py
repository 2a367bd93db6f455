"""Annotations from instance labels: the 3-class semantic mask and the contrast filter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..config import POLARITIES
from ..errors import InputError

BACKGROUND, PARTICLE, CONTOUR = 0, 1, 2


def _diamond(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (np.abs(x) + np.abs(y)) <= radius


def semantic_mask(instances: np.ndarray, contour_thickness: int) -> np.ndarray:
    """uint8 mask: 0 background, 1 particle, 2 contour.

    A particle pixel is contour when a pixel of another label (background or another
    particle) lies within ``contour_thickness`` 4-connected steps, so the contour runs
    inside each particle along its boundary, between touching particles too. Image borders
    do not count as boundaries.
    """
    instances = np.asarray(instances)
    if instances.ndim != 2:
        raise InputError(f"instance labels must be 2D, got shape {instances.shape}")
    mask = (instances > 0).astype(np.uint8)
    if contour_thickness > 0:
        footprint = _diamond(int(contour_thickness))
        lo = ndimage.minimum_filter(instances, footprint=footprint, mode="nearest")
        hi = ndimage.maximum_filter(instances, footprint=footprint, mode="nearest")
        mask[(instances > 0) & ((lo != instances) | (hi != instances))] = CONTOUR
    return mask


@dataclass(frozen=True)
class ContrastCheck:
    """Outcome of the contrast filter (paper 5.2.6)."""

    accepted: bool
    particle_mean: float
    background_mean: float
    reason: str

    def __bool__(self) -> bool:
        return self.accepted


def contrast_check(
    image: np.ndarray, instances: np.ndarray, threshold: float = 0.15, polarity: str = "bright"
) -> ContrastCheck:
    """Accept an image only if its mean particle intensity lies at least ``threshold`` (15 %)
    above its mean background intensity (``polarity`` "bright") or below it ("dark");
    otherwise say why it was rejected."""
    if polarity not in POLARITIES:
        raise InputError(f"polarity {polarity!r} is not one of {', '.join(POLARITIES)}")
    image = np.asarray(image, dtype=np.float64)
    particles = np.asarray(instances) > 0
    if image.shape != particles.shape:
        raise InputError(f"image {image.shape} and labels {particles.shape} differ in shape")
    if not particles.any():
        return ContrastCheck(False, float("nan"), float(image.mean()), "no particle is visible")
    if particles.all():
        return ContrastCheck(
            False,
            float(image.mean()),
            float("nan"),
            "particles cover the whole image, no background to compare with",
        )
    p, b = float(image[particles].mean()), float(image[~particles].mean())
    if polarity == "bright":
        needed, side, sign = b * (1 + threshold), "above", ">="
        enough = p >= needed
    else:
        needed, side, sign = b * (1 - threshold), "below", "<="
        enough = b > 0 and p <= needed  # nothing is darker than a black background
    if not enough:
        return ContrastCheck(
            False,
            p,
            b,
            f"mean particle intensity {p:.4g} is less than {threshold:.0%} {side} the mean "
            f"background intensity {b:.4g} ({polarity} particles need {sign} {needed:.4g})",
        )
    if polarity == "dark":
        return ContrastCheck(True, p, b, f"particles {1 - p / b:.0%} darker than background")
    return ContrastCheck(
        True,
        p,
        b,
        f"particles {p / b - 1:+.0%} brighter than background" if b > 0 else "background is black",
    )
