"""Annotated samples: the one place → shade → label → contrast-check → retry routine.

:class:`AnnotatedRenderer` draws a constellation from the configuration's size and placement
distributions, asks a *values* function for BSDF parameters and the noise σ, renders the image
with the deferred-shading estimator (:mod:`.shading`: bit-for-bit reproducible), renders the
instance labels, and repeats with a fresh constellation while the contrast filter (paper 5.2.6)
rejects the image. Attempt ``a`` of sample key ``k`` draws everything from the seed ``(*k, a)``,
so a sample depends only on its key: resumable and identical across worker processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import MaterialConfig
from ..errors import DiffRenderGANError
from ..progress import Monitor, ensure

MAX_ATTEMPTS = 50


class RenderError(DiffRenderGANError):
    """No acceptable image could be rendered; the message says what to change."""


@dataclass
class SceneSample:
    """One annotated synthetic image with everything needed to reproduce it."""

    image: np.ndarray  # (H, W) float32, noise included
    instances: np.ndarray  # (H, W) uint16
    mask: np.ndarray  # (H, W) uint8 in {0, 1, 2}
    info: dict  # key, attempt, render seed, phi, BSDF values, noise sigma, contrast check


def mid_range_values(config: MaterialConfig) -> tuple[dict[str, float], float]:
    """The middle of every learned parameter's range, and the geometric middle of the noise
    range: noise limits span decades, and the arithmetic middle of agnw-sem's 0.001–1 (σ 0.5
    of full scale) buries the wires in noise."""
    learning = config.learning
    values = {}
    for name in learning.learned():
        low, high = learning.limits_for(*name.split(".", 1))
        values[name] = (low + high) / 2
    low, high = learning.noise_limits
    return values, float(np.sqrt(max(low, high / 1000) * high))  # 3 decades where low is 0


BLUR = "detector.blur"
BLUR_RADIUS = 8  # px: the Gaussian kernel's half width (4 σ at the largest σ of 2 px)


def detector(image, sigma, noise, clamp: bool, blur=None):
    """The generator's last module: the image blurred by the detector's point-spread function
    (a Gaussian of ``blur`` px, when learned), Gaussian ``noise`` (standard normal) scaled by
    ``sigma``, and the image clamped to the detector's [0, 1] before and after the noise when
    ``clamp``. Works on numpy arrays and, differentiably, on torch tensors: gradients pass the
    clamp unchanged (straight-through), so a saturated render still learns to be darker where
    a plain clamp would give it no gradient at all."""
    if blur is not None:
        image = gaussian_blur(image, blur)
    if clamp:
        image = _clip(image)
    image = image + sigma * noise
    return _clip(image) if clamp else image


def gaussian_blur(image, sigma):
    """Separable Gaussian blur of σ px (mirror borders), the same for numpy and torch (where it
    is differentiable in σ)."""
    if isinstance(image, np.ndarray):
        offsets = np.arange(-BLUR_RADIUS, BLUR_RADIUS + 1)
        kernel = np.exp(-(offsets**2) / (2 * max(float(sigma), 0.05) ** 2))
        kernel /= kernel.sum()
        padded = np.pad(image.astype(np.float64), BLUR_RADIUS, mode="reflect")
        rows = sum(w * padded[i : i + image.shape[0]] for i, w in enumerate(kernel))
        out = sum(w * rows[:, i : i + image.shape[1]] for i, w in enumerate(kernel))
        return out.astype(np.float32)
    import torch

    offsets = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=image.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma.clamp(min=0.05) ** 2))
    kernel = kernel / kernel.sum()
    padded = torch.nn.functional.pad(image[None, None], (BLUR_RADIUS,) * 4, mode="reflect")
    out = torch.nn.functional.conv2d(padded, kernel.view(1, 1, -1, 1))
    return torch.nn.functional.conv2d(out, kernel.view(1, 1, 1, -1))[0, 0]


@dataclass
class RenderValues:
    """Everything a render is made with besides its geometry, by meaning: the material (BSDF
    values ``material`` of the parameters ``names``), the support film's contrasts (``film``,
    ordered as :data:`~.film.FILM_NAMES`; empty when none is learned), the detector's blur σ
    (None: not learned) and noise σ. The values are numpy, torch or plain numbers alike; the
    generator's outputs become these in one place
    (:meth:`~napari_diffrendergan.gan.networks.ParameterSpace.values`)."""

    names: Sequence[str]
    material: Sequence
    film: Sequence = ()
    blur: object = None
    noise: object = 0.0

    @classmethod
    def named(cls, values: dict, noise) -> RenderValues:
        """From values by output name (``particle.roughness``, ``film.lines``,
        ``detector.blur``; missing film contrasts are 0 when any is given) and the noise σ."""
        from .film import FILM_NAMES

        names = [name for name in values if name not in (*FILM_NAMES, BLUR)]
        given = any(name in values for name in FILM_NAMES)
        film = [values.get(name, 0.0) for name in FILM_NAMES] if given else []
        return cls(names, [values[name] for name in names], film, values.get(BLUR), noise)

    def bsdf(self) -> dict[str, float]:
        """The material's BSDF values by name."""
        return {name: float(v) for name, v in zip(self.names, self.material, strict=True)}

    def recorded(self) -> dict[str, float]:
        """Every learned value but the noise σ, by output name (what a pair records)."""
        from .film import FILM_NAMES

        found = self.bsdf() | {n: float(v) for n, v in zip(FILM_NAMES, self.film, strict=False)}
        return found if self.blur is None else found | {BLUR: float(self.blur)}

    def detector(self, image, noise, clamp: bool):
        """``image`` through the detector (:func:`detector`): blur, clamp, ``noise``
        (standard normal) scaled by the noise σ, clamp."""
        return detector(image, self.noise, noise, clamp, self.blur)


# values(phi, rng) -> what the constellation phi is rendered with
ValuesFunction = Callable[[np.ndarray, np.random.Generator], RenderValues]


def _clip(image):
    clipped = image.clip(0, 1)
    if isinstance(image, np.ndarray):
        return clipped
    return image + (clipped - image).detach()


class AnnotatedRenderer:
    """Renders annotated samples of one configuration from one reused scene."""

    def __init__(
        self,
        config: MaterialConfig,
        device: str = "auto",
        spp: int | None = None,
        contour_thickness: int | None = None,
    ):
        from .scene import VirtualScene

        self.config = config.validate()
        self.spp = spp or config.scene.spp
        self.contour = config.contour_thickness if contour_thickness is None else contour_thickness
        self.scene = VirtualScene(config, device=device)

    def clean_image(self, phi: np.ndarray, values: RenderValues, seed: int) -> np.ndarray:
        """Constellation ``phi`` rendered with ``values`` and render seed ``seed``, the film
        texture on the stage, before the detector; the scene keeps ``phi`` placed."""
        from .film import FILM_NAMES, apply_film, film_fields
        from .shading import trace

        self.scene.place(phi)
        self.scene.set_bsdf(values.bsdf())
        cache = trace(self.scene, seed=seed, spp=self.spp)
        clean = cache.render()
        if self.config.learning.film:
            contrasts = list(values.film) or [0.0] * len(FILM_NAMES)
            fields = film_fields(clean.shape, seed, self.config.polarity)
            clean = apply_film(clean, cache.coverage("stage"), fields, contrasts)
        return clean

    def render(
        self,
        key: Sequence[int],
        values: ValuesFunction,
        max_attempts: int = MAX_ATTEMPTS,
        require_contrast: bool = True,
    ) -> SceneSample:
        """The sample of ``key``: attempts with new constellations and parameters until one
        passes the contrast filter (or, without ``require_contrast``, the first attempt, its
        check recorded in ``info["contrast"]``)."""
        from .labels import contrast_check, semantic_mask
        from .placement import constellation

        last = ""
        for attempt in range(max_attempts):
            rng = np.random.default_rng([*key, attempt])
            phi = constellation(self.config, rng)
            chosen = values(phi, rng)
            render_seed = int(rng.integers(2**31))
            clean = self.clean_image(phi, chosen, render_seed)
            instances = self.scene.instances()
            check = contrast_check(
                clean, instances, self.config.contrast_threshold, self.config.polarity
            )
            if check or not require_contrast:
                info = {
                    "key": list(key),
                    "attempt": attempt,
                    "rejected": attempt,
                    "render_seed": render_seed,
                    "spp": self.spp,
                    "phi": phi.tolist(),
                    "bsdf": chosen.recorded(),
                    "noise_sigma": float(chosen.noise),
                    "visible_particles": int(len(np.unique(instances[instances > 0]))),
                    "contrast": {
                        "accepted": check.accepted,
                        "reason": check.reason,
                        "particle_mean": check.particle_mean,
                        "background_mean": check.background_mean,
                    },
                }
                noise = rng.normal(0.0, 1.0, clean.shape)
                image = chosen.detector(clean, noise, self.config.learning.clamp)
                return SceneSample(
                    image.astype(np.float32),
                    instances,
                    semantic_mask(instances, self.contour),
                    info,
                )
            last = check.reason
        raise RenderError(
            f"{max_attempts} attempts failed the contrast filter (last: {last}): the parameters "
            "give too little particle contrast; check the epoch or the configuration"
        )


def render_sample(
    config: MaterialConfig,
    seed: int = 0,
    device: str = "auto",
    spp: int | None = None,
    monitor: Monitor | None = None,
) -> SceneSample:
    """One random constellation of ``config`` with mid-range BSDF and noise values; the contrast
    check is recorded, not enforced."""
    monitor = ensure(monitor)
    monitor.report(0, 2, "building the scene")
    renderer = AnnotatedRenderer(config, device=device, spp=spp)
    monitor.check()
    monitor.report(1, 2, "rendering image and labels")
    mid = RenderValues.named(*mid_range_values(config))
    sample = renderer.render((seed,), lambda phi, rng: mid, max_attempts=1, require_contrast=False)
    monitor.report(2, 2, "done")
    sample.info.update(
        config=config.to_dict(),
        seed=seed,
        backend=renderer.scene.backend.describe(),
        phi_columns=["x", "y", "z", "scale"],
    )
    return sample


SAMPLE_FILES = ("image", "instances", "mask")


def write_sample(sample: SceneSample, out: str | Path) -> dict[str, str]:
    """Write image.tif (float32), instances.tif (uint16), mask.tif (uint8) and scene.json, as a
    group that is complete or absent."""
    from ..io import file_group, write_json_atomic, write_tiff

    out = Path(out)
    paths = {name: out / f"{name}.tif" for name in SAMPLE_FILES}
    paths["scene"] = out / "scene.json"
    provenance = {
        "source": "diffrendergan scene",
        "seed": sample.info["seed"],
        "preset": sample.info["config"]["name"],
    }
    with file_group(out, "scene") as written:
        written.extend(paths.values())
        write_tiff(paths["image"], sample.image, **provenance)
        write_tiff(paths["instances"], sample.instances, **provenance)
        write_tiff(
            paths["mask"],
            sample.mask,
            classes={"0": "background", "1": "particle", "2": "contour"},
            **provenance,
        )
        write_json_atomic(paths["scene"], sample.info)
    return {k: str(v) for k, v in paths.items()}
