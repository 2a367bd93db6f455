"""Raw microscope scans: the pixel size from TIFF metadata (Zeiss, FEI/Thermo, OME, ImageJ),
the data bar, and the CLI commands and reader that use them."""

import json

import numpy as np
import pytest
import tifffile

from napari_diffrendergan.cli import main
from napari_diffrendergan.data.scans import DataBar, find_data_bar, pixel_size_from_metadata
from napari_diffrendergan.io import image_pixel_size, read_image, write_tiff


def zeiss_text(pixel_line: str = "Image Pixel Size = 7.344 nm") -> bytes:
    """A CZ_SEM tag as Zeiss SmartSEM writes it (cp1252, CRLF; the first lines unnamed
    numbers, then NAME / "Label = value unit" pairs), cut down to a few entries."""
    lines = ["0", "0", "0", "7.343750e-009", "AP_WIDTH", "Width = 7.52 µm"]
    lines += ["AP_IMAGE_PIXEL_SIZE", pixel_line, "DP_DETECTOR_CHANNEL", "Signal A = InLens"]
    return "\r\n".join(lines).encode("cp1252")


def fei_text(width: str = "2.5e-09") -> bytes:
    """An FEI/Thermo (Helios) metadata tag: an INI text, PixelWidth in metres."""
    lines = ["[User]", "Date=01/02/2024", "[Scan]", f"PixelWidth={width}", "HorFieldsize=2.56e-06"]
    return "\r\n".join(lines).encode()


def scan_pixels(shape=(96, 128), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(90, 12, shape), 0, 255).astype(np.uint8)


def write_zeiss(path, data=None, text: bytes | None = None) -> None:
    data = scan_pixels() if data is None else data
    tifffile.imwrite(path, data, extratags=[(34118, "s", 0, text or zeiss_text(), True)])


def write_fei(path, width: str = "2.5e-09") -> None:
    tifffile.imwrite(path, scan_pixels(), extratags=[(34682, "s", 0, fei_text(width), True)])


def test_each_kind_of_metadata_gives_the_pixel_size_in_nm(tmp_path):
    write_zeiss(tmp_path / "zeiss.tif")
    write_fei(tmp_path / "fei.tif")
    tifffile.imwrite(
        tmp_path / "ome.tif",
        scan_pixels(),
        ome=True,
        metadata={"axes": "YX", "PhysicalSizeX": 0.0123, "PhysicalSizeXUnit": "µm"},
    )
    tifffile.imwrite(
        tmp_path / "ome_default_unit.tif",
        scan_pixels(),
        ome=True,
        metadata={"axes": "YX", "PhysicalSizeX": 0.02},
    )
    for unit, expected in (("um", 500.0), ("micron", 500.0), ("nm", 0.5), ("\\u00B5m", 500.0)):
        tifffile.imwrite(
            tmp_path / f"imagej_{len(unit)}.tif",
            scan_pixels(),
            imagej=True,
            resolution=(2.0, 2.0),  # 2 pixels per unit: 0.5 unit per pixel
            metadata={"unit": unit},
        )
        assert pixel_size_from_metadata(tmp_path / f"imagej_{len(unit)}.tif") == (
            pytest.approx(expected),
            "ImageJ metadata",
        )
    assert pixel_size_from_metadata(tmp_path / "zeiss.tif") == (7.344, "Zeiss metadata (CZ_SEM)")
    assert pixel_size_from_metadata(tmp_path / "fei.tif") == (
        pytest.approx(2.5),
        "FEI/Thermo metadata",
    )
    assert pixel_size_from_metadata(tmp_path / "ome.tif") == (pytest.approx(12.3), "OME metadata")
    assert pixel_size_from_metadata(tmp_path / "ome_default_unit.tif")[0] == pytest.approx(20.0)


def test_junk_or_missing_metadata_gives_no_pixel_size_and_no_error(tmp_path):
    write_zeiss(tmp_path / "zeiss_junk.tif", text=zeiss_text("Image Pixel Size = banana nm"))
    write_zeiss(tmp_path / "zeiss_zero.tif", text=zeiss_text("Image Pixel Size = 0 nm"))
    write_zeiss(tmp_path / "zeiss_unit.tif", text=zeiss_text("Image Pixel Size = 7 parsecs"))
    write_zeiss(tmp_path / "zeiss_bytes.tif", text=bytes(range(1, 256)) * 4)
    write_fei(tmp_path / "fei_negative.tif", "-2.5e-09")
    write_fei(tmp_path / "fei_text.tif", "wide")
    tifffile.imwrite(tmp_path / "dpi.tif", scan_pixels(), resolution=(72, 72), resolutionunit=2)
    tifffile.imwrite(
        tmp_path / "imagej_pixels.tif",
        scan_pixels(),
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"unit": "pixel"},
    )
    (tmp_path / "not_a.tif").write_bytes(b"II*\x00 truncated")
    (tmp_path / "scan.png").write_bytes(b"\x89PNG")
    for path in sorted(tmp_path.iterdir()):
        assert pixel_size_from_metadata(path) == (None, ""), path.name


def test_read_image_takes_the_sidecar_before_the_metadata(tmp_path):
    write_zeiss(tmp_path / "scan.tif")
    assert read_image(tmp_path / "scan.tif")[1] == 7.344
    (tmp_path / "scan.json").write_text(json.dumps({"pixel_size_nm": 7.0}))
    assert image_pixel_size(tmp_path / "scan.tif") == (7.0, "sidecar scan.json")
    (tmp_path / "scan.json").write_text(json.dumps({"pixel_size_nm": None}))  # as for renders
    assert image_pixel_size(tmp_path / "scan.tif") == (7.344, "Zeiss metadata (CZ_SEM)")


def model_folder_without_network(folder):
    """A model folder that passes the checks made before segmenting; its network is never
    loaded for a uniform image."""
    for name in ("plans.json", "fold_all/checkpoint_final.pth"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    labels = {"background": 0, "particle": 1, "contour": 2}
    (folder / "dataset.json").write_text(json.dumps({"labels": labels}))
    (folder / "model.json").write_text(json.dumps({"config": "small"}))
    return folder


def test_cli_patches_and_segment_take_the_pixel_size_from_zeiss_metadata(tmp_path, capsys):
    from napari_diffrendergan.data.patches import PatchSet

    image = tmp_path / "scan.tif"
    write_zeiss(image, with_bar(scan_pixels((300, 320))))
    assert (
        main(
            [
                "patches",
                str(image),
                "--out",
                str(tmp_path / "set"),
                "--role",
                "background",
                "--size",
                "64",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "pixel size 7.344 nm from the Zeiss metadata (CZ_SEM)" in out
    assert "data bar left out: 30 rows at the bottom" in out
    patch_set = PatchSet.open(tmp_path / "set")
    assert patch_set.pixel_size_nm == 7.344
    assert max(p.y + p.size for p in patch_set.patches) <= 270  # nothing of the bar

    uniform = tmp_path / "uniform.tif"  # segmented without the network: no model needed
    write_zeiss(uniform, with_bar(np.full((120, 100), 60, np.uint8)))
    assert (
        main(
            [
                "segment",
                str(uniform),
                "--model",
                str(model_folder_without_network(tmp_path / "model")),
                "--out",
                str(tmp_path / "seg"),
            ]
        )
        == 0
    )
    assert "pixel size 7.344 nm from the Zeiss metadata" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / "seg" / "uniform_mask.json").read_text())
    assert sidecar["pixel_size_nm"] == 7.344
    assert (sidecar["excluded_bottom_rows"], sidecar["excluded_top_rows"]) == (12, 0)
    flat = tmp_path / "flat.tif"
    write_zeiss(flat, np.full((120, 100), 60, np.uint8))
    assert (
        main(
            [
                "segment",
                str(flat),
                "--model",
                str(tmp_path / "model"),
                "--out",
                str(tmp_path / "seg2"),
                "--pixel-size",
                "5",
                "--exclude-bottom",
                "3",
            ]
        )
        == 0
    )
    sidecar = json.loads((tmp_path / "seg2" / "flat_mask.json").read_text())
    assert sidecar["pixel_size_nm"] == 5.0 and sidecar["excluded_bottom_rows"] == 3


# --- the data bar -------------------------------------------------------------------------


def with_bar(image: np.ndarray, share: float = 0.1, edge: str = "bottom", level: int = 0):
    """``image`` with a data bar of ``share`` of its height: rows of one grey level with a
    few lines of text (blocks of the opposite level) and a scale bar."""
    rows = max(4, int(round(share * image.shape[0])))
    bar = np.full((rows, image.shape[1]), level, image.dtype)
    glyph = 255 - level
    for x in range(8, image.shape[1] // 2, 9):  # "characters": 5 px wide, rows 2-7 of the bar
        bar[2 : min(rows - 1, 8), x : x + 5] = glyph
    bar[rows // 2 : rows // 2 + 2, -40:-8] = glyph  # the scale bar
    return np.vstack([image[:-rows], bar] if edge == "bottom" else [bar, image[rows:]])


def test_data_bar_found_on_synthetic_scans_only_where_there_is_one():
    from conftest import blob_sample

    scan = scan_pixels((200, 256))
    assert find_data_bar(scan) is None
    assert find_data_bar(blob_sample(3)[0]) is None  # float, noisy
    assert find_data_bar(np.full((100, 100), 7.0)) is None  # uniform
    clean = (40 + 150 * (blob_sample(5, (160, 160))[2] > 0)).astype(np.uint8)  # no noise
    assert find_data_bar(clean) is None  # flat background: no band that differs from it
    assert find_data_bar(with_bar(scan, 0.1)) == DataBar("bottom", 20)
    assert find_data_bar(with_bar(scan, 0.06, "top", level=255)) == DataBar("top", 12)
    assert find_data_bar(with_bar(scan, 0.4)) is None  # too tall for a data bar
    float_scan = with_bar(scan, 0.1).astype(np.float32) / 255  # any grey scale
    assert find_data_bar(float_scan) == DataBar("bottom", 20)
    assert DataBar("bottom", 20).kept_rows(200) == (0, 180)
    assert DataBar("top", 12).kept_rows(200) == (12, 200)


def test_data_bar_of_the_real_tio2_scans(tio2_dir):
    """The 32 TiO2 scans (Zeiss Supra 40): rows 712..767 of 768 are the data bar."""
    images = sorted((tio2_dir / "images").glob("*.tif"))
    assert len(images) >= 30
    for path in images:
        image = tifffile.imread(path)
        assert find_data_bar(image) == DataBar("bottom", 56), path.name
        assert find_data_bar(image[:712]) is None, path.name
        assert pixel_size_from_metadata(path) == (7.344, "Zeiss metadata (CZ_SEM)")


def test_cli_patches_of_a_real_scan_without_its_data_bar_at_its_pixel_size(
    tio2_dir, tmp_path, capsys
):
    image = tio2_dir / "images" / "1908248.tif"
    assert main(["patches", str(image), "--out", str(tmp_path / "set")]) == 0
    assert "data bar left out: 56 rows at the bottom" in capsys.readouterr().out
    meta = json.loads((tmp_path / "set" / "patches.json").read_text())
    assert meta["pixel_size_nm"] == 7.344 and meta["counts"]["particle"] > 0
    assert max(p["y"] + p["size"] for p in meta["patches"]) == 712


# --- the reader ---------------------------------------------------------------------------


def test_reader_claims_only_the_plugins_outputs(tmp_path):
    import yaml
    from napari.components import ViewerModel
    from napari.plugins import _npe2
    from npe2 import PluginManager

    from napari_diffrendergan import reader
    from napari_diffrendergan.data.patches import Patch, PatchSet

    manifest = yaml.safe_load((reader.Path(reader.__file__).parent / "napari.yaml").read_text())
    (contribution,) = manifest["contributions"]["readers"]
    assert tuple(contribution["filename_patterns"]) == reader.FILE_PATTERNS
    assert not contribution["accepts_directories"]  # napari would ask about every folder

    PluginManager.instance().discover()  # as napari does when it starts
    write_zeiss(tmp_path / "raw.tif")
    tifffile.imwrite(tmp_path / "raw2.TIFF", scan_pixels())
    write_tiff(tmp_path / "raw_mask.tif", np.ones((8, 8), np.uint8), pixel_size_nm=7.5)
    PatchSet.save(
        tmp_path / "set", [Patch("s", 0, 0, 16, "particle", 0.0, 3)], [np.ones((16, 16))], 7.5, {}
    )
    for raw in ("raw.tif", "raw2.TIFF", "set"):  # napari's own reader: no choice to make
        assert list(_npe2.get_readers(str(tmp_path / raw))) == ["napari"], raw
    assert reader.get_reader(str(tmp_path / "raw.tif")) is None
    assert reader.get_reader(str(tmp_path / "raw2.TIFF")) is None
    (layer,) = ViewerModel()._open_or_raise_error([str(tmp_path / "raw.tif")])
    assert layer.source.reader_plugin == "napari" and layer.source.path == str(tmp_path / "raw.tif")
    for ours in ("raw_mask.tif", "set/patches.json"):
        assert "napari-diffrendergan" in _npe2.get_readers(str(tmp_path / ours))
        assert reader.get_reader(str(tmp_path / ours)) is not None
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "patches.json").write_text("{}")  # someone else's file
    (tmp_path / "fake_mask.tif").write_bytes(b"not a TIFF")
    assert reader.get_reader(str(tmp_path / "other" / "patches.json")) is None
    assert reader.get_reader(str(tmp_path / "fake_mask.tif")) is None
