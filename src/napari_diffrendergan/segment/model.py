"""The segmentation model folder, owned by :class:`ModelFolder`.

A self-contained nnU-Net v2 model: ``plans.json``, ``dataset.json``,
``dataset_fingerprint.json``, ``fold_all/checkpoint_final.pth`` and ``model.json`` (our
metadata; written last, so it marks a complete folder); while training, also ``workspace/``
(nnU-Net's raw/preprocessed/results folders, for resuming) and ``training.log``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import DiffRenderGANError, InputError
from ..io import atomic_path, read_json, write_json_atomic

CLASS_VALUES = (0, 1, 2)  # background, particle, contour


class SegmentationError(DiffRenderGANError):
    """Training or prediction cannot proceed; the message says why and what to do."""


class ModelFolder:
    """One nnU-Net model folder (see module doc)."""

    METADATA = "model.json"
    FILES = ("plans.json", "dataset.json", METADATA, "fold_all/checkpoint_final.pth")
    EXPORTED = ("plans.json", "dataset.json", "dataset_fingerprint.json")

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"ModelFolder({str(self.folder)!r})"

    @property
    def is_complete(self) -> bool:
        return (self.folder / self.METADATA).is_file()

    @property
    def log(self) -> Path:
        return self.folder / "training.log"

    @property
    def workspace(self) -> Path:
        return self.folder / "workspace"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "fold_all" / "checkpoint_final.pth"

    def metadata(self) -> dict:
        """The model's metadata, or a clear error for a missing, incomplete or foreign folder."""
        if not self.folder.is_dir():
            raise SegmentationError(f"model folder {self.folder} does not exist")
        missing = [name for name in self.FILES if not (self.folder / name).is_file()]
        if missing:
            raise SegmentationError(
                f"model folder {self.folder} is incomplete: missing {', '.join(missing)} (train "
                "it with `diffrendergan segment-train`, or finish an interrupted run with "
                "--resume)"
            )
        try:
            labels = read_json(self.folder / "dataset.json", "the model's dataset.json")
            metadata = read_json(self.folder / self.METADATA, "the model's metadata")
        except InputError as err:
            raise SegmentationError(str(err)) from err
        values = labels.get("labels", {}) if isinstance(labels, dict) else {}
        if sorted(values.values()) != list(CLASS_VALUES):
            raise SegmentationError(
                f"model {self.folder} predicts {len(values)} classes {values}; "
                "expected background, particle and contour"
            )
        if not isinstance(metadata, dict):
            raise SegmentationError(f"{self.folder / self.METADATA} is corrupt (not an object)")
        return metadata

    def export(self, trained: Path, metadata: dict) -> None:
        """Copy what prediction needs from nnU-Net's results folder ``trained``, atomically,
        then ``model.json``."""
        copies = [(trained / name, self.folder / name) for name in self.EXPORTED]
        copies.append((trained / "fold_all" / "checkpoint_final.pth", self.checkpoint))
        for source, target in copies:
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        write_json_atomic(self.folder / self.METADATA, metadata)
