"""``diffrendergan demo`` and ``diffrendergan scene``: the pipeline on built-in samples, and one
rendered scene."""

from __future__ import annotations

import time
from pathlib import Path

from . import options


def add_demo_parser(sub) -> None:
    from ..config import PRESETS
    from ..gan.run import MAX_EPOCHS
    from ..gan.synthesis import MAX_PAIRS

    demo = sub.add_parser("demo", help="run the whole available pipeline on built-in samples")
    demo.add_argument(
        "--out", type=options.out_folder, default="diffrendergan-demo", help="output folder"
    )
    demo.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    demo.add_argument("--spp", type=options.square, default=16, help="samples per pixel")
    options.add_seed(demo)
    demo.add_argument(
        "--train-images",
        type=options.whole(1, MAX_PAIRS),
        default=24,
        help="synthetic images for the nnU-Net demo training",
    )
    demo.add_argument(
        "--seg-iterations", type=options.whole(1), default=100, help="nnU-Net training iterations"
    )
    demo.add_argument(
        "--gan-epochs",
        type=options.whole(1, MAX_EPOCHS),
        default=2,
        help="DiffRenderGAN training epochs",
    )
    options.add_device(demo)
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from ..config import preset
    from ..demo import overview_figure, report_lines, run_demo
    from ..render.scene import check_render

    for name in args.presets:  # every scene can be rendered at --spp, before any work
        check_render(preset(name), args.spp)
    started = time.perf_counter()
    with options.progress_bar("demo") as monitor:
        report = run_demo(
            args.out,
            args.presets,
            monitor=monitor,
            **options.as_keywords(
                args, "spp", "seed", "device", "train_images", "seg_iterations", "gan_epochs"
            ),
        )
    overview_figure(report, Path(args.out) / "overview.png")
    print("\n".join(report_lines(report, time.perf_counter() - started)))
    return 0


def add_scene_parser(sub) -> None:
    from ..config import PRESETS

    scene = sub.add_parser("scene", help="render one annotated scene of a preset")
    scene.add_argument(
        "--preset",
        required=True,
        help=f"preset name ({', '.join(PRESETS)}) or configuration JSON file",
    )
    scene.add_argument("--meshes", help="folder of PLY/OBJ meshes replacing the preset's")
    options.add_seed(scene)
    scene.add_argument("--spp", type=options.square, help="samples per pixel (default: preset's)")
    scene.add_argument("--size", type=options.whole(16), help="image width and height in pixels")
    options.add_out(scene)
    options.add_device(scene)
    scene.set_defaults(func=cmd_scene)


def cmd_scene(args) -> int:
    from ..render.sampling import render_sample, write_sample
    from ..render.scene import check_render

    config = check_render(options.config_from_args(args))
    started = time.perf_counter()
    with options.progress_bar(f"scene {config.name}") as monitor:
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
