"""Chapter 08's checks: answers written out independently pass, and the plausible wrong answers
(WRONG_ANSWERS) that tests/test_exercises.py runs with the reference and a stub."""
import torch
import torch.nn.functional as F

from infercam.aamr import conflict_temperature
from infercam.exercises import run_checks
from infercam.exercises.segmentation import AAMR_LOSS, TAU



# ---- tau: plausible wrong answers -----------------------------------------------------------------

def tau(pseudo, saliency, threshold=0.5, per_image=True, both_ious=True, skip_ignored=True, at_threshold_salient=True,
        empty_is_agreement=True):
    valid = pseudo != 255 if skip_ignored else torch.ones_like(pseudo, dtype=torch.bool)
    pseudo_background = (pseudo == 0) & valid
    saliency_background = ((saliency < threshold) if at_threshold_salient else (saliency <= threshold)) & valid
    dims = (1, 2) if per_image else (0, 1, 2)

    def iou(a, b):
        union = (a | b).sum(dim=dims).float()
        empty = torch.ones_like(union) if empty_is_agreement else torch.zeros_like(union)
        return torch.where(union > 0, (a & b).sum(dim=dims) / union.clamp(min=1), empty)

    result = iou(pseudo_background, saliency_background)
    if both_ious:
        result = (result + iou(valid & ~pseudo_background, valid & ~saliency_background)) / 2
    return result.expand(len(pseudo))


def test_tau_written_out_passes():
    assert run_checks("conflict_temperature", tau).passed




# ---- the AAMR loss: plausible wrong answers -------------------------------------------------------

def loss(logits, pseudo, saliency, alpha=0.08, target_is_saliency=False, weight=lambda t: torch.exp(t) - 1,
         product_of_means=False, sigmoid=False, ignore_in_saliency=False):
    ce = F.cross_entropy(logits, pseudo, ignore_index=255)
    if saliency is None:
        return ce
    background = torch.sigmoid(logits[:, 0]) if sigmoid else torch.softmax(logits, dim=1)[:, 0]
    target = saliency if target_is_saliency else 1 - saliency
    bce = F.binary_cross_entropy(background, target, reduction="none")
    if ignore_in_saliency:
        keep = (pseudo != 255).float()
        bce = (bce * keep).sum(dim=(1, 2)) / keep.sum(dim=(1, 2))
    else:
        bce = bce.mean(dim=(1, 2))
    weights = weight(conflict_temperature(pseudo, saliency))
    return ce + alpha * (weights.mean() * bce.mean() if product_of_means else (weights * bce).mean())


def test_loss_written_out_passes():
    assert run_checks("aamr_loss", loss).passed


def test_loss_rejects_a_crash_without_saliency():
    def always_saliency(logits, pseudo, saliency, alpha=0.08):
        return loss(logits, pseudo, saliency.float(), alpha)  # None has no .float()

    result = run_checks("aamr_loss", always_saliency)
    assert result.failed_case == "no saliency (None): the cross-entropy alone", result.message
    assert "raised AttributeError" in result.message


def one_tau_for_the_whole_batch(*args, **kwargs):
    return tau(*args, **kwargs, per_image=False)


def the_background_iou_alone(*args, **kwargs):  # "mean IoU": the background's and the foreground's
    return tau(*args, **kwargs, both_ious=False)


def ignored_pixels_counted_as_foreground(*args, **kwargs):
    return tau(*args, **kwargs, skip_ignored=False)


def an_empty_union_scored_as_disagreement(*args, **kwargs):
    return tau(*args, **kwargs, empty_is_agreement=False)


def the_threshold_itself_counted_as_background(*args, **kwargs):
    return tau(*args, **kwargs, at_threshold_salient=False)


def the_saliency_map_as_the_background_target(*args, **kwargs):  # S is the foreground's probability: the background channel's target is 1 - S
    return loss(*args, **kwargs, target_is_saliency=True)


def alpha_tau_for_alpha_e_tau_minus_one(*args, **kwargs):
    return loss(*args, **kwargs, weight=lambda t: t)


def the_product_of_the_batch_means(*args, **kwargs):  # an agreeing and a conflicting image in one batch: each image's term needs its own weight
    return loss(*args, **kwargs, product_of_means=True)


def a_sigmoid_of_the_background_logit(*args, **kwargs):
    return loss(*args, **kwargs, sigmoid=True)


def ignored_pixels_left_out_of_the_saliency_term(*args, **kwargs):
    return loss(*args, **kwargs, ignore_in_saliency=True)


def threshold_not_used(pseudo, saliency, threshold=0.5):
    return tau(pseudo, saliency)


WRONG_ANSWERS = [
    ("conflict_temperature", threshold_not_used, "threshold 0.3"),
    ("conflict_temperature", one_tau_for_the_whole_batch, TAU.cases[0].description),
    ("conflict_temperature", the_background_iou_alone, TAU.cases[0].description),
    ("conflict_temperature", ignored_pixels_counted_as_foreground, "ignored pixels (255) in the pseudo label"),
    ("conflict_temperature", an_empty_union_scored_as_disagreement, "an all-background image whose saliency is nowhere salient (no foreground in either)"),
    ("conflict_temperature", the_threshold_itself_counted_as_background, "a saliency of exactly the threshold is salient"),
    ("aamr_loss", the_saliency_map_as_the_background_target, AAMR_LOSS.cases[0].description),
    ("aamr_loss", alpha_tau_for_alpha_e_tau_minus_one, AAMR_LOSS.cases[0].description),
    ("aamr_loss", the_product_of_the_batch_means, AAMR_LOSS.cases[0].description),
    ("aamr_loss", a_sigmoid_of_the_background_logit, AAMR_LOSS.cases[0].description),
    ("aamr_loss", ignored_pixels_left_out_of_the_saliency_term, "ignored pixels (255): left out of the cross-entropy, not of the saliency term"),
]
