"""Dock widgets whose workflows arrive in later releases.

They say what is coming and offer nothing that pretends to work.
"""

from __future__ import annotations

from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget


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
        layout.addStretch(1)


class SyntheticDataWidget(_PlannedWidget):
    title = "Synthetic data"
    coming = (
        "generate synthetic images with instance and 3-class masks from a trained run, "
        "and export an nnU-Net dataset."
    )
