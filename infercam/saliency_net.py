"""The offline saliency detector: a small class-agnostic network, trained, as real salient object
detectors are, on a separate dataset of scenes whose salient objects are not the target classes.

Its training scenes (:func:`infercam.minivoc.compose_saliency_scene`) show non-VOC OpenMoji glyphs:
one to three large ones near the centre are "salient", small ones elsewhere are not. It never sees
a VOC class nor a mini-VOC label. On mini-VOC it inherits the failure modes the paper describes
(section 3.3, Fig. 7): a centre bias, non-VOC glyphs marked salient (mini-VOC's distractors are
background), and small or peripheral objects missed.

The network is DeepLab v2's (:mod:`infercam.models.deeplab`) with one output channel, the saliency
logit, trained with binary cross-entropy on the shared loop (:func:`infercam.training.fit`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from infercam.cam import normalise, to_tensor
from infercam.config import autocast, no_bar
from infercam.minivoc import compose_saliency_scene
from infercam.models import build_segmenter
from infercam.training import TrainingSettings, fit, load_finished
from infercam.transforms import ClassificationAugment


@dataclass
class SaliencyTraining(TrainingSettings):
    """The detector's run: ``num_scenes`` generated scenes of ``scene_size`` px, drawn from ``seed``."""

    backbone: str = "resnet18"
    width: int = 16
    epochs: int = 8
    batch_size: int = 16
    crop: int = 160
    resize_long: tuple[int, int] = (144, 208)
    colour_jitter: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.05)
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    head_lr_multiplier: float = 1.0
    bias_lr_multiplier: float = 1.0
    num_scenes: int = 800
    scene_size: int = 192


class SaliencyScenes(torch.utils.data.Dataset):
    """(augmented uint8 crop (3, crop, crop), salient mask (crop, crop) float) of generated scenes;
    the scenes are drawn once, from ``seed``, and kept in memory."""

    def __init__(self, num_scenes: int, size: int, augment: ClassificationAugment, seed: int = 0, progress: bool = True):
        rng = np.random.default_rng([seed, 2022])
        self.scenes = [compose_saliency_scene(rng, size)
                       for _ in tqdm(range(num_scenes), desc="saliency training scenes", disable=no_bar(progress), leave=False)]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int):
        image, mask = self.scenes[index]
        image, mask = self.augment(image, mask.astype(np.uint8), fills=(0,))
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), torch.from_numpy(mask.astype(np.float32))


def train_saliency_net(settings: SaliencyTraining, checkpoint: str | os.PathLike, device: torch.device | str = "cpu",
                       progress: bool = True) -> tuple[nn.Module, pd.DataFrame]:
    """Train (or resume) the detector; returns the model and the per-step history."""
    device = torch.device(device)
    torch.manual_seed(settings.seed)
    model = build_segmenter(settings.backbone, num_classes=1, width=settings.width).to(device)
    augment = ClassificationAugment(settings.crop, settings.resize_long, settings.colour_jitter)
    data = SaliencyScenes(settings.num_scenes, settings.scene_size, augment, settings.seed, progress)

    def batch_loss(batch) -> torch.Tensor:
        images, masks = (tensor.to(device, non_blocking=True) for tensor in batch)
        with autocast(device, settings.mixed_precision):
            logits = model(normalise(images))
        logits = F.interpolate(logits.float(), size=masks.shape[1:], mode="bilinear", align_corners=False)
        return F.binary_cross_entropy_with_logits(logits[:, 0], masks)

    return model, fit(model, data, batch_loss, settings, checkpoint, device, progress)


def load_or_train_saliency_net(settings: SaliencyTraining, checkpoint: str | os.PathLike,
                               device: torch.device | str = "cpu", progress: bool = True) -> tuple[nn.Module, pd.DataFrame]:
    """The finished checkpoint if there is one (made with these settings), else train or resume."""
    return (load_finished(checkpoint, settings,
                          lambda state: build_segmenter(settings.backbone, num_classes=1, width=settings.width), device)
            or train_saliency_net(settings, checkpoint, device, progress))


@torch.no_grad()
def predict_saliency(model: nn.Module, image: np.ndarray, long_side: int = 192, device: torch.device | str = "cpu",
                     mixed_precision: bool = False) -> np.ndarray:
    """Saliency (H, W) float32 in [0, 1] of an (H, W, 3) uint8 image, predicted with its long side
    at ``long_side`` px (the training scenes' size) and upsampled back."""
    device = torch.device(device)
    model.eval()
    x = to_tensor(image, device)[None]
    scale = long_side / max(image.shape[:2])
    with autocast(device, mixed_precision):
        logits = model(F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False))
    logits = F.interpolate(logits.float(), size=image.shape[:2], mode="bilinear", align_corners=False)
    return torch.sigmoid(logits)[0, 0].cpu().numpy()
