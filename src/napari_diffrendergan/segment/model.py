"""The segmentation model folder, owned by :class:`ModelFolder`.

A self-contained nnU-Net v2 model: ``plans.json``, ``dataset.json``,
``dataset_fingerprint.json``, ``fold_all/checkpoint_final.pth`` (the network's weights alone)
and ``model.json`` (our metadata with the configuration and mirroring axes; written last, so it
marks a complete folder); while training, also ``workspace/`` (nnU-Net's
raw/preprocessed/results folders, for resuming) and ``training.log``.

Model folders come from strangers, so loading one runs nothing it names: checkpoints load with
``torch.load(weights_only=True)`` (:func:`~napari_diffrendergan.io.load_weights`), and every
class or function a ``plans.json`` names must be on the allow-lists below before nnU-Net or we
look anything up (:func:`check_plans`); the network is built from a dict of classes
(:func:`build_network`), never by importing a name from the file.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiffRenderGANError, InputError
from ..io import UnsafeFileError, atomic_path, load_weights, read_json, write_json_atomic

CLASS_VALUES = (0, 1, 2)  # background, particle, contour

# What nnU-Net looks up by name from a plans.json besides the architecture (in its own
# packages), with the values its planner writes for our 2D datasets; nothing else is accepted.
PLANS_NAMES = {"label_manager": ("LabelManager",), "image_reader_writer": ("NaturalImage2DIO",)}
RESAMPLING = ("resample_data_or_seg_to_shape",)
CONFIGURATION_NAMES = {
    "preprocessor_name": ("DefaultPreprocessor",),
    "normalization_schemes": ("ZScoreNormalization",),
    "resampling_fn_data": RESAMPLING,
    "resampling_fn_seg": RESAMPLING,
    "resampling_fn_probabilities": RESAMPLING,
}


class SegmentationError(DiffRenderGANError):
    """Training or prediction cannot proceed; the message says why and what to do."""


def network_classes() -> tuple[dict, dict]:
    """The network classes and the layer types (``_kw_requires_import`` values) a plans.json's
    architecture may name, by the name nnU-Net writes: the only classes a model can make us
    build."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from torch import nn

    networks = {"dynamic_network_architectures.architectures.unet.PlainConvUNet": PlainConvUNet}
    layers = {
        "torch.nn.modules.conv.Conv2d": nn.Conv2d,
        "torch.nn.modules.instancenorm.InstanceNorm2d": nn.InstanceNorm2d,
        "torch.nn.LeakyReLU": nn.LeakyReLU,
    }
    return networks, layers


def nnunet_checkpoint_globals() -> list:
    """What nnU-Net's training checkpoints hold besides weights and plain values: numpy float32
    scalars (losses and Dice in its log), by numpy 2's and numpy 1's name."""
    import numpy as np

    scalar = np.float32(0).__reduce__()[0]  # numpy's scalar constructor, in any numpy version
    return [
        (scalar, "numpy._core.multiarray.scalar"),
        (scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        type(np.dtype(np.float32)),
    ]


def _names(value) -> list:
    return value if isinstance(value, list) else [value]


def check_plans(plans, path: Path) -> None:
    """Refuse (:class:`SegmentationError` naming ``path``) plans that are not shaped like
    nnU-Net's or name any class or function outside the allow-lists; nothing is imported."""
    networks, layers = network_classes()

    def refuse(key: str, name) -> SegmentationError:
        return SegmentationError(
            f"{path} names {key} {name!r}, which is not one this plugin loads (loading code "
            "named in a file could run it), so it is refused. Ask its sender for a model "
            "trained with diffrendergan segment-train"
        )

    if not isinstance(plans, dict) or not isinstance(plans.get("configurations"), dict):
        raise SegmentationError(f"{path} is not an nnU-Net plans file (no configurations)")
    for key, allowed in PLANS_NAMES.items():
        if plans.get(key, allowed[0]) not in allowed:
            raise refuse(key, plans[key])
    for name, configuration in plans["configurations"].items():
        if not isinstance(configuration, dict):
            raise SegmentationError(f"{path}: configuration {name!r} is not an object")
        for key, allowed in CONFIGURATION_NAMES.items():
            for value in _names(configuration.get(key, [])):
                if not (isinstance(value, str) and value in allowed):
                    raise refuse(key, value)
        if "architecture" not in configuration:  # inherited, checked where it is given
            continue
        architecture = configuration["architecture"]
        kwargs = architecture.get("arch_kwargs") if isinstance(architecture, dict) else None
        if not isinstance(kwargs, dict):
            raise SegmentationError(f"{path}: the architecture of {name!r} is malformed")
        network = architecture.get("network_class_name")
        if not (isinstance(network, str) and network in networks):
            raise refuse("network_class_name", network)
        for key in _names(architecture.get("_kw_requires_import", [])):
            value = kwargs.get(key) if isinstance(key, str) else key  # a malformed key: refused
            if value is not None and not (isinstance(value, str) and value in layers):
                raise refuse(f"arch_kwargs.{key}", value)


def build_network(architecture: dict, channels: int, classes: int):
    """The network of a checked plans architecture, its classes taken from
    :func:`network_classes`; as nnU-Net builds it for inference (no deep supervision)."""
    networks, layers = network_classes()
    kwargs = dict(architecture["arch_kwargs"])
    for key in architecture.get("_kw_requires_import", []):
        if kwargs[key] is not None:
            kwargs[key] = layers[kwargs[key]]
    kwargs["deep_supervision"] = False
    network = networks[architecture["network_class_name"]]
    return network(input_channels=channels, num_classes=classes, **kwargs)


@dataclass
class Weights:
    """A trained network's weights, its plans configuration and the axes it may be mirrored
    along (nnU-Net's ``inference_allowed_mirroring_axes``)."""

    network: dict
    configuration: str
    mirroring_axes: tuple[int, ...] | None


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

    def _json(self, name: str, what: str):
        try:
            return read_json(self.folder / name, what)
        except InputError as err:
            raise SegmentationError(str(err)) from err

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
        labels = self.dataset()
        metadata = self._json(self.METADATA, "the model's metadata")
        values = labels.get("labels", {}) if isinstance(labels, dict) else {}
        if not isinstance(values, dict) or sorted(values.values()) != list(CLASS_VALUES):
            raise SegmentationError(
                f"model {self.folder} predicts {len(values)} classes {values}; "
                "expected background, particle and contour"
            )
        if not isinstance(metadata, dict):
            raise SegmentationError(f"{self.folder / self.METADATA} is corrupt (not an object)")
        return metadata

    def dataset(self) -> dict:
        """The model's ``dataset.json`` (labels, channels); errors name the file."""
        dataset = self._json("dataset.json", "the model's dataset.json")
        if not isinstance(dataset, dict):
            raise SegmentationError(f"{self.folder / 'dataset.json'} is corrupt (not an object)")
        return dataset

    def plans(self) -> dict:
        """The model's ``plans.json``, checked by :func:`check_plans`."""
        plans = self._json("plans.json", "the model's plans")
        check_plans(plans, self.folder / "plans.json")
        return plans

    def weights(self) -> Weights:
        """The network's weights and how to use them. Folders exported before weights were
        saved alone hold nnU-Net's training checkpoint instead; it loads with
        :func:`nnunet_checkpoint_globals` allowed besides weights."""
        import torch

        try:
            state = load_weights(self.checkpoint, "model checkpoint", nnunet_checkpoint_globals())
        except UnsafeFileError:
            raise
        except InputError as err:
            raise SegmentationError(f"cannot load model {self.folder}: {err}") from err
        metadata = self.metadata()
        axes = metadata.get("mirroring_axes")
        configuration = metadata.get("configuration")
        if isinstance(state, dict) and "network_weights" in state:  # nnU-Net's checkpoint
            axes = state.get("inference_allowed_mirroring_axes")
            init = state.get("init_args")
            configuration = configuration or (
                init.get("configuration") if isinstance(init, dict) else None
            )
            state = state["network_weights"]
        if not (
            isinstance(state, dict)
            and all(isinstance(v, torch.Tensor) for v in state.values())
            and isinstance(configuration, str)
            and (axes is None or isinstance(axes, list | tuple))
            and all(isinstance(a, int) for a in axes or ())
        ):
            raise SegmentationError(
                f"cannot load model {self.folder}: {self.checkpoint} and {self.METADATA} do not "
                "hold network weights, a configuration and mirroring axes"
            )
        return Weights(state, configuration, None if axes is None else tuple(axes))

    def export(self, trained: Path, metadata: dict) -> None:
        """Copy what prediction needs from nnU-Net's results folder ``trained``, atomically: its
        plans and dataset files, the final network weights alone (no training state) and, last,
        ``model.json`` (``metadata`` and the mirroring axes)."""
        import torch

        for name in self.EXPORTED:
            with atomic_path(self.folder / name) as tmp:
                shutil.copyfile(trained / name, tmp)
        state = load_weights(
            trained / "fold_all" / "checkpoint_final.pth",
            "nnU-Net checkpoint",
            nnunet_checkpoint_globals(),
        )
        with atomic_path(self.checkpoint) as tmp:
            torch.save(dict(state["network_weights"]), tmp)
        axes = state.get("inference_allowed_mirroring_axes")
        metadata = {**metadata, "mirroring_axes": None if axes is None else list(axes)}
        write_json_atomic(self.folder / self.METADATA, metadata)
