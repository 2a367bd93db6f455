"""DiffRenderGAN training (paper 5.2): generator FCN → differentiable render → noise, against a
PatchGAN discriminator, with FID and parameter histograms after every epoch.

Rendering uses deferred shading (:mod:`..render.shading`): each traced constellation is
re-shaded for ``reuse`` iterations, drawn at random from a pool of ``pool`` traced
constellations. Everything is stored in a :class:`~.run.GanRun`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..progress import Monitor, ensure
from .networks import build_discriminator, build_generator, normalise_phi
from .run import GanRun, TrainingError, breadth, load_real_patches


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


class _ConstellationPool:
    """Traced constellations held for re-shading; each serves ``reuse`` iterations."""

    def __init__(self, scene, phis, size: int, reuse: int, rng: np.random.Generator):
        self.scene, self.phis, self.reuse, self.rng = scene, phis, reuse, rng
        self.slots: list[list] = [[None, None, reuse] for _ in range(size)]  # index, cache, uses
        self.queue: list[int] = []

    def take(self, reference: dict[str, float]):
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
        return slot[0], slot[1]


def train_iter(
    run: str | Path | GanRun, epochs: int | None = None, monitor: Monitor | None = None
) -> Iterator[TrainingEvent]:
    """Train (or resume) ``run`` up to ``epochs`` (default: its settings), yielding progress.
    Resuming continues after the last usable checkpoint. Cancelling (``monitor``) raises
    :class:`~napari_diffrendergan.errors.Cancelled` between iterations or FID images: the
    current epoch is dropped, finished ones are kept."""
    import torch

    from .. import backend
    from ..render.sampling import mid_range_values
    from ..render.scene import VirtualScene
    from ..render.shading import shade_torch, trace

    monitor = ensure(monitor)
    run = run if isinstance(run, GanRun) else GanRun.open(run)
    settings = run.settings
    epochs = epochs or settings.epochs
    config = run.config
    phis = run.phi()
    real, _ = load_real_patches(run.patches)
    space = run.space
    resolved = backend.resolve_backend(settings.device)
    device = torch.device(resolved.torch_device)

    yield TrainingEvent("setup", 0, 0, 0, "building the scene")
    torch.manual_seed(settings.seed)
    generator = build_generator(config.meshes.count, len(space.names), settings.dropout).to(device)
    discriminator = build_discriminator().to(device)
    opt_g = torch.optim.Adam(generator.parameters(), settings.lr_generator, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(
        discriminator.parameters(), settings.lr_discriminator, betas=(0.5, 0.999)
    )
    rng = np.random.default_rng(settings.seed)
    last, state, notes = run.resume_point()
    for note in notes:
        yield TrainingEvent("note", last, 0, 0, note)
    if state is not None:
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_generator"])
        opt_d.load_state_dict(state["opt_discriminator"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
    start = last + 1
    if start > epochs:
        return

    scene = VirtualScene(config, device=settings.device)
    mid, _ = mid_range_values(config)
    phi_input = torch.from_numpy(normalise_phi(phis, config)).to(device)
    real_t = torch.from_numpy(real).to(device)
    iterations = len(phis)
    total = (epochs - start + 1) * iterations
    fid_count = settings.fid_images or len(real)

    yield TrainingEvent("setup", start, 0, total, "real-image FID statistics")
    fid_stats_real = _real_fid_statistics(run, real, resolved.torch_device, monitor)
    yield TrainingEvent("setup", start, 0, total, "tracing the FID constellations")
    fid_rng = np.random.default_rng(settings.seed + 1)
    fid_indices = fid_rng.choice(iterations, min(settings.fid_constellations, iterations), False)
    scene.set_bsdf(mid)
    fid_caches = []
    for index in fid_indices:
        monitor.check()
        scene.place(phis[index])
        fid_caches.append(trace(scene, seed=int(fid_rng.integers(2**31))))
    fid_phi = phi_input[torch.from_numpy(fid_indices)]
    pool = _ConstellationPool(scene, phis, settings.pool, settings.reuse, rng)
    reference = dict(mid)
    step = 0
    for epoch in range(start, epochs + 1):
        generator.train()
        losses_g, losses_d, started = [], [], time.perf_counter()
        order = rng.permutation(len(real))
        for it in range(iterations):
            monitor.check(f"cancelled in epoch {epoch}; finished epochs are kept")
            index, cache = pool.take(reference)
            unit = generator(phi_input[index : index + 1])[0]
            values = space.scale(unit)
            image = shade_torch(cache, space.bsdf_names, values[:-1].cpu()).to(device)
            fake = (image + values[-1] * torch.randn_like(image))[None, None]
            target = real_t[order[it % len(real)]][None, None]

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

            reference = dict(zip(space.bsdf_names, values[:-1].tolist(), strict=True))
            losses_g.append(loss_g.item())
            losses_d.append(loss_d.item())
            step += 1
            message = f"epoch {epoch}/{epochs}, iteration {it + 1}/{iterations}"
            monitor.report(step, total, message)
            yield TrainingEvent(
                "iteration",
                epoch,
                step,
                total,
                message,
                {"loss_g": losses_g[-1], "loss_d": losses_d[-1]},
            )
        seconds_per_iteration = (time.perf_counter() - started) / iterations
        yield TrainingEvent("setup", epoch, step, total, f"epoch {epoch}: FID and histograms")
        fid_started = time.perf_counter()
        synthetic = _synthetic_set(generator, space, fid_caches, fid_phi, fid_count, monitor)
        fid_value = _fid(synthetic, fid_stats_real, resolved.torch_device, monitor)
        fid_seconds = time.perf_counter() - fid_started
        unit_samples = _unit_samples(generator, phi_input, settings.histogram_samples, rng)
        record = {
            "epoch": epoch,
            "fid": fid_value,
            "loss_g": float(np.mean(losses_g)),
            "loss_d": float(np.mean(losses_d)),
            "seconds_per_iteration": seconds_per_iteration,
            "seconds_fid": fid_seconds,
            "breadth": breadth(unit_samples),
            "parameters": _summary(space, unit_samples),
        }
        samples = space.scale(unit_samples)
        _save_epoch(
            run,
            epoch,
            {
                "generator": generator.state_dict(),
                "discriminator": discriminator.state_dict(),
                "opt_generator": opt_g.state_dict(),
                "opt_discriminator": opt_d.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": rng.bit_generator.state,
                "epoch": epoch,
            },
            record,
            samples,
            synthetic,
            real,
        )
        yield TrainingEvent(
            "epoch",
            epoch,
            step,
            total,
            f"epoch {epoch}/{epochs}: FID {fid_value:.1f}",
            record,
            preview=synthetic[0],
            samples=samples,
        )


def train(run: str | Path | GanRun, epochs: int | None = None, monitor: Monitor | None = None):
    """Run :func:`train_iter` to the end; returns the run's metrics."""
    run = run if isinstance(run, GanRun) else GanRun.open(run)
    for _ in train_iter(run, epochs, monitor):
        pass
    return run.metrics()


def _synthetic_set(generator, space, caches, phi_input, count, monitor: Monitor) -> np.ndarray:
    """``count`` synthetic images shaded from the FID constellations with fresh parameter
    draws (dropout active), noise included."""
    import torch

    rng = np.random.default_rng(int(torch.randint(2**31, ())))
    images = []
    with torch.no_grad():
        for k in range(count):
            monitor.check("cancelled during the FID; finished epochs are kept")
            cache = caches[k % len(caches)]
            values = space.scale(generator(phi_input[k % len(caches)][None])[0]).cpu().numpy()
            bsdf, sigma = space.split(values)
            cache.scene.set_bsdf(bsdf)
            image = cache.render()
            images.append(image + rng.normal(0, sigma, image.shape).astype(np.float32))
    return np.stack(images)


def _unit_samples(generator, phi_input, count, rng) -> np.ndarray:
    import torch

    with torch.no_grad():
        chosen = torch.from_numpy(rng.integers(len(phi_input), size=count))
        return generator(phi_input[chosen.to(phi_input.device)]).cpu().numpy()


def _summary(space, unit_samples: np.ndarray) -> dict:
    values = space.scale(unit_samples)
    return {
        name: {
            "mean": float(values[:, i].mean()),
            "std": float(values[:, i].std()),
            "p05": float(np.percentile(values[:, i], 5)),
            "p95": float(np.percentile(values[:, i], 95)),
        }
        for i, name in enumerate(space.names)
    }


def _real_fid_statistics(run: GanRun, real: np.ndarray, device: str, monitor: Monitor):
    from .fid import FIDError, InceptionFeatures, find_weights, statistics

    try:
        find_weights()
    except FIDError as err:
        raise TrainingError(str(err)) from err
    return run.real_fid_statistics(
        lambda: statistics(InceptionFeatures(device)(real, monitor=monitor))
    )


def _fid(images: np.ndarray, real_stats, device: str, monitor: Monitor) -> float:
    from .fid import InceptionFeatures, frechet_distance, statistics

    features = InceptionFeatures(device)(images, monitor=monitor)  # clips to [0, 1]
    return float(frechet_distance(*statistics(features), *real_stats))


def _save_epoch(run: GanRun, epoch, state, record, samples, synthetic, real) -> None:
    """Checkpoint and samples, then the record (it marks the epoch finished), then figures."""
    from .plots import save_epoch_figures

    run.save_checkpoint(epoch, state)
    run.save_samples(epoch, samples)
    metrics = run.record_epoch(record)
    save_epoch_figures(run, metrics, epoch, samples, synthetic, real)
