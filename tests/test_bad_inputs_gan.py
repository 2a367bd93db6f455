"""Bad inputs to ``train``, ``generate``, ``scene``, ``best-epoch`` and ``demo``: each is refused
at once with one line naming the argument or the file (exit code 2), or made right; none hangs,
prints a traceback, is silently ignored or leaves half-written output."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import napari_diffrendergan
from napari_diffrendergan.cli import main

TOO_MANY_SAMPLES = str(1024**2)  # spp: 64² px × 1024² = 2^32 samples, one past Mitsuba's limit


def _error(argv, capsys) -> str:
    """The one error line of a command that must fail with exit code 2 and no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("diffrendergan ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _usage_error(argv, capsys) -> str:
    """What argparse says about an argument it refuses (exit code 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def _copy(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


def _edit_json(path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_a_huge_count_is_refused_at_once(tiny_run, tmp_path):
    from napari_diffrendergan.gan.synthesis import SynthesisError, generate

    out = tmp_path / "out"
    argv = ["generate", str(tiny_run), "--count", "1000000000", "--out", str(out)]
    started = time.perf_counter()
    source = Path(napari_diffrendergan.__file__).parents[1]  # this checkout's package
    done = subprocess.run(
        [sys.executable, "-m", "napari_diffrendergan.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(source)},
    )
    assert done.returncode == 2 and "argument --count" in done.stderr
    assert time.perf_counter() - started < 30
    started = time.perf_counter()
    with pytest.raises(SynthesisError, match="count must be at least 1 and at most 100,000"):
        generate(tiny_run, out, 10**9)
    assert time.perf_counter() - started < 2
    assert not out.exists()


def test_renders_mitsuba_cannot_trace_are_refused_before_any_work(tiny_run, tmp_path, capsys):
    patches = tiny_run.parent / "patches"
    out = tmp_path / "out"
    commands = [
        ["scene", "--preset", "tio2-him", "--size", "100000", "--out", str(out)],
        ["generate", str(tiny_run), "--count", "1", "--out", str(out), "--spp", TOO_MANY_SAMPLES],
        ["train", "--patches", str(patches), "--preset", "tio2-sem", "--out", str(out)]
        + ["--spp", TOO_MANY_SAMPLES, "--device", "cpu"],
        ["demo", "--spp", TOO_MANY_SAMPLES, "--out", str(out), "--device", "cpu"],
    ]
    for argv in commands:
        error = _error(argv, capsys)
        assert "samples per render, more than Mitsuba's limit" in error
        assert "choose a smaller image size or spp" in error
        assert not out.exists(), argv  # nothing written, not even an empty folder


def test_renders_that_do_not_fit_in_memory_are_refused(tiny_run, tmp_path, capsys, monkeypatch):
    import psutil

    from napari_diffrendergan.config import ConfigError, preset
    from napari_diffrendergan.render.scene import check_render

    check_render(preset("tio2-him"))  # fits here
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=2**20))
    with pytest.raises(ConfigError, match="render at spp 16 needs about 132 MiB of memory, 1 MiB"):
        check_render(preset("tio2-him"))
    out = tmp_path / "out"
    error = _error(["scene", "--preset", "tio2-him", "--out", str(out)], capsys)
    assert "MiB of memory" in error and not out.exists()
    patches = str(tiny_run.parent / "patches")
    argv = ["train", "--patches", patches, "--preset", "tio2-sem", "--out", str(out)]
    assert "a 64x64 render at spp 121 needs" in _error(argv + ["--device", "cpu"], capsys)
    assert not out.exists()  # refused at the patch size, before the run folder is made
    argv = ["generate", str(tiny_run), "--count", "1", "--out", str(out), "--device", "cpu"]
    assert "MiB of memory" in _error(argv, capsys) and not out.exists()


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d["settings"].update(lr_generator=-1), "settings.lr_generator must be a pos"),
        (lambda d: d.update(settings="fast"), "settings must be an object"),
        (lambda d: d["settings"].update(dropout="0.2"), "settings.dropout must be a number"),
        (lambda d: d["settings"].update(seed=2**40), "settings.seed must be an integer in"),
        (lambda d: d["settings"].update(device="gpu"), "settings.device must be one of"),
        (lambda d: d.update(intensity_range=0), "intensity_range must be a positive number"),
        (lambda d: d.update(pixel_size_nm="7"), "pixel_size_nm must be a positive number"),
    ],
)
def test_a_hand_edited_training_json_is_refused_naming_the_key(
    edit, named, tiny_run, tmp_path, capsys
):
    run = _copy(tiny_run, tmp_path)
    _edit_json(run / "training.json", edit)
    out = tmp_path / "out"
    for argv in (
        ["train", "--out", str(run), "--resume", "--epochs", "2"],
        ["generate", str(run), "--count", "1", "--out", str(out), "--device", "cpu"],
    ):
        error = _error(argv, capsys)
        assert f"{run / 'training.json'}: " in error and named in error
        assert "correct it" in error
    assert not out.exists()
    assert json.loads((run / "metrics.json").read_text())["epochs"][-1]["epoch"] == 1


@pytest.mark.parametrize("key", ["best_epoch", "best_epoch_override"])
@pytest.mark.parametrize("value", [99, "two", 0, True])
def test_a_best_epoch_that_is_no_finished_epoch_is_refused(key, value, tiny_run, tmp_path, capsys):
    run = _copy(tiny_run, tmp_path)
    _edit_json(run / "metrics.json", lambda d: d.update({key: value}))
    out = tmp_path / "out"
    for argv in (
        ["best-epoch", str(run)],
        ["generate", str(run), "--count", "1", "--out", str(out), "--device", "cpu"],
    ):
        error = _error(argv, capsys)
        assert f"{run / 'metrics.json'}: {key} {value!r} is not a finished epoch" in error
        assert "(finished: [1])" in error and "best-epoch" in error
    assert not out.exists()
    assert main(["best-epoch", str(run), "--auto"]) == 0  # the fix the message names
    assert main(["best-epoch", str(run)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"best epoch of {run}: 1"


def test_damaged_run_files_are_one_line_errors_naming_them(tiny_run, tmp_path, capsys):
    from napari_diffrendergan.gan.run import GanRun, TrainingError

    run = _copy(tiny_run, tmp_path)
    metrics = (run / "metrics.json").read_text()
    damaged = [
        "[1, 2]",
        '{"epochs": "none"}',
        '{"epochs": [{"epoch": "one", "fid": 3.0}]}',
        '{"epochs": [{"epoch": 1, "fid": "low", "breadth": 0.1}]}',
        '{"epochs": [{"epoch": 1, "fid": 3.0}]}',
        '{"epochs": [], "fid_floor": "x"}',
        metrics[: len(metrics) // 2],
    ]
    for text in damaged:
        (run / "metrics.json").write_text(text)
        assert f"{run / 'metrics.json'}" in _error(["best-epoch", str(run)], capsys), text
    (run / "metrics.json").write_text(metrics)

    phi = (run / "phi.npz").read_bytes()
    (run / "phi.npz").write_bytes(phi[:100])
    argv = ["train", "--out", str(run), "--resume", "--epochs", "2", "--device", "cpu"]
    assert f"{run / 'phi.npz'}: not a transformation tensor file" in _error(argv, capsys)
    (run / "phi.npz").write_bytes(phi)

    config = (run / "config.json").read_text()
    (run / "config.json").write_text(config[:40])
    argv = ["generate", str(run), "--count", "1", "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert f"{run / 'config.json'}: " in _error(argv, capsys)
    (run / "config.json").write_text(config)

    samples = GanRun(run).samples_path(1)
    samples.write_bytes(samples.read_bytes()[:60])
    with pytest.raises(TrainingError, match=f"{samples} is damaged"):
        GanRun(run).samples()


class _Marker:
    """Unpickling this creates a file: proof that loading a file ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_in_a_samples_file_is_refused_and_never_run(tiny_run, tmp_path):
    from napari_diffrendergan.gan.run import GanRun, TrainingError

    run = _copy(tiny_run, tmp_path)
    marker = tmp_path / "marker"
    np.save(GanRun(run).samples_path(1), np.array([_Marker(marker)], object), allow_pickle=True)
    with pytest.raises(TrainingError, match="is damaged"):
        GanRun(run).samples()
    assert not marker.exists()


def test_a_resumed_run_refuses_options_that_would_change_it(tiny_run, tmp_path, capsys):
    run = _copy(tiny_run, tmp_path)
    argv = ["train", "--out", str(run), "--resume"]
    error = _error(argv + ["--spp", "4", "--seed", "0", "--preset", "tio2-him"], capsys)
    assert "--spp 4 (the run's: 121), --preset tio2-him: a resumed run keeps" in error
    assert "--seed" not in error  # the run's own seed
    error = _error(argv + ["--epochs", "1"], capsys)
    assert "--epochs 1" in error and "already has 1 epochs" in error


def test_options_that_would_be_ignored_are_refused(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert "an epoch (1) or --auto, not both" in _error(
        ["best-epoch", str(tiny_run), "1", "--auto"], capsys
    )
    argv = ["generate", str(tiny_run), "--count", "1", "--out", str(out), "--n-background", "5"]
    assert "--n-background needs --background-patches" in _error(argv, capsys)
    assert not out.exists()


def test_an_output_path_that_is_a_file_is_refused_before_any_work(tiny_run, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    for argv in (
        ["scene", "--preset", "tio2-him", "--size", "32", "--spp", "1", "--device", "cpu"],
        ["generate", str(tiny_run), "--count", "1", "--spp", "1", "--device", "cpu"],
        ["train", "--patches", str(tiny_run.parent / "patches"), "--preset", "tio2-him"],
        ["demo", "--presets", "tio2-him", "--spp", "1", "--device", "cpu"],
    ):
        error = _usage_error(argv + ["--out", str(taken)], capsys)
        assert "argument --out" in error and "is a file, not a folder" in error
    assert taken.read_text() == "keep me"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["generate", "r", "--out", "o", "--count", "100001"], "--count"),
        (["generate", "r", "--count", "1", "--out", "o", "--contour-thickness", "33"], "--contour"),
        (["generate", "r", "--count", "1", "--out", "o", "--seed", str(2**32)], "--seed"),
        (["scene", "--preset", "tio2-him", "--out", "o", "--seed", str(10**20)], "--seed"),
        (["train", "--out", "o", "--resume", "--epochs", "1001"], "--epochs"),
        (["train", "--out", "o", "--resume", "--seed", str(10**20)], "--seed"),
        (["train", "--out", "o", "--resume", "--iterations-per-epoch", "10001"], "--iterations"),
        (["demo", "--out", "o", "--gan-epochs", "1001"], "--gan-epochs"),
        (["demo", "--out", "o", "--train-images", "100001"], "--train-images"),
        (["demo", "--out", "o", "--seed", "-1"], "--seed"),
    ],
)
def test_numbers_out_of_range_are_refused_naming_the_range(
    argv, named, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # whatever a command accepting them would write goes there
    error = _usage_error(argv, capsys)
    assert f"argument {named}" in error and "must be a whole number from" in error


def test_generate_refuses_out_of_range_arguments(tiny_run, tmp_path):
    from napari_diffrendergan.errors import DiffRenderGANError
    from napari_diffrendergan.gan.synthesis import generate

    out = tmp_path / "out"
    for kwargs, message in (
        ({"contour_thickness": 33}, "contour thickness must be at least 0 and at most 32"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"seed": 2**32}, "seed must be at least 0 and at most 4,294,967,295"),
        ({"n_background": -1}, "number of background patches must be at least 0"),
        ({"workers": (os.cpu_count() or 1) + 1}, "use at most"),
        ({"spp": 10}, "scene.spp must be a square number"),
        ({"spp": 0}, "scene.spp must be a positive integer"),
    ):
        with pytest.raises(DiffRenderGANError, match=message):
            generate(tiny_run, out, 1, device="cpu", **kwargs)
    assert not out.exists()


def test_generate_refuses_a_folder_holding_more_than_asked_for(tiny_run, tmp_path):
    from napari_diffrendergan.gan.synthesis import SynthesisError, generate

    out = tmp_path / "Dataset003_More"
    patches = tiny_run.parent / "patches"
    generate(tiny_run, out, 2, spp=1, background_patches=patches, n_background=3, device="cpu")
    written = sorted(p.name for p in (out / "labelsTr").iterdir())
    with pytest.raises(SynthesisError, match="holds 1 pairs beyond the 1 asked for"):
        generate(tiny_run, out, 1, spp=1, background_patches=patches, device="cpu")
    with pytest.raises(SynthesisError, match="holds 2 background patches beyond the 1 to add"):
        generate(tiny_run, out, 2, spp=1, background_patches=patches, n_background=1)
    with pytest.raises(SynthesisError, match="holds 3 background patches beyond the 0 to add"):
        generate(tiny_run, out, 2, spp=1, device="cpu")
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == written
    summary = generate(tiny_run, out, 2, spp=1, background_patches=patches, device="cpu")
    assert summary["background_patches"] == 3 and summary["synthetic_pairs"] == 2


def test_training_settings_and_scene_sizes_are_checked_without_crashing(tmp_path):
    from napari_diffrendergan.config import ConfigError, MaterialConfig, preset
    from napari_diffrendergan.gan.run import TrainingError, TrainingSettings

    assert TrainingSettings(seed=2**40).problems() == [
        "seed must be an integer in [0, 4294967295], got 1099511627776"
    ]
    assert len(TrainingSettings(dropout="0.2", average=None, augment="yes").problems()) == 3
    with pytest.raises(TrainingError, match="training settings must be an object"):
        TrainingSettings.from_dict("fast")
    with pytest.raises(TrainingError, match="lr_discriminator must be a positive number"):
        TrainingSettings.from_dict({"lr_discriminator": float("nan")})
    config = preset("tio2-him")
    config.scene.rect_height = "high"
    assert config.problems() == ["scene.rect_height must be positive, got 'high'"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": ')
    with pytest.raises(ConfigError, match=f"{bad}: Configuration is not valid JSON"):
        MaterialConfig.load(bad)


@pytest.mark.parametrize("command", ["generate", "train"])
def test_a_checkpoint_that_does_not_fit_an_edited_config_is_a_clear_error(
    command, tiny_run, tmp_path, capsys
):
    run = _copy(tiny_run, tmp_path)
    shutil.copytree(tiny_run.parent / "patches", tmp_path / "patches")  # beside, as trained
    # a generator of another width: its checkpoints no longer fit the network
    _edit_json(run / "training.json", lambda data: data["settings"].update(dropout=0.3))
    _edit_json(run / "config.json", lambda data: data["meshes"].update(count=3))
    argv = {
        "generate": ["generate", str(run), "--count", "1", "--out", str(tmp_path / "d")],
        "train": ["train", "--out", str(run), "--resume", "--epochs", "2"],
    }[command]
    err = _error(argv, capsys)
    assert "epoch_001.pt does not fit" in err and "config.json" in err
