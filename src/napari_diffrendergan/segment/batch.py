"""Segmenting image files: one file (mask, instances and particle CSV, complete or absent), or
many in parallel on Dask."""

from __future__ import annotations

import os
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
from ..errors import DiffRenderGANError
from ..io import (
    IMAGE_SUFFIXES,
    chosen_pixel_size,
    distinct_files,
    file_message,
    output_names,
    refuse_overwriting,
)
from ..progress import Monitor, ensure
from .model import ModelFolder, SegmentationError
from .predict import Segmentation, Segmenter, prepare_image, segment_image

OUTPUT_SUFFIXES = ("_mask", "_instances")
_LOADED: dict[tuple, Segmenter] = {}


def image_files(inputs) -> list[Path]:
    """Images named directly or found (non-recursively) in the folders given, each file once;
    the plugin's own outputs (``*_mask``, ``*_instances``) are left out of folders."""
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
    return distinct_files(found)


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
    exclude_bottom: int | str = 0,
    device="auto",
    window="whole",
    mirroring="none",
    step=0.5,
) -> dict:
    """Segment one file and write ``<name>_mask.tif``, ``<name>_instances.tif`` (with JSON
    sidecars), ``<name>_particles.csv`` (with ``touches_border``) and ``<name>_sizes.json``
    (:func:`~napari_diffrendergan.analysis.sizes.size_report`), all or none; returns a short
    summary. The pixel size is ``pixel_size_nm``, else the file's (sidecar, then metadata);
    ``exclude_bottom`` rows at the bottom are left out, or with ``"auto"`` the data bar
    :func:`~napari_diffrendergan.data.scans.find_data_bar` finds (bottom or top). A uniform
    image (every pixel equal) holds no particles: it gets empty outputs without the network."""
    from ..analysis.particles import table_rows
    from ..analysis.sizes import flag_border, size_report
    from ..data.scans import bar_to_leave_out
    from ..io import file_group, read_image, write_csv, write_json_atomic, write_tiff

    path, out = Path(path), Path(out)
    name = name or path.stem
    image = read_image(path)[0]
    pixel, notes = chosen_pixel_size(path, pixel_size_nm)
    image, converted = prepare_image(image)
    height, width = image.shape
    bar = bar_to_leave_out(image, exclude_bottom)
    rows = bar.rows if bar else 0
    if not 0 <= rows <= height - 8:
        raise SegmentationError(
            f"cannot leave out {rows} rows of a {height}-row image (at least 8 rows must "
            "remain): lower --exclude-bottom"
        )
    top, stop = bar.kept_rows(height) if bar else (0, height)
    notes += converted + ([f"data bar left out: {bar}"] if bar else [])
    if np.ptp(image[top:stop]) == 0:
        result = _uniform(image, pixel)
    else:
        key = (str(model), device, window, mirroring, step)
        if key not in _LOADED:  # one model per worker process
            _LOADED[key] = Segmenter(
                model, device=device, window=window, mirroring=mirroring, step=step
            )
        result = segment_image(
            _LOADED[key],
            image,
            region=(top, stop, 0, width),
            watershed=watershed,
            pixel_size_nm=pixel,
            split_distance=split_distance,
            min_area=min_area,
            core_threshold=core_threshold,
            min_seed_area=min_seed_area,
        )
    result.notes[:0] = notes
    meta = {
        "source": path.name,
        "model": Path(model).name,
        "watershed": watershed,
        "split_distance": split_distance,
        "min_area": min_area,
        "core_threshold": core_threshold,
        "min_seed_area": min_seed_area,
        "excluded_bottom_rows": height - stop,
        "excluded_top_rows": top,
        "notes": result.notes,
    }
    analysed = (top, stop, 0, width)
    result.table = flag_border(result.table, result.instances, analysed)
    sizes = size_report(result.table, pixel, (stop - top) * width, min_area)
    paths = output_paths(out, name)
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
        write_json_atomic(paths[3], sizes)
    statistics = sizes["statistics"]
    return {
        "name": name,
        "particles": int(result.instances.max()),
        "d50": statistics["sizes"]["equivalent_diameter"]["D50"],
        "count": statistics["count"],
        "unit": statistics["unit"],
        "notes": result.notes,
    }


def output_paths(out: Path, name: str) -> list[Path]:
    """The mask, instances, particle table and size report :func:`segment_file` writes."""
    names = ("mask.tif", "instances.tif", "particles.csv", "sizes.json")
    return [out / f"{name}_{suffix}" for suffix in names]


def _uniform(image: np.ndarray, pixel_size_nm: float | None) -> Segmentation:
    """The segmentation of an image whose pixels all have one value: no particle."""
    from ..analysis.particles import particle_table

    instances = np.zeros(image.shape, np.uint16)
    note = f"uniform image: every pixel is {image.flat[0]:g}"
    mask = np.zeros(image.shape, np.uint8)
    return Segmentation(mask, instances, particle_table(instances, pixel_size_nm), [note])


def _summary_or_failure(path, model, out, name, **options) -> dict:
    """:func:`segment_file`, or where the user can fix what failed, ``{"name", "source",
    "error"}`` with a message naming the file (so one bad file does not end a batch)."""
    try:
        return segment_file(path, model, out, name, **options)
    except DiffRenderGANError as err:
        return {"name": name, "source": str(path), "error": file_message(path, err)}


def segment_files(
    paths,
    model,
    out,
    workers: int | None = None,
    scheduler: str | None = None,
    monitor: Monitor | None = None,
    **options,
) -> list[dict]:
    """Segment many files in parallel on Dask: a local cluster of ``workers`` processes (at
    most one per file), or the existing scheduler at ``scheduler``. A single file runs in this
    process and its error is raised; in a batch, a file that fails with a user error does not
    stop the others: its entry is ``{"name", "source", "error"}``. Paths are made absolute
    first, so workers elsewhere write where the caller expects. The output folder is locked
    meanwhile (:class:`~napari_diffrendergan.io.FolderLock`)."""
    from ..io import FolderLock
    from ..parallel import check_workers

    check_workers(workers, scheduler)
    ModelFolder(model).metadata()
    paths = [Path(p).resolve() for p in paths]
    names = output_names(paths)
    model, out = str(Path(model).resolve()), Path(out).resolve()
    refuse_overwriting(paths, [p for name in names for p in output_paths(out, name)])
    with FolderLock(out, "segmentation"):
        return _segment(paths, names, model, out, workers, scheduler, ensure(monitor), options)


def _segment(paths, names, model, out, workers, scheduler, monitor, options) -> list[dict]:
    """:func:`segment_files` with the output folder locked."""
    from ..parallel import map_on_dask

    if len(paths) == 1 and not scheduler:
        monitor.report(0, 1, paths[0].name)
        try:
            summary = [segment_file(paths[0], model, out, names[0], **options)]
        except DiffRenderGANError as err:
            raise type(err)(file_message(paths[0], err)) from err
        monitor.report(1, 1, paths[0].name)
        return summary
    workers = min(len(paths), workers or max(1, os.cpu_count() or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    tasks = [(p, model, str(out), n) for p, n in zip(paths, names, strict=True)]
    results = []
    task = partial(_summary_or_failure, **options)
    env = {"OMP_NUM_THREADS": str(threads)}
    for result in map_on_dask(task, tasks, workers, scheduler, monitor, env):
        results.append(result)
        monitor.report(len(results), len(paths), result["name"])
    return sorted(results, key=lambda r: r["name"])
