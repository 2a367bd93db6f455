"""Dock widgets whose workflows arrive in later releases.

They say what is coming and offer nothing that pretends to work; the GAN training widget
already shows which compute backend training will use.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from ..backend import DEVICES, BackendError, resolve_backend


class _PlannedWidget(QWidget):
    title = ""
    coming = ""

    def __init__(self, napari_viewer=None):
        super().__init__()
        self.viewer = napari_viewer
        layout = QVBoxLayout(self)
        heading = QLabel(f"<b>{self.title}</b>")
        self.status = QLabel(f"Not available yet. Coming in a later release: {self.coming}")
        self.status.setWordWrap(True)
        self.status.setObjectName("planned_status")
        layout.addWidget(heading)
        layout.addWidget(self.status)
        self.add_rows(layout)
        layout.addStretch(1)

    def add_rows(self, layout: QVBoxLayout) -> None:
        """Extra rows for widgets that can already show something real."""


class GanTrainingWidget(_PlannedWidget):
    title = "GAN training"
    coming = (
        "train DiffRenderGAN on a patch set with a preset, watch FID and the learned "
        "parameter histograms, pick the best epoch."
    )

    def add_rows(self, layout: QVBoxLayout) -> None:
        form = QFormLayout()
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.backend_label = QLabel()
        self.backend_label.setWordWrap(True)
        self.backend_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Device", self.device)
        form.addRow("Backend", self.backend_label)
        layout.addLayout(form)
        self.device.currentTextChanged.connect(self._show_backend)
        self._show_backend(self.device.currentText())

    def _show_backend(self, device: str) -> None:
        try:
            self.backend_label.setText(resolve_backend(device).describe())
        except BackendError as err:
            self.backend_label.setText(f"Unavailable: {err}")


class SyntheticDataWidget(_PlannedWidget):
    title = "Synthetic data"
    coming = (
        "generate synthetic images with instance and 3-class masks from a trained run, "
        "and export an nnU-Net dataset."
    )
