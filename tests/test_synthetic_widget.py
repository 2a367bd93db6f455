"""The Synthetic data dock widget, driven as a user would (synchronous mode, a tiny run)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

pytestmark = [pytest.mark.gui, pytest.mark.slow]

INTEGRITY = (
    "import sys\n"
    "from nnunetv2.experiment_planning.verify_dataset_integrity import "
    "verify_dataset_integrity\n"
    "if __name__ == '__main__':\n"
    "    verify_dataset_integrity(sys.argv[1], 1)\n    print('ok')\n"
)


def _widget(viewer, run=None):
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Synthetic data")
    widget.run_synchronously = True
    widget.device.value = "cpu"
    if run is not None:
        widget.run_path.setText(str(run))
        widget.run_path.editingFinished.emit()
    return widget


def test_generates_layers_and_exports_a_dataset(make_napari_viewer, tiny_run, tmp_path):
    from napari_diffrendergan.gan.synthesis import generate

    viewer = make_napari_viewer()
    scan = viewer.add_image(np.zeros((100, 120), np.float32), name="scan", scale=(7.0, 7.0))
    widget = _widget(viewer, tiny_run)
    assert [widget.epoch_box.itemText(i) for i in range(widget.epoch_box.count())] == [
        "best (1)",
        "1",
    ]
    # the contour width comes from the run's preset (tio2-sem: 2 px)
    assert widget.contour.value == 2 and "1 finished epoch" in widget.status.text()
    assert widget.dataset_path.text() == str(tiny_run.resolve().parent / "Dataset101_Synthetic")
    widget.export_button.click()
    assert "Generate pairs first" in widget.export_status.text()

    widget.count.value = 3
    widget.seed.value = 4
    widget.generate_button.click()
    images = viewer.layers["synthetic images"]
    instances = viewer.layers["synthetic instances"]
    masks = viewer.layers["synthetic masks"]
    assert images.data.shape == instances.data.shape == masks.data.shape == (3, 64, 64)
    assert images.data.dtype == np.float32
    assert instances.data.dtype == np.uint16 and masks.data.dtype == np.uint8
    assert set(np.unique(masks.data)) == {0, 1, 2}
    np.testing.assert_array_equal(instances.data > 0, masks.data > 0)
    for layer in (images, instances, masks):
        assert tuple(layer.scale) == (1.0, 7.0, 7.0) and layer.metadata["pixel_size_nm"] == 7.0
        assert [str(unit) for unit in layer.units] == ["pixel", "nanometer", "nanometer"]
        # all three together, beside the scan rather than over its corner
        assert tuple(layer.translate) == tuple(images.translate)
        assert layer.translate[-1] > scan.extent.world[1][-1]
        assert layer.metadata["epoch"] == 1 and layer.metadata["seed"] == 4
    rejected = sum(p.info["rejected"] for p in widget._pairs)
    assert f"3 pairs, {rejected} rejected by the contrast filter" in widget.status.text()
    assert widget.bar.value() == widget.bar.maximum() == 3
    assert widget.generate_button.isEnabled() and not widget.cancel_button.isEnabled()
    first = images.data.copy()

    dataset = tmp_path / "Dataset101_Synthetic"
    widget.dataset_path.setText(str(dataset))
    widget.background_path.setText(str(tmp_path))  # not a patch set
    widget.export_button.click()
    assert "no patches.json" in widget.export_status.text() and not dataset.exists()
    widget.background_path.setText(str(tiny_run.parent / "patches"))
    widget.n_background.value = 2
    widget.export_button.click()
    text = widget.export_status.text()
    assert "Exported 3 pairs" in text and "2 of 2 background patches" in text
    assert str(dataset.resolve()) in text
    meta = json.loads((dataset / "dataset.json").read_text())
    assert meta["numTraining"] == 5 and meta["labels"] == {
        "background": 0,
        "particle": 1,
        "contour": 2,
    }
    assert len(list((dataset / "imagesTr").iterdir())) == 5
    for image in (dataset / "imagesTr").iterdir():
        case = image.name.replace("_0000.tif", "")
        label = tifffile.imread(dataset / "labelsTr" / f"{case}.tif")
        assert label.shape == tifffile.imread(image).shape == (64, 64)
        if case.startswith("bg_"):
            assert not label.any()
    np.testing.assert_array_equal(
        tifffile.imread(dataset / "imagesTr" / "syn_00001_0000.tif"), first[1]
    )
    summary = json.loads((dataset / "generation.json").read_text())
    assert summary["synthetic_pairs"] == 3 and summary["seed"] == 4 and summary["epoch"] == 1
    assert summary["rejected"] == rejected and summary["background_patches"] == 2
    result = subprocess.run(
        [sys.executable, "-c", INTEGRITY, str(dataset)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr

    # the same files as the command line with the same run, seed and count
    generate(tiny_run, tmp_path / "cli", 3, seed=4, device="cpu")
    for name in ("syn_00000", "syn_00001", "syn_00002"):
        for file in (f"labelsTr/{name}.tif", f"instances/{name}.tif", f"imagesTr/{name}_0000.tif"):
            assert (dataset / file).read_bytes() == (tmp_path / "cli" / file).read_bytes()

    widget.export_button.click()  # the folder is not empty any more
    assert "is not empty" in widget.export_status.text()

    # the same seed again: the same images, the layers replaced (not added)
    widget.generate_button.click()
    assert len(viewer.layers) == 4  # the scan and the three synthetic layers
    np.testing.assert_allclose(viewer.layers["synthetic images"].data, first, rtol=0, atol=1e-6)
    widget.seed.value = 5
    widget.generate_button.click()
    assert not np.allclose(viewer.layers["synthetic images"].data, first)


def test_explains_missing_and_bad_runs(make_napari_viewer, tiny_run, tmp_path):
    from napari_diffrendergan.data.patches import Patch, PatchSet

    viewer = make_napari_viewer()
    widget = _widget(viewer)
    widget.generate_button.click()
    assert "Choose the run folder" in widget.status.text()
    widget.run_path.setText(str(tmp_path))
    widget.generate_button.click()
    assert "not a DiffRenderGAN run folder (no training.json)" in widget.status.text()
    assert widget.epoch_box.count() == 0 and len(viewer.layers) == 0

    widget.run_path.setText(str(tiny_run))
    assert widget.show_run()
    assert "Warning: images this small" in widget.status.text()  # 64-px patches
    widget.count.value = 2
    shown = widget._on_pair

    def cancel_after_first_pair(item):
        shown(item)
        if widget._pairs:
            assert widget.cancel_button.isEnabled() and not widget.generate_button.isEnabled()
            widget.cancel_button.click()

    widget._on_pair = cancel_after_first_pair
    widget.generate_button.click()
    assert "Cancelled after 1 of 2" in widget.status.text()
    assert viewer.layers["synthetic masks"].data.shape == (1, 64, 64)
    assert widget.generate_button.isEnabled() and not widget.cancel_button.isEnabled()

    particles = PatchSet.save(
        tmp_path / "particles",
        [Patch("x", 0, 0, 64, "particle", 0.0, 3)],
        [np.ones((64, 64))],
        7.0,
        {},
    ).folder
    widget.dataset_path.setText(str(tmp_path / "Dataset103_X"))
    widget.background_path.setText(str(particles))
    widget.export_button.click()
    assert "holds no background patches" in widget.export_status.text()
    assert not (tmp_path / "Dataset103_X").exists()
    widget.background_path.setText("")
    widget.export_button.click()
    assert "Exported 1 pair " in widget.export_status.text()
    assert "background" not in widget.export_status.text()


def test_generates_in_a_thread_worker(make_napari_viewer, qtbot, tiny_run, tmp_path):
    viewer = make_napari_viewer()
    widget = _widget(viewer, tiny_run)
    widget.run_synchronously = False
    widget.count.value = 2
    widget.generate_button.click()
    qtbot.waitUntil(lambda: "synthetic masks" in viewer.layers, timeout=120_000)
    assert "2 pairs" in widget.status.text() and widget.generate_button.isEnabled()
    widget.dataset_path.setText(str(tmp_path / "Dataset104_X"))
    widget.export_button.click()
    qtbot.waitUntil(lambda: "Exported" in widget.export_status.text(), timeout=60_000)
    assert (tmp_path / "Dataset104_X" / "generation.json").is_file()
