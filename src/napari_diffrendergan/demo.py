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
(:func:`~.sample_data.demo_scan`), and the report compares what the GAN learned with them.
:func:`report_lines` says what was made and where; :func:`overview` draws the results on one
page.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    demo = _Demo(Path(out), spp, seed, device, ensure(monitor))
    with demo.timed("scenes"):
        scenes = _render_scenes(demo, presets)
    with demo.timed("patches"):
        scan, patches = _cut_patches(demo)
    with demo.timed("GAN training"):
        run = _train_gan(demo, patches, gan_epochs)
    with demo.timed("synthetic data"):
        dataset, test = _synthetic_data(demo, run, patches, train_images, test_images)
    with demo.timed("nnU-Net training"):
        model = _train_nnunet(demo, dataset, seg_iterations)
    with demo.timed("segmentation"):
        _segmentation(demo, model, test, scan)
    if "agnw-sem" in scenes:
        with demo.timed("thickness"):
            _thickness(demo, scenes["agnw-sem"])
    demo.report["seg_iterations"] = seg_iterations
    return demo.report


@dataclass
class _Demo:
    """What the stages share: the output folder, the render settings, the monitor, and the
    report each stage adds its part to."""

    out: Path
    spp: int
    seed: int
    device: str
    monitor: Monitor
    report: dict = field(init=False)

    def __post_init__(self) -> None:
        self.report = {"out": str(self.out), "timings": {}}

    @contextmanager
    def timed(self, stage: str):
        """Time ``stage`` into the report (a stage that fails has no time)."""
        started = time.perf_counter()
        yield
        self.report["timings"][stage] = time.perf_counter() - started


def _render_scenes(demo: _Demo, presets) -> dict:
    """One annotated scene per preset, in ``scenes/<preset>``."""
    from .config import preset
    from .render.sampling import render_sample, write_sample

    scenes = {}
    for name in presets:
        config = preset(name)
        config.scene.spp = demo.spp
        scenes[name] = render_sample(
            config, seed=demo.seed, device=demo.device, monitor=demo.monitor.stage(name)
        )
        write_sample(scenes[name], demo.out / "scenes" / name)
    demo.report["scenes"] = {name: s.info for name, s in scenes.items()}
    return scenes


def _cut_patches(demo: _Demo):
    """The scan, and the patch set cut from it (its labels unused) in ``patches``."""
    from .data.patches import PatchSet, cut_patches
    from .sample_data import demo_scan

    scan = demo_scan(seed=demo.seed, device=demo.device)
    demo.report["scan"] = {"name": scan.name, "source": scan.source, "truth": scan.truth}
    patches, pixels, _ = cut_patches(scan.image, scan.name)
    folder = demo.out / "patches"
    if not PatchSet.is_patch_set(folder):
        PatchSet.save(folder, patches, pixels, scan.pixel_size_nm, {"source": scan.source})
    demo.report["patches"] = {
        "folder": str(folder),
        "particle": sum(p.role == "particle" for p in patches),
        "background": sum(p.role == "background" for p in patches),
    }
    return scan, folder


def _train_gan(demo: _Demo, patches: Path, epochs: int):
    """DiffRenderGAN on the patches (the tio2-sem preset) in ``gan``, resumed if there."""
    from .config import preset
    from .gan.run import GanRun, TrainingSettings
    from .gan.training import train_iter

    run = GanRun(demo.out / "gan")
    if not run.exists:
        config = preset("tio2-sem")
        config.scene.spp = demo.spp
        settings = TrainingSettings(epochs=epochs, seed=demo.seed, device=demo.device)
        run = GanRun.create(run.folder, patches, config, settings)
    for _ in train_iter(run, monitor=demo.monitor.stage("GAN")):
        pass
    metrics = run.metrics()
    best = metrics["best_epoch"]
    trained = [e for e in metrics["epochs"] if e["epoch"] > 0]
    demo.report["gan"] = {
        "folder": str(run.folder),
        "fid": [e["fid"] for e in trained],
        "best_epoch": best,
        "seconds_per_iteration": trained[-1]["seconds_per_iteration"],
        "parameters": {
            k: v["mean"]
            for k, v in next(e for e in trained if e["epoch"] == best)["parameters"].items()
        },
    }
    return run


def _synthetic_data(demo: _Demo, run, patches: Path, train_images: int, test_images: int):
    """The nnU-Net dataset from the run's best epoch (+ the scan's background patches) and
    ``test_images`` held-out pairs."""
    from .gan.synthesis import PairRenderer, generate

    dataset = demo.out / "dataset" / "Dataset001_DemoTiO2"
    summary = generate(
        run.folder,
        dataset,
        train_images,
        seed=demo.seed,
        spp=4,
        background_patches=patches,
        n_background=max(1, train_images // 6),
        device=demo.device,
        monitor=demo.monitor.stage("synthetic pairs"),
    )
    renderer = PairRenderer(run.generator(), seed=demo.seed, spp=4, device=demo.device)
    test = [renderer.render(train_images + i) for i in range(test_images)]  # held out
    demo.report["dataset"] = {
        "folder": str(dataset),
        "images": train_images,
        "background": summary["background_patches"],
        "rejected": summary["rejected"],
    }
    return dataset, test


def _train_nnunet(demo: _Demo, dataset: Path, iterations: int) -> Path:
    """The small nnU-Net trained on the dataset in ``model`` (resumed, or reused if done)."""
    from .segment.model import ModelFolder
    from .segment.training import train_model

    model = ModelFolder(demo.out / "model")
    if not model.is_complete:
        train_model(
            dataset,
            model.folder,
            iterations=iterations,
            device=demo.device,
            resume=model.workspace.is_dir(),
            monitor=demo.monitor.stage("nnU-Net"),
        )
    demo.report["model"] = str(model.folder)
    return model.folder


def _segmentation(demo: _Demo, model: Path, test: list, scan) -> None:
    """The held-out pairs and the scan segmented into ``segmentation``, scored against their
    labels."""
    from .segment.predict import Segmenter

    segmenter = Segmenter(model, device=demo.device)
    folder = demo.out / "segmentation"
    scores, counts = _segment_held_out(demo, segmenter, test, folder)
    demo.report["segmentation"] = {
        "folder": str(folder),
        "dsc": float(np.mean([s.dsc for s in scores])),
        "ap50": float(np.mean([s.ap50 for s in scores])),
        "pq": float(np.mean([s.pq for s in scores])),
        "particles_found_vs_true": counts,
        "real": _segment_scan(segmenter, scan, folder),
    }


def _segment_held_out(demo: _Demo, segmenter, test: list, folder: Path):
    """Each held-out pair segmented into ``test_<i>_*`` files: its scores and (particles
    found, visible)."""
    from .analysis.evaluation import score_image
    from .analysis.particles import table_rows
    from .io import write_csv, write_tiff
    from .segment.predict import segment_image

    scores, counts = [], []
    for index, pair in enumerate(test):
        demo.monitor.check()
        result = segment_image(segmenter, pair.image)
        name = f"test_{index}"
        write_tiff(folder / f"{name}_image.tif", pair.image)
        write_tiff(folder / f"{name}_instances.tif", result.instances)
        write_csv(folder / f"{name}_particles.csv", table_rows(result.table))
        scores.append(score_image(pair.instances, result.instances, name, "instances", "instances"))
        counts.append((int(result.instances.max()), pair.info["visible_particles"]))
    return scores, counts


def _segment_scan(segmenter, scan, folder: Path) -> dict:
    """The scan segmented into ``scan_*`` files (in nm): scores, particles and median sizes
    against its labels."""
    from .analysis.evaluation import score_image
    from .analysis.particles import particle_table, table_rows
    from .io import write_csv, write_tiff
    from .segment.predict import segment_image

    real = segment_image(segmenter, scan.image, pixel_size_nm=scan.pixel_size_nm)
    name = "scan"
    for kind, data in (("image", scan.image), ("labels", scan.instances)):
        write_tiff(folder / f"{name}_{kind}.tif", data, pixel_size_nm=scan.pixel_size_nm)
    write_tiff(folder / f"{name}_instances.tif", real.instances, pixel_size_nm=scan.pixel_size_nm)
    write_csv(folder / f"{name}_particles.csv", table_rows(real.table))
    score = score_image(scan.instances, real.instances, name, "instances", "instances")
    return {
        "dsc": score.dsc,
        "ap50": score.ap50,
        "pq": score.pq,
        "particles_found": int(real.instances.max()),
        "particles_manual": int(scan.instances.max()),
        "median_diameter_nm": _median(real.table["equivalent_diameter_nm"]),
        "manual_median_diameter_nm": _median(
            particle_table(scan.instances, scan.pixel_size_nm)["equivalent_diameter_nm"]
        ),
    }


def _thickness(demo: _Demo, scene) -> None:
    """Local thickness of the nanowire scene's mask, in ``thickness``."""
    from .analysis.thickness import analyse, write_outputs

    result = analyse(scene.mask)
    write_outputs(result, demo.out / "thickness", "agnw-sem")
    demo.report["thickness"] = {"folder": str(demo.out / "thickness"), **result.summary()}


def _median(values) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def report_lines(report: dict, seconds: float) -> list[str]:
    """What the demo made and where, as printed by the CLI."""
    out = Path(report["out"])
    backend = next(iter(report["scenes"].values()))["backend"]
    return [
        f"diffrendergan demo finished in {seconds:.0f} s ({backend})",
        "",
        *_scene_lines(report),
        *_training_lines(report),
        *_segmentation_lines(report),
        *_thickness_lines(report),
        f"Overview figure: {out / 'overview.png'}",
        "Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["timings"].items()),
    ]


def _scene_lines(report: dict) -> list[str]:
    """1: the rendered scenes."""
    lines = [
        f"1. Rendered scenes ({Path(report['out']) / 'scenes'}): image.tif, instances.tif, "
        "mask.tif (0 background, 1 particle, 2 contour), scene.json",
    ]
    for name, info in report["scenes"].items():
        contrast = "ok" if info["contrast"]["accepted"] else "rejected by contrast filter"
        lines.append(
            f"   {name:9s} {info['visible_particles']:3d}/{len(info['phi'])} particles "
            f"visible, {contrast}"
        )
    return lines


def _training_lines(report: dict) -> list[str]:
    """2-5: the scan and its patches, the GAN, the synthetic dataset, the nnU-Net."""
    p, source, gan, data = report["patches"], report["scan"], report["gan"], report["dataset"]
    truth = source["truth"]
    learned = ", ".join(
        f"{k} {v:.3g}" + (f" (hidden truth {truth[k]:.3g})" if k in truth else "")
        for k, v in gan["parameters"].items()
    )
    return [
        f"2. Scan: {source['source']}. Patches from it (labels unused): {p['particle']} "
        f"particle, {p['background']} background patches in {p['folder']}",
        f"3. DiffRenderGAN: {len(gan['fid'])} epochs ({gan['seconds_per_iteration']:.2f} s per "
        f"iteration), FID per epoch {', '.join(f'{f:.0f}' for f in gan['fid'])}, best epoch "
        f"{gan['best_epoch']}; learned means: {learned}; run folder {gan['folder']}",
        f"4. Synthetic nnU-Net dataset from the best epoch: {data['images']} TiO2 images "
        f"({data['rejected']} rejected by the contrast filter) + {data['background']} real "
        f"background patches in {data['folder']}",
        f"5. nnU-Net (small, {report['seg_iterations']} iterations) trained: {report['model']}",
    ]


def _segmentation_lines(report: dict) -> list[str]:
    """6-7: the held-out synthetic images and the scan segmented."""
    seg = report["segmentation"]
    found = ", ".join(f"{a}/{b}" for a, b in seg["particles_found_vs_true"])
    real = seg["real"]
    labels = "exact labels" if report["scan"]["truth"] else "manual masks"
    return [
        f"6. Segmented {len(seg['particles_found_vs_true'])} held-out synthetic images: "
        f"Dice {seg['dsc']:.3f}, AP50 {seg['ap50']:.3f}, PQ {seg['pq']:.3f}; particles "
        f"found/true {found}",
        f"7. Segmented the scan: Dice {real['dsc']:.3f}, AP50 {real['ap50']:.3f}, PQ "
        f"{real['pq']:.3f} against its {labels}; {real['particles_found']} particles found "
        f"({real['particles_manual']} labelled), median equivalent diameter "
        f"{real['median_diameter_nm']:.1f} nm (manual {real['manual_median_diameter_nm']:.1f} "
        f"nm); statistics CSVs in {seg['folder']}",
    ]


def _thickness_lines(report: dict) -> list[str]:
    """8: the nanowire scene's local thickness (when it was rendered)."""
    if "thickness" not in report:
        return []
    t = report["thickness"]
    return [
        f"8. Nanowire local thickness: median wire diameter {t['median']:.1f} "
        f"{t['unit']}, {t['n_wires']} wire component(s); map, CSVs, histogram in "
        f"{t['folder']}"
    ]


def overview_figure(report: dict, path: str | Path) -> None:
    """:func:`overview` written to ``path`` (PNG)."""
    from .io import write_figure

    write_figure(path, overview(report), dpi=80)


def overview(report: dict):
    """What the demo made, on one page: the scan, its segmentation and particle sizes (found
    vs labelled); synthetic vs real patches, the GAN's FID per epoch and the nanowire
    thickness map; the rendered preset scenes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 12), layout="constrained")
    grid = figure.add_gridspec(3, 3, height_ratios=[1.15, 1, 0.8])
    folder = Path(report["segmentation"]["folder"])
    _scan_panels([figure.add_subplot(grid[0, i]) for i in range(3)], folder, report)
    _patch_panel(grid[1, 0].subgridspec(2, 3), figure, report)
    _fid_panel(figure.add_subplot(grid[1, 1]), report)
    _thickness_panel(figure.add_subplot(grid[1, 2]), report)
    scenes = list(report["scenes"])
    row = grid[2, :].subgridspec(1, max(len(scenes), 1))
    for column, name in enumerate(scenes):
        _image_panel(figure.add_subplot(row[0, column]), _tiff(_scene(report, name)), name)
    figure.suptitle("diffrendergan demo: what the pipeline made", fontsize=11)
    return figure


def _tiff(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def _scene(report: dict, name: str) -> Path:
    return Path(report["out"]) / "scenes" / name / "image.tif"


def _image_panel(ax, image: np.ndarray, title: str, cmap: str = "gray") -> None:
    ax.imshow(image, cmap=cmap)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _scan_panels(axes, folder: Path, report: dict) -> None:
    """The scan, its segmentation's outlines over it, and the particle sizes found vs
    labelled."""
    from skimage.segmentation import find_boundaries

    from .analysis.particles import particle_table
    from .io import read_sidecar

    image = _tiff(folder / "scan_image.tif")
    found, labelled = _tiff(folder / "scan_instances.tif"), _tiff(folder / "scan_labels.tif")
    pixel_size = read_sidecar(folder / "scan_image.tif").get("pixel_size_nm")
    _image_panel(axes[0], image, report["scan"]["name"])
    _image_panel(axes[1], image, f"segmented: {found.max()} particles ({labelled.max()} labelled)")
    edges = find_boundaries(found)
    axes[1].imshow(np.ma.masked_where(~edges, edges), cmap="autumn", interpolation="nearest")
    unit = "nm" if pixel_size else "px"
    column = f"equivalent_diameter_{unit}"
    sizes = [particle_table(i, pixel_size)[column] for i in (found, labelled)]
    joined = np.concatenate(sizes)
    bins = np.histogram_bin_edges(joined, bins=30) if len(joined) else 10
    axes[2].hist(sizes[0], bins=bins, color="tab:orange", label="segmented")
    axes[2].hist(sizes[1], bins=bins, histtype="step", color="black", label="labelled")
    axes[2].set_title("particle sizes", fontsize=9)
    axes[2].set_xlabel(f"equivalent diameter ({unit})")
    axes[2].set_ylabel("particles")
    axes[2].legend(fontsize=7)


def _patch_panel(grid, figure, report: dict) -> None:
    """Three synthetic images of the dataset above three real particle patches."""
    from .data.dataset import NnunetDataset, pair_name
    from .data.patches import PatchSet
    from .gan.plots import plot_comparison

    dataset = NnunetDataset(report["dataset"]["folder"])
    synthetic = [_tiff(dataset.image_path(pair_name(i))) for i in range(3)]
    patch_set = PatchSet.open(report["patches"]["folder"])
    real = patch_set.read_stack(patch_set.with_role("particle")[:3])
    real = real / patch_set.intensity_range(real)
    count = min(len(synthetic), len(real))
    axes = np.array([[figure.add_subplot(grid[r, c]) for c in range(count)] for r in range(2)])
    plot_comparison(axes, synthetic, real)


def _fid_panel(ax, report: dict) -> None:
    from .gan.plots import plot_fid
    from .gan.run import GanRun

    plot_fid(ax, GanRun(report["gan"]["folder"]).metrics())


def _thickness_panel(ax, report: dict) -> None:
    """The nanowire scene's local-thickness map (when agnw-sem was rendered)."""
    from .analysis.thickness import output_paths
    from .gan.plots import no_data

    if "thickness" not in report:
        no_data(ax, "nanowire local thickness", "agnw-sem was not among the demo's presets")
        return
    thickness = _tiff(output_paths(report["thickness"]["folder"], "agnw-sem")["thickness"])
    median, unit = report["thickness"]["median"], report["thickness"]["unit"]
    shown = ax.imshow(np.ma.masked_equal(thickness, 0), cmap="viridis")
    ax.figure.colorbar(shown, ax=ax, shrink=0.8, label=unit)
    ax.set_title(f"nanowire local thickness (median {median:.1f} {unit})", fontsize=9)
    ax.set_axis_off()
