"""The ``diffrendergan`` command line: batch work without napari."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __version__


class _TqdmProgress:
    """Adapter from the core's ``progress(step, total, message)`` callbacks to a tqdm bar."""

    def __init__(self, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(desc=desc, unit="step", file=sys.stderr, leave=False)

    def __call__(self, step: int, total: int, message: str) -> None:
        self.bar.total = total
        self.bar.n = step
        self.bar.set_postfix_str(message)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


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
    from .scene import render_sample, write_sample

    config = _config_from_args(args)
    progress = _TqdmProgress(f"scene {config.name}")
    started = time.perf_counter()
    try:
        sample = render_sample(config, seed=args.seed, device=args.device, progress=progress)
    finally:
        progress.close()
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
    from .demo import run_demo

    progress = _TqdmProgress("demo")
    started = time.perf_counter()
    try:
        report = run_demo(
            args.out,
            args.presets,
            spp=args.spp,
            seed=args.seed,
            device=args.device,
            train_images=args.train_images,
            seg_iterations=args.seg_iterations,
            gan_epochs=args.gan_epochs,
            progress=progress,
        )
    finally:
        progress.close()
    out = Path(args.out)
    _overview_figure(report, out / "overview.png")
    scenes = report["scenes"]
    print(
        f"diffrendergan demo finished in {time.perf_counter() - started:.0f} s "
        f"({next(iter(scenes.values()))['backend']})"
    )
    print(
        f"\n1. Rendered scenes ({out / 'scenes'}): image.tif, instances.tif, mask.tif "
        "(0 background, 1 particle, 2 contour), scene.json"
    )
    for name, info in scenes.items():
        contrast = "ok" if info["contrast"]["accepted"] else "rejected by contrast filter"
        print(
            f"   {name:9s} {info['visible_particles']:3d}/{len(info['phi'])} particles "
            f"visible, {contrast}"
        )
    p = report["patches"]
    print(
        f"2. Patches from the real TiO2 SEM sample (masks unused): {p['particle']} particle, "
        f"{p['background']} background patches in {p['folder']}"
    )
    gan = report["gan"]
    learned = ", ".join(f"{k} {v:.3g}" for k, v in gan["parameters"].items())
    print(
        f"3. DiffRenderGAN: {len(gan['fid'])} epochs ({gan['seconds_per_iteration']:.2f} s per "
        f"iteration), FID per epoch {', '.join(f'{f:.0f}' for f in gan['fid'])}, best epoch "
        f"{gan['best_epoch']}; learned means: {learned}; run folder {gan['folder']}"
    )
    data = report["dataset"]
    print(
        f"4. Synthetic nnU-Net dataset from the best epoch: {data['images']} TiO2 images "
        f"({data['rejected']} rejected by the contrast filter) + {data['background']} real "
        f"background patches in {data['folder']}"
    )
    print(f"5. nnU-Net (small, {args.seg_iterations} iterations) trained: {report['model']}")
    seg = report["segmentation"]
    found = ", ".join(f"{a}/{b}" for a, b in seg["particles_found_vs_true"])
    print(
        f"6. Segmented {len(seg['particles_found_vs_true'])} held-out synthetic images: "
        f"Dice {seg['dsc']:.3f}, AP50 {seg['ap50']:.3f}, PQ {seg['pq']:.3f}; particles "
        f"found/true {found}"
    )
    real = seg["real"]
    print(
        f"7. Segmented the real scan: Dice {real['dsc']:.3f}, AP50 {real['ap50']:.3f}, PQ "
        f"{real['pq']:.3f} against its manual masks; {real['particles_found']} particles found "
        f"({real['particles_manual']} annotated), median equivalent diameter "
        f"{real['median_diameter_nm']:.1f} nm (manual {real['manual_median_diameter_nm']:.1f} "
        f"nm); statistics CSVs in {seg['folder']}"
    )
    if "thickness" in report:
        t = report["thickness"]
        print(
            f"8. Nanowire local thickness: median wire diameter {t['median']:.1f} "
            f"{t['unit']}, {t['n_wires']} wire component(s); map, CSVs, histogram in "
            f"{t['folder']}"
        )
    print(f"Overview figure: {out / 'overview.png'}")
    print("Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["timings"].items()))
    return 0


def _overview_figure(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tifffile

    from .io import atomic_path

    folders = [Path(report["out"]) / "scenes" / name for name in report["scenes"]]
    fig, axes = plt.subplots(2, len(folders), figsize=(3 * len(folders), 6), squeeze=False)
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
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def cmd_thickness(args) -> int:
    from tqdm import tqdm

    from .io import ImageReadError, read_image
    from .thickness import ThicknessError, analyse, write_outputs

    failed = 0
    rows = []
    for path in tqdm(args.masks, desc="thickness", unit="mask", file=sys.stderr, leave=False):
        try:
            mask, sidecar_nm = read_image(path)
            pixel_size = args.pixel_size or sidecar_nm
            result = analyse(mask, pixel_size)
        except (ImageReadError, ThicknessError) as err:
            print(f"  skipped {path}: {err}", file=sys.stderr)
            failed += 1
            continue
        name = Path(path).stem
        write_outputs(result, args.out, name, source=str(path))
        summary = result.summary()
        rows.append((name, summary))
    unit_note = "" if args.pixel_size else " (nm where a pixel size was given or in a sidecar)"
    print(f"Local thickness of {len(rows)} mask(s) written to {args.out}{unit_note}")
    for name, summary in rows:
        print(
            f"  {name}: {summary['n_wires']} wires, median wire diameter "
            f"{summary['median']:.3g} {summary['unit']} (p5-p95 {summary['p5']:.3g}-"
            f"{summary['p95']:.3g}), pixel-weighted mean {summary['pixel_weighted_mean']:.3g}"
        )
    return 1 if failed else 0


def cmd_segment_train(args) -> int:
    from .segmentation import train_model

    progress = _TqdmProgress("nnU-Net")
    try:
        report = train_model(
            args.dataset,
            args.out,
            config=args.config,
            iterations=args.iterations,
            device=args.device,
            resume=args.resume,
            progress=progress,
        )
    finally:
        progress.close()
    last = report.epochs[-1] if report.epochs else {}
    print(
        f"Trained nnU-Net ({args.config}) for {last.get('iterations', 0)} iterations: final "
        f"loss {last.get('train_loss', float('nan')):.3f}, pseudo-Dice "
        f"{last.get('pseudo_dice', float('nan')):.3f}"
    )
    print(f"Model folder: {report.model} (log: {report.model / 'training.log'})")
    return 0


def cmd_segment(args) -> int:
    from .segmentation import image_files, segment_files

    paths = image_files(args.images)
    progress = _TqdmProgress("segment")
    try:
        results = segment_files(
            paths,
            args.model,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=progress,
            watershed=args.watershed,
            pixel_size_nm=args.pixel_size,
            exclude_bottom=args.exclude_bottom,
            device=args.device,
            window=args.window,
            mirroring=args.mirroring,
            step=args.step,
        )
    finally:
        progress.close()
    print(f"Segmented {len(results)} image(s) into {args.out}:")
    for r in results:
        notes = f" ({'; '.join(r['notes'])})" if r["notes"] else ""
        print(
            f"  {r['name']}: {r['particles']} particles, median equivalent diameter "
            f"{r['median_diameter']:.3g} {r['unit']}{notes}"
        )
    print("Per image: <name>_mask.tif (0/1/2), <name>_instances.tif, <name>_particles.csv")
    return 0


def cmd_evaluate(args) -> int:
    import json

    from .evaluation import evaluate_folders

    result = evaluate_folders(
        args.pred, args.truth, truth_kind=args.truth_kind, pred_kind=args.pred_kind
    )
    print(
        f"{'image':20s} {'Dice':>6s} {'AP50':>6s} {'PQ':>6s} {'TP':>5s} {'FP':>5s} {'FN':>5s}"
        f" {'true':>5s} {'pred':>5s}"
    )
    for s in result["images"]:
        print(
            f"{s['name']:20s} {s['dsc']:>6.3f} {s['ap50']:>6.3f} {s['pq']:>6.3f} {s['tp']:>5d}"
            f" {s['fp']:>5d} {s['fn']:>5d} {s['n_true']:>5d} {s['n_pred']:>5d}"
        )
    print(f"{'mean':20s} {result['dsc']:>6.3f} {result['ap50']:>6.3f} {result['pq']:>6.3f}")
    if result["missing_predictions"]:
        print(f"no prediction for: {', '.join(result['missing_predictions'])}")
    if args.json:
        print(json.dumps(result))
    return 0


def _region(text: str) -> tuple[int, int, int, int]:
    try:
        (y0, y1), (x0, x1) = (map(int, part.split(":")) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not y0:y1,x0:x1") from err
    return y0, y1, x0, x1


def cmd_patches(args) -> int:
    from .io import read_image
    from .patches import cut_patches, save_patch_set

    settings = {
        "size": args.size,
        "stride": args.stride,
        "role": args.role,
        "regions": args.roi,
        "exclude_bottom": args.exclude_bottom,
    }
    total = {"particle": 0, "background": 0}
    for path in args.images:
        image, sidecar_nm = read_image(path)
        regions = args.roi or [(0, image.shape[0] - args.exclude_bottom, 0, image.shape[1])]
        patches, pixels, notes = cut_patches(
            image, str(Path(path).resolve()), regions, args.size, args.stride, args.role
        )
        save_patch_set(args.out, patches, pixels, args.pixel_size or sidecar_nm, settings)
        counts = {r: sum(p.role == r for p in patches) for r in total}
        for role, n in counts.items():
            total[role] += n
        note = f" ({'; '.join(notes)})" if notes else ""
        print(
            f"  {Path(path).name}: {counts['particle']} particle, {counts['background']} "
            f"background patches{note}"
        )
    print(
        f"Patch set {args.out}: {total['particle']} particle and {total['background']} "
        f"background patches of {args.size}x{args.size} (patches.json lists them)"
    )
    return 0


def cmd_train(args) -> int:
    from .gan import TrainingSettings, prepare_run, read_metrics, train_iter

    run = Path(args.out)
    if args.resume:
        if not (run / "training.json").is_file():
            raise ValueError(f"--resume: {run} holds no run to resume")
    else:
        if not args.patches or not args.preset:
            raise ValueError("--patches and --preset are needed to start a run")
        settings = TrainingSettings(
            epochs=args.epochs,
            iterations_per_epoch=args.iterations_per_epoch,
            seed=args.seed,
            reuse=args.reuse,
            device=args.device,
        )
        prepare_run(run, args.patches, _config_from_args(args), settings)
    from tqdm import tqdm

    bar = tqdm(desc="train", unit="it", file=sys.stderr)
    try:
        for event in train_iter(run, epochs=args.epochs if args.resume else None):
            bar.total = event.total
            bar.n = event.step
            bar.set_postfix_str(event.message)
            bar.refresh()
            if event.kind == "epoch":
                m = event.metrics
                tqdm.write(
                    f"epoch {event.epoch}: FID {m['fid']:.1f}, loss G {m['loss_g']:.3f}, "
                    f"loss D {m['loss_d']:.3f}, {m['seconds_per_iteration']:.2f} s/iteration, "
                    f"FID {m['seconds_fid']:.0f} s",
                    file=sys.stderr,
                )
    finally:
        bar.close()
    metrics = read_metrics(run)
    if metrics["epochs"]:
        best = metrics["best_epoch"]
        fid = next(e["fid"] for e in metrics["epochs"] if e["epoch"] == best)
        print(f"Run {run}: {len(metrics['epochs'])} epochs, best epoch {best} (FID {fid:.1f})")
        print(f"  metrics.json, fid.png, histograms/, previews/, checkpoints/ in {run}")
    return 0


def cmd_best_epoch(args) -> int:
    from .gan import read_metrics, set_best_epoch

    if args.epoch is not None or args.auto:
        best = set_best_epoch(args.run, None if args.auto else args.epoch)
    else:
        best = read_metrics(args.run)["best_epoch"]
    print(f"best epoch of {args.run}: {best}")
    return 0


def cmd_generate(args) -> int:
    from .synthesis import generate

    progress = _TqdmProgress("generate")
    started = time.perf_counter()
    try:
        summary = generate(
            args.run,
            args.out,
            args.count,
            epoch=args.epoch if args.epoch in ("best", "last") else int(args.epoch),
            seed=args.seed,
            spp=args.spp,
            contour_thickness=args.contour_thickness,
            background_patches=args.background_patches,
            n_background=args.n_background,
            workers=args.workers,
            scheduler=args.scheduler,
            device=args.device,
            progress=progress,
        )
    finally:
        progress.close()
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
    print("  nnU-Net dataset: dataset.json, imagesTr/, labelsTr/; also instances/, parameters/,")
    print("  generation.json. Train on it with: diffrendergan segment-train " + str(args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS

    parser = argparse.ArgumentParser(
        prog="diffrendergan",
        description="DiffRenderGAN: annotated synthetic nanoparticle images by differentiable "
        "rendering, nnU-Net segmentation and particle statistics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole available pipeline on built-in samples")
    demo.add_argument("--out", default="diffrendergan-demo", help="output folder")
    demo.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    demo.add_argument("--spp", type=int, default=16, help="samples per pixel")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--train-images",
        type=int,
        default=24,
        help="synthetic images for the nnU-Net demo training",
    )
    demo.add_argument("--seg-iterations", type=int, default=100, help="nnU-Net training iterations")
    demo.add_argument("--gan-epochs", type=int, default=2, help="DiffRenderGAN training epochs")
    _add_device(demo)
    demo.set_defaults(func=cmd_demo)

    scene = sub.add_parser("scene", help="render one annotated scene of a preset")
    scene.add_argument(
        "--preset",
        required=True,
        help=f"preset name ({', '.join(PRESETS)}) or configuration JSON file",
    )
    scene.add_argument("--meshes", help="folder of PLY/OBJ meshes replacing the preset's")
    scene.add_argument("--seed", type=int, default=0)
    scene.add_argument("--spp", type=int, help="samples per pixel (default: preset's)")
    scene.add_argument("--size", type=int, help="image width and height in pixels")
    scene.add_argument("--out", required=True, help="output folder")
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
        type=int,
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
    segment.add_argument("--out", required=True, help="output folder")
    segment.add_argument(
        "--watershed", action="store_true", help="also split touching particles at narrow necks"
    )
    segment.add_argument("--pixel-size", type=float, help="nm per pixel (else the sidecar's)")
    segment.add_argument(
        "--exclude-bottom",
        type=int,
        default=0,
        metavar="ROWS",
        help="leave out a data bar of this many rows at the bottom",
    )
    segment.add_argument(
        "--window",
        choices=("whole", "sliding"),
        default="whole",
        help="whole: one network pass per image block (fast); sliding: nnU-Net's patches",
    )
    segment.add_argument(
        "--step", type=float, default=0.5, help="sliding-window step as a fraction of the patch"
    )
    segment.add_argument(
        "--mirroring",
        choices=("none", "x", "all"),
        default="none",
        help="test-time flips: none, x (2 passes) or all (4 passes, nnU-Net's default)",
    )
    segment.add_argument("--workers", type=int, help="local Dask worker processes")
    segment.add_argument("--scheduler", help="address of an existing Dask scheduler")
    _add_device(segment)
    segment.set_defaults(func=cmd_segment)

    patches = sub.add_parser("patches", help="cut training patches from real scans")
    patches.add_argument("images", nargs="+", help="real scans (TIFF, PNG, ...)")
    patches.add_argument("--out", required=True, help="patch set folder (appended to)")
    patches.add_argument(
        "--roi",
        action="append",
        type=_region,
        metavar="y0:y1,x0:x1",
        help="region to tile (repeatable; default: the whole image)",
    )
    patches.add_argument("--size", type=int, default=256)
    patches.add_argument("--stride", type=int, default=128)
    patches.add_argument(
        "--role",
        choices=("particle", "background", "auto"),
        default="auto",
        help="auto: >= 3 whole particles = particle, empty = background",
    )
    patches.add_argument(
        "--exclude-bottom",
        type=int,
        default=0,
        metavar="ROWS",
        help="leave out a data bar of this many rows (without --roi)",
    )
    patches.add_argument("--pixel-size", type=float, help="nm per pixel (else the sidecar's)")
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
            choices=("auto", "binary", "mask", "instances"),
            help=f"what the {which} files hold (default: from names: *_mask "
            "3-class, *_instances instances, else binary if two values)",
        )
    evaluate.set_defaults(func=cmd_evaluate)

    thickness = sub.add_parser("thickness", help="local-thickness maps of nanowire masks")
    thickness.add_argument("masks", nargs="+", help="mask images (any nonzero = foreground)")
    thickness.add_argument("--out", required=True, help="output folder")
    thickness.add_argument("--pixel-size", type=float, help="nm per pixel (else the sidecar's)")
    thickness.set_defaults(func=cmd_thickness)

    train = sub.add_parser("train", help="train DiffRenderGAN on a patch set")
    train.add_argument("--patches", help="patch set folder (diffrendergan patches)")
    train.add_argument("--preset", help="preset name or configuration JSON")
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument("--meshes", help="folder of your own particle meshes")
    train.add_argument("--epochs", type=int, default=50)
    train.add_argument(
        "--iterations-per-epoch", type=int, default=0, help="default: one per particle patch"
    )
    train.add_argument("--spp", type=int, help="samples per pixel (a square number)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--reuse", type=int, default=8, help="iterations per traced constellation")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out (--epochs extends it)"
    )
    _add_device(train)
    train.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", help="synthetic image + mask pairs from a trained run")
    gen.add_argument("run", help="run folder of diffrendergan train")
    gen.add_argument("--count", type=int, required=True, help="synthetic pairs to make")
    gen.add_argument(
        "--out", required=True, help="nnU-Net dataset folder (DatasetNNN_Name); resumable"
    )
    gen.add_argument("--epoch", default="best", help="best (default), last or a number")
    gen.add_argument("--background-patches", help="patch set whose background patches to add")
    gen.add_argument("--n-background", type=int, default=200)
    gen.add_argument("--spp", type=int, help="samples per pixel (default: the run's)")
    gen.add_argument("--contour-thickness", type=int, help="px (default: the preset's)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--workers", type=int, default=1, help="local worker processes")
    gen.add_argument("--scheduler", help="address of an existing Dask scheduler")
    _add_device(gen)
    gen.set_defaults(func=cmd_generate)

    best = sub.add_parser("best-epoch", help="show or override the best epoch of a run")
    best.add_argument("run", help="run folder")
    best.add_argument("epoch", nargs="?", type=int, help="epoch to use from now on")
    best.add_argument("--auto", action="store_true", help="back to the automatic choice")
    best.set_defaults(func=cmd_best_epoch)

    return parser


def main(argv: list[str] | None = None) -> int:
    from .backend import BackendError
    from .config import ConfigError
    from .evaluation import EvaluationError
    from .gan import TrainingError
    from .mesh_library import MeshError
    from .patches import PatchError
    from .placement import PlacementError
    from .segmentation import Cancelled, SegmentationError
    from .synthesis import SynthesisError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (
        BackendError,
        ConfigError,
        EvaluationError,
        MeshError,
        PatchError,
        PlacementError,
        SegmentationError,
        SynthesisError,
        TrainingError,
        ValueError,
    ) as err:
        print(f"diffrendergan {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print(f"diffrendergan {args.command}: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
