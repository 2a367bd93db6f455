"""GAN training dock widget: a patch set in; a run folder, live preview and plots out."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox
from matplotlib.figure import Figure
from napari.layers import Image
from qtpy.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..backend import BackendError, resolve_backend
from ..config import PRESETS, MaterialConfig, preset
from ..errors import Cancelled, DiffRenderGANError
from ..gan.networks import ParameterSpace, describe
from ..gan.plots import plot_fid, plot_histograms
from ..gan.run import MAX_EPOCHS, MAX_ITERATIONS, GanRun, TrainingSettings
from ..gan.training import PATIENCE, SetupCache, TrainingEvent, train_iter
from ..wording import counted
from ._base import TaskWidget
from ._layers import (
    FigureView,
    beside_layers,
    device_box,
    form,
    int_box,
    layer_named,
    layer_picker,
    path_row,
    pixel_calibration,
    rendered,
    special_spin_box,
    text_label,
)

PREVIEW = "GAN preview"
NO_LAYER = "none (use the folder)"
HISTOGRAM_COLUMNS = 3
PRESET_TIP = (
    "The material case: meshes, sizes, placement, scene, learned parameters and their limits"
)


class GanTrainingWidget(TaskWidget):
    """Start, watch, cancel and resume a DiffRenderGAN training; pick its best epoch."""

    title = "GAN training"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.run: GanRun | None = None
        self.custom_presets: dict[str, MaterialConfig] = {}  # e.g. from the Scene prior dock
        self.setup_cache = SetupCache()  # a Resume of the same run skips the set-up
        self._space: ParameterSpace | None = None
        self._pixel_size: float | None = None
        defaults = TrainingSettings()

        self.patch_layer_box = layer_picker(
            self.viewer,
            Image,
            "Patch layer",
            "A patch stack saved by the Patch selection widget",
            none_choice=NO_LAYER,
            keep=lambda layer: "roles" in layer.metadata or "patch_set" in layer.metadata,
        )
        self.patches_path = QLineEdit()
        self.patches_path.setPlaceholderText("patch set folder (patches.json)")
        self.preset_box = ComboBox(choices=list(PRESETS), label="Preset", tooltip=PRESET_TIP)
        self.mesh_count = int_box("Meshes", 1, 1, 10_000, TIPS["mesh_count"])
        self.spp = int_box("Samples/pixel", 16, 1, 4096, TIPS["spp"])
        self.epochs = int_box("Epochs", defaults.epochs, 1, MAX_EPOCHS, TIPS["epochs"])
        self.iterations = special_spin_box(
            0, MAX_ITERATIONS, 0, "auto (one per particle patch)", TIPS["iterations"]
        )
        self.seed = int_box("Seed", defaults.seed, 0, 2**31 - 1, TIPS["seed"])
        self.device = device_box()
        self.backend_label = text_label(selectable=True)
        self.fid_images = special_spin_box(
            0, 100_000, defaults.fid_images, "as many as real patches", TIPS["fid_images"]
        )
        self.patience = special_spin_box(0, MAX_EPOCHS, PATIENCE, "never", TIPS["patience"])
        self.run_path = QLineEdit()
        self.run_path.setPlaceholderText("run folder (new for Start, existing for Resume)")

        self.start_button = QPushButton("Start")
        self.resume_button = QPushButton("Resume")
        tips = {
            self.patches_path: "A patch set folder (patches.json): its particle patches are "
            "the real images the GAN learns to imitate",
            self.run_path: "Where the run is written (config, Φ, checkpoints, FID, figures)",
            self.start_button: "Create the run folder from the fields and train it",
            self.resume_button: "Continue the run in the folder up to Epochs",
        }
        for control, tip in tips.items():
            control.setToolTip(tip)
        self.while_busy(self.start_button, self.resume_button)
        self.status.setText("Choose a patch set, a preset and a new run folder, then Start.")
        self.run_label = text_label("No run yet.", selectable=True)

        self.plot = FigureView(results_figure({"epochs": []}, None, None))
        self.best_epoch = special_spin_box(0, 0, 0, "automatic", TIPS["best_epoch"])
        self.best_button = QPushButton("Use this epoch")
        self.best_button.setToolTip("Make the epoch above the run's best epoch")
        self.best_button.setEnabled(False)
        self.best_label = QLabel()

        setup = QWidget()
        form(
            self.patch_layer_box,
            ("Patch set", path_row(self.patches_path, self, "Patch set folder")),
            self.preset_box,
            self.mesh_count,
            self.spp,
            self.epochs,
            ("Patience", self.patience),
            ("Iterations/epoch", self.iterations),
            self.seed,
            self.device,
            ("Backend", self.backend_label),
            layout=QFormLayout(setup),
        )
        advanced = QWidget()
        note = QLabel(
            "Every constellation is traced once; with the presets' BSDFs (polynomial in the "
            "learned values) each render is then exact and nearly free. The FID after every "
            "epoch uses one image per constellation."
        )
        note.setWordWrap(True)
        form(note, ("FID images", self.fid_images), layout=QFormLayout(advanced))
        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.addWidget(self.plot)
        best = QHBoxLayout()
        best.addWidget(QLabel("Best epoch"))
        best.addWidget(self.best_epoch)
        best.addWidget(self.best_button)
        results_layout.addLayout(best)
        results_layout.addWidget(self.best_label)
        self.tabs = QTabWidget()
        self.tabs.addTab(setup, "Setup")
        self.tabs.addTab(advanced, "Advanced")
        self.tabs.addTab(results, "Results")

        layout = self.page_layout()
        layout.addWidget(self.tabs)
        layout.addLayout(form(("Run folder", path_row(self.run_path, self, "Run folder"))))
        buttons = QHBoxLayout()
        for button in (self.start_button, self.resume_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_panel())
        layout.addWidget(self.run_label)
        layout.addStretch(1)

        self.start_button.clicked.connect(self.start)
        self.resume_button.clicked.connect(self.resume)
        self.best_button.clicked.connect(self.use_best_epoch)
        self.run_path.editingFinished.connect(self.show_run)
        self.preset_box.changed.connect(self._preset_chosen)
        self.patch_layer_box.changed.connect(self._patch_layer_chosen)
        self.device.changed.connect(self._show_backend)
        self._preset_chosen(self.preset_box.value)
        self._show_backend(self.device.value)
        self.follow_layers(self.patch_layer_box)

    # --- inputs -------------------------------------------------------------------------------

    def _patch_layer_chosen(self, layer) -> None:
        if layer is not None and layer.metadata.get("patch_set"):
            self.patches_path.setText(str(layer.metadata["patch_set"]))

    def _patch_folder(self) -> str | None:
        """The patch set to train on: the chosen layer's saved folder, else the folder field."""
        layer = self.patch_layer_box.value
        if layer is not None:
            folder = layer.metadata.get("patch_set")
            if not folder:
                self.status.setText(
                    f"“{layer.name}” is not saved yet: save it with the Patch selection widget "
                    "first, or choose a patch set folder."
                )
                return None
            self.patches_path.setText(str(folder))
        folder = self.patches_path.text().strip()
        if not folder:
            self.status.setText("Choose a patch set folder (or a saved patch layer) first.")
            return None
        return folder

    def add_preset(self, config: MaterialConfig | str | Path, label: str = "") -> str:
        """Offer ``config`` (or the preset JSON file it names) in the preset box under
        ``label`` (default: its name) and choose it; returns the label."""
        config = config if isinstance(config, MaterialConfig) else MaterialConfig.load(config)
        label = label or config.name
        self.custom_presets[label] = config
        self.preset_box.choices = [*PRESETS, *self.custom_presets]
        self.preset_box.value = label
        self._preset_chosen(label)
        return label

    def _preset(self, name: str) -> MaterialConfig:
        if name in self.custom_presets:
            return copy.deepcopy(self.custom_presets[name])
        return preset(name)

    def _preset_chosen(self, name: str) -> None:
        config = self._preset(name)
        self.mesh_count.value = config.meshes.count
        self.mesh_count.enabled = config.physical is None  # else derived from the density
        self.spp.value = config.scene.spp
        learned = "\n".join(describe(n) for n in ParameterSpace.from_config(config).names)
        self.preset_box.tooltip = f"{PRESET_TIP}\n\nThe generator learns:\n{learned}"

    def _show_backend(self, device: str) -> None:
        try:
            self.backend_label.setText(resolve_backend(device).describe())
        except BackendError as err:
            self.backend_label.setText(f"Unavailable: {err}")

    def _config(self) -> MaterialConfig:
        config = self._preset(self.preset_box.value)
        config.meshes.count = self.mesh_count.value
        config.scene.spp = self.spp.value
        return config.validate()

    def _settings(self) -> TrainingSettings:
        return TrainingSettings(
            epochs=self.epochs.value,
            iterations_per_epoch=self.iterations.value(),
            seed=self.seed.value,
            fid_images=self.fid_images.value(),
            device=self.device.value,
        )

    # --- training -----------------------------------------------------------------------------

    def start(self) -> None:
        """Create the run folder from the fields and train it."""
        folder, run = self._patch_folder(), self.run_path.text().strip()
        if folder is None:
            return
        if not run:
            self.status.setText("Type a new run folder first.")
            return
        try:
            config, settings = self._config(), self._settings()
        except DiffRenderGANError as err:
            self.status.setText(f"Cannot start: {err}")
            return
        self._launch(run, (folder, config, settings), None)

    def resume(self) -> None:
        """Continue the run in the run folder up to the Epochs field (after its last epoch)."""
        run = self.run_path.text().strip()
        if not run or not GanRun(run).exists:
            self.status.setText(f"Cannot resume: “{run}” holds no run (no training.json).")
            return
        done = GanRun(run).finished_epochs()
        if done and done[-1] >= self.epochs.value:
            self.status.setText(
                f"Nothing to resume: the run has {counted(done[-1], 'epoch')}; raise Epochs above "
                f"{done[-1]} to train more."
            )
            return
        self._launch(run, None, self.epochs.value)

    @property
    def figure(self) -> Figure:
        """The results figure on show (FID per epoch, histograms of the latest epoch)."""
        return self.plot.figure

    @staticmethod
    def _work(
        run: str, new: tuple | None, epochs: int | None, cache: SetupCache, patience, monitor
    ):
        """Thread-worker generator: create a new run if asked, then yield training events,
        each epoch's with its results figure, drawn here rather than in the GUI thread."""
        if new is not None:
            GanRun.create(run, *new)
        for event in train_iter(run, epochs, monitor, cache, patience):
            figure = pixels = metrics = None
            if event.kind == "epoch":
                gan_run = GanRun(run)
                metrics = gan_run.metrics()
                figure = results_figure(metrics, event.samples, gan_run.space)
                pixels = rendered(figure)
            yield event, metrics, figure, pixels

    def _launch(self, run: str, new: tuple | None, epochs: int | None) -> None:
        self.run = GanRun(run)
        self._space = None
        self.tabs.setCurrentIndex(2)  # Results: FID and histograms fill in after each epoch
        self.launch(
            self._work,
            run,
            new,
            epochs,
            self.setup_cache,
            self.patience.value(),
            each=self._on_event,
            done=self._finished,
            failed=self._failed,
            text="Preparing the run…" if new else "Resuming…",
        )

    def _load_run_info(self) -> None:
        """Parameter names/limits and pixel size of the run (once per run)."""
        self._space = self.run.space
        self._pixel_size = self.run.pixel_size_nm
        self.run_label.setText(f"Run folder: {self.run.folder.resolve()}")
        self.plot.setToolTip(results_tooltip(self._space))

    def _on_event(self, item: tuple[TrainingEvent, dict | None, Figure | None, np.ndarray]) -> None:
        event, metrics, figure, pixels = item
        if self._space is None and self.run.exists:
            self._load_run_info()
        if event.kind == "epoch":
            self._show_preview(event)
            self.plot.show_figure(figure, pixels)
            self._show_best_epoch(metrics)
        elif event.kind == "note":
            self.run_label.setText(f"{self.run_label.text()}\nNote: {event.message}")

    def _finished(self, result=None) -> None:
        metrics = self.run.metrics()
        self.status.setText(
            f"Finished ({self.run.stopped}): "
            f"{counted(len(self.run.finished_epochs()), 'epoch')}, best epoch "
            f"{metrics['best_epoch']}; Resume with more epochs to continue."
        )

    def _failed(self, err: Exception) -> None:
        if isinstance(err, Cancelled):
            done = len(self.run.finished_epochs()) if self.run.exists else 0
            self.status.setText(
                f"Cancelled: {counted(done, 'finished epoch')} kept; Resume continues from there."
            )
        else:
            self.show_error(err, "Training failed")

    # --- results ------------------------------------------------------------------------------

    def _show_preview(self, event: TrainingEvent) -> None:
        image = np.clip(np.asarray(event.preview, np.float32), 0, 1)
        low, high = (float(v) for v in np.percentile(image, [0.5, 99.5]))
        limits = (low, high) if high > low else (0.0, 1.0)
        metadata = {
            "pixel_size_nm": self._pixel_size,
            "run": str(self.run.folder),
            "epoch": event.epoch,
        }
        layer = layer_named(self.viewer, PREVIEW, Image)
        if layer is not None:
            layer.data, layer.metadata, layer.contrast_limits = image, metadata, limits
            return
        self.viewer.add_image(
            image,
            name=PREVIEW,
            colormap="gray",
            contrast_limits=limits,
            metadata=metadata,
            **pixel_calibration(self._pixel_size),
            **beside_layers(self.viewer),
        )

    def _draw(self, metrics: dict, samples: np.ndarray | None) -> None:
        """Plots and best epoch of a run read in the GUI thread (opening or editing a run)."""
        self.plot.show_figure(results_figure(metrics, samples, self._space))
        self._show_best_epoch(metrics)

    def _show_best_epoch(self, metrics: dict) -> None:
        epochs = [e["epoch"] for e in metrics["epochs"] if e["epoch"] > 0]
        self.best_epoch.setRange(0, max(epochs, default=0))
        if metrics.get("best_epoch"):
            self.best_epoch.setValue(metrics["best_epoch"])
        self.best_button.setEnabled(bool(epochs))
        if epochs:
            how = "chosen" if metrics.get("best_epoch_override") else "automatic"
            self.best_label.setText(f"Best epoch: {metrics['best_epoch']} ({how}).")
        else:
            self.best_label.setText("")

    def show_run(self) -> None:
        """Plots and best epoch of the run typed in the run folder field (if it is one)."""
        text = self.run_path.text().strip()
        if not text or not GanRun(text).exists or self.busy:
            return
        self.run = GanRun(text)
        try:
            self._load_run_info()
            metrics, samples = self.run.metrics(), self.run.samples()
        except DiffRenderGANError as err:
            self.status.setText(f"Cannot read the run: {err}")
            return
        self._draw(metrics, samples)
        self.tabs.setCurrentIndex(2)
        self.status.setText(
            f"Run with {counted(len(self.run.finished_epochs()), 'finished epoch')}."
        )

    def use_best_epoch(self) -> None:
        """Make the spin box's epoch the run's best epoch (``automatic`` restores the rule)."""
        if self.run is None or not self.run.exists:
            return
        epoch = self.best_epoch.value() or None
        try:
            best = self.run.set_best_epoch(epoch)
            metrics, samples = self.run.metrics(), self.run.samples()
        except DiffRenderGANError as err:
            self.status.setText(f"Cannot use this epoch: {err}")
            return
        self._draw(metrics, samples)
        self.status.setText(f"Best epoch is now {best}{'' if epoch else ' (automatic)'}.")


def results_tooltip(space: ParameterSpace) -> str:
    """What the results figure shows, with a line per learned parameter."""
    lines = "\n".join(describe(name) for name in space.names)
    return (
        "FID per epoch (lower: synthetic images closer to the real ones), with the untrained "
        "generator's level and the real-vs-real floor.\nHistograms of the latest epoch's "
        f"parameters, each on the range its values take:\n{lines}"
    )


def results_figure(
    metrics: dict, samples: np.ndarray | None, space: ParameterSpace | None
) -> Figure:
    """FID per epoch on top, the latest epoch's parameter histograms below."""
    names = space.names if space is not None and samples is not None else []
    rows = -(-len(names) // HISTOGRAM_COLUMNS)
    figure = Figure(figsize=(4, 2.2 + 1.5 * rows), dpi=100, tight_layout=True)
    grid = figure.add_gridspec(1 + rows, HISTOGRAM_COLUMNS, height_ratios=[2.2] + [1.5] * rows)
    fid_axes = figure.add_subplot(grid[0, :])
    plot_fid(fid_axes, metrics)
    fid_axes.tick_params(labelsize=7)
    if names:
        axes = [
            figure.add_subplot(grid[1 + i // HISTOGRAM_COLUMNS, i % HISTOGRAM_COLUMNS])
            for i in range(len(names))
        ]
        plot_histograms(axes, samples, names, (space.low, space.high))
    return figure


TIPS = {  # tooltips of the form rows
    "iterations": (
        "Iterations (constellations) per epoch; auto: one per real particle patch, as in the paper"
    ),
    "fid_images": (
        "Synthetic images in each epoch's FID set, one per constellation (default: one per "
        "real patch, as the paper measures)"
    ),
    "patience": (
        "Stop when the FID has not improved for this many epochs (never: train all epochs)"
    ),
    "best_epoch": (
        "The epoch whose generator makes synthetic data; automatic: the paper's rule "
        "(broadest parameters among the 5 lowest FIDs)"
    ),
    "mesh_count": (
        "Particles in the preset's scene; scaled with the image area when the patches are "
        "smaller or larger than the preset's image."
    ),
    "spp": "Samples per pixel (square numbers suit the stratified sampler: 1, 4, 9, 16, …)",
    "epochs": "Epochs to train to; one epoch = one iteration per constellation",
    "seed": "Seed of the constellations, the networks and the noise: same seed, same run",
}
