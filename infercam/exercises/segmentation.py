"""Checks of the segmentation chapter's exercises (08_segmentation): the conflict temperature tau of
each image and the activation aware mask refinement (AAMR) loss."""
from __future__ import annotations

import torch

from infercam.aamr import AAMRSettings, aamr_loss, conflict_temperature
from infercam.exercises import Case, Exercise, register
from infercam.voc import IGNORE_INDEX

CHAPTER = "08_segmentation"


def tau_reference(pseudo: torch.Tensor, saliency: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The chapter's tau (per image, the mean of the background's and the foreground's IoU)."""
    return conflict_temperature(pseudo, saliency, AAMRSettings(saliency_threshold=threshold))


def loss_reference(logits: torch.Tensor, pseudo: torch.Tensor, saliency: torch.Tensor | None,
                   alpha: float = 0.08) -> torch.Tensor:
    """The chapter's loss (soft target, tau per image), the total only."""
    return aamr_loss(logits, pseudo, saliency, AAMRSettings(alpha=alpha))[0]


def _labels(*rows: str) -> torch.Tensor:
    """A pseudo label from strings: '.' background, a digit that class, 'x' ignored (255)."""
    return torch.tensor([[IGNORE_INDEX if c == "x" else 0 if c == "." else int(c) for c in row] for row in rows])


def _salient(*rows: str) -> torch.Tensor:
    """A saliency map from strings: a digit d is a saliency of d / 10 ('#' is 1.0)."""
    return torch.tensor([[1.0 if c == "#" else int(c) / 10 for c in row] for row in rows])


# Two 4 x 5 images: the first mostly agrees with its saliency (one object pixel at 0.4, one background
# pixel at 0.3: a lower threshold changes both), the second's object is not salient and its salient
# corner is pseudo background.
AGREEING = (_labels(".....", ".33..", ".33..", "....."), _salient("00000", "0##10", "09400", "00003"))
CONFLICTING = (_labels(".....", "...7.", "...7.", "....."), _salient("##000", "#9000", "00000", "00000"))
TWO_IMAGES = (torch.stack([AGREEING[0], CONFLICTING[0]]), torch.stack([AGREEING[1], CONFLICTING[1]]))


def _random_batch(images: int, height: int, width: int, classes: int, seed: int, ignored: float = 0.0):
    generator = torch.Generator().manual_seed(seed)
    pseudo = torch.randint(0, classes, (images, height, width), generator=generator)
    pseudo[torch.rand(images, height, width, generator=generator) < ignored] = IGNORE_INDEX
    return pseudo, torch.rand(images, height, width, generator=generator)


TAU = register(Exercise(
    name="conflict_temperature",
    chapter=CHAPTER,
    reference=tau_reference,
    cases=(
        Case("two 4 x 5 images, one agreeing with its saliency and one not", TWO_IMAGES,
             hint="One tau per image: sum over each image's own pixels, not over the batch."),
        Case("ignored pixels (255) in the pseudo label",
             (_labels("xx...", ".33x.", ".33..", "...xx")[None], AGREEING[1][None]),
             hint="A pixel the pseudo label ignores is in neither its background nor its foreground, and is left "
                  "out of the saliency map's too."),
        Case("an all-background image whose saliency is nowhere salient (no foreground in either)",
             (_labels("....", "....", "....")[None], _salient("0120", "0040", "1000")[None]),
             hint="Two empty masks agree perfectly: their IoU counts as 1."),
        Case("a saliency of exactly the threshold is salient",
             (_labels("..1", ".11")[None], _salient("055", "055")[None]),
             hint="Background to the saliency map is S < threshold; S = threshold is salient."),
        Case("threshold 0.3", TWO_IMAGES, {"threshold": 0.3}),
        Case("three seeded random 5 x 7 images, four classes, a quarter of the pixels ignored",
             _random_batch(3, 5, 7, 4, seed=0, ignored=0.25)),
    ),
    hint="For each image: B_Y = pseudo label is 0, B_S = saliency below the threshold, both only where the pseudo label "
         "is not 255; tau is the mean of IoU(B_Y, B_S) and the IoU of their complements (within the same valid pixels).",
))


def _logits(images: int, classes: int, height: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(images, classes, height, width, generator=torch.Generator().manual_seed(seed)) * 2


def _with_classes(pseudo: torch.Tensor, classes: int) -> torch.Tensor:
    """Class labels above ``classes - 1`` folded into 1..classes-1 (the cases' logits have few channels)."""
    folded = torch.where(pseudo > 0, (pseudo - 1) % (classes - 1) + 1, pseudo)
    return torch.where(pseudo == IGNORE_INDEX, pseudo, folded)


PAIR = (_with_classes(TWO_IMAGES[0], 3), TWO_IMAGES[1])  # the two images' labels as classes 1 and 2

AAMR_LOSS = register(Exercise(
    name="aamr_loss",
    chapter=CHAPTER,
    reference=loss_reference,
    cases=(
        Case("two 4 x 5 images, three channels, one agreeing with its saliency and one not",
             (_logits(2, 3, 4, 5, seed=0), *PAIR),
             hint="Each image's saliency term is weighted by its own e^tau - 1, then the weighted terms are averaged: "
                  "the mean of the products, not the product of the means."),
        Case("no saliency (None): the cross-entropy alone", (_logits(2, 3, 4, 5, seed=1), PAIR[0], None)),
        Case("ignored pixels (255): left out of the cross-entropy, not of the saliency term",
             (_logits(1, 3, 4, 5, seed=2), _with_classes(_labels("xx...", ".33x.", ".33..", "...xx"), 3)[None],
              AGREEING[1][None]),
             hint="The cross-entropy skips pixels labelled 255 (ignore_index); the saliency term has a target everywhere."),
        Case("alpha 1", (_logits(2, 3, 4, 5, seed=3), *PAIR), {"alpha": 1.0}),
        Case("three seeded random 5 x 7 images, five channels",
             (_logits(3, 5, 5, 7, seed=4), *_random_batch(3, 5, 7, 5, seed=5, ignored=0.1))),
    ),
    hint="The background probability is channel 0 of the softmax over the channels; its target is 1 - S (S: how salient, "
         "that is how much foreground); weight each image's mean BCE by alpha (e^tau - 1), tau from conflict_temperature.",
))
