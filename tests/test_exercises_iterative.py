"""Plausible wrong answers to chapter 03's exercise (WRONG_ANSWERS, run by tests/test_exercises.py), and
what is particular to its check: the hinted rule is the module's, a truth value is never printed, and
an answer that erases in place cannot change the next case."""
from __future__ import annotations

import numpy as np

from infercam.exercises import exercise, run_checks

NAME = "erase_step"


def _per_class(raw):
    return raw / (raw.max(axis=(1, 2), keepdims=True) + 1e-5)


def _step(new, pass_number, stop_fraction, max_passes):
    return new, bool(new.mean() < stop_fraction or pass_number == max_passes)


def step_with_mean_over_classes(raw, erased, pass_number, erase_threshold=0.7, stop_fraction=0.01, max_passes=5):
    new = (_per_class(raw).mean(axis=0) >= erase_threshold) & ~erased
    return _step(new, pass_number, stop_fraction, max_passes)


def step_normalised_over_all_classes(raw, erased, pass_number, erase_threshold=0.7, stop_fraction=0.01, max_passes=5):
    new = ((raw / (raw.max() + 1e-5)).max(axis=0) >= erase_threshold) & ~erased
    return _step(new, pass_number, stop_fraction, max_passes)


def step_counting_erased_pixels_again(raw, erased, pass_number, erase_threshold=0.7, stop_fraction=0.01, max_passes=5):
    new = _per_class(raw).max(axis=0) >= erase_threshold
    return _step(new, pass_number, stop_fraction, max_passes)


def step_stopping_at_the_fraction(raw, erased, pass_number, erase_threshold=0.7, stop_fraction=0.01, max_passes=5):
    new = (_per_class(raw).max(axis=0) >= erase_threshold) & ~erased
    return new, bool(new.mean() <= stop_fraction or pass_number == max_passes)


def step_share_of_unerased_pixels(raw, erased, pass_number, erase_threshold=0.7, stop_fraction=0.01, max_passes=5):
    new = (_per_class(raw).max(axis=0) >= erase_threshold) & ~erased
    return new, bool(new.sum() / (~erased).sum() < stop_fraction or pass_number == max_passes)


def step_ignoring_max_passes(raw, erased, pass_number, erase_threshold=0.7, stop_fraction=0.01, max_passes=5):
    new = (_per_class(raw).max(axis=0) >= erase_threshold) & ~erased
    return new, bool(new.mean() < stop_fraction)


def step_counting_passes_from_zero(raw, erased, pass_number, erase_threshold=0.7, stop_fraction=0.01, max_passes=5):
    """Reads pass_number as the passes before this one: stops one pass early."""
    new = (_per_class(raw).max(axis=0) >= erase_threshold) & ~erased
    return _step(new, pass_number + 1, stop_fraction, max_passes)


WRONG_ANSWERS = [
    (NAME, step_with_mean_over_classes, "a pixel is new when SOME class is high there"),
    (NAME, step_normalised_over_all_classes, "two classes on different scales (each map normalised by its own maximum)"),
    (NAME, step_counting_erased_pixels_again, "pixels erased by an earlier pass are not new"),
    (NAME, step_stopping_at_the_fraction, "new activation exactly at the stop fraction (stop only below it)"),
    (NAME, step_share_of_unerased_pixels, "most of the image erased before: the share is of the whole image"),
    (NAME, step_counting_passes_from_zero, "the pass before the last allowed one: not done yet"),
    (NAME, step_ignoring_max_passes, "the last allowed pass: done whatever it finds"),
]


def test_the_hinted_rule_is_the_modules_rule():
    # catches the exercise's hint drifting from IterativeInference._add_pass (the reference)
    def hinted(raw, erased, pass_number, erase_threshold=0.7, stop_fraction=0.01, max_passes=5):
        new = (_per_class(raw).max(axis=0) >= erase_threshold) & ~erased
        return _step(new, pass_number, stop_fraction, max_passes)

    assert run_checks(NAME, hinted).passed


def test_the_message_never_shows_the_expected_answer():
    # catches a check that prints the reference's mask or truth value
    for wrong in (step_counting_erased_pixels_again, step_ignoring_max_passes):
        said = run_checks(NAME, wrong).message.split("Hint:")[0]
        assert "True" not in said and "False" not in said and "[[" not in said


def test_a_case_cannot_be_changed_by_the_answer():
    # catches an answer that erases in place (erased |= new) changing the next case's input
    def in_place(raw, erased, pass_number, erase_threshold=0.7, stop_fraction=0.01, max_passes=5):
        new = (_per_class(raw).max(axis=0) >= erase_threshold) & ~erased
        erased |= new
        return _step(new, pass_number, stop_fraction, max_passes)

    assert run_checks(NAME, in_place).passed
    assert not np.any(exercise(NAME).cases[0].args[1])
