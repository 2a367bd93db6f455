"""Thickness analysis dock widget: a mask layer in, a heatmap layer and distributions out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from napari.layers import Image, Labels
from qtpy.QtWidgets import QFileDialog, QPushButton

from ..analysis.thickness import (
    METHODS,
    ThicknessError,
    ThicknessResult,
    analyse,
    distribution_rows,
    plot_distributions,
)
from ..errors import DiffRenderGANError
from ..io import write_csv
from ..wording import counted
from ._base import TaskWidget
from ._layers import (
    FigureView,
    PixelSizeBox,
    calibration,
    choice_box,
    form,
    layer_picker,
    rendered,
    text_label,
)


def layer_mask(layer) -> np.ndarray:
    """Foreground of a Labels layer (any label > 0), or the pixels of an Image layer, checked,
    for :func:`image_mask`."""
    data = np.asarray(layer.data)
    if isinstance(layer, Labels):
        return data > 0
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        raise ThicknessError("RGB image: convert it to grayscale or threshold it first")
    if data.ndim != 2:
        raise ThicknessError(f"local thickness needs a 2D layer, got shape {data.shape}")
    finite = np.isfinite(data)
    if not finite.all():
        raise ThicknessError("the image contains NaN or infinite values")
    return data


def image_mask(data: np.ndarray) -> np.ndarray:
    """The wires of an image at its Otsu threshold, on the side of the polarity found on it (as
    ``calibrate`` finds it; bright where nothing stands out); a mask is kept as it is."""
    from ..data.patches import particle_phase, scan_polarity

    if data.dtype == bool:
        return data
    polarity, _ = scan_polarity(data, [(0, data.shape[0], 0, data.shape[1])])
    return particle_phase(data, polarity)


class ThicknessAnalysisWidget(TaskWidget):
    """Local thickness of a segmentation: heatmap layer, histograms, statistics, CSV export."""

    title = "Thickness analysis"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.result: ThicknessResult | None = None
        self.source = None

        self.layer_box = layer_picker(
            self.viewer,
            Labels | Image,
            "Mask layer",
            "The mask to measure: a Labels layer (any label > 0 is wire), or an Image layer "
            "thresholded by Otsu's method",
            keep=lambda layer: " thickness (" not in layer.name,
        )
        self.pixel_size = PixelSizeBox("for thickness in nm")
        self.method = choice_box("Method", METHODS, TIPS["method"])
        self.run_button = QPushButton("Compute local thickness")
        self.run_button.setToolTip(
            "Local thickness: the diameter of the largest disk inside the mask covering each pixel"
        )
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Per-wire statistics and the thickness distribution as CSV")
        self.export_button.setEnabled(False)
        self.while_busy(self.run_button, self.export_button)
        self.status.setText("Choose a Labels layer (segmentation or binary mask) or an Image.")
        self.stats = text_label()
        self.plot = FigureView(Figure(figsize=(4, 2.8), dpi=100))

        layout = self.page_layout()
        layout.addLayout(
            form(
                self.layer_box,
                ("Pixel size", self.pixel_size),
                ("", self.pixel_size.origin),
                self.method,
            )
        )
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress_panel())
        layout.addWidget(self.plot)
        layout.addWidget(self.stats)
        layout.addWidget(self.export_button)
        layout.addStretch(1)

        self.run_button.clicked.connect(self.run)
        self.export_button.clicked.connect(self._ask_export)
        self.layer_box.changed.connect(self.pixel_size.follow)
        self.follow_layers(self.layer_box)

    def _layers_changed(self, event=None) -> None:
        """A Labels layer is chosen first, and a Labels layer just added becomes the choice (a
        mask added after the scan is what the user wants measured)."""
        if event is None:
            labels = [lay for lay in self.layer_box.choices if isinstance(lay, Labels)]
            if labels:
                self.layer_box.value = labels[0]
        elif isinstance(event.value, Labels) and event.value in self.layer_box.choices:
            self.layer_box.value = event.value  # just added (a removed layer is no choice)
        self.pixel_size.follow(self.layer_box.value)

    def run(self) -> None:
        """Analyse the chosen layer in a thread worker."""
        if self.layer_box.value is None:
            self.status.setText("No mask layer to analyse: add a Labels or Image layer.")
            return
        self.source = self.layer_box.value
        name = self.source.name
        self._forget_result()
        try:
            mask = layer_mask(self.source)
        except ThicknessError as err:
            self.status.setText(f"Cannot analyse {name}: {err}")
            return
        how = (
            ""
            if isinstance(self.source, Labels)
            else " (Image layer: wires bright or dark, as found)"
        )
        self.launch(
            self._analyse,
            mask,
            self.pixel_size.nm(),
            self.method.value,
            done=self._show,
            failed=lambda err: self.show_error(err, f"Cannot analyse {name}"),
            text=f"Computing local thickness of {name}{how}…",
        )

    def _forget_result(self) -> None:
        """No plot, statistics or export of an earlier layer while (or after failing to)
        analyse this one."""
        self.result = None
        self.export_button.setEnabled(False)
        self.stats.setText("")
        self.plot.clear_figure()

    def _set_busy(self, busy: bool) -> None:
        super()._set_busy(busy)
        self.export_button.setEnabled(not busy and self.result is not None)

    @property
    def figure(self) -> Figure:
        """The distributions figure on show."""
        return self.plot.figure

    @staticmethod
    def _analyse(mask: np.ndarray, pixel_size_nm: float | None, method: str, monitor):
        """Thread worker: the analysis (an image thresholded first), and its figure drawn here
        rather than in the GUI."""
        result = analyse(image_mask(mask), pixel_size_nm, monitor=monitor, method=method)
        figure = Figure(figsize=(4, 2.8), dpi=100, tight_layout=True)
        plot_distributions(result, figure.add_subplot(111))
        return result, figure, rendered(figure)

    def _show(self, outcome: tuple[ThicknessResult, Figure, np.ndarray]) -> None:
        result, figure, pixels = outcome
        self.result = result
        self.export_button.setEnabled(True)
        summary = result.summary()
        name = f"{self.source.name} thickness ({result.unit})"  # the colour bar's unit
        limits = (0.0, float(np.percentile(result.pixel_values, 99.5)) or 1.0)
        metadata = {
            "pixel_size_nm": result.pixel_size_nm,
            "unit": result.unit,
            "summary": summary,
            "source_layer": self.source.name,
        }
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data, layer.contrast_limits, layer.metadata = result.thickness, limits, metadata
        else:
            layer = self.viewer.add_image(
                result.thickness,
                name=name,
                colormap="inferno",
                blending="additive",
                contrast_limits=limits,
                metadata=metadata,
                **calibration(self.source),
            )
        self._one_colour_bar(name)
        self.plot.show_figure(figure, pixels)
        unit = summary["unit"]
        self.status.setText(
            f"Added layer “{name}” (local thickness in {unit}, 0 outside the mask; colour bar "
            f"in {unit})."
        )
        warning = result.looks_like_noise()
        self.stats.setText(
            (f"⚠ {warning}.\n" if warning else "")
            + f"{counted(summary['n_wires'], 'connected wire component')} · median wire diameter "
            f"{summary['median']:.3g} {unit}"
            f" · mean {summary['mean']:.3g} · p5–p95 {summary['p5']:.3g}–{summary['p95']:.3g}"
            f" · pixel-weighted mean {summary['pixel_weighted_mean']:.3g} {unit}"
        )

    def _one_colour_bar(self, shown: str) -> None:
        """The colour bar of the map just made (layer ``shown``), and no other: napari stacks
        them in one corner with no label (the unit is in the layer's name)."""
        for layer in self.viewer.layers:
            if hasattr(layer, "colorbar"):
                layer.colorbar.visible = layer.name == shown

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export per-wire statistics", "", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path) -> tuple[str, str]:
        """Per-wire statistics to ``path`` and the distribution beside it."""
        path = Path(path)
        distribution = path.with_name(f"{path.stem}_distribution.csv")
        try:
            write_csv(path, self.result.per_wire())
            write_csv(distribution, distribution_rows(self.result))
        except DiffRenderGANError as err:
            self.status.setText(f"Cannot export: {err}")
            return "", ""
        self.status.setText(f"Exported {path.name} and {distribution.name}.")
        return str(path), str(distribution)


TIPS = {  # tooltips of the form rows
    "method": (
        "exact: the definition (largest inscribed disk), computed fast; localthickness: the "
        "package of that name, an approximation by iterated morphology, slower and off at "
        "wire crossings and ends (docs/thickness.md)"
    ),
}
