"""The base of every dock widget: one long operation at a time in a napari thread worker, its
progress in a bar and status line, a Cancel button, and any error shown in the dock with the
buttons usable again."""

from __future__ import annotations

import functools
import inspect
import logging
import traceback

from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..errors import Cancelled, DiffRenderGANError
from ..progress import Monitor
from ._layers import qt, refresh_choices, text_label

log = logging.getLogger(__name__)


class UnexpectedError(Exception):
    """A bug in a worker, re-raised under a type superqt does not swallow (it drops
    ``RuntimeError``s of worker threads); the original is ``__cause__``."""


@functools.cache
def _warm_napari_imports() -> None:
    """Do once, in a worker thread, what napari does lazily on the GUI thread when the first
    layer of a kind is added: the pint unit registry (1.0 s on a slow 2-core machine), pandas
    for layer features (0.66 s), scipy.ndimage for thumbnails (0.64 s), skimage.color for the
    label colormap (0.20 s)."""
    import pandas  # noqa: F401
    import pint
    import scipy.ndimage  # noqa: F401
    import skimage.color  # noqa: F401

    pint.get_application_registry().nm  # noqa: B018  (builds the registry)


def _guarded(work):
    """``work`` (a function or generator function) with unexpected errors wrapped, after
    :func:`_warm_napari_imports`."""
    if inspect.isgeneratorfunction(work):

        def generator(*args, **kwargs):
            try:
                _warm_napari_imports()
                yield from work(*args, **kwargs)
            except (DiffRenderGANError, Cancelled, UnexpectedError):
                raise
            except Exception as err:
                raise UnexpectedError(f"{type(err).__name__}: {err}") from err

        return generator

    def function(*args, **kwargs):
        try:
            _warm_napari_imports()
            return work(*args, **kwargs)
        except (DiffRenderGANError, Cancelled, UnexpectedError):
            raise
        except Exception as err:
            raise UnexpectedError(f"{type(err).__name__}: {err}") from err

    return function


def _takes_monitor(work) -> bool:
    return "monitor" in inspect.signature(work).parameters


SHORTEST_DOCK_PX = 140  # a dock shrinks to this and scrolls: four stacked fit 1366×768


class VerticalScroll(QScrollArea):
    """A scroll area as wide as its page and as short as :data:`SHORTEST_DOCK_PX`, so that
    docks fit a laptop screen (1366×768) and scroll instead of pushing the window past it."""

    def __init__(self, page: QWidget):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(page)

    def _with_bar(self, size: QSize) -> QSize:
        return QSize(size.width() + self.verticalScrollBar().sizeHint().width(), size.height())

    def minimumSizeHint(self) -> QSize:
        page = self._with_bar(self.widget().minimumSizeHint())
        return QSize(page.width(), min(page.height(), SHORTEST_DOCK_PX))

    def sizeHint(self) -> QSize:
        return self._with_bar(self.widget().sizeHint())


class TaskWidget(QWidget):
    """A dock widget that runs long operations through :meth:`launch`.

    Subclasses lay out :attr:`bar`, :attr:`status` and :attr:`cancel_button` where they like
    and list the controls to disable while busy with :meth:`while_busy`.
    """

    title = ""
    run_synchronously = False  # tests may run the work in the calling thread
    progress_reported = Signal(int, int, str)

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.monitor: Monitor | None = None
        self.worker = None
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status = text_label(selectable=True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running step; what is finished is kept")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_reported.connect(self._show_progress)
        self._busy_controls: list = []
        self.pickers: tuple = ()

    def page_layout(self) -> QVBoxLayout:
        """The dock's titled column, inside a :class:`VerticalScroll` that fills the dock."""
        page = QWidget()
        column = QVBoxLayout(page)
        column.addWidget(QLabel(f"<b>{self.title}</b>"))
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(VerticalScroll(page))
        return column

    def progress_panel(self) -> QWidget:
        """The progress bar with its Cancel button, and the status line below them."""
        panel = QWidget()
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.bar)
        row.addWidget(self.cancel_button)
        column.addLayout(row)
        column.addWidget(self.status)
        return panel

    def follow_layers(self, *pickers) -> None:
        """Keep the magicgui layer ``pickers`` (:func:`~._layers.layer_picker`) current: their
        choices are read again whenever a layer is added, removed or renamed, then
        ``_layers_changed(event)`` runs (also now, with ``event`` None)."""
        self.pickers = pickers
        layers = self.viewer.layers
        layers.events.inserted.connect(self._layer_list_changed)
        layers.events.removed.connect(self._layer_list_changed)
        for layer in layers:
            layer.events.name.connect(self._layer_list_changed)
        self._layer_list_changed()

    def _layer_list_changed(self, event=None) -> None:
        if event is not None and event.type in ("inserted", "removed"):
            names = event.value.events.name
            if event.type == "inserted":
                names.connect(self._layer_list_changed)
            else:
                names.disconnect(self._layer_list_changed)
        for picker in self.pickers:
            refresh_choices(picker)
        self._layers_changed(event)

    def _layers_changed(self, event=None) -> None:
        """After the pickers were refilled: follow their choices (widgets override this)."""

    # --- busy state ---------------------------------------------------------------------------

    def while_busy(self, *controls) -> None:
        """Controls (Qt or magicgui widgets) disabled while an operation runs."""
        self._busy_controls.extend(controls)

    @property
    def busy(self) -> bool:
        return self.monitor is not None

    def _set_busy(self, busy: bool) -> None:
        for control in self._busy_controls:
            qt(control).setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def cancel(self) -> None:
        if self.monitor is not None:
            self.monitor.cancel()
            self.status.setText("Cancelling…")

    def _show_progress(self, done: int, total: int, message: str) -> None:
        """A report: ``done`` of ``total`` on the bar, or (``total`` 0: a step of unknown
        length) the bar's moving busy indicator."""
        if self.monitor is None:  # a late report after the end
            return
        self.bar.setRange(0, total)
        self.bar.setValue(min(done, total))
        if message:
            self.status.setText(message)

    # --- running ------------------------------------------------------------------------------

    def launch(self, work, *args, done=None, each=None, failed=None, text: str = "") -> bool:
        """Run ``work(*args)`` (with ``monitor=`` if it takes one) in a thread worker (or here, with
        :attr:`run_synchronously`). A generator's items go to ``each(item)`` in the GUI thread;
        its result to ``done(result)``. An error goes to ``failed(err)`` (default: shown in the
        status line); cancellation to ``failed`` too, as :class:`Cancelled`. Returns False
        (and does nothing) while another operation runs."""
        if self.busy:
            return False
        self.monitor = Monitor(self.progress_reported.emit)
        self._set_busy(True)
        self.bar.setRange(0, 0)  # busy until the first report says how much there is
        self.status.setText(text or "Working…")
        handlers = (done, failed)
        guarded = _guarded(work)
        kwargs = {"monitor": self.monitor} if _takes_monitor(work) else {}
        if self.run_synchronously:
            try:
                result = guarded(*args, **kwargs)
                if inspect.isgenerator(result):
                    for item in result:
                        each(item)
                    result = None
            except Exception as err:  # everything reaches the dock, as from a worker
                self._errored(err, handlers)
                return True
            self._returned(result, handlers)
            return True
        from napari.qt.threading import create_worker

        connect = {
            "returned": lambda result: self._returned(result, handlers),
            "errored": lambda err: self._errored(err, handlers),
            "finished": self._worker_ended,
        }
        if inspect.isgeneratorfunction(work):
            connect["yielded"] = each
        self.worker = create_worker(guarded, *args, **kwargs, _connect=connect)
        return True

    def _end(self) -> None:
        self.monitor = None
        self.worker = None
        self._set_busy(False)

    def _returned(self, result, handlers) -> None:
        done, _ = handlers
        if self.bar.maximum() == 0:  # never told how much there was
            self.bar.setRange(0, 1)
        self.bar.setValue(self.bar.maximum())
        self._end()
        if done is not None:
            done(result)

    def _errored(self, err: Exception, handlers) -> None:
        _, failed = handlers
        if self.bar.maximum() == 0:  # stop the busy indicator, keep any progress shown
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
        self._end()
        if isinstance(err, UnexpectedError):
            log.error("".join(traceback.format_exception(err.__cause__ or err)))
        if failed is not None:
            failed(err)
        else:
            self.show_error(err)

    def _worker_ended(self) -> None:
        """The worker thread ended; if neither result nor error arrived, say so."""
        if self.monitor is not None:
            self._end()
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.status.setText("Stopped unexpectedly; see the console for details.")

    def show_error(self, err: Exception, prefix: str = "Failed") -> None:
        """``err`` in the status line: cancellation plainly, errors with what to do."""
        if isinstance(err, Cancelled):
            self.status.setText(f"Cancelled: {err}")
        elif isinstance(err, UnexpectedError):
            self.status.setText(f"{prefix} (unexpected error, details in the console): {err}")
        else:
            self.status.setText(f"{prefix}: {err}")
