"""nnU-Net training in a child process (nnU-Net's spawn pools must not start inside napari),
into a :class:`~.model.ModelFolder`; progress per stage and epoch, cancellation at any time."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Cancelled
from ..io import FolderLock
from ..progress import Monitor, ensure
from .model import ModelFolder, SegmentationError
from .nnunet_child import CONFIGS, PROGRESS_PREFIX

STOP_WAIT_S = 10


@dataclass
class TrainingReport:
    model: Path
    epochs: list[dict] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)


def _lines(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line)
    sink.put(None)


def _stop(child: subprocess.Popen) -> None:
    """Stop the child and its workers: SIGTERM, then SIGKILL if it lingers."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        child.wait()


def train_model(
    dataset: str | Path,
    out: str | Path,
    config: str = "small",
    iterations: int = 1000,
    device: str = "auto",
    resume: bool = False,
    monitor: Monitor | None = None,
    seed: int = 0,
) -> TrainingReport:
    """Plan, preprocess and train nnU-Net on ``dataset`` (an nnU-Net raw dataset folder) into
    the model folder ``out``; ``resume`` continues an interrupted training there. Cancelling
    (``monitor``) stops the child within seconds and raises
    :class:`~napari_diffrendergan.errors.Cancelled`. The model folder is locked meanwhile
    (:class:`~napari_diffrendergan.io.FolderLock`)."""
    from ..data.dataset import NnunetDataset

    monitor = ensure(monitor)
    dataset, model = Path(dataset), ModelFolder(out)
    if config not in CONFIGS:
        raise SegmentationError(f"unknown config {config!r}; choose one of {', '.join(CONFIGS)}")
    NnunetDataset.open(dataset)
    if not isinstance(iterations, int) or iterations < 1:
        raise SegmentationError(f"iterations must be a whole number >= 1, got {iterations!r}")
    if model.is_complete and not resume:
        raise SegmentationError(f"{out} already holds a trained model; choose another folder")
    with FolderLock(model.folder, "nnU-Net training"):
        return _train(dataset, model, config, iterations, device, resume, monitor, seed)


def _train(dataset: Path, model: ModelFolder, config, iterations, device, resume, monitor, seed):
    """:func:`train_model` with the model folder locked: the child process and its progress."""
    from ..backend import torch_device

    command = [
        sys.executable,
        "-m",
        "napari_diffrendergan.segment.nnunet_child",
        str(dataset.resolve()),
        "--out",
        str(model.folder.resolve()),
        "--config",
        config,
        "--iterations",
        str(iterations),
        "--device",
        torch_device(device),
        "--seed",
        str(seed),
    ]
    if resume:
        command.append("--resume")
    report = TrainingReport(model.folder)
    error, total = None, 1
    with open(model.log, "a") as log:
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(child.stdout, lines), daemon=True).start()
        while True:
            if monitor.cancelled:
                _stop(child)
                raise Cancelled(
                    f"training cancelled; resume it with the same model folder {model.folder}"
                )
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            log.write(line)
            if not line.startswith(PROGRESS_PREFIX):
                continue
            message = json.loads(line[len(PROGRESS_PREFIX) :])
            if "error" in message:
                error = message["error"]
            elif "epoch" in message:
                report.epochs.append(message)
                total = message["epochs"]
                monitor.report(
                    message["epoch"],
                    total,
                    f"epoch {message['epoch']}/{total}: loss {message['train_loss']:.3f}, "
                    f"pseudo-Dice {message['pseudo_dice']:.3f}",
                )
            elif "stage" in message:
                report.stages.append(message["stage"])
                total = message.get("epochs", total)
                monitor.report(0, total, message["stage"])
        code = child.wait()
    if code != 0 or not model.is_complete:
        raise SegmentationError(
            f"nnU-Net training failed ({error or f'exit code {code}'}); see {model.log}"
        )
    monitor.report(total, total, "trained")
    return report
