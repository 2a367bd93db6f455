"""A scan's two phases and which of them the particles are (bright or dark), from the scan
alone: the first step of calibration (docs/calibration.md), and what patch cutting uses to
tell particles from background without being told their polarity."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_AREA = 20  # px: smaller specks of either phase are noise

SMOOTHING = 1.0  # px: Gaussian σ before the threshold

MIN_CONTRAST = 3.0  # particles must differ from the background by this many noise σ


@dataclass(eq=False)
class ScanPhases:
    """One scan split into its bright and dark phase, and the evidence for the polarity."""

    name: str
    bright: np.ndarray  # bool
    contrast: float  # difference of the phases' means in noise σ
    thickness: dict[str, float]  # 90th percentile of each phase's distance transform (px)


def normalised(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 scaled so that its 0.5th and 99.5th percentiles are 0 and 1."""
    image = np.asarray(image, np.float32)
    low, high = np.percentile(image, [0.5, 99.5])
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def noise_sigma(image: np.ndarray) -> float:
    """Pixel noise σ from the median absolute deviation of horizontal neighbour differences
    (robust to the few differences that cross an edge)."""
    differences = np.diff(image, axis=1).ravel()
    return float(1.4826 * np.median(np.abs(differences - np.median(differences))) / math.sqrt(2))


def scan_phases(image: np.ndarray, name: str = "scan") -> ScanPhases:
    """The scan's bright phase at Otsu's threshold of the smoothed scan (specks and faint
    components of either phase given to the other), the contrast of the phases and their
    thickness."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    image = normalised(image)
    smooth = ndimage.gaussian_filter(image, SMOOTHING)
    # Otsu's threshold of the scan and of its negative, averaged: an inverted scan splits in
    # the same place (the histogram's bins favour neither)
    threshold = (
        (threshold_otsu(smooth) + 1 - threshold_otsu(1 - smooth)) / 2 if np.ptp(smooth) else 1
    )
    bright = smooth > threshold
    if bright.all() or not bright.any():
        return ScanPhases(name, bright, 0.0, {"bright": 0.0, "dark": 0.0})
    difference = float(smooth[bright].mean() - smooth[~bright].mean())
    contrast = difference / max(noise_sigma(image), 1e-6)
    specks = (bright & ~_without_specks(bright)) | (~bright & ~_without_specks(~bright))
    bright ^= specks  # both phases' at once: an inverted scan loses the same
    faint = (bright & ~_without_faint(bright, smooth, threshold)) | (
        ~bright & ~_without_faint(~bright, -smooth, -threshold)
    )
    bright ^= faint
    return ScanPhases(
        name, bright, contrast, {"bright": thickness(bright), "dark": thickness(~bright)}
    )


def _without_faint(phase: np.ndarray, smooth: np.ndarray, threshold: float) -> np.ndarray:
    """``phase`` (where ``smooth`` lies above ``threshold``) without its components that
    nowhere reach halfway from the threshold to the phase's median: texture that crosses the
    threshold, not objects (hysteresis thresholding)."""
    from skimage.measure import label

    strong = phase & (smooth >= (threshold + np.median(smooth[phase])) / 2)
    labels = label(phase, connectivity=2)
    keep = np.zeros(labels.max() + 1, bool)
    keep[labels[strong]] = True
    keep[0] = False
    return keep[labels]


def _without_specks(mask: np.ndarray) -> np.ndarray:
    from skimage.measure import label

    labels = label(mask, connectivity=2)
    keep = np.bincount(labels.ravel()) >= MIN_AREA
    keep[0] = False
    return keep[labels]


def thickness(mask: np.ndarray) -> float:
    """90th percentile of the distance (px) of ``mask``'s pixels to the other phase."""
    from scipy import ndimage

    if not mask.any():
        return 0.0
    return float(np.percentile(ndimage.distance_transform_edt(mask)[mask], 90))


def polarity(scans: list[ScanPhases]) -> tuple[str, dict]:
    """The particles' polarity: the thinner phase, each scan voting with the log of its
    thickness ratio; and the evidence (each scan's thickness, how many scans agree)."""
    votes = [
        math.log(max(s.thickness["dark"], 0.5) / max(s.thickness["bright"], 0.5)) for s in scans
    ]
    chosen = "bright" if sum(votes) > 0 else "dark"
    agree = sum((v > 0) == (chosen == "bright") for v in votes)
    return chosen, {
        "scans_agreeing": agree,
        "scans": len(scans),
        "thickness_px": {s.name: s.thickness for s in scans},
    }


def image_polarity(images) -> str | None:
    """The particles' polarity in ``images`` (2D arrays, e.g. regions of one scan) by the rule
    of :func:`polarity`; None where nothing in them stands out from the noise."""
    usable = [p for p in map(scan_phases, images) if p.contrast >= MIN_CONTRAST]
    return polarity(usable)[0] if usable else None
