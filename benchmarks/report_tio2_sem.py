"""Markdown and JSON report, and figures, of a ``tio2_sem.py`` experiment (its last stage).

Every figure comes from the experiment folder of one end-to-end run; the JSON carries the
commit that made it (``report.json``: per synthetic-only arm in ``arms`` (``calibrated``,
``handset``) its preset, ``fid`` per epoch incl. 0, ``fid_floor``, ``best_epoch``, learned
means, ``instance_rule`` and ``generation``; the first arm's also at the top level, as before the
arms existed; ``calibration``: the scene prior measured on the unannotated training scans;
``baselines``: whose rule the real-trained and classic models used and the classic polarity;
``budget_minutes``, ``checks`` and per model (``synthetic``: the calibrated arm,
``synthetic_handset``: the hand-set one, ``untrained[_handset]``, ``real``, ``classic``)
``dsc``, ``ap50``, ``pq``, ``pq_paper``, ``pq_instance``, ``ap50_coco`` (null where the run
predates it or the model has no confidences), ``found``, ``manual``, ``count_ratio``,
``merged``, ``missed``, ``split``, ``pieces``, ``false_positive`` with per-scan rows, and
``sizes``: the size agreement with the manual masks per scan and pooled, as ``diffrendergan
evaluate`` measures it, with ``fate_by_size``). ``markdown`` writes ``report.md`` from the
JSON alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from napari_diffrendergan.analysis.particles import MIN_AREA
from tio2_data import PAPER, PIXEL_SIZE_NM

FIGURE_PREFIX = "tio2_sem_"
PAPER_FID = 134  # Possart et al. 2025, Table S1, TiO2 SEM at the best epoch
LABELS = {  # by the models' keys in report.json
    "synthetic": "DiffRenderGAN, synthetic only, calibrated prior (ours)",
    "synthetic_handset": "DiffRenderGAN, synthetic only, hand-set preset (ours)",
    "untrained": "untrained generator (epoch 0), calibrated prior (ours)",
    "untrained_handset": "untrained generator (epoch 0), hand-set preset (ours)",
    "real": "real-trained (ours, same budget)",
    "classic": "classic: Otsu threshold + watershed (no training)",
}
ARM_LABELS = {"calibrated": "calibrated prior", "handset": "hand-set preset tio2-sem"}
# issue 42: the calibrated (annotation-free) arm
CALIBRATED_DICE = 0.945
AP50_MARGIN = 0.02  # below the hand-set arm's AP50
INVERTED_FID = 0.6  # × the untrained generator's FID, on the inverted scans
BRIGHT_DICE_MARGIN = 0.02  # inverted Dice against the bright run's
HANDSET_MODEL = "synthetic_handset"  # the hand-set arm's model key
SIZE_TARGETS = {"D50": 5.0, "D10": 10.0, "D90": 10.0}  # |error| in % of manual, synthetic only
DENSITY_TARGET = 10.0  # |error| in %
TARGETS = {  # synthetic only, on the validation scans
    "dsc": 0.95,
    "ap50": 0.60,
    "pq_instance": 0.70,
}


def _scores(experiment, name: str) -> list[dict]:
    return json.loads((experiment.out / "predictions" / name / "scores.json").read_text())


def _model_summary(rows: list[dict]) -> dict:
    """Means of the scores, sums of the counts and the per-scan rows of one model."""
    from napari_diffrendergan.analysis.evaluation import COUNTS, SCORES, coco_ap50

    means = {k: float(np.mean([r[k] for r in rows])) for k in SCORES}
    sums = {k: int(sum(r[k] for r in rows)) for k in COUNTS}
    ranked = [r.get("ranked") for r in rows]
    coco = None
    if all(ranked):
        coco = coco_ap50(
            [
                (np.array(x["confidence"]), np.array(x["matched"], bool), r["n_true"])
                for x, r in zip(ranked, rows, strict=True)
            ]
        )
    return {
        **means,
        "pq_instance": means["pq"],
        "ap50_coco": coco,
        **sums,
        "found": sums["n_pred"],
        "manual": sums["n_true"],
        "count_ratio": sums["n_pred"] / sums["n_true"],
        "manual_fragments": int(sum(r.get("fragments", 0) for r in rows)),
        "per_scan": [{k: v for k, v in r.items() if k not in ("seconds", "ranked")} for r in rows],
    }


def validation_pairs(experiment, name: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(scan, manual instances, predicted instances) of model ``name`` on every validation
    scan, data bar removed."""
    from napari_diffrendergan.analysis.evaluation import to_instances
    from napari_diffrendergan.io import read_image

    folder = experiment.out / "predictions" / name
    pairs = []
    for image_id in experiment.validation_ids:
        _, manual = experiment.scan(image_id)
        predicted = read_image(folder / f"{image_id}_instances.tif")[0]
        pairs.append((image_id, to_instances(manual, "binary"), predicted))
    return pairs


def measured_sizes(instances: list[np.ndarray]) -> np.ndarray:
    """Equivalent diameters (nm) of the particles the size rules keep (whole, above the
    floor), pooled over the scans."""
    from napari_diffrendergan.analysis.evaluation import BORDER_PX
    from napari_diffrendergan.analysis.sizes import measured_diameters, sized_table

    tables = [sized_table(labels, PIXEL_SIZE_NM, margin=BORDER_PX) for labels in instances]
    return measured_diameters(tables, PIXEL_SIZE_NM, MIN_AREA, False)[0]


def fate_by_size(pairs: list[tuple[str, np.ndarray, np.ndarray]], edges: np.ndarray) -> dict:
    """How the manual particles the size rules keep fare, binned by their equivalent diameter
    (nm) at ``edges``: how many there are, and the share matched, merged, split or missed."""
    from napari_diffrendergan.analysis.evaluation import BORDER_PX, classify, overlaps
    from napari_diffrendergan.analysis.sizes import selected_particles, sized_table

    fates = ("matched", "merged", "split", "missed")
    diameters, outcome = [], []
    for _, manual, predicted in pairs:
        table = sized_table(manual, PIXEL_SIZE_NM, margin=BORDER_PX)
        o = overlaps(manual, predicted)
        flags = classify(o)
        row = {int(label): i for i, label in enumerate(o.true_ids)}
        kept, _ = selected_particles(table, PIXEL_SIZE_NM, MIN_AREA, keep_border=False)
        measured = zip(table["label"][kept], table["equivalent_diameter_nm"][kept], strict=True)
        for label, diameter in measured:
            i = row[int(label)]
            diameters.append(diameter)
            outcome.append(next(f for f in fates if flags[f"true_{f}"][i]))
    bins = np.digitize(diameters, edges)
    outcome = np.array(outcome)
    result = []
    for index in range(len(edges) + 1):
        chosen = outcome[bins == index]
        shares = {f: float((chosen == f).mean()) if len(chosen) else None for f in fates}
        result.append({"count": int(len(chosen)), **shares})
    return {"edges_nm": [float(e) for e in edges], "bins": result}


def size_figure(path: Path, diameters: dict[str, np.ndarray]) -> None:
    """Histogram and cumulative distribution (with its 95 % band) of each set of diameters."""
    from matplotlib.figure import Figure

    from napari_diffrendergan.analysis.sizes import cumulative_distribution
    from napari_diffrendergan.io import write_figure

    top = np.percentile(np.concatenate(list(diameters.values())), 99.5)
    bins = np.linspace(0, top, 40)
    fig = Figure(figsize=(11, 3.8), dpi=110)
    histogram, cumulative = fig.subplots(1, 2)
    for name, values in diameters.items():
        label = f"{name}: n = {len(values)}, D50 {np.median(values):.0f} nm"
        style = {"color": "k", "linewidth": 2.0} if name == "manual" else {"linewidth": 1.4}
        histogram.hist(values, bins, histtype="step", label=label, **style)
        cdf = cumulative_distribution(values)
        (line,) = cumulative.step(cdf["x"], cdf["cdf"], where="post", label=name, **style)
        cumulative.fill_between(
            cdf["x"], cdf["low"], cdf["high"], step="post", alpha=0.2, color=line.get_color()
        )
    histogram.set_ylabel("particles")
    histogram.legend(fontsize=8)
    cumulative.set_xlim(0, top)
    cumulative.set_ylabel("share of particles ≤ size (95 % band)")
    cumulative.legend(fontsize=8, loc="lower right")
    for ax in (histogram, cumulative):
        ax.set_xlabel("equivalent diameter (nm)")
    fig.suptitle(
        "Particle sizes on the validation scans (whole particles ≥ "
        f"{MIN_AREA} px; cut by the border left out)",
        fontsize=10,
    )
    fig.tight_layout()
    write_figure(path, fig, dpi=110)


def size_results(experiment, folders: dict[str, str], figure: Path) -> dict:
    """Per model (report name → its predictions folder): the size agreement with the manual
    masks (per scan and pooled) and, binned by the manual particles' size, how they fare; the
    size figure."""
    from napari_diffrendergan.analysis.evaluation import size_agreement

    pairs = {name: validation_pairs(experiment, folder) for name, folder in folders.items()}
    manual = [truth for _, truth, _ in next(iter(pairs.values()))]
    diameters = {"manual": measured_sizes(manual)}
    diameters.update({name: measured_sizes([p for _, _, p in pairs[name]]) for name in pairs})
    size_figure(figure, diameters)
    edges = np.percentile(diameters["manual"], [10, 50, 90])
    return {
        name: {
            **size_agreement(pairs[name], PIXEL_SIZE_NM, MIN_AREA),
            "fate_by_size": fate_by_size(pairs[name], edges),
        }
        for name in pairs
    }


def size_checks(agreement: dict) -> list[tuple[str, bool, str]]:
    """The size targets (synthetic only), each with the pooled value and, when missed, the
    value per scan."""
    pooled, scans = agreement["pooled"], agreement["images"]
    checks = []
    for key, limit in SIZE_TARGETS.items():
        error = pooled[f"{key}_difference_percent"]
        per_scan = ", ".join(_percent(s[f"{key}_difference_percent"]) for s in scans)
        ok = error is not None and abs(error) <= limit
        value = _percent(error) + ("" if ok else f" (per scan: {per_scan})")
        checks.append((f"{key} within {limit:g} % of manual", ok, value))
    density = pooled["density_ratio"]
    ok = density is not None and abs(density - 1) <= DENSITY_TARGET / 100
    per_scan = ", ".join(_percent(100 * (s["density_ratio"] - 1)) for s in scans)
    value = _percent(100 * (density - 1)) + ("" if ok else f" (per scan: {per_scan})")
    checks.append((f"number density within {DENSITY_TARGET:g} %", ok, value))
    d50 = pooled["b"]["D50"]
    checks.append(
        (
            "the 95 % interval of D50 covers the manual D50",
            bool(pooled["D50_b_interval_covers_a"]),
            f"{d50['ci_low']:.0f}–{d50['ci_high']:.0f} nm vs {pooled['a']['D50']['value']:.0f} nm",
        )
    )
    return checks


def size_lines(sizes: dict, names: list[str]) -> list[str]:
    """The size-agreement table (pooled per model), the per-scan table of the first model and
    where its small particles go."""
    any_rules = sizes[names[0]]
    lines = [
        "Sizes against the manual masks, with the same rules on both sides (what "
        "`diffrendergan evaluate` reports): equivalent diameters of whole particles ≥ "
        f"{any_rules['min_area_px']} px; particles within {any_rules['border_px']} px of the "
        "scan's border (the data bar's edge included) are cut and left out. D-values: manual → "
        "model (error in % of manual); the model's D50 with its bootstrap 95 % interval; KS: "
        "two-sample Kolmogorov–Smirnov distance; W: Wasserstein distance.",
        "",
        "| training data | measured (model / manual) | D10 nm | D50 nm (model's 95 % CI) "
        "| D90 nm | KS | W nm | density |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        lines.append(_size_row(_label(name), sizes[name]["pooled"]))
    synthetic = sizes[names[0]]
    lines += [
        "",
        f"Per validation scan ({_label(names[0])}):",
        "",
        "| scan | measured (model / manual) | D10 nm | D50 nm (model's 95 % CI) | D90 nm | KS "
        "| W nm | density |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_size_row(s["name"], s) for s in synthetic["images"]]
    fate = synthetic["fate_by_size"]
    low, mid, high = (f"{e:.0f}" for e in fate["edges_nm"])
    ranges = [f"< {low}", f"{low}–{mid}", f"{mid}–{high}", f"≥ {high}"]
    lines += [
        "",
        f"Where the manual particles go ({_label(names[0])}), by their size (bins at the manual "
        "D10, D50 and D90): matched at IoU > 0.5, merged into a prediction over two or more, split "
        "into pieces, or missed.",
        "",
        "| manual size (nm) | particles | matched | merged | split | missed |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in zip(ranges, fate["bins"], strict=True):
        shares = " | ".join(_share(row[f]) for f in ("matched", "merged", "split", "missed"))
        lines.append(f"| {label} | {row['count']} | {shares} |")
    return lines


def _size_row(label: str, row: dict) -> str:
    counts = f"{row['count_b']['measured']} / {row['count_a']['measured']}"
    cells = []
    for key in ("D10", "D50", "D90"):
        manual, model = row["a"][key]["value"], row["b"][key]["value"]
        if manual is None or model is None:
            cells.append("–")
            continue
        cell = f"{manual:.0f} → {model:.0f} ({_percent(row[f'{key}_difference_percent'])})"
        if key == "D50":
            cell += f" [{row['b'][key]['ci_low']:.0f}–{row['b'][key]['ci_high']:.0f}]"
        cells.append(cell)
    ks, w = row["ks_statistic"], row["wasserstein_nm"]
    density = row["density_ratio"]
    return (
        f"| {label} | {counts} | {' | '.join(cells)} | "
        f"{'–' if ks is None else f'{ks:.3f}'} | {'–' if w is None else f'{w:.1f}'} | "
        f"{'–' if density is None else _percent(100 * (density - 1))} |"
    )


def _made_by(stage_commits: dict[str, str], report_commit: str) -> str:
    """At which commit(s) the stages and the report were made."""
    commits = {**stage_commits, "report": report_commit}
    if len(set(commits.values())) == 1:
        return f"at commit `{report_commit}`"
    names = list(commits)
    runs, start = [], 0
    for end in range(1, len(names) + 1):
        if end == len(names) or commits[names[end]] != commits[names[start]]:
            span = names[start] if end - start == 1 else f"{names[start]}–{names[end - 1]}"
            runs.append(f"{span} at commit `{commits[names[start]]}`")
            start = end
    return "(stages " + ", ".join(runs) + ")"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f} %"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def overlay_figure(path: Path, experiment, image_id: str, scores: dict, names: dict) -> None:
    """Side-by-side TP/FP/FN/merge/piece overlays of the models (report name → predictions
    folder) on one validation scan; ``scores`` by report name."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from napari_diffrendergan.analysis.evaluation import MATCH_COLOURS, match_overlay
    from napari_diffrendergan.io import read_image, write_figure

    image, manual = experiment.scan(image_id)
    fig = Figure(figsize=(6 * len(names), 4.6), dpi=110)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, (name, folder) in zip(axes, names.items(), strict=True):
        pred = read_image(experiment.out / "predictions" / folder / f"{image_id}_instances.tif")[0]
        ax.imshow(match_overlay(image, manual, pred, "binary", "instances"))
        score = next(s for s in scores[name] if s["name"] == image_id)
        ax.set_title(
            f"{name}: Dice {score['dsc']:.3f}, AP50 {score['ap50']:.3f}, "
            f"{score['n_pred']} found / {score['n_true']}",
            fontsize=9,
        )
        ax.axis("off")
    handles = [Patch(color=np.array(c) / 255, label=n) for n, c in MATCH_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    fig.suptitle(f"Validation scan {image_id} (manual mask as truth)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    write_figure(path, fig, dpi=110)


def figure_prefix(settings: dict) -> str:
    return FIGURE_PREFIX + ("inverted_" if settings.get("invert") else "")


def fid_curves_figure(curves: dict[str, dict], floor: float | None, paper: float | None):
    """FID per epoch of each GAN run (label → {"fid": {epoch: FID}, "best_epoch"}), the best
    epochs marked, with the real-vs-real floor and the paper's best FID."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    for label, curve in curves.items():
        epochs = sorted(int(e) for e in curve["fid"])
        (line,) = ax.plot(epochs, [curve["fid"][str(e)] for e in epochs], "o-", ms=3, label=label)
        best = curve["best_epoch"]
        ax.plot([best], [curve["fid"][str(best)]], "*", ms=12, color=line.get_color())
    for value, label, colour in ((floor, "real vs real", "tab:green"), (paper, "paper", "grey")):
        if value is not None:
            ax.axhline(value, color=colour, ls=":", lw=1, label=f"{label} ({value:.0f})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (0: untrained generator)")
    ax.set_ylabel("FID")
    ax.set_title("FID per epoch (★ best epoch by the paper's rule)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def arm_summary(experiment, arm, figures: Path, prefix: str) -> dict:
    """One synthetic-only arm: its preset, GAN (FID per epoch, best epoch, learned means),
    synthetic dataset and instance rule; its synthetic-vs-real figure at the best epoch."""
    from napari_diffrendergan.data.dataset import NnunetDataset
    from napari_diffrendergan.gan.run import GanRun
    from napari_diffrendergan.io import read_json

    out = experiment.out
    run = GanRun(out / arm.stage("gan"))
    metrics = run.metrics()
    best = metrics["best_epoch"]
    shutil.copyfile(run.preview_figure(best), figures / f"{prefix}gan{arm.suffix}.png")
    splitting = read_json(out / f"splitting{arm.suffix}.json")
    splitting.setdefault("min_seed_area_rule", "the package default, set on the training scans")
    learned = {e["epoch"]: e["parameters"] for e in metrics["epochs"]}
    return {
        "model": experiment.report_name(experiment.seeded(arm.model)[0]),
        "preset": "tio2-sem" if arm.name == "handset" else "calibration/calibrated.json",
        "fid": {str(e["epoch"]): e["fid"] for e in metrics["epochs"]},
        "fid_floor": run.fid_floor,
        "best_epoch": best,
        "learned": learned[best],
        "learned_untrained": learned[0],
        "instance_rule": {
            k: splitting.get(k)
            for k in (
                "chosen",
                "ap50",
                "core_threshold",
                "watershed",
                "min_area",
                "min_seed_area",
                "min_seed_area_rule",
            )
        },
        "generation": {  # its record less the one of every image
            k: v
            for k, v in NnunetDataset(experiment.dataset(arm.model)).generation().items()
            if k != "images"
        },
        "figure_suffix": arm.suffix,
    }


def calibration_summary(experiment) -> dict:
    """What the calibration stage measured on the unannotated training scans, and the preset
    it made."""
    from napari_diffrendergan.config import MaterialConfig, preset

    report = experiment.calibration_report()
    config = MaterialConfig.load(experiment.out / "calibration" / "calibrated.json")
    estimates = report["estimates"]
    return {
        "scans": report["scans"],
        "pixel_size_nm": report["pixel_size_nm"],
        "polarity": report["polarity"],
        "family": report["family"],
        "measured": report["counts"]["measured"],
        "particles": report["counts"]["particles"],
        **{f"{k}_nm": estimates["diameter"][k] for k in ("median", "p10", "p90")},
        "density_per_um2": estimates["density_per_um2"],
        "share_in_clusters": estimates["share_in_clusters"],
        "size_fit": report["size_fit"]["chosen"],
        "like": experiment.settings["like"],
        "dense_fraction_reset": preset(experiment.settings["like"]).placement.dense_fraction
        != config.placement.dense_fraction,
        "meshes": config.meshes.count,
        "library": config.meshes.library,
        "field_width": config.scene.field_width,
        "description": config.description,
    }


def checks_of(report: dict, bright: dict | None) -> list[dict]:
    """Every target with its value: the paper's and the earlier ones for the first arm's model,
    and issue 42's (the calibrated arm against the hand-set one; inverted scans)."""
    models, first = report["models"], report["arms"][report["arm_order"][0]]
    synthetic = models[first["model"]]
    fids, best = first["fid"], str(first["best_epoch"])
    per_scan_ratio = [s["n_pred"] / s["n_true"] for s in synthetic["per_scan"]]
    checks = [
        ("FID at the best epoch ≤ 134 (paper)", fids[best] <= PAPER_FID, f"{fids[best]:.1f}"),
        ("FID at the best epoch ≤ 100 (goal)", fids[best] <= 100, f"{fids[best]:.1f}"),
        (
            "FID at the best epoch ≤ 0.8 × untrained",
            fids[best] <= 0.8 * fids["0"],
            f"{fids[best] / fids['0']:.2f} ×",
        ),
        (
            "count within 5 % overall",
            abs(synthetic["count_ratio"] - 1) <= 0.05,
            f"{100 * (synthetic['count_ratio'] - 1):+.1f} %",
        ),
        (
            "count within 15 % on every scan",
            all(abs(r - 1) <= 0.15 for r in per_scan_ratio),
            ", ".join(f"{100 * (r - 1):+.0f} %" for r in per_scan_ratio),
        ),
    ] + [
        (f"{key} ≥ {value}", synthetic[key] >= value, f"{synthetic[key]:.3f}")
        for key, value in TARGETS.items()
    ]
    untrained = first["model"].replace("synthetic", "untrained")
    if untrained in models:
        u = models[untrained]
        better = synthetic["dsc"] > u["dsc"] and synthetic["ap50"] > u["ap50"]
        checks.append(
            (
                "best-epoch data beat untrained-generator data (Dice and AP50)",
                better,
                f"{synthetic['dsc']:.3f}/{synthetic['ap50']:.3f} vs {u['dsc']:.3f}/{u['ap50']:.3f}",
            )
        )
    checks += size_checks(synthetic["sizes"])
    if "calibrated" in report["arms"]:
        checks += calibrated_checks(report, bright)
    return [{"target": text, "met": bool(ok), "value": value} for text, ok, value in checks]


def calibrated_checks(report: dict, bright: dict | None) -> list[tuple[str, bool, str]]:
    """Issue 42's targets for the calibrated arm (annotation-free)."""
    models, arms = report["models"], report["arms"]
    arm = arms["calibrated"]
    calibrated = models[arm["model"]]
    handset = models.get(arms["handset"]["model"] if "handset" in arms else HANDSET_MODEL)
    checks = [
        (
            f"calibrated prior: Dice ≥ {CALIBRATED_DICE}",
            calibrated["dsc"] >= CALIBRATED_DICE,
            f"{calibrated['dsc']:.3f}",
        )
    ]
    if handset is not None:
        checks.append(
            (
                f"calibrated prior: AP50 ≥ hand-set − {AP50_MARGIN}",
                calibrated["ap50"] >= handset["ap50"] - AP50_MARGIN,
                f"{calibrated['ap50']:.3f} vs {handset['ap50']:.3f} "
                f"({calibrated['ap50'] - handset['ap50']:+.3f})",
            )
        )
    if report["settings"].get("invert"):
        fids, best = arm["fid"], str(arm["best_epoch"])
        checks.append(
            (
                f"inverted: FID at the best epoch ≤ {INVERTED_FID} × untrained",
                fids[best] <= INVERTED_FID * fids["0"],
                f"{fids[best]:.1f} of {fids['0']:.1f}: {fids[best] / fids['0']:.2f} ×",
            )
        )
        if bright is not None:
            dice = bright["models"]["synthetic"]["dsc"]
            checks.append(
                (
                    f"inverted: Dice within {BRIGHT_DICE_MARGIN} of the bright run's",
                    abs(calibrated["dsc"] - dice) <= BRIGHT_DICE_MARGIN,
                    f"{calibrated['dsc']:.3f} vs {dice:.3f} ({calibrated['dsc'] - dice:+.3f})",
                )
            )
    return checks


def earlier_rows(path: Path, wanted: list[str]) -> dict:
    """The rows ``wanted`` (``synthetic_handset``, ``real``) of an earlier run's ``report.json``
    that holds them, each with the commits of the run that made it (a row that report took from
    a run before it names that run) and, for the hand-set arm, its FID curve. A report from before
    issue 42 had only the hand-set arm, as ``synthetic``."""
    from napari_diffrendergan.io import read_json

    earlier = read_json(path)
    made = {"commit": earlier["commit"], "stage_commits": earlier["stage_commits"]}
    arms, models = earlier.get("arms"), earlier["models"]
    carried = _earlier_of(earlier)
    if arms is None:  # before issue 42
        models = {HANDSET_MODEL: models["synthetic"]}
        carried = {HANDSET_MODEL: made | {"curve": _curve(earlier)}}
    elif "handset" in arms:
        carried = carried | {HANDSET_MODEL: made | {"curve": _curve(arms["handset"])}}
    rows = {
        name: carried.get(name, made) | {"model": models[name]} for name in wanted if name in models
    }
    return {"validation_ids": earlier["validation_ids"], "rows": rows}


def _curve(arm: dict) -> dict:
    return {"fid": arm["fid"], "best_epoch": arm["best_epoch"]}


def _earlier_of(report: dict) -> dict:
    """The rows ``report`` took from earlier runs, by model key, without their scores (older
    reports held only the hand-set one, as ``handset_from``)."""
    if report.get("handset_from"):
        return {HANDSET_MODEL: report["handset_from"]}
    return report.get("earlier_rows") or {}


def write_report(experiment, docs: Path | None) -> Path:
    """Collect every figure of the experiment folder into ``report.json``, draw the figures
    and write ``report.md`` (and, with ``docs``, the docs' copies)."""
    from napari_diffrendergan.data.patches import PatchSet
    from napari_diffrendergan.io import read_json, write_figure, write_json_atomic
    from napari_diffrendergan.segment.model import ModelFolder
    from napari_diffrendergan.segment.predict import MIRRORING

    out, settings = experiment.out, experiment.settings
    prefix = figure_prefix(settings)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    folders = {
        experiment.report_name(name): name
        for which in experiment.models
        for name in experiment.seeded(which)
    } | {"classic": "classic"}
    scores = {name: _scores(experiment, folder) for name, folder in folders.items()}
    models = {name: _model_summary(rows) for name, rows in scores.items()}
    arms = {arm.name: arm_summary(experiment, arm, figures, prefix) for arm in experiment.arms}
    first = arms[experiment.arms[0].name]
    markers = {name: read_json(experiment.marker(name)) for name in experiment.stages}
    baselines_file = out / "predictions" / "baselines.json"
    baselines = (
        read_json(baselines_file)
        if baselines_file.is_file()  # runs before issue 42: the hand-set arm's rule, bright
        else {"rule_from": "handset", "classic_polarity": "bright"}
    )
    sizes = size_results(experiment, folders, figures / f"{prefix}sizes.png")
    for name, agreement in sizes.items():
        models[name]["sizes"] = agreement
    curves = {ARM_LABELS[name]: arm for name, arm in arms.items()}
    earlier = experiment.earlier  # rows of earlier runs (--earlier-report)
    if HANDSET_MODEL in earlier:
        rows = list(models.items())  # the hand-set row below the first arm's
        models = dict(rows[:1] + [(HANDSET_MODEL, earlier[HANDSET_MODEL]["model"])] + rows[1:])
        curves[f"{ARM_LABELS['handset']} (earlier run)"] = earlier[HANDSET_MODEL]["curve"]
    if "real" in earlier:
        rows = list(models.items())  # the real-trained row above the classic one
        models = dict(rows[:-1] + [("real", earlier["real"]["model"])] + rows[-1:])
    write_figure(
        figures / f"{prefix}fid.png",
        fid_curves_figure(curves, first["fid_floor"], PAPER_FID),
        dpi=110,
    )
    ranked = sorted(scores[first["model"]], key=lambda s: s["ap50"])
    shown = [ranked[len(ranked) // 2]["name"], ranked[0]["name"]]  # median and worst AP50
    compared = {arm["model"]: folders[arm["model"]] for arm in arms.values()}
    if "real" in experiment.models:
        compared |= {"real": folders[experiment.report_name(experiment.seeded("real")[0])]}
    compared |= {"classic": "classic"}
    for image_id in shown:
        overlay_figure(
            figures / f"{prefix}overlay_{image_id}.png", experiment, image_id, scores, compared
        )
    report = {
        "commit": experiment.commit,
        "settings": settings,
        "flips": 2 ** len(MIRRORING[settings["mirroring"]]),
        "budget_minutes": sum(m["seconds"] / 60 for m in markers.values()),
        "stage_minutes": {name: m["seconds"] / 60 for name, m in markers.items()},
        "stage_commits": {name: m["commit"] for name, m in markers.items()},
        # the first arm's GAN and rule (models.synthetic with both arms), as before issue 42
        **{k: first[k] for k in ("fid", "fid_floor", "best_epoch", "learned")},
        "learned_untrained": first["learned_untrained"],
        "fid_paper": PAPER_FID,
        "instance_rule": first["instance_rule"],
        "arm_order": [arm.name for arm in experiment.arms],
        "arms": arms,
        "calibration": calibration_summary(experiment),
        "baselines": baselines,
        "earlier_rows": {
            name: {k: v for k, v in row.items() if k != "model"} for name, row in earlier.items()
        },
        "patches": PatchSet.open(out / "patches").meta["counts"],
        "nnunet_minutes": {
            name: ModelFolder(out / f"model_{folder}").metadata()["training_seconds"] / 60
            for name, folder in folders.items()
            if folder != "classic"
        },
        "models": models,
        "overlays": shown,
        "train_ids": experiment.train_ids,
        "validation_ids": experiment.validation_ids,
    }
    bright = read_json(experiment.bright_report) if experiment.bright_report else None
    report["checks"] = checks_of(report, bright)
    write_json_atomic(out / "report.json", report)

    text = markdown(report)
    (out / "report.md").write_text(text.replace("](images/", "](figures/"))
    if docs:
        (docs / "images").mkdir(parents=True, exist_ok=True)
        for old in (docs / "images").glob(f"{prefix}overlay_*.png"):
            old.unlink()
        for figure in figures.glob(f"{prefix}*.png"):
            if figure.name.startswith(f"{prefix}overlay_") and not any(
                figure.name.endswith(f"_{i}.png") for i in shown
            ):
                continue
            shutil.copy2(figure, docs / "images" / figure.name)
        name = "tio2-sem-experiment" + ("-inverted" if settings.get("invert") else "")
        (docs / f"{name}.md").write_text(text)
        write_json_atomic(docs / f"{name}.json", report)
    return out / "report.md"


def markdown(report: dict) -> str:
    """``report.md`` from ``report.json`` alone (figures named ``images/…``)."""
    settings, models, arms = report["settings"], report["models"], report["arms"]
    prefix, order = figure_prefix(settings), report["arm_order"]
    first = arms[order[0]]
    synthetic = models[first["model"]]
    calibration, patches = report["calibration"], report["patches"]
    inverted = bool(settings.get("invert"))
    real = settings.get("real_baseline", True)  # reports before the option: always
    earlier = _earlier_of(report)
    lines = [
        "# TiO2 SEM"
        + (", inverted (dark particles on a bright film)" if inverted else "")
        + ": synthetic-only "
        + ("vs real-trained " if real else "")
        + "nnU-Net (the paper's Table 1 on a CPU budget)",
        "",
        f"Produced by `benchmarks/tio2_sem.py --budget {settings['budget']}"
        + (" --invert" if inverted else "")
        + ("" if real else " --real-baseline no")
        + f" --arms {','.join(order)}` {_made_by(report['stage_commits'], report['commit'])} "
        f"in one end-to-end run of {report['budget_minutes']:.0f} min (seed {settings['seed']}); "
        "every figure below comes from that run, and the JSON beside this file holds them for "
        "scripts." + _earlier_text(earlier),
        "",
        "- Data: 32 real TiO2 SEM scans (Rühle et al. 2021, CC BY-NC-ND 4.0), data bar removed, "
        "7.34 nm/px"
        + (", every scan inverted (1 − scan; the manual masks unchanged)" if inverted else "")
        + f". Training scans ({len(report['train_ids'])}): {', '.join(report['train_ids'])}. "
        f"Validation scans ({len(report['validation_ids'])}, never used for training or any "
        f"choice): {', '.join(report['validation_ids'])}.",
        *_calibration_lines(calibration, settings),
        f"- DiffRenderGAN: {patches['particle']} particle patches (256², masks unused), traced "
        f"at spp {settings['gan_spp']}, {settings['gan_epochs']} epochs; two halves of the "
        f"real patches score {first['fid_floor']:.1f} against each other (the floor at this "
        "sample size); the paper reached 134.",
    ]
    for name in order:
        arm = arms[name]
        fids, best = arm["fid"], str(arm["best_epoch"])
        generation, rule = arm["generation"], arm["instance_rule"]
        lines.append(
            f"- {ARM_LABELS[name]} (preset `{arm['preset']}`): FID before training "
            f"{fids['0']:.1f}, at the best epoch {best} (the paper's rule) {fids[best]:.1f}; "
            f"{generation['synthetic_pairs']} pairs at spp {settings['spp']} "
            f"({generation['rejected']} rejected by the contrast filter) + "
            f"{generation['background_patches']} real background patches (the most structured "
            f"of every training scan, of {patches['background']}); instances by the rule chosen "
            f"on its own held-out synthetic pairs and unused background patches: "
            f"**{rule['chosen']}**"
            + (
                f" (a dip splits only between confident cores of ≥ {rule['min_seed_area']} px: "
                f"{rule['min_seed_area_rule']})"
                if rule["core_threshold"]
                else ""
            )
            + "."
        )
    baselines = report["baselines"]
    lines += [
        f"- nnU-Net: `{settings['seg_config']}` configuration, {settings['seg_iterations']} "
        "iterations for every model, predictions over the whole image"
        + (f" averaged over {report['flips']} flips" if report["flips"] > 1 else "")
        + "; the "
        + ("real-trained model and the " if real else "")
        + "classic route split particles by the "
        f"{ARM_LABELS[baselines['rule_from']]} arm's rule; the classic route takes the "
        f"{baselines['classic_polarity']} side of Otsu's threshold (the calibrated polarity).",
        "",
        "## Results on the validation scans",
        "",
        "PQ is given both ways: *instance* PQ (Kirillov et al.: matched IoU over TP + FP/2 + "
        "FN/2) and the *paper's* convention, which its Table 1 shows to be the IoU of the "
        "binary foreground (Dice/(2 − Dice) on every row). AP50 = TP/(TP + FP + FN) at IoU > 0.5 "
        "(the DSB 2018 / StarDist convention); AP50 COCO: the area under the precision-recall "
        "curve of all validation particles ranked by their mean foreground probability "
        "(pycocotools' 101-point interpolation, matched at IoU > 0.5; the classic method has no "
        "confidence). Merges: predictions covering ≥ 2 manual particles; split: manual "
        "particles cut in ≥ 2 (none matching); missed: neither; pieces: other predictions "
        "lying mostly on manual particles (e.g. fragments of split particles, or beside a "
        "match); FP: predictions lying mostly on background.",
        "",
        "| training data | Dice | AP50 | AP50 COCO | PQ inst. | PQ paper | found / manual | merges "
        "| split | missed | pieces | FP |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (dsc, ap50, pq) in PAPER.items():
        lines.append(
            f"| {name} | {dsc:.3f} | {ap50:.3f} | – | – | {pq:.3f} | – | – | – | – | – | – |"
        )
    for name, m in models.items():
        coco = "–" if m.get("ap50_coco") is None else f"{m['ap50_coco']:.3f}"
        label = _label(name) + (", earlier run" if name in earlier else "")
        lines.append(
            f"| **{label}** | {m['dsc']:.3f} | {m['ap50']:.3f} | {coco} | "
            f"{m['pq_instance']:.3f} | {m['pq_paper']:.3f} | {m['found']} / {m['manual']} "
            f"({100 * (m['count_ratio'] - 1):+.0f} %) | {m['merged']} | {m['split']} | "
            f"{m['missed']} | {m['pieces']} | {m['false_positive']} |"
        )
    lines += ["", f"Targets ({_label(first['model'])}; issue 42: the calibrated prior):", ""]
    lines += [
        f"- {'met' if c['met'] else '**not met**'}: {c['target']}: {c['value']}"
        for c in report["checks"]
    ]
    fragments = synthetic["manual_fragments"]
    if fragments:
        whole = synthetic["manual"] - fragments
        lines += [
            "",
            f"{fragments} of the {synthetic['manual']} manual particles are smaller than the "
            f"smallest particle kept ({first['instance_rule']['min_area']} px), mostly single "
            "pixels that the masks' separation lines cut off; no rule finds them. Counted "
            f"without them, the {_label(first['model'])} model finds {synthetic['found']} of "
            f"{whole} ({100 * (synthetic['found'] / whole - 1):+.0f} %).",
        ]
    lines += [
        "",
        f"Per validation scan ({_label(first['model'])}):",
        "",
        "| scan | Dice | AP50 | PQ inst. | found / manual | merges | split | missed | pieces "
        "| FP |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in synthetic["per_scan"]:
        lines.append(
            f"| {s['name']} | {s['dsc']:.3f} | {s['ap50']:.3f} | {s['pq']:.3f} | "
            f"{s['n_pred']} / {s['n_true']} | {s['merged']} | {s['split']} | {s['missed']} | "
            f"{s['pieces']} | {s['false_positive']} |"
        )
    lines += ["", "## DiffRenderGAN", ""]
    for name in order:
        arm = arms[name]
        lines += [
            f"{ARM_LABELS[name]}: FID per epoch (0: the untrained generator): "
            + ", ".join(f"{k}: {v:.1f}" for k, v in arm["fid"].items())
            + f"; best epoch {arm['best_epoch']}. Learned means at the best epoch: "
            + ", ".join(f"{k} {v['mean']:.3g}" for k, v in arm["learned"].items())
            + ".",
            "",
        ]
    if HANDSET_MODEL in earlier:
        curve = earlier[HANDSET_MODEL]["curve"]
        lines += [
            f"{ARM_LABELS['handset']} (earlier run): FID per epoch: "
            + ", ".join(f"{k}: {v:.1f}" for k, v in curve["fid"].items())
            + f"; best epoch {curve['best_epoch']}.",
            "",
        ]
    lines += [f"![FID per epoch](images/{prefix}fid.png)", ""]
    lines += [
        f"![Synthetic vs real patches at the best epoch, {ARM_LABELS[name]}]"
        f"(images/{prefix}gan{arms[name]['figure_suffix']}.png)"
        for name in order
    ]
    sizes = {name: m["sizes"] for name, m in models.items()}
    lines += [
        "",
        "## Particle sizes",
        "",
        *size_lines(sizes, list(sizes)),
        "",
        f"![Size distributions](images/{prefix}sizes.png)",
        "",
        "## Overlays",
        "",
        "Green: matched at IoU > 0.5; red: unmatched predictions on background (false "
        "positives); magenta: other unmatched predictions on manual particles (pieces); orange: "
        "one prediction over two or more manual particles (merges); blue: manual particles not "
        f"matched. Shown: the validation scans with the median and the lowest "
        f"{_label(first['model'])} AP50.",
        "",
    ]
    lines += [f"![Overlay {i}](images/{prefix}overlay_{i}.png)" for i in report["overlays"]]
    lines += ["", "## Time (budget split)", "", "| stage | minutes |", "|---|---|"]
    lines += [f"| {name} | {minutes:.1f} |" for name, minutes in report["stage_minutes"].items()]
    lines += [f"| **total** | **{report['budget_minutes']:.1f}** |", ""]
    lines.append(
        "nnU-Net training: "
        + ", ".join(f"{n} {m:.1f} min" for n, m in report["nnunet_minutes"].items())
        + ". A stage whose outputs an earlier run left (kept with `--keep-stages`) counts only "
        "the time to find them."
    )
    return "\n".join(lines) + "\n"


EARLIER_ROW_TEXT = {HANDSET_MODEL: "the hand-set row and FID curve", "real": "the real-trained row"}


def _earlier_text(earlier: dict) -> str:
    """Where the rows an earlier run gave come from."""
    if not earlier:
        return ""
    origins = "; ".join(
        f"{EARLIER_ROW_TEXT[name]} from a run {_made_by(row['stage_commits'], row['commit'])}"
        for name, row in earlier.items()
    )
    return (
        f" Rows from earlier runs on the same validation scans (`--earlier-report`), each as "
        f"that run scored it: {origins}."
    )


def _calibration_lines(calibration: dict, settings: dict) -> list[str]:
    """The calibrated scene prior, in the report's data list."""
    median, p10 = calibration["median_nm"], calibration["p10_nm"]
    clusters = calibration["share_in_clusters"]
    share = clusters["value"] if isinstance(clusters, dict) else clusters
    return [
        f"- Scene prior calibrated on the {calibration['scans']} training scans without their "
        f"masks (`diffrendergan calibrate --like {calibration['like']}`, pixel size "
        f"{calibration['pixel_size_nm']:.4g} nm from their metadata): {calibration['polarity']} "
        f"{calibration['family']}, {calibration['measured']} of {calibration['particles']} "
        f"particles measured whole, median diameter {median['value']:.0f} nm (95 % CI "
        f"{median['ci'][0]:.0f}–{median['ci'][1]:.0f}), 10th percentile {p10['value']:.0f} nm, "
        f"{calibration['density_per_um2']['value']:.3g} particles/µm², "
        f"{100 * share:.0f} % in clusters, sizes {calibration['size_fit']}; the preset: "
        f"{calibration['meshes']} {calibration['library']} meshes in a field "
        f"{calibration['field_width']:.3g} mesh units wide, lighting, learning and placement of "
        f"`{calibration['like']}`"
        + (
            " except its half of scenes as one dense agglomerate, which was read off the masks"
            if calibration.get("dense_fraction_reset")
            else ""
        )
        + " (`calibration/calibrate.txt`)."
    ]


def _label(name: str) -> str:
    base, _, seed = name.partition("_seed")
    return LABELS.get(base, base) + (f", seed {seed}" if seed else "")
