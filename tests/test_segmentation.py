import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from conftest import blob_sample
from napari_diffrendergan.analysis.evaluation import score_image
from napari_diffrendergan.cli import main
from napari_diffrendergan.data.dataset import DatasetError, NnunetDataset
from napari_diffrendergan.errors import Cancelled, InputError
from napari_diffrendergan.progress import Monitor
from napari_diffrendergan.segment.model import ModelFolder, SegmentationError
from napari_diffrendergan.segment.predict import (
    Prediction,
    Segmenter,
    prepare_image,
    segment_image,
)
from napari_diffrendergan.segment.training import train_model

pytestmark = pytest.mark.slow


def test_dataset_passes_nnunet_integrity_check(blob_dataset):
    code = (
        "import sys\n"
        "from nnunetv2.experiment_planning.verify_dataset_integrity import "
        "verify_dataset_integrity\n"
        "if __name__ == '__main__':\n"
        "    verify_dataset_integrity(sys.argv[1], 1)\n    print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(blob_dataset)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    meta = json.loads((blob_dataset / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "particle": 1, "contour": 2}
    assert meta["numTraining"] == 8


def test_write_dataset_rejects_bad_masks(tmp_path):
    dataset = NnunetDataset(tmp_path / "Dataset002_X")
    with pytest.raises(DatasetError, match="0, 1 or 2"):
        dataset.write([np.zeros((8, 8))], [np.full((8, 8), 5)], contour_thickness=1)
    with pytest.raises(DatasetError, match="equal in shape"):
        dataset.write([np.zeros((8, 8))], [np.zeros((9, 8))], contour_thickness=1)


def test_trained_model_folder_is_self_contained(tiny_model):
    meta = ModelFolder(tiny_model).metadata()
    assert meta["config"] == "small" and meta["iterations"] == 60
    assert meta["contour_thickness"] == 1  # from the dataset's index
    assert (tiny_model / "fold_all" / "checkpoint_final.pth").is_file()
    assert "workspace" not in json.dumps(meta)


def test_segments_blobs(tiny_model):
    segmenter = Segmenter(tiny_model, device="cpu")
    image, mask, instances = blob_sample(100)
    result = segment_image(segmenter, image, pixel_size_nm=5.0)
    assert result.mask.dtype == np.uint8 and result.mask.shape == image.shape
    assert set(np.unique(result.mask)) <= {0, 1, 2}
    scores = score_image(instances, result.instances)
    assert scores.dsc > 0.8
    assert len(result.table["label"]) == result.instances.max()
    assert "equivalent_diameter_nm" in result.table
    found = segmenter.predict_probabilities(image)
    np.testing.assert_array_equal(found.mask, result.mask)
    assert ((found.foreground > 0.5) == (found.mask > 0)).mean() > 0.99  # argmax agrees
    assert ((found.particle > 0.5) == (found.mask == 1)).mean() > 0.97
    assert (found.particle <= found.foreground + 1e-6).all()
    assert result.table["confidence"].min() > 0.5 and result.table["confidence"].max() <= 1


def test_particles_grow_back_into_the_models_contour_width(tiny_model):
    from napari_diffrendergan.render.labels import semantic_mask

    _, _, instances = blob_sample(1)  # 8 disks, each with a core inside a 3 px contour
    segmenter = Segmenter(tiny_model, device="cpu")
    mask = semantic_mask(instances, 3)
    segmenter.predict_probabilities = lambda image, monitor=None: Prediction(
        mask, (mask > 0).astype(np.float32), (mask == 1).astype(np.float32)
    )
    segmenter.contour_thickness = 3  # as if trained on masks with a 3 px contour
    result = segment_image(segmenter, instances.astype(np.float32), watershed=False)
    np.testing.assert_array_equal(result.instances > 0, instances > 0)
    assert score_image(instances, result.instances).ap50 == 1.0
    segmenter.contour_thickness = 1  # growing back too little loses the outer ring
    thin = segment_image(segmenter, instances.astype(np.float32), watershed=False)
    assert (thin.instances > 0).sum() < (instances > 0).sum()


def test_whole_image_window_agrees_with_sliding_window(tiny_model):
    image = np.tile(blob_sample(9, shape=(96, 96))[0], (2, 3))
    sliding = Segmenter(tiny_model, device="cpu", window="sliding").predict(image)
    whole = Segmenter(tiny_model, device="cpu", window="whole").predict(image)
    assert (sliding == whole).mean() > 0.97
    mirrored = Segmenter(tiny_model, device="cpu", mirroring="x").predict(image)
    assert (mirrored == whole).mean() > 0.97
    with pytest.raises(SegmentationError, match="window must be"):
        Segmenter(tiny_model, window="tiles")
    with pytest.raises(SegmentationError, match="mirroring must be"):
        Segmenter(tiny_model, mirroring="yes")


def test_tiling_matches_whole_image(tiny_model):
    image = np.tile(blob_sample(7, shape=(96, 96))[0], (2, 3))
    whole = Segmenter(tiny_model, device="cpu").predict_probabilities(image)
    tiled = Segmenter(tiny_model, device="cpu", tile=64).predict_probabilities(image)
    assert (whole.mask == tiled.mask).mean() > 0.97
    assert np.abs(whole.foreground - tiled.foreground).mean() < 0.03
    assert np.abs(whole.particle - tiled.particle).mean() < 0.03


def test_region_leaves_the_rest_empty(tiny_model):
    segmenter = Segmenter(tiny_model, device="cpu")
    image = blob_sample(3)[0]
    result = segment_image(segmenter, image, region=(0, 100, 0, 128))
    assert (result.mask[100:] == 0).all()
    with pytest.raises(SegmentationError, match="less than 8"):
        segment_image(segmenter, image, region=(0, 4, 0, 128))


def test_bad_images_and_models(tiny_model, tmp_path):
    gray, notes = prepare_image(np.zeros((20, 20, 3), np.uint8))
    assert gray.shape == (20, 20) and "RGB" in notes[0]
    assert prepare_image(np.zeros((20, 20), np.uint16))[0].dtype == np.float32
    with pytest.raises(InputError, match="NaN"):
        prepare_image(np.full((20, 20), np.nan))
    with pytest.raises(SegmentationError, match="too small"):
        prepare_image(np.zeros((4, 20)))
    with pytest.raises(InputError, match="2D"):
        prepare_image(np.zeros((2, 20, 20)))
    small = Segmenter(tiny_model, device="cpu").predict(blob_sample(1, shape=(40, 40))[0])
    assert small.shape == (40, 40)  # smaller than the 128 px patch: padded internally
    with pytest.raises(SegmentationError, match="does not exist"):
        Segmenter(tmp_path / "nowhere")
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "fold_all" / "checkpoint_final.pth").unlink()
    with pytest.raises(SegmentationError, match="incomplete.*checkpoint_final"):
        Segmenter(broken)
    (broken / "fold_all" / "checkpoint_final.pth").write_bytes(b"corrupt")
    with pytest.raises(SegmentationError, match="cannot load model"):
        Segmenter(broken)
    dataset = json.loads((broken / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, "particle": 1}
    (broken / "dataset.json").write_text(json.dumps(dataset))
    with pytest.raises(SegmentationError, match="2 classes"):
        ModelFolder(broken).metadata()
    (broken / "model.json").write_text("{not json")
    with pytest.raises(SegmentationError, match="model.json"):
        ModelFolder(broken).metadata()


def test_cancel_stops_training(blob_dataset, tmp_path):
    import time

    monitor = Monitor(lambda done, total, message: monitor.cancel())  # at the first report
    started = time.perf_counter()
    with pytest.raises(Cancelled):
        train_model(blob_dataset, tmp_path / "m", iterations=10, device="cpu", monitor=monitor)
    assert time.perf_counter() - started < 60
    assert not (tmp_path / "m" / "model.json").exists()


def test_training_refuses_to_overwrite_a_model(tiny_model, blob_dataset):
    with pytest.raises(SegmentationError, match="already holds a trained model"):
        train_model(blob_dataset, tiny_model, iterations=1)


def test_cli_segment_writes_outputs_and_evaluates(tiny_model, tmp_path, capsys):
    images, truth = tmp_path / "images", tmp_path / "truth"
    images.mkdir()
    truth.mkdir()
    for seed in (20, 21):
        image, _, instances = blob_sample(seed)
        tifffile.imwrite(images / f"s{seed}.tif", image)
        tifffile.imwrite(truth / f"s{seed}_instances.tif", instances)
    out = tmp_path / "out"
    assert (
        main(
            [
                "segment",
                str(images),
                "--model",
                str(tiny_model),
                "--out",
                str(out),
                "--pixel-size",
                "5",
                "--workers",
                "2",
                "--device",
                "cpu",
                "--core-threshold",
                "0.8",
                "--min-seed-area",
                "30",
            ]
        )
        == 0
    )
    for seed in (20, 21):
        mask = tifffile.imread(out / f"s{seed}_mask.tif")
        assert set(np.unique(mask)) <= {0, 1, 2}
        assert tifffile.imread(out / f"s{seed}_instances.tif").max() > 0
        header = (out / f"s{seed}_particles.csv").read_text().splitlines()[0]
        assert "equivalent_diameter_nm" in header and "feret_min_nm" in header
        sidecar = json.loads((out / f"s{seed}_mask.json").read_text())
        assert sidecar["pixel_size_nm"] == 5.0 and sidecar["core_threshold"] == 0.8
        assert sidecar["min_seed_area"] == 30
        _check_size_report(out / f"s{seed}")
    assert "D50" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out), "--truth", str(truth), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["dsc"] > 0.8 and len(result["images"]) == 2
    assert 0.5 < result["ap50_coco"] <= 1  # ranked by the confidences of the particle tables


def _check_size_report(stem) -> None:
    """``<name>_sizes.json`` is strict JSON whose counts agree with the particle table, and
    whose D50 (in nm) lies in its interval and comes from whole particles only."""
    import csv

    def refuse(constant):
        raise ValueError(constant)

    report = json.loads(
        stem.with_name(stem.name + "_sizes.json").read_text(), parse_constant=refuse
    )
    with open(stem.with_name(stem.name + "_particles.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    statistics = report["statistics"]
    cut = [r for r in rows if r["touches_border"] == "True"]
    assert statistics["unit"] == "nm" and statistics["count"]["detected"] == len(rows)
    assert statistics["count"]["touching_border"] == len(cut)
    whole = sorted(float(r["equivalent_diameter_nm"]) for r in rows if r not in cut)
    d50 = statistics["sizes"]["equivalent_diameter"]["D50"]
    assert d50["value"] == pytest.approx(float(np.percentile(whole, 50)))
    assert d50["ci_low"] <= d50["value"] <= d50["ci_high"]
    assert report["nanomaterial_screen"]["verdict"] is not None
