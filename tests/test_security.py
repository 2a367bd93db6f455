"""Nothing read from a file runs code: run folders, model folders and training workspaces from
strangers are refused, with a one-line error naming the file, when they hold pickled objects
other than weights or plans that name code; the marker file such code would create never
appears."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from conftest import blob_sample
from napari_diffrendergan.cli import main
from napari_diffrendergan.io import load_weights
from napari_diffrendergan.segment.model import (
    ModelFolder,
    SegmentationError,
    nnunet_checkpoint_globals,
)
from napari_diffrendergan.segment.predict import Segmenter, load_model
from napari_diffrendergan.segment.training import train_model

EVIL_MODULE = "open({marker!r}, 'w').close()\nNetwork = Conv = object\n"


class Plant:
    """Unpickling this creates ``marker``: a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def plant(path: Path, state: dict, marker: Path) -> None:
    """Save ``state`` with a :class:`Plant` inside to ``path``, and check that a plain
    ``torch.load`` of it would run the plant."""
    torch.save({**state, "plant": Plant(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()


def refused(argv: list[str], capsys, file: Path, marker: Path) -> str:
    """Run the CLI; assert exit code 2, no marker and one error line naming ``file``."""
    code = main(argv)
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert not marker.exists()
    assert code == 2
    assert len(errors) == 1 and str(file) in errors[0], errors
    return errors[0]


def nnunet_fold(model: Path) -> Path:
    """The results fold of nnU-Net's training inside a model folder's workspace."""
    return next((model / "workspace" / "nnUNet_results").glob("*/*/fold_all"))


def copy_model(tiny_model: Path, folder: Path) -> Path:
    shutil.copytree(tiny_model, folder, symlinks=True)
    return folder


def scan(tmp_path: Path) -> Path:
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, blob_sample(5)[0])
    return path


def evil_module(folder: Path, marker: Path, monkeypatch) -> None:
    """``evilmod`` (creates ``marker`` when imported) in ``folder``, the working directory and
    first on sys.path, where any import by name would find it."""
    (folder / "evilmod.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    monkeypatch.delitem(__import__("sys").modules, "evilmod", raising=False)


# --- GAN run folders ---------------------------------------------------------------------------


def test_gan_checkpoint_with_code_is_refused(tiny_run, tmp_path, capsys):
    work = tmp_path / "gan"
    shutil.copytree(tiny_run.parent, work)  # the run and its patch set
    run, marker = work / tiny_run.name, tmp_path / "marker"
    checkpoint = run / "checkpoints" / "epoch_001.pt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)  # plain values only
    assert {"generator", "opt_generator", "numpy_rng", "torch_rng"} <= set(state)
    plant(checkpoint, state, marker)
    planted = checkpoint.read_bytes()
    dataset = tmp_path / "Dataset002_Synthetic"
    argv = ["generate", str(run), "--count", "1", "--epoch", "1", "--out", str(dataset)]
    line = refused(argv + ["--device", "cpu"], capsys, checkpoint, marker)
    assert "builtins.exec" in line and "refused" in line
    assert not (dataset / "imagesTr").exists()
    # resuming does not skip it as damaged and train over it: it is refused too
    refused(["train", "--out", str(run), "--resume", "--device", "cpu"], capsys, checkpoint, marker)
    assert checkpoint.read_bytes() == planted


# --- model folders -----------------------------------------------------------------------------


def test_exported_model_holds_weights_and_json_only(tiny_model):
    weights = torch.load(tiny_model / "fold_all" / "checkpoint_final.pth", weights_only=True)
    assert weights and all(isinstance(value, torch.Tensor) for value in weights.values())
    metadata = json.loads((tiny_model / "model.json").read_text())
    assert metadata["mirroring_axes"] == [0, 1] and metadata["configuration"] == "2d_small"
    assert metadata["dataset"] == "Dataset001_Blobs"  # a name, not the sender's home path


def test_model_checkpoint_with_code_is_refused(tiny_model, tmp_path, capsys):
    model, marker = copy_model(tiny_model, tmp_path / "model"), tmp_path / "marker"
    checkpoint = model / "fold_all" / "checkpoint_final.pth"
    plant(checkpoint, torch.load(checkpoint, weights_only=True), marker)
    argv = ["segment", str(scan(tmp_path)), "--model", str(model), "--out", str(tmp_path / "o")]
    line = refused(argv + ["--device", "cpu"], capsys, checkpoint, marker)
    assert "holds objects other than weights (builtins.exec)" in line


@pytest.mark.parametrize("key", ["network_class_name", "conv_op", "nonlin"])
def test_model_plans_naming_code_are_refused(key, tiny_model, tmp_path, capsys, monkeypatch):
    model, marker = copy_model(tiny_model, tmp_path / "model"), tmp_path / "marker"
    evil_module(tmp_path, marker, monkeypatch)
    plans_file = model / "plans.json"
    plans = json.loads(plans_file.read_text())
    architecture = plans["configurations"]["2d_small"]["architecture"]
    if key == "network_class_name":
        architecture[key] = "evilmod.Network"
    else:
        architecture["arch_kwargs"][key] = "evilmod.Conv"
    plans_file.write_text(json.dumps(plans))
    argv = ["segment", str(scan(tmp_path)), "--model", str(model), "--out", str(tmp_path / "o")]
    line = refused(argv, capsys, plans_file, marker)
    assert "evilmod" in line and "refused" in line


def test_malformed_model_files_are_named(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path / "model")
    plans_file, dataset_file = model / "plans.json", model / "dataset.json"
    plans_text, dataset_text = plans_file.read_text(), dataset_file.read_text()
    plans_file.write_text("{not json")
    with pytest.raises(SegmentationError, match="plans.json.*corrupt"):
        Segmenter(model, device="cpu")
    plans = json.loads(plans_text)
    del plans["configurations"]["2d_small"]
    plans_file.write_text(json.dumps(plans))
    with pytest.raises(SegmentationError, match="plans.json does not describe"):
        Segmenter(model, device="cpu")
    plans = json.loads(plans_text)
    plans["configurations"]["2d_small"]["architecture"]["arch_kwargs"]["features_per_stage"][0] = 8
    plans_file.write_text(json.dumps(plans))
    with pytest.raises(SegmentationError, match="checkpoint_final.pth does not fit"):
        Segmenter(model, device="cpu")
    plans_file.write_text(plans_text)
    dataset = json.loads(dataset_text)
    del dataset["channel_names"]
    dataset_file.write_text(json.dumps(dataset))
    with pytest.raises(SegmentationError, match="dataset.json is malformed"):
        Segmenter(model, device="cpu")


@pytest.mark.parametrize("step", [0, 2, math.nan])
def test_step_is_checked(step, tiny_model):
    with pytest.raises(SegmentationError, match="step must be"):
        Segmenter(tiny_model, device="cpu", step=step)


def test_loader_predicts_as_nnunet_and_old_folders_load(tiny_model, tmp_path):
    """Our loader gives nnU-Net's own predictions; a folder holding nnU-Net's full training
    checkpoint (as exported before) loads with its numpy scalars allowed, and segments alike."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    old = copy_model(tiny_model, tmp_path / "old")
    shutil.copyfile(nnunet_fold(old) / "checkpoint_final.pth", ModelFolder(old).checkpoint)
    metadata = json.loads((old / "model.json").read_text())
    del metadata["mirroring_axes"]
    (old / "model.json").write_text(json.dumps(metadata))

    image = blob_sample(7, (96, 80))[0]
    settings = dict(tile_step_size=0.5, use_mirroring=True, device=torch.device("cpu"))
    ours, nnunet = nnUNetPredictor(**settings), nnUNetPredictor(**settings)
    load_model(ours, ModelFolder(tiny_model))
    nnunet.initialize_from_trained_model_folder(str(old), ("all",), "checkpoint_final.pth")
    assert ours.allowed_mirroring_axes == nnunet.allowed_mirroring_axes == (0, 1)
    results = [
        p.predict_single_npy_array(image[None, None], {"spacing": (999, 1, 1)}, None, None, True)
        for p in (ours, nnunet)
    ]
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])
    new_mask = Segmenter(tiny_model, device="cpu", mirroring="all").predict(image)
    old_segmenter = Segmenter(old, device="cpu", mirroring="all")
    assert old_segmenter.predictor.allowed_mirroring_axes == (0, 1)
    assert np.array_equal(old_segmenter.predict(image), new_mask)


# --- resuming nnU-Net training -----------------------------------------------------------------


def test_resume_checkpoint_with_code_is_refused(tiny_model, blob_dataset, tmp_path, capsys):
    model, marker = copy_model(tiny_model, tmp_path / "model"), tmp_path / "marker"
    fold = nnunet_fold(model)
    state = load_weights(fold / "checkpoint_final.pth", "checkpoint", nnunet_checkpoint_globals())
    latest = fold / "checkpoint_latest.pth"
    plant(latest, state, marker)
    argv = ["segment-train", str(blob_dataset), "--out", str(model), "--resume"]
    line = refused(argv + ["--iterations", "60", "--device", "cpu"], capsys, latest, marker)
    assert "builtins.exec" in line


def test_resume_plans_naming_code_are_refused(
    tiny_model, blob_dataset, tmp_path, capsys, monkeypatch
):
    model, marker = copy_model(tiny_model, tmp_path / "model"), tmp_path / "marker"
    evil_module(tmp_path, marker, monkeypatch)  # the child imports from its working directory
    plans_file = next((model / "workspace" / "nnUNet_preprocessed").glob("*/nnUNetPlans.json"))
    plans = json.loads(plans_file.read_text())
    plans["configurations"]["2d_small"]["architecture"]["network_class_name"] = "evilmod.Network"
    plans_file.write_text(json.dumps(plans))
    argv = ["segment-train", str(blob_dataset), "--out", str(model), "--resume"]
    line = refused(argv + ["--iterations", "60", "--device", "cpu"], capsys, plans_file, marker)
    assert "evilmod.Network" in line


def test_resume_loads_its_own_checkpoint(tiny_model, blob_dataset, tmp_path):
    """nnU-Net's checkpoint (numpy scalars in its log) resumes weights-only: here at the end of
    the last epoch, so the child restores it and exports the model again."""
    model = copy_model(tiny_model, tmp_path / "model")
    fold = nnunet_fold(model)
    shutil.copyfile(fold / "checkpoint_final.pth", fold / "checkpoint_latest.pth")
    (model / "model.json").unlink()
    report = train_model(blob_dataset, model, iterations=60, device="cpu", resume=True)
    assert "resuming at epoch 3" in report.stages and not report.epochs
    assert ModelFolder(model).is_complete and not (fold / "checkpoint_latest.pth").exists()
    old = torch.load(tiny_model / "fold_all" / "checkpoint_final.pth", weights_only=True)
    new = torch.load(model / "fold_all" / "checkpoint_final.pth", weights_only=True)
    assert all(torch.equal(old[name], new[name]) for name in old)
