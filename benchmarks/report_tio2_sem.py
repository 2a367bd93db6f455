"""Markdown report and figures of a ``tio2_sem.py`` experiment (its last stage)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from tio2_data import PAPER, PIXEL_SIZE_NM, TARGETS

FIGURE_PREFIX = "tio2_sem_"


def _scores(experiment, which: str) -> list[dict]:
    return json.loads((experiment.out / "predictions" / which / "scores.json").read_text())


def _mean(scores: list[dict], key: str) -> float:
    return float(np.mean([s[key] for s in scores]))


def _diameters(folder: Path, ids) -> np.ndarray:
    import csv

    values = []
    for image_id in ids:
        with open(folder / f"{image_id}_particles.csv") as handle:
            values += [float(row["equivalent_diameter_nm"]) for row in csv.DictReader(handle)]
    return np.asarray(values)


def _manual_diameters(experiment) -> np.ndarray:
    from skimage.measure import label

    from napari_diffrendergan.analysis.particles import particle_table

    values = []
    for image_id in experiment.validation_ids:
        _, manual = experiment.scan(image_id)
        table = particle_table(label(manual, connectivity=1), PIXEL_SIZE_NM)
        values += list(table["equivalent_diameter_nm"])
    return np.asarray(values)


SPECK_PIXELS = 10  # manual components smaller than this are specks, not particles


def _scores_without_specks(experiment, which: str) -> list:
    """Scores against the manual masks without components under :data:`SPECK_PIXELS` pixels
    (single pixels and corners cut off by the masks' 1-px separation lines)."""
    from skimage.measure import label

    from napari_diffrendergan.analysis.evaluation import score_image
    from napari_diffrendergan.io import read_image

    scores = []
    for image_id in experiment.validation_ids:
        _, manual = experiment.scan(image_id)
        truth = label(manual, connectivity=1)
        truth[np.bincount(truth.ravel())[truth] < SPECK_PIXELS] = 0
        pred = read_image(experiment.out / "predictions" / which / f"{image_id}_instances.tif")[0]
        scores.append(score_image(truth, pred, image_id, "instances", "instances"))
    return scores


def size_figure(path: Path, diameters: dict[str, np.ndarray]) -> None:
    from matplotlib.figure import Figure

    top = np.percentile(np.concatenate(list(diameters.values())), 99.5)
    bins = np.linspace(0, top, 40)
    fig = Figure(figsize=(7, 3.6), dpi=110)
    ax = fig.add_subplot()
    colours = ("black", "tab:orange", "tab:blue")
    for (name, values), colour in zip(diameters.items(), colours, strict=True):
        ax.hist(
            values,
            bins,
            histtype="step",
            linewidth=1.6,
            color=colour,
            label=f"{name}: n = {len(values)}, median {np.median(values):.0f} nm",
        )
    ax.set_xlabel("equivalent diameter (nm)")
    ax.set_ylabel("particles")
    ax.set_title("Particle sizes on the validation scans")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def overlay_figure(path: Path, experiment, image_id: str, scores: dict[str, list[dict]]) -> None:
    """Side-by-side TP/FP/FN overlays of both models on one validation scan."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from napari_diffrendergan.analysis.evaluation import MATCH_COLOURS, match_overlay
    from napari_diffrendergan.io import read_image

    image, manual = experiment.scan(image_id)
    fig = Figure(figsize=(12, 4.6), dpi=110)
    axes = fig.subplots(1, 2)
    for ax, which in zip(axes, ("synthetic", "real"), strict=True):
        pred = read_image(experiment.out / "predictions" / which / f"{image_id}_instances.tif")[0]
        ax.imshow(match_overlay(image, manual, pred, "binary", "instances"))
        score = next(s for s in scores[which] if s["name"] == image_id)
        ax.set_title(
            f"{'synthetic-only (DiffRenderGAN)' if which == 'synthetic' else 'real-trained'}: "
            f"Dice {score['dsc']:.3f}, AP50 {score['ap50']:.3f}, PQ {score['pq']:.3f}",
            fontsize=9,
        )
        ax.axis("off")
    handles = [Patch(color=np.array(c) / 255, label=n) for n, c in MATCH_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(f"Validation scan {image_id} (manual mask as truth)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path)


def write_report(experiment, docs: Path | None) -> Path:
    from napari_diffrendergan.data.dataset import NnunetDataset
    from napari_diffrendergan.gan.run import GanRun
    from napari_diffrendergan.segment.model import ModelFolder

    out, settings = experiment.out, experiment.settings
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    scores = {which: _scores(experiment, which) for which in ("synthetic", "real")}
    means = {which: {k: _mean(s, k) for k in ("dsc", "ap50", "pq")} for which, s in scores.items()}
    counts = {which: sum(x["n_pred"] for x in s) for which, s in scores.items()}
    manual_count = sum(x["n_true"] for x in scores["real"])
    run = GanRun(out / "gan")
    metrics = run.metrics()
    best = metrics["best_epoch"]
    patches = json.loads((out / "patches.done").read_text())
    generation = NnunetDataset(out / "synthetic" / "Dataset001_TiO2Synthetic").generation()
    model_info = {
        which: ModelFolder(out / f"model_{which}").metadata() for which in ("synthetic", "real")
    }

    diameters = {
        "manual": _manual_diameters(experiment),
        "synthetic-only": _diameters(out / "predictions" / "synthetic", experiment.validation_ids),
        "real-trained": _diameters(out / "predictions" / "real", experiment.validation_ids),
    }
    size_figure(figures / f"{FIGURE_PREFIX}sizes.png", diameters)
    ranked = sorted(scores["synthetic"], key=lambda s: s["dsc"])
    shown = [ranked[len(ranked) // 2]["name"], ranked[0]["name"]]  # median and worst
    for image_id in shown:
        overlay_figure(
            figures / f"{FIGURE_PREFIX}overlay_{image_id}.png", experiment, image_id, scores
        )
    shutil.copy2(run.fid_figure, figures / f"{FIGURE_PREFIX}fid.png")
    shutil.copy2(run.preview_figure(best), figures / f"{FIGURE_PREFIX}gan.png")

    timings = experiment.timings
    total = sum(timings.values())
    lines = [
        "# TiO2 SEM: synthetic-only vs real-trained nnU-Net (the paper's Table 1 on a CPU budget)",
        "",
        "Produced by `benchmarks/tio2_sem.py "
        f"--budget {settings['budget']}` (seed {settings['seed']}, device {settings['device']}).",
        "",
        f"- Data: 32 real TiO2 SEM scans (Rühle et al. 2021, CC BY-NC-ND 4.0), data bar removed, "
        f"7.34 nm/px. Training scans ({len(experiment.train_ids)}): "
        f"{', '.join(experiment.train_ids)}. Validation scans ({len(experiment.validation_ids)}, "
        f"never used for training or selection): {', '.join(experiment.validation_ids)}.",
        f"- DiffRenderGAN: {patches['particle']} particle patches (256²) from the training scans "
        f"without masks, preset `tio2-sem`, {settings['gan_epochs']} epochs, best epoch {best} "
        f"(FID {metrics['epochs'][best - 1]['fid']:.1f}).",
        f"- Synthetic dataset: {generation['synthetic_pairs']} pairs at spp {settings['spp']} "
        f"({generation['rejected']} rejected by the contrast filter) + "
        f"{generation['background_patches']} real background patches (of "
        f"{patches['background']} found in the training scans).",
        f"- nnU-Net: `{settings['seg_config']}` configuration, {settings['seg_iterations']} "
        "iterations for each model (synthetic-only: the synthetic dataset; real-trained: the "
        f"{len(experiment.train_ids)} training scans with their manual masks). Prediction: whole "
        "scan in one pass, no mirroring; instances = 4-connected particle-class components grown "
        "into their contour.",
        "",
        "## Results on the validation scans",
        "",
        "| training data | Dice | AP50 | PQ | particles found / manual |",
        "|---|---|---|---|---|",
    ]
    for name, (dsc, ap50, pq) in PAPER.items():
        lines.append(f"| {name} | {dsc:.3f} | {ap50:.3f} | {pq:.3f} | – |")
    for which, label in (
        ("synthetic", "DiffRenderGAN, synthetic only (ours)"),
        ("real", "real-trained (ours, same budget)"),
    ):
        m = means[which]
        lines.append(
            f"| **{label}** | {m['dsc']:.3f} | {m['ap50']:.3f} | {m['pq']:.3f} | "
            f"{counts[which]} / {manual_count} "
            f"({100 * (counts[which] / manual_count - 1):+.0f} %) |"
        )
    splitting = json.loads((out / "splitting.json").read_text())
    lines += [
        "",
        f"Instances: **{splitting['chosen']}**, chosen with the synthetic-only model by AP50 "
        f"pooled over {splitting['pairs']} held-out synthetic pairs and the "
        f"{splitting['background_patches']} real background patches the dataset left out (no "
        "real annotation involved): "
        + ", ".join(f"{k}: {v['ap50']:.3f}" for k, v in splitting["all"].items())
        + ". The same rule is applied to both models. With the contour class alone (no "
        "watershed, ≥ 4 px), the validation scores would be: "
        + "; ".join(
            f"{which} AP50 {_mean([x['contour_only'] for x in s], 'ap50'):.3f}, "
            f"PQ {_mean([x['contour_only'] for x in s], 'pq'):.3f}, "
            f"{sum(x['contour_only']['n_pred'] for x in s)} particles"
            for which, s in scores.items()
        )
        + ".",
    ]
    specks = {which: _scores_without_specks(experiment, which) for which in scores}
    n_specks = manual_count - sum(x.n_true for x in specks["real"])
    lines += [
        "",
        f"{n_specks} of the {manual_count} manual components are smaller than {SPECK_PIXELS} px "
        "(single pixels and corners cut off by the masks' 1-px separation lines); no prediction "
        "can match them. Without them: "
        + "; ".join(
            f"{which} AP50 {np.mean([x.ap50 for x in sp]):.3f}, "
            f"PQ {np.mean([x.pq for x in sp]):.3f}, "
            f"{sum(x.n_pred for x in sp)} found / {sum(x.n_true for x in sp)} manual"
            for which, sp in specks.items()
        )
        + ".",
    ]
    ratio = means["synthetic"]["dsc"] / means["real"]["dsc"]
    checks = [
        f"Dice ≥ {TARGETS['dsc']}: {means['synthetic']['dsc']:.3f}",
        f"AP50 ≥ {TARGETS['ap50']}: {means['synthetic']['ap50']:.3f}",
        f"PQ ≥ {TARGETS['pq']}: {means['synthetic']['pq']:.3f}",
        f"synthetic Dice ≥ 0.96 × real-trained Dice: {ratio:.3f} ×",
        f"counts within 5 %: {100 * (counts['synthetic'] / manual_count - 1):+.1f} %",
    ]
    passed = [
        means["synthetic"]["dsc"] >= TARGETS["dsc"],
        means["synthetic"]["ap50"] >= TARGETS["ap50"],
        means["synthetic"]["pq"] >= TARGETS["pq"],
        ratio >= 0.96,
        abs(counts["synthetic"] / manual_count - 1) <= 0.05,
    ]
    lines += ["", "Targets (synthetic only):", ""]
    lines += [
        f"- {'met' if ok else '**not met**'}: {text}"
        for text, ok in zip(checks, passed, strict=True)
    ]
    lines += [
        "",
        "Per validation scan:",
        "",
        "| scan | synthetic Dice | AP50 | PQ | found / manual "
        "| real-trained Dice | AP50 | PQ | found |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s, r in zip(scores["synthetic"], scores["real"], strict=True):
        lines.append(
            f"| {s['name']} | {s['dsc']:.3f} | {s['ap50']:.3f} | {s['pq']:.3f} | "
            f"{s['n_pred']} / {s['n_true']} | {r['dsc']:.3f} | {r['ap50']:.3f} | {r['pq']:.3f} | "
            f"{r['n_pred']} |"
        )
    lines += [
        "",
        "## Time (budget split)",
        "",
        "| stage | minutes |",
        "|---|---|",
    ]
    lines += [f"| {name} | {seconds / 60:.1f} |" for name, seconds in timings.items()]
    lines += [
        f"| **total** | **{total / 60:.1f}** |",
        "",
        "nnU-Net training alone: "
        + ", ".join(
            f"{which} {info['training_seconds'] / 60:.1f} min for {info['iterations']} iterations"
            for which, info in model_info.items()
        )
        + ".",
        "",
        "## DiffRenderGAN",
        "",
        "FID per epoch: "
        + ", ".join(f"{e['epoch']}: {e['fid']:.1f}" for e in metrics["epochs"])
        + f"; best epoch {best}.",
        "",
        f"![FID per epoch](images/{FIGURE_PREFIX}fid.png)",
        "",
        f"![Synthetic vs real patches at the best epoch](images/{FIGURE_PREFIX}gan.png)",
        "",
        "## Particle sizes",
        "",
        f"![Size distributions](images/{FIGURE_PREFIX}sizes.png)",
        "",
        "## Overlays",
        "",
        "Green: predicted particles matched to a manual one at IoU > 0.5 (true positives); red: "
        "unmatched predictions (false positives); blue: unmatched manual particles (false "
        "negatives). Shown: the validation scan with the median and the lowest synthetic-only "
        "Dice.",
        "",
    ]
    lines += [f"![Overlay {i}](images/{FIGURE_PREFIX}overlay_{i}.png)" for i in shown]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text.replace("](images/", "](figures/"))
    if docs:
        (docs / "images").mkdir(parents=True, exist_ok=True)
        for figure in figures.glob(f"{FIGURE_PREFIX}*.png"):
            if figure.name.startswith(f"{FIGURE_PREFIX}overlay_") and not any(
                figure.name.endswith(f"_{i}.png") for i in shown
            ):
                continue
            shutil.copy2(figure, docs / "images" / figure.name)
        (docs / "tio2-sem-experiment.md").write_text(text)
    return out / "report.md"
