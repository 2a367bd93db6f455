"""napari reader for what the plugin writes: its TIFFs (masks and instances as Labels, thickness
maps and renders as Images, each at its pixel size from the JSON sidecar), patch-set folders
(the patch stack) and GAN run folders (the preview of every epoch).

:func:`get_reader` claims only files and folders the plugin made (a sidecar it wrote, a
``patches.json``, a ``training.json``), so other TIFFs go to napari's default reader. Returns
napari ``LayerData`` tuples without importing napari.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import read_image, read_sidecar

LABEL_SUFFIXES = ("_mask", "_instances", "instances", "mask")
SIDECAR_KEYS = {"pixel_size_nm", "shape", "dtype"}  # what io.write_tiff always records


def get_reader(path):
    """A reader for ``path`` if the plugin wrote it, else None (napari then tries others)."""
    if isinstance(path, list):
        readers = [get_reader(p) for p in path]
        if not readers or any(r is None for r in readers):
            return None
        return lambda _: [layer for r, p in zip(readers, path, strict=True) for layer in r(p)]
    path = Path(path)
    if path.is_dir():
        from ..data.patches import PatchSet
        from ..gan.run import GanRun

        if PatchSet.is_patch_set(path):
            return read_patch_set
        if GanRun(path).exists:
            return read_run
        return None
    if path.suffix.lower() in (".tif", ".tiff") and set(read_sidecar(path)) >= SIDECAR_KEYS:
        return read_tiff
    return None


def _calibration(pixel_size_nm, stack: bool = False) -> dict:
    if not pixel_size_nm:
        return {}
    scale = (float(pixel_size_nm),) * 2
    units = ("nm", "nm")
    if stack:
        scale, units = (1.0, *scale), ("pixel", *units)
    return {"scale": scale, "units": units}


def read_tiff(path) -> list[tuple]:
    """One of the plugin's TIFFs: masks and instance labels as Labels, the rest as Images, at
    the sidecar's pixel size (nm) with the sidecar as metadata."""
    path = Path(path)
    data, pixel_size = read_image(path)
    meta = read_sidecar(path)
    kwargs = {"name": path.stem, "metadata": meta, **_calibration(pixel_size)}
    if path.stem.endswith(LABEL_SUFFIXES) or "classes" in meta:
        return [(np.asarray(data).astype(np.int32, copy=False), kwargs, "labels")]
    if meta.get("unit") is not None and "summary" in meta:  # a local-thickness map
        unit = meta["unit"]
        kwargs.update(name=f"{path.stem} ({unit})", colormap="inferno", blending="additive")
    return [(np.asarray(data, np.float32), kwargs, "image")]


def read_patch_set(path) -> list[tuple]:
    """A patch-set folder as its stack of patches (roles in the metadata), ready for the GAN
    training widget."""
    from ..data.patches import PatchSet

    patch_set = PatchSet.open(path)
    metadata = {
        "pixel_size_nm": patch_set.pixel_size_nm,
        "roles": [p.role for p in patch_set.patches],
        "patch_set": str(Path(path).resolve()),
    }
    stack = patch_set.read_stack(patch_set.patches)
    kwargs = {"name": f"{Path(path).name} patches", "metadata": metadata, "colormap": "gray"}
    return [(stack, {**kwargs, **_calibration(patch_set.pixel_size_nm, stack=True)}, "image")]


def read_run(path) -> list[tuple]:
    """A GAN run folder as the stack of its per-epoch previews (synthetic above real)."""
    import imageio.v3 as iio

    from ..gan.run import GanRun

    run = GanRun(path)
    epochs = [e for e in run.finished_epochs() if run.preview_figure(e).is_file()]
    metadata = {"run": str(run.folder.resolve()), "epochs": epochs}
    if not epochs:
        return []
    stack = np.stack([iio.imread(run.preview_figure(e))[..., :3] for e in epochs])
    return [
        (stack, {"name": f"{run.folder.name} previews", "metadata": metadata, "rgb": True}, "image")
    ]
