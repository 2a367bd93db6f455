from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

WIDGETS = [  # in the menu in the order of the pipeline
    "Scene prior",
    "Patch selection",
    "GAN training",
    "Synthetic data",
    "Segmentation",
    "Thickness analysis",
]


@pytest.mark.parametrize("name", WIDGETS)
def test_widget_opens_from_plugin_menu(make_napari_viewer, name):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)
    assert widget.title == name


def test_plugin_menu_lists_all_widgets(make_napari_viewer):
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest("napari-diffrendergan")
    assert [w.display_name for w in manifest.contributions.widgets] == WIDGETS


def test_gan_widget_reports_compute_backend(make_napari_viewer):
    from napari_diffrendergan.backend import cuda_available

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "GAN training")
    widget.device.value = "cpu"
    assert "llvm_ad_mono" in widget.backend_label.text()
    if not cuda_available():
        widget.device.value = "cuda"
        assert "Unavailable" in widget.backend_label.text()


def test_layer_pickers_follow_the_layer_list(make_napari_viewer):
    """Every picker reads the layer list again on add, rename and remove; a removed layer that
    was chosen is not kept, and the pixel size follows the layer chosen instead."""
    import numpy as np

    viewer = make_napari_viewer()
    first = viewer.add_image(np.zeros((20, 20)), name="first", metadata={"pixel_size_nm": 2.0})
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    assert widget.image_box.choices == (first,) and widget.region_box.choices == (None,)
    second = viewer.add_image(np.zeros((20, 20)), name="second", metadata={"pixel_size_nm": 3.0})
    regions = viewer.add_shapes(name="regions")
    labels = viewer.add_labels(np.zeros((20, 20), np.uint8), name="labels")
    assert widget.image_box.choices == (first, second)
    assert widget.region_box.choices == (None, regions) and widget.layer_a.choices == (labels,)
    widget.image_box.value, widget.region_box.value = second, regions
    assert widget.pixel_size.nm() == 3.0

    second.name = "renamed"
    assert widget.image_box.current_choice == "renamed" and widget.image_box.value is second
    assert "second" not in [widget.image_box.native.itemText(i) for i in range(2)]

    viewer.layers.remove(second)
    viewer.layers.remove(regions)
    assert widget.image_box.choices == (first,) and widget.image_box.value is first
    assert widget.region_box.value is None and widget.pixel_size.nm() == 2.0
    viewer.layers.remove(labels)
    assert widget.layer_a.choices == () and widget.layer_a.value is None
    second.name = "gone"  # a removed layer no longer reaches the widget
    assert widget.image_box.choices == (first,)


def test_sample_data_opens_in_viewer(make_napari_viewer, tio2_dir):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-diffrendergan", "tio2_sem")
    image, labels = viewer.layers
    assert image.data.shape == (712, 1024)
    assert tuple(image.scale) == tuple(labels.scale) == (7.34375, 7.34375)
    assert image.metadata["pixel_size_nm"] == 7.34375


def test_thickness_widget_makes_heatmap_plot_and_csv(make_napari_viewer, tmp_path):
    import csv

    import numpy as np

    from napari_diffrendergan.analysis.thickness import synthetic_wires

    viewer = make_napari_viewer()
    mask = synthetic_wires((160, 200), [8, 14], seed=4, bend=0.3).astype(np.uint8)
    viewer.add_labels(
        mask, name="wires", scale=(10, 10), translate=(5, 7), metadata={"pixel_size_nm": 10.0}
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Thickness analysis")
    widget.run_synchronously = True
    assert widget.layer_box.current_choice == "wires"
    assert widget.pixel_size.value() == 10.0
    widget.run_button.click()
    heatmap = viewer.layers["wires thickness (nm)"]
    assert heatmap.data.dtype == np.float32 and heatmap.data.shape == mask.shape
    assert tuple(heatmap.scale) == (10, 10) and tuple(heatmap.translate) == (5, 7)
    assert (heatmap.data[mask == 0] == 0).all()
    assert 70 <= np.median(heatmap.data[mask > 0]) <= 150  # nm: wires 8 and 14 px at 10 nm
    assert heatmap.metadata["unit"] == "nm"
    assert len(widget.figure.axes[0].patches) > 0  # histogram bars drawn
    assert "wire component" in widget.stats.text() and "nm" in widget.stats.text()
    per_wire, distribution = widget.export_csv(tmp_path / "wires.csv")
    rows = list(csv.DictReader(Path(per_wire).read_text().splitlines()))
    assert len(rows) == heatmap.metadata["summary"]["n_wires"]
    assert float(rows[0]["median_thickness_nm"]) > 0
    histogram = csv.DictReader(Path(distribution).read_text().splitlines())
    assert sum(int(r["skeleton_pixels"]) for r in histogram) > 0
    assert heatmap.metadata["summary"]["method"] == "exact"
    widget.method.value = "localthickness"
    widget.run_button.click()
    assert heatmap.metadata["summary"]["method"] == "localthickness"
    assert 70 <= np.median(heatmap.data[mask > 0]) <= 150


def test_thickness_widget_thresholds_dark_wires_of_an_image(make_napari_viewer):
    import numpy as np

    from napari_diffrendergan.analysis.thickness import synthetic_wires

    viewer = make_napari_viewer()
    wires = synthetic_wires((160, 200), [8, 14], seed=4, bend=0.3)
    noise = np.random.default_rng(0).normal(0, 0.03, wires.shape)
    viewer.add_image((0.8 - 0.5 * wires + noise).astype(np.float32), name="dark wires")
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Thickness analysis")
    widget.run_synchronously = True
    widget.layer_box.value = viewer.layers["dark wires"]
    widget.run_button.click()
    heatmap = viewer.layers["dark wires thickness (px)"].data
    assert ((heatmap > 0) == wires).mean() > 0.98  # the wires, not the background around them
    assert 4 <= np.median(heatmap[wires]) <= 15


def test_thickness_widget_explains_bad_input(make_napari_viewer):
    import numpy as np

    from napari_diffrendergan.analysis.thickness import synthetic_wires

    viewer = make_napari_viewer()
    viewer.add_labels(synthetic_wires((120, 120), [8], seed=1).astype(np.uint8), name="wires")
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Thickness analysis")
    widget.run_synchronously = True
    widget.run_button.click()
    assert widget.figure.axes and widget.export_button.isEnabled()
    viewer.add_labels(np.zeros((50, 50), np.uint8), name="empty")
    widget.layer_box.value = viewer.layers["empty"]
    widget.run_button.click()
    assert "empty" in widget.status.text()
    assert not any("empty thickness" in layer.name for layer in viewer.layers)
    # nothing of the wires is left on show as if it were the empty layer's
    assert not widget.figure.axes and widget.stats.text() == ""
    assert not widget.export_button.isEnabled()


def test_thickness_widget_warns_of_a_noise_mask(make_napari_viewer):
    import numpy as np

    viewer = make_napari_viewer()
    noise = np.random.default_rng(0).random((300, 300)).astype(np.float32)
    viewer.add_image(noise, name="noise")
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Thickness analysis")
    widget.run_synchronously = True
    widget.run_button.click()
    assert "looks like noise" in widget.stats.text(), widget.stats.text()


def test_segmentation_widget_segments_open_image(make_napari_viewer, tiny_model, tmp_path):
    import numpy as np

    from conftest import blob_sample
    from napari_diffrendergan.analysis.particles import CORE_THRESHOLD, MIN_SEED_AREA

    viewer = make_napari_viewer()
    image, _, instances = blob_sample(42)
    viewer.add_image(
        image, name="scan", scale=(5, 5), translate=(10, 20), metadata={"pixel_size_nm": 5.0}
    )
    viewer.add_shapes(
        [[[0, 0], [500, 0], [500, 640], [0, 640]]],
        shape_type="rectangle",
        name="region",
        scale=(1, 1),
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    widget.run_synchronously = True
    widget.model_path.setText(str(tiny_model))
    assert widget.load_model() and "small" in widget.model_info.text()
    assert widget.pixel_size.value() == 5.0
    widget.region_box.value = viewer.layers["region"]
    widget.segment_button.click()
    particles, mask = (
        viewer.layers["scan in region particles"],
        viewer.layers["scan in region mask"],
    )
    assert tuple(particles.scale) == tuple(mask.scale) == (5, 5)
    assert tuple(particles.translate) == (10, 20)
    assert set(np.unique(mask.data)) <= {0, 1, 2}
    assert (mask.data[100:] == 0).all()  # region: world rows 0-500 = pixel rows 0-98
    assert particles.data.max() == len(particles.features)
    assert "equivalent_diameter_nm" in particles.features
    assert particles.metadata["pixel_size_nm"] == 5.0
    assert "particles measured" in widget.stats.text() and "D50" in widget.stats.text()
    # the D-value table shows what size_statistics gives for the result on the analysed region
    from napari_diffrendergan.analysis.sizes import size_statistics

    assert particles.features["touches_border"].dtype == bool
    expected = size_statistics([widget.result.table], 5.0, 98 * 124, widget.min_area.value)
    assert _d_value_cells(widget) == _d_value_texts(expected)
    assert widget.report["analysed_region"] == [0, 98, 0, 124]
    path = widget.export_csv(tmp_path / "particles.csv")
    assert len(Path(path).read_text().splitlines()) == particles.data.max() + 1
    # the experiment's rule by default: dips on, distance watershed (and its seed distance) off
    assert widget.core_threshold.value == CORE_THRESHOLD and not widget.split_distance.enabled
    assert widget.min_seed_area.value == MIN_SEED_AREA and widget.min_seed_area.enabled
    widget.core_threshold.value = 0  # shown as "off": contour class alone
    assert widget.core_threshold.native.text() == "off" and not widget.min_seed_area.enabled
    widget.region_box.value = None  # "whole image"
    widget.segment_button.click()
    assert widget.status.text().startswith("Added"), widget.status.text()
    assert viewer.layers["scan particles"].data.max() > 0
    # the whole image's result sits beside the region's, which it does not replace
    assert (viewer.layers["scan in region mask"].data[100:] == 0).all()


class _KnownMask:
    """A segmenter that "predicts" the 3-class mask of known instances, so the widget's size
    reporting can be checked on particles of known sizes and places."""

    model = "known mask"
    contour_thickness = 1

    def __init__(self, instances):
        import numpy as np

        from napari_diffrendergan.render.labels import semantic_mask

        self.mask = semantic_mask(instances, 1)
        self.probability = (self.mask == 1).astype(np.float32)

    def predict_probabilities(self, image, monitor=None):
        from napari_diffrendergan.segment.predict import Prediction

        return Prediction(self.mask, (self.mask > 0).astype("float32"), self.probability)


def _disks(shape, diameters, spacing=40):
    """Instance labels of disks of ``diameters`` (px) on a grid ``spacing`` px apart."""
    import numpy as np
    from skimage.draw import disk

    labels = np.zeros(shape, np.int32)
    centres = [
        (y, x)
        for y in range(spacing // 2, shape[0] - spacing // 4, spacing)
        for x in range(spacing // 2, shape[1] - spacing // 4, spacing)
    ]
    for label, (centre, diameter) in enumerate(zip(centres, diameters, strict=False), 1):
        rr, cc = disk(centre, diameter / 2, shape=shape)
        labels[rr, cc] = label
    return labels


def _d_value_cells(widget) -> list[list[str]]:
    table = widget.d_table
    return [
        [table.item(row, column).text() for column in range(table.columnCount())]
        for row in range(table.rowCount())
    ]


def _d_value_texts(statistics) -> list[list[str]]:
    from napari_diffrendergan.analysis.size_plots import interval_text
    from napari_diffrendergan.analysis.sizes import PERCENTILES, SIZE_COLUMNS

    return [
        [interval_text(statistics["sizes"][name][key]) for key in PERCENTILES]
        for name in SIZE_COLUMNS
    ]


def _segment_known(make_napari_viewer, instances, pixel_size_nm=4.0):
    import numpy as np

    viewer = make_napari_viewer()
    image = (0.2 + 0.6 * (instances > 0)).astype(np.float32)
    viewer.add_image(image, name="scan", metadata={"pixel_size_nm": pixel_size_nm})
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    widget.run_synchronously = True
    widget.segmenter = _KnownMask(instances)
    widget.segment_button.click()
    return viewer, widget


def test_segmentation_sizes_leave_border_particles_out_unless_kept(make_napari_viewer):
    import numpy as np

    from napari_diffrendergan.analysis.sizes import size_statistics

    instances = _disks((160, 160), [20, 22, 24, 26, 21, 23, 25, 27, 30, 28, 26, 24, 22])
    instances[152:160, 80:120] = 99  # a particle cut by the image's bottom edge
    viewer, widget = _segment_known(make_napari_viewer, instances)
    table = widget.result.table
    assert table["touches_border"].sum() == 1
    statistics = widget.report["statistics"]
    assert statistics["count"] == {
        "detected": 14,
        "touching_border": 1,
        "below_floor": 0,
        "measured": 13,
    }
    assert _d_value_cells(widget) == _d_value_texts(
        size_statistics([table], 4.0, 160 * 160, widget.min_area.value)
    )
    assert "13 particles measured (1 on the border left out" in widget.stats.text()
    assert "nm" in widget.d_table.horizontalHeaderItem(1).text()
    assert "particles per µm²" in widget.counts.text()
    assert "EU nanomaterial screen" in widget.screen.text()
    assert "border exclusion" in widget.screen.toolTip()

    widget.keep_border.value = True  # measured again in the worker
    kept = widget.report["statistics"]
    assert kept["count"]["measured"] == 14 and kept["border_particles_included"]
    assert _d_value_cells(widget) == _d_value_texts(
        size_statistics([table], 4.0, 160 * 160, widget.min_area.value, keep_border=True)
    )
    assert "1 on the border kept" in widget.stats.text()
    assert len(widget.histogram.figure.axes[0].patches) > 0  # histogram bars
    assert np.isfinite(kept["sizes"]["equivalent_diameter"]["D50"]["ci_low"])


def _csv_rows(path) -> list[dict]:
    import csv

    return list(csv.DictReader(Path(path).read_text().splitlines()))


def test_segmentation_exports_particles_statistics_and_report(make_napari_viewer, tmp_path):
    import json

    instances = _disks((120, 120), [18, 20, 22, 24, 26, 20, 22, 24, 26])
    viewer, widget = _segment_known(make_napari_viewer, instances)
    assert widget.export_json(tmp_path / "none.json")  # a size report, no comparison yet
    particles = _csv_rows(widget.export_csv(tmp_path / "particles.csv"))
    assert len(particles) == 9 and {row["touches_border"] for row in particles} == {"False"}
    rows = _csv_rows(widget.export_statistics(tmp_path / "statistics.csv"))
    d50 = next(row for row in rows if row["quantity"] == "equivalent_diameter D50")
    expected = widget.report["statistics"]["sizes"]["equivalent_diameter"]["D50"]
    assert float(d50["value"]) == expected["value"] and d50["unit"] == "nm"

    viewer.add_labels(_disks((120, 120), [24, 26, 28, 30, 32, 26, 28, 30, 32]), name="bigger")
    widget.layer_a.value = viewer.layers["scan particles"]
    widget.layer_b.value = viewer.layers["bigger"]
    viewer.layers["bigger"].metadata["pixel_size_nm"] = 4.0
    widget.compare_button.click()
    text = Path(widget.export_json(tmp_path / "report.json")).read_text()

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    report = json.loads(text, parse_constant=refuse)
    assert report["sizes"]["statistics"]["count"]["measured"] == 9
    assert report["comparison"]["layer_b"] == "bigger"
    assert report["comparison"]["D50_difference"]["value"] > 0

    blocked = tmp_path / "a file"
    blocked.write_text("")
    for export in (widget.export_csv, widget.export_statistics, widget.export_json):
        assert export(blocked / "out.csv") == ""
        assert widget.status.text().startswith("Cannot export")


def test_compare_two_labels_layers(make_napari_viewer):
    import numpy as np

    rng = np.random.default_rng(4)
    small = _disks((400, 400), rng.uniform(17, 23, 100))
    large = _disks((400, 400), rng.uniform(23, 29, 100))
    viewer = make_napari_viewer()
    viewer.add_labels(small, name="small", scale=(2, 2))
    viewer.add_labels((large > 0).astype(np.uint8), name="large mask", scale=(2, 2))
    viewer.add_labels(small.copy(), name="small again", scale=(2, 2))
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    widget.run_synchronously = True
    names = ["small", "large mask", "small again"]
    assert [layer.name for layer in widget.layer_a.choices] == names
    widget.layer_a.value = viewer.layers["small"]
    widget.layer_b.value = viewer.layers["large mask"]  # binary: made into instances
    widget.compare_button.click()
    result = widget.comparison
    assert result["unit"] == "nm" and result["count_b"]["measured"] == 100
    difference = result["D50_difference"]
    assert difference["ci_low"] > 0 and 8 < difference["value"] < 16  # about 6 px at 2 nm
    low, high = difference["ci_low"], difference["ci_high"]
    assert widget.compare_text.text().startswith(
        f"B's D50 is {difference['value']:.3g} nm (95 % CI {low:.3g}–{high:.3g}) larger: "
        "the distributions differ (KS p = "
    )
    assert len(widget.compare_plot.figure.axes[0].lines) >= 2  # both distributions drawn

    widget.layer_b.value = viewer.layers["small again"]
    widget.compare_button.click()
    same = widget.comparison["D50_difference"]
    assert same["ci_low"] <= 0 <= same["ci_high"]
    assert "includes 0): no clear difference; no evidence they differ" in (
        widget.compare_text.text()
    )

    viewer.layers.remove("small again")  # the pickers follow the layer list
    assert [layer.name for layer in widget.layer_b.choices] == names[:2]


def test_compare_explains_what_it_cannot_compare(make_napari_viewer):
    import numpy as np

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    widget.run_synchronously = True
    widget.compare_button.click()
    assert "Choose two Labels layers" in widget.status.text()

    viewer.add_labels(_disks((100, 100), [20, 22, 24, 26]), name="disks")
    viewer.add_labels(np.zeros((100, 100), np.uint8), name="empty")
    widget.layer_a.value = viewer.layers["disks"]
    widget.layer_b.value = viewer.layers["empty"]
    widget.compare_button.click()
    assert "Cannot compare" in widget.status.text()
    assert "“empty” holds no particles" in widget.status.text()
    assert widget.comparison is None and widget.compare_button.isEnabled()

    viewer.add_labels(_disks((100, 100), [20, 22, 24, 26]), name="in nm", scale=(3, 3))
    widget.layer_b.value = viewer.layers["in nm"]
    widget.compare_button.click()
    assert "“in nm” has 3 nm pixels but “disks” has no pixel size" in widget.status.text()


def test_segmentation_widget_explains_missing_model(make_napari_viewer, tmp_path):
    import numpy as np

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.float32), name="scan")
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    widget.run_synchronously = True
    widget.model_path.setText(str(tmp_path / "missing"))
    widget.segment_button.click()
    assert "does not exist" in widget.model_info.text()
    assert "Load a model first" in widget.status.text()
    assert "scan mask" not in viewer.layers


def test_patch_selection_widget_cuts_reviews_and_saves(make_napari_viewer, qtbot, tmp_path):
    import json

    import numpy as np

    from test_patches import scan

    viewer = make_napari_viewer()
    viewer.add_image(scan(), name="scan", scale=(2, 2), metadata={"pixel_size_nm": 2.0})
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Patch selection")
    widget.draw_button.click()
    regions = viewer.layers["regions"]
    assert tuple(regions.scale) == (2, 2) and regions.mode == "add_rectangle"
    regions.add_rectangles(np.array([[[0, 0], [150, 600]]]))  # layer data = scan pixels
    widget.size.value = 128
    widget.stride.value = 64
    widget.cut_button.click()  # in a thread worker
    qtbot.waitUntil(lambda: "scan patches" in viewer.layers, timeout=30_000)
    qtbot.waitUntil(lambda: widget.cut_button.isEnabled(), timeout=10_000)
    stack = viewer.layers["scan patches"]
    outlines = viewer.layers["scan patch outlines"]
    assert stack.data.shape[1:] == (128, 128) and len(outlines.data) == stack.data.shape[0]
    assert all(corner[0] <= 150 for box in outlines.data for corner in box)
    scan_right = viewer.layers["scan"].extent.world[1][-1]
    assert stack.translate[-1] > scan_right  # the stack sits beside the scan, not over it
    count = stack.data.shape[0]
    viewer.dims.set_current_step(0, 1)  # the patch on show is outlined where it was cut
    assert list(outlines.edge_width).index(max(outlines.edge_width)) == 1
    viewer.dims.set_current_step(0, 0)
    assert list(outlines.edge_width).index(max(outlines.edge_width)) == 0
    widget.remove_button.click()  # updates both layers in place (no remove + add: ~15x faster)
    assert (
        viewer.layers["scan patches"] is stack
        and viewer.layers["scan patches"].data.shape[0] == count - 1
    )
    assert viewer.layers["scan patch outlines"] is outlines and len(outlines.data) == count - 1
    widget.folder.setText(str(tmp_path / "set"))
    widget.save_button.click()
    qtbot.waitUntil(lambda: "Saved" in widget.status.text(), timeout=30_000)
    meta = json.loads((tmp_path / "set" / "patches.json").read_text())
    assert len(meta["patches"]) == count - 1 and meta["pixel_size_nm"] == 2.0
    widget.save_button.click()  # the folder holds a set now: not without asking
    assert "already holds a patch set" in widget.status.text()


def test_patch_selection_polarity_finds_dark_particles(make_napari_viewer, tmp_path):
    import json

    from test_patches import scan

    viewer = make_napari_viewer()
    viewer.add_image(1 - scan(), name="inverted")
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Patch selection")
    widget.run_synchronously = True
    widget.size.value = 128
    widget.stride.value = 64
    assert widget.polarity.value == "auto"
    widget.cut_button.click()
    assert {p.role for p in widget.patches} == {"particle", "background"}
    assert "dark particles found" in widget.status.text()
    widget.folder.setText(str(tmp_path / "set"))
    widget.save_button.click()
    meta = json.loads((tmp_path / "set" / "patches.json").read_text())
    assert meta["polarity"] == "dark" and meta["settings"]["polarity"] == "auto"
    widget.polarity.value = "bright"  # the bright background taken for particles
    widget.cut_button.click()
    assert widget.patches == [] and "No patch qualified" in widget.status.text()


def test_patch_selection_explains_small_regions(make_napari_viewer, qtbot):
    import numpy as np

    from test_patches import scan

    viewer = make_napari_viewer()
    viewer.add_image(scan(), name="scan")
    viewer.add_shapes([np.array([[0, 0], [50, 50]])], shape_type="rectangle", name="tiny")
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Patch selection")
    widget.shapes_box.value = viewer.layers["tiny"]
    widget.cut_button.click()  # fails in the thread worker: the message reaches the dock
    qtbot.waitUntil(
        lambda: "smaller than one 256×256 patch" in widget.status.text(), timeout=30_000
    )
    assert widget.cut_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert "scan patches" not in viewer.layers


def test_reader_opens_the_plugins_outputs_with_their_scale(make_napari_viewer, tmp_path):
    import numpy as np
    from napari.layers import Image, Labels

    from napari_diffrendergan.analysis.thickness import analyse, synthetic_wires, write_outputs
    from napari_diffrendergan.data.patches import Patch, PatchSet
    from napari_diffrendergan.io import write_tiff
    from napari_diffrendergan.reader import get_reader

    mask = np.zeros((40, 50), np.uint8)
    mask[5:20, 5:30] = 1
    write_tiff(tmp_path / "scan_mask.tif", mask, pixel_size_nm=7.5, classes={"1": "particle"})
    write_tiff(tmp_path / "scan_instances.tif", mask.astype(np.uint16), pixel_size_nm=7.5)
    write_outputs(analyse(synthetic_wires((60, 60), [8]), 2.0), tmp_path, "wire")
    PatchSet.save(
        tmp_path / "patches",
        [Patch("s", 0, 0, 16, "particle", 0.0, 3), Patch("s", 0, 16, 16, "background", 0.0, 0)],
        [np.ones((16, 16)), np.zeros((16, 16))],
        7.5,
        {},
    )
    import tifffile

    tifffile.imwrite(tmp_path / "foreign.tif", mask)  # not ours: left to napari's own reader
    assert get_reader(str(tmp_path / "foreign.tif")) is None
    assert get_reader(str(tmp_path)) is None

    viewer = make_napari_viewer()
    for name in ("scan_mask.tif", "scan_instances.tif", "wire_thickness.tif"):
        viewer.open(str(tmp_path / name), plugin="napari-diffrendergan")
    viewer.open(str(tmp_path / "patches" / "patches.json"), plugin="napari-diffrendergan")
    masks, instances, thickness, patches = viewer.layers
    assert isinstance(masks, Labels) and isinstance(instances, Labels)
    assert tuple(masks.scale) == tuple(instances.scale) == (7.5, 7.5)
    assert [str(u) for u in masks.units] == ["nanometer", "nanometer"]
    assert isinstance(thickness, Image) and thickness.name == "wire_thickness (nm)"
    assert tuple(thickness.scale) == (2.0, 2.0) and thickness.data.max() > 10  # nm
    assert patches.data.shape == (2, 16, 16) and tuple(patches.scale) == (1.0, 7.5, 7.5)
    assert patches.metadata["roles"] == ["particle", "background"]
    assert patches.name == "patches"  # the folder's name, not "patches patches"
    assert patches.metadata["patch_set"] == str((tmp_path / "patches").resolve())


def test_typed_pixel_size_sticks_and_a_layer_file_offers_its_own(make_napari_viewer, tmp_path):
    import numpy as np

    from test_scans import scan_pixels, write_zeiss

    viewer = make_napari_viewer()
    viewer.add_image(scan_pixels(), name="plain")  # no scale, no file
    _, segmentation = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    _, thickness = viewer.window.add_plugin_dock_widget(
        "napari-diffrendergan", "Thickness analysis"
    )
    for widget in (segmentation, thickness):
        assert widget.pixel_size.nm() is None
        assert widget.pixel_size.origin.text() == "unknown: sizes in pixels"
        widget.pixel_size.setValue(7.5)  # as the user types it
    viewer.add_labels(np.zeros((96, 128), np.uint8), name="plain particles")  # e.g. a result
    viewer.add_image(scan_pixels(), name="another")
    segmentation.image_box.value = viewer.layers["another"]  # another scan of unknown size
    for widget in (segmentation, thickness):
        assert widget.pixel_size.nm() == 7.5 and widget.pixel_size.origin.text() == "typed"

    write_zeiss(tmp_path / "zeiss.tif")
    (raw,) = viewer.open(str(tmp_path / "zeiss.tif"), plugin="napari")  # napari's own reader
    assert tuple(raw.scale) == (1.0, 1.0) and raw.source.path == str(tmp_path / "zeiss.tif")
    segmentation.image_box.value = viewer.layers["zeiss"]
    assert segmentation.pixel_size.nm() == 7.344
    assert segmentation.pixel_size.origin.text() == (
        "7.344 nm (from the file's Zeiss metadata (CZ_SEM))"
    )
    # carried into the scan's scale: it and every result drawn over it measure in nm
    assert tuple(raw.scale) == (7.344, 7.344) and str(raw.units[-1]) == "nanometer"
    segmentation.image_box.value = viewer.layers["plain"]  # the file's size is not this scan's
    assert segmentation.pixel_size.nm() is None


def test_patch_selection_pixel_size_data_bar_and_unknown_size_warning(
    make_napari_viewer, qtbot, tmp_path
):
    import json

    from test_scans import scan_pixels, with_bar, write_zeiss

    write_zeiss(tmp_path / "scan.tif", with_bar(scan_pixels((300, 320))))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "scan.tif"), plugin="napari")
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Patch selection")
    assert widget.pixel_size.nm() == 7.344
    assert "Zeiss metadata" in widget.pixel_size.origin.text()
    assert widget.data_bar.isChecked() and widget.data_bar.isEnabled()
    assert widget.data_bar.text() == "Leave out the data bar (30 rows at the bottom)"
    widget.size.value = 64
    widget.role.value = "background"
    widget.cut_button.click()
    qtbot.waitUntil(lambda: "scan patches" in viewer.layers, timeout=30_000)
    qtbot.waitUntil(lambda: widget.cut_button.isEnabled(), timeout=10_000)
    assert "without its data bar" in widget.status.text()
    assert max(p.y + p.size for p in widget.patches) == 270  # up to the bar, not into it
    widget.folder.setText(str(tmp_path / "set"))
    widget.save_button.click()
    qtbot.waitUntil(lambda: "Saved" in widget.status.text(), timeout=30_000)
    meta = json.loads((tmp_path / "set" / "patches.json").read_text())
    assert meta["pixel_size_nm"] == 7.344
    assert meta["settings"]["data_bar_left_out"] == "30 rows at the bottom"
    assert "Pixel size unknown" not in widget.status.text()

    widget.pixel_size.setValue(0)  # the user clears it: unknown
    widget.folder.setText(str(tmp_path / "unknown"))
    widget.save_button.click()
    qtbot.waitUntil(lambda: "Saved" in widget.status.text(), timeout=30_000)
    assert "Pixel size unknown" in widget.status.text()
    assert json.loads((tmp_path / "unknown" / "patches.json").read_text())["pixel_size_nm"] is None


def test_segmentation_leaves_out_the_data_bar_it_finds(make_napari_viewer):
    from test_scans import scan_pixels, with_bar

    viewer = make_napari_viewer()
    viewer.add_image(scan_pixels((200, 256)), name="no bar")
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Segmentation")
    assert not widget.data_bar.isEnabled() and widget.data_bar.text() == "No data bar found"
    assert widget.data_bar.regions([], (200, 256)) == []
    viewer.add_image(with_bar(scan_pixels((200, 256)), 0.08, "top", 255), name="bar")
    widget.image_box.value = viewer.layers["bar"]
    assert widget.data_bar.isChecked() and "16 rows at the top" in widget.data_bar.text()
    assert widget.data_bar.regions([], (200, 256)) == [(16, 200, 0, 256)]
    assert widget.data_bar.regions([(0, 100, 5, 50)], (200, 256)) == [(16, 100, 5, 50)]
    widget.data_bar.setChecked(False)  # the user's choice
    assert widget.data_bar.regions([], (200, 256)) == []


LAPTOP_SCREEN = (1366, 768)


@pytest.mark.parametrize("name", WIDGETS)
def test_dock_fits_a_laptop_screen(make_napari_viewer, name):
    """The napari window with the dock fits 1366×768: the dock scrolls instead of growing."""
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)
    window = viewer.window._qt_window
    window.resize(*LAPTOP_SCREEN)
    needed = window.minimumSizeHint()
    assert needed.height() <= LAPTOP_SCREEN[1], f"{name}: window needs {needed.height()} px"
    assert needed.width() <= LAPTOP_SCREEN[0], f"{name}: window needs {needed.width()} px"
    assert widget.minimumSizeHint().width() <= dock.width() + 1


def test_the_storys_four_docks_stacked_fit_a_laptop_screen(make_napari_viewer):
    viewer = make_napari_viewer()
    for name in ("Patch selection", "GAN training", "Synthetic data", "Segmentation"):
        viewer.window.add_plugin_dock_widget("napari-diffrendergan", name)
    window = viewer.window._qt_window
    window.resize(*LAPTOP_SCREEN)
    assert window.minimumSizeHint().height() <= LAPTOP_SCREEN[1]


def test_thickness_shows_one_colour_bar_the_latest_maps(make_napari_viewer):
    import numpy as np

    from napari_diffrendergan.analysis.thickness import synthetic_wires

    viewer = make_napari_viewer()
    for seed in (1, 2):
        wires = synthetic_wires((100, 100), [8], seed=seed).astype(np.uint8)
        viewer.add_labels(wires, name=f"wires {seed}", metadata={"pixel_size_nm": 5.0})
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Thickness analysis")
    widget.run_synchronously = True
    maps = []
    for seed in (1, 2):
        widget.layer_box.value = viewer.layers[f"wires {seed}"]
        widget.run_button.click()
        maps.append(viewer.layers[f"wires {seed} thickness (nm)"])
    assert [m.colorbar.visible for m in maps] == [False, True]  # not two stacked in a corner
