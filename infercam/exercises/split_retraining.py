"""Checks for chapter 06 (split & unite as a training augmentation): one epoch's training samples,
each image replaced by one of its split & unite patches with some chance, labelled with the image's
labels."""
from __future__ import annotations

import numpy as np
import torch

from infercam.exercises import Case, Exercise, register
from infercam.split_unite import Patch, quadrant_boxes, rectangle_boxes
from infercam.training import AugmentedClassification


class _Images:
    """The little of a VOCSegmentation that AugmentedClassification reads, over images in memory."""

    def __init__(self, images, labels):
        self.images, self.cls_labels = list(images), np.asarray(labels, dtype=np.float32)
        self.names = [str(index) for index in range(len(self.images))]

    def __len__(self) -> int:
        return len(self.images)

    def load_image(self, name: str) -> np.ndarray:
        return self.images[int(name)]


def patch_training_samples(images, labels, patches, probability: float, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image shown (h, w, 3), label (20,)) for each image in order, as the chapter's fine-tuning draws them
    (:class:`infercam.training.AugmentedClassification`, without the crop and flip that follow), after
    ``torch.manual_seed(seed)``. ``patches[i]``: image i's split & unite patches (none: too small to split)."""
    data = AugmentedClassification(_Images(images, labels), augment=lambda image: image,
                                   patches={str(index): list(found) for index, found in enumerate(patches)},
                                   patch_probability=probability)
    torch.manual_seed(seed)
    samples = [data[index] for index in range(len(data))]
    return [(image.permute(1, 2, 0).numpy(), label.numpy()) for image, label in samples]


def _images(count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _labels(*class_lists) -> np.ndarray:
    labels = np.zeros((len(class_lists), 20), dtype=np.float32)
    for row, classes in enumerate(class_lists):
        labels[row, list(classes)] = 1
    return labels


def _quadrants(centre, class_ids, height=6, width=9) -> list[Patch]:
    return [Patch(*box, tuple(class_ids)) for box in quadrant_boxes(centre, height, width, min_size=2)]


_ONE = _quadrants((2.4, 3.3), [12])
_TWO = [Patch(*box, (1, 14)) for box in rectangle_boxes((1.8, 2.2), (3.6, 6.4), 6, 9, min_size=2)]
_THREE = [patch for centre, c in zip([(2.1, 2.7), (3.8, 6.1), (2.9, 4.4)], [4, 8, 17]) for patch in _quadrants(centre, [c])]
_EIGHT_LABELS = _labels([12], [1, 14], [4, 8, 17], [0], [12], [1, 14], [6], [4, 8, 17])
_EIGHT_PATCHES = [_ONE, _TWO, _THREE, [], _ONE[::-1], _TWO, [], _THREE]

register(Exercise(
    name="patch_training_samples",
    chapter="06_split_retraining",
    reference=patch_training_samples,
    cases=(
        Case("probability 0: every image shown whole",
             args=(_images(3, 6, 9, 0), _labels([12], [1, 14], [4, 8, 17]), [_ONE, _TWO, _THREE], 0.0, 0),
             hint="With probability 0 no image is replaced."),
        Case("probability 1: every image replaced by one of its patches (6 x 9 images)",
             args=(_images(2, 6, 9, 1), _labels([12], [1, 14]), [_ONE, _TWO], 1.0, 3),
             hint="A patch's pixels are image[patch.rows, patch.columns]: rows first, then columns."),
        Case("an image with three classes, whose patches each give the map of one class",
             args=(_images(2, 6, 9, 2), _labels([4, 8, 17], [4, 8, 17]), [_THREE, _THREE], 1.0, 5),
             hint="The paper labels a patch with the image's labels, whatever classes the patch was split for."),
        Case("images too small to split (no patches) among others",
             args=(_images(4, 6, 9, 3), _labels([0], [12], [6], [1, 14]), [[], _ONE, [], _TWO], 0.5, 1),
             hint="An image without patches is shown whole and takes no draw from the generator."),
        Case("probability 0.5 over eight images",
             args=(_images(8, 6, 9, 4), _EIGHT_LABELS, _EIGHT_PATCHES, 0.5, 7),
             hint="Replace an image when torch.rand(()) is below the probability (not at or above it), then pick "
                  "its patch with torch.randint(len(patches), ())."),
    ),
    hint="Seed torch first, then one pass over the images in order: only an image with patches draws, first "
         "whether it is replaced, then by which of its patches; every sample keeps its image's label.",
))
