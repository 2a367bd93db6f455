"""The demo's overview page, drawn from a small stand-in of a demo's output folder."""

import json

import numpy as np
import pytest

from napari_diffrendergan.config import PRESETS
from napari_diffrendergan.demo import overview, overview_figure


def _demo_folder(out):
    """What ``diffrendergan demo`` leaves in ``out`` that the overview reads, in miniature,
    and its report."""
    from conftest import blob_sample
    from napari_diffrendergan.analysis.thickness import analyse, synthetic_wires, write_outputs
    from napari_diffrendergan.data.dataset import NnunetDataset, pair_name
    from napari_diffrendergan.data.patches import Patch, PatchSet
    from napari_diffrendergan.io import write_tiff

    scan, mask, labels = blob_sample(0, (96, 128), n=6)
    found = labels.copy()
    found[found == labels.max()] = 0  # the segmentation missed one particle
    segmentation = out / "segmentation"
    for kind, data in (("image", scan), ("labels", labels), ("instances", found)):
        write_tiff(segmentation / f"scan_{kind}.tif", data, pixel_size_nm=5.0)
    for name in ("tio2-sem", "agnw-sem"):
        write_tiff(out / "scenes" / name / "image.tif", blob_sample(1, (32, 32))[0])
    pixels = [blob_sample(s, (32, 32), n=2)[0] * 255 for s in range(3)]
    listed = [Patch("scan", 0, 32 * i, 32, "particle", 0.0, 2) for i in range(3)]
    PatchSet.save(out / "patches", listed, pixels, 5.0, {})
    dataset = NnunetDataset(out / "dataset")
    for i in range(3):
        image, mask, _ = blob_sample(10 + i, (32, 32), n=2)
        dataset.write_case(pair_name(i), image, mask)
    (out / "gan").mkdir()
    epochs = [{"epoch": 0, "fid": 300.0}, {"epoch": 1, "fid": 200.0, "breadth": 0.1}]
    metrics = {"epochs": epochs, "best_epoch": 1, "fid_floor": 40.0}
    (out / "gan" / "metrics.json").write_text(json.dumps(metrics))
    wires = analyse(synthetic_wires((64, 64), [6], seed=1))
    write_outputs(wires, out / "thickness", "agnw-sem")
    return (
        {
            "out": str(out),
            "scenes": {"tio2-sem": {}, "agnw-sem": {}},
            "scan": {"name": "TiO2 SEM 1908248", "source": "a test scan"},
            "patches": {"folder": str(out / "patches")},
            "dataset": {"folder": str(dataset.folder)},
            "gan": {"folder": str(out / "gan")},
            "segmentation": {"folder": str(segmentation)},
            "thickness": {"folder": str(out / "thickness"), **wires.summary()},
        },
        labels,
        found,
    )


def test_the_overview_shows_what_the_pipeline_made(tmp_path):
    report, labels, found = _demo_folder(tmp_path)
    figure = overview(report)
    titles = [ax.get_title() for ax in figure.axes]
    for expected in ("TiO2 SEM 1908248", "particle sizes", "synthetic", "real", "tio2-sem"):
        assert expected in titles, (expected, titles)
    assert f"segmented: {found.max()} particles ({labels.max()} labelled)" in titles
    assert any(t.startswith("nanowire local thickness (median") for t in titles)
    assert any(t.startswith("FID per epoch") for t in titles)
    sizes = next(ax for ax in figure.axes if ax.get_title() == "particle sizes")
    segmented = sum(patch.get_height() for patch in sizes.patches[:-1])  # the bars; then a step
    assert segmented == len(np.unique(found)) - 1
    assert sizes.get_xlabel() == "equivalent diameter (nm)"
    fid = next(ax for ax in figure.axes if ax.get_title().startswith("FID per epoch"))
    assert {line.get_ydata()[0] for line in fid.lines[1:]} >= {300.0, 40.0}  # untrained, floor

    from napari_diffrendergan.io import write_tiff

    scan = tmp_path / "segmentation" / "scan_image.tif"  # a scan of unknown pixel size: px
    write_tiff(scan, np.zeros((96, 128), np.float32), pixel_size_nm=None)
    sizes = next(ax for ax in overview(report).axes if ax.get_title() == "particle sizes")
    assert sizes.get_xlabel() == "equivalent diameter (px)"

    del report["thickness"]  # a demo without the nanowire preset says so
    titles = [ax.get_title() for ax in overview(report).axes]
    assert "nanowire local thickness" in titles
    overview_figure(report, tmp_path / "overview.png")
    assert (tmp_path / "overview.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PRESETS))
def test_every_presets_demo_scene_is_legible(name):
    """The particles stand out of the noise: their contrast to the background is several noise
    σ (agnw-sem's scene was noise σ 0.5 over a contrast of 0.13 before)."""
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.render.sampling import render_sample

    sample = render_sample(preset(name), spp=4, device="cpu")
    contrast = sample.info["contrast"]
    signal = contrast["particle_mean"] - contrast["background_mean"]
    assert signal > 3 * sample.info["noise_sigma"], (signal, sample.info["noise_sigma"])
