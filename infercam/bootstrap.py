"""How sure is a difference of mIoU? A paired bootstrap over images.

Every evaluation keeps one confusion matrix per image (:class:`ImageConfusions`). A resample draws
the images with replacement; its mIoU is that of the summed confusions of the drawn images, so the
statistic is the dataset-level mIoU the book reports, not a mean of per-image scores. All rows
compared with a reference use the *same* draws (paired): the interval of a difference is about the
images, and images that are hard for both rows do not widen it. A row's settings (e.g. its best
background score, chosen on all images) stay fixed across resamples.

Vectorised: the draws are a (resamples, images) matrix of counts, so all the resampled confusions
are one matrix product ``counts @ confusions.reshape(images, L * L)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class ImageConfusions:
    """One row's per-image confusion matrices, (images, L, L), in the order of ``names``."""

    names: tuple[str, ...]
    confusions: np.ndarray

    def __post_init__(self):
        confusions = np.asarray(self.confusions)
        if confusions.ndim != 3 or confusions.shape[1] != confusions.shape[2] or confusions.shape[0] != len(self.names):
            raise ValueError(f"confusions must be (images, L, L) with one matrix per name; got {confusions.shape} "
                             f"for {len(self.names)} names")
        if len(set(self.names)) != len(self.names):
            raise ValueError("an image name occurs twice: each image must have one confusion matrix")
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "confusions", confusions)

    def subset(self, names) -> ImageConfusions:
        """The rows of ``names`` (e.g. the images with one class), in that order."""
        return ImageConfusions(tuple(names), self.aligned_to(names, subset=True))

    def aligned_to(self, names, subset: bool = False) -> np.ndarray:
        """The confusions in the order of ``names``, which must be exactly this row's images."""
        names = list(names)
        if not (set(names) <= set(self.names) if subset else set(names) == set(self.names)):
            only_here, only_there = sorted(set(self.names) - set(names)), sorted(set(names) - set(self.names))
            raise ValueError(f"cannot pair rows evaluated on different images ({len(self.names)} against {len(names)}; "
                             f"only in this row: {only_here[:3]}, only in the other: {only_there[:3]}): evaluate "
                             "both rows on the same image list")
        position = {name: i for i, name in enumerate(self.names)}
        return self.confusions[[position[name] for name in names]]


def mean_ious(confusions: np.ndarray) -> np.ndarray:
    """mIoU of each of a stack of confusion matrices (..., L, L): the mean IoU over the classes
    present in the truth or the prediction (as :func:`infercam.metrics.mean_iou`)."""
    confusions = np.asarray(confusions, dtype=np.float64)
    true_positive = np.diagonal(confusions, axis1=-2, axis2=-1)
    union = confusions.sum(axis=-1) + confusions.sum(axis=-2) - true_positive
    present = union > 0
    iou = np.divide(true_positive, union, out=np.zeros_like(true_positive), where=present)
    return iou.sum(axis=-1) / present.sum(axis=-1)


def resample_counts(images: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, images) int64: how often each image is drawn in each resample (each row sums to
    ``images``)."""
    if images < 1:
        raise ValueError("the bootstrap needs at least one image")
    rng = np.random.default_rng(seed)
    return rng.multinomial(images, np.full(images, 1.0 / images), size=resamples)


def resampled_mious(confusions: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(resamples,) mIoU of each resample: ``counts`` (resamples, images) weights the per-image
    ``confusions`` (images, L, L)."""
    images, labels = confusions.shape[0], confusions.shape[1]
    summed = counts @ confusions.reshape(images, labels * labels).astype(np.float64)
    return mean_ious(summed.reshape(-1, labels, labels))


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval holding ``level`` of ``values``."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(rows: dict[str, ImageConfusions], reference: str, resamples: int = RESAMPLES, seed: int = 0,
                     level: float = LEVEL) -> pd.DataFrame:
    """Per row: images, mIoU (%) on all images with its interval, and the difference (points) to
    ``reference``'s mIoU with the interval of the paired resamples. Rows must hold the same images
    (in any order); the reference's row has a difference of 0."""
    if reference not in rows:
        raise KeyError(f"no row {reference!r} to compare with; rows: {sorted(rows)}")
    names = rows[reference].names
    aligned = {}
    for row, confusions in rows.items():
        try:
            aligned[row] = confusions.aligned_to(names)
        except ValueError as error:
            raise ValueError(f"row {row!r} against {reference!r}: {error}") from error
    counts = resample_counts(len(names), resamples, seed)
    resampled = {row: 100 * resampled_mious(confusions, counts) for row, confusions in aligned.items()}
    point = {row: 100 * float(mean_ious(confusions.sum(axis=0))) for row, confusions in aligned.items()}
    table = {}
    for row in rows:
        miou_low, miou_high = interval(resampled[row], level)
        delta_low, delta_high = interval(resampled[row] - resampled[reference], level)
        table[row] = {"images": len(names), "mIoU (%)": point[row], "mIoU low": miou_low, "mIoU high": miou_high,
                      "Δ": point[row] - point[reference], "Δ low": delta_low, "Δ high": delta_high}
    return pd.DataFrame.from_dict(table, orient="index")


def truth_class_counts(rows: ImageConfusions) -> pd.Series:
    """How many foreground classes each image's ground truth holds (a confusion matrix's rows are
    the truth; label 0 is the background), indexed by image name."""
    truth_pixels = rows.confusions.sum(axis=2)[:, 1:]
    return pd.Series((truth_pixels > 0).sum(axis=1), index=list(rows.names), name="classes")


def paired_bootstrap_by_group(rows: dict[str, ImageConfusions], reference: str, groups: pd.Series,
                              resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> pd.DataFrame:
    """:func:`paired_bootstrap` within each group of images (``groups``: image name -> group, e.g.
    the number of classes), indexed by (group, row); images outside ``groups`` are left out."""
    tables = {}
    for group, members in groups.groupby(groups, sort=True):
        names = [name for name in rows[reference].names if name in members.index]
        if names:
            tables[group] = paired_bootstrap({row: confusions.subset(names) for row, confusions in rows.items()},
                                             reference, resamples, seed, level)
    return pd.concat(tables, names=["group", "row"])


def conclusion(low: float, high: float) -> str:
    """What an interval says of a difference: "gains" above zero, "loses" below, else "within noise"."""
    return "gains" if low > 0 else "loses" if high < 0 else "within noise"


def verdict(delta: float, low: float, high: float, images: int, level: float = LEVEL) -> str:
    """A difference in words, from its interval (:func:`conclusion`)."""
    ci = f"{level:.0%} CI {low:+.2f}..{high:+.2f}"
    said = conclusion(low, high)
    if said == "gains":
        return f"gains {delta:+.2f} points ({ci}, {images} images)"
    if said == "loses":
        return f"loses {-delta:.2f} points ({ci}, {images} images)"
    return f"is within noise on {images} images ({delta:+.2f} points, {ci})"


def verdict_of(row) -> str:
    """:func:`verdict` of a row of :func:`paired_bootstrap`'s table."""
    return verdict(row["Δ"], row["Δ low"], row["Δ high"], int(row["images"]))
