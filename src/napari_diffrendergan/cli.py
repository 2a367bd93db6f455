"""The ``diffrendergan`` command line: batch work without napari.

Every long command shows a tqdm bar fed by the core's :class:`~.progress.Monitor`; errors the
user can fix (:class:`~.errors.DiffRenderGANError`) are printed as one line with exit code 2,
Ctrl-C exits with 130, and anything else is a bug that keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from . import __version__


@contextmanager
def progress_bar(desc: str):
    """A :class:`~.progress.Monitor` drawing one tqdm bar on stderr."""
    from tqdm import tqdm

    from .progress import Monitor

    # drawn only on a terminal: in logs and captured output a bar would run into the lines
    bar = tqdm(desc=desc, unit="step", file=sys.stderr, leave=False, delay=1.0, disable=None)

    def report(done: int, total: int, message: str) -> None:
        bar.total, bar.n = total, done
        bar.set_postfix_str(message[:70])
        bar.refresh()

    try:
        yield Monitor(report)
    finally:
        bar.close()


def _whole(low: int, high: int | None = None):
    """argparse type: a whole number >= ``low`` (and <= ``high``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            allowed = f">= {low}" if high is None else f"from {low} to {high:,}"
            raise argparse.ArgumentTypeError(f"must be a whole number {allowed}, got {text!r}")
        return value

    return parse


def _out_folder(text: str) -> str:
    """argparse type: a folder to write into, not an existing file (refused before any work)."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder: choose another path")
    return text


def _square(text: str) -> int:
    """argparse type: samples per pixel, a square number (one sample per stratum)."""
    value = _whole(1)(text)
    if round(value**0.5) ** 2 != value:
        raise argparse.ArgumentTypeError(
            f"must be a square number of samples per pixel (1, 4, 9, 16, 25, …, 121), got {text!r}"
        )
    return value


def _pixel_size(text: str) -> float:
    """argparse type: a pixel size in nm within :data:`~.io.PIXEL_SIZE_RANGE_NM`."""
    from .errors import InputError
    from .io import positive_pixel_size

    try:
        return positive_pixel_size(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number of nm per pixel, got {text!r}") from err
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _rows_or_auto(text: str) -> int | str:
    """argparse type: ``auto`` (the data bar found in each image) or a number of rows >= 0."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _whole(0)(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(
            f"must be auto or a whole number >= 0, got {text!r}"
        ) from err


def _workers(text: str) -> int:
    """argparse type: local worker processes, 1 to the CPU cores here (more only compete)."""
    most = os.cpu_count() or 1
    value = _whole(1)(text)
    if value > most:
        raise argparse.ArgumentTypeError(
            f"must be at most {most}, the CPU cores of this machine (more worker processes "
            f"only compete for them), got {text!r}"
        )
    return value


def _step(text: str) -> float:
    """argparse type: a sliding-window step, a fraction of the patch in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"must be a fraction of the patch size, above 0 and at most 1, got {text!r}"
        )
    return value


def _out_folder(text: str) -> str:
    """argparse type: an output folder that exists or can be made (no file, no broken or
    looping symbolic link in the way)."""
    path = Path(text)
    try:
        path.resolve()
    except (OSError, RuntimeError) as err:  # Python < 3.13 raises RuntimeError for loops
        raise argparse.ArgumentTypeError(
            f"{text!r} runs into a loop of symbolic links: remove the link or choose another folder"
        ) from err
    if path.is_symlink() and not path.exists():
        raise argparse.ArgumentTypeError(
            f"{text!r} is a symbolic link to {os.readlink(path)!r}, which does not exist: "
            "create that folder or choose another one"
        )
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder: choose a folder")
    return text


def _valid_json(value):
    """``value`` with NaN and infinities as None (null): strict JSON parsers reject NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _valid_json(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_json(v) for v in value]
    return value


def _core_threshold(text: str) -> float | None:
    """argparse type: a particle probability in (0, 1), or ``off``."""
    if text == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a probability in (0, 1) or off, got {text!r}")
    return value


def _epoch(text: str) -> int | str:
    if text in ("best", "last"):
        return text
    try:
        return _whole(1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be best, last or an epoch number, got {text!r}"
        ) from None


def _region(text: str) -> tuple[int, int, int, int]:
    try:
        (y0, y1), (x0, x1) = (map(int, part.split(":")) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not y0:y1,x0:x1 (whole pixels)") from err
    if y0 >= y1 or x0 >= x1 or min(y0, x0) < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: needs 0 <= y0 < y1 and 0 <= x0 < x1 (top:bottom,left:right)"
        )
    return y0, y1, x0, x1


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="compute backend: auto picks CUDA when a GPU is present",
    )


def _config_from_args(args):
    from .config import load_config

    config = load_config(args.preset)
    if getattr(args, "meshes", None):
        config.meshes.library = str(Path(args.meshes).expanduser().resolve())
    if getattr(args, "spp", None):
        config.scene.spp = args.spp
    if getattr(args, "size", None):
        config.scene.width = config.scene.height = args.size
    return config.validate()


def cmd_scene(args) -> int:
    from .render.sampling import render_sample, write_sample
    from .render.scene import check_render

    config = check_render(_config_from_args(args))
    started = time.perf_counter()
    with progress_bar(f"scene {config.name}") as monitor:
        sample = render_sample(config, seed=args.seed, device=args.device, monitor=monitor)
    paths = write_sample(sample, args.out)
    info = sample.info
    print(
        f"Rendered {config.name} ({config.scene.width}x{config.scene.height}, "
        f"spp {info['spp']}, seed {args.seed}) in {time.perf_counter() - started:.1f} s "
        f"with {info['backend']}"
    )
    print(
        f"  {info['visible_particles']} of {config.meshes.count} particles visible; contrast "
        f"{'accepted' if info['contrast']['accepted'] else 'REJECTED'}: "
        f"{info['contrast']['reason']}"
    )
    for name, path in paths.items():
        print(f"  {name:9s} {path}")
    return 0


def cmd_demo(args) -> int:
    from .config import preset
    from .demo import overview_figure, report_lines, run_demo
    from .render.scene import check_render

    for name in args.presets:  # every scene can be rendered at --spp, before any work
        check_render(preset(name), args.spp)
    started = time.perf_counter()
    with progress_bar("demo") as monitor:
        report = run_demo(
            args.out,
            args.presets,
            spp=args.spp,
            seed=args.seed,
            device=args.device,
            train_images=args.train_images,
            seg_iterations=args.seg_iterations,
            gan_epochs=args.gan_epochs,
            monitor=monitor,
        )
    overview_figure(report, Path(args.out) / "overview.png")
    print("\n".join(report_lines(report, time.perf_counter() - started)))
    return 0


def cmd_thickness(args) -> int:
    from .analysis.thickness import analyse, output_paths, write_outputs
    from .errors import DiffRenderGANError
    from .io import distinct_files, file_message, output_names, read_image, refuse_overwriting

    paths = distinct_files(args.masks)
    names = output_names(paths)
    refuse_overwriting(paths, [p for n in names for p in output_paths(args.out, n).values()])
    failed = 0
    rows = []
    with progress_bar("thickness") as monitor:
        for done, (path, name) in enumerate(zip(paths, names, strict=True)):
            monitor.report(done, len(paths), path.name)
            try:
                mask, sidecar_nm = read_image(path)
                result = analyse(mask, args.pixel_size or sidecar_nm, method=args.method)
            except DiffRenderGANError as err:
                print(f"  skipped: {file_message(path, err)}", file=sys.stderr)
                failed += 1
                continue
            write_outputs(result, args.out, name, source=str(path))
            rows.append((name, result.summary()))
    unit_note = "" if args.pixel_size else " (nm where the file's sidecar or metadata has one)"
    print(f"Local thickness of {len(rows)} mask(s) written to {args.out}{unit_note}")
    for name, summary in rows:
        print(
            f"  {name}: {summary['n_wires']} wires, median wire diameter "
            f"{summary['median']:.3g} {summary['unit']} (p5-p95 {summary['p5']:.3g}-"
            f"{summary['p95']:.3g}), pixel-weighted mean {summary['pixel_weighted_mean']:.3g}"
        )
    return 1 if failed else 0


def cmd_segment_train(args) -> int:
    from .segment.training import train_model

    with progress_bar("nnU-Net") as monitor:
        report = train_model(
            args.dataset,
            args.out,
            config=args.config,
            iterations=args.iterations,
            device=args.device,
            resume=args.resume,
            monitor=monitor,
        )
    last = report.epochs[-1] if report.epochs else {}
    print(
        f"Trained nnU-Net ({args.config}) for {last.get('iterations', 0)} iterations: final "
        f"loss {last.get('train_loss', float('nan')):.3f}, pseudo-Dice "
        f"{last.get('pseudo_dice', float('nan')):.3f}"
    )
    print(f"Model folder: {report.model} (log: {report.model / 'training.log'})")
    return 0


def cmd_segment(args) -> int:
    from .segment.batch import image_files, segment_files

    paths = image_files(args.images)
    with progress_bar("segment") as monitor:
        results = segment_files(
            paths,
            args.model,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            monitor=monitor,
            watershed=args.watershed,
            split_distance=args.split_distance,
            min_area=args.min_area,
            core_threshold=args.core_threshold,
            min_seed_area=args.min_seed_area,
            pixel_size_nm=args.pixel_size,
            exclude_bottom=args.exclude_bottom,
            device=args.device,
            window=args.window,
            mirroring=args.mirroring,
            step=args.step,
        )
    failures = [r for r in results if "error" in r]
    done = [r for r in results if "error" not in r]
    print(f"Segmented {len(done)} image(s) into {Path(args.out).resolve()}:")
    for r in done:
        notes = f" ({'; '.join(r['notes'])})" if r["notes"] else ""
        print(f"  {r['name']}: {_found(r)}{notes}")
    print(
        "Per image: <name>_mask.tif (0/1/2), <name>_instances.tif, <name>_particles.csv, "
        "<name>_sizes.json (D10/D50/D90 with 95 % intervals, EU nanomaterial screen)"
    )
    for r in failures:
        print(f"  skipped: {r['error']}", file=sys.stderr)
    if failures:
        print(
            f"diffrendergan segment: {len(failures)} of {len(results)} image(s) failed (above)",
            file=sys.stderr,
        )
    return 1 if failures else 0


def _found(summary: dict) -> str:
    """One image's particles and D50 (whole particles above the size floor), for the CLI."""
    if not summary["particles"]:
        return "no particles"
    count, d50, unit = summary["count"], summary["d50"], summary["unit"]
    text = f"{summary['particles']} particles"
    if d50["value"] is None:
        return f"{text}, none whole and above the size floor to measure"
    return (
        f"{text}; equivalent diameter D50 {d50['value']:.3g} {unit} (95 % CI "
        f"{d50['ci_low']:.3g}–{d50['ci_high']:.3g}) of {count['measured']} measured "
        f"({count['touching_border']} cut by the border and {count['below_floor']} under the "
        "size floor left out)"
    )


def cmd_evaluate(args) -> int:
    import json

    from .analysis.evaluation import evaluate_folders

    result = evaluate_folders(
        args.pred,
        args.truth,
        truth_kind=args.truth_kind,
        pred_kind=args.pred_kind,
        pixel_size_nm=args.pixel_size,
        min_area_px=args.min_area,
        keep_border=args.keep_border,
    )
    columns = ("dsc", "ap50", "pq", "pq_paper", "n_true", "n_pred", "tp", "merged", "split")
    columns += ("missed", "pieces", "false_positive")
    titles = ("Dice", "AP50", "PQ", "PQpap", "true", "found", "match", "merge", "split")
    titles += ("miss", "piece", "FP")
    print(f"{'image':16s}" + "".join(f" {t:>6s}" for t in titles))
    for row in [*result["images"], {"name": "all (mean/sum)", **result}]:
        cells = [f"{row[c]:6.3f}" if isinstance(row[c], float) else f"{row[c]:6d}" for c in columns]
        print(f"{row['name'][:16]:16s} " + " ".join(cells))
    print(
        f"found/manual {result['count_ratio']:.3f}; merge: one prediction over ≥ 2 manual "
        "particles, split: a manual particle cut in ≥ 2, miss: neither matched, merged nor "
        "split, piece: other predictions on particles (fragments), FP: predictions on "
        "background; PQpap: the paper's PQ (IoU of the foreground)"
    )
    if result["ap50_coco"] is not None:
        print(
            "COCO-style AP50 (all images, predictions ranked by confidence): "
            f"{result['ap50_coco']:.3f}"
        )
    else:
        print(
            "COCO-style AP50: needs every prediction as an instance image with its particle "
            "table (confidence per particle), as `diffrendergan segment` writes them"
        )
    if result["missing_predictions"]:
        print(f"no prediction for: {', '.join(result['missing_predictions'])}")
    _print_size_agreement(result["sizes"])
    if args.json:
        print(json.dumps(_valid_json(result), allow_nan=False))
    return 0


def _print_size_agreement(sizes: dict) -> None:
    """Per image and pooled: the manual D-values and the predicted ones' error, KS, Wasserstein
    and the count ratio."""
    unit = sizes["pooled"]["unit"]
    titles = ("true", "found", "D10", "err%", "D50", "err%", "D90", "err%", "KS", f"W {unit}")
    print(f"\nsizes{'':11s}" + "".join(f" {t:>6s}" for t in titles))
    for row in [*sizes["images"], {"name": "all (pooled)", **sizes["pooled"]}]:
        cells = [row["count_a"]["measured"], row["count_b"]["measured"]]
        for key in ("D10", "D50", "D90"):
            cells += [row["a"][key]["value"], row[f"{key}_difference_percent"]]
        cells += [row["ks_statistic"], row[f"wasserstein_{unit}"]]
        print(f"{row['name'][:16]:16s} " + " ".join(_cell(c) for c in cells))
    border = "kept" if sizes["border_particles_included"] else "left out"
    print(
        f"equivalent diameters in {unit} (manual D-values; err%: found off manual), with the "
        f"same rules on both sides: particles within {sizes['border_px']} px of the border "
        f"{border}, under {sizes['min_area_px']} px left out"
    )


def _cell(value) -> str:
    if value is None:
        return f"{'–':>6s}"
    return f"{value:6d}" if isinstance(value, int) else f"{value:6.3g}"


def _patches_of(path: Path, args, settings: dict) -> tuple[dict[str, int], list[str]]:
    """Cut one scan's patches into the set at ``args.out``: counts per role and notes."""
    from .data.patches import PatchSet, cut_patches
    from .data.scans import bar_to_leave_out
    from .errors import InputError
    from .io import as_gray, chosen_pixel_size, read_image

    image, converted = as_gray(read_image(path)[0])
    pixel, notes = chosen_pixel_size(path, args.pixel_size)
    bar = None if args.roi else bar_to_leave_out(image, args.exclude_bottom)
    if bar and bar.rows >= image.shape[0]:
        raise InputError(f"--exclude-bottom {bar.rows} leaves nothing of its {image.shape[0]} rows")
    top, stop = bar.kept_rows(image.shape[0]) if bar else (0, image.shape[0])
    regions = args.roi or [(top, stop, 0, image.shape[1])]
    patches, pixels, cut_notes = cut_patches(
        image,
        str(path.resolve()),
        regions,
        args.size,
        args.stride,
        args.role,
        polarity=args.polarity,
    )
    PatchSet.save(args.out, patches, pixels, pixel, settings)
    counts = {r: sum(p.role == r for p in patches) for r in ("particle", "background")}
    notes += [f"data bar left out: {bar}"] if bar else []
    return counts, converted + cut_notes + notes


def cmd_patches(args) -> int:
    from .errors import InputError
    from .io import distinct_files, file_message

    settings = {
        "size": args.size,
        "stride": args.stride,
        "role": args.role,
        "polarity": args.polarity,
        "regions": args.roi,
        "exclude_bottom": args.exclude_bottom,
    }
    total = {"particle": 0, "background": 0}
    for path in distinct_files(args.images):
        try:
            counts, notes = _patches_of(path, args, settings)
        except InputError as err:
            raise type(err)(file_message(path, err)) from err
        for role, n in counts.items():
            total[role] += n
        note = f" ({'; '.join(notes)})" if notes else ""
        print(
            f"  {path.name}: {counts['particle']} particle, {counts['background']} "
            f"background patches{note}"
        )
    print(
        f"Patch set {args.out}: {total['particle']} particle and {total['background']} "
        f"background patches of {args.size}x{args.size} (patches.json lists them)"
    )
    return 0


# train's options that set up a new run (None: not given); a resumed run keeps its own
NEW_SETTINGS = ("iterations_per_epoch", "seed", "device")  # TrainingSettings fields


def _resumed_run(args):
    """The run in ``--out`` to resume; options that would change it are refused."""
    from .errors import InputError
    from .gan.run import GanRun

    run = GanRun.open(args.out)
    theirs = {name: getattr(run.settings, name) for name in NEW_SETTINGS}
    theirs |= {"spp": run.config.scene.spp, "patches": str(run.patches)}
    differ = []
    for name in (*theirs, "preset", "meshes"):
        value = getattr(args, name)
        if name == "patches" and value is not None:
            value = str(Path(value).resolve())
        if value is not None and value != theirs.get(name):
            known = f" (the run's: {theirs[name]})" if name in theirs else ""
            differ.append(f"--{name.replace('_', '-')} {value}{known}")
    if differ:
        raise InputError(
            f"{', '.join(differ)}: a resumed run keeps the settings of its training.json and "
            "config.json; leave these out, or start a new run in another folder"
        )
    done = run.finished_epochs()
    if args.epochs and done and args.epochs <= done[-1]:
        raise InputError(
            f"--epochs {args.epochs}: {args.out} already has {done[-1]} epochs; --epochs is the "
            "epoch to train to, so give more to continue"
        )
    return run


def _new_run(args):
    """A new run in ``--out`` from ``--patches``, ``--preset`` and the other options."""
    from .errors import InputError
    from .gan.run import GanRun, TrainingSettings

    if not args.patches or not args.preset:
        raise InputError("--patches and --preset are needed to start a run (or --resume)")
    given = {n: getattr(args, n) for n in NEW_SETTINGS if getattr(args, n) is not None}
    settings = TrainingSettings(epochs=args.epochs or TrainingSettings.epochs, **given)
    return GanRun.create(args.out, args.patches, _config_from_args(args), settings)


def cmd_train(args) -> int:
    from tqdm import tqdm

    from .gan.training import train_iter
    from .progress import duration

    run = _resumed_run(args) if args.resume else _new_run(args)
    with progress_bar("train") as monitor:
        for event in train_iter(run, args.epochs, monitor, patience=args.patience):
            if event.kind == "epoch" and event.epoch == 0:
                floor = run.fid_floor
                floor_text = "n/a" if floor is None else f"{floor:.1f}"
                tqdm.write(f"{event.message} (real vs real: {floor_text})", file=sys.stderr)
            elif event.kind == "epoch":
                m = event.metrics
                left = event.seconds_left
                tqdm.write(
                    f"epoch {event.epoch}: FID {m['fid']:.1f}, loss G {m['loss_g']:.3f}, "
                    f"loss D {m['loss_d']:.3f}, {m['seconds_per_iteration']:.2f} s/iteration, "
                    f"FID {m['seconds_fid']:.0f} s"
                    + (f"; about {duration(left)} left" if left else ""),
                    file=sys.stderr,
                )
            elif event.kind == "note":
                tqdm.write(event.message, file=sys.stderr)
            elif event.kind == "stopped":
                tqdm.write(f"stopped: {event.message}", file=sys.stderr)
    metrics = run.metrics()
    trained = [e for e in metrics["epochs"] if e["epoch"] > 0]
    if trained:
        best = metrics["best_epoch"]
        fid = next((e["fid"] for e in trained if e["epoch"] == best), None)
        chosen = "none (no finite FID)" if fid is None else f"{best} (FID {fid:.1f})"
        print(f"Run {run.folder}: {len(trained)} epochs ({run.stopped}), best epoch {chosen}")
        print(f"  metrics.json, fid.png, histograms/, previews/, checkpoints/ in {run.folder}")
    return 0


def cmd_best_epoch(args) -> int:
    from .gan.run import GanRun

    if args.epoch is not None and args.auto:
        from .errors import InputError

        raise InputError(f"give an epoch ({args.epoch}) or --auto, not both")
    run = GanRun.open(args.run)
    if args.epoch is not None or args.auto:
        best = run.set_best_epoch(None if args.auto else args.epoch)
    else:
        best = run.best_epoch
    print(f"best epoch of {args.run}: {best}")
    return 0


def cmd_generate(args) -> int:
    from .data.synthesis import generate
    from .errors import InputError

    if args.n_background is not None and not args.background_patches:
        raise InputError("--n-background needs --background-patches (the patch set to take from)")
    started = time.perf_counter()
    with progress_bar("generate") as monitor:
        summary = generate(
            args.run,
            args.out,
            args.count,
            epoch=args.epoch,
            seed=args.seed,
            spp=args.spp,
            contour_thickness=args.contour_thickness,
            background_patches=args.background_patches,
            n_background=200 if args.n_background is None else args.n_background,
            workers=args.workers,
            scheduler=args.scheduler,
            device=args.device,
            monitor=monitor,
        )
    seconds = time.perf_counter() - started
    print(
        f"{summary['synthetic_pairs']} synthetic pairs (epoch {summary['epoch']}, spp "
        f"{summary['spp']}, {summary['rejected']} rejected by the contrast filter) and "
        f"{summary['background_patches']} real background patches in {args.out} "
        f"({seconds:.0f} s)"
    )
    if summary["background_patches"] < summary["background_requested"]:
        print(
            f"  only {summary['background_patches']} of {summary['background_requested']} "
            "requested background patches were available"
        )
    for note in summary["notes"]:
        print(f"  note: {note}")
    print("  nnU-Net dataset: dataset.json, imagesTr/, labelsTr/; also instances/, parameters/,")
    print("  generation.json. Train on it with: diffrendergan segment-train " + str(args.out))
    return 0


def cmd_calibrate(args) -> int:
    """``diffrendergan calibrate``: a scene prior measured from unannotated scans."""
    import json

    from .analysis.calibration import (
        NO_PIXEL_SIZE,
        CalibrationError,
        calibrate,
        calibrated_config,
        read_scans,
    )
    from .config import load_config

    like = load_config(args.like) if args.like else None
    scans, pixel = read_scans(args.scans, args.pixel_size, args.exclude_bottom)
    if args.out and not pixel:
        raise CalibrationError(NO_PIXEL_SIZE)
    with progress_bar("calibrate") as monitor:
        report = calibrate(scans, pixel, monitor)
    for line in _calibration_lines(report):
        print(line)
    if args.out:
        config = calibrated_config(report, like, name=Path(args.out).stem)
        config.save(args.out)
        s = config.scene
        print(
            f"Preset {args.out}: {config.meshes.count} {config.meshes.library} meshes in a "
            f"{s.width}x{s.height} px field {s.field_width:.4g} mesh units wide (scene and "
            f"learning of {args.like or 'the ' + config.meshes.library + ' preset'})"
        )
    if args.json:
        print(json.dumps(_valid_json(report), allow_nan=False))
    return 0


def _calibration_lines(report: dict) -> list[str]:
    """What ``calibrate`` found, for people."""
    estimates, unit, fit = report["estimates"], report["unit"], report["size_fit"]
    median = estimates["diameter"]["median"]
    density_name = "density_per_um2" if unit == "nm" else "density_per_megapixel"
    density = estimates[density_name]
    agglomerates, shape = estimates["share_in_clusters"], estimates["shape"]
    chosen = "two modes" if fit["chosen"] == "bimodal" else "lognormal"
    sizes = f"size fit {chosen} (BIC lognormal {fit['lognormal']['bic']:.1f}"
    if "bimodal" in fit:
        smaller = 100 * min(fit["bimodal"]["weight2"], 1 - fit["bimodal"]["weight2"])
        sizes += f", two modes {fit['bimodal']['bic']:.1f} with {smaller:.0f} % in the smaller"
    return [
        f"Calibrated from {report['scans']} scan(s): {report['polarity']} particles, "
        f"{report['family']}; {report['counts']['measured']} of {report['counts']['particles']} "
        "particles measured whole",
        f"  median diameter {median['value']:.4g} {unit} (95 % CI {_interval(median)}); {sizes})",
        f"  {density['value']:.4g} particles per {'µm²' if unit == 'nm' else 'megapixel'} "
        f"({_interval(density)}), {100 * estimates['coverage']['value']:.1f} % covered",
        f"  {100 * agglomerates['value']:.0f} % of particles in clusters "
        f"({_interval(agglomerates, 100)} %), median cluster "
        f"{estimates['cluster_size']['value'] or 0:.0f} particles",
        f"  shape: aspect ratio {shape['aspect']['value']:.3g}, circularity "
        f"{shape['circularity']['value']:.3g}, elongation {shape['elongation']['value']:.3g}",
        *(f"  note: {note}" for note in report["notes"]),
    ]


def _interval(estimate: dict, scale: float = 1.0) -> str:
    low, high = estimate["ci"]
    return "–".join(f"{scale * v:.3g}" if v is not None else "?" for v in (low, high))


PIXEL_SIZE_HELP = (
    "nm per pixel (default: the file's, from its JSON sidecar or its Zeiss, FEI/Thermo, OME or "
    "ImageJ metadata)"
)


def build_parser() -> argparse.ArgumentParser:
    from .analysis.particles import (
        CORE_THRESHOLD,
        MIN_AREA,
        MIN_SEED_AREA,
        SPLIT_DISTANCE,
        WATERSHED,
    )
    from .analysis.thickness import METHODS
    from .config import MAX_CONTOUR, PRESETS
    from .data.synthesis import MAX_PAIRS
    from .gan.run import MAX_EPOCHS, MAX_ITERATIONS, MAX_SEED
    from .gan.training import PATIENCE

    parser = argparse.ArgumentParser(
        prog="diffrendergan",
        description="DiffRenderGAN: annotated synthetic nanoparticle images by differentiable "
        "rendering, nnU-Net segmentation and particle statistics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole available pipeline on built-in samples")
    demo.add_argument("--out", type=_out_folder, default="diffrendergan-demo", help="output folder")
    demo.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    demo.add_argument("--spp", type=_square, default=16, help="samples per pixel")
    demo.add_argument("--seed", type=_whole(0, MAX_SEED), default=0)
    demo.add_argument(
        "--train-images",
        type=_whole(1, MAX_PAIRS),
        default=24,
        help="synthetic images for the nnU-Net demo training",
    )
    demo.add_argument(
        "--seg-iterations", type=_whole(1), default=100, help="nnU-Net training iterations"
    )
    demo.add_argument(
        "--gan-epochs", type=_whole(1, MAX_EPOCHS), default=2, help="DiffRenderGAN training epochs"
    )
    _add_device(demo)
    demo.set_defaults(func=cmd_demo)

    scene = sub.add_parser("scene", help="render one annotated scene of a preset")
    scene.add_argument(
        "--preset",
        required=True,
        help=f"preset name ({', '.join(PRESETS)}) or configuration JSON file",
    )
    scene.add_argument("--meshes", help="folder of PLY/OBJ meshes replacing the preset's")
    scene.add_argument("--seed", type=_whole(0, MAX_SEED), default=0)
    scene.add_argument("--spp", type=_square, help="samples per pixel (default: preset's)")
    scene.add_argument("--size", type=_whole(16), help="image width and height in pixels")
    scene.add_argument("--out", type=_out_folder, required=True, help="output folder")
    _add_device(scene)
    scene.set_defaults(func=cmd_scene)

    seg_train = sub.add_parser("segment-train", help="train nnU-Net on a synthetic dataset")
    seg_train.add_argument("dataset", help="nnU-Net raw dataset folder (with dataset.json)")
    seg_train.add_argument("--out", required=True, help="model folder to create")
    seg_train.add_argument(
        "--config",
        choices=("small", "default"),
        default="small",
        help="small: 1.9 M-parameter U-Net for CPUs; default: nnU-Net's",
    )
    seg_train.add_argument(
        "--iterations",
        type=_whole(1),
        default=1000,
        help="training iterations (small: 50 per epoch, default: 250)",
    )
    seg_train.add_argument(
        "--resume", action="store_true", help="continue an interrupted run in the same model folder"
    )
    _add_device(seg_train)
    seg_train.set_defaults(func=cmd_segment_train)

    segment = sub.add_parser("segment", help="segment images with a trained nnU-Net model")
    segment.add_argument("images", nargs="+", help="image files or folders")
    segment.add_argument("--model", required=True, help="model folder from segment-train")
    segment.add_argument("--out", required=True, type=_out_folder, help="output folder")
    segment.add_argument(
        "--watershed",
        action=argparse.BooleanOptionalAction,
        default=WATERSHED,
        help="also split touching particles at narrow necks by a distance-transform watershed "
        f"(default {'on' if WATERSHED else 'off'})",
    )
    segment.add_argument(
        "--split-distance",
        type=_whole(1),
        default=SPLIT_DISTANCE,
        help=f"px between watershed peaks (default {SPLIT_DISTANCE})",
    )
    segment.add_argument(
        "--core-threshold",
        type=_core_threshold,
        default=CORE_THRESHOLD,
        metavar="P|off",
        help="split particles where the network's particle probability dips below P between "
        f"two confident cores (default {CORE_THRESHOLD or 'off'})",
    )
    segment.add_argument(
        "--min-seed-area",
        type=_whole(1),
        default=MIN_SEED_AREA,
        help="px a confident core needs to split a particle off at a dip: smaller ones are "
        f"texture inside a particle (default {MIN_SEED_AREA})",
    )
    segment.add_argument(
        "--min-area",
        type=_whole(1),
        default=MIN_AREA,
        help=f"smallest particle kept, px (default {MIN_AREA})",
    )
    segment.add_argument("--pixel-size", type=_pixel_size, help=PIXEL_SIZE_HELP)
    segment.add_argument(
        "--exclude-bottom",
        type=_rows_or_auto,
        default="auto",
        metavar="ROWS|auto",
        help="leave out a data bar of this many rows at the bottom, or auto (default): the "
        "data bar found at the bottom or top of each image, if any",
    )
    segment.add_argument(
        "--window",
        choices=("whole", "sliding"),
        default="whole",
        help="whole: one network pass per image block (fast); sliding: nnU-Net's patches",
    )
    segment.add_argument(
        "--step",
        type=_step,
        default=0.5,
        help="sliding-window step as a fraction of the patch, above 0 and at most 1",
    )
    segment.add_argument(
        "--mirroring",
        choices=("none", "x", "all"),
        default="none",
        help="test-time flips: none, x (2 passes) or all (4 passes, nnU-Net's default; fewer "
        "particles cut into pieces, better size distributions)",
    )
    segment.add_argument(
        "--workers", type=_workers, help="local Dask worker processes (at most the CPU cores)"
    )
    segment.add_argument("--scheduler", help="address of an existing Dask scheduler")
    _add_device(segment)
    segment.set_defaults(func=cmd_segment)

    patches = sub.add_parser("patches", help="cut training patches from real scans")
    patches.add_argument("images", nargs="+", help="real scans (TIFF, PNG, ...)")
    patches.add_argument(
        "--out", required=True, type=_out_folder, help="patch set folder (appended to)"
    )
    patches.add_argument(
        "--roi",
        action="append",
        type=_region,
        metavar="y0:y1,x0:x1",
        help="region to tile (repeatable; default: the whole image)",
    )
    patches.add_argument("--size", type=_whole(16), default=256)
    patches.add_argument("--stride", type=_whole(1), default=128)
    patches.add_argument(
        "--role",
        choices=("particle", "background", "auto"),
        default="auto",
        help="auto: >= 3 whole particles = particle, empty = background",
    )
    patches.add_argument(
        "--polarity",
        choices=("auto", "bright", "dark"),
        default="auto",
        help="particles brighter or darker than the background; auto (default): found on "
        "each scan, as calibrate finds it",
    )
    patches.add_argument(
        "--exclude-bottom",
        type=_rows_or_auto,
        default="auto",
        metavar="ROWS|auto",
        help="leave out a data bar of this many rows at the bottom, or auto (default): the "
        "data bar found at the bottom or top of each image, if any (without --roi)",
    )
    patches.add_argument("--pixel-size", type=_pixel_size, help=PIXEL_SIZE_HELP)
    patches.set_defaults(func=cmd_patches)

    evaluate = sub.add_parser(
        "evaluate", help="score predicted masks against manual ones (Dice, AP50, PQ)"
    )
    evaluate.add_argument("--pred", required=True, help="folder of predicted label images")
    evaluate.add_argument("--truth", required=True, help="folder of manual masks")
    evaluate.add_argument(
        "--json", action="store_true", help="print one JSON object with all scores as the last line"
    )
    for which in ("truth", "pred"):
        evaluate.add_argument(
            f"--{which}-kind",
            choices=("auto", "binary", "semantic", "instances"),
            help=f"what the {which} files hold: binary (any nonzero pixel is a particle), "
            "semantic (3-class 0/1/2: background, particle, contour) or instances (default: "
            "*_mask semantic, *_instances instances, else auto: told from the values, and "
            "refused when they fit no kind)",
        )
    evaluate.add_argument(
        "--pixel-size", type=_pixel_size, help="nm per pixel for sizes (else the files' sidecars)"
    )
    evaluate.add_argument(
        "--min-area",
        type=_whole(1),
        default=MIN_AREA,
        metavar="PX",
        help=f"size floor: smaller particles are left out of sizes on both sides ({MIN_AREA})",
    )
    evaluate.add_argument(
        "--keep-border",
        action="store_true",
        help="also size particles cut by the image border (left out by default)",
    )
    evaluate.set_defaults(func=cmd_evaluate)

    thickness = sub.add_parser("thickness", help="local-thickness maps of nanowire masks")
    thickness.add_argument("masks", nargs="+", help="mask images (any nonzero = foreground)")
    thickness.add_argument("--out", required=True, type=_out_folder, help="output folder")
    thickness.add_argument("--pixel-size", type=_pixel_size, help=PIXEL_SIZE_HELP)
    thickness.add_argument(
        "--method",
        choices=METHODS,
        default="exact",
        help="exact (default: the definition, computed fast) or localthickness (the package of "
        "that name: an approximation, slower; docs/thickness.md)",
    )
    thickness.set_defaults(func=cmd_thickness)

    train = sub.add_parser("train", help="train DiffRenderGAN on a patch set")
    train.add_argument("--patches", help="patch set folder (diffrendergan patches)")
    train.add_argument("--preset", help="preset name or configuration JSON")
    train.add_argument("--out", type=_out_folder, required=True, help="run folder")
    train.add_argument("--meshes", help="folder of your own particle meshes")
    train.add_argument(
        "--epochs",
        type=_whole(1, MAX_EPOCHS),
        help="epochs to train to (default: 50 for a new run, the run's own with --resume)",
    )
    train.add_argument(
        "--iterations-per-epoch",
        type=_whole(0, MAX_ITERATIONS),
        help="default: one per particle patch",
    )
    train.add_argument("--spp", type=_square, help="samples per pixel (a square number)")
    train.add_argument("--seed", type=_whole(0, MAX_SEED), help="default 0")
    train.add_argument(
        "--patience",
        type=_whole(0, MAX_EPOCHS),
        default=PATIENCE,
        help=f"stop when the FID has not improved for K epochs (default {PATIENCE}; 0: never)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its own settings (--epochs extends it)",
    )
    _add_device(train)
    train.set_defaults(func=cmd_train, device=None)  # None: not given (the run's own on resume)

    gen = sub.add_parser("generate", help="synthetic image + mask pairs from a trained run")
    gen.add_argument("run", help="run folder of diffrendergan train")
    gen.add_argument(
        "--count", type=_whole(1, MAX_PAIRS), required=True, help="synthetic pairs to make"
    )
    gen.add_argument(
        "--out",
        type=_out_folder,
        required=True,
        help="nnU-Net dataset folder (DatasetNNN_Name); resumable",
    )
    gen.add_argument(
        "--epoch", type=_epoch, default="best", help="best (default), last or a number"
    )
    gen.add_argument("--background-patches", help="patch set whose background patches to add")
    gen.add_argument(
        "--n-background", type=_whole(0), help="background patches to add (default 200)"
    )
    gen.add_argument(
        "--spp", type=_square, help="quality in samples per pixel (default: the run's)"
    )
    gen.add_argument(
        "--contour-thickness", type=_whole(0, MAX_CONTOUR), help="px (default: the preset's)"
    )
    gen.add_argument("--seed", type=_whole(0, MAX_SEED), default=0)
    gen.add_argument("--workers", type=_whole(1), default=1, help="local worker processes")
    gen.add_argument("--scheduler", help="address of an existing Dask scheduler")
    _add_device(gen)
    gen.set_defaults(func=cmd_generate)

    calibrate = sub.add_parser(
        "calibrate", help="measure a scene prior (sizes in nm, density, polarity) from scans"
    )
    calibrate.add_argument("scans", nargs="+", help="unannotated scans (files or folders)")
    calibrate.add_argument(
        "--out", help="preset JSON to write (needs the pixel size: sizes are stated in nm)"
    )
    calibrate.add_argument(
        "--pixel-size", type=_pixel_size, help="nm per pixel (else the sidecars')"
    )
    calibrate.add_argument(
        "--like",
        help="preset (name or JSON) giving the scene lighting and learning limits (default: the "
        "preset of the shape family found)",
    )
    calibrate.add_argument(
        "--exclude-bottom",
        type=_rows_or_auto,
        default="auto",
        metavar="ROWS|auto",
        help="leave out a data bar of this many rows at the bottom, or auto (default): the "
        "data bar found at the bottom or top of each scan, if any",
    )
    calibrate.add_argument(
        "--json", action="store_true", help="print one JSON object with everything as the last line"
    )
    calibrate.set_defaults(func=cmd_calibrate)

    best = sub.add_parser("best-epoch", help="show or override the best epoch of a run")
    best.add_argument("run", help="run folder")
    best.add_argument("epoch", nargs="?", type=_whole(1), help="epoch to use from now on")
    best.add_argument("--auto", action="store_true", help="back to the automatic choice")
    best.set_defaults(func=cmd_best_epoch)

    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import Cancelled, DiffRenderGANError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DiffRenderGANError as err:
        message = " ".join(str(err).split())  # one line, even for multi-line messages
        print(f"diffrendergan {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print(f"diffrendergan {args.command}: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
