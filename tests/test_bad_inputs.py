"""Inputs a careful user tries: every one gets a clear one-line error (naming the argument or
file), none makes the program lie, hang or lose data, and failed writes leave nothing half
written."""

import os
import stat
import subprocess
import time

import numpy as np
import pytest
import tifffile

from napari_diffrendergan.cli import main
from napari_diffrendergan.errors import InputError, OutputError


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["generate", "run", "--count", "2", "--out", "o", "--spp", "0"], "--spp"),
        (["generate", "run", "--count", "2", "--out", "o", "--spp", "10"], "--spp"),
        (["generate", "run", "--count", "2", "--out", "o", "--epoch", "banana"], "--epoch"),
        (["generate", "run", "--count", "0", "--out", "o"], "--count"),
        (["segment", "x.tif", "--model", "m", "--out", "o", "--workers", "-2"], "--workers"),
        (["segment", "x.tif", "--model", "m", "--out", "o", "--pixel-size", "0"], "--pixel-size"),
        (["segment", "x.tif", "--model", "m", "--out", "o", "--core-threshold", "1"], "--core"),
        (["patches", "x.tif", "--out", "o", "--roi", "500:0,0:600"], "--roi"),
        (["patches", "x.tif", "--out", "o", "--pixel-size", "-7"], "--pixel-size"),
        (["thickness", "x.tif", "--out", "o", "--pixel-size", "1e300"], "--pixel-size"),
        (["train", "--out", "o", "--resume", "--epochs", "-1"], "--epochs"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"argument {named}" in capsys.readouterr().err


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_missing_runs_models_and_folders_are_one_line_errors(tmp_path, capsys):
    assert "not a DiffRenderGAN run folder" in _one_line_error(
        ["best-epoch", str(tmp_path / "nowhere")], capsys
    )
    assert "is a folder, not an image" in _one_line_error(
        ["patches", str(tmp_path), "--out", str(tmp_path / "set")], capsys
    )
    image = tmp_path / "scan.tif"
    tifffile.imwrite(image, np.zeros((64, 64), np.uint8))
    assert "does not exist" in _one_line_error(
        ["segment", str(image), "--model", str(tmp_path / "nomodel"), "--out", str(tmp_path)],
        capsys,
    )
    assert "not an nnU-Net dataset" in _one_line_error(
        ["segment-train", str(tmp_path), "--out", str(tmp_path / "m")], capsys
    )


def test_unreachable_scheduler_fails_fast(tiny_model, tmp_path, capsys):
    image = tmp_path / "scan.tif"
    tifffile.imwrite(image, np.zeros((64, 64), np.float32))
    started = time.perf_counter()
    argv = ["segment", str(image), "--model", str(tiny_model), "--out", str(tmp_path / "o")]
    err = _one_line_error(argv + ["--scheduler", "tcp://127.0.0.1:9"], capsys)
    assert "cannot reach the Dask scheduler" in err
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.slow
def test_segment_on_a_scheduler_writes_where_asked_and_keeps_same_stems(
    tiny_model, tmp_path, monkeypatch
):
    from dask.distributed import LocalCluster

    from conftest import blob_sample

    images = tmp_path / "images"
    images.mkdir()
    image = (blob_sample(3)[0] * 255).clip(0, 255).astype(np.uint8)
    tifffile.imwrite(images / "x.tif", image)
    import imageio.v3 as iio

    iio.imwrite(images / "x.png", image)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # the workers run elsewhere: "out" must mean work/out
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        argv = ["segment", str(images), "--model", str(tiny_model), "--out", "out"]
        assert main(argv + ["--scheduler", cluster.scheduler_address, "--device", "cpu"]) == 0
    written = sorted(p.name for p in (work / "out").iterdir() if not p.name.endswith(".json"))
    assert written == [
        "x_png_instances.tif",
        "x_png_mask.tif",
        "x_png_particles.csv",
        "x_tif_instances.tif",
        "x_tif_mask.tif",
        "x_tif_particles.csv",
    ]


def test_tiny_images_are_segmented_or_refused_clearly(tiny_model):
    from napari_diffrendergan.segment.model import SegmentationError
    from napari_diffrendergan.segment.predict import Segmenter, segment_image

    segmenter = Segmenter(tiny_model, device="cpu")
    assert segment_image(segmenter, np.zeros((10, 10), np.float32)).mask.shape == (10, 10)
    for shape in ((40, 7), (3, 3)):
        with pytest.raises(SegmentationError, match="too small"):
            segment_image(segmenter, np.zeros(shape, np.float32))


def test_evaluate_refuses_probability_maps_and_copes_with_many_labels():
    from napari_diffrendergan.analysis.evaluation import score_image

    with pytest.raises(InputError, match="probability map"):
        score_image(np.ones((8, 8), np.uint8), np.full((8, 8), 0.7, np.float32))
    labels = np.arange(1, 300 * 300 + 1, dtype=np.int32).reshape(300, 300)  # 90 000 labels
    scores = score_image(labels, labels, "many", "instances", "instances")
    assert scores.tp == scores.n_true == 90_000 and scores.ap50 == 1.0


def test_written_files_follow_the_umask(tmp_path):
    from napari_diffrendergan.io import write_json_atomic, write_tiff

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        write_tiff(tmp_path / "b.tif", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    for name in ("a.json", "b.tif", "b.json"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode & 0o044 == 0o044, (name, oct(mode))  # group and others may read


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (needs root; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_a_clear_error_and_leaves_nothing_half_written(small_disk, tmp_path):
    from napari_diffrendergan.analysis.thickness import analyse, synthetic_wires, write_outputs
    from napari_diffrendergan.io import file_group, write_tiff

    (small_disk / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 300 * 1024))
    big = np.zeros((400, 400), np.float32)  # 640 kB: the second file does not fit
    out = small_disk / "out"
    with pytest.raises(OutputError, match="disk is full"), file_group(out, "pair") as written:
        written += [out / "one.tif", out / "two.tif"]
        write_tiff(written[0], big[:100])
        write_tiff(written[1], big)
    assert sorted(p.name for p in (small_disk / "out").iterdir()) == []
    mask = synthetic_wires((300, 300), [10], seed=1)
    with pytest.raises(OutputError, match="disk is full"):
        write_outputs(analyse(mask), small_disk / "thick", "wire")
    assert not (small_disk / "thick").exists()  # the folder the failed write made is gone too
    tifffile.imwrite(tmp_path / "wire.tif", mask.astype(np.uint8) * 255)
    code = main(["thickness", str(tmp_path / "wire.tif"), "--out", str(small_disk / "cli")])
    assert code == 2 and not (small_disk / "cli").exists()


@pytest.mark.parametrize(
    ("index", "named"),
    [
        ('{"labels": {', "is corrupt"),
        ('["not", "an", "object"]', "not a JSON object"),
        (None, "overwrite_image_reader_writer"),
    ],
)
def test_a_dataset_index_nnunet_cannot_use_safely_is_refused_naming_it(
    blob_dataset, tmp_path, capsys, index, named
):
    import json
    import shutil

    dataset = tmp_path / blob_dataset.name
    shutil.copytree(blob_dataset, dataset)
    if index is None:  # nnU-Net would look this reader up by name
        data = json.loads((dataset / "dataset.json").read_text())
        index = json.dumps({**data, "overwrite_image_reader_writer": "SomeOtherIO"})
    (dataset / "dataset.json").write_text(index)
    err = _one_line_error(["segment-train", str(dataset), "--out", str(tmp_path / "m")], capsys)
    assert "dataset.json" in err and named in err
    assert not (tmp_path / "m").exists()
