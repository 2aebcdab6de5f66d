"""AffinityNet's three steps (psa), each saving what it makes so that it can be re-run alone and an
interrupted run resumes:

1. :func:`make_affinity_labels`: a label PNG per image (0 background, c + 1 class c, 255 unsure)
   from its saved response maps (:func:`infercam.affinity.affinity_labels`);
2. :func:`train_affinity_net`: AffinityNet on random crops of the images and their labels, psa's
   loss over the pairs within the radius; the backbone starts from the classifier's weights;
3. :func:`random_walk_labels`: pseudo labels, a VOC palette PNG per image: the response maps walked
   with the network's affinities, optionally refined by the dense CRF.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from infercam.affinity import (FEATURE_STRIDE, affinity_labels, affinity_loss, pair_indices, pair_labels,
                               voc_labels_of, walk_scores)
from infercam.cam import claim_folder, labels_identity, load_cams, maps_identity, normalise, to_tensor, weights_fingerprint
from infercam.config import autocast, no_bar, resolve_mixed_precision, resolve_path
from infercam.crf import PSA_CRF, CRFSettings, save_label_maps
from infercam.models import build_affinity_net
from infercam.models.affinity import pair_affinities
from infercam.training import AffinityTraining, fit, freeze_stages, load_backbone_weights, load_checkpoint, load_finished
from infercam.transforms import ClassificationAugment
from infercam.voc import load_label_png, save_label_png


def _todo(dataset, out_dir: Path, names) -> list[str]:
    return [name for name in (dataset.names if names is None else names) if not (out_dir / f"{name}.png").exists()]


def make_affinity_labels(dataset, cam_dir: str | os.PathLike, out_dir: str | os.PathLike, names: list[str] | None = None,
                         alpha_low: float = 4, alpha_high: float = 24, scale: float = 1.0, crf: CRFSettings = PSA_CRF,
                         progress: bool = True) -> Path:
    """Affinity labels of ``names`` (default: the split) into ``out_dir/<name>.png``. ``scale`` < 1
    runs the CRFs on the image and maps resized by it (kernel widths scaled alike, psa's
    ``scale_factor``) and enlarges the labels back: AffinityNet reads them at stride 8 anyway."""
    out_dir = resolve_path(out_dir)
    claim_folder(out_dir, {"step": "affinity_labels", "cams": maps_identity(cam_dir), "alpha_low": alpha_low,
                           "alpha_high": alpha_high, "scale": scale, "crf": dataclasses.asdict(crf)})
    scaled_crf = dataclasses.replace(crf, gaussian_sxy=crf.gaussian_sxy * scale, bilateral_sxy=crf.bilateral_sxy * scale)
    for name in tqdm(_todo(dataset, out_dir, names), desc=f"affinity labels of {dataset.split}", disable=no_bar(progress)):
        image = dataset.load_image(name)
        cams, class_ids = load_cams(Path(cam_dir) / f"{name}.npz")
        height, width = image.shape[:2]
        if scale != 1.0:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            image = np.array(Image.fromarray(image).resize(size[::-1], Image.BILINEAR))
            cams = F.interpolate(torch.from_numpy(cams)[None], size=size, mode="bilinear", align_corners=False)[0].numpy()
        labels = affinity_labels(image, cams, class_ids, alpha_low, alpha_high, scaled_crf)
        if scale != 1.0:
            labels = np.array(Image.fromarray(labels).resize((width, height), Image.NEAREST))
        save_label_png(labels, out_dir / f"{name}.png")
    return out_dir


class AffinityPairs(torch.utils.data.Dataset):
    """(augmented uint8 crop (3, crop, crop), bg_pos, fg_pos, neg (P,) bool) of each image: its
    affinity labels moved with the image, read at the centre of each stride-8 cell, paired."""

    def __init__(self, dataset, label_dir: str | os.PathLike, augment: ClassificationAugment, radius: int,
                 stride: int = FEATURE_STRIDE, names: list[str] | None = None):
        self.dataset, self.label_dir, self.augment = dataset, Path(label_dir), augment
        self.radius, self.stride = radius, stride
        self.names = list(dataset.names if names is None else names)
        missing = [name for name in self.names if not (self.label_dir / f"{name}.png").exists()]
        if missing:
            raise FileNotFoundError(f"no affinity labels for {len(missing)} images in {self.label_dir} (e.g. {missing[0]}): "
                                    "make them first (infercam.affinity_net.make_affinity_labels)")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        name = self.names[index]
        image, labels = self.augment(self.dataset.load_image(name), load_label_png(self.label_dir / f"{name}.png"))
        grid = labels[self.stride // 2::self.stride, self.stride // 2::self.stride]
        pairs = pair_labels(grid, self.radius)
        return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
                *(torch.from_numpy(pairs[kind]) for kind in ("bg_pos", "fg_pos", "neg")))


def train_affinity_net(dataset, label_dir: str | os.PathLike, settings: AffinityTraining, checkpoint: str | os.PathLike,
                       device: torch.device | str = "cpu", progress: bool = True,
                       names: list[str] | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """Train (or resume) AffinityNet on ``names`` of ``dataset`` (default all) with the labels in
    ``label_dir``; the backbone
    starts from ``settings.initial_weights`` (the classifier's checkpoint, or psa's ImageNet
    ResNet-38) when given. Returns the model and the per-step history."""
    settings = dataclasses.replace(settings, labels=labels_identity(label_dir))  # saved with the checkpoint
    device = torch.device(device)
    torch.manual_seed(settings.seed)
    model = build_affinity_net(settings.backbone, settings.width, output_stride=settings.output_stride).to(device)
    freeze_stages(model, settings.frozen_stages)  # psa keeps ResNet-38's first blocks fixed too
    # a CPU's training is a laptop's: its activations (4.6 GB for the cpu profile's batch) are
    # computed again in the backward pass rather than kept; the same weights, bit for bit
    model.recompute_in_backward = device.type == "cpu"
    if settings.initial_weights:
        load_backbone_weights(model, settings.initial_weights)
    augment = ClassificationAugment(settings.crop, settings.resize_long, settings.colour_jitter)
    data = AffinityPairs(dataset, label_dir, augment, settings.radius, names=names)
    def batch_loss(batch) -> torch.Tensor:
        images, bg_pos, fg_pos, neg = (tensor.to(device, non_blocking=True) for tensor in batch)
        with autocast(device, settings.mixed_precision):
            affinities = model(normalise(images), settings.radius)
        return affinity_loss(affinities, bg_pos, fg_pos, neg)[0]

    return model, fit(model, data, batch_loss, settings, checkpoint, device, progress)


def affinity_training(parameters: Mapping, mixed_precision: bool) -> AffinityTraining:
    """07's AffinityNet run from 07's parameters (``backbone``, ``width``, ``frozen_stages``, the
    ``aff_*`` ones, ``num_workers``, ``seed``, ``work_dir``), fine-tuned from 01's classifier; ``mixed_precision`` is
    the resolved one (:func:`infercam.config.resolve_mixed_precision`)."""
    p = parameters
    return AffinityTraining(
        backbone=p["backbone"], width=p["width"], output_stride=p["aff_output_stride"],
        frozen_stages=p["frozen_stages"], epochs=p["aff_epochs"], batch_size=p["aff_batch_size"],
        crop=p["aff_crop"], resize_long=p["aff_resize_long"], optimizer=p["aff_optimizer"], lr=p["aff_lr"],
        weight_decay=p["aff_weight_decay"], head_lr_multiplier=p["aff_head_lr_multiplier"], bias_lr_multiplier=1.0,
        mixed_precision=mixed_precision, num_workers=p["num_workers"], seed=p["seed"],
        initial_weights=str(resolve_path(p["work_dir"]) / "classifier" / "classifier.pth"))


def load_affinity_weights(path: str | os.PathLike, backbone: str, width: int) -> nn.Module:
    """An AffinityNet with given weights (the paper profile: psa's ``res38_aff.pth``), loaded strictly."""
    model = build_affinity_net(backbone, width)
    state = load_checkpoint(resolve_path(path))
    model.load_state_dict(state.get("model", state), strict=True)
    return model


def load_finished_affinity_net(settings: AffinityTraining, checkpoint: str | os.PathLike, label_dir: str | os.PathLike,
                               device: torch.device | str = "cpu") -> tuple[nn.Module, pd.DataFrame] | None:
    """(network, history) of the finished ``checkpoint`` made with ``settings`` on the affinity labels
    in ``label_dir``, or None."""
    settings = dataclasses.replace(settings, labels=labels_identity(label_dir))
    return load_finished(checkpoint, settings, lambda state: build_affinity_net(
        settings.backbone, settings.width, output_stride=settings.output_stride), device)


def load_or_train_affinity_net(dataset, label_dir, settings: AffinityTraining, checkpoint: str | os.PathLike,
                               device: torch.device | str = "cpu", progress: bool = True,
                               names: list[str] | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """The finished checkpoint if there is one (made with these settings), else train or resume."""
    return (load_finished_affinity_net(settings, checkpoint, label_dir, device)
            or train_affinity_net(dataset, label_dir, settings, checkpoint, device, progress, names))


@torch.no_grad()
def image_affinities(model: nn.Module, image: np.ndarray, radius: int = 5, device="cpu", mixed_precision: bool = False):
    """(affinities (P,), first, second, feature grid shape) of one whole image."""
    model.eval()
    x = to_tensor(image, device)[None]
    with autocast(torch.device(device), mixed_precision):
        features = model.features(x)
    grid = tuple(features.shape[2:])
    first, second = pair_indices(*grid, radius)
    return pair_affinities(features, radius)[0], first, second, grid


def affinity_label_dir(work_dir: str | os.PathLike) -> Path:
    """Where 07_random_walk writes AffinityNet's training labels (from the baseline's CAMs) and the
    sharded walk finds them again."""
    return resolve_path(work_dir) / "affinity" / "labels"


def affinity_checkpoint(work_dir: str | os.PathLike) -> Path:
    """Where 07_random_walk saves the AffinityNet it trains, and the computation time chapter and
    the sharded walk load it."""
    return resolve_path(work_dir) / "affinity" / "affinity_net.pth"


def pseudo_label_dir(work_dir: str | os.PathLike, method: str, step: str = "rw", split: str = "train") -> Path:
    """Where 07_random_walk writes a method's pseudo labels of a split and 08_segmentation reads them
    (``step``: "rw" or "rw_crf"); another split than train (the paper: train_aug) has its own folder."""
    parts = (method, step) if split == "train" else (split, method, step)
    return resolve_path(work_dir).joinpath("pseudo_labels", *parts)


def random_walk_labels(model: nn.Module, dataset, cam_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       names: list[str] | None = None, alpha: float = 16, beta: float = 8, logt: int = 8,
                       radius: int = 5, crf_dir: str | os.PathLike | None = None, crf: CRFSettings = PSA_CRF,
                       device="cpu", mixed_precision: bool = False, progress: bool = True) -> Path:
    """Pseudo labels of ``names`` into ``out_dir/<name>.png`` (VOC palette): each image's saved maps
    walked with its affinities. With ``crf_dir``, the same walk refined by the dense CRF (the walked
    scores normalised to sum to 1 per pixel) goes there too. Returns ``out_dir``."""
    # The precision the affinities are computed in, resolved: a folder begun on a CPU in float32 and
    # resumed on a GPU in bfloat16 is refused rather than mixed.
    # The AffinityNet's weights too: labels walked with a retrained network are never mixed in.
    walk = {"step": "random_walk", "cams": maps_identity(cam_dir), "alpha": alpha, "beta": beta, "logt": logt,
            "radius": radius, "mixed_precision": resolve_mixed_precision(mixed_precision, device),
            "affinity_net": weights_fingerprint(model)}

    def walked(name: str, image: np.ndarray):
        cams, class_ids = load_cams(Path(cam_dir) / f"{name}.npz")
        affinities, first, second, grid = image_affinities(model, image, radius, device, mixed_precision)
        return walk_scores(cams, affinities, first, second, grid, alpha, beta, logt).cpu().numpy(), voc_labels_of(class_ids)

    return save_label_maps(dataset, dataset.names if names is None else names, walked, out_dir, crf_dir, crf, walk,
                           f"random walk on {dataset.split}", progress)
