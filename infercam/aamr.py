"""The activation aware mask refinement loss (paper section 3.3, Eq. 4):

    L = CE(prediction, pseudo labels) + alpha (e^tau - 1) BCE(background probability, 1 - saliency)

with alpha = 0.08. The *conflict temperature* tau is the mean IoU between the pseudo label's
background and the saliency map's: where the two disagree (tau near 0) the saliency term fades
(e^0 - 1 = 0); where they agree (tau = 1) it weighs e - 1 = 1.72. tau depends on the two targets
only, not on the prediction, so it is a weight, not a path for gradients.

The paper leaves four things open; each is a setting here (defaults: our choice, argued in the
segmentation chapter):

* ``saliency_threshold``: a saliency map (0..1) is binarised at 0.5 for tau (salient = foreground);
* ``tau_measure``: ``"miou"`` — the mean over {background, foreground} of the IoU between the pseudo
  label's background/foreground and the saliency's (the paper says "mean IoU"); or
  ``"background_iou"``, the background's IoU alone;
* ``tau_scope``: ``"image"`` — one tau per image, weighting that image's saliency term (a batch
  mixing agreeing and conflicting images weighs each on its own); or ``"batch"`` — one tau from
  the whole batch's pixels;
* ``saliency_target``: ``"soft"`` — BCE against 1 - saliency as it is; or ``"binary"`` — against the
  binarised map.

Pixels the pseudo label ignores (255) are left out of the cross-entropy and of tau, but not of the
saliency term, which has a target everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from infercam.voc import IGNORE_INDEX

TAU_MEASURES = ("miou", "background_iou")
TAU_SCOPES = ("image", "batch")
SALIENCY_TARGETS = ("soft", "binary")


@dataclass(frozen=True)
class AAMRSettings:
    alpha: float = 0.08
    saliency_threshold: float = 0.5
    tau_measure: str = "miou"
    tau_scope: str = "image"
    saliency_target: str = "soft"

    def __post_init__(self):
        for value, allowed, name in ((self.tau_measure, TAU_MEASURES, "tau_measure"),
                                     (self.tau_scope, TAU_SCOPES, "tau_scope"),
                                     (self.saliency_target, SALIENCY_TARGETS, "saliency_target")):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def conflict_temperature(pseudo: torch.Tensor, saliency: torch.Tensor, settings: AAMRSettings = AAMRSettings()) -> torch.Tensor:
    """tau per image (N,) — or the batch's, repeated (N,) — from pseudo labels (N, H, W) and
    saliency maps (N, H, W) in [0, 1]."""
    valid = pseudo != IGNORE_INDEX
    pseudo_background = (pseudo == 0) & valid
    saliency_background = (saliency < settings.saliency_threshold) & valid
    dims = (1, 2) if settings.tau_scope == "image" else (0, 1, 2)

    def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        union = (a | b).sum(dim=dims).float()
        # two empty masks agree perfectly
        return torch.where(union > 0, (a & b).sum(dim=dims).float() / union.clamp(min=1), torch.ones_like(union))

    tau = iou(pseudo_background, saliency_background)
    if settings.tau_measure == "miou":
        tau = (tau + iou(valid & ~pseudo_background, valid & ~saliency_background)) / 2
    return tau.expand(pseudo.shape[0]) if settings.tau_scope == "batch" else tau


def aamr_loss(logits: torch.Tensor, pseudo: torch.Tensor, saliency: torch.Tensor | None,
              settings: AAMRSettings = AAMRSettings()):
    """Eq. 4 for logits (N, C, H, W) (channel 0: background), pseudo labels (N, H, W) (255 ignored)
    and saliency (N, H, W) in [0, 1]; ``saliency=None`` gives the cross-entropy alone. Returns
    (loss, {"ce", "bce", "tau"}) with ``bce`` and ``tau`` per image."""
    logits = logits.float()
    ce = F.cross_entropy(logits, pseudo.long(), ignore_index=IGNORE_INDEX)
    if saliency is None:
        return ce, {"ce": ce.detach()}
    saliency = saliency.float()
    target = 1 - (saliency >= settings.saliency_threshold).float() if settings.saliency_target == "binary" else 1 - saliency
    background = torch.softmax(logits, dim=1)[:, 0].clamp(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy(background, target, reduction="none").mean(dim=(1, 2))
    tau = conflict_temperature(pseudo, saliency, settings)
    loss = ce + settings.alpha * ((torch.exp(tau) - 1) * bce).mean()
    return loss, {"ce": ce.detach(), "bce": bce.detach(), "tau": tau}


def saliency_conflicts(pseudo: np.ndarray, saliency: np.ndarray, truth: np.ndarray,
                       settings: AAMRSettings = AAMRSettings()) -> dict:
    """Fig. 7 measured on one image: pixel counts of where the pseudo label (H, W) and the saliency
    map (H, W, in [0, 1], salient at ``settings.saliency_threshold``) disagree and, by the ground
    truth (H, W), which of the two was right; plus the image's tau. Pixels void in the pseudo label
    or the truth are left out. Sum the counts over images and pass them to :func:`conflict_rates`."""
    valid = (pseudo != IGNORE_INDEX) & (truth != IGNORE_INDEX)
    pseudo_object, true_object = (pseudo > 0) & valid, (truth > 0) & valid
    salient = (saliency >= settings.saliency_threshold) & valid
    suppressed = pseudo_object & ~salient  # objects of the pseudo label that saliency calls background
    added = salient & ~pseudo_object  # salient pixels the pseudo label calls background
    height, width = truth.shape
    centre = np.zeros_like(valid)  # the middle half of each side
    centre[height // 4:height - height // 4, width // 4:width - width // 4] = True
    counts = {"pseudo object": pseudo_object, "pseudo background": valid & ~pseudo_object,
              "suppressed": suppressed, "suppressed, truly object": suppressed & true_object,
              "added": added, "added, truly object": added & true_object, "salient": salient,
              "true object": true_object, "true object, salient": true_object & salient,
              "true object in the centre": true_object & centre, "true object in the centre, salient": true_object & centre & salient}
    tau = conflict_temperature(torch.from_numpy(pseudo.astype(np.int64))[None], torch.from_numpy(saliency)[None], settings)
    return {**{name: int(mask.sum()) for name, mask in counts.items()}, "tau": float(tau[0])}


def conflict_rates(counts) -> dict:
    """Shares (0..1) from summed :func:`saliency_conflicts` counts (a mapping or pandas Series)."""
    def share(part: str, whole: str) -> float:
        return counts[part] / counts[whole] if counts[whole] else float("nan")

    border_objects = counts["true object"] - counts["true object in the centre"]
    border_salient = counts["true object, salient"] - counts["true object in the centre, salient"]
    return {"pseudo objects that saliency calls background": share("suppressed", "pseudo object"),
            "  of which truly object (the pseudo label was right)": share("suppressed, truly object", "suppressed"),
            "pseudo background that saliency calls salient": share("added", "pseudo background"),
            "  of which truly object (saliency was right)": share("added, truly object", "added"),
            "saliency: precision on true objects": share("true object, salient", "salient"),
            "saliency: recall of true objects": share("true object, salient", "true object"),
            "saliency: recall in the image's centre": share("true object in the centre, salient", "true object in the centre"),
            "saliency: recall outside the centre": border_salient / border_objects if border_objects else float("nan")}
