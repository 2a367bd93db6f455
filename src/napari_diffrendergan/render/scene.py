"""The virtual microscope: a Mitsuba 3 scene with particles, rendering and label images.

A :class:`VirtualScene` is built once per configuration. Placing particles for another
constellation only rewrites vertex positions in place (no scene rebuild, no kernel
recompilation). Labels are the particle that a ray through each pixel's centre meets first.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from .. import backend
from ..config import ConfigError, MaterialConfig
from .meshes import ParticleMesh, select_meshes

ROLES = ("particle", "stage")
PARTICLE_BSDF = "particle_bsdf"
STAGE_BSDF = "stage_bsdf"
PRINCIPLED_DEFAULTS = {  # Mitsuba's principled BSDF defaults for parameters we expose
    "base_color": 0.5,
    "roughness": 0.5,
    "metallic": 0.0,
    "specular": 0.5,
    "spec_tint": 0.0,
    "anisotropic": 0.0,
    "sheen": 0.0,
    "sheen_tint": 0.0,
    "clearcoat": 0.0,
    "clearcoat_gloss": 0.0,
}


# peak memory of one render (trace, shading, labels) per traced sample, and per pixel with and
# without the denoiser's weights: peak RSS of `diffrendergan scene` above a 32² render, rounded up
BYTES_PER_SAMPLE = 128
BYTES_PER_PIXEL = {True: 1400, False: 64}


def render_memory(config: MaterialConfig, spp: int | None = None) -> int:
    """Bytes one render of ``config`` at quality ``spp`` (default the config's) needs."""
    from .denoise import applies, traced_spp

    s = config.scene
    spp = spp or s.spp
    denoise = applies(s, spp)
    per_pixel = traced_spp(spp, denoise) * BYTES_PER_SAMPLE + BYTES_PER_PIXEL[denoise]
    return s.width * s.height * per_pixel


def check_render(config: MaterialConfig, spp: int | None = None) -> MaterialConfig:
    """``config`` if it can be rendered at ``spp`` (default its own; a square number) here,
    before any work: Mitsuba's sample limit, and the memory available now."""
    import dataclasses

    import psutil

    scene = dataclasses.replace(config.scene, spp=config.scene.spp if spp is None else spp)
    problems = scene.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    need, available = render_memory(config, scene.spp), psutil.virtual_memory().available
    if need > available:
        raise ConfigError(
            f"a {scene.width}x{scene.height} render at spp {scene.spp} needs about "
            f"{_size(need)} of memory, {_size(available)} are available: choose a smaller "
            "image size or spp"
        )
    return config


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def torus_arrays(
    major: float, minor: float, rings: int = 96, sides: int = 16, tall: float | None = None
):
    """Vertices and faces of a torus around the z axis (outward normals); the tube's
    cross-section is an ellipse of half-axes ``minor`` (radial) and ``tall`` (vertical,
    default ``minor``)."""
    u = np.linspace(0, 2 * np.pi, rings, endpoint=False)
    v = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    radial = major + minor * np.cos(vv)
    height = (tall or minor) * np.sin(vv)
    vertices = np.stack([radial * np.cos(uu), radial * np.sin(uu), height], -1)
    i, j = np.meshgrid(np.arange(rings), np.arange(sides), indexing="ij")
    a = i * sides + j
    b = ((i + 1) % rings) * sides + j
    c = ((i + 1) % rings) * sides + (j + 1) % sides
    d = i * sides + (j + 1) % sides
    faces = np.concatenate(
        [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]
    )
    return vertices.reshape(-1, 3).astype(np.float32), faces.astype(np.uint32)


def _mi_mesh(
    mi,
    name: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray | None = None,
    **props,
):
    """An ``mi.Mesh`` filled from arrays; ``props`` (bsdf, emitter) are attached."""
    mesh = mi.Mesh(
        name,
        vertex_count=len(vertices),
        face_count=len(faces),
        has_vertex_normals=normals is not None,
        has_vertex_texcoords=False,
        props=_properties(mi, props),
    )
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(vertices.ravel().astype(np.float32))
    params["faces"] = mi.UInt32(faces.ravel().astype(np.uint32))
    if normals is not None:
        params["vertex_normals"] = mi.Float(normals.ravel().astype(np.float32))
    params.update()
    return mesh


def _properties(mi, props: dict):
    properties = mi.Properties()
    for key, value in props.items():
        properties[key] = value
    return properties


@contextmanager
def _one_thread():
    """Rebuild acceleration structures on one thread: a parallel build can order a BVH
    differently from run to run, which changes rendered pixels in the last bit (measured);
    one thread keeps every render bit-for-bit reproducible."""
    import drjit as dr

    threads = dr.thread_count()
    dr.set_thread_count(1)
    try:
        yield
    finally:
        dr.set_thread_count(threads)


class VirtualScene:
    """Mitsuba scene for one material configuration; re-place particles with :meth:`place`."""

    def __init__(
        self, config: MaterialConfig, device: str = "auto", meshes: list[ParticleMesh] | None = None
    ):
        self.config = config.validate()
        self.mi = backend.activate(device)
        self.backend = backend.active_backend()
        self.meshes = meshes or select_meshes(config.meshes.library, config.meshes.count)
        self.n = len(self.meshes)
        # the fixed values are built into the BSDFs (Mitsuba derives e.g. the specular lobe's
        # index of refraction at load time); learned ones start mid-range
        self.bsdf = {f"{role}.{k}": v for role in ROLES for k, v in PRINCIPLED_DEFAULTS.items()}
        self.bsdf.update(config.learning.fixed())
        learning = config.learning
        for name in learning.learned():
            self.bsdf[name] = sum(learning.limits_for(*name.split(".", 1))) / 2
        self.scene = self.mi.load_dict(self._scene_dict(), optimize=False)
        self.params = self.mi.traverse(self.scene)
        self._slot_of_id = self._slot_lookup()
        shapes = {shape.id(): shape for shape in self.scene.shapes()}
        self.stage_shape = shapes["stage"]
        self.bsdf_objects = {
            "particle": shapes["particle_000"].bsdf(),
            "stage": self.stage_shape.bsdf(),
        }
        self.phi: np.ndarray | None = None

    # --- scene description ----------------------------------------------------------------

    def _sensor(self) -> dict:
        s = self.config.scene
        fw = s.field_width
        distance = s.camera_height * fw
        fov = math.degrees(2 * math.atan((fw / 2) / distance))
        mi = self.mi
        return {
            "type": "perspective",
            "fov": fov,
            "fov_axis": "x",
            "near_clip": 0.01 * fw,
            "far_clip": 10 * distance,
            "to_world": mi.ScalarTransform4f().look_at(
                origin=[0, 0, distance], target=[0, 0, 0], up=[0, 1, 0]
            ),
            "film": {
                "type": "hdrfilm",
                "width": s.width,
                "height": s.height,
                "pixel_format": "luminance",
                "rfilter": {"type": "gaussian", "stddev": s.filter_stddev},
            },
            "sampler": {"type": s.sampler, "sample_count": s.spp},
        }

    def _scene_dict(self) -> dict:
        mi = self.mi
        s = self.config.scene
        fw = s.field_width
        particle_bsdf = mi.load_dict(
            {"type": "principled", "id": PARTICLE_BSDF, **self._bsdf_values("particle")}
        )
        half = s.stage_extent * fw / 2
        vertices, faces = torus_arrays(
            s.torus_radius * fw, s.torus_tube_radius * fw, tall=s.torus_tube_height * fw
        )
        vertices[:, 2] += s.torus_z * fw
        rect = s.rect_size * fw / 2
        scene: dict = {
            "type": "scene",
            "sensor": self._sensor(),
            "integrator": {"type": "direct"},  # Mitsuba's own renders (references)
            PARTICLE_BSDF: particle_bsdf,
            STAGE_BSDF: {"type": "principled", **self._bsdf_values("stage")},
            "stage": {
                "type": "rectangle",
                "to_world": mi.ScalarTransform4f().scale([half, half, 1]),
                "bsdf": {"type": "ref", "id": STAGE_BSDF},
            },
            "torus_light": _mi_mesh(
                mi,
                "torus_light",
                vertices,
                faces,
                emitter=mi.load_dict({"type": "area", "radiance": s.torus_radiance}),
            ),
            "top_light": {
                "type": "rectangle",
                "flip_normals": True,
                "to_world": mi.ScalarTransform4f().translate([0, 0, s.rect_height * fw])
                @ mi.ScalarTransform4f().scale([rect, rect, 1]),
                "emitter": {"type": "area", "radiance": s.rect_radiance},
            },
        }
        for i, mesh in enumerate(self.meshes):
            name = f"particle_{i:03d}"
            scene[name] = _mi_mesh(
                mi, name, mesh.vertices, mesh.faces, mesh.normals, bsdf=particle_bsdf
            )
        return scene

    def _bsdf_values(self, role: str) -> dict:
        return {name: self.bsdf[f"{role}.{name}"] for name in PRINCIPLED_DEFAULTS}

    def _slot_lookup(self) -> np.ndarray:
        """uint16 table from a shape's registry id (what ``ShapePtr`` holds) to its instance
        label: particle slot + 1, 0 for the stage and the emitters."""
        import drjit as dr

        ids = {}
        for shape in self.scene.shapes():
            raw = int(dr.reinterpret_array(self.mi.UInt32, self.mi.ShapePtr(shape))[0])
            name = shape.id()
            ids[raw] = int(name.split("_")[1]) + 1 if name.startswith("particle_") else 0
        table = np.zeros(max(ids) + 1, np.uint16)
        for raw, label in ids.items():
            table[raw] = label
        if np.count_nonzero(table) != self.n:
            found = np.count_nonzero(table)
            raise RuntimeError(f"scene holds {found} particles, expected {self.n}")
        return table

    # --- state ----------------------------------------------------------------------------

    def bsdf_key(self, name: str) -> str:
        """Key in :attr:`params` of a named BSDF parameter, e.g. ``particle.roughness``."""
        role, param = name.split(".", 1)
        bsdf = PARTICLE_BSDF if role == "particle" else STAGE_BSDF
        return f"{bsdf}.{param}" if param == "specular" else f"{bsdf}.{param}.value"

    def set_bsdf(self, values: dict[str, float]) -> None:
        """Set BSDF parameters by name, e.g. ``{"particle.roughness": 0.3, "stage.base_color":
        0.1}``."""
        for name, value in values.items():
            if name not in self.bsdf:
                raise KeyError(f"unknown BSDF parameter {name!r}; known: {', '.join(self.bsdf)}")
            if not np.isfinite(value):
                raise ValueError(f"BSDF parameter {name} must be finite, got {value!r}")
            self.params[self.bsdf_key(name)] = float(value)
            self.bsdf[name] = float(value)
        self.params.update()

    def place(self, phi: np.ndarray) -> None:
        """Move particles to constellation ``phi`` ((n, 4): x, y, z, scale).

        Only vertex buffers change; the scene is not rebuilt, one acceleration-structure
        update serves the image and the labels.
        """
        phi = np.asarray(phi, dtype=np.float32)
        if phi.shape != (self.n, 4) or not np.isfinite(phi).all():
            raise ValueError(
                f"constellation must be a finite ({self.n}, 4) array, got shape {phi.shape}"
            )
        if (phi[:, 3] <= 0).any():
            raise ValueError("particle scales must be positive")
        for i, (mesh, (x, y, z, scale)) in enumerate(zip(self.meshes, phi, strict=True)):
            placed = mesh.vertices * scale + np.array(
                [x, y, z - mesh.bottom * scale], dtype=np.float32
            )
            self.params[f"particle_{i:03d}.vertex_positions"] = self.mi.Float(placed.ravel())
        with _one_thread():
            self.params.update()
        self.phi = phi

    # --- rendering ------------------------------------------------------------------------

    def render_tensor(self, seed: int = 0, spp: int | None = None):
        """Render the current state; returns Mitsuba's (H, W) tensor (differentiable w.r.t.
        parameters with gradients enabled in :attr:`params`)."""
        if self.phi is None:
            raise RuntimeError("place() particles before rendering")
        image = self.mi.render(self.scene, self.params, seed=seed, spp=spp or self.config.scene.spp)
        return image[:, :, 0]

    def render(self, seed: int = 0, spp: int | None = None) -> np.ndarray:
        """Render the current state to a float32 (H, W) array (no noise)."""
        return np.asarray(self.render_tensor(seed, spp), dtype=np.float32)

    def instances(self) -> np.ndarray:
        """Instance labels of the current constellation: uint16, 0 = background, slot + 1.

        The particle that a ray through each pixel's centre meets first, in the render scene
        itself (the stage lies below every particle and the emitters out of view, so they hide
        none): no second scene to keep placed, no second acceleration structure to build.
        """
        import drjit as dr

        if self.phi is None:
            raise RuntimeError("place() particles before rendering labels")
        mi = self.mi
        s = self.config.scene
        with dr.suspend_grad():
            lane = dr.arange(mi.UInt32, s.width * s.height)
            centre = mi.Vector2f(mi.Float(lane % s.width), mi.Float(lane // s.width)) + 0.5
            ray, _ = self.scene.sensors()[0].sample_ray(
                0.0, 0.0, centre / mi.ScalarVector2f(s.width, s.height), 0.5
            )
            si = self.scene.ray_intersect(ray)
            raw = dr.select(si.is_valid(), dr.reinterpret_array(mi.UInt32, si.shape), 0)
            backend.evaluate(raw)
        return self._slot_of_id[np.asarray(raw, np.int64).reshape(s.height, s.width)]
