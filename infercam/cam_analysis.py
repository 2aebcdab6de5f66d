"""What saved CAMs are worth against the ground truth: the best-background-score mIoU (overall, per
class, and by the number of classes in the image as in the paper's Table 3), and the paper's
section 3.1 diagnostics: how much of the objects the mask CAM > 0 recalls, and how unevenly the
activation is spread inside them.

One pass over the saved maps collects everything; the activation inside each object (the pixels of
one ground-truth class in one image) is kept as a histogram so that coverage at any threshold can be
read off afterwards.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from infercam.config import no_bar
from infercam.bootstrap import ImageConfusions, paired_bootstrap
from infercam.cam import load_cams
from infercam.metrics import SWEEP_THRESHOLDS, ThresholdSweep, iou_per_class
from infercam.voc import IGNORE_INDEX, VOC_CLASSES

CLASS_COUNT_GROUPS = ("1", "2", "3+")
HISTOGRAM_BINS = 100  # activation histograms over [0, 1] in steps of 0.01, the sweep's resolution


def class_count_group(num_classes: int) -> str:
    """'1', '2' or '3+': the paper's Table 3 rows."""
    return CLASS_COUNT_GROUPS[min(num_classes, 3) - 1] if num_classes > 0 else "0"


def missing_cams(names: list[str], cam_dir: str | os.PathLike) -> list[str]:
    """The names that have no CAM file in ``cam_dir``."""
    cam_dir = Path(cam_dir)
    return [name for name in names if not (cam_dir / f"{name}.npz").exists()]


@dataclass
class CAMEvaluation:
    """Everything measured on one split's CAMs. ``objects`` has one row per (image, class) region
    and ``histograms[i]`` the counts of that region's own-class activation in 100 bins over (0, 1],
    with exact zeros in ``objects.zero_pixels``."""

    sweep: ThresholdSweep
    sweeps_by_count: dict[str, ThresholdSweep]
    images: pd.DataFrame
    objects: pd.DataFrame
    histograms: np.ndarray

    @property
    def best(self) -> dict:
        return self.sweep.best()

    @property
    def curve(self) -> pd.Series:
        """mIoU at every background score of the sweep."""
        return pd.Series(self.sweep.mious(), index=pd.Index(self.sweep.thresholds, name="background score"),
                         name="mIoU")

    def image_confusions(self) -> ImageConfusions:
        """Each image's confusion matrix at the split's best background score (chosen on all the
        images, and kept so when the bootstrap resamples them)."""
        return ImageConfusions(tuple(self.images.index), self.sweep.image_confusions(self.best["threshold"]))

    def per_class_iou(self) -> pd.Series:
        return pd.Series(self.best["per_class_iou"], name="IoU").rename_axis("class")

    def by_class_count(self) -> pd.DataFrame:
        """mIoU of the images with 1 / 2 / 3+ classes, at the split's best background score (one
        threshold for the whole split, as in the paper) and at the group's own best."""
        index = int(np.argmin(np.abs(self.sweep.thresholds - self.best["threshold"])))
        rows = {}
        for group, sweep in self.sweeps_by_count.items():
            if not sweep.confusions[index].any():
                continue
            rows[group] = {"images": int((self.images["class_group"] == group).sum()),
                           "mIoU at the split's best t": float(np.nanmean(iou_per_class(sweep.confusions[index]))),
                           "own best t": sweep.best()["threshold"], "mIoU at own best t": sweep.best()["miou"]}
        return pd.DataFrame(rows).T.rename_axis("classes in the image")

    def recall_cam_positive(self) -> float:
        """Share of ground-truth object pixels where the image's CAM (max over its classes) is > 0:
        the paper's 84% (VOC train, its baseline)."""
        return float(self.images["foreground_activated"].sum() / self.images["foreground"].sum())

    def own_class_recall(self) -> float:
        """Share of object pixels whose *own* class map is > 0 (stricter than the above)."""
        return float(1 - self.objects["zero_pixels"].sum() / self.objects["pixels"].sum())

    def coverage(self, threshold: float) -> pd.Series:
        """Per object: share of its pixels whose own-class activation is >= threshold (0.01 steps)."""
        first_bin = int(round(threshold * HISTOGRAM_BINS))
        above = self.histograms[:, first_bin:].sum(axis=1) if threshold > 0 else self.objects["pixels"] - self.objects["zero_pixels"]
        return pd.Series(np.asarray(above) / self.objects["pixels"].to_numpy(), index=self.objects.index)

    def activation_distribution(self) -> pd.Series:
        """Share of all object pixels in each activation bin (own class), zeros included as bin 0."""
        counts = np.r_[self.objects["zero_pixels"].sum(), self.histograms.sum(axis=0)]
        edges = np.r_[0.0, np.arange(1, HISTOGRAM_BINS + 1) / HISTOGRAM_BINS]
        return pd.Series(counts / counts.sum(), index=pd.Index(edges, name="activation up to"), name="share")

    def summary(self) -> dict:
        """The numbers a metrics file keeps."""
        best = self.best
        by_count = self.by_class_count()
        return {
            "images": len(self.images),
            "best_threshold": best["threshold"], "miou": best["miou"], "at_edge": best["at_edge"],
            "warning": best["warning"],
            "miou_at": {f"{t:.2f}": float(v) for t, v in self.curve.items() if round(t * 100) % 5 == 0},
            "per_class_iou": best["per_class_iou"],
            "by_class_count": by_count.to_dict(orient="index"),
            "recall_cam_positive": self.recall_cam_positive(),
            "own_class_recall_cam_positive": self.own_class_recall(),
            "image_share_cam_positive": float(self.images["activated"].mean()),
            "background_share_cam_positive": float(self.images["background_activated"].sum() / self.images["background"].sum()),
            "object_coverage_at_best_threshold_mean": float(self.coverage(best["threshold"]).mean()),
            "object_share_activation_ge_0.5": float(self.coverage(0.5).mean()),
        }


def evaluate_cams(dataset, cam_dir: str | os.PathLike, thresholds=SWEEP_THRESHOLDS, names: list[str] | None = None,
                  progress: bool = True) -> CAMEvaluation:
    """Read the saved CAMs of every image of ``dataset`` (or of ``names``) from ``cam_dir`` and
    measure them."""
    cam_dir = Path(cam_dir)
    names = dataset.names if names is None else names
    missing = missing_cams(names, cam_dir)
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(names)} images have no CAMs in {cam_dir} "
                                f"(first: {missing[0]}); run the CAM inference step for split {dataset.split!r} first")
    sweep = ThresholdSweep(thresholds)
    sweeps_by_count = {group: ThresholdSweep(thresholds) for group in CLASS_COUNT_GROUPS}
    images, objects, histograms = [], [], []
    for name in tqdm(names, desc=f"evaluate CAMs of {dataset.split}", disable=no_bar(progress)):
        cams, class_ids = load_cams(cam_dir / f"{name}.npz")
        truth = dataset.load_label(name)
        group = class_count_group(len(class_ids))
        sweep.add(cams, class_ids, truth)
        if group in sweeps_by_count:
            sweeps_by_count[group].add(cams, class_ids, truth)
        peak = cams.max(axis=0) if len(class_ids) else np.zeros(truth.shape, dtype=np.float32)
        foreground = (truth > 0) & (truth != IGNORE_INDEX)
        background = truth == 0
        images.append({"name": name, "classes": len(class_ids), "class_group": group,
                       "foreground": int(foreground.sum()), "foreground_activated": int((foreground & (peak > 0)).sum()),
                       "background": int(background.sum()), "background_activated": int((background & (peak > 0)).sum()),
                       "activated": float((peak > 0).mean())})
        for cam, class_id in zip(cams, class_ids):
            values = cam[truth == class_id + 1]
            if values.size == 0:
                continue
            positive = values[values > 0]
            objects.append({"name": name, "class": VOC_CLASSES[class_id], "pixels": int(values.size),
                            "zero_pixels": int(values.size - positive.size)})
            bins = np.minimum((positive * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
            histograms.append(np.bincount(bins, minlength=HISTOGRAM_BINS))
    return CAMEvaluation(sweep, sweeps_by_count, pd.DataFrame(images).set_index("name"), pd.DataFrame(objects),
                         np.array(histograms, dtype=np.int64).reshape(-1, HISTOGRAM_BINS))


def compare_evaluations(evaluations: dict[str, CAMEvaluation], reference: str) -> pd.DataFrame:
    """Each evaluation's mIoU (%) and difference to ``reference``'s, with 95% intervals from a
    paired bootstrap over the images (:func:`infercam.bootstrap.paired_bootstrap`); each keeps the
    best background score it chose on all the images."""
    return paired_bootstrap({name: evaluation.image_confusions() for name, evaluation in evaluations.items()}, reference)


__all__ = ["CAMEvaluation", "CLASS_COUNT_GROUPS", "class_count_group", "compare_evaluations", "evaluate_cams",
           "missing_cams"]


def image_miou(dataset, cam_dir: str | os.PathLike, name: str, threshold: float) -> float:
    """mIoU of one image's saved maps at one background score (over the classes it has or predicts)."""
    maps, class_ids = load_cams(Path(cam_dir) / f"{name}.npz")
    sweep = ThresholdSweep([threshold])
    sweep.add(maps, class_ids, dataset.load_label(name))
    return float(sweep.mious()[0])


def change_per_image(dataset, names, before: tuple, after: tuple) -> pd.Series:
    """Per image, ``after``'s mIoU minus ``before``'s, each a (folder of maps, background score)."""
    return pd.Series({name: image_miou(dataset, after[0], name, after[1]) - image_miou(dataset, before[0], name, before[1])
                      for name in names}, name="image mIoU change")
