"""Checks for chapter 04 (the combined module): infer each split & unite patch with the inner method,
the patches of one size in one batch, unite by maximum and normalise each class."""
from __future__ import annotations

import numpy as np

from infercam.exercises import Case, Exercise, register
from infercam.split_unite import Patch, SplitUnite, normalise_per_class, quadrant_boxes, rectangle_boxes, unite


class StackingInference:
    """A stand-in for iterative inference on a batch of crops, ``(crops, classes) -> [maps (K_i, h, w)]``:
    class c's map is the crop's colour channel ``c % 3`` times ``c + 1``, max-normalised within each crop
    (the paper's rule) unless ``normalise`` is False (the classifier's common scale). Like a network's
    forward it stacks its crops into one tensor, so they must all have one size."""

    def __init__(self, normalise: bool = True):
        self.normalise = normalise

    def __call__(self, crops, classes) -> list[np.ndarray]:
        if len({np.shape(crop) for crop in crops}) > 1:
            raise ValueError("crops of different sizes cannot be stacked into one batch")
        maps = [np.stack([crop[..., c % 3].astype(np.float32) * (c + 1) for c in ids]) for crop, ids in zip(crops, classes)]
        return [m / (m.max(axis=(1, 2), keepdims=True) + 1e-5) for m in maps] if self.normalise else maps


class _BatchMethod:
    """``infer`` in the call shape of infercam's methods (``batch(model, images, class_ids)``)."""

    def __init__(self, infer):
        self.infer = infer

    def batch(self, model, crops, classes):
        return self.infer(crops, classes)


def combined_maps(infer, image: np.ndarray, patches: list[Patch], class_ids) -> np.ndarray:
    """The combined module's maps (K, H, W) of ``class_ids`` from the planned ``patches``: what
    :meth:`infercam.split_unite.SplitUnite.run` does once the patches are planned."""
    patch_maps = SplitUnite(_BatchMethod(infer)).infer_patches(None, image, patches)
    return normalise_per_class(unite(patch_maps, class_ids, image.shape[:2]))


def _image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth ramp with a little noise: each quadrant's maximum differs, so normalising in a patch
    and normalising over the whole image give different maps."""
    ramp = np.add.outer(9 * np.arange(height), 5 * np.arange(width))[..., None] + np.array([0, 30, 60])
    noise = np.random.default_rng(seed).integers(0, 12, (height, width, 3))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def _patches(boxes, class_ids) -> list[Patch]:
    return [Patch(*box, tuple(class_ids)) for box in boxes]


_IMAGE = _image(8, 10, seed=0)
_NO_BLUE = _IMAGE.copy()
_NO_BLUE[..., 2] = 0  # class 5 answers to the blue channel (5 % 3 = 2): it finds nothing anywhere
_SQUARE = _image(8, 8, seed=1)
_THREE = [14, 0, 7]
_PER_CLASS = [patch for c, centre in zip(_THREE, [(2.2, 3.1), (5.4, 6.8), (3.9, 2.2)])
              for patch in _patches(quadrant_boxes(centre, 8, 10, min_size=2), [c])]

register(Exercise(
    name="combined_maps",
    chapter="04_combined",
    reference=combined_maps,
    cases=(
        Case("one class: four quadrants of different sizes",
             args=(StackingInference(), _IMAGE, _patches(quadrant_boxes((2.6, 6.2), 8, 10, min_size=2), [11]), [11]),
             hint="Infer each patch's own crop, as if it were a whole image: its map is normalised within the patch, "
                  "not within the image. The inference stacks its crops, so call it once per size of crop."),
        Case("quadrants of two sizes, alternating (the centre halfway down, left of the middle)",
             args=(StackingInference(), _IMAGE, _patches(quadrant_boxes((3.5, 3.5), 8, 10, min_size=2), [6]), [6]),
             hint="Grouping the crops by size reorders them: give each patch back its own maps."),
        Case("two classes: every patch holds the rectangle between the centres, so the patches overlap",
             args=(StackingInference(), _IMAGE, _patches(rectangle_boxes((2.0, 3.0), (5.0, 7.0), 8, 10, min_size=2), [4, 15]),
                   [4, 15]),
             hint="Where patches overlap, a pixel keeps the strongest of the patches' answers (not their sum, "
                  "not the last one written)."),
        Case("three classes, each split about its own centre: a patch gives the map of one class only",
             args=(StackingInference(), _IMAGE, _PER_CLASS, _THREE),
             hint="Ask each patch for its own class_ids only (such a patch gives one map), and put each map in the row "
                  "of its class's position in class_ids."),
        Case("patches on the classifier's common scale (the inference does not normalise)",
             args=(StackingInference(normalise=False), _IMAGE,
                   _patches(rectangle_boxes((3.2, 2.6), (4.7, 6.1), 8, 10, buffer=1, min_size=2), [3, 8]), [3, 8]),
             hint="After the union, divide each class's united map by its maximum over the image (+1e-5, psa's guard)."),
        Case("a class that no patch responds to (all its maps are zero)",
             args=(StackingInference(), _NO_BLUE, _patches(rectangle_boxes((2.0, 3.0), (5.0, 7.0), 8, 10, min_size=2), [5, 9]),
                   [5, 9]),
             hint="An all-zero map must stay zero: divide by the maximum plus 1e-5, not by the maximum alone."),
        Case("four quadrants of one size (the centre in the middle)",
             args=(StackingInference(), _SQUARE, _patches(quadrant_boxes((3.5, 3.5), 8, 8, min_size=2), [19]), [19])),
    ),
    hint="Crop each patch (patch.rows, patch.columns) and infer the crops with their own patch's class_ids, one "
         "call per size of crop; pair each patch with its maps, then unite and normalise them (chapter 02's unite "
         "and normalise_per_class do it).",
))
