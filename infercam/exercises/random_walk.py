"""Checks of the random walk chapter's exercises (07_random_walk): the walk with psa's dense,
squared transition matrix, and the affinity labels with their ignore band."""
from __future__ import annotations

import numpy as np
import torch

from infercam.affinity import affinity_labels, pair_indices, random_walk, transition_matrix
from infercam.exercises import Case, Exercise, register

CHAPTER = "07_random_walk"


def walk_reference(scores: torch.Tensor, affinities: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                   beta: float = 8, logt: int = 8) -> torch.Tensor:
    """The chapter's sparse walk, with the signature the exercise asks for."""
    return random_walk(scores, transition_matrix(affinities, first, second, scores[0].numel(), beta), logt)


def _walk_case(description: str, height: int, width: int, classes: int, radius: int, seed: int, hint: str = "",
               isolated: int | None = None, **kwargs) -> Case:
    """Seeded scores and affinities on an (height, width) grid; ``isolated``: a cell with affinity 0 to every other."""
    generator = torch.Generator().manual_seed(seed)
    first, second = pair_indices(height, width, radius)
    affinities = torch.rand(len(first), generator=generator) * 0.9 + 0.05
    if isolated is not None:
        affinities[(first == isolated) | (second == isolated)] = 0
    scores = torch.rand(classes, height, width, generator=generator)
    return Case(description, (scores, affinities, first, second), kwargs, hint)


WALK = register(Exercise(
    name="random_walk",
    chapter=CHAPTER,
    reference=walk_reference,
    cases=(
        _walk_case("a 3 x 4 grid, two channels, beta 8, logt 2", 3, 4, 2, 3, seed=0, beta=8, logt=2),
        _walk_case("logt 0: a single step", 2, 5, 3, 3, seed=1, beta=8, logt=0,
                   hint="logt counts squarings: the walk takes t = 2 ** logt steps, so logt = 0 is one step of T."),
        _walk_case("beta 1: the affinities as they are", 3, 3, 2, 2, seed=2, beta=1, logt=1,
                   hint="T's off-diagonal entries are the affinities raised to beta, both ways round (a_ij = a_ji)."),
        _walk_case("a cell with affinity 0 to every other keeps its own scores", 3, 4, 2, 3, seed=3, isolated=5,
                   beta=8, logt=3, hint="Each cell's transition to itself is 1 before normalising, whatever its affinities."),
        _walk_case("a 4 x 2 grid, one channel (an image without classes: background only), beta 4, logt 4",
                   4, 2, 1, 3, seed=4, beta=4, logt=4),
        _walk_case("a 1 x 1 grid: no pairs at all", 1, 1, 2, 5, seed=5, beta=8, logt=3),
        _walk_case("a 5 x 3 grid at the chapter's beta 8 and logt 8", 5, 3, 3, 5, seed=6),
    ),
    hint="Every column of T sums to 1, the diagonal's 1 included (psa: aff / aff.sum(0)); each pair appears once in "
         "(first, second) but sits in T twice; squaring T logt times makes T^(2^logt); the scores, flattened to "
         "(K, N), multiply T from the left.",
))


def _labels_case(description: str, classes: list[int], seed: int, hint: str = "", **kwargs) -> Case:
    """A 16 x 18 image: each class a bright square whose map is confident (0.9), inside a grey ring
    of width 3 where its map is unsure (0.2: object to the high exponent, background to the low one,
    so ignored) on a dark background where it is faint; seeded noise on the image and the maps."""
    rng = np.random.default_rng(seed)
    height, width, ring = 16, 18, 3
    image = rng.integers(0, 50, (height, width, 3)).astype(np.uint8)
    cams = (rng.random((len(classes), height, width)) * 0.03).astype(np.float32)
    for index, (top, left) in enumerate([(3, 3), (8, 11)][:len(classes)]):
        around = slice(top - ring, top + 4 + ring), slice(left - ring, left + 4 + ring)
        image[around], cams[index][around] = 110, 0.2
        image[top:top + 4, left:left + 4] = (200, 120 + 40 * index, 60)
        cams[index, top:top + 4, left:left + 4] = 0.9
    return Case(description, (image, cams, classes), kwargs, hint)


AFFINITY_LABELS = register(Exercise(
    name="affinity_labels",
    chapter=CHAPTER,
    reference=affinity_labels,
    cases=(
        _labels_case("one class (VOC index 11, dog): a confident core in an unsure ring", [11], seed=0),
        _labels_case("two classes (cat and person, VOC indices 7 and 14)", [7, 14], seed=1,
                     hint="Row 0 of the CRF's output is the background; row k + 1 is the k-th of class_ids, whose "
                          "label is its VOC index + 1."),
        _labels_case("alpha_low 2 and alpha_high 32", [4], seed=2, alpha_low=2, alpha_high=32,
                     hint="The low exponent decides the objects (and where it says background, the pixel is unsure); "
                          "the high exponent decides the confident background."),
        _labels_case("an image without classes (no maps at all): everything is background", [], seed=3,
                     hint="With no class maps, the background score is 1 everywhere (there is no maximum to take)."),
    ),
    hint="Run the CRF twice, on [(1 - max_c cams) ** alpha; cams] with each exponent. The low exponent's background is "
         "strong, so what it still calls object is sure; the high exponent's is weak, so what it still calls "
         "background is sure; a pixel sure of neither is 255.",
))
