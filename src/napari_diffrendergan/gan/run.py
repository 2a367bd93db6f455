"""The DiffRenderGAN run folder, owned by :class:`GanRun`; nothing else reads its files by name.

A run folder holds everything needed to reproduce, resume and use a training:
``config.json`` (material), ``training.json`` (settings, seed, the patch set's path relative to
the run folder and the SHA-256 of its particle patches, backend; written last when a run is
created, so it marks a complete folder), ``phi.npz`` (Φ), ``checkpoints/epoch_NNN.pt``
(atomic, one per finished epoch), ``metrics.json``, ``samples/epoch_NNN.npy`` (parameter
samples), ``fid_real_statistics.npz`` (with the SHA-256 of the patches it was computed from),
``fid.png``, ``histograms/epoch_NNN.png`` and ``previews/epoch_NNN.png``. A run records no
absolute path, so the folder can be shared (with its patch set beside it, to resume).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np

from ..backend import DEVICES
from ..config import POLARITIES, MaterialConfig, whole_number
from ..errors import DiffRenderGANError, InputError
from ..io import (
    FolderLock,
    UnsafeFileError,
    load_weights,
    read_json,
    relative_path,
    write_json_atomic,
    write_npz_atomic,
)
from ..render.sampling import RenderValues
from .networks import ParameterSpace, build_generator, normalise_phi

BEST_CANDIDATES = 5
BEST_EPOCH_RULE = (
    f"among the {BEST_CANDIDATES} lowest-FID epochs, the broadest parameter distribution "
    "(mean standard deviation of the generator's [0, 1] outputs)"
)
MAX_EPOCHS = 1000  # 20 times the paper's 50
MAX_ITERATIONS = 10_000  # per epoch, each a constellation traced and kept (the paper: one per
# real patch, a few hundred)
MAX_SEED = 2**32 - 1
# whole-number settings: (lowest, highest or None)
INTEGER_RANGES = {
    "epochs": (1, MAX_EPOCHS),
    "iterations_per_epoch": (0, MAX_ITERATIONS),
    "seed": (0, MAX_SEED),
    "fid_images": (0, None),
}


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
    fid_images: int = 0  # 0: one per real patch
    device: str = "auto"

    def problems(self) -> list[str]:
        """What is wrong with these settings (each names its key), empty when nothing is."""
        found = []
        for name, (low, high) in INTEGER_RANGES.items():
            value = getattr(self, name)
            if not whole_number(value, low, high):
                allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
                found.append(f"{name} must be an integer {allowed}, got {value!r}")
        for name in ("dropout", "average"):
            if not (_number(getattr(self, name)) and 0 <= getattr(self, name) < 1):
                found.append(f"{name} must be a number in [0, 1), got {getattr(self, name)!r}")
        for name in ("lr_generator", "lr_discriminator"):
            if not (_number(getattr(self, name)) and getattr(self, name) > 0):
                found.append(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if not isinstance(self.augment, bool):
            found.append(f"augment must be true or false, got {self.augment!r}")
        if self.device not in DEVICES:
            found.append(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        return found

    def validate(self) -> TrainingSettings:
        problems = self.problems()
        if problems:
            raise TrainingError("Invalid training settings:\n  - " + "\n  - ".join(problems))
        return self

    @classmethod
    def from_dict(cls, data: dict) -> TrainingSettings:
        """Validated settings from ``data`` (keys of other versions ignored)."""
        if not isinstance(data, dict):
            raise TrainingError(f"training settings must be an object, got {type(data).__name__}")
        return cls.unchecked(data).validate()

    @classmethod
    def unchecked(cls, data: dict) -> TrainingSettings:
        """Settings from ``data`` as they are (see :meth:`problems`)."""
        return cls(**{k: v for k, v in data.items() if k in _SETTING_NAMES})


_SETTING_NAMES = {f.name for f in fields(TrainingSettings)}
# settings of earlier versions, ignored where a run's training.json still holds them
REMOVED_SETTINGS = {
    "reuse": "the per-sample path's pool is fixed, the basis path has none",
    "pool": "the per-sample path's pool is fixed, the basis path has none",
    "fid_constellations": "the FID set renders one constellation per image on either path",
}


def _numeric(value) -> bool:
    """A JSON number (NaN and infinities included), not a boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value) -> bool:
    """A finite JSON number."""
    return _numeric(value) and (isinstance(value, int) or np.isfinite(value))


def _info_problems(info: dict) -> list[str]:
    """What is wrong with the keys of a run's ``training.json`` that a run reads."""
    settings = info["settings"]
    if isinstance(settings, dict):
        found = [f"settings.{p}" for p in TrainingSettings.unchecked(settings).problems()]
    else:
        found = [f"settings must be an object (epochs, seed, ...), got {type(settings).__name__}"]
    if not isinstance(info.get("patches"), str):
        found.append(f"patches must be the patch set folder, got {info.get('patches')!r}")
    if not (_number(info.get("intensity_range")) and info["intensity_range"] > 0):
        found.append(
            f"intensity_range must be a positive number, got {info.get('intensity_range')!r}"
        )
    size = info.get("pixel_size_nm")
    if size is not None and not (_number(size) and size > 0):
        found.append(f"pixel_size_nm must be a positive number or null, got {size!r}")
    return found


def _metrics_problem(metrics) -> str | None:
    """What is wrong with the epoch records of a ``metrics.json`` (``None``: nothing)."""
    if not isinstance(metrics, dict) or not isinstance(metrics.get("epochs"), list):
        return "no list of epochs"
    numbers = []
    for record in metrics["epochs"]:
        if not isinstance(record, dict) or not whole_number(record.get("epoch"), 0):
            return f"epoch record {str(record)[:60]!r} has no epoch number"
        for key in ("fid", "breadth"):
            value = record.get(key)
            if value is not None and not _numeric(value):
                return f"epoch {record['epoch']}: {key} {value!r} is not a number"
        if record["epoch"] > 0 and _number(record.get("fid")) and record.get("breadth") is None:
            return f"epoch {record['epoch']} has a FID but no breadth"
        numbers.append(record["epoch"])
    if len(set(numbers)) != len(numbers):
        return f"an epoch is recorded twice ({numbers})"
    floor = metrics.get("fid_floor")
    if floor is not None and not _numeric(floor):
        return f"fid_floor {floor!r} is not a number"
    return None


def _finished(metrics: dict) -> list[int]:
    """Trained epochs with a record in ``metrics`` (epoch 0 excluded)."""
    return [e["epoch"] for e in metrics["epochs"] if e["epoch"] > 0]


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
        "sha256": patches_sha256(images),
        "polarity": patch_set.polarity,
    }
    return np.clip(images / full_range, 0, 1), meta


def patches_sha256(images: np.ndarray) -> str:
    """SHA-256 of particle patches (N, H, W): their count, size and pixels, in order; what a run
    and its FID statistics are bound to."""
    pixels = np.ascontiguousarray(images, "<f4")
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def fit_scene_to_patches(config: MaterialConfig, size: int) -> MaterialConfig:
    """Render at the patch size, keeping the preset's pixel scale (mesh units per pixel) and
    particle density (mesh count scaled with the image area); refused if that cannot be
    rendered here."""
    from ..render.scene import check_render

    return check_render(config.resized(size, size))


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

    def values(self, phi: np.ndarray, rng: np.random.Generator) -> RenderValues:
        """What one constellation is rendered with (a sampling ``values`` function)."""
        return self.space.values([float(v) for v in self.sample(phi[None])[0]])

    def weights_sha256(self) -> str:
        """SHA-256 of the network's weights: what identifies this generator in the pairs it
        makes, wherever its run folder lies."""
        digest = hashlib.sha256()
        for name, tensor in self.network.state_dict().items():
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy(), "<f4").tobytes())
        return digest.hexdigest()


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
        finished epoch; a run that never finished one (e.g. a failed start) is replaced, with
        its metrics and FID statistics."""
        settings.validate()
        run = cls(folder)
        with FolderLock(run.folder, "GAN run creation"):
            run._create(Path(patches), config, settings)
        return run

    def _create(self, patches: Path, config: MaterialConfig, settings: TrainingSettings):
        from .. import __version__
        from ..render.placement import save_transformation_tensor, transformation_tensor

        if self.exists and self.finished_epochs():
            raise TrainingError(
                f"{self.folder} already holds a run with finished epochs: resume it or choose "
                "another folder"
            )
        real, meta = load_real_patches(patches)
        if meta["polarity"] in POLARITIES and meta["polarity"] != config.polarity:
            raise TrainingError(
                f"{patches}: the patches were cut as {meta['polarity']} particles, the preset "
                f"{config.name!r} renders {config.polarity} ones: use a preset made by "
                "`diffrendergan calibrate` on these scans, or cut the patches with --polarity "
                f"{config.polarity} if that is what they show"
            )
        config = fit_scene_to_patches(config, real.shape[-1])
        iterations = settings.iterations_per_epoch or len(real)
        phi = transformation_tensor(config, iterations, settings.seed)
        for stale in (self.TRAINING, self.METRICS, self.FID_REAL):
            (self.folder / stale).unlink(missing_ok=True)
        save_transformation_tensor(self.folder / self.PHI, phi, settings.seed)
        config.save(self.folder / self.CONFIG)
        write_json_atomic(
            self.folder / self.TRAINING,
            {
                "settings": asdict(settings),
                "patches": relative_path(patches, self.folder),
                "real_patches": len(real),
                "patches_sha256": meta["sha256"],
                "intensity_range": meta["intensity_range"],
                "pixel_size_nm": meta.get("pixel_size_nm"),
                "version": __version__,
            },
        )

    # --- what the run was made with -----------------------------------------------------------

    @cached_property
    def info(self) -> dict:
        """``training.json``, checked: a :class:`TrainingError` names the file, the key and
        what it must hold."""
        path = self.folder / self.TRAINING
        try:
            info = read_json(path, "the run's training.json")
        except InputError as err:
            raise TrainingError(str(err)) from err
        if not isinstance(info, dict) or "settings" not in info:
            raise TrainingError(f"{path} is corrupt (no settings)")
        problems = _info_problems(info)
        if problems:
            raise TrainingError(
                f"{path}: {'; '.join(problems)}; correct it (or restore the file from a copy)"
            )
        return info

    def ignored_settings(self) -> list[str]:
        """Notes on settings of ``training.json`` that an earlier version used and this one
        ignores (:data:`REMOVED_SETTINGS`)."""
        found = [name for name in REMOVED_SETTINGS if name in self.info["settings"]]
        return [
            f"{self.folder / self.TRAINING}: setting {name!r} is no longer used and is ignored "
            f"({REMOVED_SETTINGS[name]})"
            for name in found
        ]

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
        """The patch set the run trains on (recorded relative to the run folder; runs made
        before that recorded an absolute path)."""
        return Path(os.path.normpath(self.folder.resolve() / self.info["patches"]))

    def real_patches(self) -> tuple[np.ndarray, str]:
        """The run's particle patches, scaled as when it was created, and their SHA-256
        (:func:`patches_sha256`); a :class:`TrainingError` when its patch set is gone or no
        longer holds the patches the run was created with (patch sets grow: a run must not
        resume on other data)."""
        try:
            real, meta = load_real_patches(self.patches)
        except InputError as err:
            raise TrainingError(
                f"{self.folder}: the run's patch set {self.patches} (training.json: "
                f"{self.info['patches']!r}) cannot be used: {err}; put the patch set back there"
            ) from err
        changed = self._patches_changed(len(real), meta["sha256"])
        if changed:
            raise TrainingError(
                f"{self.folder}: its patch set {self.patches} changed since the run was "
                f"created ({changed}), so the run would train and be scored on other data: "
                "start a new run on the set as it is, or restore the set"
            )
        return real, meta["sha256"]

    def _patches_changed(self, count: int, sha256: str) -> str:
        """What differs between the run's recorded patches and ``count`` patches hashing to
        ``sha256`` ("" when nothing; runs without a recorded hash are checked by count)."""
        recorded = self.info.get("real_patches")
        if recorded is not None and recorded != count:
            return f"{recorded} particle patches then, {count} now"
        if self.info.get("patches_sha256", sha256) != sha256:
            return "its particle patches' pixels differ"
        return ""

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
        """``metrics.json``: epoch records, best epoch (automatic or chosen), FID floor;
        checked, a :class:`TrainingError` names the file and the fix."""
        metrics = self._epoch_metrics()
        done = _finished(metrics)
        for key in ("best_epoch_override", "best_epoch"):
            value = metrics.get(key)
            if value is not None and (not whole_number(value, 1) or value not in done):
                raise TrainingError(
                    f"{self.folder / self.METRICS}: {key} {value!r} is not a finished epoch "
                    f"(finished: {done}); choose one with `diffrendergan best-epoch "
                    f"{self.folder} EPOCH`, or --auto for the automatic rule"
                )
        return metrics

    def _epoch_metrics(self) -> dict:
        """``metrics.json`` with its epoch records checked (not its best epoch)."""
        path = self.folder / self.METRICS
        if not path.is_file():
            return {"epochs": [], "best_epoch": None}
        try:
            metrics = read_json(path, "the run's metrics.json")
        except InputError as err:
            raise TrainingError(str(err)) from err
        problem = _metrics_problem(metrics)
        if problem:
            raise TrainingError(
                f"{path} is corrupt: {problem}; restore it from a copy of the run (training "
                "rewrites it after every epoch)"
            )
        return metrics

    def finished_epochs(self) -> list[int]:
        """Trained epochs with a record (epoch 0, the untrained generator, excluded)."""
        return _finished(self._epoch_metrics())

    @property
    def fid_floor(self) -> float | None:
        """FID between the two halves of the real patches: what "indistinguishable" scores."""
        return self.metrics().get("fid_floor")

    @property
    def best_epoch(self) -> int | None:
        return self.metrics().get("best_epoch")

    def set_best_epoch(self, epoch: int | None) -> int | None:
        """Override the automatic best epoch (``None`` returns to the automatic choice); also
        repairs a hand-edited best epoch that is not a finished one."""
        metrics = self._epoch_metrics()
        done = _finished(metrics)
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

    def record_stop(self, reason: str) -> None:
        """Record why the last training call stopped (``metrics.json``: ``stopped``, with the
        last finished epoch)."""
        metrics = self.metrics()
        done = _finished(metrics)
        metrics["stopped"] = {"reason": reason, "after_epoch": done[-1] if done else 0}
        write_json_atomic(self.folder / self.METRICS, metrics)

    @property
    def stopped(self) -> str | None:
        """Why the last training call stopped (None: not recorded)."""
        stopped = self.metrics().get("stopped")
        return stopped.get("reason") if isinstance(stopped, dict) else None

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
        if not path.is_file():
            return None
        try:
            samples = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise TrainingError(f"{path} is damaged ({err}); delete it to go without") from err
        if samples.ndim != 2 or not np.issubdtype(samples.dtype, np.number):
            raise TrainingError(
                f"{path} is not a table of parameter samples ({samples.dtype} {samples.shape}); "
                "delete it to go without"
            )
        return samples

    @property
    def fid_figure(self) -> Path:
        return self.folder / "fid.png"

    def preview_figure(self, epoch: int) -> Path:
        return self.folder / "previews" / f"epoch_{epoch:03d}.png"

    def histogram_figure(self, epoch: int) -> Path:
        return self.folder / "histograms" / f"epoch_{epoch:03d}.png"

    def real_fid_statistics(self, compute, sha256: str) -> tuple[np.ndarray, np.ndarray]:
        """FID statistics (mean, covariance) of the real patches whose SHA-256 is ``sha256``
        (see :meth:`real_patches`), cached in the run with that hash; ``compute()`` makes them
        when the cache holds none for these patches (first use, statistics of other patches,
        or saved before the hash was)."""
        path = self.folder / self.FID_REAL
        if path.is_file():
            with np.load(path) as data:
                if _stored_text(data, "patches_sha256") == sha256:
                    return data["mean"], data["covariance"]
        mean, covariance = compute()
        write_npz_atomic(path, mean=mean, covariance=covariance, patches_sha256=np.array(sha256))
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
        self.restore(network, state.get("average", state["generator"]), epoch)
        return TrainedGenerator(self.config, space, network, epoch, self)

    def restore(self, target, saved, epoch: int) -> None:
        """Load ``saved`` (a state dict of checkpoint ``epoch``) into a network or optimiser
        built from the run's settings; a clear error where they do not fit (an edited
        ``config.json`` or ``training.json``)."""
        try:
            target.load_state_dict(saved)
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            first = " ".join(str(err).split())[:200]
            raise TrainingError(
                f"{self.checkpoint_path(epoch)} does not fit the network that {self.CONFIG} "
                f"and {self.TRAINING} describe ({first}): were they edited? Restore them, or "
                "train a new run"
            ) from err


def _stored_text(data, key: str) -> str | None:
    """A text entry of an ``.npz`` file (None when absent)."""
    return str(data[key]) if key in data.files else None


def load_generator(run: str | Path, epoch: int | str = "best") -> TrainedGenerator:
    """The generator of the run folder ``run`` at ``epoch`` (a number, ``best`` or ``last``)."""
    return GanRun.open(run).generator(epoch)
