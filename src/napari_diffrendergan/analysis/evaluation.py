"""Segmentation quality against manual annotations: Dice, AP at IoU 0.5 and Panoptic Quality.

Definitions (per image):

- **Dice** of the binary particle foreground.
- **AP50** = TP / (TP + FP + FN) with instances matched at IoU > 0.5 (the "average precision"
  of the DSB 2018 challenge and StarDist; a match above 0.5 is always unique).
- **PQ** = (sum of IoU over matches) / (TP + FP/2 + FN/2) (Kirillov et al. 2019).
- **COCO-style AP50** (pooled over images, where predictions carry a confidence): the area
  under the precision-recall curve of the predictions ranked by confidence, matched at
  IoU > 0.5, with COCO's 101-point interpolation and no cap on detections per image
  (:func:`coco_ap50`).

Label images (:func:`to_instances`) are binary masks whose touching particles are separated by
1-px background lines (labelled with 4-connectivity, as the TiO2 SEM masks need), 3-class
``semantic`` masks (``*_mask``, nnU-Net ``labelsTr``: 0 background, 1 particle, 2 contour;
particle-class components grown back into their contour, as
:func:`~napari_diffrendergan.analysis.particles.instances_from_mask` does for predictions) or
instance label images (``*_instances``); what other files hold is told from their values
(:func:`label_image_kind`), and a file whose values fit no kind is refused, not guessed. Images
with no particle in truth and prediction score 1.0.

**Size agreement** (:func:`size_agreement`): the predicted against the true equivalent diameters
(:func:`~napari_diffrendergan.analysis.sizes.compare_sizes`) per image and pooled, with the same
rules on both sides: particles within :data:`BORDER_PX` px of the scored area's border are cut
and left out of the sizes (manual masks often leave the outermost pixel unlabelled, so a margin
of 1 px would keep particles the annotator cut), and so are those under the resolution floor.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import read_image
from .particles import MIN_AREA
from .sizes import compare_sizes, sized_table

SUFFIXES = ("_instances", "_mask", "_m", "_labels")
BORDER_PX = 2


class EvaluationError(InputError):
    """Inputs cannot be compared; the message names the file or problem."""


class LabelKindError(EvaluationError):
    """A label image does not hold what its kind says, or its kind cannot be told; the message
    ends where the way to set the kind can be added."""


KINDS = ("auto", "binary", "semantic", "instances")
KIND_ALIASES = {"mask": "semantic"}  # the earlier name of the 3-class kind


def to_instances(labels: np.ndarray, kind: str = "auto") -> np.ndarray:
    """Instance labels (int32, 0 = background) from a ``binary`` mask (4-connected components
    of the nonzero pixels), a 3-class ``semantic`` mask (0 background, 1 particle, 2 contour;
    particle-class components grown into their contour) or ``instances``; ``auto`` tells them
    apart (:func:`label_image_kind`) and refuses what it cannot tell."""
    from skimage.measure import label

    labels = _integer_labels(labels)
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise EvaluationError(f"unknown label kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "auto":
        kind = label_image_kind(labels)
    if kind == "binary":  # particles separated by background lines
        return label(labels != 0, connectivity=1).astype(np.int32)
    if labels.min() < 0:
        raise LabelKindError(
            f"{kind} label images hold no negative values, this one has {labels.min()}: "
            "if every nonzero pixel is a particle, read it as binary"
        )
    if kind == "semantic":  # particle-class components grown into their contour
        from .particles import instances_from_mask

        if labels.max() > 2:
            raise LabelKindError(
                f"a 3-class mask holds 0, 1 and 2, this one up to {labels.max()}: read it as "
                "binary or instances"
            )
        return instances_from_mask(labels, contour_thickness=4, min_area=1).astype(np.int32)
    if labels.max() > np.iinfo(np.int32).max:
        raise EvaluationError(f"instance label {labels.max()} is beyond the int32 range")
    return labels.astype(np.int32)


def _integer_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` as a 2D integer array; clear errors for other shapes, types and values."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise EvaluationError(f"label images must be 2D, got shape {labels.shape}")
    if labels.size == 0:
        raise EvaluationError("label image has no pixels")
    if labels.dtype.kind == "b":
        return labels.astype(np.uint8)
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise EvaluationError("label image contains NaN or infinite values")
        if (labels != np.round(labels)).any():
            raise EvaluationError(
                "label image holds fractional values (a probability map?): threshold it into "
                "a mask or label image first"
            )
        return labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise EvaluationError(f"label image must be numeric, got {labels.dtype}")
    return labels


def label_image_kind(labels: np.ndarray) -> str:
    """What an integer label image holds: ``binary`` (0 and one other value: 0/1, 0/255),
    ``semantic`` (0/1/2 with the particle class 1 inside rings of contour 2, as the package's
    own masks and nnU-Net ``labelsTr`` are) or ``instances`` (0 and labels each of which is
    mostly one connected piece). Anything else (negative values, two values without 0, values
    that fit none of these) is an :class:`EvaluationError` asking for the kind."""
    values = np.unique(labels)
    ask = "tell its kind (binary, semantic or instances)"
    if values[0] < 0:
        raise LabelKindError(f"label image holds negative values ({_shown(values)}): {ask}")
    if len(values) <= 2:
        if values[0] != 0 and len(values) == 2:
            raise LabelKindError(
                f"label image holds {values[0]} and {values[1]} but no 0 (background): {ask}"
            )
        return "binary"
    if len(values) == 3 and values[-1] == 2 and _enclosed_by_contour(labels) >= 0.9:
        return "semantic"
    if _pieces_per_label(labels) <= 1.5:
        return "instances"
    raise LabelKindError(
        f"label image with values {_shown(values)} is neither a binary mask, a 3-class mask "
        f"(0/1/2, particles inside contours) nor instances (each label one particle): {ask}"
    )


def _shown(values: np.ndarray, most: int = 5) -> str:
    return ", ".join(map(str, values[:most])) + (", …" if len(values) > most else "")


def _enclosed_by_contour(labels: np.ndarray) -> float:
    """Share of the 4-neighbours of class-1 pixels outside class 1 that are class 2."""
    contour = background = 0
    for a, b in ((labels[:-1], labels[1:]), (labels[:, :-1], labels[:, 1:])):
        for inner, outer in ((a, b), (b, a)):
            border = (inner == 1) & (outer != 1)
            contour += int((border & (outer == 2)).sum())
            background += int((border & (outer == 0)).sum())
    return contour / (contour + background) if contour + background else 0.0


def _pieces_per_label(labels: np.ndarray) -> float:
    """Connected pieces (8-connected, of equal value) per nonzero label value."""
    from skimage.measure import label

    pieces = int(label(labels, background=0, connectivity=2).max())
    return pieces / max(1, len(np.unique(labels)) - 1)


SCORES = ("dsc", "ap50", "pq", "pq_paper")


@dataclass
class ImageScores:
    """Scores of one image (see the module doc), and why counts are off: ``merged``
    predictions each cover two or more truth particles (``merged_truth`` of them), ``split``
    truth particles are cut into two or more predictions, ``missed`` truth particles are
    neither matched, merged nor split; of the other predictions, ``pieces`` lie mostly on
    truth particles (e.g. fragments of split particles, or cut off beside a match) and
    ``false_positive`` ones mostly on background."""

    name: str
    dsc: float
    ap50: float
    pq: float  # instance PQ (Kirillov et al.)
    pq_paper: float  # the paper's Table 1 convention: IoU of the binary foreground
    tp: int
    fp: int
    fn: int
    n_true: int
    n_pred: int
    merged: int = 0
    merged_truth: int = 0
    split: int = 0
    missed: int = 0
    pieces: int = 0
    false_positive: int = 0


@dataclass
class Overlaps:
    """Pixel overlaps of truth instances (rows) with predicted instances (columns), sparse:
    only overlapping pairs are stored, so tens of thousands of labels fit in memory."""

    rows: np.ndarray  # truth index (0-based over truth ids)
    cols: np.ndarray  # prediction index
    pixels: np.ndarray  # overlapping pixels
    area_true: np.ndarray
    area_pred: np.ndarray
    true_ids: np.ndarray
    pred_ids: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        union = self.area_true[self.rows] + self.area_pred[self.cols] - self.pixels
        return self.pixels / union


def overlaps(truth: np.ndarray, pred: np.ndarray) -> Overlaps:
    from scipy import sparse

    t_ids, t = np.unique(truth, return_inverse=True)
    p_ids, p = np.unique(pred, return_inverse=True)
    t, p = t.ravel(), p.ravel()
    both = (t_ids[t] > 0) & (p_ids[p] > 0)
    shape = (len(t_ids), len(p_ids))
    counts = sparse.coo_matrix((np.ones(both.sum()), (t[both], p[both])), shape=shape).tocsr()
    counts = counts[np.flatnonzero(t_ids > 0)][:, np.flatnonzero(p_ids > 0)].tocoo()
    return Overlaps(
        counts.row,
        counts.col,
        counts.data,
        np.bincount(t, minlength=len(t_ids))[t_ids > 0],
        np.bincount(p, minlength=len(p_ids))[p_ids > 0],
        t_ids[t_ids > 0],
        p_ids[p_ids > 0],
    )


def classify(o: Overlaps) -> dict[str, np.ndarray]:
    """Boolean flags per truth instance (``matched``, ``merged``, ``split``, ``missed``) and per
    prediction (``matched``, ``merge``, ``piece``, ``false``): matched at IoU > 0.5; a merge
    holds most of two or more truth particles; a truth particle is split when two or more
    predictions lie mostly inside it and none matches it; a piece is any other prediction lying
    mostly on truth particles, a false one lies mostly on background."""
    n_true, n_pred = len(o.true_ids), len(o.pred_ids)
    good = o.iou > 0.5
    true_matched = np.isin(np.arange(n_true), o.rows[good])
    pred_matched = np.isin(np.arange(n_pred), o.cols[good])
    held = o.pixels / o.area_true[o.rows] > 0.5  # most of the truth particle is in this pred
    holds = np.bincount(o.cols[held], minlength=n_pred)
    merge = holds >= 2
    true_merged = np.isin(np.arange(n_true), o.rows[held & merge[o.cols]])
    inside = o.pixels / o.area_pred[o.cols] > 0.5  # most of the prediction lies in this truth
    parts = np.bincount(o.rows[inside], minlength=n_true)
    true_split = (parts >= 2) & ~true_matched
    on_truth = np.bincount(o.cols, o.pixels, minlength=n_pred) / o.area_pred > 0.5
    return {
        "true_matched": true_matched,
        "true_merged": true_merged & ~true_matched,
        "true_split": true_split,
        "true_missed": ~(true_matched | true_merged | true_split),
        "pred_matched": pred_matched,
        "pred_merge": merge & ~pred_matched,
        "pred_piece": on_truth & ~pred_matched & ~merge,
        "pred_false": ~(on_truth | pred_matched | merge),
    }


def score_image(
    truth: np.ndarray,
    pred: np.ndarray,
    name: str = "",
    truth_kind: str = "auto",
    pred_kind: str = "auto",
) -> ImageScores:
    """Dice, AP50, PQ (both conventions) and the error breakdown of one predicted label image
    against its truth."""
    truth, pred = to_instances(truth, truth_kind), to_instances(pred, pred_kind)
    if truth.shape != pred.shape:
        raise EvaluationError(
            f"{name or 'image'}: prediction {pred.shape} and truth {truth.shape} differ in shape"
        )
    t_fg, p_fg = truth > 0, pred > 0
    total = t_fg.sum() + p_fg.sum()
    dsc = 1.0 if total == 0 else 2.0 * (t_fg & p_fg).sum() / total
    o = overlaps(truth, pred)
    iou = o.iou
    matched = iou > 0.5
    tp = int(matched.sum())
    n_true, n_pred = len(o.true_ids), len(o.pred_ids)
    fp, fn = n_pred - tp, n_true - tp
    if n_true + n_pred == 0:
        ap50 = pq = 1.0
    else:
        ap50 = tp / (tp + fp + fn)
        pq = float(iou[matched].sum()) / (tp + fp / 2 + fn / 2)
    flags = classify(o)
    return ImageScores(
        name,
        float(dsc),
        float(ap50),
        float(pq),
        float(dsc / (2 - dsc)),
        tp,
        fp,
        fn,
        n_true,
        n_pred,
        merged=int(flags["pred_merge"].sum()),
        merged_truth=int(flags["true_merged"].sum()),
        split=int(flags["true_split"].sum()),
        missed=int(flags["true_missed"].sum()),
        pieces=int(flags["pred_piece"].sum()),
        false_positive=int(flags["pred_false"].sum()),
    )


def ranked_matches(
    truth: np.ndarray,
    pred: np.ndarray,
    confidence: dict[int, float],
    truth_kind: str = "auto",
    name: str = "",
) -> tuple[np.ndarray, np.ndarray, int]:
    """One image's share of :func:`coco_ap50`: the confidence and the match (IoU > 0.5) of
    every instance of ``pred`` (an instance image), and the number of truth instances;
    ``confidence`` maps each predicted label to its confidence."""
    truth, pred = to_instances(truth, truth_kind), to_instances(pred, "instances")
    if truth.shape != pred.shape:
        raise EvaluationError(
            f"{name or 'image'}: prediction {pred.shape} and truth {truth.shape} differ in shape"
        )
    o = overlaps(truth, pred)
    missing = [int(i) for i in o.pred_ids if int(i) not in confidence]
    if missing:
        raise EvaluationError(
            f"{name or 'image'}: {len(missing)} predicted particles (labels {missing[:5]}) have "
            "no confidence in its particle table: segment the image again (or remove the table)"
        )
    matched = np.isin(np.arange(len(o.pred_ids)), o.cols[o.iou > 0.5])
    scores = np.array([confidence[int(i)] for i in o.pred_ids], np.float64)
    return scores, matched, len(o.true_ids)


def coco_ap50(images: list[tuple[np.ndarray, np.ndarray, int]]) -> float | None:
    """COCO-style AP at IoU 0.5 over the :func:`ranked_matches` of several images: precision
    made monotone (the best precision at any higher recall), read at recalls 0, 0.01, … 1 (0
    beyond the highest recall reached) and averaged, as pycocotools does (which matches at
    IoU ≥ 0.5; here > 0.5, as for AP50). None when there is no truth particle."""
    n_true = sum(n for _, _, n in images)
    if n_true == 0:
        return None
    scores = np.concatenate([s for s, _, _ in images])
    if not len(scores):
        return 0.0
    matched = np.concatenate([m for _, m, _ in images])
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(matched[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / n_true
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean(np.where(at < len(envelope), envelope[np.minimum(at, len(tp) - 1)], 0)))


def case_key(path: str | Path) -> str:
    """File stem without the usual mask suffixes and nnU-Net's channel suffix:
    ``1908248_m.tif``, ``1908248_0000_instances.tif`` -> ``1908248``."""
    stem = Path(path).name.split(".")[0]
    for suffix in SUFFIXES:
        stem = re.sub(f"{suffix}$", "", stem)
    return re.sub(r"_\d{4}$", "", stem)


def label_kind(path: Path) -> str:
    """What a file holds, from its name: ``*_mask`` 3-class, ``*_instances`` instances."""
    stem = Path(path).name.split(".")[0]
    if stem.endswith("_mask"):
        return "semantic"
    return "instances" if stem.endswith("_instances") else "auto"


def _index(folder: Path) -> dict[str, Path]:
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff", ".png") and p.is_file()
    )
    index: dict[str, Path] = {}
    for path in files:  # instance images over masks over files without a suffix (images)
        key = case_key(path)
        if key not in index or _rank(path) > _rank(index[key]):
            index[key] = path
        elif _rank(path) == _rank(index[key]):
            raise EvaluationError(
                f"{index[key]} and {path} are both labels of case {key!r}: move one of them "
                "out of the folder"
            )
    return index


def _rank(path: Path) -> int:
    """2 for ``*_instances``, 1 for another label suffix (``_mask``, ``_m``, ``_labels``), 0
    for none."""
    stem = path.name.split(".")[0]
    if stem.endswith("_instances"):
        return 2
    return int(stem.endswith(SUFFIXES))


def _confidence(pred_path: Path) -> dict[int, float] | None:
    """Label → confidence from the particle table written beside an instance image
    (``X_particles.csv`` for ``X_instances.tif``), or None where there is none."""
    import csv

    stem = pred_path.name.split(".")[0]
    table = pred_path.with_name(stem.removesuffix("_instances") + "_particles.csv")
    if not stem.endswith("_instances") or not table.is_file():
        return None
    try:
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "confidence" not in rows[0]:
            return None
        return {int(row["label"]): float(row["confidence"]) for row in rows}
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as err:
        raise EvaluationError(
            f"{table}: unreadable label or confidence ({err}): segment the image again"
        ) from err


def evaluate_folders(
    pred_dir: str | Path,
    truth_dir: str | Path,
    crop_rows: int | None = None,
    truth_kind: str | None = None,
    pred_kind: str | None = None,
    pixel_size_nm: float | None = None,
    min_area_px: int = MIN_AREA,
    keep_border: bool = False,
) -> dict:
    """Score every truth image that has a prediction, and compare their sizes
    (:func:`size_agreement`; ``pixel_size_nm`` defaults to the files' sidecars). Kinds (see
    :func:`to_instances`) default to what the file names say; ``crop_rows`` keeps only the
    first rows (e.g. 712 to leave out a data bar); without it, a taller truth is cropped to the
    prediction's height. When every prediction is an instance image with its particle table (as
    ``diffrendergan segment`` writes them), ``ap50_coco`` is the COCO-style AP50 over all
    images (else None)."""
    pred_dir, truth_dir = Path(pred_dir), Path(truth_dir)
    for kind in (truth_kind, pred_kind):
        if kind is not None and KIND_ALIASES.get(kind, kind) not in KINDS:
            raise EvaluationError(f"unknown label kind {kind!r}; choose one of {', '.join(KINDS)}")
    for folder in (pred_dir, truth_dir):
        if not folder.is_dir():
            raise EvaluationError(f"{folder} is not a folder")
    preds, truths = _index(pred_dir), _index(truth_dir)
    common = sorted(set(preds) & set(truths))
    if not common:
        raise EvaluationError(
            f"no prediction in {pred_dir} matches a truth image in {truth_dir} "
            f"(names are matched without suffixes {', '.join(SUFFIXES)})"
        )
    kinds = {
        k: (truth_kind or label_kind(truths[k]), pred_kind or label_kind(preds[k])) for k in common
    }
    confidences = {k: _confidence(preds[k]) if kinds[k][1] == "instances" else None for k in common}
    with_coco = all(c is not None for c in confidences.values())
    images, ranked, pairs, sidecars = [], [], [], set()
    for key in common:
        (truth, truth_nm), (pred, pred_nm) = _read_labels(truths[key]), _read_labels(preds[key])
        sidecars.add(pred_nm or truth_nm)
        if crop_rows is None and truth.shape != pred.shape and truth.shape[1:] == pred.shape[1:]:
            truth = truth[: pred.shape[0]]  # prediction made without the data bar
        elif crop_rows:
            truth, pred = truth[:crop_rows], pred[:crop_rows]
        if truth.shape != pred.shape:
            raise EvaluationError(
                f"{preds[key]} {pred.shape} and {truths[key]} {truth.shape} differ in shape: "
                "score a prediction of the same image as its manual mask"
            )
        truth = _instances_of(truth, kinds[key][0], truths[key], "--truth-kind")
        pred = _instances_of(pred, kinds[key][1], preds[key], "--pred-kind")
        images.append(score_image(truth, pred, key, "instances", "instances"))
        pairs.append((key, truth, pred))
        if with_coco:
            ranked.append(ranked_matches(truth, pred, confidences[key], "instances", key))
    pixel = pixel_size_nm or _common_pixel_size(sidecars)
    return {
        **summarise(images),
        "ap50_coco": coco_ap50(ranked) if with_coco else None,
        "missing_predictions": sorted(set(truths) - set(preds)),
        "sizes": size_agreement(pairs, pixel, min_area_px, keep_border),
    }


def size_agreement(
    pairs: list[tuple[str, np.ndarray, np.ndarray]],
    pixel_size_nm: float | None = None,
    min_area_px: int = MIN_AREA,
    keep_border: bool = False,
    border_px: int = BORDER_PX,
) -> dict:
    """Predicted against true sizes (:func:`~napari_diffrendergan.analysis.sizes.compare_sizes`
    with the truth as ``a``) of ``(name, truth instances, predicted instances)`` per image and
    pooled, with the same border and floor rules on both sides."""
    truths = [sized_table(truth, pixel_size_nm, margin=border_px) for _, truth, _ in pairs]
    preds = [sized_table(pred, pixel_size_nm, margin=border_px) for _, _, pred in pairs]
    rules = (pixel_size_nm, min_area_px, keep_border)
    return {
        "pixel_size_nm": pixel_size_nm,
        "border_px": border_px,
        "min_area_px": min_area_px,
        "border_particles_included": keep_border,
        "images": [
            {"name": name, **compare_sizes([truth], [pred], *rules)}
            for (name, _, _), truth, pred in zip(pairs, truths, preds, strict=True)
        ],
        "pooled": compare_sizes(truths, preds, *rules),
    }


def _common_pixel_size(sidecars: set) -> float | None:
    """The one pixel size the files' sidecars give (None when none gives one)."""
    known = sorted(v for v in sidecars if v)
    if len(known) > 1 or (known and None in sidecars):
        raise EvaluationError(
            f"the files' sidecars give different pixel sizes ({', '.join(map(str, sidecars))} "
            "nm): evaluate each pixel size on its own, or give one with --pixel-size"
        )
    return known[0] if known else None


def _read_labels(path: Path) -> tuple[np.ndarray, float | None]:
    labels, pixel_size_nm = read_image(path)
    if labels.ndim != 2:
        raise EvaluationError(
            f"{path}: label images must be 2D, got shape {labels.shape}: save one plane of "
            "labels per file (no RGB, no stack)"
        )
    return labels, pixel_size_nm


def _instances_of(labels: np.ndarray, kind: str, path: Path, option: str) -> np.ndarray:
    """:func:`to_instances` whose errors name the file (and the option setting its kind)."""
    try:
        return to_instances(labels, kind)
    except LabelKindError as err:
        raise LabelKindError(f"{path}: {err} with {option}") from err
    except EvaluationError as err:
        raise EvaluationError(f"{path}: {err}") from err


COUNTS = ("tp", "fp", "fn", "n_true", "n_pred", "merged", "merged_truth", "split", "missed")
COUNTS += ("pieces", "false_positive")


def summarise(images: list[ImageScores]) -> dict:
    """Means of the scores over images, sums of the counts, the found/manual ratio, and the
    per-image rows."""
    means = {k: float(np.mean([getattr(s, k) for s in images])) for k in SCORES}
    sums = {k: int(sum(getattr(s, k) for s in images)) for k in COUNTS}
    ratio = sums["n_pred"] / sums["n_true"] if sums["n_true"] else float("nan")
    return {**means, **sums, "count_ratio": ratio, "images": [asdict(s) for s in images]}


MATCH_COLOURS = {
    "true positive": (0, 200, 0),
    "false positive": (230, 0, 0),
    "false negative": (30, 110, 255),
    "merged": (255, 170, 0),
    "piece": (200, 0, 200),
}


def match_overlay(
    image: np.ndarray,
    truth: np.ndarray,
    pred: np.ndarray,
    truth_kind: str = "auto",
    pred_kind: str = "auto",
    alpha: float = 0.45,
) -> np.ndarray:
    """RGB uint8 picture of ``image`` with predicted instances matched at IoU > 0.5 in green
    (true positives), unmatched predictions on background in red (false positives),
    predictions merging two or more truth particles in orange, other unmatched predictions on
    particles in magenta (pieces) and unmatched truth instances in blue (false negatives), as
    in the paper's Fig. 4 (:data:`MATCH_COLOURS`)."""
    truth, pred = to_instances(truth, truth_kind), to_instances(pred, pred_kind)
    if not (image.shape == truth.shape == pred.shape):
        raise EvaluationError(
            f"image {image.shape}, truth {truth.shape} and prediction {pred.shape} differ in shape"
        )
    gray = np.asarray(image, np.float64)
    lo, hi = np.percentile(gray, (0.5, 99.5))
    gray = np.clip((gray - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = np.repeat(gray[..., None] * 255, 3, axis=2)
    o = overlaps(truth, pred)
    flags = classify(o)
    layers = {
        "false negative": np.isin(truth, o.true_ids[~flags["true_matched"]]),
        "true positive": np.isin(pred, o.pred_ids[flags["pred_matched"]]),
        "false positive": np.isin(pred, o.pred_ids[flags["pred_false"]]),
        "merged": np.isin(pred, o.pred_ids[flags["pred_merge"]]),
        "piece": np.isin(pred, o.pred_ids[flags["pred_piece"]]),
    }
    for name, where in layers.items():
        rgb[where] = (1 - alpha) * rgb[where] + alpha * np.array(MATCH_COLOURS[name])
    return np.round(rgb).astype(np.uint8)
