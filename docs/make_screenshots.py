"""Render the dock widgets under a (virtual) display and save them to docs/images/.

Run: ``xvfb-run -a .venv/bin/python docs/make_screenshots.py``
"""

from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_diffrendergan.sample_data import rendered_sample

IMAGES = Path(__file__).parent / "images"
WIDGETS = {
    "Patch selection": "widget_patch_selection.png",
    "GAN training": "widget_gan_training.png",
    "Synthetic data": "widget_synthetic_data.png",
    "Segmentation": "widget_segmentation.png",
    "Thickness analysis": "widget_thickness_analysis.png",
}


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1200, 800)
    for data, kwargs, kind in rendered_sample("tio2-sem"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    for name, filename in WIDGETS.items():
        dock, _ = viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)
        QApplication.processEvents()
        viewer.screenshot(str(IMAGES / filename), canvas_only=False)
        viewer.window.remove_dock_widget(dock)
    viewer.close()


if __name__ == "__main__":
    main()
