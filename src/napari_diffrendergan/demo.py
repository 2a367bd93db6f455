"""``diffrendergan demo``: everything the package can do, on built-in data, at a small budget.

Renders one annotated scene per preset; renders a small synthetic TiO2 training set, trains the
small nnU-Net on it, segments held-out synthetic scenes and scores them against their known
labels with particle statistics; measures local thickness on the rendered nanowire scene.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def run_demo(
    out: str | Path,
    presets,
    spp: int = 16,
    seed: int = 0,
    device: str = "auto",
    train_images: int = 24,
    test_images: int = 3,
    seg_iterations: int = 100,
    progress=None,
) -> dict:
    """Run the demo into ``out``; ``progress(step, total, message)`` follows each stage.
    Returns what was made, for the report."""
    from .analysis import table_rows
    from .config import preset
    from .evaluation import score_image
    from .io import write_csv, write_tiff
    from .scene import render_sample, render_samples, write_sample
    from .segmentation import Segmenter, segment_image, train_model, write_dataset
    from .thickness import analyse, write_outputs

    out = Path(out)
    report: dict = {"out": str(out), "timings": {}}

    def stage(name, started):
        report["timings"][name] = time.perf_counter() - started

    started = time.perf_counter()
    scenes = {}
    for name in presets:
        config = preset(name)
        config.scene.spp = spp
        scenes[name] = render_sample(config, seed=seed, device=device, progress=progress)
        write_sample(scenes[name], out / "scenes" / name)
    report["scenes"] = {name: s.info for name, s in scenes.items()}
    stage("scenes", started)

    started = time.perf_counter()
    config = preset("tio2-sem")
    samples = list(
        render_samples(
            config,
            train_images + test_images,
            seed=seed + 1,
            device=device,
            spp=4,
            progress=progress,
        )
    )
    train, test = samples[:train_images], samples[train_images:]
    dataset = write_dataset(
        out / "dataset" / "Dataset001_DemoTiO2", [s.image for s in train], [s.mask for s in train]
    )
    report["dataset"] = {
        "folder": str(dataset),
        "images": len(train),
        "rejected": samples[-1].info["rejected_before"],
    }
    stage("synthetic data", started)

    started = time.perf_counter()
    model = out / "model"
    if not (model / "model.json").is_file():
        train_model(
            dataset,
            model,
            iterations=seg_iterations,
            device=device,
            resume=(model / "workspace").is_dir(),
            progress=progress,
        )
    report["model"] = str(model)
    stage("nnU-Net training", started)

    started = time.perf_counter()
    segmenter = Segmenter(model, device=device)
    scores, counts = [], []
    for index, sample in enumerate(test):
        result = segment_image(segmenter, sample.image)
        name = f"test_{index}"
        write_tiff(out / "segmentation" / f"{name}_image.tif", sample.image)
        write_tiff(out / "segmentation" / f"{name}_instances.tif", result.instances)
        write_csv(out / "segmentation" / f"{name}_particles.csv", table_rows(result.table))
        scores.append(score_image(sample.instances, result.instances, name))
        counts.append((int(result.instances.max()), sample.info["visible_particles"]))
    report["segmentation"] = {
        "folder": str(out / "segmentation"),
        "dsc": float(np.mean([s.dsc for s in scores])),
        "ap50": float(np.mean([s.ap50 for s in scores])),
        "pq": float(np.mean([s.pq for s in scores])),
        "particles_found_vs_true": counts,
    }
    stage("segmentation", started)

    if "agnw-sem" in scenes:
        started = time.perf_counter()
        result = analyse(scenes["agnw-sem"].mask)
        write_outputs(result, out / "thickness", "agnw-sem")
        report["thickness"] = {"folder": str(out / "thickness"), **result.summary()}
        stage("thickness", started)
    return report
