"""Plausible wrong answers to chapter 02's exercises (WRONG_ANSWERS), each with the case that must
catch it (tests/test_exercises.py runs them), and what is particular to its checks: boxes in any order."""
from __future__ import annotations

import numpy as np

from infercam.exercises import exercise, run_checks


# --- wrong answers of my_quadrant_boxes ---

def _quadrants(y, x, height, width, buffer, clip=True):
    low = (lambda v: max(v, 0)) if clip else (lambda v: v)
    high_y = (lambda v: min(v, height)) if clip else (lambda v: v)
    high_x = (lambda v: min(v, width)) if clip else (lambda v: v)
    return [(0, 0, high_y(y + buffer), high_x(x + buffer)), (0, low(x - buffer), high_y(y + buffer), width),
            (low(y - buffer), 0, height, high_x(x + buffer)), (low(y - buffer), low(x - buffer), height, width)]


def _kept_off_edges(line, size, min_size):
    return int(min(max(line, min_size), size - min_size))


def quadrants_with_python_round(centre, height, width, buffer=0, min_size=16):
    """round() sends .5 to the even neighbour."""
    return _quadrants(_kept_off_edges(round(centre[0]), height, min_size),
                      _kept_off_edges(round(centre[1]), width, min_size), height, width, buffer)


def quadrants_truncating_the_centre(centre, height, width, buffer=0, min_size=16):
    """int() cuts the fraction off."""
    return _quadrants(_kept_off_edges(int(centre[0]), height, min_size),
                      _kept_off_edges(int(centre[1]), width, min_size), height, width, buffer)


def quadrants_without_min_size(centre, height, width, buffer=0, min_size=16):
    """A centre on the border leaves a quadrant with no rows or columns."""
    return _quadrants(int(np.floor(centre[0] + 0.5)), int(np.floor(centre[1] + 0.5)), height, width, buffer)


def quadrants_not_clipped(centre, height, width, buffer=0, min_size=16):
    """The buffer reaches past the image: negative or too large coordinates."""
    return _quadrants(_kept_off_edges(np.floor(centre[0] + 0.5), height, min_size),
                      _kept_off_edges(np.floor(centre[1] + 0.5), width, min_size), height, width, buffer, clip=False)


def quadrants_without_buffer(centre, height, width, buffer=0, min_size=16):
    return _quadrants(_kept_off_edges(np.floor(centre[0] + 0.5), height, min_size),
                      _kept_off_edges(np.floor(centre[1] + 0.5), width, min_size), height, width, 0)


# --- wrong answers of my_unite ---

def _normalised(maps):
    return maps / (maps.max(axis=(1, 2), keepdims=True) + 1e-5)


def _paste(patch_maps, boxes, shape, combine, normalise=_normalised):
    canvas = np.zeros((len(patch_maps[0]), *shape))
    for maps, (top, left, bottom, right) in zip(patch_maps, boxes):
        region = canvas[:, top:bottom, left:right]
        canvas[:, top:bottom, left:right] = combine(region, normalise(np.asarray(maps, dtype=float)))
    return canvas


def unite_normalising_after_the_union_only(patch_maps, boxes, shape):
    """The common-scale variant: each patch's raw maps, normalised once after the union."""
    return _normalised(_paste(patch_maps, boxes, shape, np.maximum, normalise=lambda maps: maps))


def unite_last_patch_wins(patch_maps, boxes, shape):
    return _normalised(_paste(patch_maps, boxes, shape, lambda region, maps: maps))


def unite_summing_overlaps(patch_maps, boxes, shape):
    return _normalised(_paste(patch_maps, boxes, shape, np.add))


def unite_without_guard(patch_maps, boxes, shape):
    with np.errstate(invalid="ignore"):
        united = _paste(patch_maps, boxes, shape, np.maximum,
                        normalise=lambda maps: maps / maps.max(axis=(1, 2), keepdims=True))
    return united / united.max(axis=(1, 2), keepdims=True)


def unite_normalising_over_all_classes(patch_maps, boxes, shape):
    """Each patch divided by its maximum over every class, not per class."""
    united = _paste(patch_maps, boxes, shape, np.maximum, normalise=lambda maps: maps / (maps.max() + 1e-5))
    return united / (united.max() + 1e-5)


WRONG_ANSWERS = [
    ("quadrant_boxes", quadrants_truncating_the_centre, "a centre with fractions below and above .5"),
    ("quadrant_boxes", quadrants_with_python_round, "a centre halfway between two pixels (.5 rounds up)"),
    ("quadrant_boxes", quadrants_without_min_size, "a centre on the border (min_size keeps the split line off the edge)"),
    ("quadrant_boxes", quadrants_not_clipped, "a buffer that reaches past the image's edge"),
    ("quadrant_boxes", quadrants_without_buffer, "a buffer that reaches past the image's edge"),
    ("unite", unite_normalising_after_the_union_only,
     "one class, four quadrants that do not overlap, the patches on different scales"),
    ("unite", unite_last_patch_wins, "overlapping patches (a buffer): where they overlap the larger value wins"),
    ("unite", unite_summing_overlaps, "overlapping patches (a buffer): where they overlap the larger value wins"),
    ("unite", unite_without_guard, "a patch where the classifier finds nothing of the class"),
    ("unite", unite_normalising_over_all_classes,
     "two classes, the rectangle between their centres in every patch (odd sizes 7x5)"),
]


def test_quadrants_may_come_in_any_order_but_not_twice():
    # catches an order-sensitive comparison, and one that takes four copies of one right box as right
    def reversed_quadrants(*args, **kwargs):
        return exercise("quadrant_boxes").reference(*args, **kwargs)[::-1]

    def one_quadrant_four_times(*args, **kwargs):
        return [exercise("quadrant_boxes").reference(*args, **kwargs)[0]] * 4

    assert run_checks("quadrant_boxes", reversed_quadrants).passed
    result = run_checks("quadrant_boxes", one_quadrant_four_times)
    assert not result.passed and "3 of your boxes" in result.message
