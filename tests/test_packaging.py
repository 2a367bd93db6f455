"""The installed package: manifest and meshes inside it, core free of napari/Qt."""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "napari_diffrendergan"
# every module of the package outside widgets/ (the only GUI code)
CORE = sorted(
    ".".join(
        ("napari_diffrendergan", *path.relative_to(PACKAGE).with_suffix("").parts)
    ).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
    if "widgets" not in path.relative_to(PACKAGE).parts
)

BLOCK_GUI = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6',
                                  'magicgui', 'vispy'}:
            raise ImportError(f'core imported {name}')
sys.meta_path.insert(0, Block())
"""


def test_core_never_imports_napari_or_qt():
    named = {"cli", "render.scene", "gan.training", "segment.nnunet_child", "sample_data"}
    assert {f"napari_diffrendergan.{m}" for m in named} <= set(CORE)
    code = BLOCK_GUI + "".join(f"import {m}\n" for m in CORE)
    code += "from napari_diffrendergan.cli import build_parser; build_parser()\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_editable_install_uses_the_top_level_sources():
    import napari_diffrendergan
    from napari_diffrendergan.render.meshes import builtin_mesh_root

    package = Path(napari_diffrendergan.__file__).parent
    assert (package / "napari.yaml").resolve() == (ROOT / "napari.yaml").resolve()
    assert builtin_mesh_root().resolve() == (ROOT / "meshes").resolve()


@pytest.mark.slow
def test_wheel_holds_manifest_and_meshes_and_validates(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "-o",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("napari_diffrendergan-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_diffrendergan/napari.yaml" in names
    for library in ("cubes", "spheres", "wires"):
        assert any(n.startswith(f"napari_diffrendergan/meshes/{library}/") for n in names)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    check = (
        "import napari_diffrendergan, sys\n"
        "from napari_diffrendergan.render.meshes import builtin_mesh_root, load_library\n"
        f"assert napari_diffrendergan.__file__.startswith({str(target)!r})\n"
        f"assert str(builtin_mesh_root()).startswith({str(target)!r})\n"
        "print(len(load_library('cubes')))\n"
    )
    result = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 10
    npe2 = Path(sys.executable).parent / "npe2"
    validate = subprocess.run(
        [str(npe2), "validate", "napari-diffrendergan"], env=env, capture_output=True, text=True
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "valid" in validate.stdout


def test_core_dependencies_hold_no_gui_and_the_extras_bring_it():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gui = {"napari", "npe2", "magicgui", "qtpy", "pyqt5", "pyside6"}

    def names(requirements):
        return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in requirements}

    assert not names(project["dependencies"]) & gui
    extras = project["optional-dependencies"]
    assert {"napari", "magicgui", "qtpy", "npe2"} <= names(extras["napari"])
    for extra in ("qt", "all"):
        assert "napari-diffrendergan[napari]" in extras[extra]


def test_subpackages_import_each_other_in_the_pipelines_order_only():
    """No cycle between subpackages: an input (data) never imports what is made from it."""
    from graphlib import CycleError, TopologicalSorter

    package = Path(__file__).resolve().parents[1] / "src" / "napari_diffrendergan"
    subpackages = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    graph: dict[str, set[str]] = {name: set() for name in subpackages}
    for module in package.rglob("*.py"):
        owner = module.relative_to(package).parts[0]
        if owner not in subpackages:
            continue
        for imported in re.findall(r"from \.\.(\w+)", module.read_text()):
            if imported in subpackages and imported != owner:
                graph[owner].add(imported)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"subpackages import each other in a cycle: {err.args[1]}") from err
    assert "gan" not in graph["data"] and "analysis" not in graph["render"]
