"""Helpers shared by the dock widgets: pixel size and rectangles from napari layers, layer
look-up, figures shown as images, and the small Qt rows the widgets build their forms from."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel


def rendered(figure) -> np.ndarray:
    """RGBA pixels of a matplotlib figure, drawn by Agg: safe in a worker thread, so the GUI
    thread never spends the ~1 s a many-axes figure takes to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


class FigureView(QLabel):
    """Shows a matplotlib figure as a picture (drawn beforehand, e.g. by a worker)."""

    def __init__(self, figure):
        super().__init__()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.show_figure(figure)

    def show_figure(self, figure, pixels: np.ndarray | None = None) -> None:
        """Show ``figure`` (its ``pixels`` from :func:`rendered`, drawn now if not given)."""
        self.figure = figure
        pixels = rendered(figure) if pixels is None else pixels
        height, width = pixels.shape[:2]
        image = QImage(pixels.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
        self.setPixmap(QPixmap.fromImage(image.copy()))


def layer_pixel_size_nm(layer) -> float | None:
    """Pixel size from layer metadata, else from a non-unit scale (assumed nm)."""
    size = layer.metadata.get("pixel_size_nm")
    if size:
        return float(size)
    scale = float(layer.scale[-1])
    return scale if scale != 1.0 else None


def calibration(source, stack: bool = False) -> dict:
    """Scale, translate and units of ``source``'s last two axes, for a layer drawn over it
    (``stack``: with a leading stack axis of unit scale)."""
    scale = tuple(float(v) for v in source.scale[-2:])
    translate = tuple(float(v) for v in source.translate[-2:])
    units = tuple(str(u) for u in source.units[-2:])
    if stack:
        scale, translate, units = (1.0, *scale), (0.0, *translate), ("pixel", *units)
    return {"scale": scale, "translate": translate, "units": units}


def pixel_calibration(pixel_size_nm: float | None, stack: bool = False) -> dict:
    """Scale and units of an image known only by its pixel size (nm or unknown), e.g. a render
    (``stack``: with a leading stack axis of unit scale)."""
    size = float(pixel_size_nm) if pixel_size_nm else 1.0
    unit = "nanometer" if pixel_size_nm else "pixel"
    scale, units = (size, size), (unit, unit)
    if stack:
        scale, units = (1.0, *scale), ("pixel", *units)
    return {"scale": scale, "units": units}


def regions_of(shapes, image) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (y0, y1, x0, x1) of a Shapes layer's shapes, in the image's pixels."""
    if shapes is None:
        return []
    boxes = []
    for corners in shapes.data:
        corners = np.asarray(corners)[:, -2:]
        world = corners * np.asarray(shapes.scale)[-2:] + np.asarray(shapes.translate)[-2:]
        pixels = (world - np.asarray(image.translate)[-2:]) / np.asarray(image.scale)[-2:]
        (y0, x0), (y1, x1) = np.floor(pixels.min(axis=0)), np.ceil(pixels.max(axis=0))
        boxes.append((int(y0), int(y1), int(x0), int(x1)))
    return boxes


def layer_named(viewer, name: str, kind):
    """The layer called ``name`` if it is of type ``kind``, else None."""
    return next((lay for lay in viewer.layers if lay.name == name and isinstance(lay, kind)), None)


def refill(box, names: list[str]) -> None:
    """Replace a combo box's items, keeping the current choice when it is still there."""
    current = box.currentText()
    box.blockSignals(True)
    box.clear()
    box.addItems(names)
    box.blockSignals(False)
    if current in names:
        box.setCurrentText(current)


def spin_box(low: int, high: int, value: int, special: str = ""):
    """An integer spin box; ``special`` is shown instead of the lowest value."""
    from qtpy.QtWidgets import QSpinBox

    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    if special:
        box.setSpecialValueText(special)
    return box


def path_row(edit, parent, caption: str, chosen=None):
    """A folder line edit with a Browse… button; ``chosen()`` runs after a folder is picked."""
    from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QPushButton

    row = QHBoxLayout()
    browse = QPushButton("Browse…")

    def pick() -> None:
        folder = QFileDialog.getExistingDirectory(parent, caption)
        if folder:
            edit.setText(folder)
            if chosen is not None:
                chosen()

    browse.clicked.connect(pick)
    row.addWidget(edit)
    row.addWidget(browse)
    return row
