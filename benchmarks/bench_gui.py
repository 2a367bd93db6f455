"""How responsive napari stays while the widgets work: the longest event-loop stall.

Drives each dock widget under (virtual) X with real thread workers, as a user would, while a
10-ms timer in the GUI thread records the gaps between its ticks: GAN training (incl. the FID
after each epoch, and a Cancel), synthetic generation, model loading + segmentation, local
thickness. Prints the longest stall of each and, last, the overall figure (target ≤ 0.1 s), plus
how long Cancel took to take effect (target ≤ 2 s). As a floor measured in the same run, it also
times napari alone (no plugin) adding a first Image, Labels and Shapes layer to a new viewer.

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


def napari_floor(meter: StallMeter) -> dict[str, float]:
    """Stalls of napari alone adding a first layer of each kind to a new viewer (s).

    Measured last, with imports warm: the part of each step's stall no plugin code can remove.
    """
    import napari

    viewer = napari.Viewer(show=True)
    image = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    adders = {
        "Image": lambda: viewer.add_image(image, scale=(7.0, 7.0), units="nm"),
        "Labels": lambda: viewer.add_labels(
            (image > 0.5).astype(np.uint8), scale=(7.0, 7.0), units="nm"
        ),
        "Shapes": lambda: viewer.add_shapes(
            [np.array([[0, 0], [0, 900], [900, 900], [900, 0]])],
            shape_type="rectangle",
            scale=(7.0, 7.0),
            units="nm",
        ),
    }
    floor = {}
    for kind, add in adders.items():
        QTimer.singleShot(20, add)
        floor[kind] = meter.measure(
            lambda kind=kind: any(type(layer).__name__ == kind for layer in viewer.layers)
        )
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
    stalls: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="bench_gui_"))

    def dock(name):
        return viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)[1]

    # patches from a blob scan, then the GAN: 2 epochs (FID after each), then a cancelled resume
    image, _, _ = blob_sample(0, (512, 512), 120)
    viewer.add_image(
        image, name="scan", scale=(7.0, 7.0), units="nm", metadata={"pixel_size_nm": 7.0}
    )
    patches = dock("Patch selection")
    patches.size.setValue(128)
    patches.stride.setValue(128)
    patches.role.setCurrentText("particle")
    patches.cut_button.click()
    stalls["patch cutting"] = meter.measure(lambda: patches.save_button.isEnabled())
    patches.folder.setText(str(work / "patches"))
    patches.save_button.click()
    meter.measure(lambda: "Saved" in patches.status.text())

    gan = dock("GAN training")
    gan.device.setCurrentText("cpu")
    gan.patches_path.setText(str(work / "patches"))
    gan.run_path.setText(str(work / "run"))
    gan.epochs.setValue(2)
    gan.iterations.setValue(8)
    gan.start_button.click()
    stalls["GAN training + FID"] = meter.measure(lambda: gan.start_button.isEnabled())
    print(f"GAN: {gan.status.text()}")
    gan.epochs.setValue(4)
    gan.resume_button.click()
    meter.measure(lambda: "iteration" in gan.status.text())
    asked = time.perf_counter()
    gan.cancel_button.click()
    stalls["GAN cancel"] = meter.measure(lambda: gan.start_button.isEnabled())
    cancel_seconds = time.perf_counter() - asked
    print(f"GAN cancel took effect after {cancel_seconds:.2f} s: {gan.status.text()}")

    synthetic = dock("Synthetic data")
    synthetic.device.setCurrentText("cpu")
    synthetic.run_path.setText(str(work / "run"))
    synthetic.run_path.editingFinished.emit()
    synthetic.count.setValue(4)
    synthetic.generate_button.click()
    stalls["synthetic generation"] = meter.measure(lambda: synthetic.generate_button.isEnabled())

    samples = [blob_sample(s) for s in range(6)]
    dataset = NnunetDataset(work / "Dataset001_Blobs").write(
        [s[0] for s in samples], [s[1] for s in samples], contour_thickness=1
    )
    train_model(dataset.folder, work / "model", iterations=20, device="cpu")
    segmentation = dock("Segmentation")
    segmentation.model_path.setText(str(work / "model"))
    segmentation.image_box.setCurrentText("scan")
    segmentation.segment_button.click()  # loads the model, then segments
    stalls["model loading + segmentation"] = meter.measure(
        lambda: segmentation.segment_button.isEnabled()
    )

    # a new sample, nanowires in pixels, in a new viewer: removing the Shapes layers of this one
    # (layers.clear()) crashes napari 0.9 in glDrawArrays on software GL (napari#8471, #6472)
    viewer.close()
    viewer = napari.Viewer(show=True)
    viewer.add_labels(
        synthetic_wires((2000, 2000), [12, 20, 30], seed=1).astype(np.uint8), name="wires"
    )
    thickness = dock("Thickness analysis")
    thickness.run_button.click()
    stalls["local thickness"] = meter.measure(lambda: thickness.run_button.isEnabled())

    for name, seconds in stalls.items():
        print(f"{name:32s} longest stall {seconds:.3f} s")
    print(f"cancel: {cancel_seconds:.2f} s (target 2 s)")
    viewer.close()
    for kind, seconds in napari_floor(meter).items():
        print(f"napari alone, first {kind} layer  longest stall {seconds:.3f} s")
    print(f"longest stall: {max(stalls.values()):.3f} s")


if __name__ == "__main__":
    main()
