"""Synthetic data dock widget: a trained run in; image, instance and mask stacks out, exported
as an nnU-Net dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QPushButton,
)

from ..config import MAX_CONTOUR
from ..data.dataset import NnunetDataset
from ..data.patches import PatchSet
from ..errors import Cancelled, DiffRenderGANError
from ..gan.run import GanRun, TrainedGenerator
from ..gan.synthesis import MAX_PAIRS, PairRenderer, SyntheticPair, export_pairs, iter_pairs
from ..wording import counted
from ._base import TaskWidget
from ._layers import (
    beside_layers,
    device_box,
    form,
    int_box,
    layer_named,
    path_row,
    pixel_calibration,
    special_spin_box,
    text_label,
)

IMAGES, INSTANCES, MASKS = "synthetic images", "synthetic instances", "synthetic masks"
DATASET_NAME = "Dataset101_Synthetic"
SMALL_IMAGE_PX = 128  # below this, a synthetic image holds too few particles for agglomerates


class SyntheticDataWidget(TaskWidget):
    """Render synthetic image + label pairs from a trained run and export them for nnU-Net."""

    title = "Synthetic data"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.run: GanRun | None = None  # the run the fields were filled from
        self._pixel_size: float | None = None
        self._pairs: list[SyntheticPair] = []
        self._generator: TrainedGenerator | None = None
        self._generated: dict | None = None  # what the layers hold, for Export
        self._suggested = ""

        self.run_path = QLineEdit()
        self.run_path.setPlaceholderText("run folder of a GAN training")
        self.epoch_box = QComboBox()
        self.count = int_box("Images", 20, 1, MAX_PAIRS, TIPS["count"])
        self.seed = int_box("Seed", 0, 0, 2**31 - 1, TIPS["seed"])
        self.contour = int_box("Contour (px)", 1, 0, MAX_CONTOUR, TIPS["contour"])
        self.spp = special_spin_box(
            0, 4096, 0, "the run's", "Samples per pixel when rendering (0: the run's)"
        )
        self.device = device_box()
        self.generate_button = QPushButton("Generate")
        self.status.setText("Choose the run folder of a trained GAN, then Generate.")

        self.dataset_path = QLineEdit()
        self.dataset_path.setPlaceholderText("new nnU-Net dataset folder (DatasetNNN_Name)")
        self.background_path = QLineEdit()
        self.background_path.setPlaceholderText("optional: patch set with background patches")
        self.n_background = int_box("Background patches", 200, 0, 1_000_000, TIPS["n_background"])
        self.export_button = QPushButton("Export")
        tips = {
            self.run_path: "The run folder of a GAN training",
            self.epoch_box: "Whose generator makes the parameters: the best epoch (the "
            "paper's rule) or any finished one",
            self.generate_button: "Render the pairs into image, instance and mask layers",
            self.dataset_path: "A new nnU-Net dataset folder (DatasetNNN_Name)",
            self.background_path: "A patch set whose background (particle-free) patches are "
            "added with empty labels",
            self.export_button: "Write the generated pairs as an nnU-Net dataset (the same "
            "files as `diffrendergan generate`)",
        }
        for control, tip in tips.items():
            control.setToolTip(tip)
        self.while_busy(self.generate_button, self.export_button)
        self.export_status = text_label("Generate pairs first, then Export them.", selectable=True)

        settings = form(
            ("Run folder", path_row(self.run_path, self, "Run folder", self.show_run)),
            ("Epoch", self.epoch_box),
            self.count,
            self.seed,
            self.contour,
            ("Samples/pixel", self.spp),
            self.device,
        )
        export = QGroupBox("Export")
        form(
            ("Dataset folder", path_row(self.dataset_path, self, "nnU-Net dataset folder")),
            ("Background set", path_row(self.background_path, self, "Background patch set")),
            self.n_background,
            self.export_button,
            self.export_status,
            layout=QFormLayout(export),
        )

        layout = self.page_layout()
        layout.addLayout(settings)
        layout.addWidget(self.generate_button)
        layout.addWidget(self.progress_panel())
        layout.addWidget(export)
        layout.addStretch(1)

        self.run_path.editingFinished.connect(self.show_run)
        self.generate_button.clicked.connect(self.generate)
        self.export_button.clicked.connect(self.export)

    # --- the run ------------------------------------------------------------------------------

    def show_run(self) -> bool:
        """Fill epochs, contour and spp from the run in the run folder field; False (and why,
        in the status line) when it holds no usable run."""
        text = self.run_path.text().strip()
        previous, chosen = self.run, self.epoch_box.currentData()
        self.run = None
        self.epoch_box.clear()
        if not text:
            self.status.setText("Choose the run folder of a trained GAN first.")
            return False
        try:
            run = GanRun.open(text)
            best = run.resolve_epoch("best")
            done = run.finished_epochs()
            config = run.config
        except DiffRenderGANError as err:
            self.status.setText(f"Not a usable run: {err}")
            return False
        self.run = run
        self._pixel_size = run.pixel_size_nm
        self.epoch_box.addItem(f"best ({best})", best)
        for epoch in done:
            self.epoch_box.addItem(str(epoch), epoch)
        if previous is not None and previous.folder == run.folder:
            # shown again (e.g. focus left the field): keep the user's choices
            self.epoch_box.setCurrentIndex(max(0, self.epoch_box.findData(chosen)))
        else:
            self.contour.value = config.contour_thickness
        self.spp.setSpecialValueText(f"the run's ({config.scene.spp})")
        if not self.dataset_path.text().strip() or self.dataset_path.text() == self._suggested:
            self._suggested = str(run.folder.resolve().parent / DATASET_NAME)
            self.dataset_path.setText(self._suggested)
        size = f"{self._pixel_size:g} nm per pixel" if self._pixel_size else "pixel size unknown"
        text = (
            f"Run with {counted(len(done), 'finished epoch')}, best epoch {best}; "
            f"{config.scene.width}×{config.scene.height} px images, {size}."
        )
        if min(config.scene.width, config.scene.height) < SMALL_IMAGE_PX:
            text += (
                " Warning: images this small hold only "
                f"{counted(config.meshes.count, 'particle')} each;"
                f" train on patches of {SMALL_IMAGE_PX} px or more for agglomerates."
            )
        self.status.setText(text)
        return True

    # --- generating ---------------------------------------------------------------------------

    def generate(self) -> None:
        """Render pairs 0..Images-1 of the chosen epoch into the three synthetic layers."""
        if self.busy:
            return
        current = self.run_path.text().strip()
        if (self.run is None or self.run.folder != Path(current)) and not self.show_run():
            return
        request = {
            "run": self.run,
            "epoch": self.epoch_box.currentData(),
            "count": self.count.value,
            "seed": self.seed.value,
            "spp": self.spp.value() or None,
            "contour": self.contour.value,
            "device": self.device.value,
        }
        self._pairs, self._generator = [], None
        self.launch(
            self._work,
            request,
            each=self._on_pair,
            done=lambda _: self._finished(request),
            failed=lambda err: self._failed(err, request),
            text=f"Loading epoch {request['epoch']} and the scene…",
        )

    @staticmethod
    def _work(request: dict, monitor):
        """Thread-worker generator: the generator first, then one pair per image."""
        generator = request["run"].generator(request["epoch"])
        yield generator
        renderer = PairRenderer(
            generator, request["seed"], request["spp"], request["contour"], request["device"]
        )
        count = request["count"]
        for done, pair in enumerate(iter_pairs(renderer, range(count), monitor), start=1):
            monitor.report(done, count, f"{pair.name}: {done} of {count} pairs")
            yield pair

    def _on_pair(self, item) -> None:
        if isinstance(item, TrainedGenerator):
            self._generator = item
            self.status.setText(f"Rendering with epoch {item.epoch}…")
            return
        self._pairs.append(item)
        self.status.setText(
            f"{item.name}: {len(self._pairs)} of {self.bar.maximum()} pairs, "
            f"{self._rejected()} rejected by the contrast filter"
        )

    def _rejected(self) -> int:
        return sum(pair.info["rejected"] for pair in self._pairs)

    def _finished(self, request: dict) -> None:
        self._show_layers(request)
        self.status.setText(
            f"{counted(len(self._pairs), 'pair')}, {self._rejected()} rejected by the contrast "
            f"filter (epoch {self._generator.epoch}, seed {request['seed']})."
        )
        self.export_status.setText(
            "Ready to export: choose a patch set with background patches too (real empty "
            "patches teach nnU-Net what the support film looks like), then Export."
        )

    def _failed(self, err: Exception, request: dict) -> None:
        if not isinstance(err, Cancelled):
            self.show_error(err, "Generation failed")
            return
        done = len(self._pairs)
        if not done:
            self.status.setText("Cancelled before the first pair: nothing generated.")
            return
        self._show_layers(request)
        self.status.setText(
            f"Cancelled after {done} of {request['count']}: {counted(done, 'pair')}, "
            f"{self._rejected()} rejected by the contrast filter."
        )
        self.export_status.setText(
            "Ready to export: choose a patch set with background patches too (real empty "
            "patches teach nnU-Net what the support film looks like), then Export."
        )

    # --- layers -------------------------------------------------------------------------------

    def _show_layers(self, request: dict) -> None:
        pairs = self._pairs
        images = np.stack([p.image for p in pairs]).astype(np.float32)
        instances = np.stack([p.instances for p in pairs]).astype(np.uint16)
        masks = np.stack([p.mask for p in pairs]).astype(np.uint8)
        metadata = {
            "pixel_size_nm": self._pixel_size,
            "run": str(request["run"].folder),
            "epoch": self._generator.epoch,
            "seed": request["seed"],
            "names": [p.name for p in pairs],
        }
        self._generated = {**request, "generator": self._generator, "pairs": list(pairs)}
        low, high = (float(v) for v in np.percentile(images, [0.5, 99.5]))
        limits = (low, high) if high > low else (low, low + 1.0)
        shown = layer_named(self.viewer, IMAGES, Image)
        place = (
            {"translate": tuple(shown.translate)}
            if shown is not None
            else beside_layers(self.viewer, stack=True)
        )
        self._put(Image, IMAGES, images, metadata, place, contrast_limits=limits)
        self._put(Labels, INSTANCES, instances, metadata, place, visible=False)
        self._put(Labels, MASKS, masks, metadata, place, opacity=0.4)

    def _put(self, kind, name, data, metadata, place: dict, **kwargs) -> None:
        """Replace the data of layer ``name`` (keeping its display settings), else add it at
        ``place`` (beside the scans); in nm when the run knows its pixel size."""
        calibrated = pixel_calibration(self._pixel_size, stack=True) | place
        layer = layer_named(self.viewer, name, kind)
        if layer is not None:
            layer.data, layer.metadata = data, dict(metadata)
            layer.scale, layer.units = calibrated["scale"], calibrated["units"]
            if kind is Image:
                layer.contrast_limits = kwargs["contrast_limits"]
            return
        add = self.viewer.add_image if kind is Image else self.viewer.add_labels
        extra = {"colormap": "gray"} if kind is Image else {}
        add(data, name=name, metadata=dict(metadata), **calibrated, **extra, **kwargs)

    # --- export -------------------------------------------------------------------------------

    def export(self) -> None:
        """Write the generated pairs (+ background patches) as an nnU-Net dataset: the same
        files as ``diffrendergan generate`` with this run, epoch, seed, spp and contour."""
        if self.busy:
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
                has_background = bool(PatchSet.open(background).with_role("background"))
            except DiffRenderGANError as err:
                self.export_status.setText(f"Cannot use the background set: {err}")
                return
            if not has_background:
                self.export_status.setText(
                    f"“{background}” holds no background patches: mark some patches as "
                    "background in the Patch selection widget, or clear the field."
                )
                return
            if not self.n_background.value:
                background = None
        pairs = generated["pairs"]
        self.export_status.setText(f"Exporting {counted(len(pairs), 'pair')}…")
        self.launch(
            export_pairs,
            NnunetDataset(folder),
            pairs,
            generated["generator"],
            background,
            self.n_background.value,
            done=lambda summary: self._exported(folder, summary),
            failed=lambda err: self.export_status.setText(f"Export failed: {err}"),
            text=f"Exporting {counted(len(pairs), 'pair')}…",
        )

    def _exported(self, folder: Path, summary: dict) -> None:
        background = ""
        if summary["background_requested"]:
            background = (
                f", {summary['background_patches']} of {summary['background_requested']} "
                "background patches"
            )
        self.status.setText(f"Exported {counted(summary['synthetic_pairs'], 'pair')}.")
        notes = "".join(f"\nNote: {note}" for note in summary["notes"])
        self.export_status.setText(
            f"Exported {counted(summary['synthetic_pairs'], 'pair')} ({summary['rejected']} "
            f"rejected by the contrast filter){background} to {folder.resolve()}{notes}"
        )


TIPS = {  # tooltips of the form rows
    "count": "Synthetic image + label pairs to render",
    "seed": "Pair i depends only on (seed, i): the same seed gives the same pairs",
    "contour": "Width of the contour class that separates touching particles, px (0: none)",
    "n_background": "Real background patches (random, seeded) added with empty labels",
}
