"""Checks for the exercises of chapter 02 (split & unite): the four quadrants about a centre of mass,
and the union of the patches' maps with the paper's per-patch normalisation."""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from infercam.cam import max_normalise
from infercam.exercises import Case, Exercise, register
from infercam.split_unite import Patch, normalise_per_class, quadrant_boxes, rectangle_boxes, unite

CHAPTER = "02_split_unite"


def _boxes_difference(got, expected) -> str | None:
    """The four boxes may come in any order; each must be four whole numbers."""
    try:
        boxes = [tuple(box) for box in got]
        if any(len(box) != 4 or any(float(v) != int(v) for v in box) for box in boxes):
            raise ValueError
    except (TypeError, ValueError):
        return "the result should be a list of four (top, left, bottom, right) boxes of whole pixels"
    if len(boxes) != len(expected):
        return f"the result has {len(boxes)} boxes, not 4"
    wanted = Counter(tuple(int(v) for v in box) for box in expected)
    wrong = list((Counter(tuple(int(v) for v in box) for box in boxes) - wanted).elements())
    if wrong:
        return (f"{len(wrong)} of your boxes are not among the quadrants this case needs "
                f"(the first: {wrong[0]})")
    return None


register(Exercise(
    name="quadrant_boxes",
    chapter=CHAPTER,
    reference=quadrant_boxes,
    cases=(
        Case("a centre on pixel boundaries in a 32x32 image", args=((16.0, 16.0), 32, 32), kwargs=dict(min_size=4)),
        Case("a centre with fractions below and above .5", args=((9.3, 12.7), 24, 20), kwargs=dict(min_size=2),
             hint="Round to the nearest boundary; int() cuts the fraction off instead."),
        Case("a centre halfway between two pixels (.5 rounds up)", args=((10.5, 6.5), 24, 20), kwargs=dict(min_size=2),
             hint="Round the centre to the nearest pixel boundary with .5 going up: np.floor(c + 0.5). Python's "
                  "round() sends .5 to the even neighbour (round(6.5) == 6)."),
        Case("a centre on the border (min_size keeps the split line off the edge)", args=((0.0, 19.0), 20, 20),
             kwargs=dict(min_size=4),
             hint="Keep each split line at least min_size pixels from both edges of the image: clip it to "
                  "[min_size, size - min_size]."),
        Case("a buffer that reaches past the image's edge", args=((2.0, 9.6), 16, 12), kwargs=dict(buffer=3, min_size=2),
             hint="Each quadrant reaches `buffer` pixels past the split lines into its neighbours, and is then "
                  "clipped to the image: no coordinate below 0 or beyond the height/width."),
        Case("odd sizes with a buffer", args=((14.2, 3.9), 21, 13), kwargs=dict(buffer=2, min_size=5),
             hint="Grow every quadrant by the buffer on its sides that face a split line (both lines), and clip."),
    ),
    hint="Find the split row and column (the centre rounded to a pixel boundary, .5 up, kept min_size pixels "
         "from the edges); the four quadrants are the half-open boxes on either side of them, each reaching "
         "`buffer` pixels across the split lines and clipped to the image.",
    difference=_boxes_difference,
))


def unite_patches(patch_maps: list, boxes: list, shape: tuple[int, int]) -> np.ndarray:
    """The reference of ``my_unite``: each patch's raw maps (K, h, w) max-normalised on their own, pasted
    into the image and united by element-wise maximum (:func:`infercam.split_unite.unite`), then each
    class's united map max-normalised once more."""
    class_ids = tuple(range(len(patch_maps[0])))
    normalised = [(Patch(*box, class_ids), max_normalise(torch.as_tensor(np.asarray(maps), dtype=torch.float32)).numpy())
                  for maps, box in zip(patch_maps, boxes)]
    return normalise_per_class(unite(normalised, class_ids, tuple(shape)))


def _patch_maps(boxes: list, classes: int, seed: int, peaks: list[float]) -> list[np.ndarray]:
    """Non-negative raw maps for each box, patch i peaking at ``peaks[i]`` (times the class's factor)."""
    rng = np.random.default_rng(seed)
    maps = []
    for (top, left, bottom, right), peak in zip(boxes, peaks):
        values = rng.uniform(0, 1, size=(classes, bottom - top, right - left)).round(3)
        maps.append(peak * values * np.array([1.0, 20.0][:classes])[:, None, None])
    return maps


_QUADRANTS = quadrant_boxes((3.0, 4.0), 6, 8, min_size=1)
_OVERLAPPING = quadrant_boxes((3.0, 4.0), 6, 8, buffer=2, min_size=1)
_EMPTY_PATCH = _patch_maps(_QUADRANTS, 1, 2, [1.0, 3.0, 0.5, 2.0])
_EMPTY_PATCH[2] = np.zeros_like(_EMPTY_PATCH[2])  # the classifier finds nothing of the class there
_RECTANGLE = rectangle_boxes((2.2, 1.6), (5.1, 4.4), 7, 5, min_size=1)

register(Exercise(
    name="unite",
    chapter=CHAPTER,
    reference=unite_patches,
    cases=(
        Case("one class, four quadrants that do not overlap, the patches on different scales",
             args=(_patch_maps(_QUADRANTS, 1, 0, [1.0, 4.0, 0.25, 2.0]), _QUADRANTS, (6, 8)),
             hint="The paper max-normalises each patch's map on its own (each becomes 1 at its own peak) "
                  "BEFORE the union: a weak patch counts as much as a strong one."),
        Case("overlapping patches (a buffer): where they overlap the larger value wins",
             args=(_patch_maps(_OVERLAPPING, 1, 1, [1.0, 1.0, 1.0, 1.0]), _OVERLAPPING, (6, 8)),
             hint="Where patches overlap, keep the element-wise maximum of their (normalised) maps, not the last "
                  "one pasted and not their sum or mean."),
        Case("a patch where the classifier finds nothing of the class",
             args=(_EMPTY_PATCH, _QUADRANTS, (6, 8)),
             hint="A patch's map can be all zeros: dividing by (maximum + 1e-5), as max_normalise does, keeps it "
                  "zeros instead of 0 / 0."),
        Case("two classes, the rectangle between their centres in every patch (odd sizes 7x5)",
             args=(_patch_maps(_RECTANGLE, 2, 3, [1.0, 2.0, 0.5, 3.0]), _RECTANGLE, (7, 5)),
             hint="Normalise each class of each patch by that class's own maximum in that patch, and each class "
                  "of the united map by its own maximum."),
    ),
    hint="For each patch: divide each class's map by its maximum + 1e-5. Start from a canvas of -inf (or zeros: "
         "the maps are >= 0), and for each patch take np.maximum of the canvas's box region and the patch's "
         "maps. Finally divide each class's united map by its maximum + 1e-5.",
))
