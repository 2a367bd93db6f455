"""Synthetic training data from a trained run (paper 5.2.6 and 5.3).

Each image gets a fresh constellation drawn from the run's size and placement distributions and
parameters sampled from the trained generator; it is rendered by the same estimator as in
training (:mod:`.shading`: Mitsuba's direct illumination, film filter without atomic additions,
so bit-for-bit reproducible) at the run's spp or a higher export spp, labelled from the AOV
scene, and kept only if it passes the contrast filter. Image ``i`` depends only on (seed, i),
so generation is resumable (files already written are skipped) and any split over worker
processes gives identical files.

Output is an nnU-Net v2 raw dataset: ``imagesTr/syn_NNNNN_0000.tif``, ``labelsTr/syn_NNNNN.tif``
(0 background, 1 particle, 2 contour), ``instances/syn_NNNNN.tif``, per-image parameters in
``parameters/syn_NNNNN.json``, optional real background patches ``bg_NNNNN`` with empty labels,
``dataset.json`` and ``generation.json`` (run, epoch, seed, counts, rejections).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gan import TrainedGenerator, TrainingError, load_generator

MAX_ATTEMPTS = 50


class SynthesisError(RuntimeError):
    """Synthetic data cannot be generated as asked; the message says why."""


@dataclass
class SyntheticPair:
    """One synthetic image with its labels and what made it."""

    name: str
    image: np.ndarray  # float32 (H, W), noise included
    instances: np.ndarray  # uint16
    mask: np.ndarray  # uint8 in {0, 1, 2}
    info: dict  # seed, attempt, rejected, BSDF values, noise σ, visible particles


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
        from .scene import VirtualScene

        self.generator = generator
        self.config = generator.config
        self.seed, self.spp = seed, spp or self.config.scene.spp
        self.contour = (
            self.config.contour_thickness if contour_thickness is None else contour_thickness
        )
        self.scene = VirtualScene(self.config, device=device)

    def render(self, index: int) -> SyntheticPair:
        """Pair ``index``: attempts are repeated with new constellations and parameters until
        one passes the contrast filter; the number rejected is in ``info["rejected"]``."""
        from .labels import contrast_check, semantic_mask
        from .placement import constellation
        from .scene import add_noise
        from .shading import trace

        space = self.generator.space
        last = ""
        for attempt in range(MAX_ATTEMPTS):
            rng = np.random.default_rng([self.seed, index, attempt])
            phi = constellation(self.config, rng)
            values = self.generator.sample(phi[None], rng_seed=int(rng.integers(2**31)))[0]
            bsdf = {n: float(v) for n, v in zip(space.names[:-1], values[:-1], strict=True)}
            sigma = float(values[-1])
            self.scene.place(phi)
            self.scene.set_bsdf(bsdf)
            render_seed = int(rng.integers(2**31))
            clean = trace(self.scene, seed=render_seed, spp=self.spp).render()
            instances = self.scene.instances()
            check = contrast_check(clean, instances, self.config.contrast_threshold)
            if check:
                info = {
                    "index": index,
                    "seed": self.seed,
                    "attempt": attempt,
                    "rejected": attempt,
                    "render_seed": render_seed,
                    "spp": self.spp,
                    "bsdf": bsdf,
                    "noise_sigma": sigma,
                    "visible_particles": int(len(np.unique(instances[instances > 0]))),
                }
                return SyntheticPair(
                    f"syn_{index:05d}",
                    add_noise(clean, sigma, rng),
                    instances,
                    semantic_mask(instances, self.contour),
                    info,
                )
            last = check.reason
        raise SynthesisError(
            f"image {index}: {MAX_ATTEMPTS} attempts failed the contrast filter (last: {last}); "
            "the run's parameters give too little particle contrast: check the epoch or the "
            "configuration"
        )


def write_pair(folder: str | Path, pair: SyntheticPair) -> None:
    """Write one pair into the dataset ``folder`` (image, 3-class label, instances, then its
    parameters, which mark it done)."""
    from .io import write_json_atomic, write_tiff
    from .segmentation import write_dataset

    folder = Path(folder)
    write_dataset(folder, [pair.image], [pair.mask], names=[pair.name])
    write_tiff(folder / "instances" / f"{pair.name}.tif", pair.instances)
    write_json_atomic(folder / "parameters" / f"{pair.name}.json", pair.info)  # marks done


def _done(folder: Path, index: int) -> bool:
    return (folder / "parameters" / f"syn_{index:05d}.json").is_file()


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
            load_generator(run, epoch), seed, spp, contour, device
        )
    renderer = _WORKER_RENDERERS[key]
    for index in indices:
        if not _done(Path(folder), index):
            write_pair(Path(folder), renderer.render(index))
    return list(indices)


def _background_list(patches: str | Path) -> list:
    """The background patches listed in a patch set; a clear error if there are none."""
    from .patches import PatchError, load_patch_set

    try:
        listed, _ = load_patch_set(patches)
    except PatchError as err:
        raise SynthesisError(f"background patches: {err}") from err
    background = [p for p in listed if p.role == "background"]
    if not background:
        raise SynthesisError(f"{patches}: the patch set holds no background patches")
    return background


def background_choice(patches: str | Path, count: int, seed: int) -> tuple[list, list[int]]:
    """The background patches of a patch set and the sorted indices of the ``count`` (seeded)
    that a dataset takes."""
    background = _background_list(patches)
    chosen = np.random.default_rng(seed).permutation(len(background))[:count]
    return background, sorted(chosen.tolist())


def add_background_patches(
    folder: Path, patches: str | Path, count: int, seed: int, intensity_range: float
) -> int:
    """Copy ``count`` real background patches (random, seeded) with all-background labels into
    the dataset as ``bg_NNNNN``, divided by ``intensity_range`` as the GAN's real patches were;
    returns how many were available and written."""
    import tifffile

    from .segmentation import write_dataset

    background, chosen = background_choice(patches, count, seed)
    for j, k in enumerate(chosen):
        image = tifffile.imread(Path(patches) / background[k].file).astype(np.float32)
        image /= intensity_range
        write_dataset(folder, [image], [np.zeros(image.shape, np.uint8)], names=[f"bg_{j:05d}"])
    return len(chosen)


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
    progress: Callable[[int, int, str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict:
    """Write ``count`` synthetic pairs (+ background patches) into the nnU-Net dataset ``out``
    (see module doc); returns the summary also written to ``generation.json``.

    ``workers`` > 1 renders on a local Dask cluster of that many processes; ``scheduler`` uses
    an existing Dask scheduler. Pairs already written are skipped.
    """
    if count < 1:
        raise SynthesisError(f"count must be at least 1, got {count}")
    try:
        generator = load_generator(run, epoch)
    except TrainingError as err:
        raise SynthesisError(str(err)) from err
    if background_patches:
        _background_list(background_patches)  # fail before rendering, not after
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(count) if not _done(folder, i)]
    if progress:
        progress(count - len(todo), count, f"{count - len(todo)} pairs already written")
    if todo and (workers > 1 or scheduler):
        _generate_on_dask(
            str(run),
            generator.epoch,
            todo,
            folder,
            seed,
            spp,
            contour_thickness,
            device,
            workers,
            scheduler,
            count,
            progress,
        )
    elif todo:
        done = count - len(todo)
        renderer = PairRenderer(generator, seed, spp, contour_thickness, device)
        for index in todo:
            if cancelled and cancelled():
                raise SynthesisError(
                    f"cancelled after {sum(_done(folder, i) for i in range(count))} of {count} "
                    "pairs; run again to continue"
                )
            pair = renderer.render(index)
            write_pair(folder, pair)
            done += 1
            if progress:
                progress(done, count, f"{pair.name}: {pair.info['rejected']} rejected")
    return finish_dataset(
        folder, generator, count, seed, contour_thickness, background_patches, n_background
    )


def finish_dataset(
    folder: str | Path,
    generator: TrainedGenerator,
    count: int,
    seed: int,
    contour_thickness: int | None = None,
    background_patches: str | Path | None = None,
    n_background: int = 200,
) -> dict:
    """Add background patches and write ``generation.json`` once pairs 0..count-1 are written;
    returns the summary."""
    from . import __version__
    from .io import write_json_atomic

    folder = Path(folder)
    missing = [i for i in range(count) if not _done(folder, i)]
    if missing:
        raise SynthesisError(f"{folder}: {len(missing)} of {count} pairs are not written yet")
    infos = [
        json.loads((folder / "parameters" / f"syn_{i:05d}.json").read_text()) for i in range(count)
    ]
    backgrounds = 0
    if background_patches and n_background > 0:
        training = json.loads((generator.run / "training.json").read_text())
        backgrounds = add_background_patches(
            folder, background_patches, n_background, seed, training["intensity_range"]
        )
    summary = {
        "run": str(generator.run.resolve()),
        "epoch": generator.epoch,
        "seed": seed,
        "spp": infos[0]["spp"],
        "synthetic_pairs": count,
        "rejected": int(sum(i["rejected"] for i in infos)),
        "background_patches": backgrounds,
        "background_requested": n_background if background_patches else 0,
        "contour_thickness": (
            generator.config.contour_thickness if contour_thickness is None else contour_thickness
        ),
        "config": generator.config.to_dict(),
        "version": __version__,
        "images": infos,
    }
    write_json_atomic(folder / "generation.json", summary)
    return summary


def _generate_on_dask(
    run, epoch, todo, folder, seed, spp, contour, device, workers, scheduler, count, progress
):
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    chunks = [todo[i : i + 2] for i in range(0, len(todo), 2)]
    try:
        futures = [
            client.submit(
                _render_chunk,
                run,
                epoch,
                chunk,
                str(folder),
                seed,
                spp,
                contour,
                device,
                threads,
                pure=False,
            )
            for chunk in chunks
        ]
        done = count - len(todo)
        for future in as_completed(futures):
            done += len(future.result())
            if progress:
                progress(done, count, f"{done}/{count} pairs")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
