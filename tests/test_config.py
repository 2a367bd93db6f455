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


def test_tiny_image_is_rejected():
    config = preset("tio2-sem")
    config.scene.width = 8
    with pytest.raises(ConfigError, match="too small"):
        config.validate()
