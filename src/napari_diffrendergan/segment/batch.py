"""Segmenting image files: one file (mask, instances and particle CSV, complete or absent), or
many in parallel on Dask."""

from __future__ import annotations

import os
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np

from ..analysis.particles import (
    CORE_THRESHOLD,
    MIN_AREA,
    MIN_SEED_AREA,
    SPLIT_DISTANCE,
    WATERSHED,
)
from ..io import IMAGE_SUFFIXES, positive_pixel_size
from ..progress import Monitor, ensure
from .model import ModelFolder, SegmentationError
from .predict import Segmenter, segment_image

OUTPUT_SUFFIXES = ("_mask", "_instances")
_LOADED: dict[tuple, Segmenter] = {}


def image_files(inputs) -> list[Path]:
    """Images named directly or found (non-recursively) in the folders given; the plugin's own
    outputs (``*_mask``, ``*_instances``) are left out of folders."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(
                p
                for p in item.iterdir()
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not p.stem.endswith(OUTPUT_SUFFIXES)
            )
        elif item.is_file():
            found.append(item)
        else:
            raise SegmentationError(f"{item}: no such image or folder")
    if not found:
        raise SegmentationError(
            "no images to segment (supported: " + ", ".join(IMAGE_SUFFIXES) + ")"
        )
    return found


def output_names(paths: list[Path]) -> list[str]:
    """The name of each image's outputs: its stem, or stem + suffix where two images share a
    stem (``x.tif`` and ``x.png`` → ``x_tif``, ``x_png``), so no output overwrites another."""
    counts = Counter(p.stem for p in paths)
    names = [p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in paths]
    if len(set(names)) != len(names):
        repeated = sorted(n for n, c in Counter(names).items() if c > 1)
        raise SegmentationError(f"images named twice: {', '.join(repeated)}; list each once")
    return names


def segment_file(
    path,
    model,
    out,
    name: str | None = None,
    watershed: bool = WATERSHED,
    split_distance: int = SPLIT_DISTANCE,
    min_area: int = MIN_AREA,
    core_threshold: float | None = CORE_THRESHOLD,
    min_seed_area: int = MIN_SEED_AREA,
    pixel_size_nm=None,
    exclude_bottom: int = 0,
    device="auto",
    window="whole",
    mirroring="none",
    step=0.5,
) -> dict:
    """Segment one file and write ``<name>_mask.tif``, ``<name>_instances.tif`` (with JSON
    sidecars) and ``<name>_particles.csv`` (all or none); returns a short summary."""
    from ..analysis.particles import table_rows
    from ..io import file_group, read_image, write_csv, write_tiff

    key = (str(model), device, window, mirroring, step)
    if key not in _LOADED:  # one model per worker process
        _LOADED[key] = Segmenter(
            model, device=device, window=window, mirroring=mirroring, step=step
        )
    path, out = Path(path), Path(out)
    name = name or path.stem
    image, sidecar_nm = read_image(path)
    pixel = positive_pixel_size(pixel_size_nm) or sidecar_nm
    height, width = np.asarray(image).shape[:2]
    if not 0 <= exclude_bottom < height - 8:
        raise SegmentationError(
            f"{path.name}: cannot leave out {exclude_bottom} rows of a {height}-row image"
        )
    result = segment_image(
        _LOADED[key],
        image,
        region=(0, height - exclude_bottom, 0, width),
        watershed=watershed,
        pixel_size_nm=pixel,
        split_distance=split_distance,
        min_area=min_area,
        core_threshold=core_threshold,
        min_seed_area=min_seed_area,
    )
    meta = {
        "source": path.name,
        "model": Path(model).name,
        "watershed": watershed,
        "split_distance": split_distance,
        "min_area": min_area,
        "core_threshold": core_threshold,
        "min_seed_area": min_seed_area,
        "excluded_bottom_rows": exclude_bottom,
        "notes": result.notes,
    }
    paths = [out / f"{name}_mask.tif", out / f"{name}_instances.tif", out / f"{name}_particles.csv"]
    with file_group(out, name) as written:
        written.extend(paths)
        write_tiff(
            paths[0],
            result.mask,
            pixel_size_nm=pixel,
            classes={"0": "background", "1": "particle", "2": "contour"},
            **meta,
        )
        write_tiff(paths[1], result.instances, pixel_size_nm=pixel, **meta)
        write_csv(paths[2], table_rows(result.table))
    diameters = next(v for k, v in result.table.items() if k.startswith("equivalent_diameter"))
    return {
        "name": name,
        "particles": int(result.instances.max()),
        "median_diameter": float(np.median(diameters)) if len(diameters) else float("nan"),
        "unit": "nm" if pixel else "px",
        "notes": result.notes,
    }


def segment_files(
    paths,
    model,
    out,
    workers: int | None = None,
    scheduler: str | None = None,
    monitor: Monitor | None = None,
    **options,
) -> list[dict]:
    """Segment many files in parallel on Dask: a local cluster of ``workers`` processes, or
    the existing scheduler at ``scheduler``. A single file runs in this process. Paths are made
    absolute first, so workers elsewhere write where the caller expects. The output folder is
    locked meanwhile (:class:`~napari_diffrendergan.io.FolderLock`)."""
    from ..io import FolderLock
    from ..parallel import check_workers

    check_workers(workers)
    ModelFolder(model).metadata()
    paths = [Path(p).resolve() for p in paths]
    names = output_names(paths)
    model, out = str(Path(model).resolve()), Path(out).resolve()
    with FolderLock(out, "segmentation"):
        return _segment(paths, names, model, out, workers, scheduler, ensure(monitor), options)


def _segment(paths, names, model, out, workers, scheduler, monitor, options) -> list[dict]:
    """:func:`segment_files` with the output folder locked."""
    from ..parallel import map_on_dask

    if len(paths) == 1 and not scheduler:
        monitor.report(0, 1, paths[0].name)
        summary = [segment_file(paths[0], model, out, names[0], **options)]
        monitor.report(1, 1, paths[0].name)
        return summary
    workers = workers or min(len(paths), max(1, os.cpu_count() or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    tasks = [(p, model, str(out), n) for p, n in zip(paths, names, strict=True)]
    results = []
    task = partial(segment_file, **options)
    env = {"OMP_NUM_THREADS": str(threads)}
    for result in map_on_dask(task, tasks, workers, scheduler, monitor, env):
        results.append(result)
        monitor.report(len(results), len(paths), result["name"])
    return sorted(results, key=lambda r: r["name"])
