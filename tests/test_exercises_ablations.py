"""The check of chapter 05's implement exercise (paired_bootstrap_interval): it passes the reference
and a loop written from the exercise's text, and its plausible wrong answers
(WRONG_ANSWERS), which tests/test_exercises.py runs with the reference and a stub."""
from __future__ import annotations

import numpy as np

from infercam.bootstrap import mean_ious
from infercam.exercises import exercise, run_checks
from infercam.exercises.ablations import paired_bootstrap_interval


def _miou(confusions, drawn=None):
    confusions = np.asarray(confusions)
    return 100 * float(mean_ious((confusions if drawn is None else confusions[drawn]).sum(axis=0)))


def _paired_draws(rng, images, resamples):
    draws = rng.integers(0, images, size=(resamples, images))
    return draws, draws


def _answer(confusions, reference, seed, resamples, level, draw=_paired_draws, statistic=_miou, tails=None, point=None):
    """A loop over resamples, as a student writes it; the keyword arguments put in one mistake each."""
    draws, other = draw(np.random.default_rng(seed), len(confusions), resamples)
    differences = [statistic(confusions, mine) - statistic(reference, theirs) for mine, theirs in zip(draws, other)]
    tail = 100 * (1 - level) / 2 if tails is None else tails
    low, high = np.percentile(differences, [tail, 100 - tail])
    delta = statistic(confusions) - statistic(reference) if point is None else point(differences)
    return delta, float(low), float(high)


def loop_from_the_text(confusions, reference, seed, resamples=1000, level=0.95):
    return _answer(confusions, reference, seed, resamples, level)


def unpaired(confusions, reference, seed, resamples=1000, level=0.95):
    # each method's images drawn on their own: the interval of two independent samples
    return _answer(confusions, reference, seed, resamples, level,
                   draw=lambda rng, images, count: (rng.integers(0, images, size=(count, images)),
                                                    rng.integers(0, images, size=(count, images))))


def mean_of_image_mious(confusions, reference, seed, resamples=1000, level=0.95):
    # averages each image's own mIoU instead of the mIoU of the summed confusions
    def statistic(stack, drawn=None):
        stack = np.asarray(stack) if drawn is None else np.asarray(stack)[drawn]
        return 100 * float(mean_ious(stack).mean())
    return _answer(confusions, reference, seed, resamples, level, statistic=statistic)


def level_ignored(confusions, reference, seed, resamples=1000, level=0.95):
    return _answer(confusions, reference, seed, resamples, level, tails=2.5)


def delta_from_the_resamples(confusions, reference, seed, resamples=1000, level=0.95):
    # reports the mean of the resampled differences instead of the difference on all the images
    return _answer(confusions, reference, seed, resamples, level, point=np.mean)


def without_replacement(confusions, reference, seed, resamples=1000, level=0.95):
    # a permutation of the images: every resample holds each image once, so the interval is a point
    def permutations(rng, images, count):
        draws = np.array([rng.permutation(images) for _ in range(count)])
        return draws, draws
    return _answer(confusions, reference, seed, resamples, level, draw=permutations)


CASES = [case.description for case in exercise("paired_bootstrap_interval").cases]


def test_the_reference_and_a_loop_written_from_the_exercise_pass():
    # Catches cases whose expected numbers depend on the reference's vectorised code path (counts of
    # draws) rather than on the draws the exercise prescribes.
    assert run_checks("paired_bootstrap_interval", paired_bootstrap_interval).passed
    assert run_checks("paired_bootstrap_interval", loop_from_the_text).passed


WRONG_ANSWERS = [
    ("paired_bootstrap_interval", unpaired, CASES[0]),  # identical maps, yet nonzero resampled differences
    ("paired_bootstrap_interval", mean_of_image_mious, CASES[2]),  # a large image counts as much as a small one
    ("paired_bootstrap_interval", delta_from_the_resamples, CASES[2]),
    ("paired_bootstrap_interval", without_replacement, CASES[2]),  # every resample holds each image once: the interval is a point
    ("paired_bootstrap_interval", level_ignored, CASES[6]),  # right at 95%, wrong at 90%
]
