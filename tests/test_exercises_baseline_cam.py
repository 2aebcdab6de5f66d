"""Plausible wrong answers to chapter 01's exercises (WRONG_ANSWERS), each with the case that must
catch it; tests/test_exercises.py runs them, with the reference and a stub, for every chapter."""
from __future__ import annotations

import numpy as np

from infercam.exercises.baseline_cam import best_threshold


# --- wrong answers of my_cam ---

def cam_without_relu(features, weights):
    raw = np.einsum("kc,chw->khw", weights, features)
    return raw / (raw.max(axis=(1, 2), keepdims=True) + 1e-5)


def cam_normalised_over_all_classes(features, weights):
    raw = np.maximum(np.einsum("kc,chw->khw", weights, features), 0)
    return raw / (raw.max() + 1e-5)


def cam_without_guard(features, weights):
    raw = np.maximum(np.einsum("kc,chw->khw", weights, features), 0)
    with np.errstate(invalid="ignore"):
        return raw / raw.max(axis=(1, 2), keepdims=True)


# --- wrong answers of my_best_threshold ---

def _label_map(maps, ids, t, strict=True):
    if len(ids) == 0:
        return np.zeros(maps.shape[1:], dtype=np.int64)
    peak = maps.max(axis=0)
    above = peak > t if strict else peak >= t
    return np.where(above, np.asarray(ids)[maps.argmax(axis=0)] + 1, 0)


def _confusion(pairs):
    confusion = np.zeros((21, 21), dtype=np.int64)
    for prediction, truth in pairs:
        keep = truth != 255
        np.add.at(confusion, (truth[keep], prediction[keep]), 1)
    return confusion


def _ious(confusion):
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def _best(mious, thresholds):
    index = int(np.nanargmax(mious))
    return float(thresholds[index]), float(mious[index])


def best_threshold_mean_of_images(cams, class_ids, truths, thresholds):
    """Averages each image's mIoU instead of taking the mIoU of the summed confusion."""
    mious = [np.mean([np.nanmean(_ious(_confusion([(_label_map(m, ids, t), truth)])))
                      for m, ids, truth in zip(cams, class_ids, truths)]) for t in thresholds]
    return _best(mious, thresholds)


def best_threshold_at_or_above(cams, class_ids, truths, thresholds):
    """Gives a pixel to the class where its map equals t (>=): the tie should go to the background."""
    mious = [np.nanmean(_ious(_confusion([(_label_map(m, ids, t, strict=False), truth)
                                          for m, ids, truth in zip(cams, class_ids, truths)]))) for t in thresholds]
    return _best(mious, thresholds)


def best_threshold_truth_classes_only(cams, class_ids, truths, thresholds):
    """Averages the IoU only over the labels in the ground truth (a wrongly predicted class goes uncounted)."""
    present = np.unique(np.concatenate([t[t != 255].ravel() for t in truths]))
    mious = [np.mean(_ious(_confusion([(_label_map(m, ids, t), truth)
                                       for m, ids, truth in zip(cams, class_ids, truths)]))[present]) for t in thresholds]
    return _best(mious, thresholds)


def best_threshold_last_of_ties(cams, class_ids, truths, thresholds):
    """Keeps the last threshold of a plateau of best mIoUs (>= in a running comparison)."""
    best = (None, -1.0)
    for t in thresholds:
        miou = np.nanmean(_ious(_confusion([(_label_map(m, ids, t), truth)
                                            for m, ids, truth in zip(cams, class_ids, truths)])))
        if miou >= best[1]:
            best = (float(t), float(miou))
    return best


def best_threshold_counting_ignored(cams, class_ids, truths, thresholds):
    """Counts the pixels marked 255 as background instead of leaving them out."""
    cleaned = [np.where(truth == 255, 0, truth) for truth in truths]
    return best_threshold(cams, class_ids, cleaned, thresholds)


WRONG_ANSWERS = [
    ("cam", cam_without_relu, "one class on a 3x4 feature map of 3 channels"),
    ("cam", cam_normalised_over_all_classes, "one class much stronger than the other (each class is normalised on its own)"),
    ("cam", cam_without_guard, "a class whose map is negative everywhere"),
    ("best_threshold", best_threshold_at_or_above, "a map exactly at a threshold (a tie goes to the background)"),
    ("best_threshold", best_threshold_mean_of_images, "two images: one confusion matrix summed over both"),
    ("best_threshold", best_threshold_truth_classes_only, "a class predicted that the ground truth does not hold"),
    ("best_threshold", best_threshold_counting_ignored, "ignored pixels (255) and an image without classes"),
    ("best_threshold", best_threshold_last_of_ties, "several thresholds tie for the best (the lowest counts)"),
]
