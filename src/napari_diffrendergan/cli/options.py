"""What the subcommands share: the progress bar, argument types that refuse bad values before
any work, and option groups several subcommands offer."""

from __future__ import annotations

import argparse
import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path

PIXEL_SIZE_HELP = (
    "nm per pixel (default: the file's, from its JSON sidecar or its Zeiss, FEI/Thermo, OME or "
    "ImageJ metadata)"
)


@contextmanager
def progress_bar(desc: str):
    """A :class:`~.progress.Monitor` drawing one tqdm bar on stderr."""
    from tqdm import tqdm

    from ..progress import Monitor

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


def valid_json(value):
    """``value`` with NaN and infinities as None (null): strict JSON parsers reject NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: valid_json(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_json(v) for v in value]
    return value


def config_from_args(args):
    """The preset of ``--preset`` with ``--meshes``, ``--spp`` and ``--size`` where given."""
    from ..config import load_config

    config = load_config(args.preset)
    if getattr(args, "meshes", None):
        config.meshes.library = str(Path(args.meshes).expanduser().resolve())
    if getattr(args, "spp", None):
        config.scene.spp = args.spp
    if getattr(args, "size", None):
        config.scene.width = config.scene.height = args.size
    return config.validate()


# argument types: each raises argparse.ArgumentTypeError with the value and what is allowed


def whole(low: int, high: int | None = None):
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


def out_folder(text: str) -> str:
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


def square(text: str) -> int:
    """argparse type: samples per pixel, a square number (one sample per stratum)."""
    value = whole(1)(text)
    if round(value**0.5) ** 2 != value:
        raise argparse.ArgumentTypeError(
            f"must be a square number of samples per pixel (1, 4, 9, 16, 25, …, 121), got {text!r}"
        )
    return value


def pixel_size(text: str) -> float:
    """argparse type: a pixel size in nm within :data:`~.io.PIXEL_SIZE_RANGE_NM`."""
    from ..errors import InputError
    from ..io import positive_pixel_size

    try:
        return positive_pixel_size(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number of nm per pixel, got {text!r}") from err
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def rows_or_auto(text: str) -> int | str:
    """argparse type: ``auto`` (the data bar found in each image) or a number of rows >= 0."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return whole(0)(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(
            f"must be auto or a whole number >= 0, got {text!r}"
        ) from err


def local_workers(text: str) -> int:
    """argparse type: local worker processes, 1 to the CPU cores here (more only compete)."""
    most = os.cpu_count() or 1
    value = whole(1)(text)
    if value > most:
        raise argparse.ArgumentTypeError(
            f"must be at most {most}, the CPU cores of this machine (more worker processes "
            f"only compete for them), got {text!r}"
        )
    return value


def step(text: str) -> float:
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


def probability_or_off(text: str) -> float | None:
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


def epoch(text: str) -> int | str:
    """argparse type: ``best``, ``last`` or an epoch number >= 1."""
    if text in ("best", "last"):
        return text
    try:
        return whole(1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be best, last or an epoch number, got {text!r}"
        ) from None


def region(text: str) -> tuple[int, int, int, int]:
    """argparse type: ``y0:y1,x0:x1``, a rectangle of whole pixels."""
    try:
        (y0, y1), (x0, x1) = (map(int, part.split(":")) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not y0:y1,x0:x1 (whole pixels)") from err
    if y0 >= y1 or x0 >= x1 or min(y0, x0) < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: needs 0 <= y0 < y1 and 0 <= x0 < x1 (top:bottom,left:right)"
        )
    return y0, y1, x0, x1


# option groups: the same option, with the same meaning, in several subcommands


def add_out(parser: argparse.ArgumentParser, help: str = "output folder") -> None:
    """``--out``: the folder to write into (required)."""
    parser.add_argument("--out", type=out_folder, required=True, help=help)


def add_seed(parser: argparse.ArgumentParser, **given) -> None:
    """``--seed``: the random seed (default 0 unless ``given`` says otherwise)."""
    from ..gan.run import MAX_SEED

    parser.add_argument("--seed", type=whole(0, MAX_SEED), **({"default": 0} | given))


def add_device(parser: argparse.ArgumentParser, what: str = "") -> None:
    """``--device``: the compute backend (``what`` it serves, to start the help)."""
    from ..backend import DEVICES

    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help=f"{what}compute backend: auto picks CUDA when a GPU is present",
    )


def add_pixel_size(parser: argparse.ArgumentParser, help: str = PIXEL_SIZE_HELP) -> None:
    """``--pixel-size``: nm per pixel overriding the files' own."""
    parser.add_argument("--pixel-size", type=pixel_size, help=help)


def add_exclude_bottom(parser: argparse.ArgumentParser, each: str = "image", note="") -> None:
    """``--exclude-bottom``: the data bar to leave out of ``each`` image (auto: found)."""
    parser.add_argument(
        "--exclude-bottom",
        type=rows_or_auto,
        default="auto",
        metavar="ROWS|auto",
        help="leave out a data bar of this many rows at the bottom, or auto (default): the "
        f"data bar found at the bottom or top of each {each}, if any{note}",
    )


def add_dask(parser: argparse.ArgumentParser, **workers) -> None:
    """``--workers`` (``workers``: its type, default and help) and ``--scheduler``."""
    parser.add_argument("--workers", **workers)
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler")


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json``: ``what`` as one JSON object on the last line."""
    parser.add_argument(
        "--json", action="store_true", help=f"print one JSON object with {what} as the last line"
    )


def as_keywords(args: argparse.Namespace, *names: str) -> dict:
    """The options ``names`` of ``args``, for a function whose keywords have the same names."""
    return {name: getattr(args, name) for name in names}
