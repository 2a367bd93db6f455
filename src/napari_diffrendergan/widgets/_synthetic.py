"""Synthetic data dock widget: a trained run in; image, instance and mask stacks out, exported
as an nnU-Net dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..backend import DEVICES, BackendError
from ..config import ConfigError
from ..gan import TrainedGenerator, TrainingError, load_generator, read_metrics
from ..mesh_library import MeshError
from ..patches import PatchError, load_patch_set
from ..placement import PlacementError
from ..segmentation import SegmentationError
from ..synthesis import PairRenderer, SynthesisError, SyntheticPair, finish_dataset, write_pair
from ._layers import layer_named, path_row, spin_box

IMAGES, INSTANCES, MASKS = "synthetic images", "synthetic instances", "synthetic masks"
DATASET_NAME = "Dataset101_Synthetic"
# What generating or exporting can fail with; anything else is a bug and propagates.
ERRORS = (
    SynthesisError,
    TrainingError,
    ConfigError,
    BackendError,
    MeshError,
    PlacementError,
    PatchError,
    SegmentationError,
    OSError,
)


def _pairs_text(count: int) -> str:
    return f"{count} pair{'' if count == 1 else 's'}"


class SyntheticDataWidget(QWidget):
    """Render synthetic image + label pairs from a trained run and export them for nnU-Net."""

    title = "Synthetic data"
    run_synchronously = False  # tests set this to avoid thread workers

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.run_folder: Path | None = None  # the run the fields were filled from
        self._pixel_size: float | None = None
        self._cancel = False
        self._busy = False
        self._pairs: list[SyntheticPair] = []
        self._generator: TrainedGenerator | None = None
        self._generated: dict | None = None  # what the layers hold, for Export
        self._suggested = ""

        self.run_path = QLineEdit()
        self.run_path.setPlaceholderText("run folder of a GAN training")
        self.epoch_box = QComboBox()
        self.count = spin_box(1, 1_000_000, 20)
        self.seed = spin_box(0, 2**31 - 1, 0)
        self.contour = spin_box(0, 100, 1)
        self.contour.setToolTip("Contour class width in pixels (0: no contour class)")
        self.spp = spin_box(0, 4096, 0, "the run's")
        self.spp.setToolTip("Samples per pixel when rendering (0: the run's)")
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.generate_button = QPushButton("Generate")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.bar = QProgressBar()
        self.status = QLabel("Choose the run folder of a trained GAN, then Generate.")
        self.status.setWordWrap(True)

        self.dataset_path = QLineEdit()
        self.dataset_path.setPlaceholderText("new nnU-Net dataset folder (DatasetNNN_Name)")
        self.background_path = QLineEdit()
        self.background_path.setPlaceholderText("optional: patch set with background patches")
        self.n_background = spin_box(0, 1_000_000, 200)
        self.n_background.setToolTip(
            "Real background patches (random, seeded) added with empty labels"
        )
        self.export_button = QPushButton("Export")
        self.export_status = QLabel("Generate pairs first, then Export them.")
        self.export_status.setWordWrap(True)
        self.export_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Run folder", path_row(self.run_path, self, "Run folder", self.show_run))
        form.addRow("Epoch", self.epoch_box)
        form.addRow("Images", self.count)
        form.addRow("Seed", self.seed)
        form.addRow("Contour (px)", self.contour)
        form.addRow("Samples/pixel", self.spp)
        form.addRow("Device", self.device)
        export = QGroupBox("Export")
        export_form = QFormLayout(export)
        export_form.addRow(
            "Dataset folder", path_row(self.dataset_path, self, "nnU-Net dataset folder")
        )
        export_form.addRow(
            "Background set", path_row(self.background_path, self, "Background patch set")
        )
        export_form.addRow("Background patches", self.n_background)
        export_form.addRow(self.export_button)
        export_form.addRow(self.export_status)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>{self.title}</b>"))
        layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(export)
        layout.addStretch(1)

        self.run_path.editingFinished.connect(self.show_run)
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button.clicked.connect(self._request_cancel)
        self.export_button.clicked.connect(self.export)

    # --- the run ------------------------------------------------------------------------------

    def show_run(self) -> bool:
        """Fill epochs, contour and spp from the run in the run folder field; False (and why,
        in the status line) when it holds no usable run."""
        text = self.run_path.text().strip()
        previous, chosen = self.run_folder, self.epoch_box.currentData()
        self.run_folder = None
        self.epoch_box.clear()
        if not text:
            self.status.setText("Choose the run folder of a trained GAN first.")
            return False
        run = Path(text)
        try:
            generator = load_generator(run, "best")
            metrics = read_metrics(run)
            info = json.loads((run / "training.json").read_text())
        except (TrainingError, ConfigError, OSError, json.JSONDecodeError) as err:
            self.status.setText(f"Not a usable run: {err}")
            return False
        self.run_folder = run
        self._pixel_size = info.get("pixel_size_nm")
        self.epoch_box.addItem(f"best ({generator.epoch})", generator.epoch)
        for record in metrics["epochs"]:
            self.epoch_box.addItem(str(record["epoch"]), record["epoch"])
        config = generator.config
        if run == previous:  # shown again (e.g. focus left the field): keep the user's choices
            self.epoch_box.setCurrentIndex(max(0, self.epoch_box.findData(chosen)))
        else:
            self.contour.setValue(config.contour_thickness)
        self.spp.setSpecialValueText(f"the run's ({config.scene.spp})")
        if not self.dataset_path.text().strip() or self.dataset_path.text() == self._suggested:
            self._suggested = str(run.resolve().parent / DATASET_NAME)
            self.dataset_path.setText(self._suggested)
        size = f"{self._pixel_size:g} nm per pixel" if self._pixel_size else "pixel size unknown"
        self.status.setText(
            f"Run with {len(metrics['epochs'])} finished epoch(s), best epoch "
            f"{generator.epoch}; {config.scene.width}×{config.scene.height} px images, {size}."
        )
        return True

    # --- generating ---------------------------------------------------------------------------

    def generate(self) -> None:
        """Render pairs 0..Images-1 of the chosen epoch into the three synthetic layers."""
        if self._busy:
            return
        if self.run_folder != Path(self.run_path.text().strip()) and not self.show_run():
            return
        request = {
            "run": self.run_folder,
            "epoch": self.epoch_box.currentData(),
            "count": self.count.value(),
            "seed": self.seed.value(),
            "spp": self.spp.value() or None,
            "contour": self.contour.value(),
            "device": self.device.currentText(),
        }
        self._cancel = False
        self._pairs, self._generator = [], None
        self._set_busy(True)
        self.bar.setMaximum(request["count"])
        self.bar.setValue(0)
        self.status.setText(f"Loading epoch {request['epoch']} and the scene…")
        self._launch(
            self._work,
            (request,),
            self._on_pair,
            lambda _=None: self._finished(request),
            self._failed,
        )

    def _work(self, request: dict):
        """Thread-worker generator: the generator first, then one pair per image; stops between
        images when cancelled."""
        generator = load_generator(request["run"], request["epoch"])
        yield generator
        renderer = PairRenderer(
            generator, request["seed"], request["spp"], request["contour"], request["device"]
        )
        for index in range(request["count"]):
            if self._cancel:
                return
            yield renderer.render(index)

    def _on_pair(self, item) -> None:
        if isinstance(item, TrainedGenerator):
            self._generator = item
            self.status.setText(f"Rendering with epoch {item.epoch}…")
            return
        self._pairs.append(item)
        self.bar.setValue(len(self._pairs))
        self.status.setText(
            f"{item.name}: {len(self._pairs)} of {self.bar.maximum()} pairs, "
            f"{self._rejected()} rejected by the contrast filter"
        )

    def _rejected(self) -> int:
        return sum(pair.info["rejected"] for pair in self._pairs)

    def _finished(self, request: dict) -> None:
        self._set_busy(False)
        done, count = len(self._pairs), request["count"]
        if not done:
            self.bar.setValue(0)
            self.status.setText("Cancelled before the first pair: nothing generated.")
            return
        self._show_layers(request)
        how = f"Cancelled after {done} of {count}: " if done < count else ""
        self.status.setText(
            f"{how}{_pairs_text(done)}, {self._rejected()} rejected by the contrast filter "
            f"(epoch {self._generator.epoch}, seed {request['seed']})."
        )
        self.export_status.setText("Ready to export the generated pairs.")

    def _failed(self, err: Exception) -> None:
        self._set_busy(False)
        self.bar.setValue(0)
        self.status.setText(f"Generation failed: {err}")

    def _request_cancel(self) -> None:
        self._cancel = True
        self.status.setText("Cancelling after this image…")

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.generate_button.setEnabled(not busy)
        self.export_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _launch(self, work, args: tuple, yielded, returned, failed) -> None:
        """Run the generator function ``work(*args)`` here (tests) or in a thread worker."""
        if self.run_synchronously:
            try:
                for item in work(*args):
                    yielded(item)
            except ERRORS as err:
                failed(err)
                return
            returned()
            return
        from napari.qt.threading import create_worker

        # connecting "errored" here (not afterwards) keeps superqt from re-raising the error
        # in the Qt event loop: the status line reports it
        self.worker = create_worker(
            work, *args, _connect={"yielded": yielded, "returned": returned, "errored": failed}
        )

    # --- layers -------------------------------------------------------------------------------

    def _show_layers(self, request: dict) -> None:
        pairs = self._pairs
        images = np.stack([p.image for p in pairs]).astype(np.float32)
        instances = np.stack([p.instances for p in pairs]).astype(np.uint16)
        masks = np.stack([p.mask for p in pairs]).astype(np.uint8)
        metadata = {
            "pixel_size_nm": self._pixel_size,
            "run": str(request["run"]),
            "epoch": self._generator.epoch,
            "seed": request["seed"],
            "names": [p.name for p in pairs],
        }
        self._generated = {**request, "generator": self._generator, "pairs": list(pairs)}
        # like the sample data: scale in nm per pixel when the run knows its pixel size
        size = self._pixel_size
        scale = (1.0, size, size) if size else (1.0, 1.0, 1.0)
        units = ("pixel", "nm", "nm") if size else ("pixel",) * 3
        low, high = (float(v) for v in np.percentile(images, [0.5, 99.5]))
        limits = (low, high) if high > low else (low, low + 1.0)
        self._put(Image, IMAGES, images, metadata, scale, units, contrast_limits=limits)
        self._put(Labels, INSTANCES, instances, metadata, scale, units, visible=False)
        self._put(Labels, MASKS, masks, metadata, scale, units, opacity=0.4)

    def _put(self, kind, name, data, metadata, scale, units, **kwargs) -> None:
        """Replace the data of layer ``name`` (keeping its display settings), else add it."""
        layer = layer_named(self.viewer, name, kind)
        if layer is not None:
            layer.data, layer.metadata = data, dict(metadata)
            layer.scale, layer.units = scale, units
            if kind is Image:
                layer.contrast_limits = kwargs["contrast_limits"]
            return
        add = self.viewer.add_image if kind is Image else self.viewer.add_labels
        extra = {"colormap": "gray"} if kind is Image else {}
        add(data, name=name, metadata=dict(metadata), scale=scale, units=units, **extra, **kwargs)

    # --- export -------------------------------------------------------------------------------

    def export(self) -> None:
        """Write the generated pairs (+ background patches) as an nnU-Net dataset: the same
        files as ``diffrendergan generate`` with this run, epoch, seed, spp and contour."""
        if self._busy:
            return
        generated = self._generated
        if generated is None:
            self.export_status.setText("Nothing to export yet: Generate pairs first.")
            return
        text = self.dataset_path.text().strip()
        if not text:
            self.export_status.setText("Type a new dataset folder first.")
            return
        folder = Path(text)
        if folder.exists() and any(folder.iterdir()):
            self.export_status.setText(
                f"“{folder}” is not empty: choose a new dataset folder (e.g. "
                f"{DATASET_NAME.replace('101', '102')})."
            )
            return
        background = self.background_path.text().strip() or None
        if background is not None:
            try:
                listed, _ = load_patch_set(background)
            except PatchError as err:
                self.export_status.setText(f"Cannot use the background set: {err}")
                return
            if not any(p.role == "background" for p in listed):
                self.export_status.setText(
                    f"“{background}” holds no background patches: mark some patches as "
                    "background in the Patch selection widget, or clear the field."
                )
                return
            if not self.n_background.value():
                background = None
        pairs = generated["pairs"]
        self._set_busy(True)
        self.bar.setMaximum(len(pairs) + 1)
        self.bar.setValue(0)
        self.export_status.setText(f"Exporting {_pairs_text(len(pairs))}…")

        def work(folder: Path, background: str | None, n_background: int):
            for pair in pairs:
                write_pair(folder, pair)
                yield pair.name
            yield finish_dataset(
                folder,
                generated["generator"],
                len(pairs),
                generated["seed"],
                generated["contour"],
                background,
                n_background,
            )

        def step(item) -> None:
            self.bar.setValue(self.bar.value() + 1)
            if isinstance(item, dict):
                self._summary = item
            else:
                self.export_status.setText(f"Exporting: {item}…")

        self._summary = None
        self._launch(
            work,
            (folder, background, self.n_background.value()),
            step,
            lambda _=None: self._exported(folder),
            self._export_failed,
        )

    def _export_failed(self, err: Exception) -> None:
        self._set_busy(False)
        self.bar.setValue(0)
        self.export_status.setText(f"Export failed: {err}")

    def _exported(self, folder: Path) -> None:
        self._set_busy(False)
        summary = self._summary
        background = ""
        if summary["background_requested"]:
            background = (
                f", {summary['background_patches']} of {summary['background_requested']} "
                "background patches"
            )
        self.export_status.setText(
            f"Exported {_pairs_text(summary['synthetic_pairs'])} ({summary['rejected']} "
            f"rejected by the contrast filter){background} to {folder.resolve()}"
        )
