"""The GAN training dock widget, driven as a user would (synchronous mode, tiny runs)."""

import json

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _tiny_patch_set(folder):
    """64-px particle patches of a 200×200 image of bright disks, 5 nm per pixel."""
    from conftest import blob_sample
    from napari_diffrendergan.data.patches import PatchSet, cut_patches

    image, _, _ = blob_sample(0, (200, 200), 30)
    patches, pixels, _ = cut_patches(image, "blobs", None, 64, 64, "particle")
    return PatchSet.save(folder, patches, pixels, 5.0, {"size": 64}).folder


def _gan_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "GAN training")
    widget.run_synchronously = True
    widget.device.value = "cpu"
    widget.spp.value = 4
    widget.iterations.setValue(3)
    # keep FID and histograms cheap
    widget.fid_images.setValue(4)
    return widget


def test_gan_widget_trains_resumes_and_picks_best_epoch(make_napari_viewer, tmp_path, monkeypatch):
    from napari_diffrendergan.gan import training

    patch_set = _tiny_patch_set(tmp_path / "patches")
    viewer = make_napari_viewer()
    widget = _gan_widget(viewer)
    widget.patches_path.setText(str(patch_set))
    widget.epochs.value = 2
    run = tmp_path / "run"
    widget.run_path.setText(str(run))
    widget.start_button.click()

    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1, 2]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch_000.pt",  # the untrained generator, scored as epoch 0
        "epoch_001.pt",
        "epoch_002.pt",
    ]
    preview = viewer.layers["GAN preview"]
    assert preview.data.shape == (64, 64)
    assert tuple(preview.scale) == (5.0, 5.0) and preview.metadata["pixel_size_nm"] == 5.0
    assert [str(unit) for unit in preview.units] == ["nanometer", "nanometer"]
    fid_line = widget.figure.axes[0].lines[0]
    assert list(fid_line.get_xdata()) == [0, 1, 2]
    assert len(widget.figure.axes) == 1 + 8  # FID + one histogram per learned parameter
    assert widget.best_epoch.value() == metrics["best_epoch"] in (1, 2)
    assert "Finished (all epochs done): 2 epochs" in widget.status.text()
    assert widget.bar.value() == widget.bar.maximum() == 6
    assert str(run.resolve()) in widget.run_label.text()
    assert widget.start_button.isEnabled() and not widget.cancel_button.isEnabled()

    widget.best_epoch.setValue(1)
    widget.best_button.click()
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] == 1
    assert "chosen" in widget.best_label.text()

    widget.start_button.click()  # the folder already holds a run
    assert "already holds a run" in widget.status.text()

    widget.epochs.value = 5
    widget.patience.setValue(1)  # the FID gets worse: stops after one epoch
    monkeypatch.setattr(training._FID, "__call__", lambda self, images, monitor: 999.0)
    widget.resume_button.click()
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1, 2, 3]
    assert "Finished (no FID improvement for" in widget.status.text()
    assert metrics["best_epoch"] == 1  # the override survives resuming
    assert (run / "checkpoints" / "epoch_003.pt").is_file()
    assert viewer.layers["GAN preview"].metadata["epoch"] == 3
    assert list(widget.figure.axes[0].lines[0].get_xdata()) == [0, 1, 2, 3]


def test_gan_widget_cancel_stops_between_iterations(make_napari_viewer, tmp_path):
    patch_set = _tiny_patch_set(tmp_path / "patches")
    viewer = make_napari_viewer()
    widget = _gan_widget(viewer)
    widget.patches_path.setText(str(patch_set))
    widget.run_path.setText(str(tmp_path / "run"))
    shown = widget._on_event

    def cancel_at_first_iteration(item):
        shown(item)
        if item[0].kind == "iteration":
            assert widget.cancel_button.isEnabled() and not widget.start_button.isEnabled()
            widget.cancel_button.click()

    widget._on_event = cancel_at_first_iteration
    widget.start_button.click()
    assert widget.bar.value() == 1 and widget.bar.maximum() == widget.epochs.value * 3
    assert "Cancelled: 0 finished epochs kept" in widget.status.text()
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["epoch_000.pt"]  # the untrained generator only: epoch 1 not kept
    assert widget.resume_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_gan_widget_takes_saved_patch_layer(make_napari_viewer, tmp_path):
    from conftest import blob_sample

    viewer = make_napari_viewer()
    image, _, _ = blob_sample(0, (200, 200), 30)
    viewer.add_image(image, name="blobs", scale=(5, 5), metadata={"pixel_size_nm": 5.0})
    _, patches = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Patch selection")
    patches.run_synchronously = True
    patches.size.value = 64
    patches.stride.value = 64
    patches.role.value = "particle"
    patches.cut_button.click()
    widget = _gan_widget(viewer)
    widget.patch_layer_box.value = viewer.layers["blobs patches"]
    widget.run_path.setText(str(tmp_path / "run"))
    widget.start_button.click()  # not saved yet
    assert "not saved yet" in widget.status.text()
    assert not (tmp_path / "run").exists()
    patches.folder.setText(str(tmp_path / "set"))
    patches.save_button.click()
    assert viewer.layers["blobs patches"].metadata["patch_set"] == str(tmp_path / "set")
    widget.patch_layer_box.value = viewer.layers["blobs patches"]
    assert widget._patch_folder() == str(tmp_path / "set")
    assert widget.patches_path.text() == str(tmp_path / "set")


def test_gan_widget_explains_bad_patch_folder(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget = _gan_widget(viewer)
    widget.patches_path.setText(str(tmp_path / "nothing here"))
    widget.run_path.setText(str(tmp_path / "run"))
    widget.start_button.click()
    assert "Training failed" in widget.status.text()
    assert "is not a patch set" in widget.status.text()
    assert not (tmp_path / "run").exists() and "GAN preview" not in viewer.layers
    assert widget.start_button.isEnabled() and not widget.cancel_button.isEnabled()
    widget.resume_button.click()
    assert "holds no run" in widget.status.text()


def test_gan_widget_trains_in_a_thread_worker(make_napari_viewer, qtbot, tmp_path):
    patch_set = _tiny_patch_set(tmp_path / "patches")
    viewer = make_napari_viewer()
    widget = _gan_widget(viewer)
    widget.run_synchronously = False
    widget.run_path.setText(str(tmp_path / "run"))
    widget.patches_path.setText(str(tmp_path / "missing"))
    widget.start_button.click()
    qtbot.waitUntil(lambda: "Training failed" in widget.status.text(), timeout=30_000)
    assert "is not a patch set" in widget.status.text()
    widget.patches_path.setText(str(patch_set))
    widget.start_button.click()
    qtbot.waitUntil(lambda: "iteration" in widget.status.text(), timeout=120_000)
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.start_button.isEnabled(), timeout=60_000)
    assert "Cancelled" in widget.status.text()


def test_gan_widget_shows_setup_stages_and_time_left_and_resumes_without_setup(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_diffrendergan.gan.training import SETUP_STAGES

    patch_set = _tiny_patch_set(tmp_path / "patches")
    viewer = make_napari_viewer()
    widget = _gan_widget(viewer)
    widget.run_synchronously = False
    assert "no epochs yet" in widget.figure.axes[0].texts[0].get_text()
    widget.patches_path.setText(str(patch_set))
    widget.run_path.setText(str(tmp_path / "run"))
    widget.epochs.value = 1
    shown = []  # the bar and the status line after every progress report

    def look(*report):
        shown.append((widget.bar.maximum(), widget.bar.value(), widget.status.text()))

    widget.progress_reported.connect(look)

    def train(button, timeout=300_000):
        shown.clear()
        button.click()
        qtbot.waitUntil(lambda: widget.start_button.isEnabled(), timeout=timeout)

    train(widget.start_button)
    stages = {}
    for maximum, value, status in shown:
        if status.startswith("set-up "):
            stages.setdefault(status.split(": ")[0], []).append((maximum, value))
    assert list(stages) == [f"set-up {i + 1}/4, {name}" for i, name in enumerate(SETUP_STAGES)]
    assert stages["set-up 1/4, building the scene"][0] == (0, 0)  # a moving bar
    for progress in stages.values():
        assert [value for _, value in progress] == sorted(value for _, value in progress)
    assert any(status.endswith(" left") for _, _, status in shown)  # time left, once known
    ax = widget.figure.axes[0]
    assert any(line.get_label().startswith("real vs real (floor)") for line in ax.lines)
    assert "particle.base_color [" not in widget.plot.toolTip()  # unitless: no brackets
    assert "noise [of full scale]: σ of the detector's Gaussian noise" in widget.plot.toolTip()

    # Cancel in the next epoch, then Resume: the set-up of the first training is reused
    widget.epochs.value = 2
    shown.clear()
    widget.resume_button.click()
    qtbot.waitUntil(lambda: "epoch 2/2, iteration" in widget.status.text(), timeout=120_000)
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.resume_button.isEnabled(), timeout=60_000)
    assert "Cancelled" in widget.status.text()
    train(widget.resume_button)
    assert "Finished (all epochs done): 2 epochs" in widget.status.text()
    assert not [s for _, _, s in shown if s.startswith("set-up ")]
    assert "reusing the set-up" in shown[0][2]
