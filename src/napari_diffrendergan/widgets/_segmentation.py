"""Segmentation dock widget: train nnU-Net, segment the open image, particle statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from napari.layers import Image, Labels, Shapes
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..analysis.particles import (
    CORE_THRESHOLD,
    MIN_AREA,
    MIN_SEED_AREA,
    SPLIT_DISTANCE,
    WATERSHED,
    table_rows,
)
from ..backend import DEVICES
from ..errors import DiffRenderGANError
from ..io import write_csv
from ..segment.model import ModelFolder
from ..segment.predict import Segmentation, Segmenter, segment_image
from ..segment.training import train_model
from ._base import TaskWidget
from ._layers import (
    DataBarBox,
    FigureView,
    PixelSizeBox,
    calibration,
    layer_named,
    path_row,
    refill,
    regions_of,
    rendered,
)


class SegmentationWidget(TaskWidget):
    """nnU-Net training and "Segment open image" with particle statistics."""

    title = "Segmentation"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.segmenter: Segmenter | None = None
        self.result: Segmentation | None = None
        self.source: Image | None = None

        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("model folder (from training below or the CLI)")
        self.model_path.setToolTip(
            "A model folder made by Train below or `diffrendergan segment-train`"
        )
        self.model_info = QLabel("No model loaded.")
        self.model_info.setWordWrap(True)
        self.dataset_path = QLineEdit()
        self.dataset_path.setPlaceholderText("nnU-Net dataset folder (dataset.json)")
        self.dataset_path.setToolTip(
            "An nnU-Net dataset, e.g. exported by the Synthetic data widget"
        )
        self.config = QComboBox()
        self.config.addItems(["small", "default"])
        self.config.setToolTip(
            "small: a 1.9 M-parameter U-Net that trains on a CPU; default: nnU-Net's own (GPU)"
        )
        self.iterations = QSpinBox()
        self.iterations.setRange(1, 1_000_000)
        self.iterations.setValue(1000)
        self.iterations.setToolTip("Training iterations (batches); small: 50 per epoch")
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.device.setToolTip("auto: the GPU when one is present, else the CPU")
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip(
            "Train into the model folder above (continues an interrupted training there)"
        )

        self.image_box = QComboBox()
        self.image_box.setToolTip("The image layer to segment")
        self.region_box = QComboBox()
        self.region_box.setToolTip("Segment only inside the first rectangle of this Shapes layer")
        self.watershed = QCheckBox("Split touching particles (watershed)")
        self.watershed.setChecked(WATERSHED)
        self.watershed.setToolTip(
            "Also split particles the contour class left joined at narrow necks "
            "(distance-transform watershed); off in the TiO2 experiment's rule"
        )
        self.split_distance = QSpinBox()
        self.split_distance.setRange(1, 1000)
        self.split_distance.setValue(SPLIT_DISTANCE)
        self.split_distance.setEnabled(WATERSHED)
        self.split_distance.setSuffix(" px")
        self.split_distance.setToolTip(
            "Least distance between watershed seeds, px (about half a particle diameter)"
        )
        self.core_threshold = QDoubleSpinBox()
        self.core_threshold.setRange(0.0, 0.99)
        self.core_threshold.setSingleStep(0.05)
        self.core_threshold.setDecimals(2)
        self.core_threshold.setSpecialValueText("off")
        self.core_threshold.setValue(CORE_THRESHOLD or 0.0)
        self.core_threshold.setToolTip(
            "Split a particle where the network's particle probability (0–1) dips below this "
            "between two confident cores: touching particles whose border it only half drew "
            f"(off: the contour class alone); {CORE_THRESHOLD} is the TiO2 experiment's rule"
        )
        self.min_seed_area = QSpinBox()
        self.min_seed_area.setRange(1, 1_000_000)
        self.min_seed_area.setValue(MIN_SEED_AREA)
        self.min_seed_area.setSuffix(" px")
        self.min_seed_area.setEnabled(CORE_THRESHOLD is not None)
        self.min_seed_area.setToolTip(
            "A confident core needs this many pixels to split a particle off at a dip; smaller "
            "ones are facets and shading inside one particle (about the core of the smallest "
            "particle you expect)"
        )
        self.min_area = QSpinBox()
        self.min_area.setRange(1, 1_000_000)
        self.min_area.setValue(MIN_AREA)
        self.min_area.setSuffix(" px")
        self.min_area.setToolTip("Smaller fragments are dropped, px")
        self.mirroring = QCheckBox("Test-time mirroring (4× slower)")
        self.mirroring.setToolTip(
            "Average the prediction over 4 flipped copies of the image: fewer particles cut "
            "into pieces, better particle-by-particle matches and size distributions (TiO2 "
            "training scans: detection score AP50 0.596 → 0.614)"
        )
        self.pixel_size = PixelSizeBox("for statistics in nm")
        self.data_bar = DataBarBox()
        self.segment_button = QPushButton("Segment open image")
        self.segment_button.setToolTip("Segment the chosen image with the model above")
        self.plot = FigureView(Figure(figsize=(4, 2.6), dpi=100))
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        self.export_button = QPushButton("Export particle CSV…")
        self.export_button.setToolTip("Per-particle statistics of the last segmentation as CSV")
        self.export_button.setEnabled(False)
        self.while_busy(self.train_button, self.segment_button, self.export_button)
        self.status.setText("Load a model (or train one), then segment an open image.")

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>{self.title}</b>"))
        model_box = QGroupBox("Model")
        model_form = QFormLayout(model_box)
        model_form.addRow(path_row(self.model_path, self, "nnU-Net model folder", self.load_model))
        model_form.addRow(self.model_info)
        layout.addWidget(model_box)

        train_box = QGroupBox("Train nnU-Net")
        train_form = QFormLayout(train_box)
        train_form.addRow("Dataset", path_row(self.dataset_path, self, "nnU-Net dataset"))
        train_form.addRow("Network", self.config)
        train_form.addRow("Iterations", self.iterations)
        train_form.addRow("Device", self.device)
        train_form.addRow(self.train_button)
        layout.addWidget(train_box)

        segment_box = QGroupBox("Segment")
        segment_form = QFormLayout(segment_box)
        segment_form.addRow("Image", self.image_box)
        segment_form.addRow("Region", self.region_box)
        segment_form.addRow("Pixel size", self.pixel_size)
        segment_form.addRow("", self.pixel_size.origin)
        segment_form.addRow(self.data_bar)
        segment_form.addRow(self.watershed)
        segment_form.addRow("Seed distance", self.split_distance)
        segment_form.addRow("Split at dips below", self.core_threshold)
        segment_form.addRow("Smallest core", self.min_seed_area)
        segment_form.addRow("Smallest particle", self.min_area)
        segment_form.addRow(self.mirroring)
        segment_form.addRow(self.segment_button)
        layout.addWidget(segment_box)
        layout.addWidget(self.progress_panel())
        layout.addWidget(self.plot)
        layout.addWidget(self.stats)
        layout.addWidget(self.export_button)
        layout.addStretch(1)

        self.model_path.editingFinished.connect(self.load_model)
        self.model_path.textChanged.connect(self._forget_model)
        self.mirroring.toggled.connect(self._forget_model)
        self.device.currentTextChanged.connect(self._forget_model)
        self.watershed.toggled.connect(self.split_distance.setEnabled)
        self.core_threshold.valueChanged.connect(
            lambda value: self.min_seed_area.setEnabled(value > 0)
        )
        self.train_button.clicked.connect(self.train)
        self.segment_button.clicked.connect(self.segment)
        self.export_button.clicked.connect(self._ask_export)
        self.image_box.currentTextChanged.connect(self._image_chosen)
        self.follow_layers()

    # --- layers -------------------------------------------------------------------------------

    def _refresh_layers(self, event=None) -> None:
        refill(self.image_box, [lay.name for lay in self.viewer.layers if isinstance(lay, Image)])
        refill(
            self.region_box,
            ["whole image"] + [lay.name for lay in self.viewer.layers if isinstance(lay, Shapes)],
        )
        self._image_chosen(self.image_box.currentText())

    def _image_chosen(self, name: str) -> None:
        image = layer_named(self.viewer, name, Image)
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
            "device": self.device.currentText(),
            "mirroring": "all" if self.mirroring.isChecked() else "none",
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
            self.config.currentText(),
            self.iterations.value(),
            self.device.currentText(),
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
        name = self.image_box.currentText()
        if name not in self.viewer.layers:
            self.status.setText("Open an image first.")
            return
        if self.segmenter is None and not self.load_model():
            self.status.setText("Load a model first (see Model above).")
            return
        self.source = self.viewer.layers[name]
        shapes = layer_named(self.viewer, self.region_box.currentText(), Shapes)
        data = np.asarray(self.source.data)
        regions = self.data_bar.regions(regions_of(shapes, self.source), data.shape)
        if self.source.rgb:
            data = data[..., :3]
        options = {
            "region": regions[0] if regions else None,
            "watershed": self.watershed.isChecked(),
            "pixel_size_nm": self.pixel_size.nm(),
            "split_distance": self.split_distance.value(),
            "min_area": self.min_area.value(),
            "core_threshold": self.core_threshold.value() or None,
            "min_seed_area": self.min_seed_area.value(),
        }
        self.launch(
            self._segment_work,
            self.segmenter,
            self.model_path.text().strip(),
            self._load_settings(),
            data,
            options,
            done=self._show,
            failed=lambda err: self.show_error(err, "Cannot segment"),
            text=f"Segmenting {name}…",
        )

    @staticmethod
    def _segment_work(segmenter, model: str, settings: dict, data, options: dict, monitor):
        """Load the model if needed (in the worker: it takes seconds), then segment."""
        if segmenter is None:
            monitor.report(0, 1, "loading the model")
            segmenter = Segmenter(model, **settings)
        monitor.check()
        result = segment_image(segmenter, data, monitor=monitor, **options)
        figure = size_figure(result, options["pixel_size_nm"])
        return segmenter, result, figure, rendered(figure)

    @property
    def figure(self) -> Figure:
        """The size histogram on show."""
        return self.plot.figure

    def _show(self, outcome) -> None:
        self.segmenter, result, figure, pixels = outcome
        self.result = result
        self.export_button.setEnabled(True)
        pixel = self.pixel_size.nm()
        metadata = {
            "pixel_size_nm": pixel,
            "source_layer": self.source.name,
            "model": str(self.segmenter.model),
            "notes": result.notes,
        }
        self._add_labels(
            result.mask, f"{self.source.name} mask", metadata=metadata, opacity=0.5, visible=False
        )
        self._add_labels(
            result.instances,
            f"{self.source.name} particles",
            metadata=metadata,
            features={k: np.asarray(v) for k, v in result.table.items()}
            if len(result.table["label"])
            else None,
        )
        diameters = next(v for k, v in result.table.items() if k.startswith("equivalent_diameter"))
        unit = "nm" if pixel else "px"
        self.plot.show_figure(figure, pixels)
        notes = f" ({'; '.join(result.notes)})" if result.notes else ""
        self.status.setText(f"Added “{self.source.name} particles” and “… mask”{notes}.")
        if len(diameters):
            self.stats.setText(
                f"{len(diameters)} particles · median equivalent diameter "
                f"{np.median(diameters):.3g} {unit} · mean {np.mean(diameters):.3g} · "
                f"p10–p90 {np.percentile(diameters, 10):.3g}–{np.percentile(diameters, 90):.3g}"
            )
        else:
            self.stats.setText("No particles found.")

    def _add_labels(self, data, name, **kwargs):
        layer = layer_named(self.viewer, name, Labels)
        if layer is not None:
            layer.data = data
            for key, value in {**kwargs, **calibration(self.source)}.items():
                setattr(layer, key, value)
            return layer
        return self.viewer.add_labels(data, name=name, **calibration(self.source), **kwargs)

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export particle statistics", "", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path) -> str:
        """Particle statistics of the last segmentation as CSV."""
        try:
            write_csv(path, table_rows(self.result.table))
        except DiffRenderGANError as err:
            self.status.setText(f"Cannot export: {err}")
            return ""
        self.status.setText(f"Exported {Path(path).name}.")
        return str(path)


def size_figure(result: Segmentation, pixel_size_nm: float | None) -> Figure:
    """Histogram of the particles' equivalent diameters (nm when the pixel size is known)."""
    diameters = next(v for k, v in result.table.items() if k.startswith("equivalent_diameter"))
    figure = Figure(figsize=(4, 2.6), dpi=100, tight_layout=True)
    axes = figure.add_subplot(111)
    if len(diameters):
        axes.hist(diameters, bins=min(30, max(5, len(diameters) // 3)), color="tab:blue")
        axes.axvline(np.median(diameters), color="k", ls="--", lw=1)
    axes.set_xlabel(f"equivalent diameter ({'nm' if pixel_size_nm else 'px'})")
    axes.set_ylabel("particles")
    return figure
