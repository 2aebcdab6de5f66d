"""DeepLab v2 shapes and the activation aware mask refinement loss by hand, tau at its ends, and a
few training steps that lower the loss."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from infercam.aamr import AAMRSettings, aamr_loss, conflict_temperature
from infercam.models import build_segmenter


def test_deeplab_v2_gives_stride_8_logits_and_upsampled_predictions():
    torch.manual_seed(0)
    small = build_segmenter("resnet18", width=8).eval()
    with torch.no_grad():
        assert small(torch.randn(2, 3, 65, 65)).shape == (2, 21, 9, 9)
        assert small.predict(torch.randn(1, 3, 64, 48)).shape == (1, 21, 64, 48)
    paper = build_segmenter("resnet101").eval()
    assert len(paper.aspp.branches) == 4 and [b.dilation for b in paper.aspp.branches] == [(r, r) for r in (6, 12, 18, 24)]
    with torch.no_grad():
        assert paper(torch.randn(1, 3, 64, 64)).shape == (1, 21, 8, 8)
    with pytest.raises(ValueError, match="unknown segmentation backbone"):
        build_segmenter("vgg16")


def test_loss_by_hand_and_tau_between_its_ends():
    # one image, 2 x 2 pixels, classes background / object
    logits = torch.tensor([[[[2.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [2.0, 0.0]]]])
    pseudo = torch.tensor([[[0, 1], [1, 255]]])
    saliency = torch.tensor([[[0.2, 0.9], [0.4, 0.6]]])
    settings = AAMRSettings(alpha=0.08)
    loss, parts = aamr_loss(logits, pseudo, saliency, settings)
    p_bg = torch.softmax(logits, dim=1)[0, 0]
    ce = -(torch.log_softmax(logits, dim=1)[0, 0, 0, 0] + torch.log_softmax(logits, dim=1)[0, 1, 0, 1]
           + torch.log_softmax(logits, dim=1)[0, 1, 1, 0]) / 3
    target = 1 - saliency[0]
    bce = -(target * torch.log(p_bg) + (1 - target) * torch.log(1 - p_bg)).mean()
    # tau over the 3 labelled pixels: pseudo background {(0,0)}; saliency background (< 0.5) {(0,0), (1,0)}
    # background IoU 1/2; foreground: pseudo {(0,1), (1,0)}, saliency {(0,1)} -> 1/2; mean 1/2
    assert parts["tau"].item() == pytest.approx(0.5)
    assert parts["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert loss.item() == pytest.approx(ce.item() + 0.08 * (math.exp(0.5) - 1) * bce.item(), rel=1e-5)
    assert aamr_loss(logits, pseudo, None)[0].item() == pytest.approx(ce.item(), rel=1e-5)

    # tau = 0: the saliency says the opposite everywhere -> the loss is the cross-entropy alone
    opposite = torch.where(pseudo == 0, 1.0, 0.0).float()
    loss0, parts0 = aamr_loss(logits, pseudo, opposite, settings)
    assert parts0["tau"].item() == 0 and loss0.item() == pytest.approx(parts0["ce"].item(), rel=1e-6)
    # tau = 1: full agreement -> weight alpha (e - 1)
    agreeing = torch.where(pseudo == 0, 0.0, 1.0).float()
    loss1, parts1 = aamr_loss(logits, pseudo, agreeing, settings)
    assert parts1["tau"].item() == 1
    assert loss1.item() == pytest.approx(parts1["ce"].item() + 0.08 * (math.e - 1) * parts1["bce"].item(), rel=1e-5)


def test_tau_per_image_or_per_batch_and_by_background_alone():
    pseudo = torch.zeros(2, 2, 2, dtype=torch.long)
    pseudo[1] = 1  # image 1: all object
    saliency = torch.zeros(2, 2, 2)  # all background for both
    per_image = conflict_temperature(pseudo, saliency, AAMRSettings(tau_scope="image", tau_measure="background_iou"))
    assert per_image.tolist() == [1.0, 0.0]
    batch = conflict_temperature(pseudo, saliency, AAMRSettings(tau_scope="batch", tau_measure="background_iou"))
    assert batch.tolist() == [0.5, 0.5]  # 4 agreeing background pixels of 8 in the union
    miou = conflict_temperature(pseudo, saliency, AAMRSettings(tau_scope="image"))
    assert miou.tolist() == [1.0, 0.0]  # image 0: both masks empty of objects agree; image 1: nothing shared
    with pytest.raises(ValueError, match="tau_scope"):
        AAMRSettings(tau_scope="epoch")


def test_a_few_steps_on_a_tiny_batch_lower_the_loss():
    torch.manual_seed(0)
    model = build_segmenter("resnet18", width=8)
    images = torch.randn(2, 3, 64, 64)
    pseudo = torch.zeros(2, 64, 64, dtype=torch.long)
    pseudo[:, 16:48, 16:48] = 5
    saliency = (pseudo > 0).float()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(8):
        logits = F.interpolate(model(images), size=(64, 64), mode="bilinear", align_corners=False)
        loss, _ = aamr_loss(logits, pseudo, saliency)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
