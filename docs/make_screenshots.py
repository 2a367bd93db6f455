"""Render the dock widgets under a (virtual) display and save them to docs/images/.

Run: ``xvfb-run -a .venv/bin/python docs/make_screenshots.py``
"""

from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_diffrendergan.sample_data import rendered_sample
from napari_diffrendergan.thickness import synthetic_wires

IMAGES = Path(__file__).parent / "images"
WIDGETS = {
    "Patch selection": "widget_patch_selection.png",
    "GAN training": "widget_gan_training.png",
    "Synthetic data": "widget_synthetic_data.png",
    "Segmentation": "widget_segmentation.png",
}


def main() -> None:
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
    thickness_screenshot(viewer)
    viewer.close()


def thickness_screenshot(viewer) -> None:
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


if __name__ == "__main__":
    main()
