"""napari reader for what the plugin writes: its TIFFs (masks and instances as Labels, thickness
maps as Images, each at its pixel size), patch sets (the patch stack) and GAN runs (the
preview of every epoch).

napari offers a reader for every file whose name matches its ``filename_patterns`` and, when
several match, asks the user to choose. So the manifest names only what the plugin writes
(:data:`FILE_PATTERNS`: ``*_mask.tif``, ``*_instances.tif``, ``*_thickness.tif``, a rendered
scene's ``mask.tif`` / ``instances.tif``, and the ``patches.json`` / ``training.json`` that
mark a patch set or run folder); it accepts no folders (napari would then ask about every
folder). Any other TIFF, a raw scan included, goes straight to napari's own reader.
:func:`get_reader` also checks the content: a TIFF that tifffile opens, a folder the plugin
wrote. Returns napari ``LayerData`` tuples without importing napari.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from .io import read_image, read_sidecar

# the manifest's filename_patterns (napari matches them against the file name, lower-cased)
TIFF_PATTERNS = ("*_mask.tif", "*_instances.tif", "*_thickness.tif", "mask.tif", "instances.tif")
FOLDER_MARKERS = ("patches.json", "training.json")
FILE_PATTERNS = TIFF_PATTERNS + FOLDER_MARKERS
LABEL_SUFFIXES = ("_mask", "_instances", "instances", "mask")


def get_reader(path):
    """A reader for ``path`` if the plugin wrote it, else None (napari then tries others): a
    TIFF named as the plugin names its outputs, or a patch set or run folder (or the
    ``patches.json`` / ``training.json`` in it)."""
    if isinstance(path, list):
        readers = [get_reader(p) for p in path]
        if not readers or any(r is None for r in readers):
            return None
        return lambda _: [layer for r, p in zip(readers, path, strict=True) for layer in r(p)]
    path = _folder_of(path)
    if path.is_dir():
        return _folder_reader(path)
    if any(fnmatch(path.name.lower(), p) for p in TIFF_PATTERNS) and _is_tiff(path):
        return read_tiff
    return None


def _folder_of(path) -> Path:
    """``path``, or the folder it marks when it is a ``patches.json`` / ``training.json``."""
    path = Path(path)
    return path.parent if path.name.lower() in FOLDER_MARKERS else path


def _folder_reader(folder: Path):
    """The reader of a patch set (an index listing patches) or a run (its training.json and
    config.json), else None."""
    from .data.patches import PatchSet
    from .gan.run import GanRun

    index = read_sidecar(folder / PatchSet.INDEX)  # {} when missing or not JSON
    if isinstance(index.get("patches"), list):
        return read_patch_set
    if GanRun(folder).exists and (folder / GanRun.CONFIG).is_file():
        return read_run
    return None


def _is_tiff(path: Path) -> bool:
    """Whether tifffile can open ``path`` (its header only)."""
    import tifffile

    try:
        with tifffile.TiffFile(path):
            return True
    except Exception:  # tifffile raises many types for other files
        return False


def _calibration(pixel_size_nm, stack: bool = False) -> dict:
    if not pixel_size_nm:
        return {}
    scale = (float(pixel_size_nm),) * 2
    units = ("nm", "nm")
    if stack:
        scale, units = (1.0, *scale), ("pixel", *units)
    return {"scale": scale, "units": units}


def read_tiff(path) -> list[tuple]:
    """One of the plugin's TIFFs: masks and instance labels (integers) as Labels, the rest as
    Images, at the pixel size of the sidecar (or of the file's metadata) with the sidecar as
    metadata."""
    path = Path(path)
    data, pixel_size = read_image(path)
    meta = read_sidecar(path)
    kwargs = {"name": path.stem, "metadata": meta, **_calibration(pixel_size)}
    labels = path.stem.endswith(LABEL_SUFFIXES) or "classes" in meta
    if labels and np.asarray(data).dtype.kind in "biu":
        return [(np.asarray(data).astype(np.int32, copy=False), kwargs, "labels")]
    if meta.get("unit") is not None and "summary" in meta:  # a local-thickness map
        unit = meta["unit"]
        kwargs.update(name=f"{path.stem} ({unit})", colormap="inferno", blending="additive")
    return [(np.asarray(data, np.float32), kwargs, "image")]


def read_patch_set(path) -> list[tuple]:
    """A patch-set folder as its stack of patches (roles in the metadata), ready for the GAN
    training widget."""
    from .data.patches import PatchSet

    path = _folder_of(path)
    patch_set = PatchSet.open(path)
    metadata = {
        "pixel_size_nm": patch_set.pixel_size_nm,
        "roles": [p.role for p in patch_set.patches],
        "patch_set": str(Path(path).resolve()),
    }
    stack = patch_set.read_stack(patch_set.patches)
    name = Path(path).name if "patch" in Path(path).name.lower() else f"{Path(path).name} patches"
    kwargs = {"name": name, "metadata": metadata, "colormap": "gray"}
    return [(stack, {**kwargs, **_calibration(patch_set.pixel_size_nm, stack=True)}, "image")]


def read_run(path) -> list[tuple]:
    """A GAN run folder as the stack of its per-epoch previews (synthetic above real)."""
    import imageio.v3 as iio

    from .gan.run import GanRun

    run = GanRun(_folder_of(path))
    epochs = [e for e in run.finished_epochs() if run.preview_figure(e).is_file()]
    metadata = {"run": str(run.folder.resolve()), "epochs": epochs}
    if not epochs:
        return []
    stack = np.stack([iio.imread(run.preview_figure(e))[..., :3] for e in epochs])
    return [
        (stack, {"name": f"{run.folder.name} previews", "metadata": metadata, "rgb": True}, "image")
    ]
