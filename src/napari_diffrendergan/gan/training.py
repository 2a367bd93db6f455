"""DiffRenderGAN training (paper 5.2): generator FCN → differentiable render → noise, against a
PatchGAN discriminator, with FID and parameter histograms after every epoch.

Geometry is fixed per constellation φ, so each is traced once (:mod:`..render.shading`). When
the BSDFs are polynomials of the learned parameters (the presets: measured exact), a trace is
reduced to a few basis images and every render, gradient and FID image costs a handful of
image additions (:class:`_BasisRenders`); otherwise the cached samples are re-shaded, each
trace serving ``reuse`` iterations from a pool (:class:`_SampleRenders`).

After every epoch (and once before training, "epoch 0", for the untrained generator) the FID
is computed the paper's way: one synthetic image per real patch, each of a distinct
constellation, generator in eval mode, clamped like the training images. What is evaluated,
checkpointed for use and sampled from is the running average of the generator's weights
(``average``: the training's G jumps with the discriminator from epoch to epoch; measured).
The run records the real-vs-real floor (FID between the two halves of the real patches).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import FolderLock
from ..progress import Monitor, duration, ensure
from .networks import build_discriminator, build_generator, normalise_phi
from .run import GanRun, TrainingError, breadth


@dataclass
class TrainingEvent:
    """What :func:`train_iter` yields: one per iteration, and one at the end of each epoch."""

    kind: str  # "setup", "note" (something the user should read), "iteration" or "epoch"
    epoch: int
    step: int  # iterations done in this call (all epochs)
    total: int  # iterations this call trains
    message: str
    metrics: dict = field(default_factory=dict)
    preview: np.ndarray | None = None  # latest synthetic image (epoch events)
    samples: np.ndarray | None = None  # parameter samples (epoch events)
    seconds_left: float | None = None  # estimated time this call still needs (once known)


SMALL_PATCH = 128  # px: smaller patches get a note


def _trace_seeds(settings, count: int) -> np.ndarray:
    """Render seeds of the constellations: fixed by the run's seed, so a resumed run traces
    exactly the images it trained on before."""
    return np.random.default_rng([settings.seed, 1]).integers(2**31, size=count)


class _Film:
    """The learned support-film texture (:mod:`..render.film`) of the training renders: one
    pair of fields per constellation, made from its seed when first needed."""

    def __init__(self, space, seeds, shape):
        self.count = len(space.film_names)
        self.seeds, self.shape, self.fields = seeds, shape, {}

    def _fields(self, index: int) -> np.ndarray:
        from ..render.film import film_fields

        if index not in self.fields:
            self.fields[index] = film_fields(self.shape, int(self.seeds[index]))
        return self.fields[index]

    def numpy(self, image, coverage, index: int, contrasts) -> np.ndarray:
        from ..render.film import apply_film

        if not self.count:
            return image
        return apply_film(image, coverage, self._fields(index), contrasts).astype(np.float32)

    def torch(self, image, coverage, index: int, contrasts):
        import torch

        from ..render.film import apply_film

        if not self.count:
            return image
        fields = torch.from_numpy(self._fields(index))
        return apply_film(image, torch.from_numpy(coverage), fields, contrasts)


class _BasisRenders:
    """Every constellation of Φ traced once and reduced to basis images (a few MB each)."""

    exact = True

    def __init__(self, scene, phis, basis, seeds, film: _Film, monitor: Monitor):
        from ..render.shading import trace

        self.film = film
        self.images = []
        monitor.report(0, len(phis), f"0/{len(phis)} traced")
        for index, phi in enumerate(phis):
            monitor.check()
            scene.place(phi)
            self.images.append(trace(scene, seed=int(seeds[index])).reduce(basis))
            monitor.report(index + 1, len(phis), f"{index + 1}/{len(phis)} traced")

    def pick(self, index: int, reference: dict) -> int:
        return index

    def torch_image(self, index: int, values, contrasts):
        basis = self.images[index]
        return self.film.torch(basis.render_torch(values), basis.coverage, index, contrasts)

    def numpy_image(self, index: int, values: np.ndarray, contrasts) -> np.ndarray:
        index %= len(self.images)
        basis = self.images[index]
        return self.film.numpy(basis.render(values), basis.coverage, index, contrasts)


class _SampleRenders:
    """Traced constellations re-shaded per sample: a pool whose members each serve ``reuse``
    iterations (then a fresh one is traced), and a few traced once for the FID set."""

    exact = False

    def __init__(self, scene, phis, names, settings, seeds, film: _Film, rng, monitor: Monitor):
        from ..render.shading import trace

        self.scene, self.phis, self.names, self.reuse, self.rng = (
            scene,
            phis,
            names,
            settings.reuse,
            rng,
        )
        self.film = film
        self.slots: list[list] = [[None, None, settings.reuse] for _ in range(settings.pool)]
        self.queue: list[int] = []
        self.current = None
        count = min(settings.fid_constellations, len(phis))
        self.fid = []
        monitor.report(0, count, f"0/{count} FID constellations traced")
        for index in range(count):
            monitor.check()
            scene.place(phis[index])
            self.fid.append(trace(scene, seed=int(seeds[index])))
            monitor.report(index + 1, count, f"{index + 1}/{count} FID constellations traced")

    def pick(self, index: int, reference: dict) -> int:
        """The pool constellation to train on next (``index`` is only a suggestion), traced
        afresh when its slot has served ``reuse`` iterations."""
        from ..render.shading import trace

        slot = self.slots[self.rng.integers(len(self.slots))]
        if slot[2] >= self.reuse:
            if not self.queue:
                self.queue = list(self.rng.permutation(len(self.phis)))
            slot[0] = int(self.queue.pop())
            slot[1] = None  # free the old cache before tracing the new one
            self.scene.place(self.phis[slot[0]])
            self.scene.set_bsdf(reference)
            slot[1], slot[2] = trace(self.scene, seed=int(self.rng.integers(2**31))), 0
        slot[2] += 1
        self.current = slot[1]
        return slot[0]

    def torch_image(self, index: int, values, contrasts):
        from ..render.shading import shade_torch

        image = shade_torch(self.current, self.names, values)
        return self.film.torch(image, self.current.coverage(), index, contrasts)

    def numpy_image(self, index: int, values: np.ndarray, contrasts) -> np.ndarray:
        cache = self.fid[index % len(self.fid)]
        self.scene.set_bsdf(dict(zip(self.names, values, strict=True)))
        return self.film.numpy(cache.render(), cache.coverage(), index, contrasts)


def _augment(image, k: int):
    """One of the 8 flips/rotations of a square image (k in 0..7), as the paper augments."""
    import torch

    image = torch.rot90(image, k % 4, dims=(-2, -1))
    return torch.flip(image, dims=(-1,)) if k >= 4 else image


SETUP_STAGES = (
    "building the scene",
    "tracing the constellations",
    "real-image FID statistics",
    "FID of the untrained generator",
)


def setup_stage(monitor: Monitor, index: int) -> Monitor:
    """The monitor of set-up stage ``index``: its reports are prefixed "set-up i/4, what: "
    and run from 0 (or are busy reports, total 0) within the stage."""
    return monitor.stage(f"set-up {index + 1}/{len(SETUP_STAGES)}, {SETUP_STAGES[index]}")


@dataclass
class SetupCache:
    """What a training's set-up made (traced constellations, real FID statistics), kept by a
    caller that trains the same run again in this process (the dock's Resume): a training
    whose run folder, configuration, settings, Φ, patches and backend hash to :attr:`key`
    skips set-up stages 1-3. Only exact (basis) renders are kept: per-sample shading holds
    random state that a resume restores from its checkpoint."""

    key: str = ""
    renders: object = None
    fid: object = None


def _setup_key(run: GanRun, phis: np.ndarray, sha256: str, resolved) -> str:
    """What the set-up depends on, hashed: a cache made under another key is not used."""
    import hashlib
    import json
    from dataclasses import asdict

    digest = hashlib.sha256(np.ascontiguousarray(phis, "<f4").tobytes())
    settings = json.dumps(asdict(run.settings), sort_keys=True)
    for part in (str(run.folder.resolve()), run.config.to_json(), settings, sha256, repr(resolved)):
        digest.update(part.encode())
    return digest.hexdigest()


def train_iter(
    run: str | Path | GanRun,
    epochs: int | None = None,
    monitor: Monitor | None = None,
    cache: SetupCache | None = None,
) -> Iterator[TrainingEvent]:
    """Train (or resume) ``run`` up to ``epochs`` (default: its settings), yielding progress.
    Resuming continues after the last usable checkpoint; with the ``cache`` of an earlier
    training of the run in this process, its set-up is not done again. Cancelling
    (``monitor``) raises :class:`~napari_diffrendergan.errors.Cancelled` between iterations
    or FID images: the current epoch is dropped, finished ones are kept. The run folder is
    locked meanwhile (:class:`~napari_diffrendergan.io.FolderLock`), and a run whose patch
    set changed is refused (:meth:`GanRun.real_patches`). Set-up reports through
    :func:`setup_stage`; training reports iterations done of all, with the time left."""
    run = run if isinstance(run, GanRun) else GanRun.open(run)
    with FolderLock(run.folder, "GAN training"):
        yield from _train_iter(run, epochs, ensure(monitor), cache)


def _set_up(run, phis, real, sha256, resolved, rng, start, monitor, cache):
    """Set-up stages 1-3 (scene, traces, real FID statistics), each announced by an event;
    returns (renders, FID), from ``cache`` when it holds this run's set-up."""
    from ..render.scene import VirtualScene
    from ..render.shading import find_shading_basis

    key = _setup_key(run, phis, sha256, resolved)
    if cache is not None and cache.key == key:
        message = "reusing the set-up of the last training of this run: nothing traced again"
        monitor.report(1, 1, message)
        yield TrainingEvent("setup", start, 0, 0, message)
        return cache.renders, cache.fid
    settings, space, config = run.settings, run.space, run.config
    stages = [setup_stage(monitor, index) for index in range(3)]
    yield TrainingEvent("setup", start, 0, 0, SETUP_STAGES[0])
    stages[0].report(0, 0, "Mitsuba scene and shading basis")
    scene = VirtualScene(config, device=settings.device)
    basis = find_shading_basis(scene, space.bsdf_names, space.limits())
    seeds = _trace_seeds(settings, len(phis))
    film = _Film(space, seeds, (config.scene.height, config.scene.width))
    yield TrainingEvent("setup", start, 0, 0, SETUP_STAGES[1])
    if basis is not None:
        renders = _BasisRenders(scene, phis, basis, seeds, film, stages[1])
    else:
        names = space.bsdf_names
        renders = _SampleRenders(scene, phis, names, settings, seeds, film, rng, stages[1])
    yield TrainingEvent("setup", start, 0, 0, SETUP_STAGES[2])
    fid = _FID(run, real, sha256, resolved.torch_device)
    fid.prepare(stages[2])
    if cache is not None and renders.exact:
        cache.key, cache.renders, cache.fid = key, renders, fid
    return renders, fid


def _train_iter(
    run: GanRun, epochs: int | None, monitor: Monitor, cache: SetupCache | None
) -> Iterator[TrainingEvent]:
    """:func:`train_iter` with the run folder locked."""
    import torch

    from .. import backend
    from ..render.sampling import BLUR, detector

    settings = run.settings
    epochs = epochs or settings.epochs
    config = run.config
    clamp = config.learning.clamp
    phis = run.phi()
    real, real_sha256 = run.real_patches()
    space = run.space
    resolved = backend.resolve_backend(settings.device)
    device = torch.device(resolved.torch_device)

    torch.manual_seed(settings.seed)
    generator = build_generator(config.meshes.count, len(space.names), settings.dropout).to(device)
    average = copy.deepcopy(generator).requires_grad_(False)  # EMA of the weights: evaluated
    discriminator = build_discriminator().to(device)
    opt_g = torch.optim.Adam(generator.parameters(), settings.lr_generator, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(
        discriminator.parameters(), settings.lr_discriminator, betas=(0.5, 0.999)
    )
    rng = np.random.default_rng(settings.seed)
    last, state, notes = run.resume_point()
    if config.scene.width < SMALL_PATCH:
        notes.append(
            f"patches of {config.scene.width} px hold only a particle or two at this pixel scale: "
            "the GAN and the synthetic data see little of how particles touch (the paper: 256 px)"
        )
    for note in notes:
        yield TrainingEvent("note", last, 0, 0, note)
    if state is not None:
        run.restore(generator, state["generator"], last)
        run.restore(average, state.get("average", state["generator"]), last)
        run.restore(discriminator, state["discriminator"], last)
        run.restore(opt_g, state["opt_generator"], last)
        run.restore(opt_d, state["opt_discriminator"], last)
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
    start = last + 1
    if start > epochs:
        return

    renders, fid = yield from _set_up(
        run, phis, real, real_sha256, resolved, rng, start, monitor, cache
    )
    n_bsdf = len(space.bsdf_names)
    film_slice = slice(n_bsdf, n_bsdf + len(space.film_names))
    blur = space.index(BLUR)
    phi_input = torch.from_numpy(normalise_phi(phis, config)).to(device)
    real_t = torch.from_numpy(real).to(device)
    iterations = len(phis)
    total = (epochs - start + 1) * iterations
    fid_count = settings.fid_images or len(real)

    def evaluate(epoch: int, progress: Monitor) -> tuple[dict, np.ndarray, np.ndarray]:
        """FID, parameter statistics and figures of the generator as it is now."""
        started = time.perf_counter()
        synthetic, values = _synthetic_set(
            average, space, renders, phi_input, fid_count, clamp, progress
        )
        record = {
            "epoch": epoch,
            "fid": fid(synthetic, progress),
            "seconds_fid": time.perf_counter() - started,
            "breadth": breadth(space.unscale(values)),
            "parameters": _summary(space, values),
        }
        return record, synthetic, values

    if start == 1 and not any(e["epoch"] == 0 for e in run.metrics()["epochs"]):
        yield TrainingEvent("setup", 0, 0, total, SETUP_STAGES[3])
        record, synthetic, values = evaluate(0, setup_stage(monitor, 3))
        run.save_checkpoint(
            0, {"generator": generator.state_dict(), "discriminator": {}, "epoch": 0}
        )
        run.record_epoch(record, fid_floor=fid.floor, exact_renders=renders.exact)
        yield TrainingEvent(
            "epoch",
            0,
            0,
            total,
            f"epoch 0 (untrained generator): FID {record['fid']:.1f}",
            record,
            preview=synthetic[0],
            samples=values,
        )

    eta = _Eta.from_records(run.metrics()["epochs"])
    monitor.report(
        0, total, f"training: epoch {start}/{epochs}{eta.text(total, epochs - start + 1)}"
    )
    mid = space.scale(np.full(len(space.names), 0.5, np.float32))
    reference = dict(zip(space.bsdf_names, mid[:n_bsdf], strict=True))
    step = 0
    for epoch in range(start, epochs + 1):
        generator.train()
        losses_g, losses_d, started = [], [], time.perf_counter()
        order = rng.permutation(len(real))
        constellations = rng.permutation(iterations)
        for it in range(iterations):
            monitor.check(f"cancelled in epoch {epoch}; finished epochs are kept")
            index = renders.pick(int(constellations[it]), reference)
            unit = generator(phi_input[index : index + 1])[0]
            values = space.scale(unit)
            values_cpu = values.cpu()
            image = renders.torch_image(index, values_cpu[:n_bsdf], values_cpu[film_slice])
            image = image.to(device)
            psf = None if blur is None else values[blur]
            fake = detector(image, values[-1], torch.randn_like(image), clamp, psf)[None, None]
            target = real_t[order[it % len(real)]]
            if settings.augment:
                target = _augment(target, int(rng.integers(8)))
            target = target[None, None]

            opt_d.zero_grad(set_to_none=True)
            out = discriminator(torch.cat([target, fake.detach()]))
            loss_d = 0.5 * ((out[0] - 1) ** 2).mean() + 0.5 * (out[1] ** 2).mean()
            loss_d.backward()
            opt_d.step()

            opt_g.zero_grad(set_to_none=True)
            discriminator.requires_grad_(False)
            loss_g = ((discriminator(fake) - 1) ** 2).mean()
            loss_g.backward()
            discriminator.requires_grad_(True)
            opt_g.step()
            with torch.no_grad():
                for mean, weight in zip(average.parameters(), generator.parameters(), strict=True):
                    mean.lerp_(weight, 1 - settings.average)

            reference = dict(zip(space.bsdf_names, values[:n_bsdf].tolist(), strict=True))
            losses_g.append(loss_g.item())
            losses_d.append(loss_d.item())
            step += 1
            eta.per_iteration = (time.perf_counter() - started) / (it + 1)
            fids_left = epochs - epoch + 1  # this epoch's FID still to come
            left = eta.text(total - step, fids_left)
            message = f"epoch {epoch}/{epochs}, iteration {it + 1}/{iterations}{left}"
            monitor.report(step, total, message)
            yield TrainingEvent(
                "iteration",
                epoch,
                step,
                total,
                message,
                {"loss_g": losses_g[-1], "loss_d": losses_d[-1]},
                seconds_left=eta.seconds(total - step, fids_left),
            )
        seconds_per_iteration = (time.perf_counter() - started) / iterations
        message = f"epoch {epoch}/{epochs}: FID and histograms{left}"
        monitor.report(step, total, message)
        yield TrainingEvent("setup", epoch, step, total, message)
        record, synthetic, values = evaluate(epoch, monitor.silent())
        eta.per_fid = record["seconds_fid"]
        record.update(
            loss_g=float(np.mean(losses_g)),
            loss_d=float(np.mean(losses_d)),
            seconds_per_iteration=seconds_per_iteration,
        )
        _save_epoch(
            run,
            epoch,
            {
                "generator": generator.state_dict(),
                "average": average.state_dict(),
                "discriminator": discriminator.state_dict(),
                "opt_generator": opt_g.state_dict(),
                "opt_discriminator": opt_d.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": rng.bit_generator.state,
                "epoch": epoch,
            },
            record,
            values,
            synthetic,
            real,
        )
        left = eta.text(total - step, fids_left - 1)
        yield TrainingEvent(
            "epoch",
            epoch,
            step,
            total,
            f"epoch {epoch}/{epochs}: FID {record['fid']:.1f}{left}",
            record,
            preview=synthetic[0],
            samples=values,
            seconds_left=eta.seconds(total - step, fids_left - 1),
        )


@dataclass
class _Eta:
    """The time a training call has left: iterations left × seconds per iteration (measured
    in this epoch, else the run's last record) + FIDs left × seconds per FID (the last one)."""

    per_iteration: float | None = None
    per_fid: float | None = None

    @classmethod
    def from_records(cls, records: list[dict]) -> _Eta:
        trained = [r for r in records if "seconds_per_iteration" in r]
        scored = [r for r in records if "seconds_fid" in r]
        return cls(
            trained[-1]["seconds_per_iteration"] if trained else None,
            scored[-1]["seconds_fid"] if scored else None,
        )

    def seconds(self, iterations: int, fids: int) -> float | None:
        """Seconds left for ``iterations`` and ``fids`` FIDs (None: not known yet)."""
        if self.per_iteration is None:
            return None
        return iterations * self.per_iteration + fids * (self.per_fid or 0.0)

    def text(self, iterations: int, fids: int) -> str:
        """ ", about 12 min left" (empty while not known)."""
        left = self.seconds(iterations, fids)
        return "" if left is None else f", about {duration(left)} left"


def train(run: str | Path | GanRun, epochs: int | None = None, monitor: Monitor | None = None):
    """Run :func:`train_iter` to the end; returns the run's metrics."""
    run = run if isinstance(run, GanRun) else GanRun.open(run)
    for _ in train_iter(run, epochs, monitor):
        pass
    return run.metrics()


def _synthetic_set(generator, space, renders, phi_input, count, clamp, monitor):
    """The FID set: ``count`` synthetic images, image k of constellation k (distinct while
    there are as many constellations), ``generator`` (the weight average) in eval mode, noise
    and clamping as in training; and the physical parameter values they were made with."""
    import torch

    from ..render.sampling import BLUR, detector

    n_bsdf, blur = len(space.bsdf_names), space.index(BLUR)
    film_slice = slice(n_bsdf, n_bsdf + len(space.film_names))
    rng = np.random.default_rng(int(torch.randint(2**31, ())))
    generator.eval()
    with torch.no_grad():
        chosen = torch.arange(count) % len(phi_input)
        values = space.scale(generator(phi_input[chosen]).cpu().numpy())
    generator.train()
    images = []
    for k in range(count):
        monitor.check("cancelled during the FID; finished epochs are kept")
        row = values[k]
        image = renders.numpy_image(int(chosen[k]), row[:n_bsdf], row[film_slice])
        noise = rng.normal(0, 1, image.shape).astype(np.float32)
        psf = None if blur is None else row[blur]
        images.append(detector(image, row[-1], noise, clamp, psf).astype(np.float32))
        monitor.report(k + 1, count, f"{k + 1}/{count} synthetic images rendered")
    return np.stack(images), values


def _summary(space, values: np.ndarray) -> dict:
    return {
        name: {
            "mean": float(values[:, i].mean()),
            "std": float(values[:, i].std()),
            "p05": float(np.percentile(values[:, i], 5)),
            "p95": float(np.percentile(values[:, i], 95)),
        }
        for i, name in enumerate(space.names)
    }


class _FID:
    """FID against the run's real patches (statistics cached in the run), and the real-vs-real
    floor: the FID between the two halves of the real patches."""

    def __init__(self, run: GanRun, real: np.ndarray, sha256: str, device: str):
        self.run, self.real, self.sha256, self.device = run, real, sha256, device
        self.floor: float | None = None

    def prepare(self, monitor: Monitor) -> None:
        from .fid import FIDError, InceptionFeatures, find_weights, frechet_distance, statistics

        try:
            find_weights()
        except FIDError as err:
            raise TrainingError(str(err)) from err
        features = None

        def real_features():
            nonlocal features
            if features is None:
                monitor.report(0, 0, f"Inception features of {len(self.real)} real patches")
                features = InceptionFeatures(self.device)(self.real, monitor=monitor)
            return features

        monitor.report(0, 0, "statistics of the real patches (cached in the run)")
        self.stats = self.run.real_fid_statistics(lambda: statistics(real_features()), self.sha256)
        self.floor = self.run.metrics().get("fid_floor")
        if self.floor is None and len(self.real) >= 4:
            half = real_features()[: len(self.real) // 2], real_features()[len(self.real) // 2 :]
            self.floor = float(frechet_distance(*statistics(half[0]), *statistics(half[1])))

    def __call__(self, images: np.ndarray, monitor: Monitor) -> float:
        from .fid import InceptionFeatures, frechet_distance, statistics

        features = InceptionFeatures(self.device)(images, monitor=monitor)
        return float(frechet_distance(*statistics(features), *self.stats))


def _save_epoch(run: GanRun, epoch, state, record, samples, synthetic, real) -> None:
    """Checkpoint and samples, then the record (it marks the epoch finished), then figures."""
    from .plots import save_epoch_figures

    run.save_checkpoint(epoch, state)
    run.save_samples(epoch, samples)
    metrics = run.record_epoch(record)
    save_epoch_figures(run, metrics, epoch, samples, synthetic, real)
