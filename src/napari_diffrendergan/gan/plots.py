"""Figures of a DiffRenderGAN run: FID per epoch, parameter histograms, synthetic vs real.

Drawn with matplotlib's object API (``Figure``), never pyplot, so they are safe inside napari.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, MaxNLocator

from .networks import meaning


def plot_fid(ax, metrics: dict, floor: float | None = None, paper: float | None = None) -> None:
    """FID per epoch on ``ax`` (epoch 0 = the untrained generator), the best epoch marked, with
    horizontal lines for the untrained level, the real-vs-real floor (default: the run's
    ``fid_floor``) and the paper's best FID when given; "no epochs yet" when there is none."""
    records = [e for e in metrics["epochs"] if e.get("fid") is not None]
    if not records:
        no_data(
            ax,
            "FID per epoch",
            "no epochs yet: the FID of the untrained generator\n"
            "(epoch 0) appears once the set-up is done",
        )
        return
    epochs, fids = [e["epoch"] for e in records], [e["fid"] for e in records]
    ax.plot(epochs, fids, "o-", color="tab:blue", ms=3, label="synthetic vs real")
    best = metrics.get("best_epoch")
    if best in epochs:
        ax.axvline(best, color="tab:red", ls="--", lw=1)
    ax.set_title("FID per epoch" + (f" (best epoch {best})" if best in epochs else ""), fontsize=9)
    floor = metrics.get("fid_floor") if floor is None else floor
    untrained = fids[0] if epochs[0] == 0 else None
    for value, label, colour, style in (
        (untrained, "untrained (epoch 0)", "tab:grey", "--"),
        (floor, "real vs real (floor)", "tab:green", ":"),
        (paper, "paper", "black", "-."),
    ):
        if value is not None:
            ax.axhline(value, color=colour, ls=style, lw=1, label=f"{label}: {value:.0f}")
    ax.legend(fontsize=6)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("FID")


def no_data(ax, title: str, text: str) -> None:
    """An axes with no data: its title and a line saying why, no ticks."""
    ax.set_title(title, fontsize=9)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def histogram_window(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The x range of a parameter's histogram: the range its values take, padded by 5 % of
    that span or 1 % of the limits (``low``, ``high``), whichever is more, within the limits;
    a generator that gives (nearly) one value thus shows a bar in context, not a spike."""
    least, most = float(np.min(values)), float(np.max(values))
    pad = max(0.05 * (most - least), 0.01 * (high - low))
    return max(low, least - pad), min(high, most + pad)


def plot_histograms(axes, samples: np.ndarray, names: list[str], limits) -> None:
    """One histogram per parameter (column of ``samples``) on the flat list ``axes``, each on
    the range its values take (:func:`histogram_window`), titled with what it does and labelled
    with its unit and limits (``limits``: arrays of lows and highs)."""
    for i, (ax, name) in enumerate(zip(axes, names, strict=False)):
        low, high = float(limits[0][i]), float(limits[1][i])
        window = histogram_window(samples[:, i], low, high)
        ax.hist(samples[:, i], bins=30, range=window, color="tab:orange")
        ax.set_xlim(*window)
        found = meaning(name)
        ax.set_title(f"{name}\n{found.short}", fontsize=7)
        unit = f"{found.unit}; " if found.unit else ""
        ax.set_xlabel(f"{unit}limits {low:g}–{high:g}", fontsize=6)
        ax.xaxis.set_major_locator(MaxNLocator(2))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        ax.yaxis.set_major_locator(MaxNLocator(3, integer=True))  # counts of samples
        ax.tick_params(labelsize=6)
    for ax in axes[len(names) :]:
        ax.set_axis_off()


def fid_figure(metrics: dict, floor: float | None = None, paper: float | None = None) -> Figure:
    figure = Figure(figsize=(5, 3))
    plot_fid(figure.add_subplot(), metrics, floor, paper)
    figure.tight_layout()
    return figure


def histogram_figure(samples: np.ndarray, space, title: str) -> Figure:
    columns = 4
    rows = -(-len(space.names) // columns)
    figure = Figure(figsize=(3 * columns, 2.2 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    plot_histograms(list(axes.ravel()), samples, space.names, (space.low, space.high))
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def plot_comparison(axes, synthetic: np.ndarray, real: np.ndarray) -> None:
    """Synthetic images on the top row of ``axes`` (2, n) above real ones, both shown on
    [0, 1]."""
    for column in range(axes.shape[1]):
        for row, (images, label) in enumerate(((synthetic, "synthetic"), (real, "real"))):
            axes[row, column].imshow(np.clip(images[column], 0, 1), cmap="gray", vmin=0, vmax=1)
            axes[row, column].set_title(label, fontsize=8)
            axes[row, column].set_axis_off()


def comparison_figure(synthetic: np.ndarray, real: np.ndarray, title: str, count=4) -> Figure:
    """Synthetic images (top row) above real ones (bottom row), both shown on [0, 1]."""
    count = min(count, len(synthetic), len(real))
    figure = Figure(figsize=(2.5 * count, 5.2))
    plot_comparison(figure.subplots(2, count, squeeze=False), synthetic, real)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def save_epoch_figures(run, metrics, epoch, samples, synthetic, real) -> None:
    """The run's FID curve, and the epoch's histograms and synthetic-vs-real preview."""
    from ..io import write_figure

    write_figure(run.fid_figure, fid_figure(metrics), dpi=80)
    title = f"Learned parameters, epoch {epoch} ({len(samples)} samples)"
    write_figure(run.histogram_figure(epoch), histogram_figure(samples, run.space, title), dpi=80)
    write_figure(
        run.preview_figure(epoch), comparison_figure(synthetic, real, f"Epoch {epoch}"), dpi=80
    )
