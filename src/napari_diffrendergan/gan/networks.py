"""The two networks of DiffRenderGAN and the space of the generator's outputs.

The generator is the paper's FCN (5.2.1): one flattened constellation in, the learned BSDF
parameters and the noise σ out, each a sigmoid in [0, 1] rescaled to its limits
(:class:`ParameterSpace`). The discriminator is CycleGAN's 70×70 PatchGAN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import MaterialConfig
from ..render.film import FILM_NAMES
from ..render.sampling import BLUR, RenderValues

NOISE = "noise"


@dataclass(frozen=True)
class Meaning:
    """What one generator output does: a few words (plot titles), its unit (axis labels, ""
    when it has none) and one sentence (tooltips, docs)."""

    short: str
    unit: str
    what: str


# Mitsuba's principled BSDF (unitless; a value 0..1 is the usual range, the limits may exceed it)
BSDF_MEANINGS = {
    "base_color": Meaning("brightness", "", "albedo: how bright the surface renders"),
    "roughness": Meaning(
        "roughness", "", "microfacet roughness: 0 glossy, 1 matte; above 1 brightens rims"
    ),
    "sheen": Meaning("rim sheen", "", "extra reflection at grazing angles: bright rims"),
    "sheen_tint": Meaning("sheen tint", "", "how much the rim sheen takes the base colour"),
    "spec_tint": Meaning("specular tint", "", "how much highlights take the base colour"),
    "metallic": Meaning("metallic", "", "0 dielectric, 1 metal: no diffuse light, tinted gloss"),
    "specular": Meaning("specular", "", "strength of the glossy highlight (sets the IOR)"),
    "anisotropic": Meaning("anisotropy", "", "highlights stretched along one direction"),
    "clearcoat": Meaning("clear coat", "", "strength of a second, glossy coating layer"),
    "clearcoat_gloss": Meaning("coat gloss", "", "glossiness of the clear coat: 0 matte, 1 sharp"),
}
ROLES = {"particle": "particles", "stage": "stage (support)"}
OUTPUT_MEANINGS = {
    FILM_NAMES[0]: Meaning(
        "blotch contrast",
        "rel. contrast",
        "support film's blotchy texture: its σ as a fraction of the stage's brightness",
    ),
    FILM_NAMES[1]: Meaning(
        "line contrast",
        "rel. contrast",
        "film's thin lines (curls, wrinkles), bright or dark as the particles: strength "
        "relative to the stage",
    ),
    BLUR: Meaning("blur σ", "px", "σ of the detector's Gaussian point-spread function"),
    NOISE: Meaning(
        "noise σ", "of full scale", "σ of the detector's Gaussian noise, intensities 0..1"
    ),
}


def meaning(name: str) -> Meaning:
    """What the generator output ``name`` (``particle.sheen``, ``noise``, …) does: the one
    table plots and tooltips describe the learned parameters with."""
    if name in OUTPUT_MEANINGS:
        return OUTPUT_MEANINGS[name]
    role, _, bsdf = name.partition(".")
    base = BSDF_MEANINGS[bsdf]
    return Meaning(base.short, base.unit, f"{ROLES[role]}: {base.what}")


def describe(name: str) -> str:
    """``name`` with its meaning and unit in one line, e.g. for a tooltip."""
    found = meaning(name)
    unit = f" [{found.unit}]" if found.unit else ""
    return f"{name}{unit}: {found.what}"


def build_generator(n_meshes: int, n_outputs: int, dropout: float, hidden: int = 128):
    """The paper's FCN: 4 × [Dropout, Linear(128), ReLU] + Linear + Sigmoid, weight-normalised,
    Xavier-initialised. Input: one flattened constellation (n × 4, normalised)."""
    import torch.nn as nn
    from torch.nn.utils.parametrizations import weight_norm

    def linear(n_in, n_out):
        layer = nn.Linear(n_in, n_out)
        nn.init.xavier_normal_(layer.weight)
        nn.init.zeros_(layer.bias)
        return weight_norm(layer)

    layers, width = [], n_meshes * 4
    for _ in range(4):
        layers += [nn.Dropout(dropout), linear(width, hidden), nn.ReLU()]
        width = hidden
    layers += [linear(hidden, n_outputs), nn.Sigmoid()]
    return nn.Sequential(*layers)


def build_discriminator(channels: int = 64):
    """CycleGAN's 3-layer PatchGAN (70×70 receptive field), Xavier init, with spectral instead
    of instance normalisation: instance norm hides every image's overall brightness and
    contrast from the discriminator, exactly what the generator must learn (measured: with it,
    parameter recovery drove the particle base colour from 2.5 to 4.7 for a truth of 1.2;
    without it, to 1.96 in the same iterations)."""
    import torch.nn as nn
    from torch.nn.utils.parametrizations import spectral_norm

    def block(c_in, c_out, stride):
        conv = nn.Conv2d(c_in, c_out, 4, stride, 1)
        nn.init.xavier_normal_(conv.weight)
        nn.init.zeros_(conv.bias)
        return [spectral_norm(conv), nn.LeakyReLU(0.2)]

    layers = block(1, channels, 2)
    layers += block(channels, channels * 2, 2) + block(channels * 2, channels * 4, 2)
    layers += block(channels * 4, channels * 8, 1)
    head = nn.Conv2d(channels * 8, 1, 4, 1, 1)
    nn.init.xavier_normal_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, spectral_norm(head))


@dataclass
class ParameterSpace:
    """Names and limits of the generator's outputs: learned BSDF parameters, then noise σ."""

    names: list[str]
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_config(cls, config: MaterialConfig) -> ParameterSpace:
        learning = config.learning
        names = learning.learned()
        limits = [learning.limits_for(*name.split(".", 1)) for name in names]
        if learning.film:
            names += list(FILM_NAMES)
            limits += [tuple(learning.film_limits)] * len(FILM_NAMES)
        if learning.blur:
            names.append(BLUR)
            limits.append(tuple(learning.blur_limits))
        limits.append(tuple(learning.noise_limits))
        low, high = (np.array(v, dtype=np.float32) for v in zip(*limits, strict=True))
        return cls(names + [NOISE], low, high)

    @property
    def bsdf_names(self) -> list[str]:
        """The learned BSDF parameters (of the particles and the stage)."""
        return [n for n in self.names if n.split(".", 1)[0] in ("particle", "stage")]

    @property
    def film_names(self) -> list[str]:
        """The learned film contrasts (empty unless the configuration learns a film)."""
        return [n for n in self.names if n.startswith("film.")]

    def index(self, name: str) -> int | None:
        """Where output ``name`` is, or None when it is not learned."""
        return self.names.index(name) if name in self.names else None

    def limits(self) -> dict[str, tuple[float, float]]:
        """(low, high) of every learned BSDF parameter."""
        bsdf = set(self.bsdf_names)
        return {
            name: (float(low), float(high))
            for name, low, high in zip(self.names, self.low, self.high, strict=True)
            if name in bsdf
        }

    def scale(self, unit):
        """Generator outputs in [0, 1] → physical values (numpy or torch, last axis)."""
        if isinstance(unit, np.ndarray):
            return self.low + unit * (self.high - self.low)
        import torch

        low, high = (torch.as_tensor(v, device=unit.device) for v in (self.low, self.high))
        return low + unit * (high - low)

    def unscale(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float32) - self.low) / (self.high - self.low)

    def values(self, row) -> RenderValues:
        """One row of physical values (numpy, torch or a list) by meaning: material, film,
        detector blur and noise σ, each a slice or an element of ``row`` (torch: gradients
        flow back into it). The one place that knows the order of the generator's outputs."""
        n_bsdf, n_film = len(self.bsdf_names), len(self.film_names)
        blur = self.index(BLUR)
        return RenderValues(
            self.bsdf_names,
            row[:n_bsdf],
            row[n_bsdf : n_bsdf + n_film],
            None if blur is None else row[blur],
            row[-1],
        )


def normalise_phi(phi: np.ndarray, config: MaterialConfig) -> np.ndarray:
    """Constellations (…, n, 4) flattened for the generator: positions in half field widths,
    scales as they are."""
    half = config.scene.field_width / 2
    scaled = np.asarray(phi, np.float32) / np.array([half, half, half, 1.0], np.float32)
    return scaled.reshape(*scaled.shape[:-2], -1)
