"""Sample data: real TiO2 SEM scans (Rühle et al. 2021) and rendered synthetic scenes.

The real images come from ``DIFFRENDERGAN_TIO2_SEM_DIR`` (a folder holding
``images/<id>.tif`` and ``masks/<id>_m.tif``) when it is set, else from pooch's cache, else
they are downloaded once (sha256-pinned) from the public repository
BAMresearch/automatic-sem-image-segmentation. Without any of these (offline, first use), the
napari sample fails within seconds with a one-line message, and :func:`demo_scan` renders a
stand-in scan of the same size and pixel scale with hidden "true" parameters and exact labels.
Functions here return napari ``LayerData`` tuples but never import napari.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ._tio2_registry import REGISTRY
from .errors import DiffRenderGANError

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
REACH_SECONDS = 2.0  # an offline check answers within this
RENDERED_TITLE = "the sample “Rendered TiO2 scene” (File > Open Sample; made here, offline)"
# presets whose renders have a real scan's pixel scale (the rendered sample is calibrated)
RENDERED_PIXEL_SIZE_NM = {"tio2-sem": TIO2_PIXEL_SIZE_NM}
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
    offline = f"set {TIO2_ENV} to a folder holding images/ and masks/, or use {RENDERED_TITLE}"
    if not (Path(fetcher.abspath) / name).is_file() and not reachable(TIO2_BASE_URL):
        raise SampleDataError(
            f"The TiO2 SEM sample is not downloaded yet and {urlsplit(TIO2_BASE_URL).hostname} "
            f"cannot be reached within {REACH_SECONDS:g} s (offline?): {offline}"
        )
    try:
        return Path(fetcher.fetch(name, downloader=pooch.HTTPDownloader(timeout=30)))
    except Exception as err:  # network errors come in many types, with pages of detail
        raise SampleDataError(
            f"Could not download the TiO2 SEM sample {name} ({type(err).__name__}): {offline}"
        ) from err


def reachable(url: str, seconds: float = REACH_SECONDS) -> bool:
    """Whether a connection to ``url``'s host (or the HTTPS proxy in use) opens within
    ``seconds``, name lookup included: tried in a thread that is left behind if it hangs, so
    an offline machine answers in ``seconds`` instead of a download's timeout."""
    import socket
    import threading
    from urllib.request import getproxies

    target = urlsplit(getproxies().get("https") or url)
    address = (target.hostname, target.port or (443 if target.scheme == "https" else 80))
    opened = threading.Event()

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=seconds).close()
            opened.set()
        except OSError:
            pass

    threading.Thread(target=connect, daemon=True).start()
    return opened.wait(seconds)


def read_tio2(image_id: str = TIO2_DEFAULT_ID) -> tuple[np.ndarray, np.ndarray]:
    """Image (uint8) and instance labels (4-connected manual mask) without the data bar."""
    import tifffile
    from skimage.measure import label

    image = tifffile.imread(tio2_file("images", image_id))
    mask = tifffile.imread(tio2_file("masks", image_id))
    keep = slice(0, image.shape[0] - TIO2_DATA_BAR_ROWS)
    instances = label(mask[keep] > 0, connectivity=1).astype(np.uint16)
    return image[keep], instances


# what the offline stand-in scan is rendered with (the demo shows how much of it the GAN finds)
HIDDEN_TRUTH = {
    "particle.base_color": 0.9,
    "particle.roughness": 2.0,
    "particle.sheen": 1.0,
    "stage.base_color": 0.25,
    "film.mottle": 0.05,
    "film.lines": 0.08,
    "detector.blur": 0.7,
    "noise": 0.03,
}


@dataclass
class Scan:
    """A scan to try the pipeline on: pixels in [0, 1], per-particle labels, pixel size, and
    (for a rendered stand-in) the hidden parameters it was rendered with."""

    name: str
    image: np.ndarray  # float32 (H, W) in [0, 1]
    instances: np.ndarray  # uint16 (H, W): manual (real) or exact (rendered) labels
    pixel_size_nm: float
    source: str  # where it came from, for reports
    truth: dict = field(default_factory=dict)  # hidden parameters (rendered stand-ins)


def real_scan(image_id: str = TIO2_DEFAULT_ID) -> Scan:
    """The real TiO2 SEM sample scan (local folder, cache or download; a
    :class:`SampleDataError` otherwise)."""
    image, instances = read_tio2(image_id)
    return Scan(
        f"TiO2 SEM {image_id}",
        image.astype(np.float32) / 255,
        instances,
        TIO2_PIXEL_SIZE_NM,
        f"real TiO2 SEM scan {image_id} (Rühle et al. 2021), manual masks",
    )


def demo_scan(image_id: str = TIO2_DEFAULT_ID, seed: int = 0, device: str = "auto") -> Scan:
    """The real TiO2 SEM sample scan when it can be had (local folder, cache, download),
    else a rendered stand-in (:func:`rendered_scan`), its ``source`` saying why."""
    try:
        return real_scan(image_id)
    except SampleDataError as err:
        return rendered_scan(seed, device=device, reason=str(err))


def rendered_scan(
    seed: int = 0,
    height: int = 712,
    width: int = 1024,
    truth: dict | None = None,
    device: str = "auto",
    reason: str = "",
) -> Scan:
    """A stand-in for a real scan: the ``tio2-sem`` scene at a real scan's size and pixel scale,
    rendered with hidden parameters (:data:`HIDDEN_TRUTH`), labels exact."""
    from .config import preset
    from .gan.recovery import truth_values
    from .render.sampling import AnnotatedRenderer, RenderValues

    truth = dict(truth or HIDDEN_TRUTH)
    config = preset("tio2-sem").resized(width, height)
    values = RenderValues.named(*truth_values(config, truth))
    renderer = AnnotatedRenderer(config, device=device)
    sample = renderer.render((seed,), lambda phi, rng: values)
    why = f" ({reason})" if reason else ""
    return Scan(
        "rendered TiO2 scan",
        sample.image,
        sample.instances,
        TIO2_PIXEL_SIZE_NM,
        f"rendered stand-in scan, {width}×{height} px, hidden parameters, exact labels{why}",
        truth,
    )


def _calibration(pixel_size_nm: float | None, metadata: dict) -> dict:
    """Layer keywords of an image at ``pixel_size_nm`` (scale and units nm when known)."""
    common = {"metadata": {"pixel_size_nm": pixel_size_nm, **metadata}}
    if pixel_size_nm:
        common.update(scale=(pixel_size_nm, pixel_size_nm), units="nm")
    return common


def _scan_layers(scan: Scan, metadata: dict) -> list[tuple]:
    common = _calibration(scan.pixel_size_nm, {"source": scan.source, **metadata})
    labels = "manual masks" if not scan.truth else "labels"
    return [
        (scan.image, {"name": scan.name, **common}, "image"),
        (scan.instances, {"name": f"{scan.name} {labels}", "opacity": 0.4, **common}, "labels"),
    ]


def tio2_sem_sample(image_id: str = TIO2_DEFAULT_ID) -> list[tuple]:
    """LayerData for the TiO2 SEM sample: the scan (data bar cropped) and its manual masks; a
    one-line :class:`SampleDataError` within seconds when it cannot be had (offline)."""
    return _scan_layers(
        real_scan(image_id),
        {
            "attribution": TIO2_ATTRIBUTION,
            "note": f"bottom {TIO2_DATA_BAR_ROWS} rows (microscope data bar) left out",
        },
    )


def rendered_sample(preset_name: str = "tio2-sem", seed: int = 0) -> list[tuple]:
    """LayerData for a freshly rendered synthetic scene (no network needed), at the real
    pixel size of the scans its preset was calibrated on (:data:`RENDERED_PIXEL_SIZE_NM`)."""
    from .config import preset
    from .render.sampling import render_sample

    sample = render_sample(preset(preset_name), seed=seed)
    common = _calibration(RENDERED_PIXEL_SIZE_NM.get(preset_name), {"scene": sample.info})
    name = f"rendered {preset_name}"
    return [
        (sample.image, {"name": name, **common}, "image"),
        (sample.instances, {"name": f"{name} instances", **common}, "labels"),
        (sample.mask, {"name": f"{name} mask", **common, "visible": False}, "labels"),
    ]
