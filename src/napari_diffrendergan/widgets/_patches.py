"""Patch selection dock widget: rectangles on a scan in, reviewed training patches out."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox
from napari.layers import Image, Shapes
from qtpy.QtWidgets import QHBoxLayout, QLineEdit, QPushButton

from ..data.patches import POLARITIES, ROLES, Patch, PatchSet, cut_patches
from ..wording import counted
from ._base import TaskWidget
from ._layers import (
    DataBarBox,
    PixelSizeBox,
    beside_layers,
    calibration,
    choice_box,
    form,
    int_box,
    layer_named,
    layer_picker,
    path_row,
    regions_of,
)

ROLE_COLOURS = {"particle": "orange", "background": "cyan"}
STACK_SUFFIX, OUTLINE_SUFFIX = " patches", " patch outlines"
HIGHLIGHT_WIDTH = 6  # px: the outline of the patch on show


def _not_own(layer) -> bool:
    """Not the widget's own patch stack or outlines."""
    return not layer.name.endswith((STACK_SUFFIX, OUTLINE_SUFFIX))


class PatchSelectionWidget(TaskWidget):
    """Draw rectangles on a Shapes layer over a scan, cut patches, review, save a patch set."""

    title = "Patch selection"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.patches: list[Patch] = []
        self.pixels: list[np.ndarray] = []
        self.source: Image | None = None
        self.bar_left_out = None  # the data bar left out of the last cut

        self.image_box = layer_picker(
            self.viewer, Image, "Scan", "The real scan to cut patches from", keep=_not_own
        )
        self.shapes_box = layer_picker(
            self.viewer,
            Shapes,
            "Regions",
            "A Shapes layer whose rectangles mark where to cut; none: the whole scan",
            none_choice="none (whole scan)",
            keep=_not_own,
        )
        self.role = choice_box("Role", list(ROLES), TIPS["role"], value="auto")
        self.polarity = choice_box("Polarity", list(POLARITIES), TIPS["polarity"])
        self.size = int_box("Patch size (px)", 256, 16, 4096, TIPS["size"])
        self.stride = int_box("Stride (px)", 128, 1, 4096, TIPS["stride"])
        self.pixel_size = PixelSizeBox("recorded with the patch set and the GAN runs on it")
        self.data_bar = DataBarBox()
        self.draw_button = QPushButton("New region layer")
        self.draw_button.setToolTip("Add a Shapes layer over the scan, ready to draw rectangles")
        self.cut_button = QPushButton("Cut patches")
        self.cut_button.setToolTip("Tile the rectangles (or the whole scan) into patches")
        self.remove_button = QPushButton("Remove shown patch")
        self.remove_button.setToolTip("Drop the patch the slider shows from the set")
        self.remove_button.setEnabled(False)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("patch set folder")
        self.folder.setToolTip("Where to save the patch set (patches.json + one TIFF per patch)")
        self.append = CheckBox(
            text="Append to a patch set already there",
            tooltip="Off: refuse a folder that holds a patch set; on: add these patches to it",
        )
        self.save_button = QPushButton("Save patch set")
        self.save_button.setToolTip("Write the reviewed patches as a patch set")
        self.save_button.setEnabled(False)
        self.while_busy(self.cut_button, self.save_button)
        self.status.setText(
            "Choose a scan, draw rectangles around particle (and background) "
            "areas, then cut patches."
        )

        regions = QHBoxLayout()
        regions.addWidget(self.shapes_box.native)
        regions.addWidget(self.draw_button)
        form_rows = form(
            self.image_box,
            ("Regions", regions),
            self.role,
            self.polarity,
            self.size,
            self.stride,
            ("Pixel size", self.pixel_size),
            ("", self.pixel_size.origin),
            self.data_bar,
        )
        layout = self.page_layout()
        layout.addLayout(form_rows)
        layout.addWidget(self.cut_button)
        layout.addWidget(self.remove_button)
        layout.addLayout(path_row(self.folder, self, "Patch set folder"))
        layout.addWidget(self.append.native)
        layout.addWidget(self.save_button)
        layout.addWidget(self.progress_panel())
        layout.addStretch(1)

        self.draw_button.clicked.connect(self.new_region_layer)
        self.cut_button.clicked.connect(self.cut)
        self.remove_button.clicked.connect(self.remove_shown)
        self.save_button.clicked.connect(self.save)
        self.viewer.dims.events.current_step.connect(self._show_role)
        self.image_box.changed.connect(self._scan_chosen)
        self.follow_layers(self.image_box, self.shapes_box)

    def _layers_changed(self, event=None) -> None:
        self._scan_chosen()

    def _scan_chosen(self, _scan=None) -> None:
        scan = self.image_box.value
        self.pixel_size.follow(scan)
        self.data_bar.follow(scan)

    def new_region_layer(self) -> None:
        """A Shapes layer aligned with the scan, in rectangle-drawing mode."""
        scan = self.image_box.value
        layer = self.viewer.add_shapes(
            name="regions",
            edge_color="yellow",
            face_color=[0] * 4,
            edge_width=3,
            **(calibration(scan) if scan else {}),
        )
        layer.mode = "add_rectangle"
        self.shapes_box.value = layer
        self.status.setText(f"Draw rectangles on “{layer.name}”, then Cut patches.")

    def cut(self) -> None:
        """Cut patches from the scan inside every drawn rectangle (or the whole scan)."""
        if self.image_box.value is None:
            self.status.setText("Open a scan first.")
            return
        self.source = self.image_box.value
        drawn = regions_of(self.shapes_box.value, self.source)
        regions = self.data_bar.regions(drawn, self.source.data.shape)
        self.bar_left_out = self.data_bar.left_out()
        bar = " without its data bar" if self.bar_left_out else ""
        note = "" if drawn else f"No rectangle drawn: the whole scan was tiled{bar}. "
        self.launch(
            partial(cut_patches, polarity=self.polarity.value),
            np.asarray(self.source.data),
            self.source.name,
            regions or None,
            self.size.value,
            self.stride.value,
            self.role.value,
            done=lambda result: self._cut(result, note),
            failed=lambda err: self.show_error(err, "Cannot cut patches"),
            text=f"Cutting patches from {self.source.name}…",
        )

    def _cut(self, result, note: str) -> None:
        self.patches, self.pixels, notes = result
        self._show()
        extra = " " + "; ".join(notes) + "." if notes else ""
        self.status.setText(note + self.status.text() + extra)

    def _show(self) -> None:
        """Show the patches as a stack layer and their outlines over the scan; layers already
        there are updated in place (removing and re-adding a Shapes layer crashes napari on
        software OpenGL)."""
        name, outlines = self.source.name + STACK_SUFFIX, self.source.name + OUTLINE_SUFFIX
        counts = {r: sum(p.role == r for p in self.patches) for r in ROLE_COLOURS}
        self.remove_button.setEnabled(bool(self.patches))
        self.save_button.setEnabled(bool(self.patches))
        shapes, stack = (
            layer_named(self.viewer, outlines, Shapes),
            layer_named(self.viewer, name, Image),
        )
        if not self.patches:
            if stack is not None:
                self.viewer.layers.remove(stack)
            if shapes is not None:
                shapes.data = []
            self.status.setText("No patch qualified: draw larger regions or choose a role.")
            return
        boxes = [np.array([[p.y, p.x], [p.y + p.size, p.x + p.size]]) for p in self.patches]
        metadata = {
            "pixel_size_nm": self.pixel_size.nm(),
            "roles": [p.role for p in self.patches],
        }
        shown = 0 if stack is None else self._shown_index()
        colours, widths = self._outline_style(shown)
        if shapes is None:
            self.viewer.add_shapes(
                boxes,
                shape_type="rectangle",
                name=outlines,
                face_color=[0] * 4,
                edge_color=colours,
                edge_width=widths,
                **calibration(self.source),
            )
        else:
            shapes.data = [(box, "rectangle") for box in boxes]
            shapes.edge_width, shapes.edge_color = widths, colours
        if stack is None:
            self.viewer.add_image(
                np.stack(self.pixels),
                name=name,
                colormap="gray",
                metadata=metadata,
                **(calibration(self.source, stack=True) | beside_layers(self.viewer, stack=True)),
            )
        else:
            stack.data, stack.metadata = np.stack(self.pixels), metadata
            stack.reset_contrast_limits()
        self.status.setText(
            f"{counted(len(self.patches), 'patch', 'patches')} ({counts['particle']} particle, "
            f"{counts['background']} background). Step through them with the slider; remove "
            "those you dislike, then save."
        )

    def _shown_index(self) -> int | None:
        if not self.patches or self.source is None:
            return None
        if self.source.name + STACK_SUFFIX not in self.viewer.layers:
            return None
        return min(int(self.viewer.dims.current_step[0]), len(self.patches) - 1)

    def _show_role(self, event=None) -> None:
        index = self._shown_index()
        self._highlight(index)
        if index is not None and not self.busy:
            patch = self.patches[index]
            self.status.setText(
                f"Patch {index + 1} of {len(self.patches)}: {patch.role}, "
                f"{counted(patch.whole_particles, 'whole particle')}, "
                f"at y {patch.y}, x {patch.x} px."
            )

    def _highlight(self, index: int | None) -> None:
        """The outline of the patch on show in the stack drawn thick and white, where it was
        cut from the scan."""
        if self.source is None:
            return
        shapes = layer_named(self.viewer, self.source.name + OUTLINE_SUFFIX, Shapes)
        if shapes is None or len(shapes.data) != len(self.patches):
            return
        colours, widths = self._outline_style(index)
        shapes.edge_width, shapes.edge_color = widths, colours

    def _outline_style(self, index: int | None) -> tuple[list, list]:
        """Edge colours (by role) and widths of the outlines, the one of patch ``index`` thick
        and white."""
        colours = [
            "white" if i == index else ROLE_COLOURS[p.role] for i, p in enumerate(self.patches)
        ]
        widths = [HIGHLIGHT_WIDTH if i == index else 2 for i in range(len(self.patches))]
        return colours, widths

    def remove_shown(self) -> None:
        """Drop the patch shown in the patches layer."""
        index = self._shown_index()
        if index is None:
            return
        del self.patches[index]
        del self.pixels[index]
        self._show()

    def save(self) -> None:
        """Write the reviewed patches as a patch set (appending only when asked to)."""
        folder = self.folder.text().strip()
        if not folder:
            self.status.setText("Type a folder for the patch set.")
            return
        if PatchSet.is_patch_set(folder) and not self.append.value:
            self.status.setText(
                f"“{folder}” already holds a patch set: tick “Append” to add these patches to "
                "it, or choose another folder."
            )
            return
        settings = {
            "size": self.size.value,
            "stride": self.stride.value,
            "role": self.role.value,
            "polarity": self.polarity.value,
            "source": self.source.name,
            "data_bar_left_out": str(self.bar_left_out) if self.bar_left_out else None,
        }
        self.launch(
            PatchSet.save,
            folder,
            list(self.patches),
            list(self.pixels),
            self.pixel_size.nm(),
            settings,
            done=self._saved,
            failed=lambda err: self.show_error(err, "Cannot save"),
            text=f"Saving {counted(len(self.patches), 'patch', 'patches')}…",
        )

    def _saved(self, patch_set: PatchSet) -> None:
        stack = layer_named(self.viewer, self.source.name + STACK_SUFFIX, Image)
        if stack is not None:  # lets the GAN training widget take the layer as its patch set
            stack.metadata = {**stack.metadata, "patch_set": str(Path(patch_set.folder).resolve())}
        unknown = (
            " Pixel size unknown: the set records none, so GAN runs on it and sizes from them "
            "are in pixels; type it above and save again with “Append” ticked."
            if patch_set.pixel_size_nm is None
            else ""
        )
        self.status.setText(
            f"Saved {counted(len(self.patches), 'patch', 'patches')} to {patch_set.folder} "
            f"({len(patch_set.patches)} in the set).{unknown}"
        )


TIPS = {  # tooltips of the form rows
    "role": (
        "auto: patches with ≥ 3 whole particles (Otsu threshold) train the GAN, empty ones "
        "become background for nnU-Net, the rest are dropped; or force one role"
    ),
    "polarity": (
        "Particles brighter (bright) or darker (dark) than the background; auto: found on the scan"
    ),
    "size": "Patch width and height, px (the paper: 256)",
    "stride": "Step between neighbouring patches, px (smaller: more overlap)",
}
