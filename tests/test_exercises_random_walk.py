"""Chapter 07's checks: answers written out independently pass, the cases reach the edges, and the
plausible wrong answers (WRONG_ANSWERS) that tests/test_exercises.py runs with the reference and a stub."""
import numpy as np
import torch

from infercam.crf import dense_crf
from infercam.exercises import _call, exercise, run_checks
from infercam.exercises.random_walk import WALK, walk_reference



# ---- the walk: plausible wrong answers -------------------------------------------------------------

def dense_walk(scores, affinities, first, second, beta=8, logt=8, normalise_rows=False, power=True,
               diagonal=True, squarings=True):
    size = scores[0].numel()
    matrix = torch.zeros(size, size)
    values = affinities.float() ** beta if power else affinities.float()
    matrix[first, second] = values
    matrix[second, first] = values
    if diagonal:
        matrix += torch.eye(size)
    transition = matrix / matrix.sum(dim=1 if normalise_rows else 0, keepdim=True).clamp(min=1e-12)
    if squarings:
        for _ in range(logt):
            transition = transition @ transition
    else:
        transition = torch.linalg.matrix_power(transition, logt)
    return (scores.reshape(len(scores), -1) @ transition).reshape(scores.shape)


def test_the_dense_squared_walk_is_the_chapters_sparse_walk():
    assert run_checks("random_walk", dense_walk).passed


def test_walk_cases_cover_the_edges():
    # the isolated cell really keeps its scores, and the 1 x 1 grid has no pairs
    isolated = next(c for c in WALK.cases if "affinity 0" in c.description)
    walked = walk_reference(*isolated.args, **isolated.kwargs)
    assert torch.allclose(walked.reshape(2, -1)[:, 5], isolated.args[0].reshape(2, -1)[:, 5])
    single = next(c for c in WALK.cases if "1 x 1" in c.description)
    assert len(single.args[2]) == 0


# ---- affinity labels: plausible wrong answers --------------------------------------------------------

LABELS_RING = "one class (VOC index 11, dog): a confident core in an unsure ring"
LABELS_EMPTY = "an image without classes (no maps at all): everything is background"

def labels(image, cams, class_ids, alpha_low=4, alpha_high=24, ignore_band=True, swap=False, plus_one=True):
    voc = np.concatenate([[0], np.asarray(class_ids, dtype=np.int64) + (1 if plus_one else 0)]).astype(np.uint8)

    def refined(alpha):
        background = np.power(1 - cams.max(axis=0), alpha) if len(cams) else np.ones(cams.shape[1:])
        return voc[dense_crf(image, np.concatenate([background[None], cams]).astype(np.float32)).argmax(axis=0)]

    low, high = refined(alpha_high if swap else alpha_low), refined(alpha_low if swap else alpha_high)
    out = low.copy()
    if ignore_band:
        out[low == 0] = 255
    out[high == 0] = 0
    return out


def test_labels_written_out_pass():
    assert run_checks("affinity_labels", labels).passed


def test_labels_cases_have_an_ignore_band():
    # without unsure pixels in the cases, forgetting the band could not be caught
    case = exercise("affinity_labels").cases[0]
    assert (_call(exercise("affinity_labels").reference, case) == 255).any()


def test_labels_reject_a_crash_on_an_image_without_classes():
    def no_guard(image, cams, class_ids, alpha_low=4, alpha_high=24):
        cams.max(axis=0)  # a maximum over zero maps raises
        return labels(image, cams, class_ids, alpha_low, alpha_high)

    result = run_checks("affinity_labels", no_guard)
    assert result.failed_case == LABELS_EMPTY and "raised ValueError" in result.message


def rows_normalised(*args, **kwargs):  # psa divides each column by its sum
    return dense_walk(*args, **kwargs, normalise_rows=True)


def affinities_not_raised_to_beta(*args, **kwargs):
    return dense_walk(*args, **kwargs, power=False)


def logt_steps_instead_of_two_to_the_logt(*args, **kwargs):  # T^logt, not T^(2^logt): too short a walk
    return dense_walk(*args, **kwargs, squarings=False)


def no_diagonal(*args, **kwargs):
    return dense_walk(*args, **kwargs, diagonal=False)


def no_ignore_band(*args, **kwargs):
    return labels(*args, **kwargs, ignore_band=False)


def exponents_swapped(*args, **kwargs):
    return labels(*args, **kwargs, swap=True)


def class_ids_without_the_background_shift(*args, **kwargs):
    return labels(*args, **kwargs, plus_one=False)


WRONG_ANSWERS = [("random_walk", wrong, WALK.cases[0].description)
                 for wrong in (rows_normalised, affinities_not_raised_to_beta, logt_steps_instead_of_two_to_the_logt, no_diagonal)]
WRONG_ANSWERS += [("affinity_labels", wrong, LABELS_RING)
                  for wrong in (no_ignore_band, exponents_swapped, class_ids_without_the_background_shift)]
