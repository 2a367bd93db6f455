"""Figures of a DiffRenderGAN run: FID per epoch, parameter histograms, synthetic vs real."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_fid(ax, metrics: dict) -> None:
    """FID per epoch on ``ax``, the best epoch marked."""
    epochs = [e["epoch"] for e in metrics["epochs"]]
    ax.plot(epochs, [e["fid"] for e in metrics["epochs"]], "o-", color="tab:blue", ms=3)
    best = metrics.get("best_epoch")
    if best in epochs:
        ax.axvline(best, color="tab:red", ls="--", lw=1)
        ax.set_title(f"FID per epoch (best epoch {best})", fontsize=9)
    else:
        ax.set_title("FID per epoch", fontsize=9)
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


def save_epoch_figures(run, metrics, epoch, space, samples, synthetic, real) -> None:
    """``fid.png``, ``histograms/epoch_NNN.png`` and ``previews/epoch_NNN.png`` (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    run = Path(run)

    def save(fig, path):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    plot_fid(ax, metrics)
    fig.tight_layout()
    save(fig, run / "fid.png")

    columns = 4
    rows = -(-len(space.names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 2.2 * rows), squeeze=False)
    plot_histograms(list(axes.ravel()), samples, space.names, (space.low, space.high))
    fig.suptitle(f"Learned parameters, epoch {epoch} ({len(samples)} samples)", fontsize=10)
    fig.tight_layout()
    save(fig, run / "histograms" / f"epoch_{epoch:03d}.png")

    count = min(4, len(synthetic), len(real))
    fig, axes = plt.subplots(2, count, figsize=(2.5 * count, 5.2), squeeze=False)
    for column in range(count):
        for row, (images, label) in enumerate(((synthetic, "synthetic"), (real, "real"))):
            axes[row, column].imshow(np.clip(images[column], 0, 1), cmap="gray", vmin=0, vmax=1)
            axes[row, column].set_title(label, fontsize=8)
            axes[row, column].set_axis_off()
    fig.suptitle(f"Epoch {epoch}", fontsize=10)
    fig.tight_layout()
    save(fig, run / "previews" / f"epoch_{epoch:03d}.png")
