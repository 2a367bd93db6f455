import json

import numpy as np
import pytest
import tifffile

from napari_diffrendergan.analysis.evaluation import (
    MATCH_COLOURS,
    EvaluationError,
    case_key,
    coco_ap50,
    evaluate_folders,
    match_overlay,
    ranked_matches,
    score_image,
    to_instances,
)
from napari_diffrendergan.cli import main


def squares(*boxes, shape=(40, 60)):
    labels = np.zeros(shape, np.int32)
    for i, (y, x, h, w) in enumerate(boxes, start=1):
        labels[y : y + h, x : x + w] = i
    return labels


def test_perfect_prediction_scores_one():
    truth = squares((2, 2, 10, 10), (20, 30, 8, 12), (5, 45, 6, 6))
    s = score_image(truth, truth.copy())
    assert (s.dsc, s.ap50, s.pq) == (1.0, 1.0, 1.0)
    assert (s.tp, s.fp, s.fn) == (3, 0, 0)


def test_shifted_prediction():
    s = score_image(squares((5, 5, 10, 10)), squares((5, 7, 10, 10)))
    assert s.dsc == pytest.approx(0.8)  # 80 px overlap of 100 + 100
    assert s.ap50 == 1.0  # IoU 80/120 > 0.5
    assert s.pq == pytest.approx(80 / 120)


def test_split_particle_is_not_a_match():
    truth = squares((5, 5, 10, 20))
    pred = squares((5, 5, 10, 10), (5, 15, 10, 10))  # each half: IoU exactly 0.5
    s = score_image(truth, pred)
    assert s.dsc == 1.0 and (s.tp, s.fp, s.fn) == (0, 2, 1)
    assert s.ap50 == 0.0 and s.pq == 0.0


def test_merged_particles():
    truth = squares((5, 5, 10, 10), (5, 15, 10, 10), (25, 40, 10, 10))
    pred = squares((5, 5, 10, 20), (25, 40, 10, 10))
    s = score_image(truth, pred)
    assert (s.tp, s.fp, s.fn) == (1, 1, 2)
    assert s.ap50 == pytest.approx(1 / 4)
    assert s.pq == pytest.approx(1.0 / (1 + 0.5 + 1.0))


def test_empty_cases():
    empty = np.zeros((20, 20), np.int32)
    one = squares((2, 2, 5, 5), shape=(20, 20))
    both = score_image(empty, empty)
    assert (both.dsc, both.ap50, both.pq) == (1.0, 1.0, 1.0)
    missed = score_image(one, empty)
    assert (missed.dsc, missed.ap50, missed.pq, missed.fn) == (0.0, 0.0, 0.0, 1)
    hallucinated = score_image(empty, one)
    assert (hallucinated.ap50, hallucinated.fp) == (0.0, 1)
    assert (hallucinated.pieces, hallucinated.false_positive) == (0, 1)


def test_binary_truth_uses_4_connectivity():
    binary = np.zeros((10, 10), np.uint8)
    binary[1:4, 1:4] = 255
    binary[4:7, 4:7] = 255  # touches the first only diagonally
    assert to_instances(binary).max() == 2
    three_class = np.zeros((10, 10), np.uint8)
    three_class[1:5, 1:5], three_class[1:5, 5] = 1, 2
    three_class[1:5, 6:9] = 1
    assert to_instances(three_class, "mask").max() == 2
    assert to_instances(three_class).max() == 2  # auto: more than two values = instances


def test_match_overlay_colours_tp_fp_fn():
    truth = squares((2, 2, 10, 10), (20, 30, 8, 12))
    pred = squares((2, 3, 10, 10), (5, 45, 6, 6))  # one match, one false positive
    image = np.full(truth.shape, 0.5, np.float32)
    rgb = match_overlay(image, truth, pred, "instances", "instances")
    assert rgb.shape == (*truth.shape, 3) and rgb.dtype == np.uint8

    assert np.argmax(rgb[6, 8]) == np.argmax(MATCH_COLOURS["true positive"])
    assert np.argmax(rgb[7, 47]) == np.argmax(MATCH_COLOURS["false positive"])
    assert np.argmax(rgb[24, 35]) == np.argmax(MATCH_COLOURS["false negative"])
    assert len(set(rgb[35, 5])) == 1  # background stays gray
    with pytest.raises(EvaluationError, match="differ in shape"):
        match_overlay(image[:10], truth, pred)


def test_shape_mismatch_and_nan_are_explained():
    with pytest.raises(EvaluationError, match="differ in shape"):
        score_image(np.zeros((5, 5)), np.zeros((6, 5)))
    with pytest.raises(EvaluationError, match="NaN"):
        to_instances(np.full((5, 5), np.nan))


def test_case_keys():
    assert case_key("1908248_m.tif") == "1908248"
    assert case_key("1908248_instances.tif") == "1908248"
    assert case_key("a_mask.png") == "a"
    assert case_key("case_00001_0000_instances.tif") == "case_00001"


def folders_with_truth(tmp_path, truth):
    """Empty prediction folder and a truth folder holding ``truth`` as binary mask ``a_m.tif``."""
    pred_dir, truth_dir = tmp_path / "pred", tmp_path / "truth"
    pred_dir.mkdir()
    truth_dir.mkdir()
    tifffile.imwrite(truth_dir / "a_m.tif", (truth > 0).astype(np.uint8) * 255)
    return pred_dir, truth_dir


def test_cli_json_last_line(tmp_path, capsys):
    truth = squares((5, 5, 10, 10), (5, 30, 10, 10))
    pred_dir, truth_dir = folders_with_truth(tmp_path, truth)
    tifffile.imwrite(pred_dir / "a_instances.tif", truth.astype(np.uint16))
    tifffile.imwrite(truth_dir / "b_m.tif", (truth > 0).astype(np.uint8) * 255)
    tifffile.imwrite(pred_dir / "b_instances.tif", squares((5, 5, 10, 10)).astype(np.uint16))
    assert main(["evaluate", "--pred", str(pred_dir), "--truth", str(truth_dir), "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert set(result) >= {"dsc", "ap50", "pq", "images"}
    assert result["ap50"] == pytest.approx((1.0 + 0.5) / 2)
    assert [i["name"] for i in result["images"]] == ["a", "b"]


def test_folders_without_matches(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    tifffile.imwrite(tmp_path / "p" / "x.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "t" / "y_m.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(EvaluationError, match="no prediction"):
        evaluate_folders(tmp_path / "p", tmp_path / "t")


def test_real_masks_score_one_against_themselves(tio2_dir):
    folder = tio2_dir / "masks"
    result = evaluate_folders(folder, folder)
    assert result["dsc"] == result["ap50"] == result["pq"] == 1.0
    assert len(result["images"]) == 32


def test_errors_are_broken_down_into_merges_splits_misses_and_false_positives():
    from napari_diffrendergan.analysis.evaluation import match_overlay, score_image

    truth = np.zeros((60, 120), np.int32)
    truth[5:15, 5:15] = 1  # matched
    truth[5:15, 20:30] = 2  # merged with 3
    truth[5:15, 31:41] = 3
    truth[30:50, 5:25] = 4  # split in two
    truth[30:40, 60:70] = 5  # missed
    truth[30:50, 80:100] = 6  # matched, with a fragment cut off beside the match
    pred = np.zeros_like(truth)
    pred[5:15, 5:15] = 1
    pred[5:15, 20:41] = 2  # one prediction over particles 2 and 3
    pred[30:50, 5:15] = 3
    pred[30:50, 15:25] = 4
    pred[52:58, 100:115] = 5  # on background
    pred[30:50, 80:95] = 6
    pred[30:50, 95:100] = 7  # the fragment: on a particle, yet no false positive
    pred[37:40, 65:75] = 8  # half on particle 5, half on background: a false positive
    s = score_image(truth, pred, "x", "instances", "instances")
    assert (s.tp, s.n_true, s.n_pred) == (2, 6, 8)
    assert (s.merged, s.merged_truth, s.split, s.missed) == (1, 2, 1, 1)
    assert (s.pieces, s.false_positive) == (3, 2)  # the split's two halves and the fragment
    assert s.pq_paper == pytest.approx(s.dsc / (2 - s.dsc))
    overlay = match_overlay(np.zeros(truth.shape), truth, pred, "instances", "instances")
    assert tuple(overlay[10, 25]) != tuple(overlay[10, 8])  # merge drawn unlike a match
    for (y, x), name in (((40, 97), "piece"), ((55, 110), "false positive")):
        assert tuple(overlay[y, x]) == tuple(np.round(0.45 * np.array(MATCH_COLOURS[name])))


def test_a_prediction_across_two_particles_holding_neither_is_a_piece():
    truth = np.zeros((20, 40), np.int32)
    truth[5:15, 5:20], truth[5:15, 20:35] = 1, 2
    pred = np.zeros_like(truth)
    pred[5:15, 15:25] = 1  # a third of each: no match, no merge, all on particles
    s = score_image(truth, pred, "x", "instances", "instances")
    assert (s.tp, s.merged, s.pieces, s.false_positive, s.missed) == (0, 0, 1, 0, 2)


def ranked(confidences, matched, n_true):
    return np.array(confidences, float), np.array(matched, bool), n_true


def test_coco_ap50_integrates_the_ranked_precision_recall_curve():
    # 4 truth particles, 2 found: precision 1 up to recall 0.5 (51 of 101 recall points)
    assert coco_ap50([ranked([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0], 4)]) == pytest.approx(51 / 101)
    # the same detections ranked the other way: the best precision at recall 0.5 is 2/4
    worst = coco_ap50([ranked([0.2, 0.3, 0.8, 0.9], [1, 1, 0, 0], 4)])
    assert worst == pytest.approx(0.5 * 51 / 101)
    # pooled over images; every particle found and nothing false: 1
    assert coco_ap50([ranked([0.5], [1], 1), ranked([0.4, 0.7], [1, 1], 2)]) == 1.0
    assert coco_ap50([ranked([], [], 3)]) == 0.0
    assert coco_ap50([ranked([0.5], [0], 0)]) is None  # no truth: undefined
    # ties keep the given order (pycocotools' stable sort): a match first scores 1 up to recall 1
    assert coco_ap50([ranked([0.5, 0.5], [1, 0], 1)]) == 1.0
    assert coco_ap50([ranked([0.5, 0.5], [0, 1], 1)]) == 0.5


def test_ranked_matches_need_a_confidence_per_prediction():
    truth = squares((5, 5, 10, 10), (5, 30, 10, 10))
    pred = squares((5, 5, 10, 10), (20, 40, 5, 5)) * 7  # labels 7 (a match) and 14 (false)
    scores, matched, n_true = ranked_matches(truth, pred, {7: 0.9, 14: 0.4}, "instances")
    assert scores.tolist() == [0.9, 0.4]
    assert matched.tolist() == [True, False]
    assert n_true == 2
    with pytest.raises(EvaluationError, match="no confidence"):
        ranked_matches(truth, pred, {7: 0.9}, "instances", "a")


def test_folders_with_particle_tables_give_coco_ap50(tmp_path, capsys):
    from napari_diffrendergan.io import write_csv

    pred_dir, truth_dir = folders_with_truth(tmp_path, squares((5, 5, 10, 10), (5, 30, 10, 10)))
    pred = squares((5, 5, 10, 10), (25, 40, 5, 5))  # one match, one false positive
    tifffile.imwrite(pred_dir / "a_instances.tif", pred.astype(np.uint16))
    assert evaluate_folders(pred_dir, truth_dir)["ap50_coco"] is None  # no table yet
    assert evaluate_folders(pred_dir, truth_dir, pred_kind="binary")["ap50_coco"] is None
    write_csv(pred_dir / "a_particles.csv", [{"label": 1, "confidence": 0.2}])
    with pytest.raises(EvaluationError, match="no confidence"):
        evaluate_folders(pred_dir, truth_dir)
    rows = [{"label": 1, "confidence": 0.9}, {"label": 2, "confidence": 0.1}]
    write_csv(pred_dir / "a_particles.csv", rows)
    assert evaluate_folders(pred_dir, truth_dir)["ap50_coco"] == pytest.approx(51 / 101)
    assert main(["evaluate", "--pred", str(pred_dir), "--truth", str(truth_dir)]) == 0
    assert "COCO-style AP50 (all images, predictions ranked by confidence): 0.505" in (
        capsys.readouterr().out
    )


def test_coco_ap50_needs_a_table_for_every_prediction(tmp_path):
    from napari_diffrendergan.io import write_csv

    truth = squares((5, 5, 10, 10))
    pred_dir, truth_dir = folders_with_truth(tmp_path, truth)
    tifffile.imwrite(truth_dir / "b_m.tif", (truth > 0).astype(np.uint8) * 255)
    for name in "ab":
        tifffile.imwrite(pred_dir / f"{name}_instances.tif", truth.astype(np.uint16))
    write_csv(pred_dir / "b_particles.csv", [{"label": 1, "confidence": 0.9}])
    assert evaluate_folders(pred_dir, truth_dir)["ap50_coco"] is None  # a has no table
    write_csv(pred_dir / "a_particles.csv", [{"label": 1, "confidence": 0.8}])
    assert evaluate_folders(pred_dir, truth_dir)["ap50_coco"] == 1.0


def disks(shape, centres, radius):
    from skimage.draw import disk

    labels = np.zeros(shape, np.int32)
    for i, centre in enumerate(centres, start=1):
        labels[disk(centre, radius, shape=shape)] = i
    return labels


def test_size_agreement_with_the_same_border_and_floor_rules_on_both_sides(tmp_path):
    from scipy.ndimage import grey_dilation

    from napari_diffrendergan.io import write_tiff

    centres = [(30, 30), (30, 90), (90, 30), (90, 90)]
    truth = disks((128, 128), centres, 10)
    truth[0:12, 50:70] = 0
    truth[1:12, 50:70] = 9  # cut by the border; the annotator left the outermost row blank
    pred = grey_dilation(truth, size=3)  # every particle 2 px wider
    pred[0:12, 50:70] = 9  # the model's particle reaches the border
    pred[60:62, 60:62] = 7  # below the floor
    pred_dir, truth_dir = folders_with_truth(tmp_path, truth)
    write_tiff(pred_dir / "a_instances.tif", pred.astype(np.uint16), pixel_size_nm=5.0)

    sizes = evaluate_folders(pred_dir, truth_dir)["sizes"]
    pooled = sizes["pooled"]
    assert sizes["pixel_size_nm"] == 5.0 and pooled["unit"] == "nm"
    assert pooled["count_a"]["touching_border"] == pooled["count_b"]["touching_border"] == 1
    assert pooled["count_a"]["measured"] == pooled["count_b"]["measured"] == 4
    assert pooled["count_b"]["below_floor"] == 1 and pooled["count_ratio"] == 1
    true_d = pooled["a"]["D50"]["value"]
    assert true_d == pytest.approx(2 * np.sqrt((truth == 1).sum() / np.pi) * 5.0)
    wider = 2 * np.sqrt((pred == 1).sum() / np.pi) * 5.0
    assert pooled["D50_difference_percent"] == pytest.approx(100 * (wider / true_d - 1))
    assert pooled["D50_difference_percent"] > 10
    assert sizes["images"][0]["name"] == "a"

    kept = evaluate_folders(pred_dir, truth_dir, keep_border=True)["sizes"]["pooled"]
    assert kept["count_a"]["measured"] == 5
    in_px = evaluate_folders(pred_dir, truth_dir, pixel_size_nm=2.0)["sizes"]["pooled"]
    assert in_px["a"]["D50"]["value"] == pytest.approx(true_d / 5.0 * 2.0)


def test_size_agreement_refuses_mixed_pixel_sizes(tmp_path):
    from napari_diffrendergan.io import write_tiff

    truth = disks((64, 64), [(32, 32)], 8)
    pred_dir, truth_dir = folders_with_truth(tmp_path, truth)
    tifffile.imwrite(truth_dir / "b_m.tif", (truth > 0).astype(np.uint8) * 255)
    write_tiff(pred_dir / "a_instances.tif", truth.astype(np.uint16), pixel_size_nm=5.0)
    write_tiff(pred_dir / "b_instances.tif", truth.astype(np.uint16), pixel_size_nm=7.0)
    with pytest.raises(EvaluationError, match="different pixel sizes.*--pixel-size"):
        evaluate_folders(pred_dir, truth_dir)
    assert evaluate_folders(pred_dir, truth_dir, pixel_size_nm=6.0)["sizes"]["pixel_size_nm"] == 6


def test_cli_prints_the_size_agreement(tmp_path, capsys):
    truth = disks((96, 96), [(30, 30), (30, 66), (66, 30), (66, 66)], 9)
    pred_dir, truth_dir = folders_with_truth(tmp_path, truth)
    tifffile.imwrite(pred_dir / "a_instances.tif", truth.astype(np.uint16))
    args = ["evaluate", "--pred", str(pred_dir), "--truth", str(truth_dir)]
    assert main([*args, "--min-area", "200", "--json"]) == 0
    out = capsys.readouterr().out
    pooled = next(line for line in out.splitlines() if line.startswith("all (pooled)"))
    assert pooled.split()[2:4] == ["4", "4"]
    assert "under 200 px left out" in out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["sizes"]["pooled"]["D50_difference_percent"] == 0
    assert main([*args, "--min-area", "400"]) == 0  # every disk under the floor
    assert "–" in capsys.readouterr().out
