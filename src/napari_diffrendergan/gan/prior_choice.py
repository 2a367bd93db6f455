"""The shape of a calibrated prior chosen by rendering it (docs/calibration.md, "Shape by
rendering").

A projection tells rounded grains, spheres and faceted cubes apart poorly: on rendered scans
with known truth the measured shape family was right for 5 of 12 grain and cube cases. So each
compact family is rendered as the GAN would see it before any training (a new run's untrained
generator, its set-up at the prior's spp) and scored by FID against particle patches of the
user's own scans (:func:`prior_fids`); the lowest wins
(:func:`~..analysis.matching.choose_shape`). Nothing here reads an annotation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..config import MaterialConfig
from ..progress import Monitor, ensure

SHAPES = ("pebbles", "cubes", "spheres")  # the compact families a projection confuses
FIELDS = 128  # particle patches scored against at most (a seeded choice), like a GAN's set
SEED = 0


def prior_fids(
    priors: dict[str, MaterialConfig],
    patches: list[np.ndarray],
    pixel_size_nm: float | None,
    device: str = "auto",
    monitor: Monitor | None = None,
) -> dict[str, float]:
    """The untrained generator's FID of each of ``priors`` (name: preset, all of one polarity)
    against ``patches`` (square particle patches of one size; at most :data:`FIELDS`, a seeded
    choice)."""
    from ..data.patches import Patch, PatchSet

    monitor = ensure(monitor)
    chosen = sorted(np.random.default_rng(SEED).permutation(len(patches))[:FIELDS])
    size, polarity = patches[0].shape[-1], next(iter(priors.values())).polarity
    listed = [
        Patch(f"field {i}", 0, 0, size, "particle", 0.0, 0, polarity=polarity) for i in chosen
    ]
    fids = {}
    with tempfile.TemporaryDirectory(prefix="diffrendergan-priors-") as folder:
        patch_set = Path(folder) / "patches"
        pixels = [patches[i] for i in chosen]
        PatchSet.save(patch_set, listed, pixels, pixel_size_nm, {"source": "particle fields"})
        for number, (name, config) in enumerate(priors.items(), start=1):
            stage = monitor.stage(f"prior {number} of {len(priors)} ({name})")
            fids[name] = untrained_fid(config, Path(folder) / name, patch_set, device, stage)
    return fids


def untrained_fid(
    config: MaterialConfig, folder: Path, patches: Path, device: str, monitor: Monitor
) -> float:
    """The FID of the untrained generator of a new GAN run in ``folder`` on ``patches``."""
    from ..io import FolderLock
    from .run import GanRun, TrainingSettings
    from .training import Trainer

    settings = TrainingSettings(epochs=1, seed=SEED, device=device)
    run = GanRun.create(folder, patches, config.validate(), settings)
    with FolderLock(run.folder, "GAN training"):
        trainer = Trainer(run, 1, monitor)
        for _ in trainer.set_up():
            monitor.check()
        record, _, _ = trainer.evaluate(0, monitor)
    return float(record["fid"])
