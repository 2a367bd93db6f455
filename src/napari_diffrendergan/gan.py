"""DiffRenderGAN training (paper 5.2): generator FCN → differentiable render → noise, against a
PatchGAN discriminator, with FID and parameter histograms after every epoch.

A *run folder* holds everything needed to reproduce, resume and use a training:
``config.json`` (material), ``training.json`` (settings, seed, patch set, backend), ``phi.npz``
(Φ), ``checkpoints/epoch_NNN.pt`` (written atomically after every epoch), ``metrics.json``,
``samples/epoch_NNN.npy`` (parameter samples), ``fid.png``, ``histograms/epoch_NNN.png`` and
``previews/epoch_NNN.png``.

Rendering uses deferred shading (:mod:`.shading`): each traced constellation is re-shaded for
``reuse`` iterations, drawn at random from a pool of ``pool`` traced constellations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import MaterialConfig
from .io import atomic_path, write_json_atomic

NOISE = "noise"
BEST_CANDIDATES = 5


class TrainingError(RuntimeError):
    """A training cannot start, resume or be loaded; the message says why."""


@dataclass
class TrainingSettings:
    """Everything about a training that is not the material configuration."""

    epochs: int = 50
    iterations_per_epoch: int = 0  # 0: one per real particle patch
    seed: int = 0
    lr_generator: float = 2e-4
    lr_discriminator: float = 1e-4
    dropout: float = 0.5
    reuse: int = 8  # iterations each traced constellation is used for
    pool: int = 8  # traced constellations held in memory
    fid_constellations: int = 8  # traced once; the per-epoch FID set is shaded from them
    fid_images: int = 0  # 0: as many as real patches
    histogram_samples: int = 1000
    device: str = "auto"

    def problems(self) -> list[str]:
        found = []
        for name in ("epochs", "reuse", "pool", "fid_constellations", "histogram_samples"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                found.append(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("iterations_per_epoch", "fid_images"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                found.append(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            found.append(f"dropout must lie in [0, 1), got {self.dropout!r}")
        return found


# --- networks ------------------------------------------------------------------------------


def build_generator(n_meshes: int, n_outputs: int, dropout: float, hidden: int = 128):
    """The paper's FCN: 4 × [Dropout, Linear(128), ReLU] + Linear + Sigmoid, weight-normalised,
    Xavier-initialised. Input: one flattened constellation (n × 4, normalised)."""
    import torch.nn as nn
    from torch.nn.utils.parametrizations import weight_norm

    def linear(n_in, n_out):
        layer = nn.Linear(n_in, n_out)
        nn.init.xavier_normal_(layer.weight)
        nn.init.zeros_(layer.bias)
        return weight_norm(layer)

    layers, width = [], n_meshes * 4
    for _ in range(4):
        layers += [nn.Dropout(dropout), linear(width, hidden), nn.ReLU()]
        width = hidden
    layers += [linear(hidden, n_outputs), nn.Sigmoid()]
    return nn.Sequential(*layers)


def build_discriminator(channels: int = 64):
    """CycleGAN's 3-layer PatchGAN (70×70 receptive field), instance norm, Xavier init."""
    import torch.nn as nn

    def block(c_in, c_out, stride, norm=True):
        conv = nn.Conv2d(c_in, c_out, 4, stride, 1)
        nn.init.xavier_normal_(conv.weight)
        nn.init.zeros_(conv.bias)
        return [conv] + ([nn.InstanceNorm2d(c_out)] if norm else []) + [nn.LeakyReLU(0.2)]

    layers = block(1, channels, 2, norm=False)
    layers += block(channels, channels * 2, 2) + block(channels * 2, channels * 4, 2)
    layers += block(channels * 4, channels * 8, 1)
    head = nn.Conv2d(channels * 8, 1, 4, 1, 1)
    nn.init.xavier_normal_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


@dataclass
class ParameterSpace:
    """Names and limits of the generator's outputs: learned BSDF parameters, then noise σ."""

    names: list[str]
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_config(cls, config: MaterialConfig) -> ParameterSpace:
        learning = config.learning
        names = learning.learned()
        limits = [learning.limits_for(*name.split(".", 1)) for name in names]
        limits.append(tuple(learning.noise_limits))
        low, high = (np.array(v, dtype=np.float32) for v in zip(*limits, strict=True))
        return cls(names + [NOISE], low, high)

    def scale(self, unit):
        """Generator outputs in [0, 1] → physical values (numpy or torch, last axis)."""
        if isinstance(unit, np.ndarray):
            return self.low + unit * (self.high - self.low)
        import torch

        low, high = (torch.as_tensor(v, device=unit.device) for v in (self.low, self.high))
        return low + unit * (high - low)

    def unscale(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float32) - self.low) / (self.high - self.low)


def normalise_phi(phi: np.ndarray, config: MaterialConfig) -> np.ndarray:
    """Constellations (…, n, 4) flattened for the generator: positions in half field widths,
    scales as they are."""
    half = config.scene.field_width / 2
    scaled = np.asarray(phi, np.float32) / np.array([half, half, half, 1.0], np.float32)
    return scaled.reshape(*scaled.shape[:-2], -1)


def breadth(unit_samples: np.ndarray) -> float:
    """How broad a learned parameter distribution is: the mean over parameters of the
    standard deviation of the generator's [0, 1] outputs (independent of the limits)."""
    return float(np.mean(np.std(unit_samples, axis=0)))


def choose_best_epoch(epochs: list[dict], candidates: int = BEST_CANDIDATES) -> int | None:
    """The paper's rule: among the ``candidates`` epochs with the lowest FID, the one with the
    broadest learned parameter distribution (:func:`breadth`)."""
    scored = [e for e in epochs if e.get("fid") is not None and np.isfinite(e["fid"])]
    if not scored:
        return None
    lowest = sorted(scored, key=lambda e: e["fid"])[:candidates]
    return max(lowest, key=lambda e: e["breadth"])["epoch"]


# --- real patches -------------------------------------------------------------------------


def load_real_patches(folder: str | Path) -> tuple[np.ndarray, dict]:
    """Particle patches of a patch set as (N, H, W) float32 in [0, 1], and the set's metadata.

    Intensities are divided by the full range of the source type, inferred from the largest
    value (1 for float data in [0, 1], else 255 or 65535).
    """
    import tifffile

    from .patches import load_patch_set

    patches, meta = load_patch_set(folder)
    chosen = [p for p in patches if p.role == "particle"]
    if not chosen:
        raise TrainingError(f"{folder}: the patch set holds no particle patches to train on")
    sizes = {p.size for p in chosen}
    if len(sizes) != 1:
        raise TrainingError(f"{folder}: particle patches differ in size ({sorted(sizes)})")
    images = np.stack([tifffile.imread(Path(folder) / p.file) for p in chosen]).astype(np.float32)
    if not np.isfinite(images).all():
        raise TrainingError(f"{folder}: patches contain NaN or infinite values")
    top = float(images.max())
    full_range = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0
    meta = {**meta, "intensity_range": full_range, "particle_patches": len(chosen)}
    return np.clip(images / full_range, 0, 1), meta


def fit_scene_to_patches(config: MaterialConfig, size: int) -> MaterialConfig:
    """Render at the patch size, keeping the preset's pixel scale (mesh units per pixel) and
    particle density (mesh count scaled with the image area)."""
    scene = config.scene
    if scene.width != size or scene.height != size:
        ratio = size / scene.width
        scene.field_width *= ratio
        config.meshes.count = max(1, round(config.meshes.count * ratio * size / scene.height))
        scene.width = scene.height = size
    return config.validate()


# --- the run folder -----------------------------------------------------------------------


def _checkpoint_path(run: Path, epoch: int) -> Path:
    return run / "checkpoints" / f"epoch_{epoch:03d}.pt"


def read_metrics(run: str | Path) -> dict:
    path = Path(run) / "metrics.json"
    if not path.is_file():
        return {"epochs": [], "best_epoch": None}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise TrainingError(f"{path} is corrupt: {err}") from err


def set_best_epoch(run: str | Path, epoch: int | None) -> int | None:
    """Override the automatic best epoch (``None`` returns to the automatic choice)."""
    run = Path(run)
    metrics = read_metrics(run)
    done = [e["epoch"] for e in metrics["epochs"]]
    if epoch is not None and epoch not in done:
        raise TrainingError(f"{run}: epoch {epoch} is not finished (finished: {done})")
    metrics["best_epoch_override"] = epoch
    metrics["best_epoch"] = epoch or choose_best_epoch(metrics["epochs"])
    write_json_atomic(run / "metrics.json", metrics)
    return metrics["best_epoch"]


@dataclass
class TrainedGenerator:
    """A generator loaded from a run folder at one epoch, ready to sample parameters."""

    config: MaterialConfig
    space: ParameterSpace
    network: object
    epoch: int
    run: Path

    def sample(self, phi: np.ndarray, rng_seed: int = 0) -> np.ndarray:
        """Physical parameter values (m, P) for constellations ``phi`` (m, n, 4); dropout stays
        active, as during training, so repeated draws differ."""
        import torch

        torch.manual_seed(rng_seed)
        self.network.train()
        with torch.no_grad():
            unit = self.network(torch.from_numpy(normalise_phi(phi, self.config))).numpy()
        return self.space.scale(unit)


def load_generator(run: str | Path, epoch: int | str = "best") -> TrainedGenerator:
    """The generator of ``run`` at ``epoch`` (a number, ``best`` or ``last``)."""

    run = Path(run)
    if not (run / "training.json").is_file() or not (run / "config.json").is_file():
        raise TrainingError(f"{run} is not a DiffRenderGAN run folder (no training.json)")
    config = MaterialConfig.load(run / "config.json")
    settings = TrainingSettings(**json.loads((run / "training.json").read_text())["settings"])
    metrics = read_metrics(run)
    done = [e["epoch"] for e in metrics["epochs"]]
    if not done:
        raise TrainingError(f"{run}: no finished epoch yet")
    if epoch == "best":
        epoch = metrics.get("best_epoch") or done[-1]
    elif epoch == "last":
        epoch = done[-1]
    path = _checkpoint_path(run, int(epoch))
    if not path.is_file():
        raise TrainingError(f"{run}: no checkpoint for epoch {epoch} (finished: {done})")
    state = _load_checkpoint(path)
    space = ParameterSpace.from_config(config)
    network = build_generator(config.meshes.count, len(space.names), settings.dropout)
    network.load_state_dict(state["generator"])
    return TrainedGenerator(config, space, network, int(epoch), run)


def _load_checkpoint(path: Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not {"generator", "discriminator", "epoch"} <= set(state):
            raise KeyError("generator/discriminator/epoch")
    except Exception as err:  # torch raises many types for damaged files
        raise TrainingError(f"checkpoint {path} is damaged or not a checkpoint ({err})") from err
    return state


# --- training -----------------------------------------------------------------------------


@dataclass
class TrainingEvent:
    """What :func:`train_iter` yields: one per iteration, and one at the end of each epoch."""

    kind: str  # "setup", "iteration" or "epoch"
    epoch: int
    step: int  # iterations done in this run (all epochs)
    total: int  # iterations of the whole training
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
        from .shading import trace

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


def prepare_run(
    run: str | Path,
    patches: str | Path,
    config: MaterialConfig,
    settings: TrainingSettings,
) -> Path:
    """Create a run folder (config, settings, seed, Φ); refuses a folder holding another run."""
    from . import __version__
    from .placement import save_transformation_tensor, transformation_tensor

    problems = settings.problems()
    if problems:
        raise TrainingError("Invalid training settings:\n  - " + "\n  - ".join(problems))
    run = Path(run)
    if (run / "training.json").exists():
        raise TrainingError(f"{run} already holds a run: resume it or choose another folder")
    real, meta = load_real_patches(patches)
    config = fit_scene_to_patches(config, real.shape[-1])
    iterations = settings.iterations_per_epoch or len(real)
    run.mkdir(parents=True, exist_ok=True)
    save_transformation_tensor(
        run / "phi.npz", transformation_tensor(config, iterations, settings.seed), settings.seed
    )
    config.save(run / "config.json")
    write_json_atomic(
        run / "training.json",
        {
            "settings": asdict(settings),
            "patches": str(Path(patches).resolve()),
            "real_patches": len(real),
            "intensity_range": meta["intensity_range"],
            "pixel_size_nm": meta.get("pixel_size_nm"),
            "version": __version__,
        },
    )
    return run


def train_iter(
    run: str | Path, epochs: int | None = None, cancelled: Callable[[], bool] | None = None
) -> Iterator[TrainingEvent]:
    """Train (or resume) the run in ``run`` up to ``epochs`` (default: its settings), yielding
    progress. Resuming continues after the last checkpoint; ``cancelled()`` is checked between
    iterations and stops cleanly (the current epoch is lost, earlier ones are kept)."""
    import torch

    from . import backend
    from .placement import load_transformation_tensor
    from .scene import VirtualScene, mid_range_values
    from .shading import shade_torch, trace

    run = Path(run)
    if not (run / "training.json").is_file():
        raise TrainingError(f"{run} is not a run folder: create it with prepare_run / train")
    info = json.loads((run / "training.json").read_text())
    settings = TrainingSettings(**info["settings"])
    epochs = epochs or settings.epochs
    config = MaterialConfig.load(run / "config.json")
    phis, _ = load_transformation_tensor(run / "phi.npz")
    real, _ = load_real_patches(info["patches"])
    space = ParameterSpace.from_config(config)
    bsdf_names = space.names[:-1]
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
    metrics = read_metrics(run)
    start = 1
    finished = [e["epoch"] for e in metrics["epochs"]]
    if finished:
        state = _load_checkpoint(_checkpoint_path(run, finished[-1]))
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_generator"])
        opt_d.load_state_dict(state["opt_discriminator"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
        start = finished[-1] + 1
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
    fid_stats_real = _real_fid_statistics(run, real, resolved.torch_device)
    yield TrainingEvent("setup", start, 0, total, "tracing the FID constellations")
    fid_rng = np.random.default_rng(settings.seed + 1)
    fid_indices = fid_rng.choice(iterations, min(settings.fid_constellations, iterations), False)
    scene.set_bsdf(mid)
    fid_caches = []
    for index in fid_indices:
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
            if cancelled and cancelled():
                return
            index, cache = pool.take(reference)
            unit = generator(phi_input[index : index + 1])[0]
            values = space.scale(unit)
            image = shade_torch(cache, bsdf_names, values[:-1].cpu()).to(device)
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

            reference = dict(zip(bsdf_names, values[:-1].tolist(), strict=True))
            losses_g.append(loss_g.item())
            losses_d.append(loss_d.item())
            step += 1
            yield TrainingEvent(
                "iteration",
                epoch,
                step,
                total,
                f"epoch {epoch}/{epochs}, iteration {it + 1}/{iterations}",
                {"loss_g": losses_g[-1], "loss_d": losses_d[-1]},
            )
        seconds_per_iteration = (time.perf_counter() - started) / iterations
        yield TrainingEvent("setup", epoch, step, total, f"epoch {epoch}: FID and histograms")
        fid_started = time.perf_counter()
        synthetic = _synthetic_set(generator, space, fid_caches, fid_phi, fid_count)
        fid_value = _fid(synthetic, fid_stats_real, resolved.torch_device)
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
            space,
            unit_samples,
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
            samples=space.scale(unit_samples),
        )


def train(
    run: str | Path,
    epochs: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict:
    """Run :func:`train_iter` to the end; returns the metrics."""
    for event in train_iter(run, epochs, cancelled):
        if progress:
            progress(event.step, event.total, event.message)
    return read_metrics(run)


def _synthetic_set(generator, space, caches, phi_input, count) -> np.ndarray:
    """``count`` synthetic images shaded from the FID constellations with fresh parameter
    draws (dropout active), noise included."""
    import torch

    rng = np.random.default_rng(int(torch.randint(2**31, ())))
    images = []
    with torch.no_grad():
        for k in range(count):
            cache = caches[k % len(caches)]
            values = space.scale(generator(phi_input[k % len(caches)][None])[0]).cpu().numpy()
            cache.scene.set_bsdf(dict(zip(space.names[:-1], values[:-1].tolist(), strict=True)))
            image = cache.render()
            images.append(image + rng.normal(0, values[-1], image.shape).astype(np.float32))
    return np.stack(images)


def _unit_samples(generator, phi_input, count, rng) -> np.ndarray:
    import torch

    with torch.no_grad():
        chosen = torch.from_numpy(rng.integers(len(phi_input), size=count))
        return generator(phi_input[chosen.to(phi_input.device)]).cpu().numpy()


def _summary(space: ParameterSpace, unit_samples: np.ndarray) -> dict:
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


def _real_fid_statistics(run: Path, real: np.ndarray, device: str):
    from .fid import FIDError, InceptionFeatures, find_weights, statistics

    try:
        find_weights()
    except FIDError as err:
        raise TrainingError(str(err)) from err
    path = run / "fid_real_statistics.npz"
    if path.is_file():
        with np.load(path) as data:
            return data["mean"], data["covariance"]
    mean, covariance = statistics(InceptionFeatures(device)(real))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, mean=mean, covariance=covariance)
    return mean, covariance


def _fid(images: np.ndarray, real_stats, device: str) -> float:
    from .fid import InceptionFeatures, frechet_distance, statistics

    mean, covariance = statistics(InceptionFeatures(device)(images))  # clips to [0, 1]
    return float(frechet_distance(mean, covariance, *real_stats))


def _save_epoch(run, epoch, state, record, space, unit_samples, synthetic, real) -> None:
    """Checkpoint, metrics (best epoch updated), samples and figures of one finished epoch."""
    import torch

    with atomic_path(_checkpoint_path(run, epoch)) as tmp:
        torch.save(state, tmp)
    samples_path = run / "samples" / f"epoch_{epoch:03d}.npy"
    with atomic_path(samples_path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, space.scale(unit_samples))
    metrics = read_metrics(run)
    metrics["epochs"] = [e for e in metrics["epochs"] if e["epoch"] < epoch] + [record]
    override = metrics.get("best_epoch_override")
    metrics["best_epoch"] = override or choose_best_epoch(metrics["epochs"])
    metrics["best_epoch_rule"] = (
        f"among the {BEST_CANDIDATES} lowest-FID epochs, the broadest parameter distribution "
        "(mean standard deviation of the generator's [0, 1] outputs)"
    )
    write_json_atomic(run / "metrics.json", metrics)
    from .gan_plots import save_epoch_figures

    save_epoch_figures(run, metrics, epoch, space, space.scale(unit_samples), synthetic, real)
