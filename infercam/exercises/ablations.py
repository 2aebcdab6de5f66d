"""Checks for chapter 05 (the ablation grid): the paired bootstrap interval of a difference of mIoU,
the images resampled with replacement, the same resamples for both methods."""
from __future__ import annotations

import numpy as np

from infercam.bootstrap import interval, mean_ious, resampled_mious
from infercam.exercises import Case, Exercise, register


def paired_bootstrap_interval(confusions, reference_confusions, seed: int, resamples: int = 1000,
                              level: float = 0.95) -> tuple[float, float, float]:
    """(Δ, low, high) in points: the mIoU of ``confusions`` (images, L, L) minus that of
    ``reference_confusions`` on all the images, and the central ``level`` of the same difference over
    resamples of the images, drawn as ``np.random.default_rng(seed).integers(0, images, size=(resamples,
    images))`` (one row of image indices per resample). :func:`infercam.bootstrap.paired_bootstrap` on
    these draws (it draws its counts otherwise)."""
    confusions, reference = np.asarray(confusions), np.asarray(reference_confusions)
    images = len(confusions)
    draws = np.random.default_rng(seed).integers(0, images, size=(resamples, images))
    counts = np.zeros((resamples, images), dtype=np.int64)
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)  # how often each image is drawn
    low, high = interval(100 * (resampled_mious(confusions, counts) - resampled_mious(reference, counts)), level)
    return 100 * float(mean_ious(confusions.sum(axis=0)) - mean_ious(reference.sum(axis=0))), low, high


def _confusions(images: int, labels: int, seed: int, sizes=None) -> np.ndarray:
    """(images, labels, labels) counts: mostly right (a heavy diagonal), each image ``sizes[i]`` times larger."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 20, (images, labels, labels)) + np.eye(labels, dtype=int) * rng.integers(20, 80, (images, 1, 1))
    return counts * (np.ones(images, dtype=int) if sizes is None else np.asarray(sizes))[:, None, None]


_BETTER = _confusions(8, 3, seed=1)
_DIAGONAL = np.arange(3)
_LOST = _BETTER[:, _DIAGONAL, _DIAGONAL] // 2
_WORSE = _BETTER.copy()
_WORSE[:, _DIAGONAL, _DIAGONAL] -= _LOST  # half of each class's right pixels taken for the next class
_WORSE[:, _DIAGONAL, (_DIAGONAL + 1) % 3] += _LOST
_MIXED = _confusions(8, 4, seed=2)
_MIXED_OTHER = _confusions(8, 4, seed=3)
_SIZES = [1, 1, 1, 1, 1, 40]  # one large image: the summed confusions weigh it, a mean over images would not
_ABSENT = _confusions(6, 4, seed=4)
_ABSENT[:4, 3, :] = 0  # class 3 in the last two images only
_ABSENT[:4, :, 3] = 0

register(Exercise(
    name="paired_bootstrap_interval",
    chapter="05_ablations",
    reference=paired_bootstrap_interval,
    cases=(
        Case("the same maps for both methods: every resampled difference is zero", args=(_MIXED, _MIXED.copy(), 1),
             hint="Both methods are measured on the SAME drawn images in each resample (one draw of indices, used "
                  "for both), so identical maps differ by exactly 0 in every resample."),
        Case("one image: every resample draws it alone", args=(_BETTER[:1], _WORSE[:1], 2),
             hint="Δ is the difference on all the images; when every resample holds the same images, the interval "
                  "is that single point."),
        Case("one image 40 times larger than the others", args=(_confusions(6, 3, 5, _SIZES), _confusions(6, 3, 6, _SIZES), 4),
             hint="A resample's mIoU is that of its drawn images' confusions added up (an image drawn twice counts "
                  "twice), not the mean of the images' own mIoUs; Δ is measured on all the images, not on the resamples."),
        Case("eight images, three labels, one method better on every image", args=(_BETTER, _WORSE, 0)),
        Case("two methods, each better on some images, 300 resamples", args=(_MIXED, _MIXED_OTHER, 5),
             kwargs={"resamples": 300}),
        Case("a class present in two images only", args=(_ABSENT, _confusions(6, 4, 7) * (_ABSENT > 0), 6),
             hint="mean_ious averages over the classes present in the summed confusions: sum first, then take the mIoU."),
        Case("a 90% interval (level=0.9)", args=(_MIXED, _MIXED_OTHER, 3), kwargs={"level": 0.9},
             hint="The interval holds the central `level` of the resampled differences: (1 - level) / 2 cut from each end."),
    ),
    hint="Draw all the resamples at once as the exercise says and use each row of draws for both methods; a "
         "resample's mIoU is mean_ious of its images' confusions summed (x100 for points); the interval is the "
         "central `level` of the resampled differences, Δ the difference on all the images.",
))
