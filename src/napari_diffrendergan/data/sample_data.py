"""Sample data: real TiO2 SEM scans (Rühle et al. 2021) and a rendered synthetic scene.

The real images are fetched with pooch from the public repository
BAMresearch/automatic-sem-image-segmentation at a pinned commit (sha256-checked, cached).
Set ``DIFFRENDERGAN_TIO2_SEM_DIR`` to a local folder holding ``images/<id>.tif`` and
``masks/<id>_m.tif`` to work offline. Functions here return napari ``LayerData`` tuples but
never import napari.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DiffRenderGANError
from ._tio2_registry import REGISTRY

TIO2_ENV = "DIFFRENDERGAN_TIO2_SEM_DIR"
TIO2_COMMIT = "0aa525b73fc09af31ddcf743485027c909b6ff05"
TIO2_BASE_URL = (
    "https://raw.githubusercontent.com/BAMresearch/automatic-sem-image-segmentation/"
    f"{TIO2_COMMIT}/Datasets/"
)
TIO2_REMOTE_FOLDERS = {
    "images": "Electron Microscopy Images/SEM",
    "masks": "Electron Microscopy Image Masks/TiO2_Masks_Manual_4connected",
}
TIO2_PIXEL_SIZE_NM = 7.34375
TIO2_DATA_BAR_ROWS = 56
TIO2_DEFAULT_ID = "1908248"
TIO2_ATTRIBUTION = (
    "TiO2 SEM images and manual masks: B. Ruehle, J. F. Krumrey, V.-D. Hodoroaba, Sci. Rep. 11, "
    "4942 (2021), doi:10.1038/s41598-021-84287-6; license CC BY-NC-ND 4.0."
)


class SampleDataError(DiffRenderGANError):
    """Sample files are unavailable; the message says how to provide them."""


def tio2_ids() -> list[str]:
    """Image ids available (pinned) for the TiO2 SEM sample."""
    return sorted(Path(k).stem for k in REGISTRY if k.startswith("images/"))


def tio2_file(kind: str, image_id: str) -> Path:
    """Local path of ``images/<id>.tif`` or ``masks/<id>_m.tif``: from the folder named by
    ``DIFFRENDERGAN_TIO2_SEM_DIR`` when set, else downloaded once into pooch's cache."""
    name = f"{kind}/{image_id}.tif" if kind == "images" else f"{kind}/{image_id}_m.tif"
    if name not in REGISTRY:
        raise SampleDataError(
            f"Unknown TiO2 SEM sample {name}; available ids: {', '.join(tio2_ids())}"
        )
    local = os.environ.get(TIO2_ENV)
    if local:
        path = Path(local).expanduser() / name
        if not path.is_file():
            raise SampleDataError(f"{TIO2_ENV}={local} has no {name}")
        return path
    import pooch

    fetcher = pooch.create(
        path=pooch.os_cache("napari-diffrendergan") / "tio2-sem",
        base_url="",
        registry=REGISTRY,
        urls={
            key: TIO2_BASE_URL
            + TIO2_REMOTE_FOLDERS[key.split("/")[0]].replace(" ", "%20")
            + "/"
            + key.split("/")[1]
            for key in REGISTRY
        },
    )
    try:
        return Path(fetcher.fetch(name))
    except Exception as err:  # network errors come in many types
        raise SampleDataError(
            f"Could not download the TiO2 SEM sample {name} ({err}). Without network access, "
            f"set {TIO2_ENV} to a folder holding images/ and masks/."
        ) from err


def read_tio2(image_id: str = TIO2_DEFAULT_ID) -> tuple[np.ndarray, np.ndarray]:
    """Image (uint8) and instance labels (4-connected manual mask) without the data bar."""
    import tifffile
    from skimage.measure import label

    image = tifffile.imread(tio2_file("images", image_id))
    mask = tifffile.imread(tio2_file("masks", image_id))
    keep = slice(0, image.shape[0] - TIO2_DATA_BAR_ROWS)
    instances = label(mask[keep] > 0, connectivity=1).astype(np.uint16)
    return image[keep], instances


def tio2_sem_sample(image_id: str = TIO2_DEFAULT_ID) -> list[tuple]:
    """LayerData for the TiO2 SEM sample: the scan (data bar cropped) and its manual masks."""
    image, instances = read_tio2(image_id)
    scale = (TIO2_PIXEL_SIZE_NM, TIO2_PIXEL_SIZE_NM)
    metadata = {
        "pixel_size_nm": TIO2_PIXEL_SIZE_NM,
        "source": f"{image_id}.tif",
        "attribution": TIO2_ATTRIBUTION,
        "note": f"bottom {TIO2_DATA_BAR_ROWS} rows (microscope data bar) left out",
    }
    return [
        (
            image,
            {"name": f"TiO2 SEM {image_id}", "scale": scale, "units": "nm", "metadata": metadata},
            "image",
        ),
        (
            instances,
            {
                "name": f"TiO2 SEM {image_id} manual masks",
                "scale": scale,
                "units": "nm",
                "metadata": metadata,
                "opacity": 0.4,
            },
            "labels",
        ),
    ]


def rendered_sample(preset_name: str = "tio2-sem", seed: int = 0) -> list[tuple]:
    """LayerData for a freshly rendered synthetic scene (no network needed)."""
    from ..config import preset
    from ..render.sampling import render_sample

    sample = render_sample(preset(preset_name), seed=seed)
    metadata = {"pixel_size_nm": None, "scene": sample.info}
    name = f"rendered {preset_name}"
    return [
        (sample.image, {"name": name, "metadata": metadata}, "image"),
        (sample.instances, {"name": f"{name} instances", "metadata": metadata}, "labels"),
        (sample.mask, {"name": f"{name} mask", "metadata": metadata, "visible": False}, "labels"),
    ]
