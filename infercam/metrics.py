"""The measuring stick: confusion matrices, IoU, and CAM quality as the best mIoU over a constant
background score (SEAM's protocol, used by the paper's Tables 1-4).

A CAM becomes a label map by prepending a background channel of constant value ``t`` and taking
the argmax; ``t`` is swept over 0.00..0.59 in steps of 0.01 and the best mIoU is reported. When the
best ``t`` lands on an end of the sweep, the sweep was too narrow for those maps and the maximum is
clipped: :class:`ThresholdSweep` says so instead of hiding it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infercam.bootstrap import ImageConfusions
from infercam.voc import CLASS_NAMES, IGNORE_INDEX, load_label_png

NUM_LABELS = len(CLASS_NAMES)  # 21: background + 20 classes
SWEEP_THRESHOLDS = np.round(np.arange(0.0, 0.60, 0.01), 2)


def confusion_matrix(prediction: np.ndarray, truth: np.ndarray, num_labels: int = NUM_LABELS,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(num_labels, num_labels) int64 counts; rows are ground truth, columns predictions.
    Pixels whose truth is ``ignore_index`` are left out."""
    truth = np.asarray(truth).ravel()
    prediction = np.asarray(prediction).ravel()
    if truth.shape != prediction.shape:
        raise ValueError(f"prediction has {prediction.size} pixels, truth {truth.size}")
    keep = truth != ignore_index
    truth, prediction = truth[keep].astype(np.int64), prediction[keep].astype(np.int64)
    if truth.size and (truth.max() >= num_labels or prediction.max() >= num_labels or prediction.min() < 0):
        raise ValueError(f"labels must lie in 0..{num_labels - 1} (or be {ignore_index} in the truth)")
    return _count_pairs(truth, prediction, num_labels)


def _count_pairs(truth: np.ndarray, prediction: np.ndarray, num_labels: int = NUM_LABELS) -> np.ndarray:
    """Confusion counts of flat int64 label arrays already stripped of ignored pixels."""
    return np.bincount(truth * num_labels + prediction, minlength=num_labels ** 2).reshape(num_labels, num_labels)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU = TP / (T + P - TP) per class; NaN for a class that is neither in the truth nor predicted."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    union = confusion.sum(axis=1) + confusion.sum(axis=0) - true_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes that occur (all 21 on VOC's splits)."""
    return float(np.nanmean(iou_per_class(confusion)))


def cam_prediction(cams: np.ndarray, class_ids, threshold: float) -> np.ndarray:
    """Label map from the CAMs of an image's classes: background wherever no class map beats
    ``threshold``, else the class (1..20) with the highest map. ``cams`` is (K, H, W) for the
    ``class_ids`` (0-based VOC indices) of the image."""
    cams = np.asarray(cams)
    class_ids = np.asarray(class_ids, dtype=np.int64)
    if cams.ndim != 3 or len(class_ids) != cams.shape[0]:
        raise ValueError(f"cams must be (K, H, W) with one map per class id; got {cams.shape} for {len(class_ids)} ids")
    if cams.shape[0] == 0:
        return np.zeros(cams.shape[1:], dtype=np.uint8)
    best = cams.argmax(axis=0)
    # Ties go to the background, as argmax over [t; cams] picks the first maximum.
    return np.where(cams.max(axis=0) > threshold, class_ids[best] + 1, 0).astype(np.uint8)


@dataclass
class ThresholdSweep:
    """Confusion matrices for every background score at once, accumulated image by image."""

    thresholds: np.ndarray = field(default_factory=lambda: SWEEP_THRESHOLDS.copy())
    confusions: np.ndarray = field(init=False)
    # Per added image, its nonzero (truth, winner, thresholds beaten) counts, for the bootstrap's
    # per-image confusions at a chosen threshold (a few hundred numbers an image).
    image_counts: list[tuple[np.ndarray, np.ndarray]] = field(init=False, default_factory=list)

    def __post_init__(self):
        self.thresholds = np.asarray(self.thresholds, dtype=np.float64)
        self.confusions = np.zeros((len(self.thresholds), NUM_LABELS, NUM_LABELS), dtype=np.int64)

    def add(self, cams: np.ndarray, class_ids, truth: np.ndarray) -> None:
        cams = np.asarray(cams)
        keep = np.asarray(truth).ravel() != IGNORE_INDEX
        truth = np.asarray(truth).ravel()[keep].astype(np.int64)
        if cams.shape[0] == 0:
            peak, winner = np.zeros(truth.size), np.zeros(truth.size, dtype=np.int64)
        else:
            peak = cams.max(axis=0).ravel()[keep]
            winner = np.asarray(class_ids, dtype=np.int64)[cams.argmax(axis=0).ravel()[keep]] + 1
        # One count of (truth, winner, how many thresholds the peak beats) gives every threshold's
        # confusion matrix: at threshold j the winner is predicted where the peak beats more than j.
        beaten = np.searchsorted(self.thresholds, peak, side="left")  # thresholds < peak
        levels = len(self.thresholds) + 1
        counts = np.bincount((truth * NUM_LABELS + winner) * levels + beaten,
                             minlength=NUM_LABELS * NUM_LABELS * levels)
        nonzero = np.flatnonzero(counts)
        self.image_counts.append((nonzero.astype(np.int32), counts[nonzero]))
        counts = counts.reshape(NUM_LABELS, NUM_LABELS, levels)
        at_most = np.cumsum(counts, axis=2)[..., :-1]  # (truth, winner, j): peak beats <= j thresholds
        above = counts.sum(axis=2, keepdims=True) - at_most  # winner predicted
        confusions = above.transpose(2, 0, 1).copy()
        confusions[:, :, 0] += at_most.sum(axis=1).T  # background predicted
        self.confusions += confusions

    def image_confusions(self, threshold: float) -> np.ndarray:
        """(images, L, L): each added image's confusion matrix at ``threshold`` (one of the sweep's),
        in the order they were added; they sum to that threshold's row of ``confusions``."""
        index = int(np.argmin(np.abs(self.thresholds - threshold)))
        if not np.isclose(self.thresholds[index], threshold):
            raise ValueError(f"threshold {threshold} is not one of the sweep's ({self.thresholds[0]}..{self.thresholds[-1]})")
        levels = len(self.thresholds) + 1
        result = np.zeros((len(self.image_counts), NUM_LABELS * NUM_LABELS), dtype=np.int64)
        for image, (flat, counts) in enumerate(self.image_counts):
            pair, beaten = np.divmod(flat.astype(np.int64), levels)
            truth, winner = np.divmod(pair, NUM_LABELS)
            # The winner where its peak beats more than ``index`` thresholds, else the background.
            predicted = np.where(beaten > index, winner, 0)
            np.add.at(result[image], truth * NUM_LABELS + predicted, counts)
        return result.reshape(-1, NUM_LABELS, NUM_LABELS)

    def mious(self) -> np.ndarray:
        return np.array([mean_iou(confusion) for confusion in self.confusions])

    def best(self) -> dict:
        """The best background score, its mIoU and per-class IoU, and whether it sits on an end of
        the sweep (then the reported maximum is clipped by the sweep's range)."""
        mious = self.mious()
        index = int(np.nanargmax(mious))
        ious = iou_per_class(self.confusions[index])
        # Reached at an end (also on a plateau that touches it): the curve may still rise beyond.
        at_edge = len(self.thresholds) > 1 and bool(np.isclose(mious[[0, -1]], mious[index]).any())
        return {
            "threshold": float(self.thresholds[index]), "miou": float(mious[index]), "at_edge": at_edge,
            "per_class_iou": dict(zip(CLASS_NAMES, ious.tolist())),
            "warning": (f"the best background score ({self.thresholds[index]:.2f}) reaches an end of the sweep "
                        f"{self.thresholds[0]:.2f}..{self.thresholds[-1]:.2f}: the maximum is clipped; widen the sweep")
            if at_edge else None,
        }


def average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class average precision of multi-label scores (N, C) against 0/1 targets (N, C): the mean,
    over the positives, of the precision at each positive's rank (scikit-learn's definition, with
    tied scores ranked together). NaN for a class without positives."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets) > 0
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} differ in shape")
    result = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        positives = targets[:, c].sum()
        if positives == 0:
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        ranked_scores, hits = scores[order, c], targets[order, c]
        # A tie block counts as one threshold: precision and recall taken at its last member.
        last_of_tie = np.r_[ranked_scores[1:] != ranked_scores[:-1], True]
        true_positives = np.cumsum(hits)[last_of_tie]
        predicted = np.flatnonzero(last_of_tie) + 1
        recall_steps = np.diff(np.r_[0, true_positives]) / positives
        result[c] = float((recall_steps * true_positives / predicted).sum())
    return result


def label_map_confusions(dataset, label_dir, names: list[str] | None = None) -> ImageConfusions:
    """The confusion matrix of each saved label map (``<label_dir>/<name>.png``,
    VOC palette; 255 counts as background, as an unlabelled pixel would in a prediction) against
    the split's ground truth, in the order of ``names`` (default: the split's)."""
    names = dataset.names if names is None else names
    confusions = np.zeros((len(names), NUM_LABELS, NUM_LABELS), dtype=np.int64)
    for i, name in enumerate(names):
        path = Path(label_dir) / f"{name}.png"
        if not path.is_file():
            raise FileNotFoundError(f"no label map {path}: run the step that writes {Path(label_dir).name} first")
        prediction = load_label_png(path)
        confusions[i] = confusion_matrix(np.where(prediction == IGNORE_INDEX, 0, prediction), dataset.load_label(name))
    return ImageConfusions(tuple(names), confusions)


def evaluate_label_maps(dataset, label_dir, names: list[str] | None = None) -> dict:
    """mIoU of saved label maps (see :func:`label_map_confusions`) against the split's ground truth:
    ``{"miou", "per_class_iou", "images"}``."""
    names = dataset.names if names is None else names
    ious = iou_per_class(label_map_confusions(dataset, label_dir, names).confusions.sum(axis=0))
    return {"miou": float(np.nanmean(ious)), "per_class_iou": dict(zip(CLASS_NAMES, ious.tolist())), "images": len(names)}
