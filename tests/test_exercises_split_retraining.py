"""The check of chapter 06's implement exercise (patch_training_samples): it passes the reference (the
chapter's own AugmentedClassification) and a loop written from the exercise's text, and its plausible wrong answers
(WRONG_ANSWERS), which tests/test_exercises.py runs with the reference and a stub."""
from __future__ import annotations

import numpy as np
import torch

from infercam.exercises import exercise, run_checks
from infercam.exercises.split_retraining import patch_training_samples


def _answer(images, labels, patches, probability, seed, replace=lambda coin, probability: coin < probability,
            coin_for_every_image=False, crop=lambda image, patch: image[patch.rows, patch.columns], label_of=None):
    """A loop over the images, as a student writes it; the keyword arguments put in one mistake each."""
    torch.manual_seed(seed)
    samples = []
    for image, label, found in zip(images, labels, patches):
        shown = image
        if found or coin_for_every_image:
            coin = torch.rand(()).item()
            if found and replace(coin, probability):
                patch = found[int(torch.randint(len(found), ()).item())]
                shown = crop(image, patch)
                label = label if label_of is None else label_of(label, patch)
        samples.append((shown, np.asarray(label, dtype=np.float32)))
    return samples


def loop_from_the_text(images, labels, patches, probability, seed):
    return _answer(images, labels, patches, probability, seed)


def patch_labelled_with_its_own_classes(images, labels, patches, probability, seed):
    def own_classes(label, patch):
        own = np.zeros_like(label)
        own[list(patch.class_ids)] = 1
        return own
    return _answer(images, labels, patches, probability, seed, label_of=own_classes)


def replaced_at_or_above_the_probability(images, labels, patches, probability, seed):
    return _answer(images, labels, patches, probability, seed, replace=lambda coin, probability: coin >= probability)


def rows_and_columns_swapped(images, labels, patches, probability, seed):
    return _answer(images, labels, patches, probability, seed, crop=lambda image, patch: image[patch.columns, patch.rows])


def a_draw_for_every_image(images, labels, patches, probability, seed):
    # draws the coin for an image that has no patches too: every later draw comes out different
    return _answer(images, labels, patches, probability, seed, coin_for_every_image=True)


CASES = [case.description for case in exercise("patch_training_samples").cases]


def test_the_reference_and_a_loop_written_from_the_exercise_pass():
    # Catches cases whose expected samples depend on the reference's code path (the training
    # dataset class) rather than on the draws the exercise prescribes.
    assert run_checks("patch_training_samples", patch_training_samples).passed
    assert run_checks("patch_training_samples", loop_from_the_text).passed


WRONG_ANSWERS = [
    ("patch_training_samples", replaced_at_or_above_the_probability, CASES[0]),  # probability 0 replaces every image
    ("patch_training_samples", rows_and_columns_swapped, CASES[1]),  # a 6 x 9 image's patch cut as 9 x 6
    ("patch_training_samples", patch_labelled_with_its_own_classes, CASES[2]),  # not the paper's rule: the image's labels
    ("patch_training_samples", a_draw_for_every_image, CASES[3]),
]
