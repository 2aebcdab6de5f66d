"""DeepLab v2 shapes and the activation aware mask refinement loss by hand, tau at its ends, a few
training steps that lower the loss; conflicts of saliency and pseudo labels by hand; the test-time
multi-scale + flip average."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infercam.aamr import AAMRSettings, aamr_loss, conflict_rates, conflict_temperature, saliency_conflicts
from infercam.models import build_segmenter
from infercam.segmentation import GROUND_TRUTH, SegmentationTraining, background_cue, segment_probabilities, training_label_dir


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


def test_conflicts_between_pseudo_labels_saliency_and_truth_by_hand():
    # 1 x 4 pixels: pseudo object / object / background / background; saliency salient at 1 and 2
    pseudo = np.array([[3, 3, 0, 0]], np.uint8)
    saliency = np.array([[0.1, 0.9, 0.8, 0.2]], np.float32)
    truth = np.array([[3, 3, 3, 0]], np.uint8)
    counts = saliency_conflicts(pseudo, saliency, truth)
    assert counts["suppressed"] == 1 and counts["suppressed, truly object"] == 1  # pixel 0: the pseudo label was right
    assert counts["added"] == 1 and counts["added, truly object"] == 1  # pixel 2: the saliency was right
    rates = conflict_rates(counts)
    assert rates["pseudo objects that saliency calls background"] == 0.5
    assert rates["pseudo background that saliency calls salient"] == 0.5
    assert rates["saliency: recall of true objects"] == pytest.approx(2 / 3)
    assert rates["saliency: precision on true objects"] == 1.0
    # tau: background IoU 1/3 ({2,3} vs {0,3}), foreground IoU 1/3, as the loss computes it
    assert counts["tau"] == pytest.approx(1 / 3)
    void = saliency_conflicts(np.full((1, 4), 255, np.uint8), saliency, truth)
    assert void["pseudo object"] == void["pseudo background"] == 0
    assert math.isnan(conflict_rates(void)["pseudo objects that saliency calls background"])


def test_the_background_cue_spares_ignored_pixels():
    pseudo = np.array([[5, 5, 255, 0]], np.uint8)
    assert background_cue(pseudo, np.array([[0.9, 0.1, 0.1, 0.9]]), 0.5).tolist() == [[5, 0, 255, 0]]


def test_each_run_names_its_folder_by_what_it_changes():
    assert SegmentationTraining(saliency="none", aamr=AAMRSettings(tau_scope="batch")).slug == "none"
    assert SegmentationTraining(saliency="aamr").slug == "aamr"
    assert SegmentationTraining(saliency="aamr", aamr=AAMRSettings(tau_scope="batch", alpha=0.1)).slug == \
        "aamr-alpha=0.1-tau_scope=batch"
    assert SegmentationTraining(saliency="background_cue", aamr=AAMRSettings(saliency_threshold=0.3)).slug == \
        "background_cue-saliency_threshold=0.3"


def test_multiscale_flip_probabilities_sum_to_one_and_mirror_with_the_image():
    torch.manual_seed(0)
    model = build_segmenter("resnet18", width=4).eval()
    image = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    probabilities = segment_probabilities(model, image, scales=(0.5, 1.0), flip=True)
    assert probabilities.shape == (21, 40, 56)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1, atol=1e-5)
    mirrored = segment_probabilities(model, image[:, ::-1], scales=(0.5, 1.0), flip=True)
    np.testing.assert_allclose(mirrored, probabilities[:, :, ::-1], atol=1e-5)
    single = segment_probabilities(model, image, scales=(1.0,), flip=False)
    assert not np.allclose(single, probabilities, atol=1e-4)


def hand_loss_parts(logits, pseudo, saliency, target):
    """Eq. 4's two terms written out pixel by pixel: the cross-entropy over the batch's labelled
    pixels, and each image's mean BCE of the background probability against ``target``."""
    log_p = torch.log_softmax(logits, dim=1)
    labelled = [(n, y, x) for n in range(pseudo.shape[0]) for y in range(pseudo.shape[1]) for x in range(pseudo.shape[2])
                if pseudo[n, y, x] != 255]
    ce = -sum(log_p[n, pseudo[n, y, x], y, x] for n, y, x in labelled) / len(labelled)
    p_bg = torch.softmax(logits, dim=1)[:, 0]
    bce = -(target * torch.log(p_bg) + (1 - target) * torch.log(1 - p_bg)).mean(dim=(1, 2))
    return ce.item(), bce


# Two 2 x 2 images with different content: image 0 is the one-image case above (tau 1/2), image 1's
# saliency agrees with its pseudo label everywhere (tau 1).
BATCH_LOGITS = torch.tensor([[[[2.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [2.0, 0.0]]],
                             [[[1.0, 1.5], [-1.0, 0.0]], [[0.0, 2.0], [1.0, 3.0]]]])
BATCH_PSEUDO = torch.tensor([[[0, 1], [1, 255]], [[0, 0], [1, 1]]])
BATCH_SALIENCY = torch.tensor([[[0.2, 0.9], [0.4, 0.6]], [[0.1, 0.3], [0.8, 0.7]]])


def test_loss_by_hand_on_two_images_weighs_each_image_by_its_own_tau():
    # Catches tau taken over the batch (or its mean applied to every image) where the settings say
    # per image: tau (1/2, 1) weigh the images' BCE terms e^0.5 - 1 and e - 1.
    loss, parts = aamr_loss(BATCH_LOGITS, BATCH_PSEUDO, BATCH_SALIENCY, AAMRSettings(alpha=0.08))
    ce, bce = hand_loss_parts(BATCH_LOGITS, BATCH_PSEUDO, BATCH_SALIENCY, 1 - BATCH_SALIENCY)
    assert parts["tau"].tolist() == pytest.approx([0.5, 1.0])
    assert parts["bce"].tolist() == pytest.approx(bce.tolist(), rel=1e-5)
    weights = torch.tensor([math.exp(0.5) - 1, math.e - 1])
    assert loss.item() == pytest.approx(ce + 0.08 * (weights * bce).mean().item(), rel=1e-5)
    batch_weight = math.exp(0.75) - 1  # what a batch-mean tau would give: must differ
    assert abs(loss.item() - (ce + 0.08 * batch_weight * bce.mean().item())) > 1e-4


def test_batch_scope_and_binary_target_through_the_loss_by_hand():
    # Catches tau_scope="batch" or saliency_target="binary" not reaching the loss. Batch scope: over
    # both images' labelled pixels, background: pseudo 3, saliency 4, shared 3 -> 3/4; object:
    # pseudo 4, saliency 3, shared 3 -> 3/4; tau 3/4 for both images.
    settings = AAMRSettings(alpha=0.08, tau_scope="batch", saliency_target="binary")
    loss, parts = aamr_loss(BATCH_LOGITS, BATCH_PSEUDO, BATCH_SALIENCY, settings)
    binary_target = 1 - (BATCH_SALIENCY >= 0.5).float()
    ce, bce = hand_loss_parts(BATCH_LOGITS, BATCH_PSEUDO, BATCH_SALIENCY, binary_target)
    assert parts["tau"].tolist() == pytest.approx([0.75, 0.75])
    assert parts["bce"].tolist() == pytest.approx(bce.tolist(), rel=1e-5)
    assert loss.item() == pytest.approx(ce + 0.08 * (math.exp(0.75) - 1) * bce.mean().item(), rel=1e-5)
    _, soft_bce = hand_loss_parts(BATCH_LOGITS, BATCH_PSEUDO, BATCH_SALIENCY, 1 - BATCH_SALIENCY)
    assert (soft_bce - bce).abs().min() > 1e-3  # the binary target is another loss


def test_deeplab_learns_the_annotations_of_its_split_or_the_labels_walked_for_that_split(tmp_path):
    # Catches a DeepLab on train_aug reading the pseudo labels walked for train (another, smaller set of
    # images), and the ground-truth network reading pseudo labels instead of the annotations.
    train_aug = SimpleNamespace(split="train_aug", label_dir=tmp_path / "SegmentationClassAug")
    train = SimpleNamespace(split="train", label_dir=tmp_path / "SegmentationClass")
    assert training_label_dir(tmp_path, train_aug, GROUND_TRUTH, "rw") == Path(train_aug.label_dir)
    assert training_label_dir(tmp_path, train_aug, "ours", "rw") == tmp_path / "pseudo_labels" / "train_aug" / "ours" / "rw"
    assert training_label_dir(tmp_path, train, "baseline", "rw_crf") == tmp_path / "pseudo_labels" / "baseline" / "rw_crf"


def test_a_label_folder_named_from_the_repository_root_is_read_there_whatever_the_working_directory(tmp_path, monkeypatch):
    # Catches the labels' record looked up beside the working directory: a relative folder (as profiles
    # write them) then read as "annotations", and a network on walked labels was taken for one on the truth.
    import shutil
    import tempfile

    from infercam.cam import SETTINGS_FILE, labels_identity, maps_identity
    from infercam.config import PROJECT_ROOT
    (PROJECT_ROOT / "build").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=PROJECT_ROOT / "build"))
    try:
        (folder / SETTINGS_FILE).write_text('{"step": "random_walk"}')
        relative = folder.relative_to(PROJECT_ROOT)
        monkeypatch.chdir(tmp_path)
        assert labels_identity(relative) == labels_identity(folder) != "annotations"
        assert maps_identity(relative) == maps_identity(folder) != str(folder)
    finally:
        shutil.rmtree(folder)
