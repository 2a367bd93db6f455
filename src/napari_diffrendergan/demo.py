"""``diffrendergan demo``: the whole pipeline on the built-in TiO2 SEM sample, at a small budget.

Renders one annotated scene per preset; cuts patches from the sample scan (its labels are not
used), trains DiffRenderGAN on them for a few epochs, generates a synthetic TiO2 training set
from the best epoch (+ background patches of the scan), trains the small nnU-Net on it,
segments held-out synthetic images (scored against their known labels) and the scan (scored
against its labels, particle statistics in nm), splitting touching particles at the
network's probability dips as the TiO2 experiment chose; measures local thickness on the
nanowire scene.

The scan is the real TiO2 SEM sample when it can be had (``DIFFRENDERGAN_TIO2_SEM_DIR``, the
download cache, or a download); otherwise (offline) a stand-in rendered with hidden parameters
(:func:`~.data.sample_data.demo_scan`), and the report compares what the GAN learned with them.
:func:`report_lines` says what was made and where; :func:`overview_figure` draws the scenes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .progress import Monitor, ensure


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
    monitor: Monitor | None = None,
) -> dict:
    """Run the demo into ``out`` (resumable: finished stages are reused); ``monitor`` follows
    each stage. Returns what was made, for the report."""
    from .analysis.evaluation import score_image
    from .analysis.particles import particle_table, table_rows
    from .analysis.thickness import analyse, write_outputs
    from .config import preset
    from .data.patches import PatchSet, cut_patches
    from .data.sample_data import demo_scan
    from .data.synthesis import PairRenderer, generate
    from .gan.run import GanRun, TrainingSettings
    from .gan.training import train_iter
    from .io import write_csv, write_tiff
    from .render.sampling import render_sample, write_sample
    from .segment.model import ModelFolder
    from .segment.predict import Segmenter, segment_image
    from .segment.training import train_model

    monitor = ensure(monitor)
    out = Path(out)
    report: dict = {"out": str(out), "timings": {}}

    def stage(name, started):
        report["timings"][name] = time.perf_counter() - started

    started = time.perf_counter()
    scenes = {}
    for name in presets:
        config = preset(name)
        config.scene.spp = spp
        scenes[name] = render_sample(config, seed=seed, device=device, monitor=monitor.stage(name))
        write_sample(scenes[name], out / "scenes" / name)
    report["scenes"] = {name: s.info for name, s in scenes.items()}
    stage("scenes", started)

    started = time.perf_counter()
    scan = demo_scan(seed=seed, device=device)
    report["scan"] = {"name": scan.name, "source": scan.source, "truth": scan.truth}
    patches, pixels, _ = cut_patches(scan.image, scan.name)
    patch_folder = out / "patches"
    if not PatchSet.is_patch_set(patch_folder):
        PatchSet.save(patch_folder, patches, pixels, scan.pixel_size_nm, {"source": scan.source})
    report["patches"] = {
        "folder": str(patch_folder),
        "particle": sum(p.role == "particle" for p in patches),
        "background": sum(p.role == "background" for p in patches),
    }
    stage("patches", started)

    started = time.perf_counter()
    run = GanRun(out / "gan")
    config = preset("tio2-sem")
    config.scene.spp = spp
    if not run.exists:
        settings = TrainingSettings(epochs=gan_epochs, seed=seed, device=device)
        run = GanRun.create(run.folder, patch_folder, config, settings)
    for _ in train_iter(run, monitor=monitor.stage("GAN")):
        pass
    metrics = run.metrics()
    best = metrics["best_epoch"]
    trained = [e for e in metrics["epochs"] if e["epoch"] > 0]
    report["gan"] = {
        "folder": str(run.folder),
        "fid": [e["fid"] for e in trained],
        "best_epoch": best,
        "seconds_per_iteration": trained[-1]["seconds_per_iteration"],
        "parameters": {
            k: v["mean"]
            for k, v in next(e for e in trained if e["epoch"] == best)["parameters"].items()
        },
    }
    stage("GAN training", started)

    started = time.perf_counter()
    dataset = out / "dataset" / "Dataset001_DemoTiO2"
    summary = generate(
        run.folder,
        dataset,
        train_images,
        seed=seed,
        spp=4,
        background_patches=patch_folder,
        n_background=max(1, train_images // 6),
        device=device,
        monitor=monitor.stage("synthetic pairs"),
    )
    renderer = PairRenderer(run.generator(), seed=seed, spp=4, device=device)
    test = [renderer.render(train_images + i) for i in range(test_images)]  # held out
    report["dataset"] = {
        "folder": str(dataset),
        "images": train_images,
        "background": summary["background_patches"],
        "rejected": summary["rejected"],
    }
    stage("synthetic data", started)

    started = time.perf_counter()
    model = ModelFolder(out / "model")
    if not model.is_complete:
        train_model(
            dataset,
            model.folder,
            iterations=seg_iterations,
            device=device,
            resume=model.workspace.is_dir(),
            monitor=monitor.stage("nnU-Net"),
        )
    report["model"] = str(model.folder)
    stage("nnU-Net training", started)

    started = time.perf_counter()
    segmenter = Segmenter(model.folder, device=device)
    folder = out / "segmentation"
    scores, counts = [], []
    for index, pair in enumerate(test):
        monitor.check()
        result = segment_image(segmenter, pair.image)
        name = f"test_{index}"
        write_tiff(folder / f"{name}_image.tif", pair.image)
        write_tiff(folder / f"{name}_instances.tif", result.instances)
        write_csv(folder / f"{name}_particles.csv", table_rows(result.table))
        scores.append(score_image(pair.instances, result.instances, name, "instances", "instances"))
        counts.append((int(result.instances.max()), pair.info["visible_particles"]))
    real = segment_image(segmenter, scan.image, pixel_size_nm=scan.pixel_size_nm)
    name = "scan"
    write_tiff(folder / f"{name}_instances.tif", real.instances, pixel_size_nm=scan.pixel_size_nm)
    write_csv(folder / f"{name}_particles.csv", table_rows(real.table))
    real_score = score_image(scan.instances, real.instances, name, "instances", "instances")
    report["segmentation"] = {
        "folder": str(folder),
        "dsc": float(np.mean([s.dsc for s in scores])),
        "ap50": float(np.mean([s.ap50 for s in scores])),
        "pq": float(np.mean([s.pq for s in scores])),
        "particles_found_vs_true": counts,
        "real": {
            "dsc": real_score.dsc,
            "ap50": real_score.ap50,
            "pq": real_score.pq,
            "particles_found": int(real.instances.max()),
            "particles_manual": int(scan.instances.max()),
            "median_diameter_nm": _median(real.table["equivalent_diameter_nm"]),
            "manual_median_diameter_nm": _median(
                particle_table(scan.instances, scan.pixel_size_nm)["equivalent_diameter_nm"]
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
    report["seg_iterations"] = seg_iterations
    return report


def _median(values) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def report_lines(report: dict, seconds: float) -> list[str]:
    """What the demo made and where, as printed by the CLI."""
    out = Path(report["out"])
    scenes = report["scenes"]
    lines = [
        f"diffrendergan demo finished in {seconds:.0f} s "
        f"({next(iter(scenes.values()))['backend']})",
        "",
        f"1. Rendered scenes ({out / 'scenes'}): image.tif, instances.tif, mask.tif "
        "(0 background, 1 particle, 2 contour), scene.json",
    ]
    for name, info in scenes.items():
        contrast = "ok" if info["contrast"]["accepted"] else "rejected by contrast filter"
        lines.append(
            f"   {name:9s} {info['visible_particles']:3d}/{len(info['phi'])} particles "
            f"visible, {contrast}"
        )
    p, source = report["patches"], report["scan"]
    lines.append(
        f"2. Scan: {source['source']}. Patches from it (labels unused): {p['particle']} "
        f"particle, {p['background']} background patches in {p['folder']}"
    )
    gan = report["gan"]
    truth = source["truth"]
    learned = ", ".join(
        f"{k} {v:.3g}" + (f" (hidden truth {truth[k]:.3g})" if k in truth else "")
        for k, v in gan["parameters"].items()
    )
    lines.append(
        f"3. DiffRenderGAN: {len(gan['fid'])} epochs ({gan['seconds_per_iteration']:.2f} s per "
        f"iteration), FID per epoch {', '.join(f'{f:.0f}' for f in gan['fid'])}, best epoch "
        f"{gan['best_epoch']}; learned means: {learned}; run folder {gan['folder']}"
    )
    data = report["dataset"]
    lines.append(
        f"4. Synthetic nnU-Net dataset from the best epoch: {data['images']} TiO2 images "
        f"({data['rejected']} rejected by the contrast filter) + {data['background']} real "
        f"background patches in {data['folder']}"
    )
    lines.append(
        f"5. nnU-Net (small, {report['seg_iterations']} iterations) trained: {report['model']}"
    )
    seg = report["segmentation"]
    found = ", ".join(f"{a}/{b}" for a, b in seg["particles_found_vs_true"])
    lines.append(
        f"6. Segmented {len(seg['particles_found_vs_true'])} held-out synthetic images: "
        f"Dice {seg['dsc']:.3f}, AP50 {seg['ap50']:.3f}, PQ {seg['pq']:.3f}; particles "
        f"found/true {found}"
    )
    real = seg["real"]
    labels = "exact labels" if truth else "manual masks"
    lines.append(
        f"7. Segmented the scan: Dice {real['dsc']:.3f}, AP50 {real['ap50']:.3f}, PQ "
        f"{real['pq']:.3f} against its {labels}; {real['particles_found']} particles found "
        f"({real['particles_manual']} labelled), median equivalent diameter "
        f"{real['median_diameter_nm']:.1f} nm (manual {real['manual_median_diameter_nm']:.1f} "
        f"nm); statistics CSVs in {seg['folder']}"
    )
    if "thickness" in report:
        t = report["thickness"]
        lines.append(
            f"8. Nanowire local thickness: median wire diameter {t['median']:.1f} "
            f"{t['unit']}, {t['n_wires']} wire component(s); map, CSVs, histogram in "
            f"{t['folder']}"
        )
    lines.append(f"Overview figure: {out / 'overview.png'}")
    lines.append("Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["timings"].items()))
    return lines


def overview_figure(report: dict, path: str | Path) -> None:
    """One column per rendered scene: the image above its mask."""
    import tifffile
    from matplotlib.figure import Figure

    from .io import write_figure

    folders = [Path(report["out"]) / "scenes" / name for name in report["scenes"]]
    figure = Figure(figsize=(3 * len(folders), 6))
    axes = figure.subplots(2, len(folders), squeeze=False)
    for column, folder in enumerate(folders):
        axes[0, column].imshow(tifffile.imread(folder / "image.tif"), cmap="gray")
        axes[0, column].set_title(folder.name)
        axes[1, column].imshow(
            tifffile.imread(folder / "mask.tif"),
            cmap="viridis",
            vmin=0,
            vmax=2,
            interpolation="nearest",
        )
        axes[1, column].set_title("mask (particle, contour)", fontsize=9)
        for ax in axes[:, column]:
            ax.set_axis_off()
    figure.tight_layout()
    write_figure(path, figure, dpi=80)
