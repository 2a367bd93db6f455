"""Segmentation dock widget: train nnU-Net, segment the open image, particle statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Shapes
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..analysis import table_rows
from ..backend import DEVICES
from ..io import write_csv
from ..segmentation import (
    Cancelled,
    Segmentation,
    SegmentationError,
    Segmenter,
    segment_image,
    train_model,
)
from ._layers import layer_named, layer_pixel_size_nm, refill, regions_of


def _folder_row(edit: QLineEdit, parent: QWidget, caption: str) -> QHBoxLayout:
    row = QHBoxLayout()
    browse = QPushButton("Browse…")
    browse.clicked.connect(
        lambda: edit.setText(QFileDialog.getExistingDirectory(parent, caption) or edit.text())
    )
    row.addWidget(edit)
    row.addWidget(browse)
    return row


class SegmentationWidget(QWidget):
    """nnU-Net training and "Segment open image" with particle statistics."""

    title = "Segmentation"
    run_synchronously = False  # tests set this to avoid thread workers
    training_progress = Signal(int, int, str)

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.segmenter: Segmenter | None = None
        self.result: Segmentation | None = None
        self.source: Image | None = None
        self._cancel = False

        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("model folder (from training below or the CLI)")
        self.model_info = QLabel("No model loaded.")
        self.model_info.setWordWrap(True)
        self.dataset_path = QLineEdit()
        self.dataset_path.setPlaceholderText("nnU-Net dataset folder (dataset.json)")
        self.config = QComboBox()
        self.config.addItems(["small", "default"])
        self.iterations = QSpinBox()
        self.iterations.setRange(1, 1_000_000)
        self.iterations.setValue(1000)
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.train_button = QPushButton("Train")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.train_bar = QProgressBar()
        self.train_status = QLabel()
        self.train_status.setWordWrap(True)

        self.image_box = QComboBox()
        self.region_box = QComboBox()
        self.watershed = QCheckBox("Split touching particles (watershed)")
        self.mirroring = QCheckBox("Test-time mirroring (4× slower)")
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setRange(0.0, 1e6)
        self.pixel_size.setDecimals(4)
        self.pixel_size.setSpecialValueText("unknown (pixels)")
        self.pixel_size.setSuffix(" nm")
        self.segment_button = QPushButton("Segment open image")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.figure = Figure(figsize=(4, 2.6), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        self.export_button = QPushButton("Export particle CSV…")
        self.export_button.setEnabled(False)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>{self.title}</b>"))
        model_box = QGroupBox("Model")
        model_form = QFormLayout(model_box)
        model_form.addRow(_folder_row(self.model_path, self, "nnU-Net model folder"))
        model_form.addRow(self.model_info)
        layout.addWidget(model_box)

        train_box = QGroupBox("Train nnU-Net")
        train_form = QFormLayout(train_box)
        train_form.addRow("Dataset", _folder_row(self.dataset_path, self, "nnU-Net dataset"))
        train_form.addRow("Network", self.config)
        train_form.addRow("Iterations", self.iterations)
        train_form.addRow("Device", self.device)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        train_form.addRow(buttons)
        train_form.addRow(self.train_bar)
        train_form.addRow(self.train_status)
        layout.addWidget(train_box)

        segment_box = QGroupBox("Segment")
        segment_form = QFormLayout(segment_box)
        segment_form.addRow("Image", self.image_box)
        segment_form.addRow("Region", self.region_box)
        segment_form.addRow("Pixel size", self.pixel_size)
        segment_form.addRow(self.watershed)
        segment_form.addRow(self.mirroring)
        segment_form.addRow(self.segment_button)
        segment_form.addRow(self.status)
        layout.addWidget(segment_box)
        layout.addWidget(self.canvas)
        layout.addWidget(self.stats)
        layout.addWidget(self.export_button)
        layout.addStretch(1)

        self.model_path.editingFinished.connect(self.load_model)
        self.model_path.textChanged.connect(self._forget_model)
        self.train_button.clicked.connect(self.train)
        self.cancel_button.clicked.connect(self._request_cancel)
        self.segment_button.clicked.connect(self.segment)
        self.export_button.clicked.connect(self._ask_export)
        self.image_box.currentTextChanged.connect(self._image_chosen)
        self.training_progress.connect(self._show_training_progress)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # --- layers -------------------------------------------------------------------------------

    def _refresh_layers(self, event=None) -> None:
        refill(self.image_box, [lay.name for lay in self.viewer.layers if isinstance(lay, Image)])
        refill(
            self.region_box,
            ["whole image"] + [lay.name for lay in self.viewer.layers if isinstance(lay, Shapes)],
        )
        self._image_chosen(self.image_box.currentText())

    def _image_chosen(self, name: str) -> None:
        if name in self.viewer.layers:
            self.pixel_size.setValue(layer_pixel_size_nm(self.viewer.layers[name]) or 0.0)

    # --- model --------------------------------------------------------------------------------

    def _forget_model(self) -> None:
        self.segmenter = None

    def load_model(self) -> bool:
        """Load the model folder typed or browsed; says what is wrong otherwise."""
        path = self.model_path.text().strip()
        if not path:
            self.model_info.setText("No model loaded.")
            return False
        try:
            self.segmenter = Segmenter(
                path,
                device=self.device.currentText(),
                mirroring="all" if self.mirroring.isChecked() else "none",
            )
        except SegmentationError as err:
            self.segmenter = None
            self.model_info.setText(f"Cannot use this model: {err}")
            return False
        meta = self.segmenter.metadata
        self.model_info.setText(
            f"{meta.get('config', '?')} network, {meta.get('iterations', '?')} iterations, "
            f"patch {'×'.join(map(str, self.segmenter.patch))}"
        )
        return True

    # --- training -----------------------------------------------------------------------------

    def _request_cancel(self) -> None:
        self._cancel = True
        self.train_status.setText("Cancelling…")

    def _show_training_progress(self, done: int, total: int, message: str) -> None:
        self.train_bar.setMaximum(max(total, 1))
        self.train_bar.setValue(done)
        self.train_status.setText(message)

    def _train_work(self, dataset: str, out: str):
        return train_model(
            dataset,
            out,
            config=self.config.currentText(),
            iterations=self.iterations.value(),
            device=self.device.currentText(),
            resume=Path(out, "workspace").is_dir(),
            progress=self.training_progress.emit,
            cancelled=lambda: self._cancel,
        )

    def train(self) -> None:
        """Train on the dataset folder into the model folder (resumes an interrupted run)."""
        dataset, out = self.dataset_path.text().strip(), self.model_path.text().strip()
        if not dataset or not out:
            self.train_status.setText("Choose a dataset folder and a (new) model folder first.")
            return
        self._cancel = False
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if self.run_synchronously:
            try:
                self._trained(self._train_work(dataset, out))
            except (SegmentationError, Cancelled) as err:
                self._training_failed(err)
            return
        from napari.qt.threading import create_worker

        worker = create_worker(self._train_work, dataset, out)
        worker.returned.connect(self._trained)
        worker.errored.connect(self._training_failed)
        worker.start()

    def _trained(self, report) -> None:
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        last = report.epochs[-1] if report.epochs else {}
        self.train_status.setText(
            f"Trained: pseudo-Dice {last.get('pseudo_dice', 0):.3f}; model in {report.model}"
        )
        self.load_model()

    def _training_failed(self, err: Exception) -> None:
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        prefix = "Cancelled" if isinstance(err, Cancelled) else "Training failed"
        self.train_status.setText(f"{prefix}: {err}")

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
        region_name = self.region_box.currentText()
        shapes = layer_named(self.viewer, region_name, Shapes)
        regions = regions_of(shapes, self.source)
        region = regions[0] if regions else None
        data = np.asarray(self.source.data)
        if self.source.rgb:
            data = data[..., :3]
        args = (
            self.segmenter,
            data,
            region,
            self.watershed.isChecked(),
            self.pixel_size.value() or None,
        )
        self.segment_button.setEnabled(False)
        self.status.setText(f"Segmenting {name}…")
        if self.run_synchronously:
            try:
                self._show(segment_image(*args))
            except (SegmentationError, ValueError) as err:
                self._failed(err)
            return
        from napari.qt.threading import create_worker

        worker = create_worker(segment_image, *args, _progress={"desc": "segmenting"})
        worker.returned.connect(self._show)
        worker.errored.connect(self._failed)
        worker.start()

    def _failed(self, err: Exception) -> None:
        self.segment_button.setEnabled(True)
        self.status.setText(f"Cannot segment: {err}")

    def _add_labels(self, data, name, **kwargs):
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            for key, value in kwargs.items():
                setattr(layer, key, value)
            return layer
        return self.viewer.add_labels(
            data,
            name=name,
            scale=self.source.scale[-2:],
            translate=self.source.translate[-2:],
            units=self.source.units[-2:],
            **kwargs,
        )

    def _show(self, result: Segmentation) -> None:
        self.result = result
        self.segment_button.setEnabled(True)
        self.export_button.setEnabled(True)
        pixel = self.pixel_size.value() or None
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
        self.figure.clear()
        axes = self.figure.add_subplot(111)
        if len(diameters):
            axes.hist(diameters, bins=min(30, max(5, len(diameters) // 3)), color="tab:blue")
            axes.axvline(np.median(diameters), color="k", ls="--", lw=1)
        axes.set_xlabel(f"equivalent diameter ({unit})")
        axes.set_ylabel("particles")
        self.canvas.draw_idle()
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

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export particle statistics", "", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path) -> str:
        """Particle statistics of the last segmentation as CSV."""
        write_csv(path, table_rows(self.result.table))
        self.status.setText(f"Exported {Path(path).name}.")
        return str(path)
