"""Prediction with a trained nnU-Net model on 2D images of any size, and particle instances and
statistics from it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.particles import (
    CORE_THRESHOLD,
    MIN_AREA,
    MIN_SEED_AREA,
    SPLIT_DISTANCE,
    WATERSHED,
    instances_from_mask,
    particle_table,
)
from ..data.dataset import DEFAULT_CONTOUR
from ..io import as_gray
from ..progress import Monitor, ensure
from ..render.labels import PARTICLE
from .model import ModelFolder, SegmentationError, build_network


def prepare_image(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """float32 2D image and notes about conversions (RGB to gray); clear errors otherwise."""
    image, notes = as_gray(image)
    if min(image.shape) < 8:
        raise SegmentationError(f"image {image.shape} is too small to segment (minimum 8 px)")
    return image, notes


MIRRORING = {"none": None, "x": (1,), "all": (0, 1)}
WINDOWS = ("whole", "sliding")


@dataclass
class Prediction:
    """A network's answer for one image: 3-class ``mask`` (uint8), ``foreground`` probability
    (particle + contour) and ``particle`` (particle class) probability, float32."""

    mask: np.ndarray
    foreground: np.ndarray
    particle: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> Prediction:
        return cls(
            np.zeros(shape, np.uint8), np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        )

    def place(self, part: Prediction, where, source=np.s_[:, :]) -> None:
        """Write ``part[source]`` into the window ``where`` of this prediction."""
        for name in ("mask", "foreground", "particle"):
            getattr(self, name)[where] = getattr(part, name)[source]


def load_model(predictor, folder: ModelFolder) -> None:
    """Hand ``folder``'s network to nnU-Net's ``predictor``, as its
    ``initialize_from_trained_model_folder`` would, but with checked plans, weights-only
    checkpoints and the network built from :func:`~.model.build_network`'s classes: nothing
    named in the folder is imported."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans, dataset, weights = folder.plans(), folder.dataset(), folder.weights()
    plans_file, dataset_file = folder.folder / "plans.json", folder.folder / "dataset.json"

    def malformed(err: Exception) -> SegmentationError:
        return SegmentationError(f"{plans_file} does not describe a usable network ({err!r})")

    try:
        plans_manager = PlansManager(plans)
        configuration = plans_manager.get_configuration(weights.configuration)
    except Exception as err:  # malformed plans raise many types
        raise malformed(err) from err
    try:
        channels = determine_num_input_channels(plans_manager, configuration, dataset)
        heads = plans_manager.get_label_manager(dataset).num_segmentation_heads
    except Exception as err:
        raise SegmentationError(f"{dataset_file} is malformed ({err!r})") from err
    try:
        network = build_network(configuration.configuration["architecture"], channels, heads)
    except Exception as err:
        raise malformed(err) from err
    try:
        network.load_state_dict(weights.network)
    except RuntimeError as err:
        raise SegmentationError(
            f"{folder.checkpoint} does not fit the network of {plans_file} "
            f"({str(err).splitlines()[0]})"
        ) from err
    predictor.manual_initialization(
        network,
        plans_manager,
        configuration,
        [weights.network],
        dataset,
        "nnUNetTrainer",
        weights.mirroring_axes,
    )


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
        from ..backend import torch_device

        if window not in WINDOWS:
            raise SegmentationError(f"window must be one of {', '.join(WINDOWS)}")
        if mirroring not in MIRRORING:
            raise SegmentationError(f"mirroring must be one of {', '.join(MIRRORING)}")
        if isinstance(step, bool) or not (isinstance(step, int | float) and 0 < step <= 1):
            raise SegmentationError(
                f"step must be a fraction of the patch size in (0, 1], got {step!r}"
            )
        self.model = Path(model)
        self.metadata = ModelFolder(self.model).metadata()
        # width of the contour class the model learned (models that predate the record: 1)
        self.contour_thickness = int(self.metadata.get("contour_thickness", DEFAULT_CONTOUR))
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
        load_model(self.predictor, ModelFolder(self.model))
        if MIRRORING[mirroring]:
            self.predictor.allowed_mirroring_axes = MIRRORING[mirroring]
        configuration = self.predictor.configuration_manager.configuration
        self._settings = configuration
        self.patch = tuple(configuration["patch_size"])
        strides = configuration["architecture"]["arch_kwargs"]["strides"]
        self.stride = int(np.prod([s[0] for s in strides]))

    def _predict_block(self, block: np.ndarray) -> Prediction:
        import torch

        if self.window == "whole":  # one pass over the block, at least two strides wide
            self._settings["patch_size"] = [
                max(2 * self.stride, -(-n // self.stride) * self.stride) for n in block.shape
            ]
        with torch.no_grad():
            seg, probabilities = self.predictor.predict_single_npy_array(
                block[None, None], {"spacing": (999, 1, 1)}, save_or_return_probabilities=True
            )
        self._settings["patch_size"] = list(self.patch)
        probabilities = np.asarray(probabilities[:, 0], np.float32)
        foreground = 1 - probabilities[0]  # class 0 is background
        return Prediction(np.asarray(seg[0], np.uint8), foreground, probabilities[PARTICLE])

    def predict(self, image: np.ndarray, monitor: Monitor | None = None) -> np.ndarray:
        """3-class mask (uint8) of a 2D image of any size (see :meth:`predict_probabilities`)."""
        return self.predict_probabilities(image, monitor).mask

    def predict_probabilities(
        self, image: np.ndarray, monitor: Monitor | None = None
    ) -> Prediction:
        """3-class mask and class probabilities of a 2D image of any size; large images go in
        overlapping tiles so memory stays bounded (``monitor`` follows and can cancel between
        tiles)."""
        monitor = ensure(monitor)
        image, _ = prepare_image(image)
        h, w = image.shape
        if h <= self.tile and w <= self.tile:
            monitor.report(0, 1, "segmenting")
            result = self._predict_block(image)
            monitor.report(1, 1, "segmented")
            return result
        halo = max(self.patch) // 2
        result = Prediction.empty((h, w))
        starts = [(y, x) for y in range(0, h, self.tile) for x in range(0, w, self.tile)]
        for i, (y, x) in enumerate(starts):
            monitor.check()
            y0, x0 = max(0, y - halo), max(0, x - halo)
            y1, x1 = min(h, y + self.tile + halo), min(w, x + self.tile + halo)
            block = self._predict_block(image[y0:y1, x0:x1])
            ty1, tx1 = min(h, y + self.tile), min(w, x + self.tile)
            result.place(block, np.s_[y:ty1, x:tx1], np.s_[y - y0 : ty1 - y0, x - x0 : tx1 - x0])
            monitor.report(i + 1, len(starts), f"tile {i + 1}/{len(starts)}")
        return result


@dataclass
class Segmentation:
    """A segmented image: 3-class mask, particle instances and their statistics (with each
    particle's ``confidence``, its mean foreground probability)."""

    mask: np.ndarray
    instances: np.ndarray
    table: dict
    notes: list[str]


def segment_image(
    segmenter: Segmenter,
    image: np.ndarray,
    region=None,
    watershed: bool = WATERSHED,
    pixel_size_nm: float | None = None,
    contour_thickness: int | None = None,
    monitor: Monitor | None = None,
    split_distance: int = SPLIT_DISTANCE,
    min_area: int = MIN_AREA,
    core_threshold: float | None = CORE_THRESHOLD,
    min_seed_area: int = MIN_SEED_AREA,
) -> Segmentation:
    """Segment ``image`` (optionally only inside ``region`` = (y0, y1, x0, x1)), derive particle
    instances (see :func:`~napari_diffrendergan.analysis.particles.instances_from_mask`) and
    statistics; particles grow back into a contour ``contour_thickness`` px wide (default:
    the width the model was trained with). Outside the region the mask is 0."""

    prepared, notes = prepare_image(image)
    prediction = Prediction.empty(prepared.shape)
    if region is None:
        region = (0, prepared.shape[0], 0, prepared.shape[1])
    y0, y1, x0, x1 = (int(v) for v in region)
    y0, x0 = max(0, y0), max(0, x0)
    y1, x1 = min(prepared.shape[0], y1), min(prepared.shape[1], x1)
    if y1 - y0 < 8 or x1 - x0 < 8:
        raise SegmentationError(f"region {region} leaves less than 8×8 pixels of the image")
    inside = np.s_[y0:y1, x0:x1]
    prediction.place(segmenter.predict_probabilities(prepared[inside], monitor), inside)
    if contour_thickness is None:
        contour_thickness = segmenter.contour_thickness
    instances = instances_from_mask(
        prediction.mask,
        contour_thickness,
        watershed,
        min_area=min_area,
        split_distance=split_distance,
        particle_probability=prediction.particle,
        core_threshold=core_threshold,
        min_seed_area=min_seed_area,
    )
    table = particle_table(instances, pixel_size_nm, prediction.foreground)
    return Segmentation(prediction.mask, instances, table, notes)
