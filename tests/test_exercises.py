"""Every exercise's check (infercam.exercises), tested the same way: the reference passes; a stub that
raises NotImplementedError is told it is not written yet, with the hint; each plausible wrong answer
fails at the case written for its mistake, says "Incorrect" with a hint, and does not print the
expected answer; and every check rejects at least two wrong answers.

The wrong answers are the ``WRONG_ANSWERS`` lists of ``tests/test_exercises_<chapter>.py``:
``(exercise name, wrong function, description of the case that must catch it)``; those files keep
only what is particular to their chapter (e.g. an answer written out independently passes).
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from infercam.exercises import _call, exercise, names, run_checks

CHAPTER_TESTS = sorted(path.stem for path in Path(__file__).parent.glob("test_exercises_*.py"))
WRONG_ANSWERS = [entry for module in CHAPTER_TESTS for entry in importlib.import_module(module).WRONG_ANSWERS]


def stub(*args, **kwargs):
    raise NotImplementedError()


def _leaves(value):
    """The arrays and numbers inside a result (tuples, lists, dicts and tensors opened)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)) and value and all(isinstance(item, (int, float)) for item in value):
        return [np.asarray(value)]  # a box, a pair of numbers: it leaks as printed, e.g. "(0, 0, 8, 9)"
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [np.asarray(value)]


def shown_answer(message: str, expected) -> str | None:
    """The part of ``expected`` that ``message`` gives away, if any: an array as printed, or one of its
    non-trivial values to three decimals."""
    said = message.split("Hint:")[0]
    for leaf in _leaves(expected):
        printed = (np.array2string(leaf), str(leaf.tolist()), str(tuple(leaf.tolist())) if leaf.ndim == 1 else None)
        if leaf.size > 1 and any(form and form in said for form in printed):
            return np.array2string(leaf)
        if leaf.dtype.kind == "f":
            for value in leaf.ravel()[:50]:
                if value not in (0.0, 1.0) and np.isfinite(value) and f"{value:.3f}" in said:
                    return f"{value:.3f}"
    return None


@pytest.mark.parametrize("name", names())
def test_the_reference_passes_its_own_check(name):
    # Catches a case the reference cannot run (a wrong shape or dtype in the case).
    result = run_checks(name, exercise(name).reference)
    assert result.passed and result.message.startswith("Correct"), result.message


@pytest.mark.parametrize("name", names())
def test_a_stub_is_told_it_is_not_written_yet_with_the_hint(name):
    # Catches the student copy's NotImplementedError reported as a wrong answer, or without the hint.
    result = run_checks(name, stub)
    assert not result.passed
    assert result.message.startswith("Not written yet") and f"Hint: {exercise(name).hint}" in result.message


@pytest.mark.parametrize("name, wrong, failing_case", WRONG_ANSWERS,
                         ids=[f"{name}-{getattr(wrong, '__name__', 'wrong')}-{number}"
                              for number, (name, wrong, _) in enumerate(WRONG_ANSWERS)])
def test_a_plausible_wrong_answer_fails_at_the_case_that_shows_it_without_the_answer(name, wrong, failing_case):
    # Catches cases too weak to tell the mistake from the reference, and a message that prints the answer.
    result = run_checks(name, wrong)
    assert not result.passed
    assert result.failed_case == failing_case, result.message
    assert result.message.startswith("Incorrect") and "Hint:" in result.message
    case = next(case for case in exercise(name).cases if case.description == failing_case)
    assert shown_answer(result.message, _call(exercise(name).reference, case)) is None, result.message


@pytest.mark.parametrize("name", names())
def test_every_check_rejects_at_least_two_wrong_answers(name):
    # Catches an exercise added without the wrong answers that show its check can fail.
    assert sum(entry[0] == name for entry in WRONG_ANSWERS) >= 2, f"{name}: add wrong answers to its chapter's test file"


def test_shown_answer_sees_an_array_or_a_value_in_the_message():
    # Catches a leak detector that can never fire (the test above would then pass on any message).
    expected = (np.array([[0.25, 0.5], [0.75, 1.0]]), 0.4375)
    assert shown_answer(f"Incorrect: it should be {np.array2string(expected[0])}", expected)
    assert shown_answer("Incorrect: the mIoU should be 0.438 (rounded)", expected) == "0.438"
    assert shown_answer("Incorrect: the result differs at 3 of 4 positions.\nHint: 0.438", expected) is None
    assert shown_answer("Incorrect: your box (0, 0, 8, 9) should be (0, 0, 8, 10)", [(0, 0, 8, 10)]) == "[ 0  0  8 10]"
