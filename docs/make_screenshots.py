"""Render the dock widgets under a (virtual) display and save them to docs/images/.

Run: ``xvfb-run -a .venv/bin/python docs/make_screenshots.py [--model MODEL_FOLDER]``; with a
model, the Segmentation widget is shown segmenting the TiO2 SEM sample (set
DIFFRENDERGAN_TIO2_SEM_DIR to work offline).
"""

import argparse
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_diffrendergan.sample_data import rendered_sample
from napari_diffrendergan.thickness import synthetic_wires

IMAGES = Path(__file__).parent / "images"
WIDGETS = {
    "GAN training": "widget_gan_training.png",
    "Synthetic data": "widget_synthetic_data.png",
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of the dock widgets.")
    parser.add_argument("--model", help="nnU-Net model folder for the Segmentation widget")
    args = parser.parse_args()
    IMAGES.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1200, 800)
    for data, kwargs, kind in rendered_sample("tio2-sem"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.reset_view()
    for name, filename in WIDGETS.items():
        dock, _ = viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)
        QApplication.processEvents()
        viewer.screenshot(str(IMAGES / filename), canvas_only=False)
        viewer.window.remove_dock_widget(dock)
    patches_screenshot(viewer)
    thickness_dock = thickness_screenshot(viewer)
    viewer.window.remove_dock_widget(thickness_dock)
    segmentation_screenshot(viewer, args.model)
    viewer.close()


def segmentation_screenshot(viewer, model) -> None:
    """The Segmentation widget after segmenting the TiO2 SEM sample (or empty, without model)."""
    viewer.layers.clear()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    if model:
        viewer.open_sample("napari-diffrendergan", "tio2_sem")
        viewer.layers[-1].visible = False  # the manual masks
        widget.run_synchronously = True
        widget.model_path.setText(model)
        widget.load_model()
        widget.image_box.setCurrentText(viewer.layers[0].name)
        widget.segment_button.click()
        viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(IMAGES / "widget_segmentation.png"), canvas_only=False)


def patches_screenshot(viewer) -> None:
    """Patch selection on the TiO2 SEM sample: one region, patches cut and outlined."""
    viewer.layers.clear()
    viewer.open_sample("napari-diffrendergan", "tio2_sem")
    viewer.layers.remove(viewer.layers[-1])  # manual masks
    dock, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Patch selection")
    widget.draw_button.click()
    viewer.layers["regions"].add_rectangles([[[0, 0], [712, 1024]]])
    widget.cut_button.click()
    viewer.layers["regions"].visible = False
    viewer.layers[-1].visible = False  # the patch stack: show the outlines on the scan
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(IMAGES / "widget_patch_selection.png"), canvas_only=False)
    viewer.window.remove_dock_widget(dock)


def thickness_screenshot(viewer):
    """Thickness analysis of a test pattern of wires 6-20 px wide at 10 nm per pixel."""
    viewer.layers.clear()
    wires = synthetic_wires((512, 512), [6, 9, 12, 16, 20], seed=7, bend=0.4)
    viewer.add_labels(
        wires.astype("uint8"),
        name="wires",
        scale=(10, 10),
        metadata={"pixel_size_nm": 10.0},
        opacity=0.3,
    )
    dock, widget = viewer.window.add_plugin_dock_widget(
        "napari-diffrendergan", "Thickness analysis"
    )
    widget.run_synchronously = True
    widget.run_button.click()
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(IMAGES / "widget_thickness_analysis.png"), canvas_only=False)
    return dock


if __name__ == "__main__":
    main()
