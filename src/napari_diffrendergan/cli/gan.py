"""The GAN's subcommands: ``patches`` from real scans, ``train`` a run on them, ``generate``
synthetic pairs from it and ``best-epoch`` to show or choose the epoch they come from."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from . import options


def add_patches_parser(sub) -> None:
    from ..data.patches import POLARITIES, ROLES

    patches = sub.add_parser("patches", help="cut training patches from real scans")
    patches.add_argument("images", nargs="+", help="real scans (TIFF, PNG, ...)")
    options.add_out(patches, help="patch set folder (appended to)")
    patches.add_argument(
        "--roi",
        action="append",
        type=options.region,
        metavar="y0:y1,x0:x1",
        help="region to tile (repeatable; default: the whole image)",
    )
    patches.add_argument("--size", type=options.whole(16), default=256)
    patches.add_argument("--stride", type=options.whole(1), default=128)
    patches.add_argument(
        "--role",
        choices=ROLES,
        default="auto",
        help="auto: >= 3 whole particles = particle, empty = background",
    )
    patches.add_argument(
        "--polarity",
        choices=POLARITIES,
        default="auto",
        help="particles brighter or darker than the background; auto (default): found on "
        "each scan, as calibrate finds it",
    )
    options.add_exclude_bottom(patches, note=" (without --roi)")
    options.add_pixel_size(patches)
    patches.set_defaults(func=cmd_patches)


def cmd_patches(args) -> int:
    from ..errors import InputError
    from ..io import distinct_files, file_message

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


def _patches_of(path: Path, args, settings: dict) -> tuple[dict[str, int], list[str]]:
    """Cut one scan's patches into the set at ``args.out``: counts per role and notes."""
    from ..data.patches import PatchSet, cut_patches
    from ..data.scans import bar_to_leave_out
    from ..errors import InputError
    from ..io import as_gray, chosen_pixel_size, read_image

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


def add_train_parser(sub) -> None:
    from ..gan.run import MAX_EPOCHS, MAX_ITERATIONS
    from ..gan.training import PATIENCE

    train = sub.add_parser("train", help="train DiffRenderGAN on a patch set")
    train.add_argument("--patches", help="patch set folder (diffrendergan patches)")
    train.add_argument("--preset", help="preset name or configuration JSON")
    options.add_out(train, help="run folder")
    train.add_argument("--meshes", help="folder of your own particle meshes")
    train.add_argument(
        "--epochs",
        type=options.whole(1, MAX_EPOCHS),
        help="epochs to train to (default: 50 for a new run, the run's own with --resume)",
    )
    train.add_argument(
        "--iterations-per-epoch",
        type=options.whole(0, MAX_ITERATIONS),
        help="default: one per particle patch",
    )
    train.add_argument("--spp", type=options.square, help="samples per pixel (a square number)")
    options.add_seed(
        train, default=None, help="default 0"
    )  # None: not given (the run's own on resume)
    train.add_argument(
        "--patience",
        type=options.whole(0, MAX_EPOCHS),
        default=PATIENCE,
        help=f"stop when the FID has not improved for K epochs (default {PATIENCE}; 0: never)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its own settings (--epochs extends it)",
    )
    options.add_device(train)
    train.set_defaults(func=cmd_train, device=None)  # None: not given (the run's own on resume)


def cmd_train(args) -> int:
    from tqdm import tqdm

    from ..gan.training import train_iter

    run = _resumed_run(args) if args.resume else _new_run(args)
    with options.progress_bar("train") as monitor:
        for event in train_iter(run, args.epochs, monitor, patience=args.patience):
            message = _event_line(event, run)
            if message is not None:
                tqdm.write(message, file=sys.stderr)
    metrics = run.metrics()
    trained = [e for e in metrics["epochs"] if e["epoch"] > 0]
    if trained:
        best = metrics["best_epoch"]
        fid = next((e["fid"] for e in trained if e["epoch"] == best), None)
        chosen = "none (no finite FID)" if fid is None else f"{best} (FID {fid:.1f})"
        print(f"Run {run.folder}: {len(trained)} epochs ({run.stopped}), best epoch {chosen}")
        print(f"  metrics.json, fid.png, histograms/, previews/, checkpoints/ in {run.folder}")
    return 0


def _event_line(event, run) -> str | None:
    """A training event as the line written above the bar (None: nothing to say)."""
    from ..progress import duration

    if event.kind == "epoch" and event.epoch == 0:
        floor = run.fid_floor
        floor_text = "n/a" if floor is None else f"{floor:.1f}"
        return f"{event.message} (real vs real: {floor_text})"
    if event.kind == "epoch":
        m = event.metrics
        left = event.seconds_left
        return (
            f"epoch {event.epoch}: FID {m['fid']:.1f}, loss G {m['loss_g']:.3f}, "
            f"loss D {m['loss_d']:.3f}, {m['seconds_per_iteration']:.2f} s/iteration, "
            f"FID {m['seconds_fid']:.0f} s" + (f"; about {duration(left)} left" if left else "")
        )
    if event.kind == "note":
        return event.message
    if event.kind == "stopped":
        return f"stopped: {event.message}"
    return None


# train's options that set up a new run (None: not given); a resumed run keeps its own
NEW_SETTINGS = ("iterations_per_epoch", "seed", "device")  # TrainingSettings fields


def _resumed_run(args):
    """The run in ``--out`` to resume; options that would change it are refused."""
    from ..errors import InputError
    from ..gan.run import GanRun

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
    from ..errors import InputError
    from ..gan.run import GanRun, TrainingSettings

    if not args.patches or not args.preset:
        raise InputError("--patches and --preset are needed to start a run (or --resume)")
    given = {n: getattr(args, n) for n in NEW_SETTINGS if getattr(args, n) is not None}
    settings = TrainingSettings(epochs=args.epochs or TrainingSettings.epochs, **given)
    return GanRun.create(args.out, args.patches, options.config_from_args(args), settings)


def add_generate_parser(sub) -> None:
    from ..config import MAX_CONTOUR
    from ..gan.synthesis import MAX_PAIRS

    gen = sub.add_parser("generate", help="synthetic image + mask pairs from a trained run")
    gen.add_argument("run", help="run folder of diffrendergan train")
    gen.add_argument(
        "--count", type=options.whole(1, MAX_PAIRS), required=True, help="synthetic pairs to make"
    )
    options.add_out(gen, help="nnU-Net dataset folder (DatasetNNN_Name); resumable")
    gen.add_argument(
        "--epoch", type=options.epoch, default="best", help="best (default), last or a number"
    )
    gen.add_argument("--background-patches", help="patch set whose background patches to add")
    gen.add_argument(
        "--n-background", type=options.whole(0), help="background patches to add (default 200)"
    )
    gen.add_argument(
        "--spp", type=options.square, help="quality in samples per pixel (default: the run's)"
    )
    gen.add_argument(
        "--contour-thickness", type=options.whole(0, MAX_CONTOUR), help="px (default: the preset's)"
    )
    options.add_seed(gen)
    options.add_dask(gen, type=options.whole(1), default=1, help="local worker processes")
    options.add_device(gen)
    gen.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    from ..errors import InputError
    from ..gan.synthesis import generate

    if args.n_background is not None and not args.background_patches:
        raise InputError("--n-background needs --background-patches (the patch set to take from)")
    started = time.perf_counter()
    with options.progress_bar("generate") as monitor:
        summary = generate(
            args.run,
            args.out,
            args.count,
            n_background=200 if args.n_background is None else args.n_background,
            monitor=monitor,
            **options.as_keywords(
                args,
                "epoch",
                "seed",
                "spp",
                "contour_thickness",
                "background_patches",
                "workers",
                "scheduler",
                "device",
            ),
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


def add_best_epoch_parser(sub) -> None:
    best = sub.add_parser("best-epoch", help="show or override the best epoch of a run")
    best.add_argument("run", help="run folder")
    best.add_argument("epoch", nargs="?", type=options.whole(1), help="epoch to use from now on")
    best.add_argument("--auto", action="store_true", help="back to the automatic choice")
    best.set_defaults(func=cmd_best_epoch)


def cmd_best_epoch(args) -> int:
    from ..errors import InputError
    from ..gan.run import GanRun

    if args.epoch is not None and args.auto:
        raise InputError(f"give an epoch ({args.epoch}) or --auto, not both")
    run = GanRun.open(args.run)
    if args.epoch is not None or args.auto:
        best = run.set_best_epoch(None if args.auto else args.epoch)
    else:
        best = run.best_epoch
    print(f"best epoch of {args.run}: {best}")
    return 0
