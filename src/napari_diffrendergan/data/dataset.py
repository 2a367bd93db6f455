"""The nnU-Net v2 raw dataset folder, owned by :class:`NnunetDataset`.

``imagesTr/<case>_0000.tif`` (float32), ``labelsTr/<case>.tif`` (uint8: 0 background,
1 particle, 2 contour) and ``dataset.json``; synthetic datasets add ``instances/<case>.tif``,
``parameters/<case>.json`` (written last for each pair: it marks the pair complete; it names
the run by its folder name and the generator by the SHA-256 of its weights, no path) and
``generation.json`` (written once every pair is there). While a dataset is written, its folder
holds the writer's lock ``.diffrendergan.lock`` (nnU-Net reads only ``imagesTr``/``labelsTr``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import read_json, write_json_atomic

CLASSES = {"background": 0, "particle": 1, "contour": 2}
CLASS_NAMES = {str(v): k for k, v in CLASSES.items()}
READER = "NaturalImage2DIO"  # nnU-Net's reader of 2D TIFFs, the one named in dataset.json
SYNTHETIC_PREFIX = "syn_"
BACKGROUND_PREFIX = "bg_"
DEFAULT_CONTOUR = 1  # px: the contour width of datasets whose index does not record it


class DatasetError(InputError):
    """A dataset cannot be written or used as asked; the message says why."""


def pair_name(index: int) -> str:
    return f"{SYNTHETIC_PREFIX}{index:05d}"


class NnunetDataset:
    """One nnU-Net raw dataset folder (``DatasetNNN_Name``)."""

    INDEX = "dataset.json"
    GENERATION = "generation.json"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"NnunetDataset({str(self.folder)!r})"

    @property
    def exists(self) -> bool:
        return (self.folder / self.INDEX).is_file()

    @classmethod
    def open(cls, folder: str | Path) -> NnunetDataset:
        """An existing dataset whose ``dataset.json`` is one this package writes (3 classes,
        TIFF files, nnU-Net's 2D image reader); a clear error naming the file otherwise."""
        dataset = cls(folder)
        if not dataset.exists:
            raise DatasetError(f"{folder} is not an nnU-Net dataset (no dataset.json)")
        dataset.check_index()
        return dataset

    def check_index(self) -> None:
        path = self.folder / self.INDEX
        try:
            index = read_json(path, "the dataset's index")
        except InputError as err:
            raise DatasetError(str(err)) from err
        problems = []
        if not isinstance(index, dict):
            problems.append("it is not a JSON object")
        else:
            if index.get("labels") != CLASSES:
                problems.append(f"labels must be {CLASSES}, got {index.get('labels')!r}")
            if index.get("file_ending") != ".tif":
                problems.append(f"file_ending must be '.tif', got {index.get('file_ending')!r}")
            reader = index.get("overwrite_image_reader_writer", READER)
            if reader != READER:
                problems.append(f"overwrite_image_reader_writer must be {READER!r}, got {reader!r}")
        if problems:
            raise DatasetError(
                f"{path} is not a dataset index this package can train on: "
                + "; ".join(problems)
                + " (write the dataset with `diffrendergan generate` or the Synthetic data widget)"
            )

    def image_path(self, case: str) -> Path:
        return self.folder / "imagesTr" / f"{case}_0000.tif"

    def label_path(self, case: str) -> Path:
        return self.folder / "labelsTr" / f"{case}.tif"

    def cases(self) -> list[str]:
        folder = self.folder / "labelsTr"
        return sorted(p.stem for p in folder.glob("*.tif")) if folder.is_dir() else []

    def write_case(self, case: str, image: np.ndarray, mask: np.ndarray) -> None:
        """One training case: the image (float32) and its 3-class mask."""
        import tifffile

        from ..io import atomic_path

        image, mask = np.asarray(image, np.float32), np.asarray(mask)
        if image.shape != mask.shape or image.ndim != 2:
            raise DatasetError(
                f"case {case}: image {image.shape} and mask {mask.shape} "
                "must be 2D and equal in shape"
            )
        if not set(np.unique(mask).tolist()) <= set(CLASSES.values()):
            raise DatasetError(f"case {case}: mask values must be 0, 1 or 2")
        for path, data in ((self.image_path(case), image), (self.label_path(case), mask)):
            with atomic_path(path) as tmp:
                tifffile.imwrite(tmp, data.astype(np.uint8) if data is mask else data)

    def write_index(
        self, contour_thickness: int, pixel_size_nm: float | None, channel: str = "zscore"
    ) -> None:
        """``dataset.json`` for the cases written so far; it records the contour class's
        width, which models trained on the dataset need to grow particles back, and the
        images' pixel size (nm, or null where unknown)."""
        write_json_atomic(
            self.folder / self.INDEX,
            {
                "channel_names": {"0": channel},
                "labels": CLASSES,
                "numTraining": len(self.cases()),
                "file_ending": ".tif",
                "overwrite_image_reader_writer": READER,
                "contour_thickness": int(contour_thickness),
                "pixel_size_nm": pixel_size_nm,
            },
        )

    @property
    def contour_thickness(self) -> int:
        """Width (px) of the contour class in the masks (1 where the index predates it)."""
        index = read_json(self.folder / self.INDEX, "the dataset's dataset.json")
        return int(index.get("contour_thickness", DEFAULT_CONTOUR))

    def write(
        self, images, masks, contour_thickness: int, names=None, pixel_size_nm=None
    ) -> NnunetDataset:
        """Write many cases (named ``case_NNNNN`` unless ``names``) whose masks have a contour
        class ``contour_thickness`` px wide, and the index (with the images' pixel size), with
        the folder locked (:class:`~napari_diffrendergan.io.FolderLock`)."""
        from ..io import FolderLock

        with FolderLock(self.folder, "dataset writing"):
            for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
                self.write_case(names[index] if names else f"case_{index:05d}", image, mask)
            self.write_index(contour_thickness, pixel_size_nm)
        return self

    # --- synthetic pairs ----------------------------------------------------------------------

    def instances_path(self, case: str) -> Path:
        return self.folder / "instances" / f"{case}.tif"

    def parameters_path(self, case: str) -> Path:
        return self.folder / "parameters" / f"{case}.json"

    def write_pair(self, name: str, image, mask, instances, info: dict) -> None:
        """One synthetic pair: image, 3-class label, instances (their sidecar with the pixel size
        of ``info``), then its parameters, which mark it complete."""
        from ..io import write_tiff

        self.write_case(name, image, mask)
        write_tiff(self.instances_path(name), instances, pixel_size_nm=info.get("pixel_size_nm"))
        write_json_atomic(self.parameters_path(name), info)

    def pair_done(self, index: int) -> bool:
        return self.parameters_path(pair_name(index)).is_file()

    def pair_info(self, index: int) -> dict:
        return read_json(self.parameters_path(pair_name(index)), "the pair's parameters")

    def done_pairs(self) -> list[int]:
        folder = self.folder / "parameters"
        if not folder.is_dir():
            return []
        names = (p.stem for p in folder.glob(f"{SYNTHETIC_PREFIX}*.json"))
        return sorted(
            int(n[len(SYNTHETIC_PREFIX) :]) for n in names if n[len(SYNTHETIC_PREFIX) :].isdigit()
        )

    def generation(self) -> dict | None:
        """The summary written when the dataset was finished, if it was."""
        path = self.folder / self.GENERATION
        return read_json(path, "the generation summary") if path.is_file() else None

    def write_generation(self, summary: dict) -> None:
        write_json_atomic(self.folder / self.GENERATION, summary)
