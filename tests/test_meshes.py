import numpy as np
import pytest
import trimesh

from napari_diffrendergan.render.meshes import (
    MeshError,
    builtin_mesh_root,
    generate_library,
    load_library,
    load_mesh,
    select_meshes,
)


@pytest.mark.parametrize(("library", "minimum"), [("spheres", 1), ("cubes", 10), ("wires", 10)])
def test_builtin_libraries_are_normalised(library, minimum):
    meshes = load_library(library)
    assert len(meshes) >= minimum
    for mesh in meshes:
        extent = mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0)
        assert extent.max() == pytest.approx(1.0, abs=1e-5)
        centre = (mesh.vertices.max(axis=0) + mesh.vertices.min(axis=0)) / 2
        np.testing.assert_allclose(centre, 0, atol=1e-5)
        assert 500 <= len(mesh.faces) <= 2000  # low-poly but round at 256 px
    if library != "spheres":  # distinct shapes
        shapes = {np.round(m.vertices[:5], 3).tobytes() for m in meshes}
        assert len(shapes) == len(meshes)


def test_generation_is_deterministic(tmp_path):
    a = generate_library(tmp_path / "a", n_cubes=2, n_wires=2)
    b = generate_library(tmp_path / "b", n_cubes=2, n_wires=2)
    for folder in a:
        for pa, pb in zip(a[folder], b[folder], strict=True):
            assert pa.read_bytes() == pb.read_bytes()


def test_shipped_library_matches_generator(tmp_path):
    made = generate_library(tmp_path)
    for folder, paths in made.items():
        for path in paths:
            assert (builtin_mesh_root() / folder / path.name).read_bytes() == path.read_bytes()


def test_select_cycles_through_library():
    meshes = select_meshes("cubes", 40)
    assert len(meshes) == 40
    assert meshes[0].name == meshes[len(load_library("cubes"))].name


def test_user_folder_with_obj(tmp_path):
    trimesh.creation.box(extents=(2, 1, 1)).export(tmp_path / "brick.obj")
    (mesh,) = load_library(tmp_path)
    assert mesh.name == "brick"
    assert np.ptp(mesh.vertices[:, 0]) == pytest.approx(1.0)


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(MeshError, match="is empty"):
        load_library(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MeshError, match=r"no .*ply.* files .*notes.txt"):
        load_library(tmp_path)
    with pytest.raises(MeshError, match="notes.txt: not a mesh file"):
        load_mesh(tmp_path / "notes.txt")
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\nend_header\n")
    with pytest.raises(MeshError, match="broken.ply"):
        load_mesh(broken)
    open_box = trimesh.creation.box()
    open_box.update_faces(np.arange(len(open_box.faces)) > 1)
    open_box.export(tmp_path / "open.ply")
    with pytest.raises(MeshError, match="open.ply: is not a closed manifold"):
        load_mesh(tmp_path / "open.ply")
    with pytest.raises(MeshError, match="does not exist"):
        load_library(tmp_path / "missing")
