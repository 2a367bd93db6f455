import pytest

pytestmark = pytest.mark.gui

WIDGETS = [
    "Patch selection",
    "GAN training",
    "Synthetic data",
    "Segmentation",
    "Thickness analysis",
]


@pytest.mark.parametrize("name", WIDGETS)
def test_widget_opens_from_plugin_menu(make_napari_viewer, name):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)
    assert widget.title == name
    assert "Not available yet" in widget.status.text()


def test_plugin_menu_lists_all_widgets(make_napari_viewer):
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest("napari-diffrendergan")
    assert sorted(w.display_name for w in manifest.contributions.widgets) == sorted(WIDGETS)


def test_gan_widget_reports_compute_backend(make_napari_viewer):
    from napari_diffrendergan.backend import cuda_available

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "GAN training")
    widget.device.setCurrentText("cpu")
    assert "llvm_ad_mono" in widget.backend_label.text()
    if not cuda_available():
        widget.device.setCurrentText("cuda")
        assert "Unavailable" in widget.backend_label.text()


def test_sample_data_opens_in_viewer(make_napari_viewer, tio2_dir):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-diffrendergan", "tio2_sem")
    image, labels = viewer.layers
    assert image.data.shape == (712, 1024)
    assert tuple(image.scale) == tuple(labels.scale) == (7.34375, 7.34375)
    assert image.metadata["pixel_size_nm"] == 7.34375
