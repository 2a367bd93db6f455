"""Scene priors measured from unannotated scans (analysis/calibration.py, `calibrate`)."""

import dataclasses
import json

import numpy as np
import pytest

from napari_diffrendergan.analysis import calibration as cal
from napari_diffrendergan.cli import main

PIXEL_NM = 2.0


def disk_scan(
    seed, polarity="bright", shape=(256, 256), count=30, median=18.0, touching=0.3, texture=None
):
    """A scan of disks (lognormal diameters, px) on a background with a gradient and noise,
    a share of them touching a neighbour; with the disks' diameters and centres. ``texture``:
    a flat background blotched by this relative σ instead of the gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    centres, radii = [], []
    while len(centres) < count:
        radius = rng.lognormal(np.log(median / 2), 0.25)
        if centres and rng.random() < touching:  # against a neighbour, 0-1 px apart
            angle, other = rng.uniform(0, 2 * np.pi), rng.integers(len(centres))
            gap = radii[other] + radius + rng.uniform(0, 1)
            centre = centres[other] + gap * np.array([np.sin(angle), np.cos(angle)])
        else:
            centre = rng.uniform(0, shape, 2)
        pairs = zip(centres, radii, strict=True)
        if all(np.hypot(*(centre - c)) >= r + radius for c, r in pairs):
            centres.append(centre)
            radii.append(radius)
    inside = np.zeros(shape, bool)
    for (row, column), radius in zip(centres, radii, strict=True):
        inside |= (yy - row) ** 2 + (xx - column) ** 2 < radius**2
    level = 0.25 + 0.1 * xx / shape[1]  # uneven illumination
    if texture is not None:
        from scipy import ndimage

        blotches = ndimage.gaussian_filter(rng.normal(size=shape), 8)
        level = 0.3 * (1 + texture * blotches / blotches.std())
    particles = 0.75 if polarity == "bright" else 0.02
    image = np.where(inside, particles, level) + rng.normal(0, 0.04, shape)
    return image.astype(np.float32), 2 * np.array(radii), np.array(centres)


def wire_scan(seed, polarity="bright", shape=(256, 256), wires=8, half_width=3.0):
    """Long, thin, crossing lines (wires) on a background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inside = np.zeros(shape, bool)
    for _ in range(wires):
        centre, angle = rng.uniform(0, shape, 2), rng.uniform(0, np.pi)
        normal = np.array([np.cos(angle), -np.sin(angle)])
        along = (yy - centre[0]) * np.sin(angle) + (xx - centre[1]) * np.cos(angle)
        across = (yy - centre[0]) * normal[0] + (xx - centre[1]) * normal[1]
        inside |= (np.abs(across) < half_width) & (np.abs(along) < 90)
    values = (0.8, 0.2) if polarity == "bright" else (0.1, 0.7)
    image = np.where(inside, *values) + rng.normal(0, 0.04, shape)
    return image.astype(np.float32)


def test_fits_choose_the_distribution_the_sizes_came_from():
    rng = np.random.default_rng(1)
    lognormal = rng.lognormal(np.log(30), 0.3, 400)
    fit = cal.fit_sizes(lognormal)
    assert fit["chosen"] == "lognormal"
    assert fit["lognormal"]["median"] == pytest.approx(30, rel=0.05)
    assert fit["lognormal"]["sigma"] == pytest.approx(0.3, rel=0.15)
    two = np.concatenate([rng.normal(20, 2, 240), rng.normal(45, 3, 160)])
    fit = cal.fit_sizes(two)
    assert fit["chosen"] == "bimodal"
    modes = fit["bimodal"]
    assert modes["mean1"] == pytest.approx(20, rel=0.05)
    assert modes["mean2"] == pytest.approx(45, rel=0.05)
    assert modes["weight2"] == pytest.approx(0.4, abs=0.06)
    assert cal.fit_sizes(lognormal[:8]).keys() == {"chosen", "lognormal", "normal"}
    tail = np.concatenate([lognormal, rng.normal(120, 10, 8)])  # 2 %: merged particles
    assert cal.fit_sizes(tail)["chosen"] == "lognormal"
    # symmetric sizes: a lognormal would invent a tail of large particles
    normal = rng.normal(240, 100, 800)
    normal = normal[normal > 20]
    fit = cal.fit_sizes(np.concatenate([normal, rng.normal(540, 140, 16)]))  # + a 2 % tail
    assert fit["chosen"] == "normal"
    assert fit["normal"]["mean"] == pytest.approx(240, rel=0.05)
    assert fit["normal"]["std"] == pytest.approx(100, rel=0.15)
    assert fit["normal"]["bic"] < fit["lognormal"]["bic"]
    reason = cal.size_fit_reason(fit)
    assert reason.startswith("normal: BIC") and "lower than a lognormal's" in reason
    one = cal.fit_sizes(normal)  # one mode: a second one only costs parameters
    assert one["chosen"] == "normal" and one["bimodal"]["bic"] > one["normal"]["bic"]
    assert "two modes raise the BIC by" in cal.size_fit_reason(one)


@pytest.mark.parametrize("polarity", ["bright", "dark"])
@pytest.mark.parametrize(
    "scene",
    [
        lambda seed, p: disk_scan(seed, p)[0],
        lambda seed, p: disk_scan(seed, p, count=60, touching=0.9)[0],  # agglomerated
        lambda seed, p: disk_scan(seed, p, count=4, median=40)[0],  # a few large particles
        lambda seed, p: wire_scan(seed, p),
    ],
    ids=["sparse", "agglomerated", "few-large", "wires"],
)
def test_polarity_is_found_for_bright_and_dark_particles(polarity, scene):
    scans = [cal.scan_phases(scene(seed, polarity), f"s{seed}") for seed in range(3)]
    found, evidence = cal.polarity(scans)
    assert found == polarity
    assert evidence["scans_agreeing"] == 3
    inverted = [cal.scan_phases(1 - scene(seed, polarity), f"s{seed}") for seed in range(3)]
    assert cal.polarity(inverted)[0] != polarity


@pytest.mark.parametrize("polarity", ["bright", "dark"])
def test_sizes_density_and_shape_of_disks(polarity):
    scans = [disk_scan(seed, polarity) for seed in range(4)]
    report = cal.calibrate([(f"s{i}", s[0]) for i, s in enumerate(scans)], PIXEL_NM)
    truth = np.median(np.concatenate([s[1] for s in scans])) * PIXEL_NM
    centres = np.concatenate([s[2] for s in scans])
    inside = ((centres >= 0) & (centres < 256)).all(1).sum()
    density = inside / (4 * (256 * PIXEL_NM / 1000) ** 2)
    assert report["polarity"] == polarity and report["family"] == "spheres"
    assert report["median_diameter_nm"] == pytest.approx(truth, rel=0.05)
    assert report["density_per_um2"] == pytest.approx(density, rel=0.15)
    low, high = report["estimates"]["diameter"]["median"]["ci"]
    assert low <= report["median_diameter_nm"] <= high
    assert 0.1 < report["estimates"]["share_in_clusters"]["value"] < 0.9
    assert report["size_fit"]["chosen"] == "lognormal"


def test_wires_are_sized_by_their_width():
    report = cal.calibrate([(f"w{seed}", wire_scan(seed)) for seed in range(3)], PIXEL_NM)
    assert report["family"] == "wires"
    assert report["median_diameter_px"] == pytest.approx(6, rel=0.15)


def test_scans_of_noise_hold_no_particles():
    rng = np.random.default_rng(0)
    noise = [(f"n{i}", rng.normal(0.5, 0.05, (128, 128))) for i in range(2)]
    with pytest.raises(cal.CalibrationError, match="no particles found"):
        cal.calibrate(noise, PIXEL_NM)
    with pytest.raises(cal.CalibrationError, match="no particles found"):
        cal.calibrate([("flat", np.full((64, 64), 0.3))], PIXEL_NM)


def test_the_preset_states_the_measured_geometry_in_nm():
    from napari_diffrendergan.config import MaterialConfig, preset

    report = cal.calibrate([(f"s{i}", disk_scan(i)[0]) for i in range(3)], PIXEL_NM)
    config = cal.calibrated_config(report, preset("tio2-sem"), name="mine")
    physical = config.physical
    assert (config.name, config.meshes.library) == ("mine", "spheres")
    assert physical.pixel_size_nm == PIXEL_NM and physical.polarity == "bright"
    assert physical.diameter.params["median"] == pytest.approx(report["median_diameter_nm"], 0.1)
    learning = dataclasses.replace(config.learning, film_limits=(0.0, 0.2))
    assert learning == preset("tio2-sem").learning  # the rest is the preset's
    assert MaterialConfig.from_json(config.to_json()) == config
    expected = report["density_per_um2"] * (256 * PIXEL_NM / 1000) ** 2
    assert config.meshes.count == round(expected * (1 + 2 * config.placement.margin) ** 2)
    with pytest.raises(cal.CalibrationError, match="--pixel-size"):
        cal.calibrated_config(cal.calibrate([("s", disk_scan(0)[0])]))


def test_a_dark_preset_renders_dark_particles_on_a_bright_stage():
    """Calibrated on dark particles, the preset is lit for them: its synthetic pairs (mid-range
    values, as an untrained generator gives) pass the contrast filter in the dark direction."""
    from napari_diffrendergan.config import MaterialConfig, preset
    from napari_diffrendergan.render.sampling import (
        AnnotatedRenderer,
        RenderValues,
        mid_range_values,
    )

    report = cal.calibrate([(f"s{i}", disk_scan(i, "dark")[0]) for i in range(3)], PIXEL_NM)
    config = cal.calibrated_config(report, name="dark")
    assert config.polarity == "dark" and "for dark particles" in config.description
    assert (config.scene.torus_radiance, config.learning.stage_limits) == (0.0, (0.1, 1.0))
    assert MaterialConfig.from_json(config.to_json()) == config
    again = cal.calibrated_config(report, config)  # a dark --like keeps its own scene
    assert again.scene == config.scene and again.learning == config.learning
    config.scene.spp = 4
    renderer = AnnotatedRenderer(config, device="cpu", spp=4)
    middle = RenderValues.named(*mid_range_values(config))
    sample = renderer.render((0,), lambda phi, rng: middle, max_attempts=3)
    contrast = sample.info["contrast"]
    assert contrast["accepted"] and "darker than background" in contrast["reason"]
    assert contrast["particle_mean"] <= 0.85 * contrast["background_mean"]
    particles = sample.instances > 0
    assert sample.image[particles].mean() < sample.image[~particles].mean()
    bright = cal.calibrated_config(cal.calibrate([("b", disk_scan(0)[0])], PIXEL_NM))
    lighting = ("torus_radiance", "rect_radiance", "rect_size")  # bright ones keep theirs
    assert [getattr(bright.scene, k) for k in lighting] == [
        getattr(preset("sio2-him").scene, k) for k in lighting
    ]


def test_film_lines_take_the_particles_contrast():
    """Film threads are matter like the particles: bright lines on the stage of a bright
    preset, dark ones on that of a dark preset, in the renders as in the fields."""
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.render.film import apply_film, film_fields
    from napari_diffrendergan.render.placement import constellation
    from napari_diffrendergan.render.sampling import AnnotatedRenderer, RenderValues

    bright, dark = film_fields((128, 128), 3), film_fields((128, 128), 3, "dark")
    assert np.array_equal(bright[0], dark[0])  # the mottle has no direction
    lines = bright[1] > 2
    assert lines.sum() > 50
    stage, everywhere = np.full((128, 128), 0.8), np.ones((128, 128))
    darkened = apply_film(stage, everywhere, dark, [0.0, 0.1])[lines]
    brightened = apply_film(stage, everywhere, bright, [0.0, 0.1])[lines]
    assert darkened.max() < 0.8 < brightened.min()

    report = cal.calibrate([(f"s{i}", disk_scan(i, "dark")[0]) for i in range(3)], PIXEL_NM)
    config = cal.calibrated_config(report, preset("tio2-sem"))
    assert config.polarity == "dark" and config.learning.film
    config.scene.height = config.scene.width = 128
    renderer = AnnotatedRenderer(config, device="cpu", spp=1)
    phi = constellation(config, np.random.default_rng(0))

    def clean(lines_contrast):
        values = RenderValues.named(
            {"stage.base_color": 0.9, "film.mottle": 0.0, "film.lines": lines_contrast}, 0.0
        )
        return renderer.clean_image(phi, values, seed=5)

    difference = clean(0.2) - clean(0.0)
    on_lines = (film_fields((128, 128), 5, "dark")[1] < -2) & (renderer.scene.instances() == 0)
    assert on_lines.sum() > 20
    assert difference[on_lines].mean() < 0


@pytest.mark.parametrize("polarity", ["bright", "dark"])
def test_a_film_reaches_twice_the_texture_of_the_scans_background(polarity):
    """The background's blotches are measured (not the particles' edges), and a preset that
    learns a film gets contrasts up to twice them; a rougher background keeps its limit."""
    from napari_diffrendergan.config import preset

    def calibrated(texture):
        scans = [(f"s{i}", disk_scan(i, polarity, texture=texture)[0]) for i in range(3)]
        report = cal.calibrate(scans, PIXEL_NM)
        return report, cal.calibrated_config(report, preset("tio2-sem"))

    smooth, config = calibrated(0.04)
    measured = smooth["estimates"]["film_texture"]
    assert measured["value"] == pytest.approx(0.04, rel=0.2)
    assert measured["ci"][0] <= measured["value"] <= measured["ci"][1]
    assert config.learning.film_limits == pytest.approx((0.0, 2 * measured["value"]))
    assert "Support-film contrasts up to" in config.description
    rough, config = calibrated(0.15)
    assert rough["estimates"]["film_texture"]["value"] == pytest.approx(0.15, rel=0.2)
    assert config.learning.film_limits == (0.0, 0.2)
    del smooth["estimates"]["film_texture"]  # a report from before it was measured
    assert cal.calibrated_config(smooth, preset("tio2-sem")).learning.film_limits == (0.0, 0.2)


@pytest.mark.slow
@pytest.mark.parametrize("polarity", ["bright", "dark"])
def test_rendered_scans_give_the_true_size_and_density(polarity):
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.render.truth import render_truth_scans

    scans = render_truth_scans(preset("tio2-him"), polarity, seed=0, count=3)
    for scan in scans:  # the labels are what the silhouettes leave visible
        for slot in range(1, scan.instances.max() + 1):
            assert scan.silhouettes[slot - 1][scan.instances == slot].all()
    report = cal.calibrate([(f"r{i}", s.image) for i, s in enumerate(scans)], PIXEL_NM)
    diameters = [2 * np.sqrt(s.sum() / np.pi) for scan in scans for s in scan.whole()]
    density = sum(s.counted() for s in scans) / (3 * (256 * PIXEL_NM / 1000) ** 2)
    # three scans hold only about ten particles measured whole: looser than the benchmark's
    # targets (10 %, 15 %), which hold on eight scans per case (docs/calibration.md)
    assert report["polarity"] == polarity
    assert report["median_diameter_nm"] == pytest.approx(np.median(diameters) * PIXEL_NM, 0.15)
    assert report["density_per_um2"] == pytest.approx(density, rel=0.2)


@pytest.fixture
def scan_files(tmp_path):
    from napari_diffrendergan.io import write_tiff

    paths = []
    for seed in range(3):
        paths.append(tmp_path / f"scan{seed}.tif")
        image = np.vstack([disk_scan(seed, "dark")[0], np.ones((10, 256), np.float32)])
        write_tiff(paths[-1], image)  # a 10-row data bar at the bottom
    return paths


@pytest.mark.slow
def test_cli_calibrate_writes_a_preset_and_json(scan_files, tmp_path, capsys):
    from napari_diffrendergan.config import load_config

    out = tmp_path / "mine.json"
    files = [str(p) for p in scan_files]
    args = ["calibrate", *files, "--pixel-size", "2", "--exclude-bottom", "10", "--out", str(out)]
    assert main([*args, "--like", "tio2-sem", "--json"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    report = json.loads(printed[-1])
    assert report["polarity"] == "dark" and report["unit"] == "nm"
    for key in ("median_diameter_nm", "density_per_um2"):
        assert report[key] > 0 and report["estimates"][key if key[0] == "d" else "diameter"]
    assert "dark particles" in printed[0]
    matching = report["matching"]  # the prior was rendered and measured like the scans
    assert len(matching["rounds"]) == 2 and matching["seen"]["density_per_um2"] > 0
    assert report["median_diameter_nm"] == pytest.approx(
        matching["seen"]["median_diameter_nm"] * matching["diameter_factor"]
    )
    assert any("rendered and measured like the scans" in line for line in printed)
    fields = report["fields"]  # each 256² scan is a particle patch as the GAN gets them
    assert fields["count"] == 3 and any("particle fields: 3 patches" in x for x in printed)
    config, like = load_config(out), load_config("tio2-sem")
    assert config.physical.polarity == "dark"
    prior = report["density_per_um2"] * fields["scale"]
    assert config.physical.density_per_um2 == pytest.approx(prior)
    lit = dataclasses.replace(like.scene, **cal.DARK_SCENE)  # dark particles: lit for them
    assert dataclasses.replace(config.scene, field_width=8.0) == lit  # and the width derived


def test_cli_calibrate_compares_shapes_when_asked(scan_files, tmp_path, capsys, shapes_scored):
    from napari_diffrendergan.config import load_config
    from napari_diffrendergan.gan import prior_choice

    out = tmp_path / "mine.json"
    files = [str(p) for p in scan_files]
    args = ["calibrate", *files, "--pixel-size", "2", "--exclude-bottom", "10", "--out", str(out)]
    assert main(args) == 0 and shapes_scored == []  # not unless asked
    assert main([*args, "--compare-shapes", "--device", "cpu"]) == 0
    assert shapes_scored == [(prior_choice.SHAPES, 3, 2.0, "cpu")]  # each 256² scan a field
    printed = capsys.readouterr().out
    assert "shape by rendering: cubes (untrained FID against 3 particle fields" in printed
    assert "measured spheres" in printed and load_config(out).meshes.library == "cubes"


def test_cli_calibrate_refuses_what_it_cannot_do(scan_files, tmp_path, capsys):
    files = [str(p) for p in scan_files]
    assert main(["calibrate", str(tmp_path / "missing.tif")]) == 2
    error = capsys.readouterr().err.strip()
    assert "missing.tif: no such file" in error and len(error.splitlines()) == 1
    for option in (["--out", "x.json"], ["--compare-shapes"]):  # both need nm
        assert main(["calibrate", *files, "--exclude-bottom", "10", *option]) == 2
        error = capsys.readouterr().err.strip()
        assert "--pixel-size" in error and len(error.splitlines()) == 1
    assert main(["calibrate", *files, "--exclude-bottom", "10", "--json"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    report = json.loads(printed[-1])
    assert report["unit"] == "px" and report["median_diameter_nm"] is None
    assert "matching" not in report  # a prior in nm needs a pixel size
    assert report["median_diameter_px"] > 0 and "pixel size unknown" in " ".join(printed)
    from napari_diffrendergan.io import write_tiff

    write_tiff(tmp_path / "noise.tif", np.random.default_rng(0).normal(0.5, 0.05, (64, 64)))
    assert main(["calibrate", str(tmp_path / "noise.tif"), "--pixel-size", "2"]) == 2
    assert "no particles found" in capsys.readouterr().err


def test_read_scans_leaves_out_the_data_bar_it_finds(tio2_dir, tmp_path):
    import tifffile

    from napari_diffrendergan.analysis.calibration import CalibrationError, read_scans

    scan = sorted((tio2_dir / "images").glob("*.tif"))[0]
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.random.default_rng(0).random((64, 80)).astype(np.float32))
    scans, _ = read_scans([scan, plain], 7.0, exclude_bottom="auto")
    assert [image.shape for _, image in scans] == [(712, 1024), (64, 80)]
    scans, _ = read_scans([plain], exclude_bottom=10)
    assert scans[0][1].shape == (54, 80)
    with pytest.raises(CalibrationError, match="cannot leave out 60 of its 64 rows"):
        read_scans([plain], exclude_bottom=60)
