"""The user guide's story end to end in napari, as a first-time user plays it: a raw microscope
TIFF of their own (Zeiss pixel size in its metadata, a data bar at the bottom) goes through
Patch selection → GAN training → Synthetic data → Segmentation (training and segmenting) →
sizes, on a 1366×768 window, every step in a real thread worker, without an error or warning
notification and with the file's pixel size carried to the end."""

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]

LAPTOP = (1366, 768)
PIXEL_NM = 7.344  # what the file's Zeiss metadata says


def _raw_scan(path):
    """A 8-bit SEM-like scan of bright round particles with a data bar, as the microscope
    writes it (no sidecar: the pixel size is only in the Zeiss tag)."""
    from conftest import blob_sample
    from test_scans import with_bar, write_zeiss

    image, _, _ = blob_sample(3, (288, 320), 40)
    pixels = (image * 255).clip(0, 255).astype(np.uint8)
    write_zeiss(path, with_bar(pixels, 0.1))
    return path


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)
    widget.run_synchronously = False
    return widget


def _finish(qtbot, widget, button, until, timeout=300_000):
    """Press ``button``, wait for the worker to end, and for ``until`` (a status check)."""
    button.click()
    qtbot.waitUntil(lambda: widget.busy, timeout=10_000)
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)
    assert until(widget.status.text()), widget.status.text()


def test_a_raw_tiff_goes_from_patches_to_sizes(make_napari_viewer, qtbot, tmp_path):
    from napari.utils.notifications import NotificationSeverity, notification_manager

    heard = []
    notification_manager.notification_ready.connect(heard.append)
    scan_path = _raw_scan(tmp_path / "my_scan.tif")
    viewer = make_napari_viewer()
    viewer.window._qt_window.resize(*LAPTOP)
    viewer.open(str(scan_path))  # napari's own reader: the plugin does not claim raw TIFFs
    (scan,) = viewer.layers
    rows = scan.data.shape[0]

    patches = _dock(viewer, "Patch selection")
    assert abs(patches.pixel_size.nm() - PIXEL_NM) < 1e-6 and patches.data_bar.isChecked()
    bar_rows = rows - patches.data_bar.bar.kept_rows(rows)[1]
    patches.size.value = 64
    patches.stride.value = 32
    _finish(qtbot, patches, patches.cut_button, lambda t: "patches (" in t)
    patches.folder.setText(str(tmp_path / "patches"))
    _finish(qtbot, patches, patches.save_button, lambda t: "Saved" in t)
    saved = json.loads((tmp_path / "patches" / "patches.json").read_text())
    assert saved["pixel_size_nm"] == pytest.approx(PIXEL_NM)
    assert all(p["y"] + p["size"] <= rows - bar_rows for p in saved["patches"])

    gan = _dock(viewer, "GAN training")
    gan.device.value = "cpu"
    gan.patches_path.setText(str(tmp_path / "patches"))
    gan.run_path.setText(str(tmp_path / "run"))
    gan.spp.value, gan.epochs.value = 4, 1
    gan.iterations.setValue(3)
    gan.fid_images.setValue(4)
    _finish(qtbot, gan, gan.start_button, lambda t: "Failed" not in t and "failed" not in t)
    run = json.loads((tmp_path / "run" / "training.json").read_text())
    assert json.dumps(run).count(str(PIXEL_NM)[:5]) >= 1  # the run knows the file's pixel size

    synthetic = _dock(viewer, "Synthetic data")
    synthetic.device.value = "cpu"
    synthetic.run_path.setText(str(tmp_path / "run"))
    synthetic.run_path.editingFinished.emit()
    synthetic.count.value = 6
    _finish(qtbot, synthetic, synthetic.generate_button, lambda t: "failed" not in t.lower())
    synthetic.dataset_path.setText(str(tmp_path / "Dataset101_Synthetic"))
    synthetic.background_path.setText(str(tmp_path / "patches"))
    synthetic.export_button.click()
    qtbot.waitUntil(lambda: not synthetic.busy, timeout=120_000)
    assert "Exported" in synthetic.export_status.text(), synthetic.export_status.text()

    segmentation = _dock(viewer, "Segmentation")
    segmentation.dataset_path.setText(str(tmp_path / "Dataset101_Synthetic"))
    segmentation.model_path.setText(str(tmp_path / "model"))
    segmentation.iterations.value = 20
    segmentation.device.value = "cpu"
    _finish(qtbot, segmentation, segmentation.train_button, lambda t: "Trained" in t, 600_000)
    segmentation.image_box.value = viewer.layers[scan.name]
    assert abs(segmentation.pixel_size.nm() - PIXEL_NM) < 1e-6
    assert segmentation.data_bar.isChecked()
    _finish(qtbot, segmentation, segmentation.segment_button, lambda t: t.startswith("Added"))
    particles = viewer.layers[f"{scan.name} particles"]
    assert tuple(particles.scale) == pytest.approx((PIXEL_NM, PIXEL_NM))
    assert particles.metadata["pixel_size_nm"] == pytest.approx(PIXEL_NM)
    assert not particles.data[rows - bar_rows :].any()  # nothing found in the data bar
    assert "nm" in segmentation.stats.text()

    assert viewer.window._qt_window.minimumSizeHint().height() <= LAPTOP[1]
    loud = [n for n in heard if n.severity >= NotificationSeverity.WARNING]
    assert not loud, [n.message for n in loud]
