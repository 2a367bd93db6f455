"""The real TiO2 SEM scans of ../shared/data/tio2-sem as the experiments use them: where they
are, their fixed training/validation split, and the paper's figures to compare with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_diffrendergan.sample_data import TIO2_DATA_BAR_ROWS, TIO2_PIXEL_SIZE_NM

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tio2-sem"
PIXEL_SIZE_NM = TIO2_PIXEL_SIZE_NM
DATA_BAR_ROWS = TIO2_DATA_BAR_ROWS
PATCHES = 124  # particle patches, as in the paper
PAPER = {  # Possart et al. 2025, Table 1, TiO2 SEM: Dice, AP50, PQ
    "DiffRenderGAN (paper, full nnU-Net on a GPU)": (0.916, 0.474, 0.845),
    "real-trained (paper, full nnU-Net on a GPU)": (0.964, 0.567, 0.930),
}
TARGETS = {"dsc": 0.93, "ap50": 0.50, "pq": 0.86}


def read_image(image_id: str, data: Path = SHARED, invert: bool = False) -> np.ndarray:
    """Scan ``image_id`` of ``data`` as float32 in [0, 1], data bar removed (``invert``:
    1 − scan, the dark-on-bright stand-in); its mask is not read."""
    import tifffile

    image = tifffile.imread(data / "images" / f"{image_id}.tif")
    image = image[: image.shape[0] - DATA_BAR_ROWS].astype(np.float32) / 255
    return 1 - image if invert else image


def read_scan(
    image_id: str, data: Path = SHARED, invert: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_image` and the scan's manual mask (bool, data bar removed; never inverted)."""
    import tifffile

    mask = tifffile.imread(data / "masks" / f"{image_id}_m.tif")
    image = read_image(image_id, data, invert)
    return image, mask[: image.shape[0]] > 0


def split(ids: list[str], seed: int = 0, validation: int = 8) -> tuple[list[str], list[str]]:
    """Fixed-seed split of the scan ids into training and validation ids."""
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen = sorted(ids[i] for i in order[:validation])
    return [i for i in ids if i not in chosen], chosen
