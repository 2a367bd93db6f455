"""``diffrendergan demo``: the whole pipeline on the built-in TiO2 SEM sample, at a small budget.

Renders one annotated scene per preset; cuts patches from the real sample scan (its masks are
not used), trains DiffRenderGAN on them for a few epochs, generates a synthetic TiO2 training
set from the best epoch (+ real background patches), trains the small nnU-Net on it, segments
held-out synthetic images (scored against their known labels) and the real scan (scored against
its manual masks, particle statistics in nm), splitting touching particles by watershed as the
TiO2 experiment chose; measures local thickness on the nanowire scene.
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
    gan_epochs: int = 2,
    progress=None,
) -> dict:
    """Run the demo into ``out``; ``progress(step, total, message)`` follows each stage.
    Returns what was made, for the report."""
    from .analysis import particle_table, table_rows
    from .config import preset
    from .evaluation import score_image
    from .gan import TrainingSettings, load_generator, prepare_run, read_metrics, train_iter
    from .io import write_csv, write_tiff
    from .patches import cut_patches, save_patch_set
    from .sample_data import TIO2_DEFAULT_ID, TIO2_PIXEL_SIZE_NM, read_tio2
    from .scene import render_sample, write_sample
    from .segmentation import Segmenter, segment_image, train_model
    from .synthesis import PairRenderer, generate
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
    scan, manual = read_tio2()
    patches, pixels, _ = cut_patches(scan, f"{TIO2_DEFAULT_ID}.tif")
    patch_set = out / "patches"
    if not (patch_set / "patches.json").is_file():
        save_patch_set(patch_set, patches, pixels, TIO2_PIXEL_SIZE_NM, {"source": "demo"})
    report["patches"] = {
        "folder": str(patch_set),
        "particle": sum(p.role == "particle" for p in patches),
        "background": sum(p.role == "background" for p in patches),
    }
    stage("patches", started)

    started = time.perf_counter()
    run = out / "gan"
    config = preset("tio2-sem")
    config.scene.spp = spp
    if not (run / "training.json").is_file():
        settings = TrainingSettings(
            epochs=gan_epochs, seed=seed, device=device, fid_constellations=4, pool=4
        )
        prepare_run(run, patch_set, config, settings)
    for event in train_iter(run):
        if progress:
            progress(event.step, event.total, f"GAN: {event.message}")
    metrics = read_metrics(run)
    best = metrics["best_epoch"]
    report["gan"] = {
        "folder": str(run),
        "fid": [e["fid"] for e in metrics["epochs"]],
        "best_epoch": best,
        "seconds_per_iteration": metrics["epochs"][-1]["seconds_per_iteration"],
        "parameters": {k: v["mean"] for k, v in metrics["epochs"][best - 1]["parameters"].items()},
    }
    stage("GAN training", started)

    started = time.perf_counter()
    dataset = out / "dataset" / "Dataset001_DemoTiO2"
    summary = generate(
        run,
        dataset,
        train_images,
        seed=seed,
        spp=4,
        background_patches=patch_set,
        n_background=max(1, train_images // 6),
        device=device,
        progress=progress,
    )
    renderer = PairRenderer(load_generator(run), seed=seed, spp=4, device=device)
    test = [renderer.render(train_images + i) for i in range(test_images)]  # held out
    report["dataset"] = {
        "folder": str(dataset),
        "images": train_images,
        "background": summary["background_patches"],
        "rejected": summary["rejected"],
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
    for index, pair in enumerate(test):
        result = segment_image(segmenter, pair.image, watershed=True)
        name = f"test_{index}"
        write_tiff(out / "segmentation" / f"{name}_image.tif", pair.image)
        write_tiff(out / "segmentation" / f"{name}_instances.tif", result.instances)
        write_csv(out / "segmentation" / f"{name}_particles.csv", table_rows(result.table))
        scores.append(score_image(pair.instances, result.instances, name))
        counts.append((int(result.instances.max()), pair.info["visible_particles"]))
    real = segment_image(
        segmenter, scan.astype(np.float32) / 255, watershed=True, pixel_size_nm=TIO2_PIXEL_SIZE_NM
    )
    name = f"real_{TIO2_DEFAULT_ID}"
    write_tiff(
        out / "segmentation" / f"{name}_instances.tif",
        real.instances,
        pixel_size_nm=TIO2_PIXEL_SIZE_NM,
    )
    write_csv(out / "segmentation" / f"{name}_particles.csv", table_rows(real.table))
    real_score = score_image(manual, real.instances, name)
    report["segmentation"] = {
        "folder": str(out / "segmentation"),
        "dsc": float(np.mean([s.dsc for s in scores])),
        "ap50": float(np.mean([s.ap50 for s in scores])),
        "pq": float(np.mean([s.pq for s in scores])),
        "particles_found_vs_true": counts,
        "real": {
            "dsc": real_score.dsc,
            "ap50": real_score.ap50,
            "pq": real_score.pq,
            "particles_found": int(real.instances.max()),
            "particles_manual": int(manual.max()),
            "median_diameter_nm": _median(real.table["equivalent_diameter_nm"]),
            "manual_median_diameter_nm": _median(
                particle_table(manual, TIO2_PIXEL_SIZE_NM)["equivalent_diameter_nm"]
            ),
        },
    }
    stage("segmentation", started)

    if "agnw-sem" in scenes:
        started = time.perf_counter()
        result = analyse(scenes["agnw-sem"].mask)
        write_outputs(result, out / "thickness", "agnw-sem")
        report["thickness"] = {"folder": str(out / "thickness"), **result.summary()}
        stage("thickness", started)
    return report


def _median(values) -> float:
    return float(np.median(values)) if len(values) else float("nan")
