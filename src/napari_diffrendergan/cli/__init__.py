"""The ``diffrendergan`` command line: batch work without napari.

Every long command shows a tqdm bar fed by the core's :class:`~.progress.Monitor`; errors the
user can fix (:class:`~.errors.DiffRenderGANError`) are printed as one line with exit code 2,
Ctrl-C exits with 130, and anything else is a bug that keeps its traceback.

Each subcommand is an ``add_<name>_parser`` beside its ``cmd_<name>`` in the module of its
stage (:mod:`.render`, :mod:`.segment`, :mod:`.gan`, :mod:`.analysis`); :mod:`.options` holds
what they share.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import analysis, gan, render, segment
from .analysis import calibration_lines
from .options import progress_bar, valid_json

__all__ = ["build_parser", "calibration_lines", "main", "progress_bar", "valid_json"]

# in the order `diffrendergan --help` lists them
SUBCOMMANDS = (
    render.add_demo_parser,
    render.add_scene_parser,
    segment.add_segment_train_parser,
    segment.add_segment_parser,
    gan.add_patches_parser,
    analysis.add_evaluate_parser,
    analysis.add_thickness_parser,
    gan.add_train_parser,
    gan.add_generate_parser,
    analysis.add_calibrate_parser,
    gan.add_best_epoch_parser,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffrendergan",
        description="DiffRenderGAN: annotated synthetic nanoparticle images by differentiable "
        "rendering, nnU-Net segmentation and particle statistics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in SUBCOMMANDS:
        add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import Cancelled, DiffRenderGANError

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
