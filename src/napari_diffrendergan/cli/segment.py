"""``diffrendergan segment-train`` and ``diffrendergan segment``: nnU-Net trained on a synthetic
dataset, and images segmented with it into masks, instances and particle sizes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import options


def add_segment_train_parser(sub) -> None:
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
        type=options.whole(1),
        default=1000,
        help="training iterations (small: 50 per epoch, default: 250)",
    )
    seg_train.add_argument(
        "--resume", action="store_true", help="continue an interrupted run in the same model folder"
    )
    options.add_device(seg_train)
    seg_train.set_defaults(func=cmd_segment_train)


def cmd_segment_train(args) -> int:
    from ..segment.training import train_model

    with options.progress_bar("nnU-Net") as monitor:
        report = train_model(
            args.dataset,
            args.out,
            monitor=monitor,
            **options.as_keywords(args, "config", "iterations", "device", "resume"),
        )
    last = report.epochs[-1] if report.epochs else {}
    print(
        f"Trained nnU-Net ({args.config}) for {last.get('iterations', 0)} iterations: final "
        f"loss {last.get('train_loss', float('nan')):.3f}, pseudo-Dice "
        f"{last.get('pseudo_dice', float('nan')):.3f}"
    )
    print(f"Model folder: {report.model} (log: {report.model / 'training.log'})")
    return 0


def add_segment_parser(sub) -> None:
    segment = sub.add_parser("segment", help="segment images with a trained nnU-Net model")
    segment.add_argument("images", nargs="+", help="image files or folders")
    segment.add_argument("--model", required=True, help="model folder from segment-train")
    options.add_out(segment)
    _add_instance_options(segment)
    options.add_pixel_size(segment)
    options.add_exclude_bottom(segment)
    _add_network_options(segment)
    options.add_dask(
        segment,
        type=options.local_workers,
        help="local Dask worker processes (at most the CPU cores)",
    )
    options.add_device(segment)
    segment.set_defaults(func=cmd_segment)


def _add_instance_options(segment: argparse.ArgumentParser) -> None:
    """How the 3-class masks become particles: watershed, core splitting, size floor."""
    from ..analysis.particles import (
        CORE_THRESHOLD,
        MIN_AREA,
        MIN_SEED_AREA,
        SPLIT_DISTANCE,
        WATERSHED,
    )

    segment.add_argument(
        "--watershed",
        action=argparse.BooleanOptionalAction,
        default=WATERSHED,
        help="also split touching particles at narrow necks by a distance-transform watershed "
        f"(default {'on' if WATERSHED else 'off'})",
    )
    _add_px(segment, "--split-distance", SPLIT_DISTANCE, "px between watershed peaks")
    segment.add_argument(
        "--core-threshold",
        type=options.probability_or_off,
        default=CORE_THRESHOLD,
        metavar="P|off",
        help="split particles where the network's particle probability dips below P between "
        f"two confident cores (default {CORE_THRESHOLD or 'off'})",
    )
    _add_px(
        segment,
        "--min-seed-area",
        MIN_SEED_AREA,
        "px a confident core needs to split a particle off at a dip: smaller ones are texture "
        "inside a particle",
    )
    _add_px(segment, "--min-area", MIN_AREA, "smallest particle kept, px")


def _add_px(segment: argparse.ArgumentParser, flag: str, default: int, help: str) -> None:
    """An option of a whole number of px >= 1, its default said at the end of its help."""
    segment.add_argument(
        flag, type=options.whole(1), default=default, help=f"{help} (default {default})"
    )


def _add_network_options(segment: argparse.ArgumentParser) -> None:
    """How the network runs over each image: window, step, test-time mirroring."""
    from ..segment.predict import MIRRORING, WINDOWS

    segment.add_argument(
        "--window",
        choices=WINDOWS,
        default="whole",
        help="whole: one network pass per image block (fast); sliding: nnU-Net's patches",
    )
    segment.add_argument(
        "--step",
        type=options.step,
        default=0.5,
        help="sliding-window step as a fraction of the patch, above 0 and at most 1",
    )
    segment.add_argument(
        "--mirroring",
        choices=tuple(MIRRORING),
        default="none",
        help="test-time flips: none, x (2 passes) or all (4 passes, nnU-Net's default; fewer "
        "particles cut into pieces, better size distributions)",
    )


def cmd_segment(args) -> int:
    from ..segment.batch import image_files, segment_files

    paths = image_files(args.images)
    with options.progress_bar("segment") as monitor:
        results = segment_files(
            paths,
            args.model,
            args.out,
            monitor=monitor,
            pixel_size_nm=args.pixel_size,
            **options.as_keywords(
                args,
                "workers",
                "scheduler",
                "watershed",
                "split_distance",
                "min_area",
                "core_threshold",
                "min_seed_area",
                "exclude_bottom",
                "device",
                "window",
                "mirroring",
                "step",
            ),
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
