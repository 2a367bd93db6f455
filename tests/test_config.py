import json

import pytest

from napari_diffrendergan.config import (
    PRESETS,
    ConfigError,
    MaterialConfig,
    load_config,
    preset,
)


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_json_round_trip(name, tmp_path):
    config = preset(name)
    again = MaterialConfig.from_json(config.to_json())
    assert again == config
    path = tmp_path / f"{name}.json"
    config.save(path)
    assert load_config(path) == config


def test_presets_follow_the_paper():
    sem, him, sio2, agnw = (preset(n) for n in ("tio2-sem", "tio2-him", "sio2-him", "agnw-sem"))
    assert (sem.meshes.library, sem.meshes.count) == ("pebbles", 26)
    assert sem.placement.kind == "poisson-3d" and sem.size.kind == "lognormal"
    assert sem.learning.noise_limits == (0.001, 0.1)
    assert sem.learning.stage_limits == (0.01, 0.8)
    assert sem.learning.particle_limits == (0.01, 5.0)
    assert sem.learning.film and sem.learning.blur and sem.learning.clamp
    assert sem.contour_thickness == 2
    assert (him.meshes.library, him.meshes.count, him.contour_thickness) == ("cubes", 15, 4)
    assert him.learning.noise_limits == (0.001, 0.2) and him.learning.stage_limits == (0.01, 0.3)
    assert (sio2.meshes.library, sio2.meshes.count, sio2.size.kind) == ("spheres", 20, "bimodal")
    assert sio2.contour_thickness == 4 and sio2.learning.stage_limits == (0.01, 0.3)
    assert (agnw.meshes.library, agnw.meshes.count) == ("wires", 10)
    assert agnw.placement.kind == "random-2d" and agnw.learning.stage_limits == (0.01, 5.0)
    assert him.scene.filter_stddev == sio2.scene.filter_stddev == 3.0  # the paper's HIM cases
    for config in (sem, him, sio2, agnw):
        # sheen and specular tint change nothing in a gray render without specular (measured)
        assert config.learning.particle_params == ["roughness", "base_color", "sheen"]
        assert config.learning.stage_params == ["base_color"]
        assert config.learning.particle_fixed == {"specular": 0.0, "metallic": 0.0}
        assert config.learning.stage_fixed == {"roughness": 0.5, "specular": 0.0}
        assert config.scene.torus_radiance == 1.0 and config.scene.rect_radiance == 0.1
        assert round(config.scene.spp**0.5) ** 2 == config.scene.spp


def test_limits_reach_past_one_as_the_paper_allows():
    learning = preset("tio2-sem").learning
    assert learning.limits_for("particle", "roughness") == (0.01, 5.0)
    assert learning.limits_for("particle", "base_color") == (0.01, 5.0)
    assert learning.limits_for("stage", "base_color") == (0.01, 0.8)
    bad = preset("tio2-sem").to_dict()
    bad["learning"]["particle_fixed"] = {"roughness": 0.5, "glow": 1.0}  # learned; unknown
    bad["scene"]["spp"] = 10
    with pytest.raises(ConfigError) as err:
        MaterialConfig.from_dict(bad)
    assert "roughness, glow not fixable" in str(err.value) and "square number" in str(err.value)


def test_validation_lists_every_problem():
    data = preset("tio2-sem").to_dict()
    data["size"] = {"kind": "lognormal", "params": {"median": -1.0}}
    data["placement"]["kind"] = "hexagonal"
    data["scene"]["spp"] = 0
    data["learning"]["noise_limits"] = [0.2, 0.1]
    data["learning"]["particle_params"] = ["glossiness"]
    with pytest.raises(ConfigError) as info:
        MaterialConfig.from_dict(data)
    message = str(info.value)
    for fragment in (
        "size (lognormal) needs parameters sigma",
        "size.median must be a positive",
        "hexagonal",
        "scene.spp",
        "noise_limits",
        "glossiness",
    ):
        assert fragment in message


def test_unknown_keys_and_bad_json_are_rejected():
    with pytest.raises(ConfigError, match="unknown key"):
        MaterialConfig.from_dict({"name": "x", "colour": 1})
    with pytest.raises(ConfigError, match="not valid JSON"):
        MaterialConfig.from_json("{")
    with pytest.raises(ConfigError, match="neither a preset"):
        load_config("no-such-preset")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        MaterialConfig.from_dict(json.loads("[1, 2]"))


def test_removed_integrator_key_of_older_files_is_ignored(caplog):
    old = preset("tio2-sem").to_dict()
    old["scene"]["integrator"] = "direct"  # what every render used
    assert MaterialConfig.from_dict(old) == preset("tio2-sem")
    assert not caplog.records
    old["scene"]["integrator"] = "prb"  # never acted: said so
    assert MaterialConfig.from_dict(old) == preset("tio2-sem")
    assert "scene.integrator 'prb' is ignored" in caplog.text
    assert "integrator" not in preset("tio2-sem").to_dict()["scene"]


def test_tiny_image_is_rejected():
    config = preset("tio2-sem")
    config.scene.width = 8
    with pytest.raises(ConfigError, match="too small"):
        config.validate()


def physical_config(**physical):
    from napari_diffrendergan.config import PhysicalConfig, SizeDistribution

    config = preset("tio2-sem")
    diameter = SizeDistribution("lognormal", {"median": 40.0, "sigma": 0.3}, 2.0, 400.0)
    config.physical = PhysicalConfig(**{"pixel_size_nm": 2.0, "diameter": diameter} | physical)
    return config.validate()


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_in_mesh_units_are_written_as_before(name):
    data = json.loads(preset(name).to_json())
    assert "physical" not in data  # files of configurations without it keep their bytes
    assert MaterialConfig.from_dict(data) == preset(name)
    assert MaterialConfig.from_dict(data | {"physical": None}) == preset(name)


def test_physical_sizes_set_the_mesh_units():
    from napari_diffrendergan.render.meshes import projected_diameter

    config = physical_config(density_per_um2=50.0)
    field_um = 256 * 2.0 / 1000
    expected = 50.0 * field_um**2 * (1 + 2 * config.placement.margin) ** 2
    assert config.meshes.count == round(expected)
    # a mesh of scale 1 has the median diameter: 40 nm = 20 px of the 256 px field
    assert config.scene.field_width == pytest.approx(256 / 20 * projected_diameter("pebbles"))
    assert config.size.params == {"median": 1.0, "sigma": 0.3}
    assert (config.size.minimum, config.size.maximum) == (0.05, 10.0)
    again = MaterialConfig.from_json(config.to_json())
    assert again == config and again.physical == config.physical
    typed = json.loads(config.to_json())
    typed["scene"]["field_width"], typed["meshes"]["count"] = 99.0, 3  # derived, not typed
    assert MaterialConfig.from_dict(typed) == config
    larger = physical_config(density_per_um2=50.0).resized(512, 512)
    assert larger.scene.field_width == pytest.approx(2 * config.scene.field_width)
    assert larger.meshes.count == round(4 * expected)


def test_bimodal_physical_sizes_keep_their_ratios():
    from napari_diffrendergan.config import SizeDistribution

    modes = {"mean1": 20.0, "std1": 2.0, "mean2": 60.0, "std2": 6.0, "weight2": 0.5}
    config = physical_config(diameter=SizeDistribution("bimodal", modes, 2.0, 400.0))
    assert config.size.params == pytest.approx(
        {"mean1": 0.5, "std1": 0.05, "mean2": 1.5, "std2": 0.15, "weight2": 0.5}
    )


def test_bad_physical_sections_are_reported_together():
    bad = physical_config().to_dict()
    bad["physical"].update(pixel_size_nm=-1, density_per_um2=0, polarity="grey")
    bad["physical"]["diameter"]["params"] = {"median": 40.0}
    with pytest.raises(ConfigError) as err:
        MaterialConfig.from_dict(bad)
    for part in ("physical.pixel_size_nm", "density_per_um2", "'grey'", "needs parameters sigma"):
        assert part in str(err.value)
    with pytest.raises(ConfigError, match="physical: unknown key"):
        MaterialConfig.from_dict(bad | {"physical": {"pixels": 3}})
