"""Render the dock widgets under a (virtual) display and save them to docs/images/.

Run: ``xvfb-run -a .venv/bin/python docs/make_screenshots.py [--model MODEL_FOLDER]
[--only NAME]``; with a model, the Segmentation widget is shown segmenting the TiO2 SEM sample
(set DIFFRENDERGAN_TIO2_SEM_DIR to work offline). GAN training trains a tiny run on 64-px
patches of that sample (a few minutes on a laptop CPU); ``--only gan`` renders just that one.
Synthetic data generates four pairs from that run (``--only synthetic`` trains a one-epoch run
for it).
"""

import argparse
import tempfile
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_diffrendergan.analysis.thickness import synthetic_wires

IMAGES = Path(__file__).parent / "images"
ONLY = ("scene_prior", "patches", "thickness", "segmentation", "gan", "synthetic")


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of the dock widgets.")
    parser.add_argument("--model", help="nnU-Net model folder for the Segmentation widget")
    parser.add_argument("--only", choices=ONLY, help="render just this widget's screenshot")
    args = parser.parse_args()
    wanted = [args.only] if args.only else list(ONLY)
    IMAGES.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1200, 800)
    if "scene_prior" in wanted:
        scene_prior_screenshot(viewer)
    if "patches" in wanted:
        patches_screenshot(viewer)
    if "thickness" in wanted:
        viewer.window.remove_dock_widget(thickness_screenshot(viewer))
    run = None
    if "gan" in wanted:
        dock, run = gan_screenshot(viewer)
        viewer.window.remove_dock_widget(dock)
    if "synthetic" in wanted:
        if run is None:
            dock, run = train_tiny_run(viewer, epochs=1)
            viewer.window.remove_dock_widget(dock)
        viewer.window.remove_dock_widget(synthetic_screenshot(viewer, run))
    if "segmentation" in wanted:
        segmentation_screenshot(viewer, args.model)
    viewer.close()


def open_scan(viewer) -> None:
    """The TiO2 SEM sample's scan alone in the viewer (its manual masks left out)."""
    viewer.layers.clear()
    viewer.open_sample("napari-diffrendergan", "tio2_sem")
    viewer.layers.remove(viewer.layers[-1])  # manual masks


def train_tiny_run(viewer, epochs: int = 3):
    """Train a tiny run (``epochs`` × 3 iterations) on 64-px TiO2 SEM patches with the Patch
    selection and GAN training widgets; returns the GAN dock and the run folder."""
    open_scan(viewer)
    dock, patches = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Patch selection")
    patches.run_synchronously = True
    patches.draw_button.click()
    viewer.layers["regions"].add_rectangles([[[0, 0], [256, 384]]])
    patches.size.value = 64
    patches.stride.value = 64
    patches.role.value = "particle"  # 64 px hold too few whole particles for "auto"
    patches.cut_button.click()
    work = Path(tempfile.mkdtemp(prefix="diffrendergan-screenshot-"))
    patches.folder.setText(str(work / "patches"))
    patches.save_button.click()
    viewer.window.remove_dock_widget(dock)
    stack = next(lay for lay in viewer.layers if lay.name.endswith(" patches"))
    dock, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "GAN training")
    widget.run_synchronously = True
    widget.patch_layer_box.value = stack
    widget.device.value = "cpu"
    widget.spp.value = 4
    widget.epochs.value = epochs
    widget.iterations.setValue(3)
    widget.fid_images.setValue(8)
    widget.run_path.setText(str(work / "run"))
    widget.start_button.click()
    return dock, work / "run"


def gan_screenshot(viewer):
    """GAN training after a tiny run (3 epochs × 3 iterations) on 64-px TiO2 SEM patches."""
    dock, run = train_tiny_run(viewer)
    for layer in [lay for lay in viewer.layers if lay.name != "GAN preview"]:
        viewer.layers.remove(layer)
    QApplication.processEvents()  # let the canvas take its size before fitting the view
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(IMAGES / "widget_gan_training.png"), canvas_only=False)
    return dock, run


def synthetic_screenshot(viewer, run):
    """Synthetic data: four pairs generated from the tiny run, masks over the images."""
    viewer.layers.clear()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Synthetic data")
    widget.run_synchronously = True
    widget.device.value = "cpu"
    widget.run_path.setText(str(run))
    widget.show_run()
    widget.count.value = 4
    widget.generate_button.click()
    QApplication.processEvents()  # let the canvas take its size before fitting the view
    viewer.dims.set_current_step(0, 0)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(IMAGES / "widget_synthetic_data.png"), canvas_only=False)
    return dock


def segmentation_screenshot(viewer, model) -> None:
    """The Segmentation widget after segmenting the TiO2 SEM sample, on its Compare tab: the
    particles' size distribution (B) against the manual labels' (A); empty without a model."""
    viewer.layers.clear()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    if model:
        viewer.open_sample("napari-diffrendergan", "tio2_sem")
        manual = viewer.layers[-1]
        manual.visible = False
        widget.run_synchronously = True
        widget.model_path.setText(model)
        widget.load_model()
        widget.image_box.value = viewer.layers[0]
        widget.segment_button.click()
        widget.layer_a.value = manual
        widget.layer_b.value = viewer.layers[f"{viewer.layers[0].name} particles"]
        widget.compare_button.click()
        widget.results.setCurrentIndex(widget.results.count() - 1)  # Compare
        viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(IMAGES / "widget_segmentation.png"), canvas_only=False)


def scene_prior_screenshot(viewer) -> None:
    """Scene prior calibrated on the TiO2 SEM sample: the estimates in the dock, the rendered
    preview beside the scan."""
    open_scan(viewer)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Scene prior")
    widget.run_synchronously = True
    widget.calibrate_button.click()
    widget.tabs.setCurrentIndex(0)  # Estimates
    QApplication.processEvents()  # let the canvas take its size before fitting the view
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(IMAGES / "widget_scene_prior.png"), canvas_only=False)
    viewer.window.remove_dock_widget(dock)


def patches_screenshot(viewer) -> None:
    """Patch selection on the TiO2 SEM sample: one region, patches cut and outlined."""
    open_scan(viewer)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Patch selection")
    widget.run_synchronously = True
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
