"""Patch selection dock widget: rectangles on a scan in, reviewed training patches out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Image, Shapes
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..patches import ROLES, Patch, PatchError, cut_patches, save_patch_set
from ._layers import layer_named, layer_pixel_size_nm, refill, regions_of

ROLE_COLOURS = {"particle": "orange", "background": "cyan"}


class PatchSelectionWidget(QWidget):
    """Draw rectangles on a Shapes layer over a scan, cut patches, review, save a patch set."""

    title = "Patch selection"

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.patches: list[Patch] = []
        self.pixels: list[np.ndarray] = []
        self.source: Image | None = None

        self.image_box = QComboBox()
        self.shapes_box = QComboBox()
        self.role = QComboBox()
        self.role.addItems(list(ROLES))
        self.role.setCurrentText("auto")
        self.size = QSpinBox()
        self.size.setRange(16, 4096)
        self.size.setValue(256)
        self.stride = QSpinBox()
        self.stride.setRange(1, 4096)
        self.stride.setValue(128)
        self.draw_button = QPushButton("New region layer")
        self.cut_button = QPushButton("Cut patches")
        self.remove_button = QPushButton("Remove shown patch")
        self.remove_button.setEnabled(False)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("patch set folder")
        self.save_button = QPushButton("Save patch set")
        self.save_button.setEnabled(False)
        self.status = QLabel(
            "Choose a scan, draw rectangles around particle (and background) "
            "areas, then cut patches."
        )
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Scan", self.image_box)
        regions = QHBoxLayout()
        regions.addWidget(self.shapes_box)
        regions.addWidget(self.draw_button)
        form.addRow("Regions", regions)
        form.addRow("Role", self.role)
        form.addRow("Patch size", self.size)
        form.addRow("Stride", self.stride)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>{self.title}</b>"))
        layout.addLayout(form)
        layout.addWidget(self.cut_button)
        layout.addWidget(self.remove_button)
        save = QHBoxLayout()
        save.addWidget(self.folder)
        save.addWidget(self.save_button)
        layout.addLayout(save)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.draw_button.clicked.connect(self.new_region_layer)
        self.cut_button.clicked.connect(self.cut)
        self.remove_button.clicked.connect(self.remove_shown)
        self.save_button.clicked.connect(self.save)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    def _refresh_layers(self, event=None) -> None:
        for box, kind in ((self.image_box, Image), (self.shapes_box, Shapes)):
            refill(
                box,
                [
                    layer.name
                    for layer in self.viewer.layers
                    if isinstance(layer, kind) and not layer.name.endswith(" patches")
                ],
            )

    def new_region_layer(self) -> None:
        """A Shapes layer aligned with the scan, in rectangle-drawing mode."""
        scan = layer_named(self.viewer, self.image_box.currentText(), Image)
        kwargs = {"scale": scan.scale[-2:], "translate": scan.translate[-2:]} if scan else {}
        layer = self.viewer.add_shapes(
            name="regions", edge_color="yellow", face_color=[0] * 4, edge_width=3, **kwargs
        )
        layer.mode = "add_rectangle"
        self.shapes_box.setCurrentText(layer.name)

    def cut(self) -> None:
        """Cut patches from the scan inside every drawn rectangle."""
        name = self.image_box.currentText()
        if name not in self.viewer.layers:
            self.status.setText("Open a scan first.")
            return
        self.source = self.viewer.layers[name]
        shapes_name = self.shapes_box.currentText()
        shapes = layer_named(self.viewer, shapes_name, Shapes)
        regions = regions_of(shapes, self.source) or None
        data = np.asarray(self.source.data)
        try:
            self.patches, self.pixels, notes = cut_patches(
                data,
                self.source.name,
                regions,
                self.size.value(),
                self.stride.value(),
                self.role.currentText(),
            )
        except PatchError as err:
            self.status.setText(f"Cannot cut patches: {err}")
            return
        self._show()
        if notes:
            self.status.setText(self.status.text() + " " + "; ".join(notes) + ".")

    def _show(self) -> None:
        name = f"{self.source.name} patches"
        outlines = f"{self.source.name} patch outlines"
        for layer_name in (name, outlines):
            if layer_name in self.viewer.layers:
                self.viewer.layers.remove(layer_name)
        counts = {r: sum(p.role == r for p in self.patches) for r in ROLE_COLOURS}
        self.remove_button.setEnabled(bool(self.patches))
        self.save_button.setEnabled(bool(self.patches))
        if not self.patches:
            self.status.setText("No patch qualified: draw larger regions or choose a role.")
            return
        boxes = [[[p.y, p.x], [p.y + p.size, p.x + p.size]] for p in self.patches]
        self.viewer.add_shapes(
            boxes,
            shape_type="rectangle",
            name=outlines,
            face_color=[0] * 4,
            edge_color=[ROLE_COLOURS[p.role] for p in self.patches],
            edge_width=2,
            scale=self.source.scale[-2:],
            translate=self.source.translate[-2:],
        )
        self.viewer.add_image(
            np.stack(self.pixels),
            name=name,
            colormap="gray",
            metadata={
                "pixel_size_nm": layer_pixel_size_nm(self.source),
                "roles": [p.role for p in self.patches],
            },
        )
        self.status.setText(
            f"{len(self.patches)} patches ({counts['particle']} particle, "
            f"{counts['background']} background). Step through them with the slider; remove "
            "those you dislike, then save."
        )

    def remove_shown(self) -> None:
        """Drop the patch shown in the patches layer."""
        if not self.patches:
            return
        index = int(self.viewer.dims.current_step[0])
        index = min(index, len(self.patches) - 1)
        del self.patches[index]
        del self.pixels[index]
        self._show()

    def save(self) -> Path | None:
        """Write the reviewed patches as a patch set (appends to an existing one)."""
        folder = self.folder.text().strip()
        if not folder:
            self.status.setText("Type a folder for the patch set.")
            return None
        path = save_patch_set(
            folder,
            self.patches,
            self.pixels,
            layer_pixel_size_nm(self.source),
            {
                "size": self.size.value(),
                "stride": self.stride.value(),
                "role": self.role.currentText(),
                "source": self.source.name,
            },
        )
        stack = layer_named(self.viewer, f"{self.source.name} patches", Image)
        if stack is not None:  # lets the GAN training widget take the layer as its patch set
            stack.metadata = {**stack.metadata, "patch_set": str(Path(path).resolve())}
        self.status.setText(f"Saved {len(self.patches)} patches to {path}.")
        return path
