"""DiffRenderGAN training (paper 5.2): generator FCN → differentiable render → noise, against a
PatchGAN discriminator, with FID and parameter histograms after every epoch.

Geometry is fixed per constellation φ, so each is traced once (:mod:`..render.shading`). When
the BSDFs are polynomials of the learned parameters (the presets: measured exact), a trace is
reduced to a few basis images and every render, gradient and FID image costs a handful of
image additions (:class:`_BasisRenders`); otherwise the cached samples are re-shaded
(:class:`_SampleRenders`). Both paths offer the same three calls: the constellation an
iteration trains on, its differentiable training image and an FID image.

:class:`Trainer` runs the paper's loop in phases (resume, set-up, step, evaluate, checkpoint)
and stops early when the FID has stopped improving (:func:`stop_reason`).

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
from ..render.sampling import RenderValues
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

    def __init__(self, space, seeds, shape, polarity: str):
        self.count = len(space.film_names)
        self.seeds, self.shape, self.polarity, self.fields = seeds, shape, polarity, {}

    def _fields(self, index: int) -> np.ndarray:
        from ..render.film import film_fields

        if index not in self.fields:
            self.fields[index] = film_fields(self.shape, int(self.seeds[index]), self.polarity)
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
    """The basis path: every constellation of Φ traced once and reduced to basis images (a few
    MB each); training and FID images are a handful of image additions."""

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

    def train_constellation(self, suggested: int) -> int:
        """The constellation the next iteration trains on: the one suggested."""
        return suggested

    def train_image(self, index: int, values: RenderValues):
        """Torch image of constellation ``index`` with film, differentiable in ``values``."""
        basis = self.images[index]
        image = basis.render_torch(values.material)
        return self.film.torch(image, basis.coverage, index, values.film)

    def eval_image(self, index: int, values: RenderValues) -> np.ndarray:
        """Numpy image of constellation ``index`` with film (the FID set)."""
        basis = self.images[index]
        return self.film.numpy(basis.render(values.material), basis.coverage, index, values.film)


SAMPLE_POOL = 8  # per-sample path: traced constellations held in memory
SAMPLE_REUSE = 8  # per-sample path: iterations each traced constellation serves


class _SampleRenders:
    """The fallback path (BSDFs not polynomial in the learned parameters): cached samples
    re-shaded for every image. Training draws from a pool of :data:`SAMPLE_POOL` traced
    constellations, each serving :data:`SAMPLE_REUSE` iterations before a fresh one is traced
    (a trace of each of Φ held at once would not fit in memory); the FID set traces each of
    its constellations when it renders it, so it spans as many geometries as the basis path's."""

    exact = False

    def __init__(self, scene, phis, space, seeds, film: _Film, rng):
        self.scene, self.phis, self.names, self.seeds = scene, phis, space.bsdf_names, seeds
        self.film, self.rng = film, rng
        self.slots = [_Slot() for _ in range(SAMPLE_POOL)]
        self.queue: list[int] = []
        self.current = None
        mid = space.scale(np.full(len(space.names), 0.5, np.float32))
        self.reference = dict(zip(self.names, mid[: len(self.names)], strict=True))

    def train_constellation(self, suggested: int) -> int:
        """A pool slot's constellation (``suggested`` is not used: the pool decides), traced
        afresh, with the BSDF values of the last iteration, once its slot has served
        :data:`SAMPLE_REUSE` iterations."""
        from ..render.shading import trace

        slot = self.slots[self.rng.integers(len(self.slots))]
        if slot.served >= SAMPLE_REUSE:
            if not self.queue:
                self.queue = list(self.rng.permutation(len(self.phis)))
            slot.index = int(self.queue.pop())
            slot.cache = None  # free the old cache before tracing the new one
            self.scene.place(self.phis[slot.index])
            self.scene.set_bsdf(self.reference)
            slot.cache, slot.served = trace(self.scene, seed=int(self.rng.integers(2**31))), 0
        slot.served += 1
        self.current = slot.cache
        return slot.index

    def train_image(self, index: int, values: RenderValues):
        from ..render.shading import shade_torch

        self.reference = dict(zip(self.names, values.material.tolist(), strict=True))
        image = shade_torch(self.current, self.names, values.material)
        return self.film.torch(image, self.current.coverage(), index, values.film)

    def eval_image(self, index: int, values: RenderValues) -> np.ndarray:
        """Constellation ``index`` traced with its render seed and shaded with ``values``."""
        from ..render.shading import trace

        self.scene.place(self.phis[index])
        self.scene.set_bsdf(values.bsdf())
        cache = trace(self.scene, seed=int(self.seeds[index]))
        return self.film.numpy(cache.render(), cache.coverage(), index, values.film)


@dataclass
class _Slot:
    """A place in the per-sample path's pool: its constellation, trace and iterations served
    (a new slot is traced at its first use)."""

    index: int = -1
    cache: object = None
    served: int = SAMPLE_REUSE


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


PATIENCE = 5  # epochs without a lower FID after which training stops (0: never)


def train_iter(
    run: str | Path | GanRun,
    epochs: int | None = None,
    monitor: Monitor | None = None,
    cache: SetupCache | None = None,
    patience: int = PATIENCE,
) -> Iterator[TrainingEvent]:
    """Train (or resume) ``run`` up to ``epochs`` (default: its settings), yielding progress.
    Resuming continues after the last usable checkpoint; with the ``cache`` of an earlier
    training of the run in this process, its set-up is not done again. Training stops early
    when the FID has not improved for ``patience`` epochs (0: never; :func:`stop_reason`);
    the last event (``"stopped"``) and the run's metrics say why it stopped. Cancelling
    (``monitor``) raises :class:`~napari_diffrendergan.errors.Cancelled` between iterations
    or FID images: the current epoch is dropped, finished ones are kept. The run folder is
    locked meanwhile (:class:`~napari_diffrendergan.io.FolderLock`), and a run whose patch
    set changed is refused (:meth:`GanRun.real_patches`). Set-up reports through
    :func:`setup_stage`; training reports iterations done of all, with the time left."""
    run = run if isinstance(run, GanRun) else GanRun.open(run)
    with FolderLock(run.folder, "GAN training"):
        trainer = Trainer(run, epochs, ensure(monitor), cache, patience)
        yield from trainer.events()


def stop_reason(records: list[dict], start: int, patience: int) -> str | None:
    """Why training should stop after the last of ``records`` (None: go on): the lowest FID
    of the trained epochs has not fallen for ``patience`` epochs (0: never stop early). The
    count starts at that epoch, or where this training call began (``start``), whichever is
    later, so a resumed run trains at least ``patience`` epochs before it stops again."""
    scored = [r for r in records if r["epoch"] > 0 and np.isfinite(r.get("fid") or np.nan)]
    trained = [r["epoch"] for r in records if r["epoch"] > 0]
    if not patience or not scored:
        return None
    best = min(scored, key=lambda r: r["fid"])["epoch"]
    if trained[-1] - max(best, start - 1) < patience:
        return None
    return f"no FID improvement for {trained[-1] - best} epochs since epoch {best}"


ALL_DONE = "all epochs done"


@dataclass
class _EpochStats:
    """What an epoch's iterations leave for its end: mean losses, speed, the time-left text."""

    loss_g: float
    loss_d: float
    seconds_per_iteration: float
    left: str


class Trainer:
    """One training call of a run, in the phases of the paper's loop: :meth:`resume` (networks
    from the last checkpoint), :meth:`set_up` (Φ traced, real FID statistics), :meth:`step`
    (one discriminator and one generator update), :meth:`evaluate` (FID set, FID, parameter
    statistics), :meth:`checkpoint` (everything a resume needs, then the record and figures).
    :meth:`events` runs them and yields what happens."""

    def __init__(
        self, run: GanRun, epochs: int | None, monitor: Monitor, cache=None, patience=PATIENCE
    ):
        import torch

        from .. import backend

        self.run, self.monitor, self.cache, self.patience = run, monitor, cache, patience
        self.settings = settings = run.settings
        self.epochs = epochs or settings.epochs
        self.config = run.config
        self.clamp = self.config.learning.clamp
        self.phis = run.phi()
        self.real, self.real_sha256 = run.real_patches()
        self.space = run.space
        self.resolved = backend.resolve_backend(settings.device)
        self.device = torch.device(self.resolved.torch_device)
        self._build_networks()
        self.rng = np.random.default_rng(settings.seed)
        self.start = 1
        self.step_count = 0
        self.renders = self.fid = None

    def _build_networks(self) -> None:
        """Generator, its weight average, discriminator and their optimisers, seeded."""
        import torch

        settings = self.settings
        torch.manual_seed(settings.seed)
        outputs = len(self.space.names)
        generator = build_generator(self.config.meshes.count, outputs, settings.dropout)
        self.generator = generator.to(self.device)
        self.average = copy.deepcopy(self.generator).requires_grad_(False)  # EMA: evaluated
        self.discriminator = build_discriminator().to(self.device)
        betas = (0.5, 0.999)
        self.opt_g = torch.optim.Adam(
            self.generator.parameters(), settings.lr_generator, betas=betas
        )
        self.opt_d = torch.optim.Adam(
            self.discriminator.parameters(), settings.lr_discriminator, betas=betas
        )

    # --- the loop -----------------------------------------------------------------------------

    def events(self) -> Iterator[TrainingEvent]:
        """Resume, set up, evaluate the untrained generator once, then train epoch by epoch
        until all are done or the FID stops improving; ends with a ``"stopped"`` event."""
        from ..errors import Cancelled

        yield from self.resume()
        if self.start > self.epochs:
            return
        try:
            yield from self.set_up()
            if self.start == 1 and not any(e["epoch"] == 0 for e in self.run.metrics()["epochs"]):
                yield from self.evaluate_untrained()
            reason = yield from self.train_epochs()
        except (Cancelled, KeyboardInterrupt):
            done = self.run.finished_epochs()
            self.run.record_stop(f"cancelled in epoch {(done or [0])[-1] + 1}")
            raise
        self.run.record_stop(reason)
        epoch = self.run.finished_epochs()[-1]
        yield TrainingEvent("stopped", epoch, self.step_count, self.total, reason, seconds_left=0.0)

    def train_epochs(self) -> Iterator[TrainingEvent]:
        """Epochs from :attr:`start` on; returns why they stopped."""
        self.eta = _Eta.from_records(self.run.metrics()["epochs"])
        left = self.eta.text(self.total, self.epochs - self.start + 1)
        self.monitor.report(0, self.total, f"training: epoch {self.start}/{self.epochs}{left}")
        for epoch in range(self.start, self.epochs + 1):
            stats = yield from self.train_epoch(epoch)
            yield from self.finish_epoch(epoch, stats)
            reason = stop_reason(self.run.metrics()["epochs"], self.start, self.patience)
            if reason:
                self.monitor.report(self.total, self.total, f"stopped: {reason}")
                return reason
        return ALL_DONE

    # --- resume -------------------------------------------------------------------------------

    def resume(self) -> Iterator[TrainingEvent]:
        """Networks, optimisers and random states from the last usable checkpoint (none: as
        built); notes on what the user should know (damaged checkpoints, small patches,
        settings of an older version that are ignored)."""
        import torch

        last, state, notes = self.run.resume_point()
        width = self.config.scene.width
        if width < SMALL_PATCH:
            notes.append(
                f"patches of {width} px hold only a particle or two at this pixel scale: "
                "the GAN and the synthetic data see little of how particles touch (the paper: "
                "256 px)"
            )
        notes.extend(self.run.ignored_settings())
        for note in notes:
            yield TrainingEvent("note", last, 0, 0, note)
        if state is not None:
            run = self.run
            run.restore(self.generator, state["generator"], last)
            run.restore(self.average, state.get("average", state["generator"]), last)
            run.restore(self.discriminator, state["discriminator"], last)
            run.restore(self.opt_g, state["opt_generator"], last)
            run.restore(self.opt_d, state["opt_discriminator"], last)
            torch.set_rng_state(state["torch_rng"])
            self.rng.bit_generator.state = state["numpy_rng"]
        self.start = last + 1

    # --- set-up -------------------------------------------------------------------------------

    def set_up(self) -> Iterator[TrainingEvent]:
        """Set-up stages 1-3 (scene, Φ traced, real FID statistics), each announced by an
        event, from the ``cache`` when it holds this run's set-up; then the tensors the
        iterations use."""
        import torch

        self.renders, self.fid = yield from self._renders_and_fid()
        self.phi_input = torch.from_numpy(normalise_phi(self.phis, self.config)).to(self.device)
        self.real_t = torch.from_numpy(self.real).to(self.device)
        self.iterations = len(self.phis)
        self.total = (self.epochs - self.start + 1) * self.iterations
        self.fid_count = self.settings.fid_images or len(self.real)

    def _renders_and_fid(self):
        from ..render.scene import VirtualScene
        from ..render.shading import find_shading_basis

        run, phis, start, cache = self.run, self.phis, self.start, self.cache
        key = _setup_key(run, phis, self.real_sha256, self.resolved)
        if cache is not None and cache.key == key:
            message = "reusing the set-up of the last training of this run: nothing traced again"
            self.monitor.report(1, 1, message)
            yield TrainingEvent("setup", start, 0, 0, message)
            return cache.renders, cache.fid
        settings, space, config = self.settings, self.space, self.config
        stages = [setup_stage(self.monitor, index) for index in range(3)]
        yield TrainingEvent("setup", start, 0, 0, SETUP_STAGES[0])
        stages[0].report(0, 0, "Mitsuba scene and shading basis")
        scene = VirtualScene(config, device=settings.device)
        basis = find_shading_basis(scene, space.bsdf_names, space.limits())
        seeds = _trace_seeds(settings, len(phis))
        film = _Film(space, seeds, (config.scene.height, config.scene.width), config.polarity)
        yield TrainingEvent("setup", start, 0, 0, SETUP_STAGES[1])
        if basis is not None:
            renders = _BasisRenders(scene, phis, basis, seeds, film, stages[1])
        else:
            renders = _SampleRenders(scene, phis, space, seeds, film, self.rng)
            stages[1].report(1, 1, "per-sample shading: constellations are traced when used")
        yield TrainingEvent("setup", start, 0, 0, SETUP_STAGES[2])
        fid = _FID(run, self.real, self.real_sha256, self.resolved.torch_device)
        fid.prepare(stages[2])
        if cache is not None and renders.exact:
            cache.key, cache.renders, cache.fid = key, renders, fid
        return renders, fid

    # --- one iteration ------------------------------------------------------------------------

    def step(self, suggested: int, real_index: int) -> tuple[float, float]:
        """One iteration: a fake of the constellation the renders choose (``suggested`` on
        the basis path), real patch ``real_index`` (augmented), one discriminator and one
        generator update (LSGAN), the weight average; returns the losses (G, D)."""
        import torch

        fake = self.fake(self.renders.train_constellation(suggested))
        target = self.real_target(real_index)
        self.opt_d.zero_grad(set_to_none=True)
        out = self.discriminator(torch.cat([target, fake.detach()]))
        loss_d = 0.5 * ((out[0] - 1) ** 2).mean() + 0.5 * (out[1] ** 2).mean()
        loss_d.backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        self.discriminator.requires_grad_(False)
        loss_g = ((self.discriminator(fake) - 1) ** 2).mean()
        loss_g.backward()
        self.discriminator.requires_grad_(True)
        self.opt_g.step()
        with torch.no_grad():
            pairs = zip(self.average.parameters(), self.generator.parameters(), strict=True)
            for mean, weight in pairs:
                mean.lerp_(weight, 1 - self.settings.average)
        return loss_g.item(), loss_d.item()

    def fake(self, index: int):
        """(1, 1, H, W) synthetic image of constellation ``index``: generator, render, film,
        detector (blur, clamp, noise, clamp), differentiable in the generator's weights."""
        import torch

        values = self.space.scale(self.generator(self.phi_input[index : index + 1])[0])
        image = self.renders.train_image(index, self.space.values(values.cpu()))
        image = image.to(self.device)
        fake = self.space.values(values).detector(image, torch.randn_like(image), self.clamp)
        return fake[None, None]

    def real_target(self, index: int):
        """(1, 1, H, W) real patch ``index``, flipped/rotated at random when augmenting."""
        target = self.real_t[index]
        if self.settings.augment:
            target = _augment(target, int(self.rng.integers(8)))
        return target[None, None]

    # --- epochs -------------------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> Iterator[TrainingEvent]:
        """One iteration per constellation, real patches and constellations in a fresh
        random order; yields an event per iteration, returns the epoch's statistics."""
        self.generator.train()
        losses_g, losses_d, started = [], [], time.perf_counter()
        order = self.rng.permutation(len(self.real))
        constellations = self.rng.permutation(self.iterations)
        iterations, total, epochs = self.iterations, self.total, self.epochs
        fids_left = epochs - epoch + 1  # this epoch's FID still to come
        for it in range(iterations):
            self.monitor.check(f"cancelled in epoch {epoch}; finished epochs are kept")
            loss_g, loss_d = self.step(int(constellations[it]), order[it % len(self.real)])
            losses_g.append(loss_g)
            losses_d.append(loss_d)
            self.step_count += 1
            self.eta.per_iteration = (time.perf_counter() - started) / (it + 1)
            left = self.eta.text(total - self.step_count, fids_left)
            message = f"epoch {epoch}/{epochs}, iteration {it + 1}/{iterations}{left}"
            self.monitor.report(self.step_count, total, message)
            yield TrainingEvent(
                "iteration",
                epoch,
                self.step_count,
                total,
                message,
                {"loss_g": loss_g, "loss_d": loss_d},
                seconds_left=self.eta.seconds(total - self.step_count, fids_left),
            )
        seconds = (time.perf_counter() - started) / iterations
        return _EpochStats(float(np.mean(losses_g)), float(np.mean(losses_d)), seconds, left)

    def finish_epoch(self, epoch: int, stats: _EpochStats) -> Iterator[TrainingEvent]:
        """The epoch's evaluation and checkpoint, then its event."""
        message = f"epoch {epoch}/{self.epochs}: FID and histograms{stats.left}"
        self.monitor.report(self.step_count, self.total, message)
        yield TrainingEvent("setup", epoch, self.step_count, self.total, message)
        record, synthetic, values = self.evaluate(epoch, self.monitor.silent())
        self.eta.per_fid = record["seconds_fid"]
        record.update(
            loss_g=stats.loss_g,
            loss_d=stats.loss_d,
            seconds_per_iteration=stats.seconds_per_iteration,
        )
        self.checkpoint(epoch, record, values, synthetic)
        steps_left, fids_left = self.total - self.step_count, self.epochs - epoch
        yield TrainingEvent(
            "epoch",
            epoch,
            self.step_count,
            self.total,
            f"epoch {epoch}/{self.epochs}: FID {record['fid']:.1f}"
            + self.eta.text(steps_left, fids_left),
            record,
            preview=synthetic[0],
            samples=values,
            seconds_left=self.eta.seconds(steps_left, fids_left),
        )

    def evaluate(self, epoch: int, progress: Monitor) -> tuple[dict, np.ndarray, np.ndarray]:
        """FID, parameter statistics and the FID set of the weight average as it is now."""
        started = time.perf_counter()
        synthetic, values = _synthetic_set(
            self.average,
            self.space,
            self.renders,
            self.phi_input,
            self.fid_count,
            self.clamp,
            progress,
        )
        record = {
            "epoch": epoch,
            "fid": self.fid(synthetic, progress),
            "seconds_fid": time.perf_counter() - started,
            "breadth": breadth(self.space.unscale(values)),
            "parameters": _summary(self.space, values),
        }
        return record, synthetic, values

    def evaluate_untrained(self) -> Iterator[TrainingEvent]:
        """Set-up stage 4: "epoch 0", the FID of the untrained generator, with the floor."""
        yield TrainingEvent("setup", 0, 0, self.total, SETUP_STAGES[3])
        record, synthetic, values = self.evaluate(0, setup_stage(self.monitor, 3))
        untrained = {"generator": self.generator.state_dict(), "discriminator": {}, "epoch": 0}
        self.run.save_checkpoint(0, untrained)
        self.run.record_epoch(record, fid_floor=self.fid.floor, exact_renders=self.renders.exact)
        yield TrainingEvent(
            "epoch",
            0,
            0,
            self.total,
            f"epoch 0 (untrained generator): FID {record['fid']:.1f}",
            record,
            preview=synthetic[0],
            samples=values,
        )

    def checkpoint(self, epoch: int, record: dict, values, synthetic) -> None:
        """Everything a resume needs (networks, optimisers, random states), the samples,
        then the record (it marks the epoch finished), then the figures."""
        import torch

        from .plots import save_epoch_figures

        state = {
            "generator": self.generator.state_dict(),
            "average": self.average.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_generator": self.opt_g.state_dict(),
            "opt_discriminator": self.opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "epoch": epoch,
        }
        self.run.save_checkpoint(epoch, state)
        self.run.save_samples(epoch, values)
        metrics = self.run.record_epoch(record)
        save_epoch_figures(self.run, metrics, epoch, values, synthetic, self.real)


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


def train(
    run: str | Path | GanRun,
    epochs: int | None = None,
    monitor: Monitor | None = None,
    patience: int = PATIENCE,
):
    """Run :func:`train_iter` to the end; returns the run's metrics."""
    run = run if isinstance(run, GanRun) else GanRun.open(run)
    for _ in train_iter(run, epochs, monitor, patience=patience):
        pass
    return run.metrics()


def _synthetic_set(generator, space, renders, phi_input, count, clamp, monitor):
    """The FID set: ``count`` synthetic images, image k of constellation k (distinct while
    there are as many constellations), ``generator`` (the weight average) in eval mode, noise
    and clamping as in training; and the physical parameter values they were made with."""
    import torch

    rng = np.random.default_rng(int(torch.randint(2**31, ())))
    generator.eval()
    with torch.no_grad():
        chosen = torch.arange(count) % len(phi_input)
        values = space.scale(generator(phi_input[chosen]).cpu().numpy())
    generator.train()
    images = []
    for k in range(count):
        monitor.check("cancelled during the FID; finished epochs are kept")
        row = space.values(values[k])
        image = renders.eval_image(int(chosen[k]), row)
        noise = rng.normal(0, 1, image.shape).astype(np.float32)
        images.append(row.detector(image, noise, clamp).astype(np.float32))
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
