"""The support film under the particles: a procedural texture with learned contrasts.

Real SEM scans of particles on a TEM grid show the carbon support film: a faint mottling and
thin wavy lines (curls and wrinkles), which show the particles' contrast: bright where the
particles are brighter than the stage, dark where they are darker (both are matter on the
film). The paper leaves them to real background patches; here the stage carries two random
fields per constellation (seeded) whose contrasts the generator learns like any BSDF value
(``film.mottle``, ``film.lines``). The texture modulates only what the camera sees of the
stage (its coverage of each pixel, from the trace).
"""

from __future__ import annotations

import numpy as np

FILM_NAMES = ("film.mottle", "film.lines")
LINE_WIDTH = 0.05  # of a field's standard deviation: how thin the lines are


def film_fields(shape: tuple[int, int], seed: int, polarity: str = "bright") -> np.ndarray:
    """(2, H, W) float32: a mottling field (two scales) and a field of thin wavy lines (the
    zero crossings of a smooth random field), each of zero mean and unit variance; the lines
    are bright, or dark for particles of ``polarity`` "dark"."""
    from scipy import ndimage

    rng = np.random.default_rng([seed, 7])
    white = rng.normal(size=(3, *shape))
    mottle = ndimage.gaussian_filter(white[0], 5, mode="wrap") + 0.7 * ndimage.gaussian_filter(
        white[1], 18, mode="wrap"
    )
    smooth = ndimage.gaussian_filter(white[2], 12, mode="wrap")
    wander = ndimage.gaussian_filter(white[1], 40, mode="wrap")  # lines fade in and out
    lines = np.exp(-((smooth / (LINE_WIDTH * smooth.std())) ** 2)) * (wander > 0)
    fields = np.stack([mottle, lines])
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    spread = fields.std(axis=(1, 2), keepdims=True)
    fields /= np.where(spread > 0, spread, 1.0)  # a small image may hold no line at all
    if polarity == "dark":
        fields[1] *= -1
    return fields.astype(np.float32)


def apply_film(image, coverage, fields, contrasts):
    """``image`` with the stage's share of every pixel (``coverage`` in [0, 1]) modulated by
    ``1 + Σ contrast_k · field_k`` (numpy, or torch and differentiable in the contrasts)."""
    modulation = 0.0
    for contrast, field_ in zip(contrasts, fields, strict=True):
        modulation = modulation + contrast * field_
    return image * (1 + coverage * modulation)
