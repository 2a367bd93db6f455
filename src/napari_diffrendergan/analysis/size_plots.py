"""Figures of particle sizes (matplotlib Figure API, drawable in any thread): the histogram and
the cumulative distribution with its 95 % band of one result, with D10/D50/D90 and their 95 %
CIs marked, and two cumulative distributions overlaid for a comparison."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from .sizes import cumulative_distribution

# inches at 100 dpi: one tab of the Segmentation dock high (the comparison shares its tab with
# the layer pickers and a line of text), so the dock does not grow
FIGURE_SIZE = (3.9, 2.1)
COMPARISON_SIZE = (3.9, 1.7)
COLOURS = {"a": "tab:blue", "b": "tab:orange"}


def histogram_figure(diameters: np.ndarray, percentiles: dict, unit: str) -> Figure:
    """Histogram of the measured equivalent diameters with D10/D50/D90 and their CIs."""
    figure, axes = _figure()
    if len(diameters):
        axes.hist(diameters, bins=min(30, max(5, len(diameters) // 3)), color="0.6")
        mark_d_values(axes, percentiles, COLOURS["a"])
    axes.set_xlabel(f"equivalent diameter ({unit})", fontsize=8)
    axes.set_ylabel("particles", fontsize=8)
    return figure


def cumulative_figure(diameters: np.ndarray, percentiles: dict, unit: str) -> Figure:
    """Cumulative distribution of the measured equivalent diameters with its 95 % band and
    D10/D50/D90 with their CIs."""
    figure, axes = _figure()
    cdf_axes(axes, diameters, COLOURS["a"])
    if len(diameters):
        mark_d_values(axes, percentiles, COLOURS["a"])
    axes.set_xlabel(f"equivalent diameter ({unit})", fontsize=8)
    return figure


def comparison_figure(diameters: dict[str, np.ndarray], comparison: dict) -> Figure:
    """The cumulative distributions of sides ``a`` and ``b`` with their 95 % bands, each with
    its D50 and CI, in the legend with its count (``comparison`` from
    :func:`~.sizes.compare_sizes`)."""
    figure, axes = _figure(COMPARISON_SIZE)
    for side, values in diameters.items():
        d50 = comparison[side]["D50"]
        label = f"{side.upper()}, n = {len(values)}: D50 {interval_text(d50)}"
        cdf_axes(axes, values, COLOURS[side], label)
        mark_d_values(axes, {"D50": d50}, COLOURS[side], labelled=False)
    if diameters:  # upper left: a CDF leaves it empty
        title = f"KS D = {comparison['ks_statistic']:.2f}"
        axes.legend(fontsize=7, title=title, title_fontsize=7, loc="upper left", frameon=False)
    axes.set_xlabel(f"equivalent diameter ({comparison['unit']})", fontsize=8)
    return figure


def cdf_axes(axes, values: np.ndarray, colour: str, label: str | None = None) -> None:
    """The empirical cumulative distribution of ``values`` as a step line (``label`` for a
    legend) with its 95 % (DKW) band shaded."""
    cdf = cumulative_distribution(values)
    axes.step(cdf["x"], cdf["cdf"], where="post", color=colour, lw=1.2, label=label)
    axes.fill_between(cdf["x"], cdf["low"], cdf["high"], step="post", color=colour, alpha=0.2, lw=0)
    axes.set_ylim(0, 1.0)
    axes.set_ylabel("share ≤ size", fontsize=8)


def mark_d_values(axes, percentiles: dict, colour: str, labelled: bool = True) -> None:
    """Each D-value as a dashed line over its 95 % CI shaded (and its name on top)."""
    top = blended_transform_factory(axes.transData, axes.transAxes)
    for key, entry in percentiles.items():
        if entry["value"] is None:
            continue
        axes.axvspan(entry["ci_low"], entry["ci_high"], color=colour, alpha=0.15, lw=0)
        axes.axvline(entry["value"], color=colour, ls="--", lw=1)
        if labelled:
            axes.text(entry["value"], 1.01, key, transform=top, ha="center", va="bottom", size=7)


def interval_text(entry: dict) -> str:
    """A value with its 95 % CI, e.g. "52.1 (48.3–55)"; "–" when undefined."""
    if entry["value"] is None:
        return "–"
    return f"{entry['value']:.3g} ({entry['ci_low']:.3g}–{entry['ci_high']:.3g})"


def _figure(size: tuple[float, float] = FIGURE_SIZE) -> tuple[Figure, object]:
    figure = Figure(figsize=size, dpi=100, layout="tight")
    axes = figure.add_subplot(111)
    axes.tick_params(labelsize=7)
    return figure, axes
