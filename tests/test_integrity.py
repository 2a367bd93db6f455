"""Integrity of shared folders: permissions, no recorded absolute paths, patch files confined
to their set, runs bound to their patches, and one writer per folder."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_diffrendergan
from napari_diffrendergan.config import preset
from napari_diffrendergan.data.patches import Patch, PatchError, PatchSet
from napari_diffrendergan.gan.run import GanRun, TrainingError, TrainingSettings
from napari_diffrendergan.gan.training import train_iter
from napari_diffrendergan.io import LOCK_NAME, FolderBusyError, FolderLock, write_json_atomic

SOURCE = str(Path(napari_diffrendergan.__file__).parents[1])
SETTINGS = dict(epochs=1, iterations_per_epoch=2, device="cpu", fid_images=4)


def python(code: str, *args, **popen) -> subprocess.Popen:
    """A Python child running ``code`` with this checkout's package."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], env=env, text=True, **popen
    )


def blob_set(folder, count=3, seed=0, size=64) -> Path:
    from conftest import blob_sample

    images = [
        (blob_sample(seed + s, (size, size), n=3)[0] * 255).clip(0, 255) for s in range(count)
    ]
    patches = [Patch(f"scan{seed + s}.tif", 0, 0, size, "particle", 0.0, 3) for s in range(count)]
    return PatchSet.save(folder, patches, images, 7.0, {}).folder


def json_texts(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*.json")}


# --- permissions -----------------------------------------------------------------------------

UMASK_PROBE = """
import os, sys, threading, time
os.umask(0o077)
real_umask = os.umask
def slow_umask(mask):  # widen the moment between changing the umask and restoring it
    old = real_umask(mask)
    time.sleep(0.3)
    return old
os.umask = slow_umask
stop = threading.Event()
def create():  # another thread of the process creating files meanwhile
    n = 0
    while not stop.is_set():
        os.close(os.open(os.path.join(sys.argv[1], f"f{n}"), os.O_CREAT | os.O_WRONLY, 0o666))
        n += 1
        time.sleep(0.002)
thread = threading.Thread(target=create)
thread.start()
time.sleep(0.05)
import napari_diffrendergan.io
time.sleep(0.05)
stop.set()
thread.join()
"""


def test_importing_io_never_loosens_the_permissions_of_other_threads_files(tmp_path):
    assert python(UMASK_PROBE, tmp_path).wait(60) == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert len(modes) > 20
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not loose  # umask 077: no file may be readable by others


def test_atomic_writes_follow_the_umask_in_force(tmp_path):
    for mask, expected in ((0o077, 0o600), (0o022, 0o644), (0o002, 0o664)):
        old = os.umask(mask)
        try:
            write_json_atomic(tmp_path / f"{mask:o}.json", {"x": 1})
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / f"{mask:o}.json").stat().st_mode) == expected


# --- patch sets ------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["../outside.tif", "../../outside.tif", "ABSOLUTE", "LINK"])
def test_patch_index_cannot_point_outside_its_folder(tmp_path, entry):
    folder = blob_set(tmp_path / "sets" / "set", count=2)
    outside = tmp_path / "outside.tif"
    tifffile.imwrite(outside, np.full((64, 64), 99, np.float32))  # a readable image elsewhere
    (tmp_path / "sets" / "outside.tif").write_bytes(outside.read_bytes())
    if entry == "ABSOLUTE":
        entry = str(outside)
    elif entry == "LINK":
        (folder / "link.tif").symlink_to(outside)
        entry = "link.tif"
    index = json.loads((folder / "patches.json").read_text())
    index["patches"][1]["file"] = entry
    (folder / "patches.json").write_text(json.dumps(index))
    with pytest.raises(PatchError, match="patches.json: entry 1 names the file") as caught:
        PatchSet.open(folder)
    assert repr(entry) in str(caught.value) and "not in the patch set folder" in str(caught.value)


def test_patch_sources_are_names_and_retries_add_nothing_twice(tmp_path):
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    other = image + 1
    where = [Patch(str(tmp_path / "home" / "alice" / "scan.tif"), 0, 0, 64, "particle", 0, 3)]
    PatchSet.save(tmp_path / "set", where, [image], 7.0, {})
    again = [Patch(str(tmp_path / "elsewhere" / "scan.tif"), 0, 0, 64, "particle", 0, 3)]
    assert len(PatchSet.save(tmp_path / "set", again, [image], 7.0, {}).patches) == 1  # a retry
    same_name = [Patch("scan.tif", 0, 0, 64, "particle", 0, 3)]  # another scan, same name
    assert len(PatchSet.save(tmp_path / "set", same_name, [other], 7.0, {}).patches) == 2
    assert str(tmp_path) not in (tmp_path / "set" / "patches.json").read_text()


# --- runs: no absolute paths, bound to their patches -----------------------------------------


def test_a_run_records_no_absolute_path_and_moves_with_its_patch_set(tmp_path):
    project = tmp_path / "home" / "alice" / "project"
    blob_set(project / "patches")
    GanRun.create(project / "run", project / "patches", preset("tio2-sem"), TrainingSettings())
    texts = json_texts(project / "run")
    assert json.loads(texts["training.json"])["patches"] == "../patches"
    assert not [name for name, text in texts.items() if str(tmp_path) in text]
    project.rename(tmp_path / "shared")  # the project folder shared or moved
    moved = GanRun(tmp_path / "shared" / "run")
    assert moved.patches == tmp_path / "shared" / "patches"
    assert moved.real_patches()[0].shape == (3, 64, 64)
    (tmp_path / "shared" / "patches").rename(tmp_path / "gone")
    with pytest.raises(TrainingError, match="training.json: '../patches'.*put the patch set back"):
        moved.real_patches()


def test_runs_recorded_with_an_absolute_patch_path_still_resume(tmp_path):
    blob_set(tmp_path / "patches")
    run = GanRun.create(
        tmp_path / "run", tmp_path / "patches", preset("tio2-sem"), TrainingSettings()
    )
    info = json.loads((run.folder / "training.json").read_text())
    del info["patches_sha256"]
    info["patches"] = str((tmp_path / "patches").resolve())
    (run.folder / "training.json").write_text(json.dumps(info))
    assert GanRun(run.folder).real_patches()[0].shape == (3, 64, 64)


def test_a_run_refuses_a_patch_set_that_changed(tmp_path):
    patches = blob_set(tmp_path / "patches")
    run = GanRun.create(tmp_path / "run", patches, preset("tio2-sem"), TrainingSettings(**SETTINGS))
    blob_set(patches, count=2, seed=10)  # patch sets append: two more particle patches
    with pytest.raises(TrainingError, match="3 particle patches then, 5 now") as grown:
        next(iter(train_iter(run.folder)))
    assert str(patches) in str(grown.value) and "start a new run" in str(grown.value)

    other = blob_set(tmp_path / "other")
    run = GanRun.create(tmp_path / "run2", other, preset("tio2-sem"), TrainingSettings(**SETTINGS))
    first = PatchSet.open(other).patches[0].file
    tifffile.imwrite(other / first, np.zeros((64, 64), np.float32))  # same count, new pixels
    with pytest.raises(TrainingError, match="pixels differ.*restore the set"):
        next(iter(train_iter(run.folder)))


def test_fid_statistics_belong_to_the_patches_they_were_computed_from(tmp_path):
    first, second = blob_set(tmp_path / "a"), blob_set(tmp_path / "b", seed=20)
    settings = TrainingSettings(**SETTINGS)
    run = GanRun.create(tmp_path / "run", first, preset("tio2-sem"), settings)
    _, sha_first = run.real_patches()
    old = (np.zeros(4), np.eye(4))
    run.real_fid_statistics(lambda: old, sha_first)
    # the start failed before an epoch finished; the run is made again on another patch set
    run = GanRun.create(tmp_path / "run", second, preset("tio2-sem"), settings)
    _, sha_second = run.real_patches()
    assert sha_second != sha_first
    new = (np.ones(4), 2 * np.eye(4))
    assert run.real_fid_statistics(lambda: new, sha_second)[0].tolist() == [1, 1, 1, 1]
    stored = np.load(run.folder / GanRun.FID_REAL)
    assert str(stored["patches_sha256"]) == sha_second
    # statistics of other patches (copied in, or from an older version) are made again
    np.savez(run.folder / GanRun.FID_REAL, mean=old[0], covariance=old[1])
    assert run.real_fid_statistics(lambda: new, sha_second)[0].tolist() == [1, 1, 1, 1]
    calls = []
    run.real_fid_statistics(lambda: calls.append(1) or new, sha_second)
    assert not calls  # cached for these patches


# --- one writer per folder -------------------------------------------------------------------

HOLDER = """
import sys
from napari_diffrendergan.io import FolderLock
with FolderLock(sys.argv[1], "synthetic data generation"):
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes stdin, or kills this process
"""


@pytest.fixture
def held(tmp_path):
    """A folder locked by another process (yields the folder and that process)."""
    folder = tmp_path / "held"
    child = python(HOLDER, folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == "locked"
    yield folder, child
    child.kill()
    child.wait()


def test_a_second_writer_is_told_who_holds_the_folder(held, tmp_path, capsys):
    from napari_diffrendergan.cli import main

    folder, child = held
    with pytest.raises(FolderBusyError) as caught:
        blob_set(folder)
    message = str(caught.value)
    assert "\n" not in message and str(folder) in message
    assert f"process {child.pid}" in message and "synthetic data generation" in message
    assert "since" in message and "wait until it has finished" in message
    assert not (folder / "patches.json").exists()
    image = tmp_path / "scan.tif"
    tifffile.imwrite(image, np.random.default_rng(0).random((64, 64)).astype(np.float32))
    assert main(["patches", str(image), "--out", str(folder), "--size", "32"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and f"process {child.pid}" in error
    child.stdin.close()  # the holder finishes: the folder is free again
    assert child.wait(30) == 0 and not (folder / LOCK_NAME).exists()
    assert len(PatchSet.open(blob_set(folder)).patches) == 3


def test_one_process_cannot_write_a_folder_twice_at_once(tmp_path):
    busy = pytest.raises(FolderBusyError, match=f"process {os.getpid()}")
    with FolderLock(tmp_path, "GAN training"), busy:
        GanRun.create(tmp_path, tmp_path / "nothing", preset("tio2-sem"), TrainingSettings())
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_left_by_a_crash_is_taken_over_with_a_note(tmp_path, caplog):
    folder = tmp_path / "set"
    child = python(HOLDER, folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == "locked"
    child.kill()  # a crash: the lock file stays, naming a process that no longer runs
    child.wait()
    assert str(child.pid) in (folder / LOCK_NAME).read_text()
    with caplog.at_level("WARNING"):
        assert len(PatchSet.open(blob_set(folder)).patches) == 3
    assert f"process {child.pid}" in caplog.text and "took over" in caplog.text
    assert not (folder / LOCK_NAME).exists()
    dead = {"pid": child.pid, "host": "x", "what": "GAN training", "since": "yesterday"}
    (folder / LOCK_NAME).write_text(json.dumps(dead))  # a lock file left by hand or a copy
    with FolderLock(folder, "patch saving") as lock:
        assert lock.notes and "GAN training" in lock.notes[0]


def test_failed_starts_leave_no_folder_and_readers_ignore_the_lock(tmp_path):
    with pytest.raises(PatchError):
        GanRun.create(
            tmp_path / "run", tmp_path / "nothing", preset("tio2-sem"), TrainingSettings()
        )
    assert not (tmp_path / "run").exists()
    folder = blob_set(tmp_path / "set")
    with FolderLock(folder, "patch saving"):
        assert len(PatchSet.open(folder).patches) == 3  # readers read on
        from napari_diffrendergan.segment.batch import image_files

        assert [p.name for p in image_files([folder])] == [f"patch_0000{i}.tif" for i in range(3)]


def test_thickness_outputs_name_their_source_without_its_path(tmp_path):
    from napari_diffrendergan.analysis.thickness import analyse, synthetic_wires, write_outputs

    source = tmp_path / "home" / "alice" / "wires.tif"
    written = write_outputs(
        analyse(synthetic_wires((64, 64), [6, 9])), tmp_path / "out", "w", str(source)
    )
    sidecar = json.loads(Path(written["thickness"]).with_suffix(".json").read_text())
    assert sidecar["source"] == "wires.tif"


# --- synthetic datasets (a tiny trained run) -------------------------------------------------


@pytest.mark.slow
def test_datasets_and_runs_record_no_absolute_path_and_one_writer_at_a_time(
    tiny_run, tmp_path, tmp_path_factory
):
    import shutil

    import torch

    from napari_diffrendergan.gan.synthesis import SynthesisError, generate

    base = str(tmp_path_factory.getbasetemp())
    fid = np.load(tiny_run / GanRun.FID_REAL)
    info = json.loads((tiny_run / "training.json").read_text())
    assert str(fid["patches_sha256"]) == info["patches_sha256"]
    dataset = tmp_path / "Dataset103_Syn"
    generate(tiny_run, dataset, 1, device="cpu")
    texts = {**json_texts(dataset), **json_texts(tiny_run)}
    assert texts and not [name for name, text in texts.items() if base in text]
    assert json.loads(texts["generation.json"])["run"] == "run"

    # the run shared elsewhere continues the dataset it made (same name, same weights)
    copy = tmp_path / "shared" / "run"
    shutil.copytree(tiny_run, copy)
    assert generate(copy, dataset, 2, device="cpu")["synthetic_pairs"] == 2
    # another run of the same name is refused: its pairs would mix
    checkpoint = copy / "checkpoints" / "epoch_001.pt"
    state = torch.load(checkpoint, weights_only=True)
    for tensor in state["average"].values():
        tensor += 0.01
    torch.save(state, checkpoint)
    with pytest.raises(SynthesisError, match="generator_sha256"):
        generate(copy, dataset, 3, device="cpu")

    # a second generation into a folder being written is refused before rendering
    busy = tmp_path / "busy"
    child = python(HOLDER, busy, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusyError, match=f"process {child.pid}"):
            generate(tiny_run, busy, 1, seed=5, device="cpu")
        assert not (busy / "parameters").exists()
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
def test_nnunet_accepts_a_dataset_folder_holding_a_lock(tmp_path):
    from conftest import blob_sample
    from napari_diffrendergan.data.dataset import NnunetDataset

    samples = [blob_sample(seed) for seed in range(3)]
    folder = tmp_path / "Dataset004_Locked"
    NnunetDataset(folder).write([s[0] for s in samples], [s[1] for s in samples], 1)
    verify = (
        "import sys\n"
        "from nnunetv2.experiment_planning.verify_dataset_integrity import "
        "verify_dataset_integrity\n"
        "if __name__ == '__main__':\n"
        "    verify_dataset_integrity(sys.argv[1], 1)\n"
    )
    with FolderLock(folder, "synthetic data generation"):
        assert (folder / LOCK_NAME).is_file()
        assert python(verify, folder).wait(300) == 0
