import json

import numpy as np
import pytest
import tifffile

from conftest import blob_sample
from napari_diffrendergan.cli import main
from napari_diffrendergan.data.patches import (
    PatchError,
    PatchSet,
    clip_region,
    cut_patches,
    tile_positions,
)
from napari_diffrendergan.errors import InputError


def scan():
    """A 300×600 scan: blobs in the left half, empty (noisy) background on the right."""
    image = np.full((300, 600), 0.2, np.float32)
    image[:, :300] = blob_sample(5, shape=(300, 300), n=30)[0]
    image[:, 300:] += np.random.default_rng(0).normal(0, 0.01, (300, 300)).astype(np.float32)
    return image


def test_tiles_cover_the_region_flush_with_its_edges():
    positions = tile_positions((0, 300, 10, 600), 256, 128)
    assert positions[0] == (0, 10)
    assert max(y for y, _ in positions) == 300 - 256
    assert max(x for _, x in positions) == 600 - 256


def test_auto_roles_find_particles_and_background():
    patches, pixels, _ = cut_patches(scan(), "scan", size=128, stride=64)
    roles = {p.role for p in patches}
    assert roles == {"particle", "background"}
    for patch, data in zip(patches, pixels, strict=True):
        assert data.shape == (128, 128) and data.dtype == np.float32
        if patch.role == "particle":
            assert patch.whole_particles >= 3 and patch.x < 300
        else:
            assert patch.foreground_fraction <= 0.01 and patch.x + 128 > 300


def test_a_lone_particle_is_not_background():
    """One particle (about 1 % of the patch, whole or cut by the border) is not background."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:128, :128]
    for cx in (64, 4):  # whole, and cut by the left border
        image = 0.2 + rng.normal(0, 0.01, (128, 128)).astype(np.float32)
        image[(yy - 64) ** 2 + (xx - cx) ** 2 <= 8**2] = 0.8  # 201 px: 1.2 % when whole
        assert cut_patches(image, "lone", size=128, max_background_fraction=0.02)[0] == []


def test_heavy_overlap_is_dropped():
    dense, _, _ = cut_patches(scan(), "scan", size=128, stride=16, role="background")
    for i, a in enumerate(dense):
        for b in dense[i + 1 :]:
            overlap = max(0, 128 - abs(a.y - b.y)) * max(0, 128 - abs(a.x - b.x))
            assert overlap <= 0.5 * 128 * 128


def test_inputs_of_any_kind():
    rgb = np.repeat((scan() * 255).astype(np.uint8)[..., None], 3, axis=2)
    patches, pixels, notes = cut_patches(rgb, "rgb", size=128, role="particle")
    assert "RGB converted to gray" in notes[0] and pixels[0].ndim == 2
    as16 = (scan() * 60000).astype(np.uint16)
    assert cut_patches(as16, "u16", size=128, role="particle")[0]


def test_regions_are_clipped_or_rejected():
    patches, _, notes = cut_patches(
        scan(), "scan", regions=[(-50, 200, 400, 900)], size=128, role="background"
    )
    assert patches and any("clipped" in n for n in notes)
    assert all(p.x >= 400 and p.x + 128 <= 600 for p in patches)
    with pytest.raises(PatchError, match="smaller than one 128×128 patch"):
        clip_region((0, 100, 0, 600), (300, 600), 128)
    with pytest.raises(InputError, match="NaN"):
        cut_patches(np.full((300, 300), np.nan), "nan", size=128)


def test_patch_set_round_trip_and_corruption(tmp_path):
    patches, pixels, _ = cut_patches(scan(), "scan", size=128, stride=64)
    PatchSet.save(tmp_path, patches, pixels, 7.5, {"size": 128})
    loaded = PatchSet.open(tmp_path)
    assert len(loaded.patches) == len(patches) and loaded.pixel_size_nm == 7.5
    assert loaded.meta["counts"]["particle"] == sum(p.role == "particle" for p in patches)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / loaded.patches[0].file), pixels[0])
    (tmp_path / loaded.patches[0].file).unlink()
    with pytest.raises(PatchError, match="missing"):
        PatchSet.open(tmp_path)
    (tmp_path / "patches.json").write_text("{broken")
    with pytest.raises(PatchError, match="corrupt"):
        PatchSet.open(tmp_path)


def test_appending_never_duplicates_overwrites_or_relabels(tmp_path):
    patches, pixels, _ = cut_patches(scan(), "scan", size=128, stride=64)
    first = PatchSet.save(tmp_path / "set", patches[:2], pixels[:2], 7.5, {})
    again = PatchSet.save(tmp_path / "set", patches, pixels, 7.5, {})  # a retry: 2 known
    assert [p.file for p in again.patches] == [f"patch_{i:05d}.tif" for i in range(len(patches))]
    assert again.patches[:2] == first.patches
    with pytest.raises(PatchError, match="7.5 nm per pixel"):
        PatchSet.save(tmp_path / "set", patches, pixels, 5.0, {})
    rounded = PatchSet.save(tmp_path / "set", patches, pixels, 7.504, {})  # the same, rounded
    assert rounded.pixel_size_nm == 7.5
    assert PatchSet.open(tmp_path / "set").pixel_size_nm == 7.5
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / "patch_00000.tif").write_bytes(b"someone's patch")
    with pytest.raises(PatchError, match="no patches.json"):
        PatchSet.save(orphan, patches[:1], pixels[:1], 7.5, {})
    assert (orphan / "patch_00000.tif").read_bytes() == b"someone's patch"
    with pytest.raises(InputError, match="positive number of nm"):
        PatchSet.save(tmp_path / "neg", patches[:1], pixels[:1], -3.0, {})


def test_cli_on_real_scans(tio2_dir, tmp_path, capsys):
    out = tmp_path / "set"
    images = [str(tio2_dir / "images" / f"{i}.tif") for i in ("1908248", "1908252")]
    assert (
        main(
            [
                "patches",
                *images,
                "--out",
                str(out),
                "--exclude-bottom",
                "56",
                "--pixel-size",
                "7.34375",
            ]
        )
        == 0
    )
    meta = json.loads((out / "patches.json").read_text())
    assert meta["counts"]["particle"] > 0 and meta["pixel_size_nm"] == 7.34375
    assert all(p["y"] + p["size"] <= 712 for p in meta["patches"])  # data bar left out
    assert "particle" in capsys.readouterr().out
    assert main(["patches", images[0], "--out", str(out), "--roi", "0:100,0:1024"]) == 2
