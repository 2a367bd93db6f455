"""Bad inputs and faults a careful user tries, run through the ``diffrendergan`` command line as
a user would, each classified as correct, clear error, or one of the failures (code execution,
data loss, silent wrong result, hang, traceback, cryptic error).

    python benchmarks/robustness.py --work DIR [--markdown docs/robustness.md]

It first makes what the cases need with the command line itself (a rendered scan, a patch set,
a 1-epoch GAN run, a small dataset, a 60-iteration nnU-Net model; ~5 min on 2 cores, kept in
``DIR/fixtures`` and reused), then runs every case in a fresh copy. The code under test is the
checkout this script belongs to (``src/`` beside it). Malicious files only create a marker file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch

REPO = Path(__file__).resolve().parents[1]
MARKER = "PWNED"
GOOD = ("correct", "clear error")


class Payload:
    """Unpickling this creates the marker file (stands for any code a stranger's file runs)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Outcome:
    code: int | None  # None: killed at the time limit
    out: str
    err: str
    seconds: float


@dataclass
class Case:
    """One thing a user does: ``prepare(work, fixtures)`` makes its inputs and returns the
    arguments; ``expect`` is "error" (one line naming ``names``), "correct" or "either";
    ``verify`` returns what is wrong with a result ("<outcome>: why"), or None."""

    group: str
    what: str
    prepare: Callable[[Path, Path], list[str]]
    expect: str = "error"
    names: str = ""
    verify: Callable[[Path, Outcome], str | None] | None = None
    timeout: float = 120
    started: Callable[[Path], bool] | None = None  # for a run stopped at its limit: did it start?
    parallel: int = 1  # run this many copies at once (the same arguments)
    result: str = ""
    detail: str = ""


# --- running the command line ----------------------------------------------------------------


def environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def launch(argv: list[str], cwd: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "napari_diffrendergan.cli", *argv]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, started: float, timeout: float) -> Outcome:
    try:
        out, err = process.communicate(timeout=max(1.0, timeout - (time.perf_counter() - started)))
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        out, err = process.communicate()
        code = None
    return Outcome(code, out, err, time.perf_counter() - started)


def cli(argv: list[str], cwd: Path, timeout: float = 1800) -> Outcome:
    started = time.perf_counter()
    return finish(launch(argv, cwd), started, timeout)


def must(argv: list[str], cwd: Path) -> None:
    outcome = cli(argv, cwd)
    if outcome.code != 0:
        raise SystemExit(f"fixture step failed: diffrendergan {' '.join(argv)}\n{outcome.err}")


# --- fixtures ----------------------------------------------------------------------------------


def make_fixtures(folder: Path) -> Path:
    """scan/ (a rendered TiO2 scene), patches/, run/ (1 epoch), dataset/, model/, pred/."""
    done = folder / "complete"
    if done.is_file():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    steps = [
        ["scene", "--preset", "tio2-sem", "--seed", "0", "--out", "scan"],
        ["patches", "scan/image.tif", "--out", "patches", "--size", "64", "--stride", "32"]
        + ["--role", "particle"],
        ["train", "--patches", "patches", "--preset", "tio2-sem", "--out", "run"]
        + ["--epochs", "1", "--iterations-per-epoch", "2", "--seed", "0"],
        ["generate", "run", "--count", "8", "--out", "dataset", "--epoch", "1"],
        ["segment-train", "dataset", "--out", "model", "--iterations", "60"],
        ["segment", "scan/image.tif", "--model", "model", "--out", "pred"],
    ]
    for argv in steps:
        print("fixture: diffrendergan", " ".join(argv), flush=True)
        must(argv, folder)
    done.write_text("")
    return folder


def copy_of(fixtures: Path, work: Path, *names: str) -> None:
    for name in names:
        shutil.copytree(fixtures / name, work / name, symlinks=True)


def write_tif(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data)
    return path


def corrupt_tif(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"II*\x00" + os.urandom(64))
    return path


def scan(work: Path) -> np.ndarray:
    return tifffile.imread(work / "scan" / "image.tif")


def poisoned_checkpoint(path: Path, keys: tuple[str, ...]) -> None:
    payload = Payload(path.parents[0].resolve() / MARKER)
    torch.save({key: payload for key in keys}, path)


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --- checks on what a run left -----------------------------------------------------------------


def error_lines(outcome: Outcome) -> list[str]:
    """Lines with an error message (without a progress bar drawn before it)."""
    lines = [line for line in outcome.err.splitlines() if ": error:" in line]
    return [
        line[line.index("diffrendergan") :] if "diffrendergan" in line else line for line in lines
    ]


def json_of(outcome: Outcome):
    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    last = outcome.out.strip().splitlines()[-1] if outcome.out.strip() else ""
    return json.loads(last, parse_constant=refuse)


def classify(case: Case, work: Path, outcomes: list[Outcome]) -> tuple[str, str]:
    if list(work.rglob(MARKER)):
        return "code execution", "the marker file appeared"
    if case.parallel > 1:
        return classify_parallel(case, outcomes)
    first = outcomes[0]
    if first.code is None:
        if case.started and case.started(work):
            return "correct", f"started at once (stopped at the {case.timeout:.0f} s limit)"
        return "hang", f"no result after {case.timeout:.0f} s"
    if "Traceback" in first.err:
        return "traceback", first.err.strip().splitlines()[-1][:160]
    problem = case.verify(work, first) if case.verify else None
    if problem:
        return problem.split(":")[0], problem
    if first.code == 0:
        if case.expect == "error":
            return "silent wrong", "exit 0 where an error was due"
        return "correct", first.out.strip().splitlines()[-1][:160] if first.out.strip() else ""
    return clarity(first, "" if case.expect == "correct" else case.names)


def clarity(outcome: Outcome, names: str) -> tuple[str, str]:
    """A clear error is one line naming ``names`` (the argument or file): exit code 2 with
    ``diffrendergan CMD: error: …``, or, where other files of a batch finished, exit code 1
    with a ``skipped: FILE: …`` line for each file that failed."""
    errors = error_lines(outcome) if outcome.code == 2 else skipped_lines(outcome)
    if outcome.code not in (1, 2) or len(errors) != 1:
        return "cryptic error", f"exit {outcome.code}: " + outcome.err.strip()[-160:]
    if names.lower() not in errors[0].lower():
        return "cryptic error", errors[0][:200]
    return "clear error", errors[0][:200]


def skipped_lines(outcome: Outcome) -> list[str]:
    return [line[line.index("skipped") :] for line in outcome.err.splitlines() if "skipped" in line]


def classify_parallel(case: Case, outcomes: list[Outcome]) -> tuple[str, str]:
    codes = [o.code for o in outcomes]
    if codes.count(0) == len(codes):
        return "silent wrong", "both writers finished into one folder"
    refused = [o for o in outcomes if o.code not in (0, None)]
    if codes.count(0) == 1 and refused:
        return clarity(refused[0], case.names)
    return "cryptic error", f"exit codes {codes}"


def run_case(case: Case, fixtures: Path, scratch: Path) -> None:
    work = scratch / f"case{id(case)}"
    work.mkdir(parents=True)
    argv = case.prepare(work, fixtures)
    started = time.perf_counter()
    processes = [launch(argv, work) for _ in range(case.parallel)]
    outcomes = [finish(p, started, case.timeout) for p in processes]
    case.result, detail = classify(case, work, outcomes)
    case.detail = detail.replace(f"{work}/", "")  # the case's scratch folder says nothing


# --- the cases ---------------------------------------------------------------------------------


def cases() -> list[Case]:
    return [
        *code_execution_cases(),
        *data_loss_cases(),
        *silent_wrong_cases(),
        *hang_cases(),
        *traceback_cases(),
        *cryptic_cases(),
    ]


def code_execution_cases() -> list[Case]:
    def model_checkpoint(work, fixtures):
        copy_of(fixtures, work, "model", "scan")
        poisoned_checkpoint(
            work / "model/fold_all/checkpoint_final.pth", ("network_weights", "trainer_name")
        )
        return ["segment", "scan/image.tif", "--model", "model", "--out", "out"]

    def model_plans(work, fixtures):
        copy_of(fixtures, work, "model", "scan")
        (work / "evilmod.py").write_text(
            f"open({str(work / MARKER)!r}, 'w').close()\nclass Net: pass\n"
        )

        def point_at_evil(plans):
            for configuration in plans["configurations"].values():
                if "architecture" in configuration:
                    configuration["architecture"]["network_class_name"] = "evilmod.Net"

        edit_json(work / "model/plans.json", point_at_evil)
        return ["segment", "scan/image.tif", "--model", "model", "--out", "out"]

    def gan_checkpoint(resume: bool):
        def prepare(work, fixtures):
            copy_of(fixtures, work, "run", "patches")
            for path in (work / "run/checkpoints").glob("*.pt"):
                poisoned_checkpoint(path, ("generator", "discriminator", "epoch"))
            if resume:
                return ["train", "--out", "run", "--resume", "--epochs", "2"]
            return ["generate", "run", "--count", "2", "--out", "pairs"]

        return prepare

    def nnunet_resume(work, fixtures):
        copy_of(fixtures, work, "model", "dataset")
        (work / "model/model.json").unlink()
        folds = list((work / "model/workspace").rglob("fold_all"))
        poisoned_checkpoint(folds[0] / "checkpoint_latest.pth", ("network_weights",))
        return ["segment-train", "dataset", "--out", "model", "--resume", "--iterations", "60"]

    return [
        Case("code", "segment with a model whose checkpoint is a malicious pickle",
             model_checkpoint, names="checkpoint_final.pth"),
        Case("code", "segment with a plans.json naming a network class in a local module",
             model_plans, names="plans.json"),
        Case("code", "generate from a run whose checkpoint is a malicious pickle",
             gan_checkpoint(resume=False), names="epoch_001.pt"),
        Case("code", "train --resume a run whose checkpoint is a malicious pickle",
             gan_checkpoint(resume=True), names="epoch_001.pt"),
        Case("code", "segment-train --resume with a malicious checkpoint_latest.pth",
             nnunet_resume, names="checkpoint_latest.pth"),
    ]  # fmt: skip


def data_loss_cases() -> list[Case]:
    def same_stem(work, fixtures):
        mask = (tifffile.imread(fixtures / "scan/mask.tif") > 0).astype(np.uint8)
        write_tif(work / "a/x_mask.tif", mask)
        write_tif(work / "b/x_mask.tif", mask[:, ::-1].copy())
        return ["thickness", "a/x_mask.tif", "b/x_mask.tif", "--out", "D"]

    def both_kept(work, outcome):
        if outcome.code == 0 and len(list((work / "D").glob("*thickness*.tif"))) < 2:
            return "data loss: one result overwrote the other"
        return None

    def same_name_segment(work, fixtures):
        copy_of(fixtures, work, "model")
        image = tifffile.imread(fixtures / "scan/image.tif")
        write_tif(work / "a/x.tif", image)
        write_tif(work / "b/x.tif", image[:, ::-1].copy())
        return ["segment", "a/x.tif", "b/x.tif", "--model", "model", "--out", "D"]

    def both_segmented(work, outcome):
        if outcome.code == 0 and len(list((work / "D").glob("*_instances.tif"))) < 2:
            return "data loss: one result overwrote the other"
        return None

    return [
        Case("data loss", "thickness a/x_mask.tif b/x_mask.tif --out D", same_stem,
             expect="either", names="x_mask", verify=both_kept),
        Case("data loss", "segment a/x.tif b/x.tif --out D", same_name_segment,
             expect="either", names="x.tif", verify=both_segmented),
    ]  # fmt: skip


def silent_wrong_cases() -> list[Case]:
    def concurrent_generate(work, fixtures):
        copy_of(fixtures, work, "run")
        return ["generate", "run", "--count", "6", "--out", "pairs", "--epoch", "1"]

    def truth_case(make_truth: Callable[[np.ndarray], np.ndarray]):
        def prepare(work, fixtures):
            instances = tifffile.imread(fixtures / "scan/instances.tif")
            write_tif(work / "pred/x_instances.tif", instances.astype(np.int32))
            write_tif(work / "truth/x.tif", make_truth(fixtures))
            return ["evaluate", "--pred", "pred", "--truth", "truth", "--json"]

        return prepare

    def three_class(fixtures):
        return tifffile.imread(fixtures / "scan/mask.tif").astype(np.uint8)

    def odd_values(fixtures):
        mask = tifffile.imread(fixtures / "scan/mask.tif").astype(np.uint8)
        return np.choose(mask, [0, 128, 255]).astype(np.uint8)

    def minus_one(fixtures):
        mask = tifffile.imread(fixtures / "scan/mask.tif")
        return -(mask == 1).astype(np.int16)

    def scored_well(work, outcome):
        if outcome.code != 0:
            return None
        try:
            result = json_of(outcome)
        except ValueError as err:
            return f"silent wrong: --json is not valid JSON ({err})"
        if not result.get("ap50") or result["ap50"] < 0.5:
            return f"silent wrong: AP50 {result.get('ap50')} of a truth against itself"
        return None

    def nan_json(work, fixtures):
        write_tif(work / "pred/x_instances.tif", np.zeros((64, 64), np.int32))
        write_tif(work / "truth/x.tif", np.zeros((64, 64), np.uint8))
        return ["evaluate", "--pred", "pred", "--truth", "truth", "--json"]

    def strict_json(work, outcome):
        if outcome.code == 0:
            try:
                json_of(outcome)
            except ValueError as err:
                return f"silent wrong: --json is not valid JSON ({err})"
        return None

    def tiny_pixel(work, fixtures):
        mask = (tifffile.imread(fixtures / "scan/mask.tif") > 0).astype(np.uint8)
        write_tif(work / "m_mask.tif", mask)
        return ["thickness", "m_mask.tif", "--out", "D", "--pixel-size", "1e-300"]

    def uniform(command: str):
        def prepare(work, fixtures):
            write_tif(work / "u.tif", np.full((256, 256), 0.5, np.float32))
            if command == "segment":
                copy_of(fixtures, work, "model")
                return ["segment", "u.tif", "--model", "model", "--out", "D"]
            if command == "patches":
                return ["patches", "u.tif", "--out", "D", "--size", "64", "--role", "auto"]
            return ["thickness", "u.tif", "--out", "D"]

        return prepare

    def no_particles(work, outcome):
        if outcome.code != 0:
            return None
        found = 0
        for path in (work / "D").glob("*_instances.tif"):
            found += len(np.unique(tifffile.imread(path))) - 1
        listing = work / "D/patches.json"
        if listing.is_file():
            roles = [p.get("role") for p in json.loads(listing.read_text()).get("patches", [])]
            found += roles.count("particle")
        for table in (work / "D").glob("*_thickness.csv"):
            found += max(0, len(table.read_text().splitlines()) - 1)
        if found:
            return f"silent wrong: {found} particles or wires in a uniform image"
        return None

    def best_epoch(value):
        def prepare(work, fixtures):
            copy_of(fixtures, work, "run")
            edit_json(work / "run/metrics.json", lambda m: m.update(best_epoch_override=value))
            return ["best-epoch", "run"]

        return prepare

    def epoch_exists(work, outcome):
        if outcome.code == 0 and ("99" in outcome.out or "two" in outcome.out):
            return "silent wrong: an epoch that does not exist shown as the best"
        return None

    return [
        Case("silent", "two generate runs into one folder at once", concurrent_generate,
             names="pairs", parallel=2, timeout=600),
        Case("silent", "evaluate with a 3-class truth mask (0/1/2)", truth_case(three_class),
             expect="either", names="--truth-kind", verify=scored_well),
        Case("silent", "evaluate with a truth of values 0/128/255", truth_case(odd_values),
             expect="either", names="--truth-kind", verify=scored_well),
        Case("silent", "evaluate with an int16 truth of 0/-1", truth_case(minus_one),
             expect="either", names="--truth-kind", verify=scored_well),
        Case("silent", "evaluate --json where a score is undefined (no particles)", nan_json,
             expect="either", names="", verify=strict_json),
        Case("silent", "thickness --pixel-size 1e-300", tiny_pixel, names="--pixel-size"),
        Case("silent", "segment a uniform image", uniform("segment"), expect="either",
             verify=no_particles),
        Case("silent", "patches --role auto on a uniform image", uniform("patches"),
             expect="either", verify=no_particles),
        Case("silent", "thickness of a uniform image", uniform("thickness"), expect="either",
             verify=no_particles),
        Case("silent", "best-epoch with a hand-edited best epoch 99", best_epoch(99),
             names="metrics.json", verify=epoch_exists),
        Case("silent", 'best-epoch with a hand-edited best epoch "two"', best_epoch("two"),
             names="metrics.json", verify=epoch_exists),
    ]  # fmt: skip


def hang_cases() -> list[Case]:
    def many_workers(work, fixtures):
        copy_of(fixtures, work, "model", "scan")
        argv = ["segment", "scan/image.tif", "--model", "model", "--out", "D"]
        return argv + ["--workers", "100000"]

    def huge_count(work, fixtures):
        copy_of(fixtures, work, "run")
        return ["generate", "run", "--count", "1000000000", "--out", "D", "--epoch", "1"]

    def wrote_a_pair(work):
        return any((work / "D").rglob("*.tif"))

    return [
        Case("hang", "segment --workers 100000", many_workers, names="--workers", timeout=60),
        Case("hang", "generate --count 1000000000", huge_count, expect="either",
             names="--count", timeout=90, started=wrote_a_pair),
    ]  # fmt: skip


def traceback_cases() -> list[Case]:
    def corrupt_segment(work, fixtures):
        copy_of(fixtures, work, "model")
        corrupt_tif(work / "bad.tif")
        return ["segment", "bad.tif", "--model", "model", "--out", "D"]

    def symlink_loop(command: str):
        def prepare(work, fixtures):
            (work / "loop").symlink_to(work / "loop")
            write_tif(work / "m_mask.tif", tifffile.imread(fixtures / "scan/mask.tif") > 0)
            if command == "thickness":
                return ["thickness", "m_mask.tif", "--out", "loop"]
            copy_of(fixtures, work, "scan")
            return ["patches", "scan/image.tif", "--out", "loop"]

        return prepare

    def step(value: str):
        def prepare(work, fixtures):
            copy_of(fixtures, work, "model", "scan")
            return ["segment", "scan/image.tif", "--model", "model", "--out", "D"] + [
                "--window",
                "whole",
                "--step",
                value,
            ]

        return prepare

    def huge_spp(work, fixtures):
        copy_of(fixtures, work, "run")
        return ["generate", "run", "--count", "2", "--out", "D", "--spp", "1000000"]

    def huge_scene(work, fixtures):
        return ["scene", "--preset", "tio2-sem", "--size", "100000", "--out", "D"]

    def training_json(change: Callable[[dict], None]):
        def prepare(work, fixtures):
            copy_of(fixtures, work, "run", "patches")
            edit_json(work / "run/training.json", change)
            return ["train", "--out", "run", "--resume", "--epochs", "2"]

        return prepare

    def negative_lr(data):
        data["settings"]["lr_generator"] = -1

    def string_settings(data):
        data["settings"] = "fast please"

    return [
        Case("traceback", "segment a corrupt TIFF", corrupt_segment, names="bad.tif"),
        Case("traceback", "thickness --out a symlink loop", symlink_loop("thickness"),
             names="loop"),
        Case("traceback", "patches --out a symlink loop", symlink_loop("patches"),
             names="loop"),
        Case("traceback", "segment --window whole --step 0", step("0"), names="--step"),
        Case("traceback", "segment --window whole --step 2", step("2"), names="--step"),
        Case("traceback", "segment --window whole --step nan", step("nan"), names="--step"),
        Case("traceback", "generate --spp 1000000", huge_spp, names="spp 1000000", timeout=120),
        Case("traceback", "scene --size 100000", huge_scene, names="100000x100000", timeout=120),
        Case("traceback", "train --resume with training.json lr -1",
             training_json(negative_lr), names="training.json"),
        Case("traceback", "train --resume with training.json settings as a string",
             training_json(string_settings), names="training.json"),
    ]  # fmt: skip


def cryptic_cases() -> list[Case]:
    def stack(work, fixtures):
        write_tif(work / "stack.tif", np.zeros((3, 300, 300), np.uint8))
        return ["patches", "stack.tif", "--out", "D"]

    def tiny(work, fixtures):
        write_tif(work / "tiny.tif", np.zeros((5, 5), np.uint8))
        return ["patches", "tiny.tif", "--out", "D"]

    def corrupt(command: str):
        def prepare(work, fixtures):
            corrupt_tif(work / "bad.tif")
            if command == "evaluate":
                write_tif(work / "pred/bad_instances.tif", np.zeros((64, 64), np.int32))
                corrupt_tif(work / "truth/bad.tif")
                return ["evaluate", "--pred", "pred", "--truth", "truth"]
            return [command, "bad.tif", "--out", "D"]

        return prepare

    def same_name_patches(work, fixtures):
        image = tifffile.imread(fixtures / "scan/image.tif")
        write_tif(work / "a/x.tif", image)
        write_tif(work / "b/x.tif", image[::-1].copy())
        return ["patches", "a/x.tif", "b/x.tif", "--out", "D", "--size", "64"]

    def nan_in_batch(work, fixtures):
        copy_of(fixtures, work, "model")
        image = tifffile.imread(fixtures / "scan/image.tif").astype(np.float32)
        write_tif(work / "in/good.tif", image)
        broken = image.copy()
        broken[10:20, 10:20] = np.nan
        write_tif(work / "in/broken.tif", broken)
        return ["segment", "in", "--model", "model", "--out", "D", "--workers", "2"]

    def good_one_kept(work, outcome):
        if not (work / "D/good_instances.tif").is_file():
            return "cryptic error: the good image of the batch was abandoned"
        return None

    def malformed_dataset(work, fixtures):
        copy_of(fixtures, work, "dataset")
        (work / "dataset/dataset.json").write_text('{"labels": {')
        return ["segment-train", "dataset", "--out", "M", "--iterations", "10"]

    def malformed_plans(work, fixtures):
        copy_of(fixtures, work, "model", "scan")
        (work / "model/plans.json").write_text('{"configurations": ')
        return ["segment", "scan/image.tif", "--model", "model", "--out", "D"]

    return [
        Case("cryptic", "patches on a 3D stack", stack, names="stack.tif"),
        Case("cryptic", "patches on a 5x5 image", tiny, names="tiny.tif"),
        Case("cryptic", "patches on a corrupt TIFF", corrupt("patches"), names="bad.tif"),
        Case("cryptic", "thickness on a corrupt TIFF", corrupt("thickness"), names="bad.tif"),
        Case("cryptic", "evaluate with a corrupt truth TIFF", corrupt("evaluate"),
             names="bad.tif"),
        Case("cryptic", "patches a/x.tif b/x.tif (same name, two folders)", same_name_patches,
             expect="either", names="x.tif"),
        Case("cryptic", "segment a folder where one image holds NaN (Dask, 2 workers)",
             nan_in_batch, names="broken.tif", verify=good_one_kept, timeout=300),
        Case("cryptic", "segment-train with a malformed dataset.json", malformed_dataset,
             names="dataset.json"),
        Case("cryptic", "segment with a malformed plans.json", malformed_plans,
             names="plans.json"),
    ]  # fmt: skip


# --- report ------------------------------------------------------------------------------------


def markdown(all_cases: list[Case], commit: str, before: dict | None) -> str:
    """The summary and one row per case; ``before`` adds an earlier run's outcomes."""
    counts = Counter(c.result for c in all_cases)
    earlier = Counter(before["results"].get(c.what) for c in all_cases) if before else Counter()
    then = f"before ({before['commit']})" if before else ""
    lines = [
        "# Robustness: bad inputs and faults",
        "",
        f"Written by `benchmarks/robustness.py` at commit {commit}: each case runs the "
        "`diffrendergan` command line as a user would, in a fresh folder. *Correct* and *clear "
        "error* (exit code 2, one line naming the argument or file, no traceback) are the two "
        "right answers; malicious files only create a marker file. Rerun: `python "
        "benchmarks/robustness.py --work DIR --markdown docs/robustness.md --before "
        "docs/robustness-13dcc3c.json` (7 min on 2 cores beside a test run); the tests in "
        "`tests/test_security.py`, `tests/test_integrity.py` and `tests/test_bad_inputs*.py` "
        "check the same cases and more.",
        "",
        f"| outcome | cases{f' | {then}' if before else ''} |",
        f"|---|---{'|---' if before else ''}|",
    ]
    for name in sorted(set(counts) | set(earlier) - {None}, key=lambda n: -counts[n]):
        lines.append(f"| {name} | {counts[name]}{f' | {earlier[name]}' if before else ''} |")
    lines += [
        "",
        f"| group | case | outcome | what it said{f' | {then}' if before else ''} |",
        f"|---|---|---|---{'|---' if before else ''}|",
    ]
    for case in all_cases:
        detail = case.detail.replace("|", "\\|").replace("\n", " ")
        row = f"| {case.group} | {case.what} | {case.result} | {detail} |"
        if before:
            row += f" {before['results'].get(case.what, '–')} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (fixtures kept)")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument("--only", help="run only cases whose description contains this")
    parser.add_argument("--json", type=Path, help="write the outcomes here (for --before)")
    parser.add_argument("--before", type=Path, help="an earlier run's --json, shown beside")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    fixtures = make_fixtures(args.work / "fixtures")
    scratch = args.work / "cases"
    shutil.rmtree(scratch, ignore_errors=True)
    chosen = [c for c in cases() if not args.only or args.only in c.what]
    for case in chosen:
        run_case(case, fixtures, scratch)
        print(f"{case.result:15s} {case.what}: {case.detail}", flush=True)
    before = json.loads(args.before.read_text()) if args.before else None
    table = markdown(chosen, commit, before)
    if args.json:
        results = {c.what: c.result for c in chosen}
        args.json.write_text(json.dumps({"commit": commit, "results": results}, indent=1))
    if args.markdown:
        args.markdown.write_text(table)
    print(table)
    bad = [c for c in chosen if c.result not in GOOD]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
