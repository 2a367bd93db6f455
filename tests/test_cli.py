import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_diffrendergan.cli import main
from napari_diffrendergan.gan.run import GanRun

SUBCOMMANDS = [
    "demo",
    "scene",
    "patches",
    "train",
    "generate",
    "segment-train",
    "segment",
    "evaluate",
    "thickness",
]


def test_help_lists_every_subcommand():
    result = subprocess.run(
        [sys.executable, "-m", "napari_diffrendergan.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for name in SUBCOMMANDS:
        assert f"    {name}" in result.stdout


def test_unknown_preset_is_a_clear_error(tmp_path, capsys):
    assert main(["scene", "--preset", "gold-tem", "--out", str(tmp_path)]) == 2
    assert "neither a preset" in capsys.readouterr().err


def test_broken_mesh_folder_is_a_clear_error(tmp_path, capsys):
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    (meshes / "bad.ply").write_text("not a mesh")
    code = main(
        ["scene", "--preset", "tio2-sem", "--meshes", str(meshes), "--out", str(tmp_path / "out")]
    )
    assert code == 2
    assert "bad.ply" in capsys.readouterr().err


@pytest.mark.slow
def test_scene_writes_annotated_files(tmp_path):
    out = tmp_path / "scene"
    assert (
        main(
            [
                "scene",
                "--preset",
                "tio2-sem",
                "--seed",
                "3",
                "--spp",
                "4",
                "--size",
                "96",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    image = tifffile.imread(out / "image.tif")
    instances = tifffile.imread(out / "instances.tif")
    mask = tifffile.imread(out / "mask.tif")
    assert image.shape == instances.shape == mask.shape == (96, 96)
    assert (image.dtype, instances.dtype, mask.dtype) == (np.float32, np.uint16, np.uint8)
    assert set(np.unique(mask)) <= {0, 1, 2} and instances.max() >= 1
    assert ((mask > 0) == (instances > 0)).all()
    info = json.loads((out / "scene.json").read_text())
    assert info["seed"] == 3 and info["config"]["name"] == "tio2-sem"
    assert np.array(info["phi"]).shape == (info["config"]["meshes"]["count"], 4)
    assert set(info["bsdf"]) == {
        "particle.roughness",
        "particle.base_color",
        "particle.sheen",
        "stage.base_color",
    }
    sidecar = json.loads((out / "image.json").read_text())
    assert sidecar["seed"] == 3 and "pixel_size_nm" in sidecar


@pytest.mark.slow
def test_demo_runs_the_pipeline_and_reports(tmp_path, capsys, tio2_dir):
    args = [
        "demo",
        "--out",
        str(tmp_path),
        "--presets",
        "sio2-him",
        "agnw-sem",
        "--spp",
        "4",
        "--train-images",
        "4",
        "--seg-iterations",
        "4",
        "--gan-epochs",
        "1",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "sio2-him" in printed and str(tmp_path / "overview.png") in printed
    assert "Synthetic nnU-Net dataset from the best epoch: 4 TiO2 images" in printed
    assert "DiffRenderGAN: 1 epochs" in printed and "Segmented the scan" in printed
    assert "Scan: real TiO2 SEM scan 1908248" in printed
    assert "Dice" in printed and "median wire diameter" in printed
    metrics = json.loads((tmp_path / "gan" / "metrics.json").read_text())
    assert metrics["best_epoch"] == 1 and np.isfinite(metrics["epochs"][0]["fid"])
    dataset = tmp_path / "dataset" / "Dataset001_DemoTiO2"
    assert len(list((dataset / "labelsTr").glob("bg_*.tif"))) >= 1
    assert json.loads((dataset / "generation.json").read_text())["epoch"] == 1
    assert (tmp_path / "scenes" / "sio2-him" / "mask.tif").is_file()
    assert (tmp_path / "model" / "model.json").is_file()
    assert len(list((tmp_path / "segmentation").glob("*_particles.csv"))) == 4
    assert (tmp_path / "thickness" / "agnw-sem_thickness.csv").is_file()
    assert (tmp_path / "overview.png").stat().st_size > 1000


def test_thickness_writes_map_tables_and_plot(tmp_path, capsys):
    from napari_diffrendergan.analysis.thickness import synthetic_wires
    from napari_diffrendergan.io import write_tiff

    mask = synthetic_wires((120, 150), [10], seed=1).astype(np.uint8)
    write_tiff(tmp_path / "wire.tif", mask, pixel_size_nm=5.0)
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((30, 30), np.uint8))
    out = tmp_path / "out"
    code = main(
        ["thickness", str(tmp_path / "wire.tif"), str(tmp_path / "empty.tif"), "--out", str(out)]
    )
    assert code == 1  # one mask could not be analysed, and it says why
    captured = capsys.readouterr()
    assert "empty.tif: the mask is empty" in captured.err
    thickness = tifffile.imread(out / "wire_thickness.tif")
    assert thickness.dtype == np.float32 and (thickness[mask == 0] == 0).all()
    assert np.median(thickness[mask > 0]) == pytest.approx(50, abs=5)  # 10 px at 5 nm (sidecar)
    sidecar = json.loads((out / "wire_thickness.json").read_text())
    assert sidecar["pixel_size_nm"] == 5.0 and sidecar["unit"] == "nm"
    header = (out / "wire_thickness.csv").read_text().splitlines()[0]
    assert "median_thickness_nm" in header
    assert (out / "wire_thickness_distribution.csv").is_file()
    assert (out / "wire_thickness.png").stat().st_size > 1000
    assert "median wire diameter" in captured.out


@pytest.mark.slow
def test_train_best_epoch_and_generate_commands(tmp_path, capsys, tiny_run):
    patches = tiny_run.parent / "patches"
    run = tmp_path / "run"
    common = ["--epochs", "2", "--iterations-per-epoch", "2", "--device", "cpu"]
    assert (
        main(
            ["train", "--patches", str(patches), "--preset", "tio2-sem", "--out", str(run)] + common
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "2 epochs (all epochs done), best epoch" in captured.out
    assert "stopped: all epochs done" in captured.err
    assert re.search(r"epoch 1: FID .*; about \d+ (s|min) left", captured.err)  # epoch 2 to come
    with pytest.raises(SystemExit) as exit_:  # a dead option is gone
        main(["train", "--out", str(run), "--resume", "--reuse", "4"])
    assert exit_.value.code == 2 and "--reuse" in capsys.readouterr().err
    resume = ["train", "--out", str(run), "--resume", "--epochs", "3", "--patience", "1"]
    assert main(resume + ["--device", "cpu"]) == 0
    assert GanRun(run).finished_epochs() == [1, 2, 3]
    assert main(["best-epoch", str(run), "1"]) == 0
    assert "best epoch of" in capsys.readouterr().out
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] == 1
    assert main(["train", "--out", str(run), "--resume", "--device", "cpu"]) == 0
    assert GanRun(run).finished_epochs() == [1, 2, 3]
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "not a DiffRenderGAN run folder" in capsys.readouterr().err

    dataset = tmp_path / "Dataset002_Cli"
    args = ["generate", str(run), "--count", "2", "--out", str(dataset), "--device", "cpu"]
    assert main(args + ["--background-patches", str(patches), "--n-background", "5"]) == 0
    printed = capsys.readouterr().out
    assert "2 synthetic pairs (epoch 1" in printed
    assert "only 3 of 5 requested background patches" in printed
    assert len(list((dataset / "labelsTr").glob("*.tif"))) == 5
    assert main(["generate", str(tmp_path), "--count", "2", "--out", str(dataset)]) == 2
    assert "not a DiffRenderGAN run folder" in capsys.readouterr().err
