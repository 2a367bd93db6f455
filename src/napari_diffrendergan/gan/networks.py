"""The two networks of DiffRenderGAN and the space of the generator's outputs.

The generator is the paper's FCN (5.2.1): one flattened constellation in, the learned BSDF
parameters and the noise σ out, each a sigmoid in [0, 1] rescaled to its limits
(:class:`ParameterSpace`). The discriminator is CycleGAN's 70×70 PatchGAN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import MaterialConfig

NOISE = "noise"


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
    """CycleGAN's 3-layer PatchGAN (70×70 receptive field), instance norm, Xavier init."""
    import torch.nn as nn

    def block(c_in, c_out, stride, norm=True):
        conv = nn.Conv2d(c_in, c_out, 4, stride, 1)
        nn.init.xavier_normal_(conv.weight)
        nn.init.zeros_(conv.bias)
        return [conv] + ([nn.InstanceNorm2d(c_out)] if norm else []) + [nn.LeakyReLU(0.2)]

    layers = block(1, channels, 2, norm=False)
    layers += block(channels, channels * 2, 2) + block(channels * 2, channels * 4, 2)
    layers += block(channels * 4, channels * 8, 1)
    head = nn.Conv2d(channels * 8, 1, 4, 1, 1)
    nn.init.xavier_normal_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


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
        limits.append(tuple(learning.noise_limits))
        low, high = (np.array(v, dtype=np.float32) for v in zip(*limits, strict=True))
        return cls(names + [NOISE], low, high)

    @property
    def bsdf_names(self) -> list[str]:
        """The learned BSDF parameters (all outputs but the noise σ)."""
        return self.names[:-1]

    def scale(self, unit):
        """Generator outputs in [0, 1] → physical values (numpy or torch, last axis)."""
        if isinstance(unit, np.ndarray):
            return self.low + unit * (self.high - self.low)
        import torch

        low, high = (torch.as_tensor(v, device=unit.device) for v in (self.low, self.high))
        return low + unit * (high - low)

    def unscale(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float32) - self.low) / (self.high - self.low)

    def split(self, values) -> tuple[dict[str, float], float]:
        """One row of physical values → (BSDF parameters by name, noise σ)."""
        values = [float(v) for v in values]
        return dict(zip(self.bsdf_names, values[:-1], strict=True)), values[-1]


def normalise_phi(phi: np.ndarray, config: MaterialConfig) -> np.ndarray:
    """Constellations (…, n, 4) flattened for the generator: positions in half field widths,
    scales as they are."""
    half = config.scene.field_width / 2
    scaled = np.asarray(phi, np.float32) / np.array([half, half, half, 1.0], np.float32)
    return scaled.reshape(*scaled.shape[:-2], -1)
