"""Every dock widget with real thread workers: an error raised in the worker reaches the dock and
leaves the buttons usable; Cancel stops the work (superqt would swallow RuntimeErrors)."""

import json
import shutil

import numpy as np
import pytest

from conftest import blob_sample

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)
    return widget


def _cancel_at_first_report(widget):
    widget.progress_reported.connect(lambda *report: widget.cancel())


def _idle(widget, *buttons):
    return all(b.isEnabled() for b in buttons) and not widget.cancel_button.isEnabled()


def test_an_unexpected_error_in_a_worker_reaches_the_dock(make_napari_viewer, qtbot):
    from napari_diffrendergan.widgets._base import TaskWidget

    widget = TaskWidget(make_napari_viewer())
    qtbot.addWidget(widget)

    def broken(monitor):
        raise RuntimeError("a bug")  # superqt drops RuntimeErrors of generator workers

    def broken_generator(monitor):
        yield 1
        raise RuntimeError("a bug in a generator")

    for work in (broken, broken_generator):
        assert widget.launch(work, each=lambda item: None)
        assert not widget.launch(work)  # one operation at a time
        qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
        assert "unexpected error" in widget.status.text() and "RuntimeError: a bug" in (
            widget.status.text()
        )
        assert not widget.cancel_button.isEnabled()


def test_patch_selection_cancel(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(blob_sample(0, (600, 600), 60)[0], name="scan")
    widget = _dock(viewer, "Patch selection")
    widget.size.value = 32
    widget.stride.value = 2  # tens of thousands of tiles: long enough to cancel
    _cancel_at_first_report(widget)
    widget.cut_button.click()
    qtbot.waitUntil(lambda: _idle(widget, widget.cut_button), timeout=60_000)
    assert "Cancelled" in widget.status.text() and "scan patches" not in viewer.layers


def test_thickness_failure_and_cancel(make_napari_viewer, qtbot):
    from napari_diffrendergan.analysis.thickness import synthetic_wires

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 40), np.float32) + 1, name="flat")  # nothing above Otsu
    widget = _dock(viewer, "Thickness analysis")
    widget.layer_box.value = viewer.layers["flat"]
    widget.run_button.click()
    qtbot.waitUntil(lambda: _idle(widget, widget.run_button), timeout=30_000)
    assert "Cannot analyse flat" in widget.status.text()
    assert not any("thickness" in layer.name for layer in viewer.layers)

    viewer.add_labels(synthetic_wires((1500, 1500), [12, 20], seed=2).astype(np.uint8), name="w")
    assert widget.layer_box.current_choice == "w"  # the new mask is chosen, not the image
    _cancel_at_first_report(widget)
    widget.run_button.click()
    qtbot.waitUntil(lambda: _idle(widget, widget.run_button), timeout=60_000)
    assert "Cancelled" in widget.status.text() and not any(
        "thickness" in layer.name for layer in viewer.layers
    )


def test_segmentation_failure_and_cancel(
    make_napari_viewer, qtbot, tiny_model, blob_dataset, tmp_path
):
    viewer = make_napari_viewer()
    viewer.add_image(blob_sample(3)[0], name="scan")
    widget = _dock(viewer, "Segmentation")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "fold_all" / "checkpoint_final.pth").write_bytes(b"corrupt")
    widget.model_path.setText(str(broken))
    widget.segment_button.click()  # the model loads (and fails) in the worker
    qtbot.waitUntil(
        lambda: _idle(widget, widget.segment_button, widget.train_button), timeout=60_000
    )
    assert "Cannot segment" in widget.status.text() and "cannot load model" in (
        widget.status.text()
    )
    assert "scan particles" not in viewer.layers

    widget.model_path.setText(str(tmp_path / "new model"))
    widget.dataset_path.setText(str(blob_dataset))
    widget.iterations.value = 50
    _cancel_at_first_report(widget)
    widget.train_button.click()
    qtbot.waitUntil(
        lambda: _idle(widget, widget.segment_button, widget.train_button), timeout=60_000
    )
    assert "Cancelled" in widget.status.text() and "resume" in widget.status.text()
    assert not (tmp_path / "new model" / "model.json").exists()


def test_compare_failure_and_success_in_the_worker(make_napari_viewer, qtbot):
    from test_widgets import _disks

    viewer = make_napari_viewer()
    widget = _dock(viewer, "Segmentation")
    viewer.add_labels(np.stack([_disks((80, 80), [20, 24])] * 2), name="stack")  # not 2D
    viewer.add_labels(_disks((80, 80), [20, 22, 24, 26]), name="disks")
    widget.layer_a.value = viewer.layers["stack"]
    widget.layer_b.value = viewer.layers["disks"]
    widget.compare_button.click()  # fails in the thread worker: the message reaches the dock
    qtbot.waitUntil(lambda: _idle(widget, widget.compare_button), timeout=30_000)
    assert "Cannot compare: Labels layer “stack”" in widget.status.text()
    assert "must be 2D" in widget.status.text() and widget.comparison is None

    widget.layer_a.value = viewer.layers["disks"]
    widget.compare_button.click()
    qtbot.waitUntil(lambda: widget.comparison is not None, timeout=30_000)
    qtbot.waitUntil(lambda: _idle(widget, widget.compare_button), timeout=10_000)
    assert "includes 0" in widget.compare_text.text()


def test_synthetic_data_failure_and_cancel(make_napari_viewer, qtbot, tiny_run, tmp_path):
    viewer = make_napari_viewer()
    widget = _dock(viewer, "Synthetic data")
    widget.device.value = "cpu"
    dark = tmp_path / "dark run"
    shutil.copytree(tiny_run, dark)
    config = json.loads((dark / "config.json").read_text())
    config["contrast_threshold"] = 100.0  # no image can pass the contrast filter
    (dark / "config.json").write_text(json.dumps(config))
    widget.run_path.setText(str(dark))
    widget.count.value = 1
    widget.generate_button.click()
    qtbot.waitUntil(lambda: _idle(widget, widget.generate_button), timeout=120_000)
    assert "Generation failed" in widget.status.text()
    assert "contrast filter" in widget.status.text() and len(viewer.layers) == 0

    widget.run_path.setText(str(tiny_run))
    widget.count.value = 50
    _cancel_at_first_report(widget)
    widget.generate_button.click()
    qtbot.waitUntil(lambda: _idle(widget, widget.generate_button), timeout=120_000)
    assert "Cancelled" in widget.status.text()
