"""Typed configuration of a material case (mesh set, distributions, scene, learned limits).

A :class:`MaterialConfig` fully describes how synthetic images of one material are made.
It round-trips through JSON (:meth:`MaterialConfig.to_json` / :meth:`MaterialConfig.from_json`)
and :meth:`MaterialConfig.validate` reports every problem at once with a clear message.
Lengths are in *mesh units*: every library mesh is normalised so that its largest extent is
1.0, so a size of 1.0 is the mesh as stored and ``scene.field_width`` says how many mesh units
the image spans.

A configuration may instead state its geometry in physical units, in an optional ``physical``
section (:class:`PhysicalConfig`, written by ``diffrendergan calibrate``): the pixel size of the
scans, the particle diameters in nm and the particles per µm². The mesh-unit geometry is then
derived from it for the image size (:meth:`PhysicalConfig.mesh_geometry`) whenever the
configuration is validated, loaded or resized: ``size``, ``meshes.count`` and
``scene.field_width`` are never typed by hand, and values typed there are replaced. Without a
``physical`` section (every built-in preset, every older file) nothing is derived.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

SIZE_KINDS = {
    "normal": ("mean", "std"),
    "lognormal": ("median", "sigma"),
    "bimodal": ("mean1", "std1", "mean2", "std2", "weight2"),
}
SIZE_LENGTHS = ("mean", "std", "median", "mean1", "std1", "mean2", "std2")  # the others: ratios
PLACEMENT_KINDS = ("random-2d", "random-3d", "poisson-3d")
POLARITIES = ("bright", "dark")
MESH_LIBRARIES = ("cubes", "spheres", "wires", "pebbles")
PARTICLE_BSDF_PARAMS = (
    "roughness",
    "base_color",
    "sheen",
    "sheen_tint",
    "spec_tint",
    "metallic",
    "specular",
    "anisotropic",
    "clearcoat",
    "clearcoat_gloss",
)
STAGE_BSDF_PARAMS = PARTICLE_BSDF_PARAMS
SAMPLERS = ("stratified", "multijitter", "ldsampler", "independent")
MAX_SAMPLES = 2**32 - 1  # samples of one render: Mitsuba and Dr.Jit count them in 32 bits
MAX_CONTOUR = 32  # px: widest contour class


class ConfigError(InputError):
    """A configuration is invalid; the message lists every problem found."""


@dataclass
class SizeDistribution:
    """Particle scale factors (mesh units).

    ``normal``: mean, std. ``lognormal``: median, sigma (std of the log). ``bimodal``: two
    normal modes mean1/std1 and mean2/std2, weight2 the fraction drawn from the second.
    Samples are clipped to [minimum, maximum].
    """

    kind: str = "lognormal"
    params: dict[str, float] = field(default_factory=lambda: {"median": 1.0, "sigma": 0.25})
    minimum: float = 0.05
    maximum: float = 10.0

    def problems(self) -> list[str]:
        if self.kind not in SIZE_KINDS:
            return [f"size.kind {self.kind!r} is not one of {', '.join(SIZE_KINDS)}"]
        found = []
        wanted = SIZE_KINDS[self.kind]
        missing = [k for k in wanted if k not in self.params]
        extra = [k for k in self.params if k not in wanted]
        if missing:
            found.append(f"size ({self.kind}) needs parameters {', '.join(missing)}")
        if extra:
            found.append(f"size ({self.kind}) does not take parameters {', '.join(extra)}")
        for key, value in self.params.items():
            if key in wanted and not _positive(value) and key != "weight2":
                found.append(f"size.{key} must be a positive number, got {value!r}")
        if "weight2" in self.params and not 0 <= self.params["weight2"] <= 1:
            found.append(f"size.weight2 must lie in [0, 1], got {self.params['weight2']!r}")
        if not (
            _positive(self.minimum) and _positive(self.maximum) and self.minimum < self.maximum
        ):
            found.append(
                f"size minimum/maximum must satisfy 0 < min < max, got "
                f"{self.minimum!r}, {self.maximum!r}"
            )
        return found


@dataclass
class PlacementConfig:
    """Where particles go. Positions are in mesh units, the image centre at the origin.

    ``random-2d``: uniform on the stage plane; ``random-3d``: uniform in a slab of
    ``slab_height`` above it; ``poisson-3d``: ``agglomerates`` clusters of Poisson-disk
    (Bridson) points at least ``min_distance`` apart, which packs particles into agglomerates.
    ``dense_fraction`` of the ``poisson-3d`` constellations pack all particles into one
    agglomerate instead (real scans hold agglomerates of tens to hundreds of particles).
    ``margin`` lets particles reach past the image edge (fraction of the field width);
    ``lift`` raises the slab above the stage (mesh units): particles float, casting no contact
    shadows.
    """

    kind: str = "poisson-3d"
    agglomerates: int = 3
    min_distance: float = 0.9
    slab_height: float = 1.0
    dense_fraction: float = 0.0
    margin: float = 0.05
    lift: float = 0.0

    def problems(self) -> list[str]:
        found = []
        if self.kind not in PLACEMENT_KINDS:
            found.append(f"placement.kind {self.kind!r} is not one of {', '.join(PLACEMENT_KINDS)}")
        if not isinstance(self.agglomerates, int) or self.agglomerates < 1:
            found.append(
                f"placement.agglomerates must be an integer >= 1, got {self.agglomerates!r}"
            )
        if not _positive(self.min_distance):
            found.append(f"placement.min_distance must be positive, got {self.min_distance!r}")
        for name in ("slab_height", "lift"):
            if not _non_negative(getattr(self, name)):
                found.append(f"placement.{name} must be >= 0, got {getattr(self, name)!r}")
        if not (_non_negative(self.dense_fraction) and self.dense_fraction <= 1):
            found.append(
                f"placement.dense_fraction must lie in [0, 1], got {self.dense_fraction!r}"
            )
        if not (_non_negative(self.margin) and self.margin < 0.5):
            found.append(f"placement.margin must lie in [0, 0.5), got {self.margin!r}")
        return found


@dataclass
class SceneConfig:
    """Virtual microscope: camera above a stage, torus emitter around it, rectangle above.

    Distances are multiples of ``field_width`` (the stage width visible in the image). The
    torus tube is ``torus_tube_radius`` wide and ``torus_tube_height`` tall (half-axes; 0:
    round), so a tall thin torus is a band of light around the scene. ``spp`` is the quality
    of that many samples per pixel; with ``denoise`` the renderer traces fewer and filters
    them guided by the geometry (render/denoise.py: 25 traced for spp-121 quality).
    """

    field_width: float = 8.0
    width: int = 256
    height: int = 256
    spp: int = 16
    sampler: str = "stratified"
    filter_stddev: float = 0.5
    camera_height: float = 2.0
    stage_extent: float = 2.4
    denoise: bool = False
    torus_radius: float = 0.9
    torus_tube_radius: float = 0.12
    torus_tube_height: float = 0.0
    torus_z: float = 0.15
    torus_radiance: float = 1.0
    rect_size: float = 1.0
    rect_height: float = 2.5
    rect_radiance: float = 0.1

    def problems(self) -> list[str]:
        found = []
        for name in (
            "field_width",
            "filter_stddev",
            "camera_height",
            "stage_extent",
            "torus_radius",
            "torus_tube_radius",
            "rect_size",
            "rect_height",
        ):
            if not _positive(getattr(self, name)):
                found.append(f"scene.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("torus_radiance", "rect_radiance", "torus_tube_height"):
            if not _non_negative(getattr(self, name)):
                found.append(f"scene.{name} must be >= 0, got {getattr(self, name)!r}")
        sizes = {"width": self.width, "height": self.height, "spp": self.spp}
        for name, value in sizes.items():
            if not whole_number(value, 1, MAX_SAMPLES):
                found.append(f"scene.{name} must be a positive integer, got {value!r}")
        if all(whole_number(value, 1, MAX_SAMPLES) for value in sizes.values()):
            found.extend(self._size_problems())
        if self.sampler not in SAMPLERS:
            found.append(f"scene.sampler {self.sampler!r} is not one of {', '.join(SAMPLERS)}")
        heights = (self.camera_height, self.rect_height)
        if all(map(_positive, heights)) and self.rect_height <= self.camera_height:
            found.append(
                "scene.rect_height must exceed camera_height (the rectangle emitter "
                "sits above the camera)"
            )
        return found

    def _size_problems(self) -> list[str]:
        """Image size and spp (positive integers) that cannot be rendered."""
        found = []
        if min(self.width, self.height) < 16:
            found.append(f"scene image {self.width}x{self.height} is too small (minimum 16 px)")
        if round(self.spp**0.5) ** 2 != self.spp:
            found.append(
                f"scene.spp must be a square number (1, 4, 9, 16, …, 121: one sample per stratum "
                f"of a square grid), got {self.spp!r}"
            )
        samples = self.width * self.height * self.spp
        if samples > MAX_SAMPLES:
            found.append(
                f"a {self.width}x{self.height} image at spp {self.spp} needs {samples:,} "
                f"samples per render, more than Mitsuba's limit of {MAX_SAMPLES:,}: choose a "
                "smaller image size or spp"
            )
        return found


@dataclass
class LearningConfig:
    """What the generator learns, the ranges its sigmoid outputs are rescaled to, the fixed
    values of the BSDF parameters it does not learn (Mitsuba's defaults otherwise), and
    whether renders are clamped to the detector's [0, 1] before and after the noise."""

    particle_params: list[str] = field(default_factory=lambda: ["roughness", "base_color", "sheen"])
    stage_params: list[str] = field(default_factory=lambda: ["base_color"])
    particle_limits: tuple[float, float] = (0.01, 5.0)
    stage_limits: tuple[float, float] = (0.01, 0.4)
    noise_limits: tuple[float, float] = (0.001, 0.1)
    particle_fixed: dict[str, float] = field(
        default_factory=lambda: {"specular": 0.0, "metallic": 0.0}
    )
    # a diffuse stage: the paper's mirror-like stage (roughness 0, specular 0.5) shows the
    # reflection of our ring light as a bright ring around a dark disk (measured)
    stage_fixed: dict[str, float] = field(
        default_factory=lambda: {"roughness": 0.5, "specular": 0.0}
    )
    clamp: bool = True
    film: bool = False  # learn the contrasts of a support-film texture on the stage
    film_limits: tuple[float, float] = (0.0, 0.5)
    blur: bool = False  # learn the detector's point-spread function (Gaussian σ, px)
    blur_limits: tuple[float, float] = (0.0, 2.0)

    def limits_for(self, role: str, name: str) -> tuple[float, float]:
        """Range of a learned BSDF parameter: the role's limits (principled parameters above 1
        are allowed: roughness and sheen above 1 brighten rims)."""
        return self.particle_limits if role == "particle" else self.stage_limits

    def fixed(self) -> dict[str, float]:
        """The fixed BSDF values by full name, e.g. ``particle.specular``."""
        return {f"particle.{k}": v for k, v in self.particle_fixed.items()} | {
            f"stage.{k}": v for k, v in self.stage_fixed.items()
        }

    def learned(self) -> list[str]:
        """Learned parameter names in generator output order, e.g. ``particle.roughness``."""
        return [f"particle.{n}" for n in self.particle_params] + [
            f"stage.{n}" for n in self.stage_params
        ]

    def problems(self) -> list[str]:
        found = []
        for role, names, allowed in (
            ("particle", self.particle_params, PARTICLE_BSDF_PARAMS),
            ("stage", self.stage_params, STAGE_BSDF_PARAMS),
        ):
            unknown = [n for n in names if n not in allowed]
            if unknown:
                found.append(
                    f"learning.{role}_params: unknown BSDF parameter(s) "
                    f"{', '.join(unknown)}; known: {', '.join(allowed)}"
                )
            if len(set(names)) != len(names):
                found.append(f"learning.{role}_params lists a parameter twice")
            fixed = getattr(self, f"{role}_fixed")
            if not isinstance(fixed, dict):
                found.append(f"learning.{role}_fixed must map parameter names to numbers")
                continue
            wrong = [n for n in fixed if n not in allowed or n in names]
            if wrong:
                found.append(
                    f"learning.{role}_fixed: {', '.join(wrong)} not fixable (unknown, or learned)"
                )
            for name, value in fixed.items():
                if not _non_negative(value):
                    found.append(f"learning.{role}_fixed.{name} must be >= 0, got {value!r}")
        for name in (
            "particle_limits",
            "stage_limits",
            "noise_limits",
            "film_limits",
            "blur_limits",
        ):
            limits = getattr(self, name)
            if (
                len(limits) != 2
                or not all(_non_negative(v) for v in limits)
                or not limits[0] < limits[1]
            ):
                found.append(
                    f"learning.{name} must be (low, high) with 0 <= low < high, got {limits!r}"
                )
        return found


@dataclass
class MeshSetConfig:
    """Which meshes: a built-in library (cubes, spheres, wires, pebbles) or a folder, and how
    many."""

    library: str = "cubes"
    count: int = 40

    def problems(self) -> list[str]:
        found = []
        if self.library not in MESH_LIBRARIES and not Path(self.library).expanduser().is_dir():
            found.append(
                f"meshes.library {self.library!r} is neither a built-in library "
                f"({', '.join(MESH_LIBRARIES)}) nor an existing folder"
            )
        if not isinstance(self.count, int) or self.count < 1:
            found.append(f"meshes.count must be an integer >= 1, got {self.count!r}")
        return found


@dataclass
class PhysicalConfig:
    """The scene geometry in physical units, e.g. measured on the user's scans.

    ``pixel_size_nm``: the scans' pixel size, at which synthetic images are rendered.
    ``diameter``: the particle diameters in nm, as :class:`SizeDistribution` (its minimum and
    maximum in nm too): the equivalent circular diameter of a particle's projection, or for the
    wires library the wire's width. ``density_per_um2``: particles per µm² of image (including
    those other particles hide). ``polarity``: whether the particles are brighter or darker than
    the background (:attr:`MaterialConfig.polarity`: the direction the contrast filter asks
    for).
    """

    pixel_size_nm: float = 1.0
    diameter: SizeDistribution = field(
        default_factory=lambda: SizeDistribution(
            "lognormal", {"median": 30.0, "sigma": 0.3}, minimum=1.5, maximum=300.0
        )
    )
    density_per_um2: float = 10.0
    polarity: str = "bright"

    def problems(self) -> list[str]:
        from .io import PIXEL_SIZE_RANGE_NM

        low, high = PIXEL_SIZE_RANGE_NM
        found = [f"physical.diameter: {p}" for p in self.diameter.problems()]
        if not (_positive(self.pixel_size_nm) and low <= self.pixel_size_nm <= high):
            found.append(
                f"physical.pixel_size_nm must be a number of nm from {low:g} to {high:g}, got "
                f"{self.pixel_size_nm!r}"
            )
        if not _positive(self.density_per_um2):
            found.append(f"physical.density_per_um2 must be positive, got {self.density_per_um2!r}")
        if self.polarity not in POLARITIES:
            found.append(
                f"physical.polarity {self.polarity!r} is not one of {', '.join(POLARITIES)}"
            )
        return found

    def mesh_geometry(
        self, library: str, width: int, height: int, margin: float = 0.0
    ) -> tuple[SizeDistribution, int, float]:
        """The size distribution (mesh units), mesh count and field width (mesh units) of a
        ``width`` × ``height`` px image at :attr:`pixel_size_nm`: a mesh of scale 1.0 has the
        typical diameter (median, or mean) and ``density_per_um2`` particles fall on the
        image on average, placed over the field widened by ``margin`` on each side."""
        from .render.meshes import projected_diameter

        typical = _typical(self.diameter)
        nm_per_unit = typical / projected_diameter(library)
        size = _scaled(self.diameter, 1 / typical)
        area_um2 = width * height * (self.pixel_size_nm / 1000) ** 2
        count = max(1, round(self.density_per_um2 * area_um2 * (1 + 2 * margin) ** 2))
        return size, count, width * self.pixel_size_nm / nm_per_unit


def _typical(size: SizeDistribution) -> float:
    """The median of a lognormal, the mean of a normal or of a two-mode mixture."""
    p = size.params
    if size.kind == "bimodal":
        return (1 - p["weight2"]) * p["mean1"] + p["weight2"] * p["mean2"]
    return p["median"] if size.kind == "lognormal" else p["mean"]


def _scaled(size: SizeDistribution, factor: float) -> SizeDistribution:
    """``size`` with every length multiplied by ``factor`` (spreads of logs and weights kept)."""
    params = {k: v * factor if k in SIZE_LENGTHS else v for k, v in size.params.items()}
    return SizeDistribution(size.kind, params, size.minimum * factor, size.maximum * factor)


@dataclass
class MaterialConfig:
    """Everything needed to render synthetic, annotated images of one material case."""

    name: str = "custom"
    description: str = ""
    meshes: MeshSetConfig = field(default_factory=MeshSetConfig)
    size: SizeDistribution = field(default_factory=SizeDistribution)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    contour_thickness: int = 1
    contrast_threshold: float = 0.15
    physical: PhysicalConfig | None = None

    def problems(self) -> list[str]:
        found = []
        for part in (self.meshes, self.size, self.placement, self.scene, self.learning):
            found.extend(part.problems())
        if self.physical is not None:
            found.extend(self.physical.problems())
        if not whole_number(self.contour_thickness, 0, MAX_CONTOUR):
            found.append(
                f"contour_thickness must be an integer in [0, {MAX_CONTOUR}] px, got "
                f"{self.contour_thickness!r}"
            )
        if not _non_negative(self.contrast_threshold):
            found.append(f"contrast_threshold must be >= 0, got {self.contrast_threshold!r}")
        return found

    @property
    def polarity(self) -> str:
        """ "bright" or "dark": the particles' polarity (``physical.polarity``; bright without a
        ``physical`` section)."""
        return self.physical.polarity if self.physical is not None else "bright"

    def validate(self) -> MaterialConfig:
        """Return self, with its mesh-unit geometry derived from the ``physical`` section if it
        has one, or raise :class:`ConfigError` listing every problem."""
        found = self.problems()
        if found:
            raise ConfigError(f"Invalid configuration {self.name!r}:\n  - " + "\n  - ".join(found))
        if self.physical is not None:
            self.size, self.meshes.count, self.scene.field_width = self.physical.mesh_geometry(
                self.meshes.library, self.scene.width, self.scene.height, self.placement.margin
            )
        return self

    def resized(self, width: int, height: int) -> MaterialConfig:
        """This configuration rendering ``width`` × ``height`` pixels at the same pixel scale
        (mesh units per pixel) and particle density (meshes per pixel area)."""
        scene = self.scene
        if (scene.width, scene.height) != (width, height):
            area = width * height / (scene.width * scene.height)
            scene.field_width *= width / scene.width
            self.meshes.count = max(1, round(self.meshes.count * area))
            scene.width, scene.height = width, height
        return self.validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain values; without a ``physical`` section the key is left out, so configurations
        in mesh units are written exactly as before it existed."""
        data = dataclasses.asdict(self)
        if self.physical is None:
            del data["physical"]
        return data

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaterialConfig:
        """Build from a dict (e.g. parsed JSON); unknown keys are errors, missing keys default."""
        return _build(cls, data, "config").validate()

    @classmethod
    def from_json(cls, text: str) -> MaterialConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"Configuration is not valid JSON: {err}") from err
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        from .io import write_text_atomic

        write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> MaterialConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Configuration file {path} does not exist")
        try:
            return cls.from_json(path.read_text())
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not a configuration JSON file ({err})") from err
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err


OPTIONAL_SECTIONS = {"physical": PhysicalConfig}  # sections that default to None


# keys of earlier versions that never acted, and the value they could hold without harm:
# dropped when a file holds them (a note when it held another value)
REMOVED_KEYS = {
    ("SceneConfig", "integrator"): (
        "direct",
        "renders always use the project's own estimator of Mitsuba's direct integrator",
    ),
}


def _without_removed(cls, data: dict, where: str) -> dict:
    """``data`` without the keys of :data:`REMOVED_KEYS`, with a logged note for each that
    held a value other than the one that acted."""
    import logging

    kept = dict(data)
    for (owner, key), (acted, why) in REMOVED_KEYS.items():
        if owner == cls.__name__ and key in kept:
            value = kept.pop(key)
            if value != acted:
                logging.getLogger(__name__).warning(
                    "%s.%s %r is ignored (no longer a setting: %s)", where, key, value, why
                )
    return kept


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    data = _without_removed(cls, data, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        default = (
            fields[name].default_factory()
            if fields[name].default_factory is not dataclasses.MISSING
            else fields[name].default
        )
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        elif name in OPTIONAL_SECTIONS and value is not None:
            kwargs[name] = _build(OPTIONAL_SECTIONS[name], value, f"{where}.{name}")
        elif isinstance(default, tuple):
            if not isinstance(value, list | tuple):
                raise ConfigError(f"{where}.{name} must be a list of two numbers, got {value!r}")
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def whole_number(value: Any, low: int, high: int | None = None) -> bool:
    """An integer (not a boolean) from ``low`` to ``high`` (no upper bound: ``None``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return low <= value and (high is None or value <= high)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _non_negative(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _tio2_sem() -> MaterialConfig:
    return MaterialConfig(
        name="tio2-sem",
        description="TiO2 nanoparticles in SEM (Rühle et al. 2021): 26 rounded grains per 256² "
        "field, Poisson-disk agglomerates in 3D, lognormal sizes, on a textured support film.",
        # where each value comes from: docs/rendering.md, "The tio2-sem preset"
        meshes=MeshSetConfig("pebbles", 26),
        size=SizeDistribution("lognormal", {"median": 1.0, "sigma": 0.35}),
        placement=PlacementConfig(
            "poisson-3d", agglomerates=3, min_distance=0.85, dense_fraction=0.5
        ),
        scene=SceneConfig(
            field_width=8.0, spp=121, denoise=True, torus_tube_radius=0.3, torus_z=0.45
        ),
        learning=LearningConfig(
            stage_limits=(0.01, 0.8),
            noise_limits=(0.001, 0.1),
            film=True,
            film_limits=(0.0, 0.2),
            blur=True,
        ),
        contour_thickness=2,
    )


def _tio2_him() -> MaterialConfig:
    return MaterialConfig(
        name="tio2-him",
        description="TiO2 (E171) nanoparticles in HIM (Mill et al. 2021): 15 deformed, smoothed "
        "cubes, Poisson-disk agglomerates in 3D, lognormal sizes.",
        meshes=MeshSetConfig("cubes", 15),
        size=SizeDistribution("lognormal", {"median": 1.0, "sigma": 0.35}),
        placement=PlacementConfig("poisson-3d", agglomerates=2, min_distance=0.9),
        # the paper's HIM cases: spp 16 with a film filter of σ 3 px
        scene=SceneConfig(field_width=7.0, filter_stddev=3.0),
        learning=LearningConfig(stage_limits=(0.01, 0.3), noise_limits=(0.001, 0.2), blur=True),
        contour_thickness=4,
    )


def _sio2_him() -> MaterialConfig:
    return MaterialConfig(
        name="sio2-him",
        description="SiO2 nanoparticles of two diameters in HIM (Mill et al. 2021): 20 spheres, "
        "Poisson-disk agglomerates in 3D, bimodal sizes.",
        meshes=MeshSetConfig("spheres", 20),
        size=SizeDistribution(
            "bimodal", {"mean1": 0.7, "std1": 0.05, "mean2": 1.4, "std2": 0.08, "weight2": 0.5}
        ),
        placement=PlacementConfig("poisson-3d", agglomerates=3, min_distance=1.0),
        scene=SceneConfig(field_width=9.0, filter_stddev=3.0),
        learning=LearningConfig(stage_limits=(0.01, 0.3), noise_limits=(0.001, 0.2), blur=True),
        contour_thickness=4,
    )


def _agnw_sem() -> MaterialConfig:
    return MaterialConfig(
        name="agnw-sem",
        description="Silver nanowires in multi-beam SEM: 10 bent, rotated wires placed at random "
        "on the stage plane, lognormal sizes.",
        meshes=MeshSetConfig("wires", 10),
        size=SizeDistribution("lognormal", {"median": 1.0, "sigma": 0.2}),
        placement=PlacementConfig(
            "random-2d", agglomerates=1, min_distance=0.5, slab_height=0.0, margin=0.2
        ),
        scene=SceneConfig(field_width=1.2, spp=64),
        learning=LearningConfig(stage_limits=(0.01, 5.0), noise_limits=(0.001, 1.0), blur=True),
        contour_thickness=4,
    )


PRESETS = {
    "tio2-sem": _tio2_sem,
    "tio2-him": _tio2_him,
    "sio2-him": _sio2_him,
    "agnw-sem": _agnw_sem,
}


def preset(name: str) -> MaterialConfig:
    """A fresh copy of a named preset (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]().validate()


def load_config(name_or_path: str | Path) -> MaterialConfig:
    """A preset by name, or a configuration JSON file by path."""
    if str(name_or_path) in PRESETS:
        return preset(str(name_or_path))
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return MaterialConfig.load(path)
    raise ConfigError(
        f"{name_or_path!r} is neither a preset ({', '.join(PRESETS)}) nor a configuration JSON file"
    )
