"""Checks for the book's exercises, in the manner of Kaggle's learntools: ``check(name, your_function)``
runs your function on small cases that the reference implementation passes (hand-made ones and edge
cases) and says that all pass, or which case failed and a hint. It never shows the expected answer.

Each chapter's exercises live in a module of this package (``split_unite.py`` for chapter 02, ...),
which registers one :class:`Exercise` per implement exercise with :func:`register`. In a notebook::

    from infercam.exercises import check, hint
    hint("quadrant_boxes")                    # the general hint, if you are stuck
    check("quadrant_boxes", my_quadrant_boxes)

Your function is called on copies of each case's inputs, so it cannot change a case for the next one.
"""
from __future__ import annotations

import copy
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Case", "CheckResult", "Exercise", "check", "exercise", "hint", "names", "register", "run_checks"]


@dataclass(frozen=True)
class Case:
    """One input of a check: what it is (shown to the student), its arguments, and a hint for when it fails."""

    description: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    hint: str = ""


@dataclass(frozen=True)
class Exercise:
    """An implement exercise: the reference function, the cases, and the hint shown by :func:`hint`.

    ``difference(got, expected)`` says in words how a result differs from the reference's (``None``
    when it does not); the default compares arrays, numbers and containers with a tolerance, and an
    exercise whose answer may come in any order gives its own.
    """

    name: str
    chapter: str
    reference: Callable
    cases: tuple[Case, ...]
    hint: str
    difference: Callable[[Any, Any], str | None] | None = None


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    message: str
    failed_case: str | None = None  # the description of the first case that failed


_REGISTRY: dict[str, Exercise] = {}
_loaded = False


def register(ex: Exercise) -> Exercise:
    if ex.name in _REGISTRY and _REGISTRY[ex.name] is not ex:
        raise ValueError(f"two exercises are named {ex.name!r} ({_REGISTRY[ex.name].chapter} and {ex.chapter})")
    if not ex.cases:
        raise ValueError(f"exercise {ex.name!r} has no cases: a check that runs nothing cannot fail")
    _REGISTRY[ex.name] = ex
    return ex


def _load_all() -> None:
    # Each chapter's module registers its exercises when imported; import them all once.
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True


def names() -> list[str]:
    """Every registered exercise's name, in chapter order."""
    _load_all()
    return sorted(_REGISTRY, key=lambda name: (_REGISTRY[name].chapter, name))


def exercise(name: str) -> Exercise:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"no exercise named {name!r}; the exercises are: {', '.join(names())}")
    return _REGISTRY[name]


def describe_difference(got: Any, expected: Any, where: str = "the result", atol: float = 1e-5) -> str | None:
    """How ``got`` differs from ``expected``, in words that do not give ``expected`` away; ``None`` if it does not."""
    if hasattr(expected, "detach"):  # a torch tensor
        expected = expected.detach().cpu().numpy()
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where} should be a dict, not a {type(got).__name__}"
        if set(got) != set(expected):
            return f"{where} has keys {sorted(map(str, got))}, which are not the keys this case needs"
        for key in expected:
            found = describe_difference(got[key], expected[key], f"{where}[{key!r}]", atol)
            if found:
                return found
        return None
    if isinstance(expected, (tuple, list)) and not isinstance(got, np.ndarray):
        if not isinstance(got, (tuple, list)):
            return f"{where} should be a {type(expected).__name__}, not a {type(got).__name__}"
        if len(got) != len(expected):
            return f"{where} has {len(got)} items, which is not the number this case needs"
        for index, (item, wanted) in enumerate(zip(got, expected)):
            found = describe_difference(item, wanted, f"{where}[{index}]", atol)
            if found:
                return found
        return None
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        got_array, expected_array = np.asarray(got), np.asarray(expected)
        if got_array.shape != expected_array.shape:
            return f"{where} has shape {got_array.shape}, which is not the shape this case needs"
        if expected_array.dtype == bool or got_array.dtype == bool:
            wrong = got_array.astype(bool) != expected_array.astype(bool)
        else:
            wrong = ~np.isclose(got_array.astype(float), expected_array.astype(float), atol=atol, rtol=1e-4, equal_nan=True)
        if wrong.any():
            first = tuple(int(i) for i in np.argwhere(wrong)[0])
            return f"{where} differs at {int(wrong.sum())} of {wrong.size} positions (the first at index {first})"
        return None
    if isinstance(expected, (bool, np.bool_)):
        return None if bool(got) == bool(expected) and isinstance(got, (bool, np.bool_)) else f"{where} is not the truth value this case needs"
    if isinstance(expected, (int, float, np.number)):
        try:
            close = bool(np.isclose(float(got), float(expected), atol=atol, rtol=1e-4))
        except (TypeError, ValueError):
            return f"{where} should be a number, not a {type(got).__name__}"
        return None if close else f"{where} is {got!r}, which is not the value this case needs"
    return None if got == expected else f"{where} is not what this case needs"


def _call(function: Callable, case: Case) -> Any:
    return function(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))


def run_checks(name: str, function: Callable) -> CheckResult:
    """Run ``function`` on exercise ``name``'s cases; the result says which case failed and why, in words."""
    ex = exercise(name)
    compare = ex.difference or describe_difference
    for number, case in enumerate(ex.cases, start=1):
        expected = _call(ex.reference, case)
        label = f"case {number} of {len(ex.cases)} ({case.description})"
        try:
            got = _call(function, case)
        except NotImplementedError:
            return CheckResult(False, f"Not written yet: {getattr(function, '__name__', 'your function')} still raises "
                                      f"NotImplementedError. Replace the `raise` with your code.\nHint: {ex.hint}", case.description)
        except Exception as error:  # the student's code: any error is a failed case, said in words
            return CheckResult(False, f"Incorrect: {label} raised {type(error).__name__}: {error}\n"
                                      f"Hint: {case.hint or ex.hint}", case.description)
        found = compare(got, expected)
        if found:
            return CheckResult(False, f"Incorrect: {label}: {found}.\nHint: {case.hint or ex.hint}", case.description)
    return CheckResult(True, f"Correct: all {len(ex.cases)} cases pass ({'; '.join(c.description for c in ex.cases)}).")


def check(name: str, function: Callable) -> None:
    """Print whether ``function`` passes exercise ``name``'s cases, or which case failed and a hint."""
    print(run_checks(name, function).message)


def hint(name: str) -> None:
    """Print exercise ``name``'s hint."""
    print(f"Hint: {exercise(name).hint}")
