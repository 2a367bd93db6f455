"""nnU-Net segmentation: datasets, training (in a subprocess), prediction on images of any size.

Classes: 0 background, 1 particle, 2 contour. Training runs ``napari_diffrendergan.nnunet`` in a
child process (nnU-Net's spawn pools must not start inside napari) and reports progress per
stage and epoch; prediction runs in-process with :class:`Segmenter`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .nnunet import CONFIGS, PROGRESS_PREFIX

CLASSES = {"background": 0, "particle": 1, "contour": 2}
MODEL_FILES = ("plans.json", "dataset.json", "model.json", "fold_all/checkpoint_final.pth")


class SegmentationError(RuntimeError):
    """Training or prediction cannot proceed; the message says why and what to do."""


class Cancelled(RuntimeError):
    """The user cancelled a long-running step."""


# --- datasets ---------------------------------------------------------------------------------


def write_dataset(
    folder: str | Path,
    images,
    masks,
    names=None,
    channel: str = "zscore",
    extra: dict | None = None,
) -> Path:
    """Write an nnU-Net v2 raw dataset: ``imagesTr/<case>_0000.tif`` (float32),
    ``labelsTr/<case>.tif`` (uint8 in {0,1,2}) and ``dataset.json``.

    ``folder`` should be named ``DatasetNNN_Name``. Existing cases are kept (resumable).
    """
    import tifffile

    from .io import atomic_path, write_json_atomic

    folder = Path(folder)
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)

    for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
        case = names[index] if names else f"case_{index:05d}"
        image, mask = np.asarray(image, np.float32), np.asarray(mask)
        if image.shape != mask.shape or image.ndim != 2:
            raise SegmentationError(
                f"case {case}: image {image.shape} and mask {mask.shape} "
                "must be 2D and equal in shape"
            )
        if not set(np.unique(mask).tolist()) <= set(CLASSES.values()):
            raise SegmentationError(f"case {case}: mask values must be 0, 1 or 2")
        for path, data in (
            (folder / "imagesTr" / f"{case}_0000.tif", image),
            (folder / "labelsTr" / f"{case}.tif", mask.astype(np.uint8)),
        ):
            if not path.exists():
                with atomic_path(path) as tmp:
                    tifffile.imwrite(tmp, data)
    total = len(list((folder / "labelsTr").glob("*.tif")))
    write_json_atomic(
        folder / "dataset.json",
        {
            "channel_names": {"0": channel},
            "labels": CLASSES,
            "numTraining": total,
            "file_ending": ".tif",
            "overwrite_image_reader_writer": "NaturalImage2DIO",
            **(extra or {}),
        },
    )
    return folder


# --- training ---------------------------------------------------------------------------------


@dataclass
class TrainingReport:
    model: Path
    epochs: list[dict] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)


def train_model(
    dataset: str | Path,
    out: str | Path,
    config: str = "small",
    iterations: int = 1000,
    device: str = "auto",
    resume: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> TrainingReport:
    """Plan, preprocess and train nnU-Net on ``dataset`` (an nnU-Net raw dataset folder) into
    the model folder ``out``. ``progress(done, total, message)`` gets stages and epochs;
    ``cancelled()`` returning True stops the child process (training can then ``resume``)."""
    from .backend import torch_device

    dataset, out = Path(dataset), Path(out)
    if config not in CONFIGS:
        raise SegmentationError(f"unknown config {config!r}; choose one of {', '.join(CONFIGS)}")
    if not (dataset / "dataset.json").is_file():
        raise SegmentationError(f"{dataset} is not an nnU-Net dataset (no dataset.json)")
    if iterations < 1:
        raise SegmentationError("iterations must be at least 1")
    if (out / "model.json").exists() and not resume:
        raise SegmentationError(f"{out} already holds a trained model; choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "napari_diffrendergan.nnunet",
        str(dataset),
        "--out",
        str(out),
        "--config",
        config,
        "--iterations",
        str(iterations),
        "--device",
        torch_device(device),
    ]
    if resume:
        command.append("--resume")
    report = TrainingReport(out)
    log_path = out / "training.log"
    with open(log_path, "a") as log:
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        error = None
        total = 1
        for line in child.stdout:
            log.write(line)
            if cancelled and cancelled():
                os.killpg(child.pid, signal.SIGTERM)
                child.wait()
                raise Cancelled(f"training cancelled; resume with the same model folder {out}")
            if not line.startswith(PROGRESS_PREFIX):
                continue
            message = json.loads(line[len(PROGRESS_PREFIX) :])
            if "error" in message:
                error = message["error"]
            elif "epoch" in message:
                report.epochs.append(message)
                total = message["epochs"]
                if progress:
                    progress(
                        message["epoch"],
                        total,
                        f"epoch {message['epoch']}/{total}: loss "
                        f"{message['train_loss']:.3f}, pseudo-Dice "
                        f"{message['pseudo_dice']:.3f}",
                    )
            elif "stage" in message:
                report.stages.append(message["stage"])
                if progress:
                    progress(0, message.get("epochs", total), message["stage"])
        code = child.wait()
    if code != 0 or not (out / "model.json").is_file():
        raise SegmentationError(
            f"nnU-Net training failed ({error or f'exit code {code}'}); see {log_path}"
        )
    return report


# --- prediction -------------------------------------------------------------------------------


def check_model_folder(model: str | Path) -> dict:
    """The model's metadata, or a clear error for a missing or incomplete model folder."""
    model = Path(model)
    if not model.is_dir():
        raise SegmentationError(f"model folder {model} does not exist")
    missing = [name for name in MODEL_FILES if not (model / name).is_file()]
    if missing:
        raise SegmentationError(
            f"model folder {model} is incomplete: missing "
            f"{', '.join(missing)} (train it with `diffrendergan "
            "segment-train`, or finish an interrupted run with --resume)"
        )
    labels = json.loads((model / "dataset.json").read_text()).get("labels", {})
    if sorted(labels.values()) != sorted(CLASSES.values()):
        raise SegmentationError(
            f"model {model} predicts {len(labels)} classes {labels}; "
            "expected background, particle and contour"
        )
    return json.loads((model / "model.json").read_text())


def prepare_image(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """float32 2D image and notes about conversions (RGB to gray); clear errors otherwise."""
    from .io import as_gray

    try:
        image, notes = as_gray(image)
    except ValueError as err:
        raise SegmentationError(str(err)) from err
    if min(image.shape) < 8:
        raise SegmentationError(f"image {image.shape} is too small to segment (minimum 8 px)")
    return image, notes


MIRRORING = {"none": None, "x": (1,), "all": (0, 1)}
WINDOWS = ("whole", "sliding")


class Segmenter:
    """A loaded nnU-Net model.

    ``window="whole"`` runs the fully convolutional network once over each block of up to
    ``tile``² pixels (padded to the network's stride) instead of nnU-Net's overlapping
    ``step``-spaced patches (``"sliding"``); ``mirroring`` averages flips along no axis, x, or
    both (nnU-Net's default, 4 passes). See docs/segmentation.md for the measured trade-off.
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "auto",
        window: str = "whole",
        mirroring: str = "none",
        step: float = 0.5,
        threads: int | None = None,
        tile: int = 2048,
    ):
        from .backend import torch_device

        if window not in WINDOWS:
            raise SegmentationError(f"window must be one of {', '.join(WINDOWS)}")
        if mirroring not in MIRRORING:
            raise SegmentationError(f"mirroring must be one of {', '.join(MIRRORING)}")
        self.model = Path(model)
        self.metadata = check_model_folder(self.model)
        os.environ.setdefault("nnUNet_def_n_proc", str(min(2, os.cpu_count() or 1)))
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        if threads:
            torch.set_num_threads(threads)
        self.tile, self.window = tile, window
        self.predictor = nnUNetPredictor(
            tile_step_size=step,
            use_gaussian=True,
            use_mirroring=mirroring != "none",
            perform_everything_on_device=False,
            device=torch.device(torch_device(device)),
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
        try:
            self.predictor.initialize_from_trained_model_folder(
                str(self.model), ("all",), "checkpoint_final.pth"
            )
        except Exception as err:  # corrupt checkpoints raise many types
            raise SegmentationError(f"cannot load model {self.model}: {err}") from err
        if MIRRORING[mirroring]:
            self.predictor.allowed_mirroring_axes = MIRRORING[mirroring]
        configuration = self.predictor.configuration_manager.configuration
        self._settings = configuration
        self.patch = tuple(configuration["patch_size"])
        strides = configuration["architecture"]["arch_kwargs"]["strides"]
        self.stride = int(np.prod([s[0] for s in strides]))

    def _predict_block(self, block: np.ndarray) -> np.ndarray:
        import torch

        if self.window == "whole":
            self._settings["patch_size"] = [-(-n // self.stride) * self.stride for n in block.shape]
        with torch.no_grad():
            seg = self.predictor.predict_single_npy_array(
                block[None, None], {"spacing": (999, 1, 1)}
            )
        self._settings["patch_size"] = list(self.patch)
        return np.asarray(seg[0], np.uint8)

    def predict(self, image: np.ndarray, progress=None) -> np.ndarray:
        """3-class mask (uint8) of a 2D image of any size; large images go in overlapping tiles
        so memory stays bounded."""
        image, _ = prepare_image(image)
        h, w = image.shape
        if h <= self.tile and w <= self.tile:
            return self._predict_block(image)
        halo = max(self.patch) // 2
        mask = np.zeros((h, w), np.uint8)
        starts = [(y, x) for y in range(0, h, self.tile) for x in range(0, w, self.tile)]
        for i, (y, x) in enumerate(starts):
            y0, x0 = max(0, y - halo), max(0, x - halo)
            y1, x1 = min(h, y + self.tile + halo), min(w, x + self.tile + halo)
            block = self._predict_block(image[y0:y1, x0:x1])
            ty1, tx1 = min(h, y + self.tile), min(w, x + self.tile)
            mask[y:ty1, x:tx1] = block[y - y0 : ty1 - y0, x - x0 : tx1 - x0]
            if progress:
                progress(i + 1, len(starts), f"tile {i + 1}/{len(starts)}")
        return mask


@dataclass
class Segmentation:
    """A segmented image: 3-class mask, particle instances and their statistics."""

    mask: np.ndarray
    instances: np.ndarray
    table: dict
    notes: list[str]


def segment_image(
    segmenter: Segmenter,
    image: np.ndarray,
    region=None,
    watershed: bool = False,
    pixel_size_nm: float | None = None,
    contour_thickness: int = 1,
    progress=None,
    split_distance: int = 9,
    min_area: int = 4,
) -> Segmentation:
    """Segment ``image`` (optionally only inside ``region`` = (y0, y1, x0, x1)), derive particle
    instances (see :func:`~napari_diffrendergan.analysis.instances_from_mask`) and statistics.
    Outside the region the mask is 0."""
    from .analysis import instances_from_mask, particle_table

    prepared, notes = prepare_image(image)
    mask = np.zeros(prepared.shape, np.uint8)
    if region is None:
        region = (0, prepared.shape[0], 0, prepared.shape[1])
    y0, y1, x0, x1 = (int(v) for v in region)
    y0, x0 = max(0, y0), max(0, x0)
    y1, x1 = min(prepared.shape[0], y1), min(prepared.shape[1], x1)
    if y1 - y0 < 8 or x1 - x0 < 8:
        raise SegmentationError(f"region {region} leaves less than 8×8 pixels of the image")
    mask[y0:y1, x0:x1] = segmenter.predict(prepared[y0:y1, x0:x1], progress)
    instances = instances_from_mask(
        mask, contour_thickness, watershed, min_area=min_area, split_distance=split_distance
    )
    return Segmentation(mask, instances, particle_table(instances, pixel_size_nm), notes)


# --- batch ------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
_LOADED: dict[tuple, Segmenter] = {}


def image_files(inputs) -> list[Path]:
    """Images named directly or found (non-recursively) in the folders given."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(
                p
                for p in item.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES
                and not p.stem.endswith(("_mask", "_instances"))
            )
        elif item.is_file():
            found.append(item)
        else:
            raise SegmentationError(f"{item}: no such image or folder")
    if not found:
        raise SegmentationError("no images to segment")
    return found


def segment_file(
    path,
    model,
    out,
    watershed=False,
    pixel_size_nm=None,
    exclude_bottom=0,
    device="auto",
    window="whole",
    mirroring="none",
    step=0.5,
) -> dict:
    """Segment one file and write ``<name>_mask.tif``, ``<name>_instances.tif`` (with JSON
    sidecars) and ``<name>_particles.csv``; returns a short summary."""
    from .analysis import table_rows
    from .io import read_image, write_csv, write_tiff

    key = (str(model), device, window, mirroring, step)
    if key not in _LOADED:  # one model per worker process
        _LOADED[key] = Segmenter(
            model, device=device, window=window, mirroring=mirroring, step=step
        )
    path, out = Path(path), Path(out)
    image, sidecar_nm = read_image(path)
    pixel = pixel_size_nm or sidecar_nm
    height = np.asarray(image).shape[0]
    region = (0, height - exclude_bottom, 0, np.asarray(image).shape[1])
    result = segment_image(
        _LOADED[key], image, region=region, watershed=watershed, pixel_size_nm=pixel
    )
    meta = {
        "source": str(path),
        "model": str(model),
        "watershed": watershed,
        "excluded_bottom_rows": exclude_bottom,
        "notes": result.notes,
    }
    write_tiff(
        out / f"{path.stem}_mask.tif",
        result.mask,
        pixel_size_nm=pixel,
        classes={"0": "background", "1": "particle", "2": "contour"},
        **meta,
    )
    write_tiff(out / f"{path.stem}_instances.tif", result.instances, pixel_size_nm=pixel, **meta)
    write_csv(out / f"{path.stem}_particles.csv", table_rows(result.table))
    diameters = next(v for k, v in result.table.items() if k.startswith("equivalent_diameter"))
    return {
        "name": path.stem,
        "particles": int(result.instances.max()),
        "median_diameter": float(np.median(diameters)) if len(diameters) else float("nan"),
        "unit": "nm" if pixel else "px",
        "notes": result.notes,
    }


def segment_files(
    paths,
    model,
    out,
    workers: int | None = None,
    scheduler: str | None = None,
    progress=None,
    **options,
) -> list[dict]:
    """Segment many files in parallel on Dask: a local cluster of ``workers`` processes, or
    the existing scheduler at ``scheduler``. A single file runs in this process."""
    check_model_folder(model)
    paths = [Path(p) for p in paths]
    Path(out).mkdir(parents=True, exist_ok=True)
    if len(paths) == 1 and not scheduler:
        summary = [segment_file(paths[0], model, out, **options)]
        if progress:
            progress(1, 1, paths[0].name)
        return summary
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        workers = workers or min(len(paths), max(1, (os.cpu_count() or 1)))
        threads = max(1, (os.cpu_count() or 1) // workers)
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"OMP_NUM_THREADS": str(threads)},
        )
        client = Client(cluster)
    try:
        futures = [
            client.submit(segment_file, p, str(model), str(out), pure=False, **options)
            for p in paths
        ]
        results = []
        for done, future in enumerate(as_completed(futures), start=1):
            results.append(future.result())
            if progress:
                progress(done, len(paths), results[-1]["name"])
        return sorted(results, key=lambda r: r["name"])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
