"""Bad inputs to ``segment``, ``evaluate``, ``thickness`` and ``patches``: each is either handled
correctly or refused with one line naming the argument or file and the fix (exit code 2), never a
traceback, a hang, a silently wrong score or an overwritten output."""

import json
import os

import numpy as np
import pytest
import tifffile

from conftest import blob_sample
from napari_diffrendergan.cli import main
from napari_diffrendergan.render.labels import semantic_mask


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    """On a slow machine tqdm draws its bar (after 1 s) into the stderr the tests read."""
    from functools import partialmethod

    from tqdm import tqdm

    monkeypatch.setattr(tqdm, "__init__", partialmethod(tqdm.__init__, disable=True))


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _refused_argument(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def _wires(path, values=(0, 255), dtype=np.uint8):
    from napari_diffrendergan.analysis.thickness import synthetic_wires

    mask = synthetic_wires((120, 120), [8], seed=2)
    tifffile.imwrite(path, np.where(mask, values[1], values[0]).astype(dtype))
    return mask


def _corrupt(path):
    path.write_bytes(b"II*\x00" + b"garbage!" * 20)  # a TIFF header pointing nowhere
    return path


@pytest.mark.parametrize("command", ["segment", "thickness", "patches"])
@pytest.mark.parametrize("value", ["1e-300", "1e-9", "2e6"])
def test_pixel_sizes_outside_physical_limits_are_refused(command, value, capsys):
    argv = [command, "x.tif", "--out", "o", "--pixel-size", value]
    err = _refused_argument(argv + (["--model", "m"] if command == "segment" else []), capsys)
    assert "argument --pixel-size" in err and "from 0.001 to 1e+06 (1 pm to 1 mm)" in err


@pytest.mark.parametrize(
    ("option", "value"),
    [("--step", "0"), ("--step", "2"), ("--step", "nan"), ("--workers", "100000")],
)
def test_segment_step_and_workers_are_range_checked_before_any_work(option, value, capsys):
    argv = ["segment", "x.tif", "--model", "m", "--out", "o", option, value]
    err = _refused_argument(argv, capsys)
    assert f"argument {option}" in err and "at most" in err


@pytest.mark.parametrize("command", ["segment", "thickness", "patches"])
def test_out_in_a_symlink_loop_or_a_file_is_refused(command, tmp_path, capsys):
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "file").write_text("x")
    model = ["--model", "m"] if command == "segment" else []
    err = _refused_argument([command, "x.tif", "--out", str(tmp_path / "loop1"), *model], capsys)
    assert "argument --out" in err and "loop of symbolic links" in err
    err = _refused_argument([command, "x.tif", "--out", str(tmp_path / "file"), *model], capsys)
    assert "argument --out" in err and "is a file" in err


def test_thickness_refuses_inputs_whose_outputs_would_overwrite_each_other(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _wires(tmp_path / folder / "x_mask.tif")
    first, second = tmp_path / "a" / "x_mask.tif", tmp_path / "b" / "x_mask.tif"
    out = tmp_path / "out"
    err = _one_line_error(["thickness", str(first), str(second), "--out", str(out)], capsys)
    assert str(first) in err and str(second) in err and "rename" in err
    assert not out.exists()
    # the same file named twice is measured once
    again = tmp_path / "b" / ".." / "a" / "x_mask.tif"
    assert main(["thickness", str(first), str(again), "--out", str(out)]) == 0
    assert "of 1 mask(s)" in capsys.readouterr().out
    # an input that an output would replace
    kept = tmp_path / "a" / "x_mask_thickness.tif"
    _wires(kept)
    before = kept.read_bytes()
    argv = ["thickness", str(first), str(kept), "--out", str(tmp_path / "a")]
    err = _one_line_error(argv, capsys)
    assert f"{kept} would be overwritten" in err and kept.read_bytes() == before


def test_thickness_reads_nonzero_as_foreground_and_refuses_fractional_masks(tmp_path, capsys):
    wires = _wires(tmp_path / "signed.tif", (0, -1), np.int16)
    out = tmp_path / "out"
    assert main(["thickness", str(tmp_path / "signed.tif"), "--out", str(out)]) == 0
    thickness = tifffile.imread(out / "signed_thickness.tif")
    assert ((thickness > 0) == wires).all()
    tifffile.imwrite(tmp_path / "prob.tif", np.random.default_rng(0).random((40, 40)))
    assert main(["thickness", str(tmp_path / "prob.tif"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "prob.tif" in err and "fractional values" in err and "threshold it" in err


def test_corrupt_and_empty_images_are_named_as_unreadable(tmp_path, capsys):
    bad, empty = _corrupt(tmp_path / "bad.tif"), tmp_path / "empty.tif"
    empty.write_bytes(b"")
    for path in (bad, empty):
        err = _one_line_error(["patches", str(path), "--out", str(tmp_path / "set")], capsys)
        assert f"{path} is not a readable image" in err
    assert main(["thickness", str(bad), "--out", str(tmp_path / "t")]) == 1
    err = capsys.readouterr().err
    assert f"skipped: {bad} is not a readable image" in err
    logged = [line for line in err.splitlines() if "invalid offset" in line]
    assert len(logged) == 1 and "skipped" in logged[0]  # tifffile's own log line not printed
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir(), truth.mkdir()
    tifffile.imwrite(pred / "c_instances.tif", np.zeros((16, 16), np.uint16))
    _corrupt(truth / "c.tif")
    err = _one_line_error(["evaluate", "--pred", str(pred), "--truth", str(truth)], capsys)
    assert f"{truth / 'c.tif'} is not a readable image" in err


def test_a_bad_pixel_size_in_a_sidecar_names_the_sidecar(tmp_path, capsys):
    _wires(tmp_path / "w.tif")
    (tmp_path / "w.json").write_text(json.dumps({"pixel_size_nm": 1e-300}))
    assert main(["thickness", str(tmp_path / "w.tif"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "w.json") in err and "correct or delete this sidecar" in err


def test_patches_explains_stacks_and_images_smaller_than_a_patch(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "stack.tif", np.random.default_rng(0).random((3, 64, 64)))
    tifffile.imwrite(tmp_path / "tiny.tif", np.random.default_rng(0).random((5, 5)))
    tifffile.imwrite(tmp_path / "small.tif", np.random.default_rng(0).random((40, 50)))
    out = ["--out", str(tmp_path / "set")]
    err = _one_line_error(["patches", str(tmp_path / "stack.tif"), *out], capsys)
    assert "stack.tif" in err and "(3, 64, 64)" in err and "save the plane" in err
    err = _one_line_error(["patches", str(tmp_path / "tiny.tif"), *out], capsys)
    assert "tiny.tif" in err and "at least 16×16 px" in err
    err = _one_line_error(["patches", str(tmp_path / "small.tif"), *out, "--size", "64"], capsys)
    assert "small.tif" in err and "patch size of at most 40 px" in err


@pytest.fixture
def scored(tmp_path):
    """A prediction folder (instances of blob sample 1) and a function writing a truth file."""
    _, mask, instances = blob_sample(1)
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir(), truth.mkdir()
    tifffile.imwrite(pred / "c_instances.tif", instances)

    def evaluate(labels, *options):
        tifffile.imwrite(truth / "c.tif", labels)
        return ["evaluate", "--pred", str(pred), "--truth", str(truth), "--json", *options]

    return evaluate, mask, instances


def test_evaluate_recognises_3_class_and_binary_truth(scored, capsys):
    evaluate, mask, instances = scored
    separated = semantic_mask(instances, 1)  # touching particles split by background lines
    binary = np.where(separated == 1, 255, 0).astype(np.uint8)
    for truth in (mask, binary):
        assert main(evaluate(truth)) == 0
        result = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert result["n_true"] == instances.max() and result["ap50"] == 1.0


def test_evaluate_refuses_truth_of_no_recognisable_kind(scored, capsys):
    evaluate, mask, instances = scored
    odd = np.choose(mask, [0, 255, 128]).astype(np.uint8)  # 3-class drawn with other values
    err = _one_line_error(evaluate(odd), capsys)
    assert "c.tif" in err and "0, 128, 255" in err and "--truth-kind" in err
    signed = -(instances > 0).astype(np.int16)
    err = _one_line_error(evaluate(signed), capsys)
    assert "c.tif" in err and "negative values" in err and "--truth-kind" in err
    err = _one_line_error(evaluate(odd, "--truth-kind", "semantic"), capsys)
    assert "0, 1 and 2" in err and "--truth-kind" in err
    assert main(evaluate(signed, "--truth-kind", "binary")) == 0  # nonzero = particle
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["n_true"] > 0


def test_evaluate_json_is_strict_json(scored, capsys):
    evaluate, mask, _ = scored
    argv = evaluate(np.zeros_like(mask))  # no particle anywhere: found/manual is undefined
    tifffile.imwrite(os.path.join(argv[2], "c_instances.tif"), np.zeros_like(mask))
    assert main(argv) == 0

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    result = json.loads(capsys.readouterr().out.splitlines()[-1], parse_constant=refuse)
    assert result["count_ratio"] is None and result["ap50"] == 1.0


def test_evaluate_names_both_files_when_shapes_differ(scored, capsys):
    evaluate, mask, _ = scored
    argv = evaluate(np.pad(mask, ((0, 0), (0, 3))))
    err = _one_line_error(argv, capsys)
    assert "c_instances.tif" in err and "c.tif" in err and "differ in shape" in err


def test_evaluate_refuses_two_truth_files_for_one_case(scored, capsys):
    evaluate, mask, _ = scored
    argv = evaluate(mask)
    tifffile.imwrite(os.path.join(argv[4], "c.tiff"), mask)  # which one is the truth?
    err = _one_line_error(argv, capsys)
    assert "c.tif and" in err and "c.tiff" in err and "move one" in err


def test_two_instances_are_not_taken_for_a_3_class_mask():
    from napari_diffrendergan.analysis.evaluation import label_image_kind, to_instances

    two = np.zeros((30, 30), np.uint8)
    two[3:12, 3:12], two[15:25, 14:28] = 1, 2
    assert label_image_kind(two) == "instances"
    assert to_instances(two).max() == 2 and (to_instances(two) == two).all()
    assert label_image_kind(semantic_mask(two, 1)) == "semantic"


# --- segment (one trained tiny model for all) ----------------------------------------------


def _segment(tiny_model, out, *inputs, extra=()):
    argv = ["segment", *map(str, inputs), "--model", str(tiny_model), "--out", str(out)]
    return main(argv + ["--device", "cpu", *extra])


def test_segment_bad_images_are_named_and_uniform_ones_hold_no_particles(
    tiny_model, tmp_path, capsys
):
    uniform = tmp_path / "uniform.tif"
    tifffile.imwrite(uniform, np.full((96, 96), 0.6, np.float32))
    assert _segment(tiny_model, tmp_path / "o", uniform) == 0
    assert "uniform: no particles (uniform image" in capsys.readouterr().out
    assert tifffile.imread(tmp_path / "o" / "uniform_instances.tif").max() == 0

    bad = _corrupt(tmp_path / "bad.tif")
    argv = ["segment", str(bad), "--model", str(tiny_model), "--out", str(tmp_path / "o")]
    assert f"{bad} is not a readable image" in _one_line_error(argv, capsys)
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.random.default_rng(0).random((3, 64, 64)).astype(np.float32))
    argv[1] = str(stack)
    err = _one_line_error(argv, capsys)
    assert str(stack) in err and "save the plane" in err


def test_segment_refuses_clashing_names_and_segments_a_repeated_file_once(
    tiny_model, tmp_path, capsys
):
    image = blob_sample(2)[0]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "x.tif", image)
    first, second = tmp_path / "a" / "x.tif", tmp_path / "b" / "x.tif"
    argv = ["segment", str(first), str(second), "--model", str(tiny_model), "--out"]
    err = _one_line_error(argv + [str(tmp_path / "o")], capsys)
    assert str(first) in err and str(second) in err and "rename" in err
    assert _segment(tiny_model, tmp_path / "o", first, tmp_path / "a") == 0
    assert "Segmented 1 image(s)" in capsys.readouterr().out


@pytest.mark.slow
def test_a_bad_image_in_a_dask_batch_is_named_and_the_rest_finish(tiny_model, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for seed in (3, 4):
        tifffile.imwrite(images / f"good{seed}.tif", blob_sample(seed)[0])
    broken = blob_sample(5)[0]
    broken[7, 7] = np.nan
    tifffile.imwrite(images / "broken.tif", broken)
    out = tmp_path / "o"
    assert _segment(tiny_model, out, images, extra=("--workers", "2")) == 1
    captured = capsys.readouterr()
    assert "Segmented 2 image(s)" in captured.out
    failed = [line for line in captured.err.splitlines() if "skipped" in line]
    assert len(failed) == 1 and "broken.tif" in failed[0] and "NaN" in failed[0]
    assert "1 of 3 image(s) failed" in captured.err
    written = sorted(p.name for p in out.glob("*_instances.tif"))
    assert written == ["good3_instances.tif", "good4_instances.tif"]
