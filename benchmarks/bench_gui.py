"""How responsive napari stays while the widgets work: the longest event-loop stall.

Drives each dock widget under (virtual) X with real thread workers, as a user would, while a
10-ms timer in the GUI thread records the gaps between its ticks: GAN training (incl. the FID
after each epoch; then resumed, modules already imported, and cancelled), synthetic
generation, model loading + segmentation, local thickness. Prints the longest stall of each
and, last, the overall figure (target ≤ 0.1 s), plus how long Cancel took to take effect
(target ≤ 2 s). napari's own share is measured in the same run: for each step, napari alone
(no plugin code, imports warm) adds the very layers that step added (same kinds, data, scale,
colour bars) in one callback, a thread worker's result handler as the plugin's, to a new
viewer that shows what the viewer showed before the step. What is left over, the plugin's
share of the stall, has the target ≤ 0.1 s for every step.

Pauses of Python's garbage collector (``gc.callbacks``; a full collection of this process's
large heap takes tenths of a second, in whichever thread it happens) are taken out of every
stall and reported apart: they fall at random, in the steps and in napari's replay, and are
neither's own work. The plugin's own GUI-thread work is also measured directly: the CPU time
of its handlers in the GUI thread (worker results and yields, progress reports, layer-list
follow-ups, the patch slider), less napari's ``add_*`` calls inside them; per step, the
longest such handler ("own").

Run: ``xvfb-run -a .venv/bin/python benchmarks/bench_gui.py``
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

TICK_MS = 10
TAIL_S = 0.3


class GcClock:
    """When the garbage collector ran (any thread: it holds the GIL throughout)."""

    def __init__(self):
        self.pauses: list[tuple[float, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, _info) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((self._started, time.perf_counter()))

    def within(self, start: float, end: float) -> float:
        """Seconds of collection between ``start`` and ``end``."""
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.pauses)

    def longest(self, start: float, end: float) -> float:
        """The longest single pause between ``start`` and ``end`` (s)."""
        return max((b - a for a, b in self.pauses if a >= start and b <= end), default=0.0)


class StallMeter:
    """Ticks every 10 ms in the GUI thread and keeps the longest gap between ticks, less the
    garbage collector's pauses inside it."""

    def __init__(self):
        self.timer = QTimer()
        self.timer.timeout.connect(self._tick)
        self.gc = GcClock()
        self.last = time.perf_counter()
        self.longest = 0.0
        self.gc_pause = 0.0  # the longest collection during the last measure

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = now - self.last - TICK_MS / 1000
        if gap > self.longest:
            self.longest = max(self.longest, gap - self.gc.within(self.last, now))
        self.last = now

    def measure(self, until, timeout: float = 900.0) -> float:
        """Process events until ``until()`` holds; the longest stall meanwhile (s), garbage
        collection left out (its longest pause in :attr:`gc_pause`)."""
        self.longest, self.last = 0.0, time.perf_counter()
        begun = self.last
        self.timer.start(TICK_MS)
        started = time.perf_counter()
        while not until():
            QApplication.processEvents()
            time.sleep(0.001)
            if time.perf_counter() - started > timeout:
                raise TimeoutError("the widget did not finish in time")
        # the callback that made ``until()`` true (e.g. adding the result layers) is only seen
        # by the next tick: keep ticking a little
        tail = time.perf_counter()
        while time.perf_counter() - tail < TAIL_S:
            QApplication.processEvents()
            time.sleep(0.001)
        self.timer.stop()
        self.gc_pause = self.gc.longest(begun, time.perf_counter())
        return self.longest


class OwnTime:
    """GUI-thread CPU time of the plugin's handlers (``thread_time``: waiting for the GIL a
    worker holds is not counted), less napari's ``add_*`` calls inside them; per step, the
    longest handler."""

    HANDLERS = ("_returned", "_errored", "_worker_ended", "_show_progress", "_layer_list_changed")

    def __init__(self):
        from napari.components import ViewerModel

        from napari_diffrendergan.widgets._base import TaskWidget
        from napari_diffrendergan.widgets._patches import PatchSelectionWidget

        self.step = ""
        self.longest: dict[str, float] = {}
        self._plugin = 0.0  # the plugin's exclusive CPU time so far
        self._children: list[float] = []  # per open call: time spent in the calls it made
        for name in self.HANDLERS:
            self._wrap(TaskWidget, name, plugin=True)
        self._wrap(PatchSelectionWidget, "_show_role", plugin=True)
        launch = TaskWidget.launch

        def launch_timed(widget, work, *args, each=None, **kwargs):
            timed = None if each is None else self._timed(each, plugin=True)
            return launch(widget, work, *args, each=timed, **kwargs)

        TaskWidget.launch = launch_timed
        for name in ("add_layer", "add_image", "add_labels", "add_shapes"):
            self._wrap(ViewerModel, name, plugin=False)

    def _wrap(self, owner, name: str, plugin: bool) -> None:
        setattr(owner, name, self._timed(getattr(owner, name), plugin))

    def _timed(self, function, plugin: bool):
        def timed(*args, **kwargs):
            before = self._plugin
            self._children.append(0.0)
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                children = self._children.pop()
                if plugin:
                    self._plugin += spent - children
                if self._children:
                    self._children[-1] += spent
                elif plugin:
                    own = self._plugin - before
                    self.longest[self.step] = max(self.longest.get(self.step, 0.0), own)

        return timed


def replayable(layer) -> tuple:
    """What napari needs to show ``layer`` again: its data tuple and whether its colour bar
    is on."""
    colour_bar = getattr(layer, "colorbar", None)
    return layer.as_layer_data_tuple(), bool(colour_bar is not None and colour_bar.visible)


def replay(viewer, layers: list[tuple]) -> None:
    """Add :func:`replayable` ``layers`` to ``viewer``, napari alone."""
    from napari.layers import Layer

    for data, colour_bar in layers:
        layer = viewer.add_layer(Layer.create(*data))
        if colour_bar:
            layer.colorbar.visible = True


class Steps:
    """Each step's longest stall and GC pause, the longest of the plugin's own handlers, the
    layers it added and those shown before it."""

    def __init__(self, meter: StallMeter):
        self.meter = meter
        self.own = OwnTime()
        self.stalls: dict[str, float] = {}
        self.gc_pauses: dict[str, float] = {}
        self.layers: dict[str, tuple[list, list]] = {}

    def measure(self, name: str, viewer, start, done) -> None:
        before = {id(layer) for layer in viewer.layers}
        shown = [replayable(layer) for layer in viewer.layers]
        self.own.step = name
        start()
        self.stalls[name] = self.meter.measure(done)
        self.gc_pauses[name] = self.meter.gc_pause
        self.own.step = ""
        added = [replayable(lay) for lay in viewer.layers if id(lay) not in before]
        self.layers[name] = (shown, added)

    def napari_floor(self, name: str) -> float:
        """napari alone adding the layers step ``name`` added, in one callback, to a new viewer
        showing what the step's viewer showed before it (s)."""
        import napari
        from napari.qt.threading import create_worker

        shown, added = self.layers[name]
        if not added:
            return 0.0
        viewer = napari.Viewer(show=True)
        replay(viewer, shown)
        self.meter.measure(lambda: True)  # let the viewer settle
        count = len(shown) + len(added)
        # from a worker's result, as the plugin adds them (a timer's callback would let the
        # meter tick between the adding and the first paint, splitting the stall in two)
        worker = create_worker(lambda: None, _connect={"returned": lambda _: replay(viewer, added)})
        floor = self.meter.measure(lambda: len(viewer.layers) == count)
        worker.quit()
        self.gc_pauses[name] = max(self.gc_pauses[name], self.meter.gc_pause)
        viewer.close()
        return floor


def main() -> None:
    import napari

    from conftest import blob_sample
    from napari_diffrendergan.analysis.thickness import synthetic_wires
    from napari_diffrendergan.data.dataset import NnunetDataset
    from napari_diffrendergan.segment.training import train_model

    viewer = napari.Viewer(show=True)
    meter = StallMeter()
    steps = Steps(meter)
    work = Path(tempfile.mkdtemp(prefix="bench_gui_"))

    def dock(name):
        return viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)[1]

    # patches from a blob scan, then the GAN: 2 epochs (FID after each), then a cancelled resume
    image, _, _ = blob_sample(0, (512, 512), 120)
    viewer.add_image(
        image, name="scan", scale=(7.0, 7.0), units="nm", metadata={"pixel_size_nm": 7.0}
    )
    patches = dock("Patch selection")
    patches.size.value = 128
    patches.stride.value = 128
    patches.role.value = "particle"
    steps.measure("patch cutting", viewer, patches.cut_button.click, patches.save_button.isEnabled)
    patches.folder.setText(str(work / "patches"))
    patches.save_button.click()
    meter.measure(lambda: "Saved" in patches.status.text())

    gan = dock("GAN training")
    gan.device.value = "cpu"
    gan.patches_path.setText(str(work / "patches"))
    gan.run_path.setText(str(work / "run"))
    gan.epochs.value = 2
    gan.iterations.setValue(8)
    steps.measure("GAN training + FID", viewer, gan.start_button.click, gan.start_button.isEnabled)
    print(f"GAN: {gan.status.text()}")
    gan.epochs.value = 4
    steps.measure(  # torch, Dr.Jit & co. imported by now (their first import, in the worker,
        "GAN resume (warm)",  # holds the GIL) and the set-up cached
        viewer,
        gan.resume_button.click,
        lambda: "iteration" in gan.status.text(),
    )
    asked = time.perf_counter()
    steps.measure("GAN cancel", viewer, gan.cancel_button.click, gan.start_button.isEnabled)
    cancel_seconds = time.perf_counter() - asked
    print(f"GAN cancel took effect after {cancel_seconds:.2f} s: {gan.status.text()}")

    synthetic = dock("Synthetic data")
    synthetic.device.value = "cpu"
    synthetic.run_path.setText(str(work / "run"))
    synthetic.run_path.editingFinished.emit()
    synthetic.count.value = 4
    steps.measure(
        "synthetic generation",
        viewer,
        synthetic.generate_button.click,
        synthetic.generate_button.isEnabled,
    )

    samples = [blob_sample(s) for s in range(6)]
    dataset = NnunetDataset(work / "Dataset001_Blobs").write(
        [s[0] for s in samples], [s[1] for s in samples], contour_thickness=1
    )
    train_model(dataset.folder, work / "model", iterations=20, device="cpu")
    segmentation = dock("Segmentation")
    segmentation.model_path.setText(str(work / "model"))
    segmentation.image_box.value = viewer.layers["scan"]
    steps.measure(  # loads the model, then segments
        "model loading + segmentation",
        viewer,
        segmentation.segment_button.click,
        segmentation.segment_button.isEnabled,
    )

    # a new sample, nanowires in pixels, in a new viewer: removing the Shapes layers of this one
    # (layers.clear()) crashes napari 0.9 in glDrawArrays on software GL (napari#8471, #6472)
    viewer.close()
    viewer = napari.Viewer(show=True)
    viewer.add_labels(
        synthetic_wires((2000, 2000), [12, 20, 30], seed=1).astype(np.uint8), name="wires"
    )
    thickness = dock("Thickness analysis")
    steps.measure(
        "local thickness", viewer, thickness.run_button.click, thickness.run_button.isEnabled
    )
    viewer.close()

    print(
        f"{'step':30s} {'stall':>6s} {'napari':>6s} {'plugin':>6s} {'own':>6s} {'gc':>6s}"
        "  (s; plugin = stall - napari, target 0.1)"
    )
    shares = {}
    for name, seconds in steps.stalls.items():
        floor = steps.napari_floor(name)
        shares[name] = max(0.0, seconds - floor)
        own = steps.own.longest.get(name, 0.0)
        print(
            f"{name:30s} {seconds:6.3f} {floor:6.3f} {shares[name]:6.3f} {own:6.3f} "
            f"{steps.gc_pauses[name]:6.3f}"
        )
    print(f"cancel: {cancel_seconds:.2f} s (target 2 s)")
    print(f"longest stall: {max(steps.stalls.values()):.3f} s")
    worst = max(shares, key=shares.get)
    print(f"largest plugin share: {shares[worst]:.3f} s ({worst})")


if __name__ == "__main__":
    main()
