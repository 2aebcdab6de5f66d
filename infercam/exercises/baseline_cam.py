"""Checks for the exercises of chapter 01 (the baseline CAM): the CAM of one forward from a
classifier's features and head, and the best background score of the paper's tables."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from infercam.cam import max_normalise
from infercam.exercises import Case, Exercise, register
from infercam.metrics import ThresholdSweep
from infercam.voc import IGNORE_INDEX

CHAPTER = "01_baseline_cam"


def class_activation_maps(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The reference of ``my_cam``: the head (K, C) as a 1x1 convolution on the features (C, h, w),
    as the classifiers' ``cam`` applies it, then the protocol's ReLU and per-class max-normalisation."""
    raw = F.conv2d(torch.as_tensor(features, dtype=torch.float64)[None],
                   torch.as_tensor(weights, dtype=torch.float64)[:, :, None, None])[0]
    return max_normalise(F.relu(raw)).numpy()


def best_threshold(cams: list, class_ids: list, truths: list, thresholds) -> tuple[float, float]:
    """The reference of ``my_best_threshold``: (best background score, its mIoU) over ``thresholds``,
    the confusion summed over the images (:class:`infercam.metrics.ThresholdSweep`, as the chapter
    measures)."""
    sweep = ThresholdSweep(np.asarray(thresholds, dtype=np.float64))
    for maps, ids, truth in zip(cams, class_ids, truths):
        sweep.add(maps, ids, truth)
    best = sweep.best()
    return best["threshold"], best["miou"]


def _features(seed: int, channels: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(channels, height, width)).round(2)


def _blank(height: int, width: int) -> np.ndarray:
    return np.zeros((height, width), dtype=np.int64)


register(Exercise(
    name="cam",
    chapter=CHAPTER,
    reference=class_activation_maps,
    cases=(
        Case("one class on a 3x4 feature map of 3 channels",
             args=(_features(0, 3, 3, 4), np.array([[1.0, -0.5, 0.25]])),
             hint="M_c(x, y) = w_c · f(x, y) at every location: a sum over the channels. Negative activation is "
                  "cut to 0 before the maximum is taken."),
        Case("one class much stronger than the other (each class is normalised on its own)",
             args=(np.abs(_features(1, 2, 4, 4)), np.array([[10.0, 0.0], [0.0, 0.1]])),
             hint="Divide each class's map by that class's own maximum, not by the maximum over all classes."),
        Case("a class whose map is negative everywhere",
             args=(np.abs(_features(2, 2, 3, 3)) + 0.1, np.array([[1.0, 1.0], [-1.0, -2.0]])),
             hint="After the ReLU a map can be all zeros: the protocol divides by (maximum + 1e-5) so that it "
                  "stays zeros instead of becoming 0 / 0."),
        Case("odd sizes: a 5x3 map, 4 channels, 3 classes",
             args=(_features(3, 4, 5, 3), np.random.default_rng(4).normal(size=(3, 4)).round(2))),
        Case("a single location (1x1)",
             args=(np.array([[[2.0]], [[-1.0]]]), np.array([[1.0, 1.0], [0.5, 2.0]]))),
    ),
    hint="Apply each class's weight vector at every location (np.einsum('kc,chw->khw', ...) or a loop over the "
         "classes), cut negatives to 0, then divide each class's map by its own maximum + 1e-5 "
         "(as infercam.cam.max_normalise does).",
))


# Small label maps for my_best_threshold: 0 background, c + 1 for class c, 255 ignored.
_ONE_OBJECT = np.array([[0, 0, 0, 0], [0, 13, 13, 0], [0, 13, 13, 0], [0, 0, 0, 0]])
# map values off the thresholds (odd eighths), so that only the tie case puts a value on one
_ONE_OBJECT_CAM = np.array([[[0.0, 0.125, 0.125, 0.0], [0.125, 1.0, 0.875, 0.375],
                             [0.375, 0.625, 0.375, 0.125], [0.0, 0.125, 0.375, 0.0]]])
_TWO_CLASSES = np.array([[15, 15, 0, 0], [15, 15, 0, 2], [0, 0, 2, 2], [0, 0, 2, 2]])
_TWO_CLASSES_CAMS = np.array([
    [[1.0, 0.875, 0.375, 0.0], [0.875, 0.625, 0.375, 0.125], [0.375, 0.125, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],  # person (14)
    [[0.0, 0.0, 0.125, 0.375], [0.0, 0.125, 0.375, 0.625], [0.125, 0.625, 1.0, 0.875], [0.0, 0.375, 0.875, 0.625]],  # bicycle (1)
])
# a class the image's labels name but the truth does not hold, high in a background corner
_DISTRACTOR_CAM = np.array([[[1.0, 0.625, 0.0, 0.0], [0.375, 0.125, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
_THRESHOLDS = (0.0, 0.25, 0.5, 0.75)

register(Exercise(
    name="best_threshold",
    chapter=CHAPTER,
    reference=best_threshold,
    cases=(
        Case("one image, one class",
             args=([_ONE_OBJECT_CAM], [np.array([12])], [_ONE_OBJECT], _THRESHOLDS),
             hint="Label map: background where no class map is above t, else the class (c + 1) whose map is highest."),
        Case("one image, two classes (the higher map wins a pixel)",
             args=([_TWO_CLASSES_CAMS], [np.array([14, 1])], [_TWO_CLASSES], _THRESHOLDS),
             hint="Predict class_ids[k] + 1 where map k is the highest of the image's maps; the background is label 0."),
        Case("a map exactly at a threshold (a tie goes to the background)",
             args=([np.array([[[0.5, 0.5], [0.25, 0.0]]])], [np.array([0])], [np.array([[1, 1], [1, 0]])], (0.25, 0.5)),
             hint="A pixel is the class only where its map is strictly above t: the background score t comes first "
                  "in the argmax, so a tie goes to the background."),
        Case("two images: one confusion matrix summed over both",
             args=([_ONE_OBJECT_CAM, _TWO_CLASSES_CAMS], [np.array([12]), np.array([14, 1])],
                   [_ONE_OBJECT, _TWO_CLASSES], (0.0, 0.25, 0.5)),
             hint="The paper's protocol adds up the confusion matrices of all the images and takes the mIoU of "
                  "the sum, not the mean of each image's mIoU."),
        Case("a class predicted that the ground truth does not hold",
             args=([np.concatenate([_ONE_OBJECT_CAM, _DISTRACTOR_CAM])], [np.array([12, 4])], [_ONE_OBJECT], _THRESHOLDS),
             hint="The mIoU averages over every label that occurs in the ground truth OR the prediction: a class "
                  "predicted but absent counts with IoU 0. Labels that occur in neither are left out."),
        Case("ignored pixels (255) and an image without classes",
             args=([_ONE_OBJECT_CAM, np.zeros((0, 4, 4))], [np.array([12]), np.array([], dtype=np.int64)],
                   [np.where(np.eye(4, dtype=bool), IGNORE_INDEX, _ONE_OBJECT), _blank(4, 4)], _THRESHOLDS),
             hint="Pixels whose truth is 255 are left out of the counts; an image with no class maps is all background."),
        Case("several thresholds tie for the best (the lowest counts)",
             args=([np.array([[[1.0, 0.875], [0.0, 0.0]]])], [np.array([6])], [np.array([[7, 7], [0, 0]])], _THRESHOLDS),
             hint="When several thresholds give the same best mIoU, return the first (lowest) of them, "
                  "as np.argmax does."),
    ),
    hint="For each threshold t: turn each image's maps into a label map (0 where no map is above t, else the "
         "winning class + 1), add up one 21x21 confusion matrix over all the images (truth 255 left out), "
         "IoU = TP / (TP + FP + FN) for every label with a non-empty union, mIoU = their mean. "
         "Return the t with the highest mIoU and that mIoU.",
))
