"""nnU-Net v2 training, run as a separate process:
``python -m napari_diffrendergan.segment.nnunet_child``.

nnU-Net's planning and preprocessing use spawn pools, which need a ``__main__`` guard and must
not start inside napari; :func:`napari_diffrendergan.segment.training.train_model` runs this module
as a subprocess and reads its progress, one JSON object per stdout line prefixed ``@@``.

The trainer is a plain ``nnUNetTrainer`` instance (other trainer names make nnU-Net search
modules that import timm), with epochs/iterations set on the instance. The result is a
self-contained :class:`~.model.ModelFolder`.

A model folder's workspace may come from someone else, so nothing in it runs code: the plans
are checked (:func:`~.model.check_plans`) before nnU-Net reads them, the data are preprocessed
again on every run (nnU-Net unpickles its preprocessed case properties), a checkpoint to resume
from loads weights-only, and every other ``torch.load`` here is forced to be weights-only.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

from ..data.dataset import NnunetDataset
from ..errors import DiffRenderGANError
from ..io import load_weights, read_json
from .model import ModelFolder, SegmentationError, check_plans, nnunet_checkpoint_globals

DATASET_ID = 1
CONFIGS = ("small", "default")
SMALL_FEATURES = [16, 32, 64, 128, 256]
ITERATIONS_PER_EPOCH = {"small": 50, "default": 250}
PROGRESS_PREFIX = "@@"


def emit(**message) -> None:
    """One progress message for the parent process."""
    print(PROGRESS_PREFIX + json.dumps(message), flush=True)


def set_environment(workspace: Path, processes: int) -> None:
    """nnU-Net's folders and process counts; must run before nnunetv2 is imported."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = workspace / name
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(folder)
    os.environ["nnUNet_def_n_proc"] = str(processes)
    os.environ["nnUNet_n_proc_DA"] = str(processes)  # planning needs > 0; training resets it
    os.environ["nnUNet_compile"] = "0"
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"  # nnU-Net's own torch.loads too


def link_dataset(dataset: Path, workspace: Path) -> str:
    """Expose the user's raw dataset to nnU-Net as Dataset001_<name> (symlink, else copy)."""
    name = f"Dataset{DATASET_ID:03d}_{dataset.name.split('_', 1)[-1] or 'Particles'}"
    target = workspace / "nnUNet_raw" / name
    if not target.exists():
        try:
            target.symlink_to(dataset.resolve(), target_is_directory=True)
        except OSError:
            shutil.copytree(dataset, target)
    return name


def small_configuration(plans: dict) -> dict:
    """A CPU-sized 2D U-Net: 5 stages, 16-256 features, 256² patches (~1.9 M parameters)."""
    base = plans["configurations"]["2d"]
    architecture = copy.deepcopy(base["architecture"])
    n = len(SMALL_FEATURES)
    architecture["arch_kwargs"].update(
        n_stages=n,
        features_per_stage=SMALL_FEATURES,
        kernel_sizes=[[3, 3]] * n,
        strides=[[1, 1]] + [[2, 2]] * (n - 1),
        n_conv_per_stage=[2] * n,
        n_conv_per_stage_decoder=[2] * (n - 1),
    )
    patch = [min(256, max(16, p // 16 * 16)) for p in base["patch_size"]]
    return {
        "inherits_from": "2d",
        "patch_size": patch,
        "batch_size": 4,
        "architecture": architecture,
    }


def plan_and_preprocess(name: str, processes: int, config: str) -> tuple[dict, str]:
    """Integrity check, fingerprint, plans (+ the small configuration) unless the workspace has
    plans (they are checked), then preprocessing."""
    from batchgenerators.utilities.file_and_folder_operations import save_json
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / name
    plans_file = preprocessed / "nnUNetPlans.json"
    if not plans_file.is_file():
        emit(stage="checking dataset")
        verify_dataset_integrity(str(Path(os.environ["nnUNet_raw"]) / name), processes)
        emit(stage="fingerprinting dataset")
        extract_fingerprint_dataset(
            DATASET_ID, num_processes=processes, clean=True, verbose=False, show_progress_bar=False
        )
        emit(stage="planning")
        plan_experiment_dataset(DATASET_ID)
    plans = read_json(plans_file, "nnU-Net's plans")
    check_plans(plans, plans_file)
    configuration = "2d_small" if config == "small" else "2d"
    if config == "small" and configuration not in plans["configurations"]:
        plans["configurations"][configuration] = small_configuration(plans)
        save_json(plans, str(plans_file), sort_keys=False)
    emit(stage="preprocessing")
    preprocess_dataset(DATASET_ID, "nnUNetPlans", ["2d"], [processes], show_progress_bar=False)
    return plans, configuration


def seed_everything(seed: int) -> None:
    """Seed the generators nnU-Net draws weights, patches and augmentations from."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - nnU-Net draws from the legacy global generator
    torch.manual_seed(seed)


def restore(trainer, checkpoint: dict) -> None:
    """``nnUNetTrainer.load_checkpoint`` for a checkpoint loaded weights-only (given a file,
    nnU-Net unpickles it without that restriction; given a dict, 2.8 fails on an unbound
    name)."""
    if not trainer.was_initialized:
        trainer.initialize()
    trainer.network.load_state_dict(checkpoint["network_weights"])
    trainer.my_init_kwargs = checkpoint["init_args"]
    trainer.current_epoch = checkpoint["current_epoch"]
    trainer.logger.load_checkpoint(checkpoint["logging"])
    trainer._best_ema = checkpoint["_best_ema"]
    trainer.inference_allowed_mirroring_axes = checkpoint.get(
        "inference_allowed_mirroring_axes", trainer.inference_allowed_mirroring_axes
    )
    trainer.optimizer.load_state_dict(checkpoint["optimizer_state"])
    if trainer.grad_scaler is not None and checkpoint["grad_scaler_state"] is not None:
        trainer.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])


def train(args) -> None:
    workspace = Path(args.out) / "workspace"
    set_environment(workspace, args.processes)
    name = link_dataset(Path(args.dataset), workspace)
    plans, configuration = plan_and_preprocess(name, args.processes, args.config)

    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    os.environ["nnUNet_n_proc_DA"] = "0" if args.processes <= 2 else str(args.processes)
    torch.set_num_threads(args.processes)
    seed_everything(args.seed)
    epochs = -(-args.iterations // ITERATIONS_PER_EPOCH[args.config])  # ceil
    per_epoch = -(-args.iterations // epochs)
    dataset_json = Path(os.environ["nnUNet_preprocessed"]) / name / "dataset.json"
    trainer = nnUNetTrainer(
        plans={**plans, "continue_training": args.resume},
        configuration=configuration,
        fold="all",
        dataset_json=read_json(dataset_json, "nnU-Net's dataset.json"),
        device=torch.device(args.device),
    )
    trainer.num_epochs = epochs
    trainer.num_iterations_per_epoch = per_epoch
    trainer.num_val_iterations_per_epoch = max(1, per_epoch // 10)
    trainer.save_every = 1
    latest = Path(trainer.output_folder) / "checkpoint_latest.pth"
    if args.resume and latest.is_file():
        checkpoint = load_weights(latest, "training checkpoint", nnunet_checkpoint_globals())
        try:
            restore(trainer, checkpoint)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise SegmentationError(
                f"{latest} is not a checkpoint of this training ({err!r}); train in a new folder"
            ) from err
        emit(stage=f"resuming at epoch {trainer.current_epoch + 1}")
    on_epoch_end = trainer.on_epoch_end

    def report_epoch() -> None:
        epoch = trainer.current_epoch
        on_epoch_end()
        log = trainer.logger
        emit(
            epoch=epoch + 1,
            epochs=epochs,
            iterations=(epoch + 1) * per_epoch,
            train_loss=float(log.get_value("train_losses", step=-1)),
            pseudo_dice=float(log.get_value("ema_fg_dice", step=-1)),
            seconds=float(
                log.get_value("epoch_end_timestamps", step=-1)
                - log.get_value("epoch_start_timestamps", step=-1)
            ),
        )

    trainer.on_epoch_end = report_epoch
    emit(stage="training", epochs=epochs, iterations_per_epoch=per_epoch)
    started = time.time()
    trainer.run_training()
    ModelFolder(args.out).export(
        Path(trainer.output_folder_base),
        {
            "config": args.config,
            "configuration": configuration,
            "iterations": epochs * per_epoch,
            "epochs": epochs,
            "iterations_per_epoch": per_epoch,
            "device": args.device,
            "training_seconds": time.time() - started,
            "dataset": Path(args.dataset).resolve().name,  # no path: models are shared
            "classes": {"0": "background", "1": "particle", "2": "contour"},
            "contour_thickness": NnunetDataset(args.dataset).contour_thickness,
        },
    )
    emit(stage="done", model=str(args.out))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train nnU-Net (run by diffrendergan).")
    parser.add_argument("dataset")
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", choices=CONFIGS, default="small")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and sampling")
    args = parser.parse_args(argv)
    try:
        train(args)
    except Exception as err:  # report any failure to the parent in one readable line
        emit(
            error=str(err)
            if isinstance(err, DiffRenderGANError)
            else f"{type(err).__name__}: {err}"
        )
        raise


if __name__ == "__main__":
    sys.exit(main())
