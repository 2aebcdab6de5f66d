"""Checks for the exercises of chapter 03 (iterative inference): the erase-and-stop rule of one pass."""
from __future__ import annotations

import numpy as np
import torch

from infercam.exercises import Case, Exercise, register
from infercam.iterative import IterativeInference, IterativePass, _Iteration

CHAPTER = "03_iterative"


def erase_step(raw: np.ndarray, erased: np.ndarray, pass_number: int, erase_threshold: float = 0.7,
               stop_fraction: float = 0.01, max_passes: int = 5) -> tuple[np.ndarray, bool]:
    """The reference of ``my_erase_step``: (the pass's new activation, whether the image is done), read
    off :meth:`infercam.iterative.IterativeInference._add_pass` run on one pass's raw maps (K, H, W),
    after ``pass_number - 1`` earlier passes that erased ``erased``."""
    method = IterativeInference(erase_threshold=erase_threshold, stop_fraction=stop_fraction, max_passes=max_passes)
    state = _Iteration(np.zeros((*erased.shape, 3), dtype=np.uint8), list(range(len(raw))))
    state.erased = np.array(erased, dtype=bool)
    state.passes = [IterativePass(np.zeros(0), np.zeros(0, dtype=bool), 0.0)] * (pass_number - 1)  # stand-ins
    method._add_pass(state, torch.as_tensor(np.asarray(raw), dtype=torch.float32))
    return state.passes[-1].new_erased, bool(state.done)


def _blob(shape, top, left, bottom, right, value=1.0, background=0.1) -> np.ndarray:
    """A raw map: ``value`` on the box, ``background`` elsewhere (no value near a threshold)."""
    raw = np.full(shape, background)
    raw[top:bottom, left:right] = value
    return raw


def _none_erased(height: int, width: int) -> np.ndarray:
    return np.zeros((height, width), dtype=bool)


def _erased_box(height, width, top, left, bottom, right) -> np.ndarray:
    erased = _none_erased(height, width)
    erased[top:bottom, left:right] = True
    return erased


_TWO_BLOBS = np.stack([_blob((10, 10), 1, 1, 4, 4, 2.0), _blob((10, 10), 6, 5, 9, 9, 0.3, 0.02)])

register(Exercise(
    name="erase_step",
    chapter=CHAPTER,
    reference=erase_step,
    cases=(
        Case("the first pass, one class, an object on 12% of the image",
             args=(_blob((10, 10), 2, 3, 6, 6)[None], _none_erased(10, 10), 1)),
        Case("a pixel is new when SOME class is high there",
             args=(np.stack([_blob((10, 10), 0, 0, 2, 10), _blob((10, 10), 8, 0, 10, 10)]), _none_erased(10, 10), 1),
             hint="Take the maximum over the classes of the normalised maps, not their mean and not one class."),
        Case("two classes on different scales (each map normalised by its own maximum)",
             args=(_TWO_BLOBS, _none_erased(10, 10), 1),
             hint="Max-normalise each class's map on its own before comparing it with erase_threshold: a class "
                  "whose raw map is weak everywhere still reaches 1 at its own peak."),
        Case("pixels erased by an earlier pass are not new",
             args=(_blob((10, 10), 0, 0, 5, 5)[None], _erased_box(10, 10, 0, 0, 3, 5), 2),
             hint="New activation: at or above the threshold AND not erased before (~erased)."),
        Case("new activation exactly at the stop fraction (stop only below it)",
             args=(_blob((10, 10), 4, 4, 5, 5)[None], _none_erased(10, 10), 1),
             hint="The image is done when the new share is strictly below stop_fraction (or at the last pass)."),
        Case("under the stop fraction: the image is done",
             args=(_blob((10, 10), 4, 4, 6, 6)[None], _none_erased(10, 10), 1), kwargs=dict(stop_fraction=0.05),
             hint="Compare the share of the image that is new with stop_fraction: under it, the image is done."),
        Case("most of the image erased before: the share is of the whole image",
             args=(_blob((10, 10), 0, 0, 10, 10, background=1.0)[None], _erased_box(10, 10, 0, 0, 9, 10), 3),
             kwargs=dict(stop_fraction=0.2),
             hint="The new share is the number of new pixels over ALL the image's pixels, erased ones included."),
        Case("the pass before the last allowed one: not done yet",
             args=(_blob((10, 10), 2, 2, 8, 8)[None], _none_erased(10, 10), 2), kwargs=dict(max_passes=3),
             hint="pass_number counts this pass too (1 for the first): the image is done at pass_number == max_passes."),
        Case("the last allowed pass: done whatever it finds",
             args=(_blob((10, 10), 2, 2, 8, 8)[None], _none_erased(10, 10), 3), kwargs=dict(max_passes=3),
             hint="After max_passes passes the image is done, however much is new."),
        Case("odd sizes (7x5), another threshold",
             args=(np.stack([_blob((7, 5), 1, 1, 6, 3, 1.0, 0.55), _blob((7, 5), 0, 3, 2, 5, 4.0, 0.2)]),
                   _erased_box(7, 5, 1, 1, 2, 3), 2), kwargs=dict(erase_threshold=0.5, stop_fraction=0.1)),
    ),
    hint="normalised = raw / (each class's maximum + 1e-5); new = (normalised.max(axis=0) >= erase_threshold) "
         "& ~erased; done = new.mean() < stop_fraction or pass_number == max_passes. Return (new, done).",
))
