"""Figures of a DiffRenderGAN run: FID per epoch, parameter histograms, synthetic vs real.

Drawn with matplotlib's object API (``Figure``), never pyplot, so they are safe inside napari.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def plot_fid(ax, metrics: dict, floor: float | None = None, paper: float | None = None) -> None:
    """FID per epoch on ``ax`` (epoch 0 = the untrained generator), the best epoch marked;
    optional horizontal lines for the real-vs-real floor and the paper's best FID."""
    epochs = [e["epoch"] for e in metrics["epochs"]]
    fids = [e["fid"] for e in metrics["epochs"]]
    ax.plot(epochs, fids, "o-", color="tab:blue", ms=3, label="synthetic vs real")
    best = metrics.get("best_epoch")
    if best in epochs:
        ax.axvline(best, color="tab:red", ls="--", lw=1)
        ax.set_title(f"FID per epoch (best epoch {best})", fontsize=9)
    else:
        ax.set_title("FID per epoch", fontsize=9)
    for value, label, colour in ((floor, "real vs real", "tab:green"), (paper, "paper", "grey")):
        if value is not None:
            ax.axhline(value, color=colour, ls=":", lw=1, label=f"{label} ({value:.0f})")
    if floor is not None or paper is not None:
        ax.legend(fontsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(set(fids)) == 1:  # one value: a readable axis around it instead of ±5 %
        ax.set_ylim(0, 2 * fids[0] if fids[0] > 0 else 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("FID")


def plot_histograms(axes, samples: np.ndarray, names: list[str], limits=None) -> None:
    """One histogram per parameter (column of ``samples``) on the flat list ``axes``."""
    for i, (ax, name) in enumerate(zip(axes, names, strict=False)):
        ax.hist(samples[:, i], bins=30, color="tab:orange")
        if limits is not None:
            ax.set_xlim(limits[0][i], limits[1][i])
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
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


def comparison_figure(synthetic: np.ndarray, real: np.ndarray, title: str, count=4) -> Figure:
    """Synthetic images (top row) above real ones (bottom row), both shown on [0, 1]."""
    count = min(count, len(synthetic), len(real))
    figure = Figure(figsize=(2.5 * count, 5.2))
    axes = figure.subplots(2, count, squeeze=False)
    for column in range(count):
        for row, (images, label) in enumerate(((synthetic, "synthetic"), (real, "real"))):
            axes[row, column].imshow(np.clip(images[column], 0, 1), cmap="gray", vmin=0, vmax=1)
            axes[row, column].set_title(label, fontsize=8)
            axes[row, column].set_axis_off()
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
