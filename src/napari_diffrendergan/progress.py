"""The one progress-and-cancel protocol of every long operation (core, CLI, widgets, Dask).

A long operation takes ``monitor: Monitor | None`` and calls :meth:`Monitor.report` after each
step and :meth:`Monitor.check` wherever stopping is safe; :meth:`Monitor.check` raises
:class:`~napari_diffrendergan.errors.Cancelled` once :meth:`Monitor.cancel` was called (from any
thread). The CLI turns reports into tqdm bars, the widgets into their progress bar and status
line; both cancel through the same token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import Cancelled

ProgressCallback = Callable[[int, int, str], None]


class Monitor:
    """Progress reports (``on_report(done, total, message)``) and a thread-safe cancel token."""

    def __init__(self, on_report: ProgressCallback | None = None, prefix: str = ""):
        self._on_report = on_report
        self._prefix = prefix
        self._cancelled = threading.Event()

    def report(self, done: int, total: int, message: str = "") -> None:
        """``done`` of ``total`` steps finished; ``message`` says what is happening."""
        if self._on_report is not None:
            self._on_report(int(done), int(total), self._prefix + message)

    def cancel(self) -> None:
        """Ask the operation to stop at its next :meth:`check`."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self, what: str = "cancelled") -> None:
        """Raise :class:`Cancelled` (with ``what`` as its message) once cancel was asked for."""
        if self._cancelled.is_set():
            raise Cancelled(what)

    def stage(self, name: str) -> Monitor:
        """A monitor for one stage of a larger job: same reports (prefixed ``name: ``) and the
        same cancel token."""
        child = Monitor(self._on_report, f"{self._prefix}{name}: ")
        child._cancelled = self._cancelled
        return child

    def silent(self) -> Monitor:
        """The same cancel token without reports: for work inside a step that the caller
        reports as a whole (the bar must not run backwards)."""
        child = Monitor()
        child._cancelled = self._cancelled
        return child


def ensure(monitor: Monitor | None) -> Monitor:
    """``monitor``, or a silent one that is never cancelled."""
    return monitor if monitor is not None else Monitor()


def duration(seconds: float) -> str:
    """A time span as people read it: "40 s", "12 min", "1 h 05 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"
