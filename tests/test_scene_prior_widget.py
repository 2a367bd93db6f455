"""The Scene prior dock: what `calibrate` does, on open Image layers, in real thread workers;
failure and cancel; edited values in the preset that is saved, loaded back and handed to GAN
training; and the editing functions of the core it rests on."""

import numpy as np
import pytest

from napari_diffrendergan.analysis import calibration as cal
from napari_diffrendergan.analysis import matching

PIXEL_NM = 2.0
PREVIEW = "scene prior preview"


def two_mode_report():
    """A report as `calibrate` makes it, around sizes drawn from two clear modes (nm)."""
    rng = np.random.default_rng(3)
    diameters = np.concatenate([rng.normal(40, 4, 120), rng.normal(90, 6, 80)])
    return {
        "pixel_size_nm": PIXEL_NM,
        "family": "spheres",
        "polarity": "bright",
        "median_diameter_nm": float(np.median(diameters)),
        "density_per_um2": 20.0,
        "size_fit": cal.fit_sizes(diameters),
        "scans": 2,
    }


def test_edited_config_takes_the_values_given_and_names_them():
    report = two_mode_report()
    assert report["size_fit"]["chosen"] == "bimodal"
    assert cal.size_fit_reason(report["size_fit"]).startswith("two modes: BIC lower by")
    unedited = cal.edited_config(report, {}, name="mine")
    assert unedited.to_dict() == cal.calibrated_config(report, name="mine").to_dict()
    values = cal.preset_values(report)
    fit = report["size_fit"]["bimodal"]
    assert values["median_nm"] == pytest.approx(
        (1 - fit["weight2"]) * fit["mean1"] + fit["weight2"] * fit["mean2"]
    )

    doubled = cal.edited_config(report, {"median_nm": 2 * values["median_nm"]})
    params = doubled.physical.diameter.params
    assert params["mean1"] == pytest.approx(2 * fit["mean1"])
    assert params["std2"] == pytest.approx(2 * fit["std2"])
    assert params["weight2"] == fit["weight2"]
    assert doubled.description.endswith("Edited by hand: median diameter.")

    lognormal = cal.edited_config(report, {"kind": "lognormal", "density_per_um2": 5.0})
    assert lognormal.physical.diameter.kind == "lognormal"
    assert lognormal.physical.diameter.params["median"] == report["size_fit"]["lognormal"]["median"]
    assert lognormal.physical.density_per_um2 == 5.0
    assert "Edited by hand: size distribution, density." in lognormal.description

    normal = cal.edited_config(report, {"kind": "normal", "sigma": 0.2})
    params = normal.physical.diameter.params
    assert normal.physical.diameter.kind == "normal"
    assert params["mean"] == report["size_fit"]["normal"]["mean"]
    assert params["std"] == pytest.approx(0.2 * params["mean"])
    assert normal.description.endswith("Edited by hand: size distribution, spread.")
    older = {**report, "size_fit": {k: v for k, v in report["size_fit"].items() if k != "normal"}}
    assert cal.size_fit_reason(older["size_fit"]).startswith("two modes")
    with pytest.raises(cal.CalibrationError, match="calibrate again"):
        cal.edited_config(older, {"kind": "normal"})

    few = {**report, "size_fit": cal.fit_sizes(np.array([30.0, 35, 41, 44]))}
    assert "two modes need 10" in cal.size_fit_reason(few["size_fit"])
    with pytest.raises(cal.CalibrationError, match="too few particles for two modes"):
        cal.edited_config(few, {"kind": "bimodal"})


# --- the dock -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truth_scans():
    """Three rendered scans with bright and three with dark particles (render/truth.py)."""
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.render.truth import render_truth_scans

    return {
        polarity: [s.image for s in render_truth_scans(preset("tio2-him"), polarity, 0, 3)]
        for polarity in ("bright", "dark")
    }


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "Scene prior")
    return widget


def _add_scans(viewer, images, prefix):
    return [
        viewer.add_image(
            image, name=f"{prefix} {i}", scale=(PIXEL_NM, PIXEL_NM), metadata={"pixel_size_nm": 2}
        )
        for i, image in enumerate(images)
    ]


def _idle(widget):
    return widget.calibrate_button.isEnabled() and not widget.cancel_button.isEnabled()


def _calibrate(widget, qtbot, previews=True):
    widget.calibrate_button.click()
    qtbot.waitUntil(lambda: bool(widget.previews) or not widget.busy, timeout=300_000)
    qtbot.waitUntil(lambda: _idle(widget), timeout=30_000)


@pytest.mark.gui
@pytest.mark.slow
@pytest.mark.parametrize("polarity", ["bright", "dark"])
def test_calibrates_open_scans_of_known_polarity(make_napari_viewer, qtbot, truth_scans, polarity):
    viewer = make_napari_viewer()
    layers = _add_scans(viewer, truth_scans[polarity], polarity)
    widget = _dock(viewer)
    assert widget.scans_box.value == [layers[0]]  # the first scan is offered
    widget.scans_box.value = layers
    assert widget.pixel_size.nm() == PIXEL_NM
    _calibrate(widget, qtbot)

    report = widget.report
    expected = cal.calibrate([(layer.name, layer.data) for layer in layers], PIXEL_NM)
    assert report["polarity"] == polarity and report["scans"] == 3
    assert report["estimates"] == expected["estimates"]  # what `calibrate` measures
    seen = report["matching"]["seen"]  # and the prior matched to it by rendering, as the CLI
    assert seen["median_diameter_nm"] == expected["median_diameter_nm"]
    assert seen["density_per_um2"] == expected["density_per_um2"]
    assert len(report["matching"]["rounds"]) == 2
    text = widget.estimates.text()
    assert "Prior (matched)" in text and f"{report['median_diameter_nm']:.3g} nm" in text
    assert f"{polarity} particles (3 of 3 scans agree)" in text
    assert cal.size_fit_reason(report["size_fit"]) in text and "per µm²" in text
    scans = [(layer.name, layer.data) for layer in layers]  # the particle fields as the core
    fields = matching.particle_fields(scans, polarity, 256)
    assert report["fields"] == matching.fields_record(scans, fields, polarity)
    assert "shape_choice" not in report  # shapes are compared only when asked
    values = cal.preset_values(report)
    assert widget.median.value == pytest.approx(values["median_nm"], abs=0.05)
    assert widget.density.value == pytest.approx(values["density_per_um2"], abs=1e-4)
    assert widget.polarity.value == polarity and widget.edits() == {}
    assert widget.config.physical.polarity == polarity
    assert widget.histogram.figure.axes[0].get_lines(), "the fitted curve is drawn"

    # renders of the prior, particles of the same polarity, beside the scans, not over them
    preview = viewer.layers[PREVIEW]
    assert all(render.shape == (256, 256) for render in widget.previews)
    background = np.median(np.concatenate([r.ravel() for r in widget.previews]))
    assert (background > 0.4) == (polarity == "dark")
    assert tuple(preview.scale) == tuple(layers[0].scale)
    assert preview.translate[-1] >= 256 * PIXEL_NM
    assert preview not in [layer for _, layer in widget._scan_layers()]
    assert "Calibrated" in widget.status.text() and widget.save_button.isEnabled()


@pytest.mark.gui
def test_compared_shapes_and_the_fields_density_reach_the_preset(
    make_napari_viewer, qtbot, shapes_scored, tmp_path
):
    from napari_diffrendergan.gan import prior_choice
    from test_matching import crowded_left

    viewer = make_napari_viewer()
    widget = _dock(viewer)
    scans = [crowded_left(i) for i in range(3)]  # the left halves crowded, the right empty
    widget.scans_box.value = _add_scans(viewer, scans, "half")
    assert not widget.compare_shapes.value  # off by default: minutes on a CPU
    widget.compare_shapes.value = True
    _calibrate(widget, qtbot)

    report = widget.report
    fields = report["fields"]
    assert fields["scale"] > 1.3  # the particle patches lie where the particles are
    assert shapes_scored == [(prior_choice.SHAPES, fields["count"], PIXEL_NM, "auto")]
    assert report["shape_choice"]["measured"] == "spheres"
    assert report["family"] == "cubes" == widget.config.meshes.library == widget.family.value
    text = widget.estimates.text()
    assert "<b>spheres</b>: aspect ratio" in text  # what the scans showed stays on record
    assert "Shape by rendering" in text and "cubes 200.0" in text
    assert "Particle fields" in text and f"{fields['count']} patches" in text
    density = report["density_per_um2"] * fields["scale"]  # the preset renders the fields'
    assert widget.density.value == pytest.approx(density, abs=1e-3) and widget.edits() == {}
    saved = widget.save_preset(tmp_path / "mine.json")
    assert saved.physical.density_per_um2 == pytest.approx(density)
    assert "(in the particle fields)" in saved.description and "Edited" not in saved.description


@pytest.mark.gui
@pytest.mark.slow
def test_a_blank_scan_fails_clearly_and_cancel_stops(make_napari_viewer, qtbot, truth_scans):
    viewer = make_napari_viewer()
    viewer.add_image(
        np.full((96, 96), 0.3, np.float32), name="blank", metadata={"pixel_size_nm": 2}
    )
    widget = _dock(viewer)
    _calibrate(widget, qtbot)
    assert "Cannot calibrate: no particles found" in widget.status.text()
    assert widget.report is None and not widget.save_button.isEnabled()
    assert PREVIEW not in viewer.layers

    unscaled = [
        viewer.add_image(image, name=f"px {i}") for i, image in enumerate(truth_scans["bright"])
    ]
    widget.scans_box.value = unscaled  # no pixel size: sizes in px, no preset
    assert widget.pixel_size.nm() is None
    _calibrate(widget, qtbot)
    assert widget.report["unit"] == "px" and widget.config is None
    assert "sizes are in pixels" in widget.status.text() and "per megapixel" in (
        widget.estimates.text()
    )
    assert not widget.save_button.isEnabled() and PREVIEW not in viewer.layers

    widget.scans_box.value = _add_scans(viewer, truth_scans["bright"], "bright")
    assert widget.report is None  # the px estimates are gone with their scans
    widget.progress_reported.connect(lambda *report: widget.cancel())
    _calibrate(widget, qtbot)
    assert "Cancelled" in widget.status.text()
    assert widget.report is None and PREVIEW not in viewer.layers


@pytest.mark.gui
@pytest.mark.slow
def test_edited_values_reach_the_saved_preset_and_gan_training(
    make_napari_viewer, qtbot, truth_scans, tmp_path
):
    from napari_diffrendergan.config import load_config

    viewer = make_napari_viewer()
    layers = _add_scans(viewer, truth_scans["dark"], "dark")
    widget = _dock(viewer)
    widget.scans_box.value = layers
    _calibrate(widget, qtbot)
    measured = cal.preset_values(widget.report)
    widget.median.value = round(1.5 * measured["median_nm"], 1)
    widget.density.value = 2 * round(measured["density_per_um2"], 2)
    widget.family.value = "spheres"
    qtbot.waitUntil(lambda: "Edited by hand" in widget.config.description, timeout=5_000)
    assert set(widget.edits()) == {"median_nm", "density_per_um2", "family"}

    path = tmp_path / "mine.json"
    saved = widget.save_preset(path)
    loaded = load_config(path)
    assert loaded == saved and loaded.name == "mine"
    physical = loaded.physical
    assert physical.diameter.params["median"] == round(1.5 * measured["median_nm"], 1)
    assert physical.diameter.params["sigma"] == measured["sigma"]  # not edited
    assert physical.density_per_um2 == 2 * round(measured["density_per_um2"], 2)
    assert (physical.polarity, loaded.meshes.library) == ("dark", "spheres")
    assert "median diameter, density, shape family" in loaded.description

    widget.use_in_gan_training()
    _, gan = viewer.window.add_plugin_dock_widget("napari-diffrendergan", "GAN training")
    assert gan.preset_box.value == "mine (scene prior)"
    assert gan._config().physical == physical and not gan.mesh_count.enabled
    assert gan.add_preset(path, "from file") == "from file"  # a preset JSON by its path
    assert gan._config().to_dict() == loaded.to_dict()

    widget.polarity.value = "bright"  # the preview renders the preset as edited
    qtbot.waitUntil(lambda: widget.config.physical.polarity == "bright", timeout=5_000)
    assert "polarity" in widget.status.text() and "Render preview" in widget.status.text()
    widget.previews = []
    widget.preview_button.click()
    qtbot.waitUntil(lambda: bool(widget.previews) and _idle(widget), timeout=120_000)
    assert np.median(np.concatenate([r.ravel() for r in widget.previews])) < 0.4
    assert len(viewer.layers) == len(layers) + 1  # the preview layer, updated in place

    other = "normal" if widget.kind.value == "lognormal" else "lognormal"
    widget.kind.value = other  # the boxes show that fit's typical diameter and spread
    fitted = cal.preset_values(
        {**widget.report, "size_fit": {**widget.report["size_fit"], "chosen": other}}
    )
    assert widget.sigma.value == pytest.approx(fitted["sigma"], abs=1e-3)
    assert widget.median.value == pytest.approx(fitted["median_nm"], abs=0.1)
    qtbot.waitUntil(lambda: widget.config.physical.diameter.kind == other, timeout=5_000)

    widget.scans_box.value = layers[:1]  # other scans: nothing of the old ones stays
    assert widget.report is None and widget.config is None
    assert not widget.save_button.isEnabled() and "Calibrate again" in widget.estimates.text()


@pytest.mark.gui
def test_the_dock_fits_a_small_screen(make_napari_viewer):
    from qtpy.QtWidgets import QScrollArea

    widget = _dock(make_napari_viewer())
    scroll = widget.findChild(QScrollArea)
    assert scroll.widget().isAncestorOf(widget.preset_group)
    assert scroll.widget().isAncestorOf(widget.tabs)
    assert widget.minimumSizeHint().height() < 300  # of a 768-px screen, the dock gets ~650
