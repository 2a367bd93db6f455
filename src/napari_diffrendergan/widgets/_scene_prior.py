"""Scene prior dock widget: open scans in; what ``diffrendergan calibrate`` measures on them
(polarity, sizes, density, agglomeration, shape family with 95 % intervals), renders of the
prior beside crops of the scans at the same scale, and an editable preset that is saved or
handed to GAN training."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, FloatSpinBox, Select
from matplotlib.figure import Figure
from napari.layers import Image
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QTabWidget,
)

from ..analysis.calibration import (
    EDITABLE,
    FAMILIES,
    FAMILY_PRESETS,
    CalibrationError,
    calibrated_config,
    edited_config,
    interval_text,
    measured_family,
    preset_values,
    size_fit_reason,
    without_bar,
)
from ..analysis.matching import measure_prior, prior_rows, record
from ..analysis.size_plots import histogram_figure
from ..config import POLARITIES, PRESETS, MaterialConfig, SizeDistribution, preset
from ..errors import DiffRenderGANError
from ._base import TaskWidget
from ._layers import (
    DataBarBox,
    FigureView,
    PixelSizeBox,
    beside_layers,
    calibration,
    choice_box,
    form,
    layer_pixel_size,
    rendered,
    text_label,
)

PREVIEW = "scene prior preview"
PREVIEW_PX = 320  # side of the rendered previews and of the scan crops beside them
PREVIEWS = 2
PREVIEW_SPP = 4
AUTO_LIKE = "auto (the shape family's preset)"
KINDS = {"lognormal": "lognormal", "normal": "normal", "bimodal": "two modes"}
PLUGIN = "napari-diffrendergan"
FILLED = ("kind", "median_nm", "sigma", "density_per_um2", "polarity", "family")  # edit boxes


class ScenePriorWidget(TaskWidget):
    """Calibrate a scene prior on open Image layers, edit it, save it or train a GAN with it."""

    title = "Scene prior"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.report: dict | None = None
        self.config: MaterialConfig | None = None
        self.previews: list[np.ndarray] = []
        self._launched = None  # the inputs (_inputs_key) of the running operation
        self._measured = None  # the inputs of the report shown
        self._shown: dict = {}  # the edit boxes' values as filled from the report

        self.scans_box = Select(
            choices=self._scan_layers,
            tooltip="The scans to measure (select several with Ctrl or Shift); they must share "
            "one pixel size",
        )
        self.scans_box.native.setMaximumHeight(72)
        self.pixel_size = PixelSizeBox("of the scans: sizes in nm and density per µm²")
        self.data_bar = DataBarBox()
        self.like = choice_box("Based on", [AUTO_LIKE, *PRESETS], TIPS["like"])
        self.compare_shapes = CheckBox(text="Compare shapes by rendering", tooltip=TIPS["compare"])
        self.calibrate_button = QPushButton("Calibrate")
        self.calibrate_button.setToolTip(
            "Measure the scene prior on the chosen scans (no annotation needed), then render "
            "previews of it"
        )
        self.estimates = text_label("Choose scans and press Calibrate.")
        self.estimates.setTextFormat(Qt.TextFormat.RichText)
        self.estimates.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.estimates.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.estimates.setToolTip(
            "What the scans show, each with its 95 % bootstrap interval (docs/calibration.md)"
        )
        self.histogram = FigureView(prior_histogram(None))
        self.histogram.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        self.histogram.setToolTip(
            "Diameters of the particles measured whole; dashed: D10/D50/D90 with their 95 % "
            "intervals shaded; line: the fitted size distribution; dotted: as edited below"
        )
        self.preview = FigureView(preview_figure([], [], None))
        self.preview.setToolTip(
            "Top: crops of your scans; bottom: scenes rendered from the preset (low quality), "
            "at the same nm per pixel"
        )
        self._edit_boxes()
        self.preview_button = QPushButton("Render preview")
        self.preview_button.setToolTip("Render scenes of the preset as edited")
        self.save_button = QPushButton("Save preset…")
        self.save_button.setToolTip("Write the preset as a JSON file (CLI: --preset FILE)")
        self.use_button = QPushButton("Use in GAN training")
        self.use_button.setToolTip("Choose this preset in the GAN training dock (opened if needed)")
        self.preset_label = text_label()
        self.while_busy(self.calibrate_button, self.preview_button)
        self.status.setText("Choose one or more scans, check the pixel size, then Calibrate.")
        self._rebuild_timer = QTimer(self)
        self._rebuild_timer.setSingleShot(True)
        self._rebuild_timer.setInterval(250)
        self._rebuild_timer.timeout.connect(self.rebuild_preset)

        column = self.page_layout()
        column.addLayout(
            form(
                ("Scans", self.scans_box),
                ("Pixel size", self.pixel_size),
                ("", self.pixel_size.origin),
                self.data_bar,
                self.like,
                self.compare_shapes,
                self.calibrate_button,
            )
        )
        self.tabs = QTabWidget()
        self.tabs.addTab(self.estimates, "Estimates")
        self.tabs.addTab(self.histogram, "Sizes")
        self.tabs.addTab(self.preview, "Preview")
        column.addWidget(self.tabs)
        column.addWidget(self._preset_box())
        column.addWidget(self.progress_panel())
        column.addStretch(1)

        self.calibrate_button.clicked.connect(self.calibrate)
        self.preview_button.clicked.connect(self.render_preview)
        self.save_button.clicked.connect(self._ask_save)
        self.use_button.clicked.connect(self.use_in_gan_training)
        self.scans_box.changed.connect(self._scans_chosen)
        self.pixel_size.valueChanged.connect(self._inputs_changed)
        self.data_bar.toggled.connect(self._inputs_changed)
        self.like.changed.connect(self.rebuild_preset)
        self._show_results()
        self.follow_layers(self.scans_box)

    def _edit_boxes(self) -> None:
        self.kind = choice_box(
            "Size distribution", [(text, kind) for kind, text in KINDS.items()], TIPS["kind"]
        )
        self.median = _float_box("Median diameter", 0.1, 1e5, 1, 1.0, TIPS["median"], " nm")
        self.sigma = _float_box("Spread", 0.01, 3.0, 3, 0.01, TIPS["sigma"])
        self.density = _float_box("Density", 1e-4, 1e6, 4, 1.0, TIPS["density"], " /µm²")
        self.polarity = choice_box("Polarity", list(POLARITIES), TIPS["polarity"])
        self.family = choice_box("Shape family", list(FAMILIES), TIPS["family"])
        for box in (self.median, self.sigma, self.density, self.polarity, self.family):
            box.changed.connect(self._edited)
        self.kind.changed.connect(self._kind_chosen)

    def _preset_box(self) -> QGroupBox:
        box = QGroupBox("Preset (edit any value)")
        buttons = QHBoxLayout()
        for button in (self.preview_button, self.save_button, self.use_button):
            buttons.addWidget(button)
        form(
            self.kind,
            self.median,
            self.sigma,
            self.density,
            self.polarity,
            self.family,
            self.preset_label,
            buttons,
            layout=QFormLayout(box),
        )
        self.preset_group = box
        return box

    # --- inputs -------------------------------------------------------------------------------

    def _scan_layers(self, _picker=None) -> list[tuple[str, Image]]:
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and layer.ndim == 2
            and not layer.multiscale
            and "scene_prior" not in layer.metadata
        ]

    def _layers_changed(self, event=None) -> None:
        choices = self._scan_layers()
        if not self.scans_box.value and choices:
            self.scans_box.value = [choices[0][1]]
        self._scans_chosen()

    def _scans_chosen(self, value=None) -> None:
        chosen = self.scans_box.value
        first = chosen[0] if chosen else None
        self.pixel_size.follow(first)
        self.data_bar.follow(first)
        self._inputs_changed()

    def _inputs_key(self) -> tuple:
        return (
            tuple(id(layer) for layer in self.scans_box.value),
            self.pixel_size.nm(),
            self.data_bar.isChecked(),
        )

    def _inputs_changed(self, *_) -> None:
        """Scans, pixel size or data bar changed: results of others are not shown."""
        if self.busy and self._launched != self._inputs_key():
            self.cancel()
        if self.report is not None and self._measured != self._inputs_key():
            self._clear("The scans or their settings changed: Calibrate again.")

    def _clear(self, message: str) -> None:
        self.report, self.config, self.previews = None, None, []
        self.estimates.setText(message)
        self.histogram.show_figure(prior_histogram(None))
        self.preview.show_figure(preview_figure([], [], None))
        self._show_results()
        self.status.setText(message)

    def _pixel_nm(self, layers) -> float | None:
        """The pixel size box's value; refused when the chosen layers know different ones
        (unless the user typed one for all)."""
        size = self.pixel_size.nm()
        known = {round(s, 6) for s in (layer_pixel_size(lay)[0] for lay in layers) if s}
        if size and not self.pixel_size.typed and len(known) > 1:
            raise CalibrationError(
                f"the chosen scans have different pixel sizes ({', '.join(map(str, known))} nm):"
                " calibrate scans of one pixel size together, or type the pixel size"
            )
        return size

    # --- calibration --------------------------------------------------------------------------

    def calibrate(self) -> None:
        """Measure the scene prior of the chosen scans in a worker, then render previews."""
        layers = list(self.scans_box.value)
        if not layers:
            self.status.setText("Choose one or more Image layers (scans) first.")
            return
        try:
            pixel = self._pixel_nm(layers)
        except DiffRenderGANError as err:
            self.show_error(err, "Cannot calibrate")
            return
        exclude = "auto" if self.data_bar.left_out() else 0
        scans = [(layer.name, np.asarray(layer.data), exclude) for layer in layers]
        self._launched = self._inputs_key()
        self.launch(
            _calibration_work,
            scans,
            pixel,
            self._like(),
            self.compare_shapes.value,
            each=self._on_item,
            done=self._calibrated,
            failed=lambda err: self.show_error(err, "Cannot calibrate"),
            text=f"Calibrating on {len(scans)} scan(s)…",
        )

    def _like(self) -> MaterialConfig | None:
        name = self.like.value
        return None if name == AUTO_LIKE else preset(name)

    def _on_item(self, item: tuple) -> None:
        if self._launched != self._inputs_key():  # the scans changed meanwhile
            return
        kind, *rest = item
        if kind == "report":
            self._measured = self._launched
            self.report, self.config, figure, pixels = rest
            self.estimates.setText(estimates_html(self.report))
            self.histogram.show_figure(figure, pixels)
            self._fill_boxes()
            self._show_results()
        else:
            self._show_preview(*rest)

    def _calibrated(self, result=None) -> None:
        if self.report is None:
            return
        if self.config is None:
            self.status.setText(
                "Calibrated; sizes are in pixels: type the pixel size (nm) and Calibrate again "
                "to make a preset, which states sizes in nm."
            )
        else:
            self.status.setText(
                "Calibrated. Compare the previews with your scans, edit any value, then save "
                "the preset or use it in GAN training."
            )

    def _fill_boxes(self) -> None:
        """The edit boxes from the report, without counting as edits."""
        self._shown = {}
        boxes = (self.kind, self.median, self.sigma, self.density, self.polarity, self.family)
        for box in boxes:
            box.native.blockSignals(True)
        if self.config is not None:
            values = preset_values(self.report)
            for box, key in zip(boxes, FILLED, strict=True):
                box.value = values[key]
            self._shown = self._box_values()
        for box in boxes:
            box.native.blockSignals(False)
        self._kind_item_enabled()

    def _kind_item_enabled(self) -> None:
        fits = self.report["size_fit"] if self.report is not None else {"lognormal": None}
        for index, kind in enumerate(self.kind.choices):
            self.kind.native.model().item(index).setEnabled(kind in fits)
        self.sigma.enabled = self.kind.value != "bimodal"

    def _show_results(self) -> None:
        """Enable what a report (and a preset) allows; describe the preset."""
        has_config = self.config is not None
        self.preset_group.setEnabled(has_config)
        for button in (self.save_button, self.use_button):
            button.setEnabled(has_config)
        if has_config:
            c = self.config
            self.preset_label.setText(
                f"{c.meshes.count} {c.meshes.library} meshes per {c.scene.width}×"
                f"{c.scene.height} px field, {c.physical.pixel_size_nm:.4g} nm/px; lighting and "
                f"learning of {self._base_name()}."
            )
        else:
            self.preset_label.setText("No preset yet: it needs a calibration with a pixel size.")

    def _base_name(self) -> str:
        name = self.like.value
        return name if name != AUTO_LIKE else FAMILY_PRESETS[self.family.value]

    # --- editing ------------------------------------------------------------------------------

    def _box_values(self) -> dict:
        boxes = (self.kind, self.median, self.sigma, self.density, self.polarity, self.family)
        return {key: box.value for key, box in zip(FILLED, boxes, strict=True)}

    def edits(self) -> dict:
        """The values the user changed (keys of
        :func:`~napari_diffrendergan.analysis.calibration.preset_values`)."""
        values = self._box_values()
        return {key: value for key, value in values.items() if value != self._shown.get(key)}

    def _kind_chosen(self, _index=None) -> None:
        """Another size distribution: the median and spread boxes show its fit's."""
        if self.report is not None and self.config is not None:
            kind = self.kind.value
            fitted = preset_values({**self.report, "size_fit": _chosen(self.report, kind)})
            for box, key in ((self.median, "median_nm"), (self.sigma, "sigma")):
                with box.changed.blocked():
                    box.value = fitted[key]
                self._shown[key] = box.value
        self._kind_item_enabled()
        self._edited()

    def _edited(self, *_) -> None:
        if self.report is not None:
            self._rebuild_timer.start()

    def rebuild_preset(self, *_) -> None:
        """The preset from the report with the edited values; the histogram shows them."""
        self._rebuild_timer.stop()
        if self.report is None or not self.report.get("pixel_size_nm"):
            return
        edits = self.edits()
        try:
            self.config = edited_config(self.report, edits, self._like(), "scene-prior")
        except DiffRenderGANError as err:
            self.config = None
            self._show_results()
            self.preset_group.setEnabled(True)  # so that the value can be mended
            self.show_error(err, "Cannot make the preset")
            return
        edited = self.config.physical.diameter if edits else None
        self.histogram.show_figure(prior_histogram(self.report, edited))
        self._show_results()
        if edits:
            names = ", ".join(EDITABLE[key] for key in edits)
            self.status.setText(
                f"Preset rebuilt with {names} edited; the preview shows the values before: "
                "Render preview."
            )

    # --- preview ------------------------------------------------------------------------------

    def render_preview(self) -> None:
        """Render scenes of the preset as edited, beside crops of the scans."""
        if self.config is None:
            self.status.setText("Calibrate with a pixel size first.")
            return
        layers = list(self.scans_box.value)
        exclude = "auto" if self.data_bar.left_out() else 0
        scans = [(layer.name, np.asarray(layer.data), exclude) for layer in layers]
        self._launched = self._inputs_key()
        self.launch(
            _preview_work,
            self.config,
            scans,
            each=self._on_item,
            done=lambda _: self.status.setText("Preview rendered from the preset as edited."),
            failed=lambda err: self.show_error(err, "Cannot render the preview"),
            text="Rendering the preview…",
        )

    def _show_preview(self, renders, crops, figure, pixels) -> None:
        self.previews = renders
        self.preview.show_figure(figure, pixels)
        self.tabs.setCurrentWidget(self.preview)
        scan = self.scans_box.value[0]
        pixel = self.config.physical.pixel_size_nm
        gap = np.full((renders[0].shape[0], max(4, renders[0].shape[1] // 16)), np.nan)
        data = np.hstack([part for r in renders for part in (r, gap)][:-1]).astype(np.float32)
        data = np.nan_to_num(data, nan=float(np.nanmax(data)))
        metadata = {"pixel_size_nm": pixel, "scene_prior": self.config.name}
        layer = next((lay for lay in self.viewer.layers if lay.name == PREVIEW), None)
        if layer is not None:
            layer.data, layer.metadata = data, metadata
            layer.scale = calibration(scan)["scale"]
            layer.reset_contrast_limits()
        else:  # its pixels are the scan's size; beside the scans, not over them
            self.viewer.add_image(
                data,
                name=PREVIEW,
                colormap="gray",
                metadata=metadata,
                **(calibration(scan) | beside_layers(self.viewer)),
            )

    # --- the preset ---------------------------------------------------------------------------

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", "", "Preset JSON (*.json)")
        if path:
            self.save_preset(path if path.endswith(".json") else path + ".json")

    def save_preset(self, path: str | Path) -> MaterialConfig | None:
        """Write the preset as edited to ``path`` (named after the file, as the CLI does)."""
        if self.config is None:
            self.status.setText("No preset to save: calibrate with a pixel size first.")
            return None
        try:
            config = edited_config(self.report, self.edits(), self._like(), Path(path).stem)
            config.save(path)
        except DiffRenderGANError as err:
            self.show_error(err, "Cannot save the preset")
            return None
        self.config = config
        self.status.setText(f"Saved the preset to {path}.")
        return config

    def use_in_gan_training(self) -> None:
        """Choose the preset as edited in the GAN training dock (opened if needed)."""
        if self.config is None:
            self.status.setText("No preset yet: calibrate with a pixel size first.")
            return
        dock, gan = self.viewer.window.add_plugin_dock_widget(PLUGIN, "GAN training")
        label = gan.add_preset(copy.deepcopy(self.config), f"{self.config.name} (scene prior)")
        dock.show()
        dock.raise_()
        self.status.setText(f"GAN training now uses the preset “{label}”.")


def _float_box(
    label: str, low: float, high: float, decimals: int, step: float, tooltip: str, suffix: str = ""
) -> FloatSpinBox:
    box = FloatSpinBox(min=low, max=high, step=step, label=label, tooltip=tooltip)
    box.native.setDecimals(decimals)
    box.native.setSuffix(suffix)
    return box


def _chosen(report: dict, kind: str) -> dict:
    return {**report["size_fit"], "chosen": kind}


# --- worker functions (no Qt) -----------------------------------------------------------------


def _calibration_work(scans, pixel_nm, like, shapes, monitor):
    """Thread-worker generator: the report (the shape chosen by rendering if ``shapes``), its
    preset and histogram, then the preview."""
    images = [(name, without_bar(data, exclude, name)) for name, data, exclude in scans]
    report = measure_prior(images, pixel_nm, like, monitor, shapes)
    config = calibrated_config(report, like, "scene-prior") if pixel_nm else None
    figure = prior_histogram(report)
    yield "report", report, config, figure, rendered(figure)
    if config is not None:
        yield _preview(config, images, monitor)


def _preview_work(config, scans, monitor):
    """Thread-worker generator: the preview of ``config`` beside crops of ``scans``."""
    images = [(name, without_bar(data, exclude, name)) for name, data, exclude in scans]
    yield _preview(config, images, monitor)


def _preview(config: MaterialConfig, images, monitor) -> tuple:
    """Crops of the scans and :data:`PREVIEWS` scenes of ``config`` of the same size (px, so
    the same nm scale), rendered at low quality with the preset's polarity, and their figure."""
    from ..render.truth import render_truth_scans

    crops = scan_crops([image for _, image in images], PREVIEW_PX, PREVIEWS)
    size = crops[0].shape
    config = copy.deepcopy(config)
    config.scene.width, config.scene.height = size[1], size[0]
    config.validate()
    monitor.check()
    monitor.report(0, 1, f"rendering {PREVIEWS} preview scenes of the preset")
    scans = render_truth_scans(config, config.physical.polarity, 0, PREVIEWS, spp=PREVIEW_SPP)
    monitor.check()
    renders = [scan.image for scan in scans]
    figure = preview_figure(crops, renders, config.physical.pixel_size_nm)
    return "preview", renders, crops, figure, rendered(figure)


def scan_crops(images: list[np.ndarray], side: int, count: int) -> list[np.ndarray]:
    """``count`` crops of at most ``side`` px, all of one size: of the windows on a
    half-overlapping grid over the scans, those with the most contrast (where the particles
    are) that do not overlap each other (repeated when the scans hold fewer)."""
    height = min(side, *(image.shape[0] for image in images))
    width = min(side, *(image.shape[1] for image in images))
    windows = sorted(
        (
            (-float(image[top : top + height, left : left + width].std()), index, top, left)
            for index, image in enumerate(images)
            for top in range(0, image.shape[0] - height + 1, max(height // 2, 1))
            for left in range(0, image.shape[1] - width + 1, max(width // 2, 1))
        ),
        key=lambda window: window[0],
    )
    chosen = []
    for _, index, top, left in windows:
        if all(
            index != i or abs(top - y) >= height or abs(left - x) >= width for i, y, x in chosen
        ):
            chosen.append((index, top, left))
    chosen = (chosen * count)[:count]
    return [images[i][y : y + height, x : x + width] for i, y, x in chosen]


# --- figures (matplotlib, drawable in any thread) ---------------------------------------------


def prior_histogram(report: dict | None, edited: SizeDistribution | None = None) -> Figure:
    """The measured diameters with D10/D50/D90 and their intervals, the fitted distribution
    (line; scaled when matched: the prior whose renders measure like the scans) and the
    ``edited`` one (dotted)."""
    if report is None:
        return histogram_figure(np.zeros(0), {}, "nm")
    diameters, sizes = np.asarray(report["diameters"]), report["estimates"]["diameter"]
    marks = {
        name: {
            "value": sizes[key]["value"],
            "ci_low": sizes[key]["ci"][0],
            "ci_high": sizes[key]["ci"][1],
        }
        for name, key in (("D10", "p10"), ("D50", "median"), ("D90", "p90"))
    }
    figure = histogram_figure(diameters, marks, report["unit"])
    axes = figure.axes[0]
    if not len(diameters) or not axes.patches:
        return figure
    scale = len(diameters) * axes.patches[0].get_width()  # probability density → counts
    x = np.linspace(max(diameters.min() * 0.5, 1e-3), diameters.max() * 1.2, 200)
    fit, matching = report["size_fit"], record(report)
    label = f"fit: {KINDS[fit['chosen']]}"
    if matching is not None:
        label = f"prior: {KINDS[fit['chosen']]} fit ×{matching['fit_scale']:.3g}"
    axes.plot(
        x,
        scale * _pdf(fit["chosen"], fit[fit["chosen"]], x),
        color="tab:red",
        lw=1.2,
        label=label,
    )
    if edited is not None:
        axes.plot(
            x,
            scale * _pdf(edited.kind, edited.params, x),
            color="tab:green",
            ls=":",
            lw=1.5,
            label="edited",
        )
    axes.legend(fontsize=7, frameon=False)
    return figure


def _pdf(kind: str, params: dict, x: np.ndarray) -> np.ndarray:
    """Probability density of a size distribution (lognormal, normal or two normal modes) at
    ``x``."""
    if kind == "lognormal":
        sigma = params["sigma"]
        z = (np.log(x) - math.log(params["median"])) / sigma
        return np.exp(-(z**2) / 2) / (x * sigma * math.sqrt(2 * math.pi))
    if kind == "normal":
        return _normal(x, params["mean"], params["std"])
    w2 = params["weight2"]
    return (1 - w2) * _normal(x, params["mean1"], params["std1"]) + w2 * _normal(
        x, params["mean2"], params["std2"]
    )


def _normal(x, mean, std):
    return np.exp(-(((x - mean) / std) ** 2) / 2) / (std * math.sqrt(2 * math.pi))


def preview_figure(crops: list, renders: list, pixel_nm: float | None) -> Figure:
    """Crops of the scans (top row) above scenes rendered from the preset (bottom row), at
    the same nm per pixel, each with a scale bar."""
    figure = Figure(figsize=(3.6, 3.9), dpi=100, layout="tight")
    columns = max(len(crops), 1)
    for row, (images, title) in enumerate(((crops, "your scan"), (renders, "scene prior"))):
        for column in range(columns):
            axes = figure.add_subplot(2, columns, row * columns + column + 1)
            axes.set_axis_off()
            if column < len(images):
                image = images[column]
                low, high = np.percentile(image, [0.5, 99.5])
                axes.imshow(image, cmap="gray", vmin=low, vmax=high if high > low else low + 1)
                _scale_bar(axes, image.shape, pixel_nm)
            axes.set_title(title, fontsize=8)
    return figure


def _scale_bar(axes, shape, pixel_nm: float | None) -> None:
    """A bar of a round length (about a quarter of the width) in the lower left corner."""
    if not pixel_nm:
        return
    quarter = shape[1] * pixel_nm / 4
    length = 10 ** math.floor(math.log10(quarter))
    length *= 5 if quarter >= 5 * length else 2 if quarter >= 2 * length else 1
    pixels = length / pixel_nm
    y, x = shape[0] * 0.92, shape[1] * 0.05
    axes.plot([x, x + pixels], [y, y], color="yellow", lw=2)
    text = f"{length / 1000:g} µm" if length >= 1000 else f"{length:g} nm"
    axes.text(x, y - shape[0] * 0.03, text, color="yellow", fontsize=7)


# --- text -------------------------------------------------------------------------------------


def estimates_html(report: dict) -> str:
    """The report's estimates with their 95 % intervals as a small table."""
    est, unit = report["estimates"], report["unit"]
    nm = unit == "nm"
    density = est["density_per_um2" if nm else "density_per_megapixel"]
    evidence, shape = report["polarity_evidence"], est["shape"]
    cluster = est["cluster_size"]
    rows = [
        (
            "Polarity",
            f"{report['polarity']} particles ({evidence['scans_agreeing']} of "
            f"{evidence['scans']} scans agree)",
        ),
        ("Median diameter", f"{_ci(est['diameter']['median'])} {unit}"),
        *_matching_rows(report),
        ("Size fit", size_fit_reason(report["size_fit"])),
        ("Density", f"{_ci(density)} per {'µm²' if nm else 'megapixel'}"),
        ("Coverage", f"{_ci(est['coverage'], 100)} %"),
        (
            "Agglomeration",
            f"{_ci(est['share_in_clusters'], 100)} % of particles in clusters; median "
            f"cluster {_ci(cluster)} particles, largest {cluster['largest'] or 0}",
        ),
        (
            "Shape family",
            f"<b>{measured_family(report)}</b>: aspect ratio {_ci(shape['aspect'])}, circularity "
            f"{shape['circularity']['value']:.3g}, length/width "
            f"{shape['elongation']['value']:.3g}",
        ),
        *_texture_rows(est),
        (
            "Measured",
            f"{report['counts']['measured']} of {report['counts']['particles']} particles "
            f"whole, {report['scans']} scan(s)",
        ),
        *prior_rows(report),
        *(("Note", note) for note in report["notes"]),
    ]
    cells = "".join(
        f"<tr><td valign='top'><b>{name}</b></td><td>{text}</td></tr>" for name, text in rows
    )
    return f"<table cellspacing='3'>{cells}</table><small>(95 % intervals in brackets)</small>"


def _texture_rows(estimates: dict) -> list[tuple[str, str]]:
    """The background's film texture (reports from before it was measured have none)."""
    texture = estimates.get("film_texture")
    if not texture or texture["value"] is None:
        return []
    return [("Film texture", f"σ {_ci(texture)} of the background's brightness")]


def _matching_rows(report: dict) -> list[tuple[str, str]]:
    """The prior that renders like the scans (:func:`~..analysis.matching.match_prior`)."""
    matching = record(report)
    if matching is None:
        return []
    return [
        (
            "Prior (matched)",
            f"median diameter {report['median_diameter_nm']:.3g} nm, "
            f"{report['density_per_um2']:.3g} per µm² over the scans: rendered, these measure "
            "like the scans "
            f"(size fit ×{matching['fit_scale']:.3g})",
        )
    ]


def _ci(entry: dict, scale: float = 1.0) -> str:
    """A value with its 95 % interval, e.g. "246 (238–254)"."""
    if entry["value"] is None:
        return "–"
    return f"{scale * entry['value']:.3g} ({interval_text(entry, scale)})"


TIPS = {  # tooltips of the form rows
    "like": (
        "The preset whose lighting, learning limits and placement the new preset keeps (auto:"
        " pebbles → tio2-sem, cubes → tio2-him, spheres → sio2-him, wires → agnw-sem)"
    ),
    "kind": (
        "The size distribution: the fit the BIC chose (lognormal, normal or two modes), or"
        " another one (two modes only where at least 10 particles were measured)"
    ),
    "median": (
        "Typical particle diameter (equivalent circular diameter; wires: width): a lognormal's "
        "median, a normal's mean, the mean of two modes (both scaled to it); with a pixel "
        "size, the fit of the measured diameters scaled so that the prior's renders measure "
        "like the scans"
    ),
    "sigma": (
        "Spread of the sizes: a lognormal's standard deviation of log(diameter), a normal's "
        "standard deviation over its mean"
    ),
    "density": (
        "Particles per µm² of image, hidden ones included: sets the number of meshes; measured "
        "in the particle patches the GAN compares with (denser than the scans on average)"
    ),
    "compare": (
        "Render the preset with grains (pebbles), cubes and spheres as the GAN would before "
        "training and keep the shape whose renders look closest to particle patches of the "
        "scans (FID). A ranking of looks, not a shape measurement: on rendered scans it named "
        "the true shape in 1 of 4 cases, the measurement in 3. A few minutes per shape on a CPU"
    ),
    "polarity": "Particles brighter or darker than the background",
    "family": (
        "Mesh library: pebbles, spheres, cubes (elongated grains) or wires; with Based on "
        "auto, also the preset the lighting and learning limits come from"
    ),
}
