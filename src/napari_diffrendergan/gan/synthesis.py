"""Synthetic training data from a trained run (paper 5.2.6 and 5.3).

Each pair is an :class:`~..render.sampling.AnnotatedRenderer` sample: a fresh constellation
from the run's size and placement distributions, parameters sampled from the trained
generator, rendered by the training estimator at the run's spp (or a higher export spp), kept
only if it passes the contrast filter. Pair ``i`` depends only on (seed, i), so generation is
resumable (pairs already written are skipped) and any split over worker processes gives
identical files. The output is an :class:`~.dataset.NnunetDataset` (+ real background patches
``bg_NNNNN`` with empty labels).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import MAX_CONTOUR, whole_number
from ..data.dataset import BACKGROUND_PREFIX, NnunetDataset, pair_name
from ..errors import DiffRenderGANError
from ..progress import Monitor, ensure
from .run import MAX_SEED, GanRun, TrainedGenerator

# settings a dataset's pairs must share: mixing them would break its provenance ("run" is the
# run folder's name, "generator_sha256" the generator's weights: no path is recorded)
REQUEST_KEYS = ("run", "generator_sha256", "epoch", "seed", "spp", "contour_thickness")
MAX_PAIRS = 100_000  # pairs of one dataset (syn_00000 to syn_99999; the paper's: a few thousand)
PIXEL_SIZE_TOLERANCE = 0.01  # relative: background patches at the run's pixel size


class SynthesisError(DiffRenderGANError):
    """Synthetic data cannot be generated as asked; the message says why."""


@dataclass
class SyntheticPair:
    """One synthetic image with its labels and what made it."""

    name: str
    image: np.ndarray  # float32 (H, W), noise included
    instances: np.ndarray  # uint16
    mask: np.ndarray  # uint8 in {0, 1, 2}
    info: dict  # request, attempt, rejected, BSDF values, noise σ, visible particles


class PairRenderer:
    """Renders synthetic pairs ``i`` of a trained generator, deterministically from (seed, i)."""

    def __init__(
        self,
        generator: TrainedGenerator,
        seed: int = 0,
        spp: int | None = None,
        contour_thickness: int | None = None,
        device: str = "auto",
    ):
        from ..render.sampling import AnnotatedRenderer

        self.generator = generator
        self.config = generator.config
        self.seed = seed
        self.request = pair_request(generator, seed, spp, contour_thickness)
        self.renderer = AnnotatedRenderer(
            self.config, device, self.request["spp"], self.request["contour_thickness"]
        )

    @property
    def scene(self):
        return self.renderer.scene

    def render(self, index: int) -> SyntheticPair:
        """Pair ``index`` (``info["rejected"]``: attempts the contrast filter refused)."""
        from ..render.sampling import RenderError

        try:
            sample = self.renderer.render((self.seed, index), self.generator.values)
        except RenderError as err:
            raise SynthesisError(f"image {index}: {err}") from err
        info = {"index": index, **self.request, **sample.info}
        return SyntheticPair(pair_name(index), sample.image, sample.instances, sample.mask, info)


def iter_pairs(renderer: PairRenderer, indices, monitor: Monitor | None = None):
    """Render the pairs ``indices`` one by one, checking ``monitor`` before each."""
    monitor = ensure(monitor)
    for count, index in enumerate(indices):
        monitor.check(f"cancelled after {count} pairs")
        yield renderer.render(index)


def write_pair(dataset: NnunetDataset, pair: SyntheticPair) -> None:
    dataset.write_pair(pair.name, pair.image, pair.mask, pair.instances, pair.info)


_WORKER_RENDERERS: dict[tuple, PairRenderer] = {}


def _render_chunk(run, epoch, indices, folder, seed, spp, contour, device, threads) -> list[int]:
    """Worker task: render and write the pairs ``indices`` not written yet (one renderer per
    worker process and run, reused across tasks)."""
    import drjit as dr
    import torch

    key = (run, epoch, seed, spp, contour, device)
    if key not in _WORKER_RENDERERS:
        dr.set_thread_count(threads)
        torch.set_num_threads(threads)
        _WORKER_RENDERERS.clear()
        _WORKER_RENDERERS[key] = PairRenderer(
            GanRun.open(run).generator(epoch), seed, spp, contour, device
        )
    renderer, dataset = _WORKER_RENDERERS[key], NnunetDataset(folder)
    for index in indices:
        if not dataset.pair_done(index):
            write_pair(dataset, renderer.render(index))
    return list(indices)


def structure(image: np.ndarray) -> float:
    """How much a particle-free patch shows of the support film (curls, edges, contamination):
    the standard deviation of its detail above a 3-px blur, relative to its mean level."""
    from scipy import ndimage

    image = np.asarray(image, np.float64)
    return float((image - ndimage.gaussian_filter(image, 3)).std() / max(image.mean(), 1e-6))


def background_choice(patches: str | Path, count: int, seed: int) -> tuple[list, list[int]]:
    """The background patches of a patch set and the sorted indices of the ``count`` that a
    dataset takes: the most structured (:func:`structure`) of every source scan in turn, so
    the film's curls and edges of all scans are there (ties broken by ``seed``); a clear
    error if the set has none."""
    from ..data.patches import PatchSet

    patch_set = PatchSet.open(patches)
    background = patch_set.with_role("background")
    if not background:
        raise SynthesisError(f"{patches}: the patch set holds no background patches")
    tie = np.random.default_rng(seed).random(len(background))
    by_source: dict[str, list[int]] = {}
    for index in np.lexsort((tie, [-structure(patch_set.read(p)) for p in background])):
        by_source.setdefault(background[index].source, []).append(int(index))
    queues = list(by_source.values())
    chosen = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    return background, sorted(chosen[:count])


RANGE_NAMES = {1.0: "0–1 (floating point)", 255.0: "0–255 (8-bit)", 65535.0: "0–65535 (16-bit)"}


def background_scaling(patches: str | Path, run: GanRun) -> tuple[float, list[str]]:
    """What the background patches of the set ``patches`` are divided by to lie on the 0–1
    scale of the run's patches and synthetic images, and notes on what was converted. Each set
    is divided by the full range of its own source type
    (:meth:`~.patches.PatchSet.intensity_range`), the run's own set by what the run recorded;
    a set of another pixel size than the run's, or of none where the run has one, is refused
    (:class:`SynthesisError`): its film and noise would be at another scale."""
    from ..data.patches import PatchSet

    patch_set = PatchSet.open(patches)
    notes = _pixel_size_notes(patches, patch_set.pixel_size_nm, run.pixel_size_nm)
    if Path(patches).resolve() == run.patches.resolve():
        return run.intensity_range, notes
    own = PatchSet.intensity_range(patch_set.read_stack(patch_set.patches))
    if own != run.intensity_range:
        notes.append(
            f"the background patches of {Path(patches).name} are {RANGE_NAMES[own]} data, the "
            f"run's patches {RANGE_NAMES[run.intensity_range]}: divided by {own:g} (not the "
            f"run's {run.intensity_range:g}) to lie on the synthetic images' 0–1 scale"
        )
    return own, notes


def _pixel_size_notes(patches, theirs: float | None, ours: float | None) -> list[str]:
    """Refuse background patches whose pixel size is not the run's (``ours``); a note where
    only they know theirs."""
    if not ours:
        if theirs is None:
            return []
        return [
            f"the run records no pixel size; the background patches ({theirs:g} nm per pixel) "
            "are taken as they are"
        ]
    fix = (
        f"cut background patches from scans at {ours:g} nm per pixel and save them with that "
        "pixel size (Patch selection widget, or `diffrendergan patches --pixel-size "
        f"{ours:g}`), or use the run's own patch set"
    )
    if theirs is None:
        raise SynthesisError(
            f"{patches} records no pixel size, the run's patches are at {ours:g} nm per pixel: "
            f"patches of unknown scale cannot be checked against the synthetic images; {fix}"
        )
    if not np.isclose(theirs, ours, rtol=PIXEL_SIZE_TOLERANCE):
        raise SynthesisError(
            f"{patches} holds patches at {theirs:g} nm per pixel, the run's are at {ours:g}: "
            f"their film and noise would be at another scale than the synthetic images'; {fix}"
        )
    return []


def add_background_patches(
    dataset: NnunetDataset, patches: str | Path, count: int, seed: int, divisor: float
) -> int:
    """Copy the ``count`` real background patches of :func:`background_choice` with
    all-background labels into the dataset as ``bg_NNNNN``, divided by ``divisor``
    (:func:`background_scaling`); returns how many were available and written."""
    from ..data.patches import PatchSet

    patch_set = PatchSet.open(patches)
    background, chosen = background_choice(patches, count, seed)
    for j, k in enumerate(chosen):
        image = patch_set.read(background[k]) / divisor
        dataset.write_case(f"{BACKGROUND_PREFIX}{j:05d}", image, np.zeros(image.shape, np.uint8))
    return len(chosen)


def _check_request(dataset: NnunetDataset, request: dict) -> None:
    """Refuse a folder holding pairs made with other settings (mixing would lie about them)."""
    done = dataset.done_pairs()
    if not done:
        return
    before = dataset.pair_info(done[0])
    if "run" in before:  # datasets made before names only were recorded hold the run's path
        before = {**before, "run": Path(before["run"]).name}
    differ = {
        k: (before[k], request[k]) for k in REQUEST_KEYS if k in before and before[k] != request[k]
    }
    if differ:
        listed = ", ".join(f"{k} {old!r} (asked: {new!r})" for k, (old, new) in differ.items())
        raise SynthesisError(
            f"{dataset.folder} already holds {len(done)} pairs made with other settings: "
            f"{listed}; choose a new folder, or the same settings to continue it"
        )


def _check_leftovers(dataset: NnunetDataset, written: set[int], count: int, backgrounds: int):
    """Refuse a folder holding more pairs or background patches than asked for now: the
    dataset would train on them although its summary leaves them out."""
    found = []
    pairs = sum(i >= count for i in written)
    if pairs:
        found.append(f"{pairs} pairs beyond the {count} asked for")
    extra = sum(c.startswith(BACKGROUND_PREFIX) for c in dataset.cases()) - backgrounds
    if extra > 0:
        found.append(f"{extra} background patches beyond the {backgrounds} to add")
    if found:
        raise SynthesisError(
            f"{dataset.folder} already holds {' and '.join(found)}: ask for at least as many, "
            "or choose a new folder"
        )


def generate(
    run: str | Path,
    out: str | Path,
    count: int,
    epoch: int | str = "best",
    seed: int = 0,
    spp: int | None = None,
    contour_thickness: int | None = None,
    background_patches: str | Path | None = None,
    n_background: int = 200,
    workers: int = 1,
    scheduler: str | None = None,
    device: str = "auto",
    monitor: Monitor | None = None,
) -> dict:
    """Write ``count`` synthetic pairs (+ background patches) into the nnU-Net dataset ``out``
    (see module doc); returns the summary also written to ``generation.json``.

    ``workers`` > 1 renders on a local Dask cluster of that many processes; ``scheduler`` uses
    an existing Dask scheduler. Pairs already written are skipped. The dataset folder is locked
    meanwhile (:class:`~napari_diffrendergan.io.FolderLock`).
    """
    from ..io import FolderLock
    from ..parallel import map_on_dask
    from ..render.scene import check_render

    monitor = ensure(monitor)
    _check_arguments(count, seed, contour_thickness, n_background, workers, scheduler)
    run = GanRun.open(run)
    check_render(run.config, spp)
    generator = run.generator(epoch)
    backgrounds = 0
    if background_patches:  # fail before rendering
        background_scaling(background_patches, run)
        backgrounds = len(background_choice(background_patches, n_background, seed)[1])
    dataset = NnunetDataset(Path(out).resolve())
    with FolderLock(dataset.folder, "synthetic data generation"):
        request = pair_request(generator, seed, spp, contour_thickness)
        _check_request(dataset, request)
        written = set(dataset.done_pairs())
        _check_leftovers(dataset, written, count, backgrounds)
        todo = [i for i in range(count) if i not in written]
        done = count - len(todo)
        monitor.report(done, count, f"{done} pairs already written")
        if todo and workers == 1 and not scheduler:
            renderer = PairRenderer(generator, seed, spp, contour_thickness, device)
            for pair in iter_pairs(renderer, todo, monitor):
                write_pair(dataset, pair)
                done += 1
                monitor.report(done, count, f"{pair.name}: {pair.info['rejected']} rejected")
        elif todo:
            threads = max(1, (os.cpu_count() or 1) // workers)
            chunks = [todo[i : i + 2] for i in range(0, len(todo), 2)]
            tasks = [
                (
                    str(run.folder.resolve()),
                    generator.epoch,
                    chunk,
                    str(dataset.folder),
                    seed,
                    request["spp"],
                    request["contour_thickness"],
                    device,
                    threads,
                )
                for chunk in chunks
            ]
            for finished in map_on_dask(_render_chunk, tasks, workers, scheduler, monitor):
                done += len(finished)
                monitor.report(done, count, f"{done}/{count} pairs")
        return finish_dataset(dataset, generator, count, background_patches, n_background)


def _check_arguments(count, seed, contour_thickness, n_background, workers, scheduler) -> None:
    """Refuse numbers :func:`generate` cannot work with, naming the argument and its range."""
    from ..parallel import check_workers

    ranges = [("count", count, 1, MAX_PAIRS), ("seed", seed, 0, MAX_SEED)]
    ranges.append(("number of background patches", n_background, 0, None))
    if contour_thickness is not None:
        ranges.append(("contour thickness", contour_thickness, 0, MAX_CONTOUR))
    for name, value, low, high in ranges:
        if not whole_number(value, low, high):
            most = "" if high is None else f" and at most {high:,}"
            raise SynthesisError(
                f"{name} must be at least {low}{most} (a whole number), got {value!r}"
            )
    check_workers(workers, scheduler)


def pair_request(generator: TrainedGenerator, seed, spp=None, contour_thickness=None) -> dict:
    """The settings every pair of a dataset records (:data:`REQUEST_KEYS`, defaults filled)
    and the run's pixel size."""
    config = generator.config
    return {
        "run": generator.run.folder.resolve().name,
        "pixel_size_nm": generator.run.pixel_size_nm,
        "generator_sha256": generator.weights_sha256(),
        "epoch": generator.epoch,
        "seed": seed,
        "spp": spp or config.scene.spp,
        "contour_thickness": (
            config.contour_thickness if contour_thickness is None else contour_thickness
        ),
    }


def finish_dataset(
    dataset: NnunetDataset,
    generator: TrainedGenerator,
    count: int,
    background_patches: str | Path | None = None,
    n_background: int = 200,
) -> dict:
    """Add background patches, ``dataset.json`` and ``generation.json`` once pairs
    0..count-1 are written; returns the summary."""
    from .. import __version__

    written = set(dataset.done_pairs())
    missing = [i for i in range(count) if i not in written]
    if missing:
        raise SynthesisError(f"{dataset.folder}: {len(missing)} of {count} pairs are not written")
    infos = [dataset.pair_info(i) for i in range(count)]
    backgrounds, notes = 0, []
    seed, pixel_size = infos[0]["seed"], generator.run.pixel_size_nm
    if background_patches and n_background > 0:
        divisor, notes = background_scaling(background_patches, generator.run)
        backgrounds = add_background_patches(
            dataset, background_patches, n_background, seed, divisor
        )
    dataset.write_index(infos[0]["contour_thickness"], pixel_size)
    summary = {
        **{k: infos[0][k] for k in REQUEST_KEYS},
        "synthetic_pairs": count,
        "rejected": int(sum(i["rejected"] for i in infos)),
        "background_patches": backgrounds,
        "background_requested": n_background if background_patches else 0,
        "pixel_size_nm": pixel_size,
        "notes": notes,
        "config": generator.config.to_dict(),
        "version": __version__,
        "images": infos,
    }
    dataset.write_generation(summary)
    return summary


def export_pairs(
    dataset: NnunetDataset,
    pairs: list[SyntheticPair],
    generator: TrainedGenerator,
    background_patches: str | Path | None = None,
    n_background: int = 200,
    monitor: Monitor | None = None,
) -> dict:
    """Write pairs rendered elsewhere (e.g. shown in napari) as ``generate`` would with the same
    request, then finish the dataset; returns its summary. The dataset folder is locked
    meanwhile."""
    from ..io import FolderLock

    monitor = ensure(monitor)
    if background_patches and n_background > 0:  # refused before anything is written
        background_scaling(background_patches, generator.run)
    with FolderLock(dataset.folder, "synthetic data export"):
        for done, pair in enumerate(pairs):
            monitor.check(f"export cancelled after {done} pairs")
            monitor.report(done, len(pairs) + 1, f"writing {pair.name}")
            write_pair(dataset, pair)
        monitor.report(len(pairs), len(pairs) + 1, "background patches and dataset.json")
        summary = finish_dataset(dataset, generator, len(pairs), background_patches, n_background)
    monitor.report(len(pairs) + 1, len(pairs) + 1, "done")
    return summary
