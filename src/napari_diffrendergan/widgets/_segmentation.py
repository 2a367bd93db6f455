"""Segmentation dock widget: train nnU-Net, segment the open image, reportable particle sizes
(D-values with CIs, histogram, cumulative distribution, EU screen) and the comparison of two
Labels layers' size distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, FloatSpinBox
from napari.layers import Image, Labels, Shapes
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..analysis.evaluation import to_instances
from ..analysis.particles import (
    CORE_THRESHOLD,
    MIN_AREA,
    MIN_SEED_AREA,
    SPLIT_DISTANCE,
    WATERSHED,
    table_rows,
)
from ..analysis.size_plots import (
    comparison_figure,
    cumulative_figure,
    histogram_figure,
    interval_text,
)
from ..analysis.sizes import (
    PERCENTILES,
    SIZE_COLUMNS,
    compare_sizes,
    flag_border,
    measured_diameters,
    size_report,
    sized_table,
    statistics_rows,
)
from ..errors import DiffRenderGANError, InputError
from ..io import write_csv, write_json_atomic
from ..segment.model import ModelFolder
from ..segment.predict import Segmentation, Segmenter, segment_image
from ..segment.training import train_model
from ..wording import counted
from ._base import TaskWidget
from ._layers import (
    DataBarBox,
    FigureView,
    PixelSizeBox,
    calibration,
    choice_box,
    device_box,
    form,
    int_box,
    layer_named,
    layer_picker,
    layer_pixel_size,
    path_row,
    regions_of,
    rendered,
    text_label,
)


class SegmentationWidget(TaskWidget):
    """nnU-Net training and "Segment open image" with particle statistics."""

    title = "Segmentation"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.segmenter: Segmenter | None = None
        self.result: Segmentation | None = None
        self.source: Image | None = None
        self.region: tuple[int, int, int, int] | None = None  # analysed (y0, y1, x0, x1)
        self.sizing: tuple | None = None  # (table, pixel size, analysed area px, floor px)
        self.report: dict | None = None
        self.comparison: dict | None = None

        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("model folder (from training below or the CLI)")
        self.model_path.setToolTip(
            "A model folder made by Train below or `diffrendergan segment-train`"
        )
        self.model_info = text_label("No model loaded.")
        self.dataset_path = QLineEdit()
        self.dataset_path.setPlaceholderText("nnU-Net dataset folder (dataset.json)")
        self.dataset_path.setToolTip(
            "An nnU-Net dataset, e.g. exported by the Synthetic data widget"
        )
        self.config = choice_box("Network", ["small", "default"], TIPS["config"])
        self.iterations = int_box("Iterations", 1000, 1, 1_000_000, TIPS["iterations"])
        self.device = device_box()
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip(
            "Train into the model folder above (continues an interrupted training there)"
        )

        self.image_box = layer_picker(self.viewer, Image, "Image", "The image layer to segment")
        self.region_box = layer_picker(
            self.viewer,
            Shapes,
            "Region",
            "Segment only inside the first rectangle of this Shapes layer",
            none_choice="whole image",
        )
        self.watershed = CheckBox(
            text="Split touching particles (watershed)",
            value=WATERSHED,
            tooltip="Also split particles the contour class left joined at narrow necks "
            "(distance-transform watershed); off in the TiO2 experiment's rule",
        )
        self.split_distance = int_box(
            "Seed distance (px)", SPLIT_DISTANCE, 1, 1000, TIPS["split_distance"], enabled=WATERSHED
        )
        self.core_threshold = FloatSpinBox(
            value=CORE_THRESHOLD or 0.0,
            min=0.0,
            max=0.99,
            step=0.05,
            label="Split at dips below",
            tooltip="Split a particle where the network's particle probability (0–1) dips below "
            "this between two confident cores: touching particles whose border it only half drew "
            f"(off: the contour class alone); {CORE_THRESHOLD} is the TiO2 experiment's rule",
        )
        self.core_threshold.native.setSpecialValueText("off")
        self.min_seed_area = int_box(
            "Smallest core (px)",
            MIN_SEED_AREA,
            1,
            1_000_000,
            TIPS["min_seed_area"],
            enabled=CORE_THRESHOLD is not None,
        )
        self.min_area = int_box("Smallest particle (px)", MIN_AREA, 1, 1_000_000, TIPS["min_area"])
        self.mirroring = CheckBox(
            text="Test-time mirroring (4× slower)",
            tooltip="Average the prediction over 4 flipped copies of the image: fewer particles "
            "cut into pieces, better particle-by-particle matches and size distributions (TiO2 "
            "training scans: detection score AP50 0.596 → 0.614)",
        )
        self.pixel_size = PixelSizeBox("for statistics in nm")
        self.data_bar = DataBarBox()
        self.keep_border = CheckBox(
            text="Keep border particles",
            tooltip="Count particles touching the border of the image (or region) in the sizes "
            "and in Compare (the sizes are measured again at once; press Compare again). Off by "
            "default: they are cut, so they look smaller than they are (they are counted either "
            "way; particles under Smallest particle are always left out)",
        )
        self.segment_button = QPushButton("Segment open image")
        self.segment_button.setToolTip("Segment the chosen image with the model above")
        self.stats = text_label(
            tooltip="Particles measured for the sizes, and their median size (D50)"
        )
        self.export_button = self._export_menu()
        self.results = self._results_tabs()
        self.while_busy(
            self.train_button,
            self.segment_button,
            self.keep_border,
            self.compare_button,
            self.export_button,
        )
        self._enable_exports()
        self.status.setText("Load a model (or train one), then segment an open image.")

        layout = self.page_layout()
        model_box = QGroupBox("Model")
        form(
            path_row(self.model_path, self, "nnU-Net model folder", self.load_model),
            self.model_info,
            layout=QFormLayout(model_box),
        )
        layout.addWidget(model_box)

        train_box = QGroupBox("Train nnU-Net")
        form(
            ("Dataset", path_row(self.dataset_path, self, "nnU-Net dataset")),
            self.config,
            self.iterations,
            self.device,
            self.train_button,
            layout=QFormLayout(train_box),
        )
        layout.addWidget(train_box)

        segment_box = QGroupBox("Segment")
        checks = QHBoxLayout()
        checks.addWidget(self.mirroring.native)
        checks.addWidget(self.keep_border.native)
        form(
            self.image_box,
            self.region_box,
            ("Pixel size", self.pixel_size),
            ("", self.pixel_size.origin),
            self.data_bar,
            self.watershed,
            self.split_distance,
            self.core_threshold,
            self.min_seed_area,
            self.min_area,
            checks,
            self.segment_button,
            layout=QFormLayout(segment_box),
        )
        layout.addWidget(segment_box)
        layout.addWidget(self.progress_panel())
        layout.addWidget(self.results)
        layout.addWidget(self.stats)
        layout.addStretch(1)

        self.model_path.editingFinished.connect(self.load_model)
        self.model_path.textChanged.connect(self._forget_model)
        self.mirroring.changed.connect(self._forget_model)
        self.device.changed.connect(self._forget_model)
        self.watershed.changed.connect(lambda on: setattr(self.split_distance, "enabled", on))
        self.core_threshold.changed.connect(
            lambda value: setattr(self.min_seed_area, "enabled", value > 0)
        )
        self.train_button.clicked.connect(self.train)
        self.segment_button.clicked.connect(self.segment)
        self.keep_border.changed.connect(self._measure_again)
        self.compare_button.clicked.connect(self.compare)
        self.image_box.changed.connect(self._image_chosen)
        self.follow_layers(self.image_box, self.region_box, self.layer_a, self.layer_b)

    def _export_menu(self) -> QPushButton:
        """An Export button whose menu writes the particle table, the statistics or the report."""
        button = QPushButton("Export")
        button.setToolTip("Export the last results (atomic writes)")
        menu = QMenu(button)
        self.export_actions = {}
        for method, (name, kind, tip) in EXPORTS.items():
            action = menu.addAction(name)
            action.setToolTip(tip)
            export = getattr(self, method)
            action.triggered.connect(lambda _=False, k=kind, e=export: self._ask_export(k, e))
            self.export_actions[method] = action
        menu.setToolTipsVisible(True)
        button.setMenu(menu)
        return button

    def _results_tabs(self) -> QTabWidget:
        """Histogram, cumulative distribution, D-value table and Compare, as tabs (one plot high,
        so the dock does not grow)."""
        self.histogram = FigureView(histogram_figure(np.zeros(0), {}, "px"))
        self.cumulative = FigureView(cumulative_figure(np.zeros(0), {}, "px"))
        tabs = QTabWidget()
        tabs.addTab(self.histogram, "Histogram")
        tabs.addTab(self.cumulative, "Cumulative")
        tabs.addTab(self._d_value_tab(), "D-values")
        tabs.addTab(self._compare_tab(), "Compare")
        tips = (  # also on the plots themselves, where hovering goes
            "Equivalent diameters of the measured particles; dashed: D10/D50/D90, shaded: their "
            "95 % confidence intervals",
            "Share of measured particles up to each size, with its 95 % confidence band "
            "(shaded); dashed: D10/D50/D90 with their 95 % CIs",
            "D10/D50/D90 with 95 % CIs, counts, number density and the EU nanomaterial screen",
            "Compare the size distributions of two Labels layers (e.g. model vs manual labels)",
        )
        for index, tip in enumerate(tips):
            tabs.setTabToolTip(index, tip)
        self.histogram.setToolTip(tips[0])
        self.cumulative.setToolTip(tips[1])
        tabs.setCornerWidget(self.export_button)
        return tabs

    def _d_value_tab(self) -> QWidget:
        self.d_table = QTableWidget(len(SIZE_COLUMNS), len(PERCENTILES))
        self.d_table.setVerticalHeaderLabels([SIZE_NAMES[name] for name in SIZE_COLUMNS])
        self.d_table.setHorizontalHeaderLabels(list(PERCENTILES))
        self.d_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.d_table.setWordWrap(False)
        row = self.d_table.fontMetrics().height() + 8
        self.d_table.verticalHeader().setDefaultSectionSize(row)
        self.d_table.horizontalHeader().setFixedHeight(row)
        self.d_table.setFixedHeight((len(SIZE_COLUMNS) + 1) * row + 4)
        self.d_table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.d_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.d_table.setToolTip(
            "Number-based D10/D50/D90 of the measured particles: value (95 % bootstrap CI). "
            "ECD: equivalent circular diameter (of the disk of equal area); Feret min/max: the "
            "narrowest and widest caliper width of the projection"
        )
        self.counts = text_label(
            tooltip="Detected particles; those touching the border and those under Smallest "
            "particle are left out of the sizes (border ones kept with Keep border particles); "
            "the density counts every particle above that floor per µm² of the analysed area"
        )
        self.screen = text_label(
            tooltip="The EU nanomaterial screen by number; its caveats show here"
        )
        tab = QWidget()
        column = QVBoxLayout(tab)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.d_table)
        column.addWidget(self.counts)
        column.addWidget(self.screen)
        column.addStretch(1)
        return tab

    def _compare_tab(self) -> QWidget:
        self.layer_a, self.layer_b = (
            layer_picker(self.viewer, Labels, side, COMPARE_TIP.format(side)) for side in "AB"
        )
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip(
            "Compare B's equivalent diameters with A's (same border and floor rules): D50 "
            "difference B − A with its 95 % CI, KS test, both cumulative distributions"
        )
        self.compare_plot = FigureView(comparison_figure({}, {"unit": "px"}))
        self.compare_plot.setToolTip(
            "Both cumulative distributions with their 95 % bands; dashed: each D50, shaded: its "
            "95 % CI; KS D: the largest gap between the two distributions"
        )
        self.compare_text = text_label(
            "Choose two Labels layers and press Compare.",
            "The D50 difference B − A with its bootstrap 95 % CI and the two-sample "
            "Kolmogorov–Smirnov test (p < 0.05: the distributions differ)",
        )
        tab = QWidget()
        grid = QGridLayout(tab)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("A"), 0, 0)
        grid.addWidget(self.layer_a.native, 0, 1)
        grid.addWidget(QLabel("B"), 0, 2)
        grid.addWidget(self.layer_b.native, 0, 3)
        grid.addWidget(self.compare_button, 0, 4)
        grid.addWidget(self.compare_plot, 1, 0, 1, 5)
        grid.addWidget(self.compare_text, 2, 0, 1, 5)
        return tab

    # --- layers -------------------------------------------------------------------------------

    def _layers_changed(self, event=None) -> None:
        self._image_chosen()

    def _image_chosen(self, _image=None) -> None:
        image = self.image_box.value
        self.pixel_size.follow(image)
        self.data_bar.follow(image)

    # --- model --------------------------------------------------------------------------------

    def _forget_model(self) -> None:
        self.segmenter = None
        text = self.model_path.text().strip()
        self.model_info.setText(
            "Model not loaded yet: it loads when you segment." if text else "No model loaded."
        )

    def _load_settings(self) -> dict:
        return {
            "device": self.device.value,
            "mirroring": "all" if self.mirroring.value else "none",
        }

    def load_model(self) -> bool:
        """Check the model folder typed or browsed (quick); the network itself loads in the
        worker when segmenting. Says what is wrong otherwise."""
        path = self.model_path.text().strip()
        if not path:
            self.model_info.setText("No model loaded.")
            return False
        try:
            meta = ModelFolder(path).metadata()
        except DiffRenderGANError as err:
            self.model_info.setText(f"Cannot use this model: {err}")
            return False
        self.model_info.setText(
            f"{meta.get('config', '?')} network, {meta.get('iterations', '?')} iterations "
            f"({Path(path).name})"
        )
        return True

    # --- training -----------------------------------------------------------------------------

    def train(self) -> None:
        """Train on the dataset folder into the model folder (resumes an interrupted run)."""
        dataset, out = self.dataset_path.text().strip(), self.model_path.text().strip()
        if not dataset or not out:
            self.status.setText("Choose a dataset folder and a (new) model folder first.")
            return
        self.launch(
            train_model,
            dataset,
            out,
            self.config.value,
            self.iterations.value,
            self.device.value,
            ModelFolder(out).workspace.is_dir(),
            done=self._trained,
            failed=lambda err: self.show_error(err, "Training failed"),
            text="Starting nnU-Net…",
        )

    def _trained(self, report) -> None:
        last = report.epochs[-1] if report.epochs else {}
        self.status.setText(
            f"Trained: pseudo-Dice {last.get('pseudo_dice', 0):.3f}; model in {report.model}"
        )
        self.segmenter = None
        self.load_model()

    # --- segmentation -------------------------------------------------------------------------

    def segment(self) -> None:
        """Segment the chosen image layer (inside the chosen rectangle, if any)."""
        if self.image_box.value is None:
            self.status.setText("Open an image first.")
            return
        if self.segmenter is None and not self.load_model():
            self.status.setText("Load a model first (see Model above).")
            return
        self.source = self.image_box.value
        name, shapes = self.source.name, self.region_box.value
        self.result_name = name if shapes is None else f"{name} in {shapes.name}"
        data = np.asarray(self.source.data)
        regions = self.data_bar.regions(regions_of(shapes, self.source), data.shape)
        if self.source.rgb:
            data = data[..., :3]
        options = {
            "region": regions[0] if regions else None,
            "watershed": self.watershed.value,
            "pixel_size_nm": self.pixel_size.nm(),
            "split_distance": self.split_distance.value,
            "min_area": self.min_area.value,
            "core_threshold": self.core_threshold.value or None,
            "min_seed_area": self.min_seed_area.value,
        }
        self.launch(
            self._segment_work,
            self.segmenter,
            self.model_path.text().strip(),
            self._load_settings(),
            data,
            options,
            self.keep_border.value,
            done=self._show,
            failed=lambda err: self.show_error(err, "Cannot segment"),
            text=f"Segmenting {name}…",
        )

    @staticmethod
    def _segment_work(
        segmenter, model: str, settings: dict, data, options: dict, keep_border: bool, monitor
    ):
        """Load the model if needed (in the worker: it takes seconds), segment, flag the
        particles touching the analysed region's border and measure the sizes."""
        if segmenter is None:
            monitor.report(0, 1, "loading the model")
            segmenter = Segmenter(model, **settings)
        monitor.check()
        result = segment_image(segmenter, data, monitor=monitor, **options)
        region = analysed_region(options["region"], result.instances.shape)
        result.table = flag_border(result.table, result.instances, region)
        area = (region[1] - region[0]) * (region[3] - region[2])
        sizing = (result.table, options["pixel_size_nm"], area, options["min_area"])
        return segmenter, result, region, sizing, measure_sizes(*sizing, keep_border)

    def _show(self, outcome) -> None:
        self.segmenter, result, self.region, self.sizing, sizes = outcome
        self.result = result
        pixel = self.sizing[1]
        metadata = {
            "pixel_size_nm": pixel,
            "source_layer": self.source.name,
            "model": str(self.segmenter.model),
            "notes": result.notes,
        }
        self._add_labels(
            result.mask, f"{self.result_name} mask", metadata=metadata, opacity=0.5, visible=False
        )
        self._add_labels(
            result.instances,
            f"{self.result_name} particles",
            metadata=metadata,
            features={k: np.asarray(v) for k, v in result.table.items()}
            if len(result.table["label"])
            else None,
        )
        notes = f" ({'; '.join(result.notes)})" if result.notes else ""
        self.status.setText(f"Added “{self.result_name} particles” and “… mask”{notes}.")
        self._show_sizes(sizes)

    def _measure_again(self) -> None:
        """Measure the last result again with the border rule just chosen (in the worker)."""
        if self.sizing is not None:
            self.launch(
                measure_sizes,
                *self.sizing,
                self.keep_border.value,
                done=self._show_sizes,
                failed=lambda err: self.show_error(err, "Cannot measure"),
                text="Measuring sizes…",
            )

    def _show_sizes(self, sizes) -> None:
        """The size report in the plots, the D-value table and the summary line."""
        report, figures, pixels = sizes
        where = {"source_layer": self.source.name, "analysed_region": list(self.region)}
        self.report = {**where, **report}
        for view, figure, picture in zip(
            (self.histogram, self.cumulative), figures, pixels, strict=True
        ):
            view.show_figure(figure, picture)
        statistics = self.report["statistics"]
        for row, name in enumerate(SIZE_COLUMNS):
            for column, key in enumerate(PERCENTILES):
                entry = statistics["sizes"][name][key]
                self.d_table.setItem(row, column, QTableWidgetItem(interval_text(entry)))
        unit = statistics["unit"]
        self.d_table.setHorizontalHeaderLabels([f"{key} ({unit})" for key in PERCENTILES])
        self.counts.setText(counts_text(statistics))
        screen = self.report["nanomaterial_screen"]
        self.screen.setText(screen_text(screen))
        self.screen.setToolTip("Caveats:\n• " + "\n• ".join(screen["caveats"]))
        self.stats.setText(summary_text(statistics))
        self._enable_exports()

    # --- comparison ---------------------------------------------------------------------------

    def compare(self) -> None:
        """Compare the size distributions of Labels layers A and B (in a worker)."""
        layers = {"a": self.layer_a.value, "b": self.layer_b.value}
        if None in layers.values():
            self.status.setText(
                "Choose two Labels layers A and B to compare (segment an image or add a Labels "
                "layer first)."
            )
            return
        pixels = {side: layer_pixel_size(layer)[0] for side, layer in layers.items()}
        if bool(pixels["a"]) != bool(pixels["b"]):
            known, unknown = ("a", "b") if pixels["a"] else ("b", "a")
            self.status.setText(
                f"Cannot compare: “{layers[known].name}” has {pixels[known]:g} nm pixels but "
                f"“{layers[unknown].name}” has no pixel size: give it its scale in nm (or its "
                "metadata pixel_size_nm), or compare two layers without pixel sizes."
            )
            return
        sides = {
            side: (layer.name, np.asarray(layer.data), pixels[side])
            for side, layer in layers.items()
        }
        self.launch(
            compare_work,
            sides,
            self.min_area.value,
            self.keep_border.value,
            done=self._compared,
            failed=lambda err: self.show_error(err, "Cannot compare"),
            text="Comparing size distributions…",
        )

    def _compared(self, outcome) -> None:
        self.comparison, figure, pixels = outcome
        self.compare_plot.show_figure(figure, pixels)
        self.compare_text.setText(comparison_text(self.comparison))
        self.status.setText("Compared B with A.")
        self._enable_exports()

    # --- layers and exports -------------------------------------------------------------------

    def _add_labels(self, data, name, **kwargs):
        layer = layer_named(self.viewer, name, Labels)
        if layer is not None:
            layer.data = data
            for key, value in {**kwargs, **calibration(self.source)}.items():
                setattr(layer, key, value)
            return layer
        return self.viewer.add_labels(data, name=name, **calibration(self.source), **kwargs)

    def _set_busy(self, busy: bool) -> None:
        super()._set_busy(busy)
        if not busy:
            self._enable_exports()

    def _enable_exports(self) -> None:
        available = {
            "export_csv": self.result is not None,
            "export_statistics": self.report is not None,
            "export_json": self.report is not None or self.comparison is not None,
        }
        for name, action in self.export_actions.items():
            action.setEnabled(available[name])

    def _ask_export(self, kind: str, export) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export", "", kind)
        if path:
            export(path)

    def export_csv(self, path) -> str:
        """Per-particle table of the last segmentation (with ``touches_border``) as CSV."""
        if self.result is None:
            return self._nothing_to_export()
        return self._write(path, write_csv, table_rows(self.result.table))

    def export_statistics(self, path) -> str:
        """The last size statistics as CSV rows (quantity, value, ci_low, ci_high, unit)."""
        if self.report is None:
            return self._nothing_to_export()
        return self._write(path, write_csv, statistics_rows(self.report["statistics"]))

    def export_json(self, path) -> str:
        """The last size report and comparison (either may be null) as JSON."""
        if self.report is None and self.comparison is None:
            return self._nothing_to_export()
        content = {"sizes": self.report, "comparison": self.comparison}
        return self._write(path, write_json_atomic, content)

    def _nothing_to_export(self) -> str:
        self.status.setText("Nothing to export yet: segment an image or compare first.")
        return ""

    def _write(self, path, write, content) -> str:
        """``write(path, content)`` (atomic); says why not in the status line."""
        try:
            write(path, content)
        except DiffRenderGANError as err:
            self.status.setText(f"Cannot export: {err}")
            return ""
        self.status.setText(f"Exported {Path(path).name}.")
        return str(path)


SIZE_NAMES = {
    "equivalent_diameter": "ECD",
    "feret_min": "Feret min",
    "feret_max": "Feret max",
}
EXPORTS = {  # method: menu entry, file kind, tooltip
    "export_csv": (
        "Particle table (CSV)…",
        "CSV (*.csv)",
        "Per-particle table of the last segmentation as CSV (with touches_border)",
    ),
    "export_statistics": (
        "Statistics (CSV)…",
        "CSV (*.csv)",
        "The size statistics (D-values with 95 % CIs, counts, density, shape) as CSV",
    ),
    "export_json": (
        "Report (JSON)…",
        "JSON (*.json)",
        "The size report (statistics and EU screen) and the last comparison as JSON",
    ),
}
COMPARE_TIP = (
    "Labels layer {} (particles as instances, a binary mask or a 3-class mask); its pixel size "
    "comes from the layer's scale or metadata"
)


def analysed_region(region, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The rectangle (y0, y1, x0, x1) that was segmented: ``region`` clipped to the image (the
    whole image without one), as :func:`segment_image` clips it."""
    if region is None:
        return (0, shape[0], 0, shape[1])
    y0, y1, x0, x1 = (int(v) for v in region)
    return (max(0, y0), min(shape[0], y1), max(0, x0), min(shape[1], x1))


def measure_sizes(table, pixel_size_nm, area_px, min_area: int, keep_border: bool):
    """The size report of one segmentation (bootstrap CIs: run it in a worker) and its
    histogram and cumulative figures, drawn."""
    report = size_report(table, pixel_size_nm, area_px, min_area, keep_border)
    diameters, unit, _ = measured_diameters([table], pixel_size_nm, min_area, keep_border)
    percentiles = report["statistics"]["sizes"]["equivalent_diameter"]
    figures = [
        histogram_figure(diameters, percentiles, unit),
        cumulative_figure(diameters, percentiles, unit),
    ]
    return report, figures, [rendered(figure) for figure in figures]


def compare_work(sides: dict, min_area: int, keep_border: bool):
    """:func:`compare_sizes` of two Labels layers' data (``sides``: ``{"a"|"b": (name, labels,
    pixel size)}``) with the figure of both cumulative distributions, drawn. Refuses a side
    without a particle to measure."""
    tables, diameters = {}, {}
    for side, (name, labels, pixel) in sides.items():
        try:
            tables[side] = [sized_table(to_instances(labels, "auto"), pixel)]
        except DiffRenderGANError as err:
            raise type(err)(f"Labels layer “{name}”: {err}") from err
        diameters[side], _, counts = measured_diameters(tables[side], pixel, min_area, keep_border)
        if not len(diameters[side]):
            raise InputError(nothing_to_measure(name, counts, min_area))
    (name_a, _, pixel_a), (name_b, _, pixel_b) = sides["a"], sides["b"]
    comparison = compare_sizes(tables["a"], tables["b"], pixel_a, min_area, keep_border, pixel_b)
    comparison = {
        "layer_a": name_a,
        "layer_b": name_b,
        "pixel_size_nm_a": pixel_a,
        "pixel_size_nm_b": pixel_b,
        **comparison,
    }
    figure = comparison_figure(diameters, comparison)
    return comparison, figure, rendered(figure)


def nothing_to_measure(name: str, counts: dict, min_area: int) -> str:
    if counts["detected"] == 0:
        return f"Labels layer “{name}” holds no particles: choose a layer with particles"
    return (
        f"none of the {counted(counts['detected'], 'particle')} of “{name}” is measured "
        f"({counts['touching_border']} touching the border, {counts['below_floor']} under "
        f"{min_area} px): tick Keep border particles or lower Smallest particle"
    )


def summary_text(statistics: dict) -> str:
    """One line: particles measured, those left out, and the D50 with its CI."""
    count, unit = statistics["count"], statistics["unit"]
    if count["detected"] == 0:
        return "No particles found."
    border = "kept" if statistics["border_particles_included"] else "left out"
    d50 = statistics["sizes"]["equivalent_diameter"]["D50"]
    return (
        f"{counted(count['measured'], 'particle')} measured "
        f"({count['touching_border']} on the border "
        f"{border}, {count['below_floor']} under {statistics['min_area_px']} px left out) · "
        f"D50 {interval_text(d50)} {unit}"
    )


def counts_text(statistics: dict) -> str:
    """Counts (measured / border / under the floor) and the number density."""
    count = statistics["count"]
    density = statistics["number_density_per_um2"]
    per_area = (
        f"{density:.3g} particles per µm² (of {statistics['analysed_area_um2']:.3g} µm²)"
        if density is not None
        else "density needs the pixel size"
    )
    return (
        f"{count['detected']} detected: {count['measured']} measured, "
        f"{count['touching_border']} touching the border, {count['below_floor']} under "
        f"{statistics['min_area_px']} px · {per_area}"
    )


def screen_text(screen: dict) -> str:
    """The EU nanomaterial screen's verdict with the share and its 95 % interval."""
    if screen["verdict"] is None:
        reason = "needs the pixel size" if screen["count"] is None else "no particle measured"
        return f"EU nanomaterial screen: {reason}"
    return (
        f"EU nanomaterial screen: {screen['verdict']}; {100 * screen['share']:.0f} % "
        f"(95 % CI {100 * screen['ci_low']:.0f}–{100 * screen['ci_high']:.0f} %) of "
        f"{counted(screen['count']['measured'], 'particle')} with a smallest dimension of 1–100 nm "
        "(hover for caveats)"
    )


def comparison_text(comparison: dict) -> str:
    """The D50 difference B − A with its CI and the KS test's verdict in plain words (short:
    the dock stays low)."""
    unit, difference = comparison["unit"], comparison["D50_difference"]
    value, low, high = difference["value"], difference["ci_low"], difference["ci_high"]
    if low > 0 or high < 0:
        direction, (low, high) = ("larger", (low, high)) if low > 0 else ("smaller", (-high, -low))
        change = f"B's D50 is {abs(value):.3g} {unit} (95 % CI {low:.3g}–{high:.3g}) {direction}:"
    else:
        change = (
            f"B's D50 differs by {value:+.3g} {unit} (95 % CI {low:+.3g} to {high:+.3g}, "
            "includes 0): no clear difference;"
        )
    p = comparison["ks_pvalue"]
    verdict = "the distributions differ" if p < 0.05 else "no evidence they differ"
    return f"{change} {verdict} (KS p = {p:.2g})."


TIPS = {  # tooltips of the form rows
    "config": "small: a 1.9 M-parameter U-Net that trains on a CPU; default: nnU-Net's own (GPU)",
    "iterations": "Training iterations (batches); small: 50 per epoch",
    "split_distance": "Least distance between watershed seeds, px (about half a particle diameter)",
    "min_seed_area": (
        "A confident core needs this many pixels to split a particle off at a dip; smaller "
        "ones are facets and shading inside one particle (about the core of the smallest "
        "particle you expect)"
    ),
    "min_area": "Smaller fragments are dropped, px",
}
