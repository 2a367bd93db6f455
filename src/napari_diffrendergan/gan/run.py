"""The DiffRenderGAN run folder, owned by :class:`GanRun`; nothing else reads its files by name.

A run folder holds everything needed to reproduce, resume and use a training:
``config.json`` (material), ``training.json`` (settings, seed, patch set, backend; written last
when a run is created, so it marks a complete folder), ``phi.npz`` (Φ),
``checkpoints/epoch_NNN.pt`` (atomic, one per finished epoch), ``metrics.json``,
``samples/epoch_NNN.npy`` (parameter samples), ``fid_real_statistics.npz``, ``fid.png``,
``histograms/epoch_NNN.png`` and ``previews/epoch_NNN.png``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np

from ..config import MaterialConfig
from ..errors import DiffRenderGANError, InputError
from ..io import UnsafeFileError, load_weights, read_json, write_json_atomic, write_npz_atomic
from .networks import ParameterSpace, build_generator, normalise_phi

BEST_CANDIDATES = 5
BEST_EPOCH_RULE = (
    f"among the {BEST_CANDIDATES} lowest-FID epochs, the broadest parameter distribution "
    "(mean standard deviation of the generator's [0, 1] outputs)"
)


class TrainingError(DiffRenderGANError):
    """A training cannot start, resume or be loaded; the message says why."""


@dataclass
class TrainingSettings:
    """Everything about a training that is not the material configuration."""

    epochs: int = 50
    iterations_per_epoch: int = 0  # 0: one per real particle patch
    seed: int = 0
    lr_generator: float = 2e-4
    lr_discriminator: float = 1e-4
    dropout: float = 0.2
    augment: bool = True  # real patches flipped and rotated at random, as the paper does
    average: float = 0.995  # decay of the generator's weight average per iteration (0: none)
    # only where BSDFs are not polynomial in the learned parameters (per-sample re-shading):
    reuse: int = 8  # iterations each traced constellation is used for
    pool: int = 8  # traced constellations held in memory
    fid_constellations: int = 8  # traced once; the per-epoch FID set is shaded from them
    fid_images: int = 0  # 0: one per real patch
    device: str = "auto"

    def problems(self) -> list[str]:
        found = []
        for name in ("epochs", "reuse", "pool", "fid_constellations"):
            if not _integer(getattr(self, name), 1):
                found.append(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("iterations_per_epoch", "fid_images", "seed"):
            if not _integer(getattr(self, name), 0):
                found.append(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            found.append(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if not 0 <= self.average < 1:
            found.append(f"average must lie in [0, 1), got {self.average!r}")
        for name in ("lr_generator", "lr_discriminator"):
            if not (isinstance(getattr(self, name), int | float) and getattr(self, name) > 0):
                found.append(f"{name} must be a positive number, got {getattr(self, name)!r}")
        return found

    def validate(self) -> TrainingSettings:
        problems = self.problems()
        if problems:
            raise TrainingError("Invalid training settings:\n  - " + "\n  - ".join(problems))
        return self

    @classmethod
    def from_dict(cls, data: dict) -> TrainingSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _integer(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def breadth(unit_samples: np.ndarray) -> float:
    """How broad a learned parameter distribution is: the mean over parameters of the
    standard deviation of the generator's [0, 1] outputs (independent of the limits)."""
    return float(np.mean(np.std(unit_samples, axis=0)))


def choose_best_epoch(epochs: list[dict], candidates: int = BEST_CANDIDATES) -> int | None:
    """The paper's rule: among the ``candidates`` epochs with the lowest FID, the one with the
    broadest learned parameter distribution (:func:`breadth`). Epoch 0 (the untrained
    generator) is a reference, never a candidate."""
    scored = [
        e for e in epochs if e["epoch"] > 0 and e.get("fid") is not None and np.isfinite(e["fid"])
    ]
    if not scored:
        return None
    lowest = sorted(scored, key=lambda e: e["fid"])[:candidates]
    return max(lowest, key=lambda e: e["breadth"])["epoch"]


def load_real_patches(folder: str | Path) -> tuple[np.ndarray, dict]:
    """Particle patches of a patch set as (N, H, W) float32 in [0, 1], and the set's metadata
    (with ``intensity_range``: the full range of the source type the patches were divided by,
    see :meth:`~napari_diffrendergan.data.patches.PatchSet.intensity_range`)."""
    from ..data.patches import PatchSet

    patch_set = PatchSet.open(folder)
    chosen = patch_set.with_role("particle")
    if not chosen:
        raise TrainingError(f"{folder}: the patch set holds no particle patches to train on")
    sizes = {p.size for p in chosen}
    if len(sizes) != 1:
        raise TrainingError(f"{folder}: particle patches differ in size ({sorted(sizes)})")
    images = patch_set.read_stack(chosen)
    if not np.isfinite(images).all():
        raise TrainingError(f"{folder}: patches contain NaN or infinite values")
    full_range = patch_set.intensity_range(images)
    meta = {
        "pixel_size_nm": patch_set.pixel_size_nm,
        "intensity_range": full_range,
        "particle_patches": len(chosen),
    }
    return np.clip(images / full_range, 0, 1), meta


def fit_scene_to_patches(config: MaterialConfig, size: int) -> MaterialConfig:
    """Render at the patch size, keeping the preset's pixel scale (mesh units per pixel) and
    particle density (mesh count scaled with the image area)."""
    return config.resized(size, size)


@dataclass
class TrainedGenerator:
    """A generator loaded from a run folder at one epoch, ready to sample parameters."""

    config: MaterialConfig
    space: ParameterSpace
    network: object
    epoch: int
    run: GanRun

    def sample(self, phi: np.ndarray) -> np.ndarray:
        """Physical parameter values (m, P) for constellations ``phi`` (m, n, 4), the network in
        eval mode (no dropout) as for the FID that chose the epoch: each constellation has its
        own values."""
        import torch

        self.network.eval()
        with torch.no_grad():
            unit = self.network(torch.from_numpy(normalise_phi(phi, self.config))).numpy()
        return self.space.scale(unit)

    def values(self, phi: np.ndarray, rng: np.random.Generator) -> tuple[dict[str, float], float]:
        """BSDF parameters and noise σ for one constellation (a sampling ``values`` function)."""
        return self.space.split(self.sample(phi[None])[0])


class GanRun:
    """One run folder (see module doc): creation, settings, metrics, checkpoints, figures."""

    CONFIG = "config.json"
    TRAINING = "training.json"
    PHI = "phi.npz"
    METRICS = "metrics.json"
    FID_REAL = "fid_real_statistics.npz"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"GanRun({str(self.folder)!r})"

    @property
    def exists(self) -> bool:
        """True when the folder holds a complete run (``training.json`` written)."""
        return (self.folder / self.TRAINING).is_file()

    @classmethod
    def open(cls, folder: str | Path) -> GanRun:
        run = cls(folder)
        if not run.exists:
            raise TrainingError(f"{folder} is not a DiffRenderGAN run folder (no training.json)")
        return run

    @classmethod
    def create(
        cls,
        folder: str | Path,
        patches: str | Path,
        config: MaterialConfig,
        settings: TrainingSettings,
    ) -> GanRun:
        """A new run folder (config, Φ, then settings). Refuses a folder holding a run with a
        finished epoch; a run that never finished one (e.g. a failed start) is replaced."""
        from .. import __version__
        from ..render.placement import save_transformation_tensor, transformation_tensor

        settings.validate()
        run = cls(folder)
        if run.exists and run.finished_epochs():
            raise TrainingError(
                f"{folder} already holds a run with finished epochs: resume it or choose "
                "another folder"
            )
        real, meta = load_real_patches(patches)
        config = fit_scene_to_patches(config, real.shape[-1])
        iterations = settings.iterations_per_epoch or len(real)
        phi = transformation_tensor(config, iterations, settings.seed)
        (run.folder / cls.TRAINING).unlink(missing_ok=True)
        (run.folder / cls.METRICS).unlink(missing_ok=True)
        save_transformation_tensor(run.folder / cls.PHI, phi, settings.seed)
        config.save(run.folder / cls.CONFIG)
        write_json_atomic(
            run.folder / cls.TRAINING,
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

    # --- what the run was made with -----------------------------------------------------------

    @cached_property
    def info(self) -> dict:
        info = read_json(self.folder / self.TRAINING, "the run's training.json")
        if not isinstance(info, dict) or "settings" not in info:
            raise TrainingError(f"{self.folder / self.TRAINING} is corrupt (no settings)")
        return info

    @cached_property
    def config(self) -> MaterialConfig:
        return MaterialConfig.load(self.folder / self.CONFIG)

    @property
    def settings(self) -> TrainingSettings:
        return TrainingSettings.from_dict(self.info["settings"])

    @property
    def space(self) -> ParameterSpace:
        return ParameterSpace.from_config(self.config)

    @property
    def patches(self) -> Path:
        return Path(self.info["patches"])

    @property
    def pixel_size_nm(self) -> float | None:
        return self.info.get("pixel_size_nm")

    @property
    def intensity_range(self) -> float:
        """What the real patches were divided by (background patches must be too)."""
        return float(self.info["intensity_range"])

    def phi(self) -> np.ndarray:
        from ..render.placement import load_transformation_tensor

        return load_transformation_tensor(self.folder / self.PHI)[0]

    # --- progress -----------------------------------------------------------------------------

    def metrics(self) -> dict:
        path = self.folder / self.METRICS
        if not path.is_file():
            return {"epochs": [], "best_epoch": None}
        try:
            return read_json(path, "the run's metrics.json")
        except InputError as err:
            raise TrainingError(str(err)) from err

    def finished_epochs(self) -> list[int]:
        """Trained epochs with a record (epoch 0, the untrained generator, excluded)."""
        return [e["epoch"] for e in self.metrics()["epochs"] if e["epoch"] > 0]

    @property
    def fid_floor(self) -> float | None:
        """FID between the two halves of the real patches: what "indistinguishable" scores."""
        return self.metrics().get("fid_floor")

    @property
    def best_epoch(self) -> int | None:
        return self.metrics().get("best_epoch")

    def set_best_epoch(self, epoch: int | None) -> int | None:
        """Override the automatic best epoch (``None`` returns to the automatic choice)."""
        metrics = self.metrics()
        done = self.finished_epochs()
        if epoch is not None and epoch not in done:
            raise TrainingError(f"{self.folder}: epoch {epoch} is not finished (finished: {done})")
        metrics["best_epoch_override"] = epoch
        metrics["best_epoch"] = epoch or choose_best_epoch(metrics["epochs"])
        write_json_atomic(self.folder / self.METRICS, metrics)
        return metrics["best_epoch"]

    def record_epoch(self, record: dict, **facts) -> dict:
        """Add (or replace) one epoch's record (and run-wide ``facts``, e.g. ``fid_floor``),
        update the best epoch; returns the metrics."""
        metrics = {**self.metrics(), **facts}
        epoch = record["epoch"]
        metrics["epochs"] = sorted(
            [e for e in metrics["epochs"] if e["epoch"] != epoch] + [record],
            key=lambda e: e["epoch"],
        )
        override = metrics.get("best_epoch_override")
        metrics["best_epoch"] = override or choose_best_epoch(metrics["epochs"])
        metrics["best_epoch_rule"] = BEST_EPOCH_RULE
        write_json_atomic(self.folder / self.METRICS, metrics)
        return metrics

    def forget_epochs_after(self, epoch: int) -> None:
        """Drop the records of epochs after ``epoch`` (their checkpoints are unusable)."""
        metrics = self.metrics()
        metrics["epochs"] = [e for e in metrics["epochs"] if e["epoch"] <= epoch]
        if metrics.get("best_epoch_override", 0) and metrics["best_epoch_override"] > epoch:
            metrics["best_epoch_override"] = None
        metrics["best_epoch"] = metrics.get("best_epoch_override") or choose_best_epoch(
            metrics["epochs"]
        )
        write_json_atomic(self.folder / self.METRICS, metrics)

    # --- checkpoints --------------------------------------------------------------------------

    def checkpoint_path(self, epoch: int) -> Path:
        return self.folder / "checkpoints" / f"epoch_{epoch:03d}.pt"

    def load_checkpoint(self, epoch: int) -> dict:
        """The state saved after ``epoch``, loaded weights-only: a checkpoint holding anything
        but tensors and plain values is refused (:class:`~..io.UnsafeFileError`, never
        skipped as damaged)."""
        path = self.checkpoint_path(epoch)
        if not path.is_file():
            raise TrainingError(
                f"{self.folder}: no checkpoint for epoch {epoch} "
                f"(finished: {self.finished_epochs()})"
            )
        try:
            state = load_weights(path, "checkpoint")
        except UnsafeFileError:
            raise
        except InputError as err:
            raise TrainingError(str(err)) from err
        if not (isinstance(state, dict) and {"generator", "discriminator", "epoch"} <= set(state)):
            raise TrainingError(f"{path}: checkpoint is damaged or not a checkpoint (no weights)")
        return state

    def resume_point(self) -> tuple[int, dict | None, list[str]]:
        """The last epoch with a usable checkpoint and its state (0, None: start afresh), and
        notes on damaged checkpoints skipped (their epochs are forgotten)."""
        notes = []
        for epoch in reversed(self.finished_epochs()):
            try:
                state = self.load_checkpoint(epoch)
            except TrainingError as err:
                notes.append(f"{err}; continuing from the epoch before")
                continue
            if notes:
                self.forget_epochs_after(epoch)
            return epoch, state, notes
        if notes:
            self.forget_epochs_after(0)
        return 0, None, notes

    def save_checkpoint(self, epoch: int, state: dict) -> None:
        import torch

        from ..io import atomic_path

        with atomic_path(self.checkpoint_path(epoch)) as tmp:
            torch.save(state, tmp)

    # --- samples, figures, FID statistics -----------------------------------------------------

    def samples_path(self, epoch: int) -> Path:
        return self.folder / "samples" / f"epoch_{epoch:03d}.npy"

    def save_samples(self, epoch: int, samples: np.ndarray) -> None:
        from ..io import atomic_path

        with atomic_path(self.samples_path(epoch)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, samples)

    def samples(self, epoch: int | None = None) -> np.ndarray | None:
        """Physical parameter samples of ``epoch`` (default: the last finished), if saved."""
        done = self.finished_epochs()
        if epoch is None and not done:
            return None
        path = self.samples_path(epoch if epoch is not None else done[-1])
        return np.load(path) if path.is_file() else None

    @property
    def fid_figure(self) -> Path:
        return self.folder / "fid.png"

    def preview_figure(self, epoch: int) -> Path:
        return self.folder / "previews" / f"epoch_{epoch:03d}.png"

    def histogram_figure(self, epoch: int) -> Path:
        return self.folder / "histograms" / f"epoch_{epoch:03d}.png"

    def real_fid_statistics(self, compute) -> tuple[np.ndarray, np.ndarray]:
        """FID statistics (mean, covariance) of the real patches, cached in the run;
        ``compute()`` makes them the first time."""
        path = self.folder / self.FID_REAL
        if path.is_file():
            with np.load(path) as data:
                return data["mean"], data["covariance"]
        mean, covariance = compute()
        write_npz_atomic(path, mean=mean, covariance=covariance)
        return mean, covariance

    # --- using it -----------------------------------------------------------------------------

    def resolve_epoch(self, epoch: int | str = "best") -> int:
        """An epoch number from a number, ``best`` or ``last``; clear errors otherwise."""
        done = self.finished_epochs()
        if not done:
            raise TrainingError(f"{self.folder}: no finished epoch yet")
        if epoch == "best":
            return self.best_epoch or done[-1]
        if epoch == "last":
            return done[-1]
        try:
            number = int(epoch)
        except (TypeError, ValueError):
            raise InputError(f"epoch must be best, last or a number, got {epoch!r}") from None
        if number == 0 and self.checkpoint_path(0).is_file():
            return 0  # the untrained generator, kept for comparisons
        if number not in done:
            raise TrainingError(
                f"{self.folder}: no checkpoint for epoch {number} (finished: {done})"
            )
        return number

    def generator(self, epoch: int | str = "best") -> TrainedGenerator:
        """The generator of this run at ``epoch`` (a number, ``best`` or ``last``)."""
        epoch = self.resolve_epoch(epoch)
        state = self.load_checkpoint(epoch)
        space = self.space
        network = build_generator(self.config.meshes.count, len(space.names), self.settings.dropout)
        network.load_state_dict(state.get("average", state["generator"]))
        return TrainedGenerator(self.config, space, network, epoch, self)


def load_generator(run: str | Path, epoch: int | str = "best") -> TrainedGenerator:
    """The generator of the run folder ``run`` at ``epoch`` (a number, ``best`` or ``last``)."""
    return GanRun.open(run).generator(epoch)
