"""How responsive napari stays while the widgets work: the longest event-loop stall.

Drives each dock widget under (virtual) X with real thread workers, as a user would, while a
10-ms timer in the GUI thread records the gaps between its ticks: GAN training (incl. the FID
after each epoch, and a Cancel), synthetic generation, model loading + segmentation, local
thickness. Prints the longest stall of each and, last, the overall figure (target ≤ 0.1 s), plus
how long Cancel took to take effect (target ≤ 2 s). napari's own share is measured in the same
run: for each step, napari alone (no plugin code, imports warm) adds the very layers that step
added (same kinds, data, scale) in one callback to a new viewer that shows what the viewer showed
before the step. What is left over, the plugin's own share of the stall, has the target
≤ 0.1 s for every step.

Run: ``xvfb-run -a .venv/bin/python benchmarks/bench_gui.py``
"""

from __future__ import annotations

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


class StallMeter:
    """Ticks every 10 ms in the GUI thread and keeps the longest gap between ticks."""

    def __init__(self):
        self.timer = QTimer()
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.longest = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last - TICK_MS / 1000)
        self.last = now

    def measure(self, until, timeout: float = 900.0) -> float:
        """Process events until ``until()`` holds; the longest stall meanwhile (s)."""
        self.longest, self.last = 0.0, time.perf_counter()
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
        return self.longest


class Steps:
    """Each step's longest stall, the layers it added and those shown before it."""

    def __init__(self, meter: StallMeter):
        self.meter = meter
        self.stalls: dict[str, float] = {}
        self.layers: dict[str, tuple[list, list]] = {}

    def measure(self, name: str, viewer, start, done) -> None:
        before = {id(layer) for layer in viewer.layers}
        shown = [layer.as_layer_data_tuple() for layer in viewer.layers]
        start()
        self.stalls[name] = self.meter.measure(done)
        added = [lay.as_layer_data_tuple() for lay in viewer.layers if id(lay) not in before]
        self.layers[name] = (shown, added)

    def napari_floor(self, name: str) -> float:
        """napari alone adding the layers step ``name`` added, in one callback, to a new viewer
        showing what the step's viewer showed before it (s)."""
        import napari
        from napari.layers import Layer

        shown, added = self.layers[name]
        if not added:
            return 0.0
        viewer = napari.Viewer(show=True)
        for layer in shown:
            viewer.add_layer(Layer.create(*layer))
        self.meter.measure(lambda: True)  # let the viewer settle
        count = len(shown) + len(added)
        QTimer.singleShot(20, lambda: [viewer.add_layer(Layer.create(*t)) for t in added])
        floor = self.meter.measure(lambda: len(viewer.layers) == count)
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
    gan.resume_button.click()
    meter.measure(lambda: "iteration" in gan.status.text())
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

    print(f"{'step':32s} {'stall':>8s} {'napari':>8s} {'plugin':>8s}  (s; plugin target 0.1)")
    shares = {}
    for name, seconds in steps.stalls.items():
        floor = steps.napari_floor(name)
        shares[name] = max(0.0, seconds - floor)
        print(f"{name:32s} {seconds:8.3f} {floor:8.3f} {shares[name]:8.3f}")
    print(f"cancel: {cancel_seconds:.2f} s (target 2 s)")
    print(f"longest stall: {max(steps.stalls.values()):.3f} s")
    worst = max(shares, key=shares.get)
    print(f"largest plugin share: {shares[worst]:.3f} s ({worst})")


if __name__ == "__main__":
    main()
