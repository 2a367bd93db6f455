"""Parameter recovery: can DiffRenderGAN find known material values?

"Real" patches are rendered with known BSDF values and noise (the *truth*), then a GAN
starting from the middle of every range is trained on them; the learned means are compared
with the truth. Used by the tests, ``benchmarks/parameter_recovery.py`` and the demo's
self-made scan.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import MaterialConfig, preset
from ..progress import Monitor
from .run import GanRun, TrainingSettings, fit_scene_to_patches

# a look the untrained generator is far from: roughness and sheen above 1, a darker stage
TRUTH = {
    "particle.base_color": 1.2,
    "particle.roughness": 3.8,
    "particle.sheen": 0.6,
    "stage.base_color": 0.15,
    "film.mottle": 0.08,
    "film.lines": 0.05,
    "detector.blur": 0.8,
    "noise": 0.03,
}


def truth_values(config: MaterialConfig, truth: dict[str, float]) -> tuple[dict, float]:
    """Mid-range values for every learned parameter, overridden by ``truth`` (and its noise)."""
    from ..render.sampling import mid_range_values

    values, noise = mid_range_values(config)
    values.update({k: v for k, v in truth.items() if k != "noise"})
    return values, truth.get("noise", noise)


def render_truth_patches(
    folder: Path,
    size: int,
    count: int,
    truth: dict[str, float] = TRUTH,
    seed: int = 7,
    device: str = "cpu",
    config: MaterialConfig | None = None,
) -> dict:
    """``count`` patches of ``config`` (default tio2-sem) rendered with ``truth`` (other
    parameters mid-range), saved as a particle patch set; returns the full truth."""
    from ..data.patches import Patch, PatchSet
    from ..render.sampling import AnnotatedRenderer, RenderValues

    config = fit_scene_to_patches(config or preset("tio2-sem"), size)
    values = RenderValues.named(*truth_values(config, truth))
    renderer = AnnotatedRenderer(config, device=device)
    pixels, patches = [], []
    for i in range(count):
        sample = renderer.render((seed, i), lambda phi, rng: values)
        pixels.append(np.clip(sample.image, 0, 1))
        patches.append(Patch(f"truth_{i:03d}", 0, 0, size, "particle", 0.0, 3))
    full = {**values.recorded(), "noise": values.noise}
    PatchSet.save(folder, patches, pixels, None, {"truth": full})
    return full


def recover(
    patches: Path,
    run: Path,
    epochs: int,
    iterations: int,
    seed: int = 0,
    config: MaterialConfig | None = None,
    monitor: Monitor | None = None,
    **settings,
) -> dict:
    """Train on the truth patches; returns the run's metrics (per epoch, the learned
    mean/std of every parameter)."""
    from .training import train

    defaults = dict(fid_images=8, device="cpu")
    training = TrainingSettings(
        epochs=epochs, iterations_per_epoch=iterations, seed=seed, **{**defaults, **settings}
    )
    created = GanRun.create(run, patches, config or preset("tio2-sem"), training)
    return train(created, monitor=monitor)
