"""Particle mesh libraries: the built-in ones under ``meshes/`` and users' own folders.

Every mesh is centred at the origin and scaled so that its largest extent is 1.0 mesh unit;
size distributions in the configuration multiply that unit. The built-in libraries are made
by :func:`generate_library` (``python -m napari_diffrendergan.render.meshes OUT``),
deterministically from a seed.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..errors import InputError

MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off")
LIBRARIES = ("spheres", "cubes", "wires", "pebbles")
LIBRARY_SEED = 20250213


class MeshError(InputError):
    """A mesh file or folder cannot be used; the message names the file."""


@dataclass(frozen=True)
class ParticleMesh:
    """A triangle mesh normalised to unit extent, centred at the origin."""

    name: str
    vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) uint32
    normals: np.ndarray  # (V, 3) float32, per-vertex

    @property
    def bottom(self) -> float:
        """Lowest z; a mesh resting on the stage is lifted by ``-bottom * scale``."""
        return float(self.vertices[:, 2].min())


def builtin_mesh_root() -> Path:
    """Folder holding the built-in libraries (inside the installed package)."""
    root = Path(str(files("napari_diffrendergan") / "meshes"))
    if not root.is_dir():
        raise MeshError(
            f"The built-in mesh library is missing from the installation ({root}); "
            "reinstall napari-diffrendergan."
        )
    return root


def library_folder(library: str | Path) -> Path:
    """A built-in library name (cubes, spheres, wires) or a user folder, as a path."""
    candidate = builtin_mesh_root() / str(library)
    if str(library) in LIBRARIES and candidate.is_dir():
        return candidate
    return Path(library).expanduser()


def load_mesh(path: str | Path) -> ParticleMesh:
    """Load one PLY/OBJ/STL/OFF file, check it and normalise it to unit extent at the origin."""
    import trimesh

    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise MeshError(f"{path}: not a mesh file (expected {', '.join(MESH_SUFFIXES)})")
    try:
        mesh = trimesh.load(path, force="mesh", process=True)
    except Exception as err:  # trimesh raises many types for corrupt files
        raise MeshError(f"{path}: cannot be read as a mesh ({err})") from err
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise MeshError(f"{path}: contains no triangles")
    if not np.isfinite(mesh.vertices).all():
        raise MeshError(f"{path}: has non-finite vertex coordinates")
    if not mesh.is_watertight:
        raise MeshError(
            f"{path}: is not a closed manifold surface (holes or non-manifold "
            "edges); repair it, e.g. with Blender's 3D-Print toolbox"
        )
    extent = float(mesh.extents.max())
    if extent <= 0:
        raise MeshError(f"{path}: is degenerate (zero extent)")
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.apply_scale(1.0 / extent)
    if mesh.volume < 0:
        mesh.invert()
    return ParticleMesh(
        name=path.stem,
        vertices=np.asarray(mesh.vertices, dtype=np.float32),
        faces=np.asarray(mesh.faces, dtype=np.uint32),
        normals=np.asarray(mesh.vertex_normals, dtype=np.float32),
    )


def load_library(library: str | Path) -> list[ParticleMesh]:
    """All meshes of a built-in library or folder, sorted by file name."""
    folder = library_folder(library)
    if not folder.is_dir():
        raise MeshError(f"Mesh folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
    if not paths:
        others = sorted(p.name for p in folder.iterdir())[:5]
        hint = f" (found only: {', '.join(others)})" if others else " (it is empty)"
        raise MeshError(f"Mesh folder {folder} holds no {'/'.join(MESH_SUFFIXES)} files{hint}")
    return [load_mesh(p) for p in paths]


def select_meshes(library: str | Path, count: int) -> list[ParticleMesh]:
    """``count`` meshes for a scene, cycling through the library in file order."""
    meshes = load_library(library)
    return [meshes[i % len(meshes)] for i in range(count)]


WIDTH_LIBRARIES = ("wires",)  # libraries whose particles are sized by their width
SILHOUETTE_PX = 128  # px per mesh unit of the silhouettes that :func:`projected_diameter` draws
WIDTH_PX = 1024  # the same for widths (a wire is a few hundredths of a unit wide)


def width(mask: np.ndarray) -> float:
    """Typical width (px) of a shape: twice the mean distance to the outside along the middle
    half (by that distance) of its skeleton, less half a pixel (a ridge pixel lies half a pixel
    off the middle of an even width, on it for an odd one)."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    padded = np.pad(mask, 1)
    ridge = skeletonize(padded)
    if not ridge.any():
        return 0.0
    distance = np.sort(ndimage.distance_transform_edt(padded)[ridge])
    quarter = len(distance) // 4
    return float(2 * distance[quarter : len(distance) - quarter].mean() - 0.5)


@functools.lru_cache(maxsize=16)
def projected_diameter(library: str) -> float:
    """Mean diameter, in mesh units, of the library's meshes at scale 1.0 seen from above (as
    placed: no rotation): the equivalent circular diameter of the silhouette, or for
    :data:`WIDTH_LIBRARIES` its width (what ``analysis.calibration`` measures on scans)."""

    scale = WIDTH_PX if library in WIDTH_LIBRARIES else SILHOUETTE_PX
    size = scale + 8
    diameters = []
    for mesh in load_library(library):
        points = mesh.vertices[:, [1, 0]].astype(np.float64) * [-scale, scale]
        mask = rasterise(points[mesh.faces.astype(np.int64)] + size / 2, (size, size))
        if library in WIDTH_LIBRARIES:
            diameters.append(width(mask) / scale)
        else:
            diameters.append(2 * np.sqrt(mask.sum() / np.pi) / scale)
    return float(np.mean(diameters))


def rasterise(triangles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside any of the (F, 3, 2) triangles (row, column)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    doubled = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = np.abs(doubled) > 1e-12
    triangles, doubled = triangles[keep], doubled[keep]
    low = np.clip(np.ceil(triangles.min(1) - 0.5), 0, np.array(shape) - 1).astype(np.int64)
    high = np.clip(np.floor(triangles.max(1) - 0.5), -1, np.array(shape) - 1).astype(np.int64)
    spans = np.maximum(high - low + 1, 0)
    sizes = spans[:, 0] * spans[:, 1]
    owner = np.repeat(np.arange(len(triangles)), sizes)
    offset = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    rows = low[owner, 0] + offset // np.maximum(spans[owner, 1], 1)
    cols = low[owner, 1] + offset % np.maximum(spans[owner, 1], 1)
    centre = np.column_stack([rows, cols]) + 0.5
    inside = np.ones(len(owner), bool)
    tri = triangles[owner]
    sign = np.sign(doubled[owner])
    for i, j in ((0, 1), (1, 2), (2, 0)):
        p, q = tri[:, i], tri[:, j]
        cross = (q[:, 0] - p[:, 0]) * (centre[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (
            centre[:, 0] - p[:, 0]
        )
        inside &= cross * sign >= 0
    mask = np.zeros(shape, bool)
    mask[rows[inside], cols[inside]] = True
    return mask


# --- generation of the built-in libraries -------------------------------------------------


def _normalised(mesh):
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.apply_scale(1.0 / float(mesh.extents.max()))
    return mesh


def make_sphere():
    """An icosphere of 1280 triangles (round silhouettes at 256 px)."""
    import trimesh

    return _normalised(trimesh.creation.icosphere(subdivisions=3))


def make_deformed_cube(
    rng: np.random.Generator, subdivisions: int = 3, exponents: tuple[float, float] = (4.0, 7.0)
):
    """A rounded cube (superellipsoid with an exponent drawn from ``exponents``: 2 is an
    ellipsoid, larger is boxier), randomly stretched, sheared, dented and smoothed."""
    import trimesh

    mesh = trimesh.creation.box(extents=(2, 2, 2))
    for _ in range(subdivisions):
        mesh = mesh.subdivide()
    v = mesh.vertices
    exponent = rng.uniform(*exponents)
    norm = (np.abs(v) ** exponent).sum(axis=1, keepdims=True) ** (1.0 / exponent)
    v = v / norm
    stretch = np.diag(rng.uniform(0.7, 1.15, size=3))
    shear = np.eye(3) + rng.uniform(-0.15, 0.15, size=(3, 3)) * (1 - np.eye(3))
    v = v @ (stretch @ shear).T
    direction = v / np.linalg.norm(v, axis=1, keepdims=True)
    bumps = np.zeros(len(v))
    for _ in range(4):  # low-frequency dents and bulges
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        bumps += rng.uniform(0.02, 0.06) * np.cos(
            rng.uniform(1.5, 3.0) * direction @ axis + rng.uniform(0, 2 * np.pi)
        )
    v = v + direction * bumps[:, None]
    mesh = trimesh.Trimesh(v, mesh.faces, process=True)
    trimesh.smoothing.filter_taubin(mesh, iterations=5)
    rotation = trimesh.transformations.random_rotation_matrix(rng.random(3))
    mesh.apply_transform(rotation)
    return _normalised(mesh)


def make_bent_wire(rng: np.random.Generator, segments: int = 48, sides: int = 12):
    """A slender cone (tapered wire) bent along a circular arc, lying flat, rotated about z."""
    import trimesh

    length = 1.0
    bend = rng.uniform(0.1, 0.9)  # total bend angle in radians
    r0, r1 = rng.uniform(0.018, 0.028), rng.uniform(0.012, 0.02)
    t = np.linspace(0.0, 1.0, segments + 1)
    if bend > 1e-3:
        radius = length / bend
        angle = (t - 0.5) * bend
        centre = np.stack([radius * np.sin(angle), radius * (1 - np.cos(angle)), 0 * t], axis=1)
        tangent = np.stack([np.cos(angle), np.sin(angle), 0 * t], axis=1)
    else:
        centre = np.stack([(t - 0.5) * length, 0 * t, 0 * t], axis=1)
        tangent = np.tile([1.0, 0.0, 0.0], (len(t), 1))
    up = np.array([0.0, 0.0, 1.0])
    side = np.cross(up, tangent)
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    phi = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    radii = r0 + (r1 - r0) * t
    ring = (
        np.cos(phi)[None, :, None] * side[:, None, :]
        + np.sin(phi)[None, :, None] * up[None, None, :]
    ) * radii[:, None, None]
    vertices = (centre[:, None, :] + ring).reshape(-1, 3)
    faces = []
    for i in range(segments):
        for j in range(sides):
            a, b = i * sides + j, i * sides + (j + 1) % sides
            c, d = a + sides, b + sides
            faces += [[a, c, b], [b, c, d]]
    start_cap, end_cap = len(vertices), len(vertices) + 1
    vertices = np.vstack([vertices, centre[0], centre[-1]])
    last = segments * sides
    for j in range(sides):
        faces.append([start_cap, j, (j + 1) % sides])
        faces.append([end_cap, last + (j + 1) % sides, last + j])
    mesh = trimesh.Trimesh(vertices, np.array(faces), process=True)
    mesh.fix_normals()
    mesh.apply_transform(
        trimesh.transformations.rotation_matrix(rng.uniform(0, 2 * np.pi), [0, 0, 1])
    )
    return _normalised(mesh)


def make_pebble(rng: np.random.Generator):
    """A rounded TiO2-like grain: a smooth superellipsoid between an ellipsoid and a rounded
    cube, stretched, dented and smoothed (finer than the cubes: round silhouettes)."""
    return make_deformed_cube(rng, subdivisions=4, exponents=(2.6, 3.6))


def generate_library(
    out: str | Path, seed: int = LIBRARY_SEED, n_cubes: int = 12, n_wires: int = 12
) -> dict[str, list[Path]]:
    """Write the built-in libraries (spheres, cubes, wires, pebbles) as binary PLY files under
    ``out``; the seed makes them the same every time."""
    from ..io import write_bytes_atomic

    out = Path(out)
    rng = np.random.default_rng(seed)
    made: dict[str, list[Path]] = {name: [] for name in LIBRARIES}
    builders = [
        ("spheres", "sphere", 1, make_sphere),
        ("cubes", "cube", n_cubes, lambda: make_deformed_cube(rng)),
        ("wires", "wire", n_wires, lambda: make_bent_wire(rng)),
        ("pebbles", "pebble", n_cubes, lambda: make_pebble(rng)),
    ]
    for folder, stem, count, build in builders:
        for i in range(count):
            path = out / folder / f"{stem}_{i:02d}.ply"
            write_bytes_atomic(path, build().export(file_type="ply", encoding="binary"))
            made[folder].append(path)
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the built-in mesh libraries.")
    parser.add_argument("out", type=Path, help="target folder, e.g. meshes/")
    parser.add_argument("--seed", type=int, default=LIBRARY_SEED)
    args = parser.parse_args(argv)
    for folder, paths in generate_library(args.out, args.seed).items():
        faces = [len(load_mesh(p).faces) for p in paths]
        print(f"{folder}: {len(paths)} meshes, {min(faces)}-{max(faces)} triangles")


if __name__ == "__main__":
    main()
