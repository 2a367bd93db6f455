"""Helpers shared by the dock widgets: pixel size and rectangles from napari layers, layer
look-up and magicgui layer pickers, figures shown as images, and the rows (magicgui widgets
with label and tooltip, or Qt where magicgui does not fit) the widgets build their forms
from."""

from __future__ import annotations

import weakref

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QCheckBox, QDoubleSpinBox, QLabel


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

    def clear_figure(self) -> None:
        """No figure on show (an empty one, not drawn: clearing costs nothing)."""
        from matplotlib.figure import Figure

        self.figure = Figure()
        self.clear()

    def show_figure(self, figure, pixels: np.ndarray | None = None) -> None:
        """Show ``figure`` (its ``pixels`` from :func:`rendered`, drawn now if not given)."""
        self.figure = figure
        pixels = rendered(figure) if pixels is None else pixels
        height, width = pixels.shape[:2]
        image = QImage(pixels.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
        self.setPixmap(QPixmap.fromImage(image.copy()))


def layer_pixel_size(layer) -> tuple[float | None, str]:
    """A layer's pixel size (nm) and where it was found: the layer's metadata, a non-unit
    scale (taken as nm), else the file the layer was opened from (sidecar or the file's own
    metadata, :func:`~napari_diffrendergan.io.image_pixel_size`); ``(None, "")`` if unknown."""
    from ..errors import DiffRenderGANError
    from ..io import image_pixel_size

    size = layer.metadata.get("pixel_size_nm")
    if size:
        return float(size), "the layer's metadata"
    scale = float(layer.scale[-1])
    if scale != 1.0:
        return scale, "the layer's scale"
    path = getattr(layer.source, "path", None)
    if not path:
        return None, ""
    try:
        size, found = image_pixel_size(path)
    except (DiffRenderGANError, OSError):  # a bad sidecar: read as unknown here
        return None, ""
    return size, f"the file's {found}" if size else ""


def carry_pixel_size(layer, size: float) -> None:
    """Give a layer in pixels (unit scale) the pixel size found for it, as its scale in nm,
    so that it and every result drawn over it measure in nm; the view follows."""
    if any(float(v) != 1.0 for v in layer.scale[-2:]):
        return
    layer.scale = (*layer.scale[:-2], size, size)
    layer.units = (*layer.units[:-2], "nanometer", "nanometer")
    layer.metadata = {**layer.metadata, "pixel_size_nm": size}
    import napari

    viewer = napari.current_viewer()
    if viewer is not None and layer in viewer.layers:
        viewer.reset_view()


def text_label(text: str = "", tooltip: str = "", selectable: bool = False) -> QLabel:
    """A word-wrapped text line of a dock (``selectable``: its text can be copied)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setToolTip(tooltip)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class PixelSizeBox(QDoubleSpinBox):
    """nm per pixel, offered from the chosen layer (:meth:`follow`) with where it came from
    in :attr:`origin`. A value the user typed sticks: only a layer with a known pixel size,
    newly chosen, replaces it."""

    def __init__(self, purpose: str):
        super().__init__()
        self.setRange(0.0, 1e6)
        self.setDecimals(3)
        self.setSpecialValueText("unknown (pixels)")
        self.setSuffix(" nm")
        self.setToolTip(f"nm per pixel, {purpose} (offered from the layer or its file)")
        self.origin = text_label()
        self.typed = False
        self._layer = None
        self._offering = False
        self.valueChanged.connect(self._changed)
        self._offer(None, "")

    def nm(self) -> float | None:
        """The pixel size in nm, None when unknown."""
        return self.value() or None

    def follow(self, layer) -> None:
        """Offer ``layer``'s pixel size when ``layer`` is newly chosen (refreshes of the layer
        list keep what is shown, typed or offered)."""
        if self._layer is not None and self._layer() is layer:
            return
        self._layer = weakref.ref(layer) if layer is not None else None
        size, found = layer_pixel_size(layer) if layer is not None else (None, "")
        if size:
            carry_pixel_size(layer, size)
        if size or not self.typed:
            self._offer(size, found)

    def _offer(self, size: float | None, found: str) -> None:
        self._offering = True
        self.setValue(size or 0.0)
        self._offering = False
        self.typed = False
        self.origin.setText(f"{size:.4g} nm (from {found})" if size else "unknown: sizes in pixels")

    def _changed(self, value: float) -> None:
        if not self._offering:
            self.typed = bool(value)
            self.origin.setText("typed" if value else "unknown: sizes in pixels")


class DataBarBox(QCheckBox):
    """The "Leave out the data bar" box: offered, and ticked, when the chosen scan has one
    (:func:`~napari_diffrendergan.data.scans.find_data_bar`); the user may untick it."""

    def __init__(self):
        super().__init__()
        self.setToolTip(
            "The microscope's info band (text, scale bar) along the bottom or top edge: left "
            "out, so its glyphs neither become particles nor fragments"
        )
        self.bar = None
        self._layer = None
        self.follow(None)

    def follow(self, layer) -> None:
        """Look for a data bar on ``layer`` when it is newly chosen."""
        if self._layer is not None and self._layer() is layer:
            return
        self._layer = weakref.ref(layer) if layer is not None else None
        self.bar = _layer_data_bar(layer)
        self.setEnabled(self.bar is not None)
        self.setChecked(self.bar is not None)
        self.setText(f"Leave out the data bar ({self.bar})" if self.bar else "No data bar found")

    def left_out(self):
        """The data bar when it is to be left out, else None."""
        return self.bar if self.isChecked() else None

    def regions(self, regions: list, shape) -> list:
        """``regions`` (y0, y1, x0, x1) without the data bar's rows when it is left out; no
        region (the whole image) becomes the rows outside the bar."""
        if self.left_out() is None:
            return regions
        low, high = self.bar.kept_rows(shape[0])
        if not regions:
            return [(low, high, 0, shape[1])]
        clipped = [(max(y0, low), min(y1, high), x0, x1) for y0, y1, x0, x1 in regions]
        return [(y0, max(y0, y1), x0, x1) for y0, y1, x0, x1 in clipped]  # none: 0 rows


def _layer_data_bar(layer):
    """The data bar of a 2D (grey or RGB) image layer, None for other layers."""
    from napari.layers import Image

    from ..data.scans import find_data_bar
    from ..errors import DiffRenderGANError

    if not isinstance(layer, Image) or layer.multiscale or layer.ndim != 2:
        return None
    try:
        return find_data_bar(np.asarray(layer.data))
    except DiffRenderGANError:
        return None


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


def beside_layers(viewer, stack: bool = False) -> dict:
    """``translate`` for a new layer that is not pixels of a scan (patch stacks, previews,
    synthetic images): right of every layer already shown, a tenth of their width apart, top
    aligned, so that it never looks like part of a scan (``stack``: a leading stack axis)."""
    if not len(viewer.layers):
        return {}
    low, high = np.asarray(viewer.layers.extent.world, dtype=float)[:, -2:]
    translate = (float(low[0]), float(high[1] + 0.1 * (high[1] - low[1])))
    return {"translate": (0.0, *translate) if stack else translate}


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


def layer_picker(viewer, kind, label: str, tooltip: str, *, none_choice: str = "", keep=None):
    """A magicgui ComboBox of the viewer's layers of ``kind`` (those ``keep(layer)`` accepts);
    its value is the chosen layer, or None for ``none_choice`` (listed first when given).
    :meth:`TaskWidget.follow_layers` keeps its choices current."""
    from magicgui.widgets import ComboBox

    def choices(_picker=None) -> list[tuple[str, object]]:
        layers = [
            lay for lay in viewer.layers if isinstance(lay, kind) and (keep is None or keep(lay))
        ]
        listed = [(lay.name, lay) for lay in layers]
        return [(none_choice, None), *listed] if none_choice else listed

    return ComboBox(choices=choices, label=label, tooltip=tooltip)


def refresh_choices(picker) -> None:
    """Read a layer picker's choices again, in the layer list's order, keeping what was chosen
    (one layer, or several in a Select) where it is still there, also under a new name."""
    chosen = picker.value
    with picker.changed.blocked():
        picker.native.clear()  # magicgui keeps old items' places and names otherwise
        picker.reset_choices()
    if isinstance(chosen, list):
        picker.value = [layer for layer in chosen if layer in picker.choices]
    elif chosen in picker.choices:
        picker.value = chosen
    else:
        picker.changed.emit(picker.value)


def qt(control):
    """The Qt widget of a magicgui widget (``.native``); a Qt widget or layout as it is."""
    return getattr(control, "native", control)


def form(*rows, layout=None):
    """A form (``layout``, else a new QFormLayout) of ``rows``: a magicgui widget with its label
    on the left (a widget without a label, e.g. a check box, spans the row), a ``(label,
    control)`` pair (label "": the control under the others), or a Qt widget or layout that
    spans the row."""
    from qtpy.QtWidgets import QFormLayout

    layout = QFormLayout() if layout is None else layout
    for row in rows:
        if isinstance(row, tuple):
            layout.addRow(row[0], qt(row[1]))
        elif getattr(row, "label", ""):
            layout.addRow(row.label, qt(row))
        else:
            layout.addRow(qt(row))
    return layout


def int_box(label: str, value: int, low: int, high: int, tooltip: str, **options):
    """A magicgui integer spin box for a :func:`form` row: its label, range and tooltip."""
    from magicgui.widgets import SpinBox

    return SpinBox(value=value, min=low, max=high, label=label, tooltip=tooltip, **options)


def choice_box(label: str, choices, tooltip: str, **options):
    """A magicgui combo box of fixed ``choices`` for a :func:`form` row."""
    from magicgui.widgets import ComboBox

    return ComboBox(choices=choices, label=label, tooltip=tooltip, **options)


def device_box():
    """The Device choice of the docks that render or train."""
    from ..backend import DEVICES

    return choice_box("Device", list(DEVICES), "auto: the GPU when one is present, else the CPU")


def special_spin_box(low: int, high: int, value: int, special: str, tooltip: str):
    """A Qt integer spin box that shows ``special`` instead of its lowest value (magicgui's
    SpinBox, superqt's QLargeIntSpinBox, cannot)."""
    from qtpy.QtWidgets import QSpinBox

    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setSpecialValueText(special)
    box.setToolTip(tooltip)
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
