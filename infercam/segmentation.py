"""Training the segmentation network on pseudo labels (paper section 3.3), with saliency used one
of three ways (``SegmentationTraining.saliency``):

* ``"none"``: cross-entropy on the pseudo labels alone (the paper's cheapest model, 66.2 on VOC val);
* ``"background_cue"``: the conventional use — pixels the saliency map calls background (below
  ``saliency_threshold``) become background in the pseudo labels, then cross-entropy;
* ``"aamr"``: the activation aware mask refinement loss (:mod:`infercam.aamr`), pseudo labels
  untouched, saliency as a second, conflict-weighted supervision (70.8).

The paper fine-tunes DeepLab v2 whole. With ``SegmentationTraining.frozen_backbone`` (the offline
profiles) the backbone stays fixed: :func:`pyramid_features` computes its features of every training
image and of its mirror image once, and only a light decoder learns on them, for many epochs, at the
cost of a forward through the decoder alone.

Then the test: :func:`segment_probabilities` averages the softmax over scales and mirror images, and
:func:`segment_dataset` saves label maps with and without deeplab-pytorch's CRF post-processing.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from infercam.aamr import AAMRSettings, aamr_loss
from infercam.affinity_net import pseudo_label_dir
from infercam.cam import labels_identity, normalise, to_tensor, weights_fingerprint
from infercam.config import autocast, no_bar, resolve_mixed_precision, resolve_path
from infercam.crf import DEEPLAB_CRF, CRFSettings, save_label_maps
from infercam.models import build_segmenter
from infercam.saliency import load_saliency
from infercam.training import TrainingSettings, fit, load_backbone_weights, load_finished
from infercam.transforms import ClassificationAugment
from infercam.voc import IGNORE_INDEX, load_label_png

SALIENCY_USES = ("none", "background_cue", "aamr")


@dataclass
class SegmentationTraining(TrainingSettings):
    """deeplab-pytorch's voc12 settings where they apply: ResNet-101 at output stride 8, batch 10
    (5 x 2 there), crop 321, scales 0.5..1.5 of 513 px (long side 256..768), no colour jitter, SGD lr
    2.5e-4 poly 0.9, momentum 0.9, wd 5e-4, head x10 and biases x2; about 19 epochs of train_aug
    for its 20k iterations. Then how saliency is used, and the AAMR loss's settings (paper: alpha 0.08)."""

    backbone: str = "resnet101"
    frozen_backbone: bool = False  # True: the backbone fixed, its features cached, a decoder trained
    epochs: int = 19
    batch_size: int = 10
    crop: int = 321
    resize_long: tuple[int, int] = (256, 768)
    colour_jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    lr: float = 2.5e-4
    saliency: str = "aamr"
    aamr: AAMRSettings = field(default_factory=AAMRSettings)  # also the background cue's saliency_threshold
    labels: str = ""  # what the training labels are (:func:`labels_identity`), set when trained or loaded

    def __post_init__(self):
        super().__post_init__()
        if self.saliency not in SALIENCY_USES:
            raise ValueError(f"saliency must be one of {SALIENCY_USES}, got {self.saliency!r}")
        if isinstance(self.aamr, dict):  # as a checkpoint stores it
            self.aamr = AAMRSettings(**self.aamr)

    def identity(self) -> dict:
        """:meth:`TrainingSettings.identity`, without ``frozen_backbone`` for the whole network: every
        network was trained whole before that setting existed, so the checkpoints and label maps made
        then keep matching their settings."""
        values = super().identity()
        if not self.frozen_backbone:
            del values["frozen_backbone"]
        return values

    @property
    def slug(self) -> str:
        """Folder name: the use of saliency, then each saliency setting it uses that differs from
        the default, e.g. ``aamr-tau_scope=batch``."""
        used = {"none": (), "background_cue": ("saliency_threshold",)}.get(
            self.saliency, tuple(f.name for f in dataclasses.fields(AAMRSettings)))
        default = AAMRSettings()
        return "-".join([self.saliency] + [f"{name}={getattr(self.aamr, name)}" for name in used
                                           if getattr(self.aamr, name) != getattr(default, name)])


def segmentation_training(parameters: Mapping, mixed_precision: bool, saliency: str = "none") -> SegmentationTraining:
    """08's DeepLab run from 08's parameters (the ``seg_*`` ones, AAMR's ``alpha``,
    ``saliency_threshold``, ``tau_measure``, ``tau_scope``, ``saliency_target``, ``num_workers``,
    ``seed``, ``work_dir``) with the saliency use ``saliency``; without ``seg_initial_weights`` it
    starts from 01's classifier. ``mixed_precision`` is the resolved one."""
    p = parameters
    aamr = AAMRSettings(**{setting.name: p[setting.name] for setting in dataclasses.fields(AAMRSettings)})
    return SegmentationTraining(
        backbone=p["seg_backbone"], frozen_backbone=p["seg_frozen_backbone"], width=p["seg_width"],
        epochs=p["seg_epochs"], batch_size=p["seg_batch_size"],
        crop=p["seg_crop"], resize_long=p["seg_resize_long"], optimizer=p["seg_optimizer"], lr=p["seg_lr"],
        weight_decay=p["seg_weight_decay"], head_lr_multiplier=p["seg_head_lr_multiplier"],
        mixed_precision=mixed_precision, num_workers=p["num_workers"], seed=p["seed"],
        initial_weights=p["seg_initial_weights"] or str(resolve_path(p["work_dir"]) / "classifier" / "classifier.pth"),
        aamr=aamr, saliency=saliency)


#: The "method" whose labels are the training split's own annotations: labels no pseudo label can be
#: more accurate than, DeepLab's reference on perfect labels (08's ``ground_truth_upper_bound``).
GROUND_TRUTH = "ground_truth"


def training_label_dir(work_dir: str | os.PathLike, dataset, method: str, pseudo_label_step: str) -> Path:
    """The labels DeepLab learns from for ``method``: the annotations of ``dataset`` (the split it trains
    on) for :data:`GROUND_TRUTH`, else the pseudo labels 07 walked for that split."""
    if method == GROUND_TRUTH:
        return Path(dataset.label_dir)
    return pseudo_label_dir(work_dir, method, pseudo_label_step, dataset.split)


def segmenter_folder(work_dir: str | os.PathLike, method: str, pseudo_label_step: str,
                     settings: SegmentationTraining) -> Path:
    """Where 08 keeps the DeepLab trained on ``method``'s pseudo labels (``pseudo_label_step``: rw or
    rw_crf; none for :data:`GROUND_TRUTH`) with ``settings``, and its predictions; the decoders on a
    frozen backbone in a ``frozen_backbone`` folder of their own."""
    labels = method if method == GROUND_TRUTH else f"{method}-{pseudo_label_step}"
    # the two recipes apart: a work_dir keeps the networks of both
    recipe = "frozen_backbone" if settings.frozen_backbone else ""
    return resolve_path(work_dir) / "segmentation" / labels / recipe / settings.slug


def background_cue(pseudo: np.ndarray, saliency: np.ndarray, threshold: float) -> np.ndarray:
    """The conventional use of saliency: pseudo-labelled pixels whose saliency (0..1) is below
    ``threshold`` become background (ignored pixels stay ignored)."""
    return np.where((saliency < threshold) & (pseudo != IGNORE_INDEX), 0, pseudo).astype(pseudo.dtype)


def _check_maps(names: list[str], label_dir: Path, saliency_dir: Path | None) -> None:
    """A clear stop, before any training, when a training image has no pseudo label or saliency map."""
    for folder in [label_dir] + ([saliency_dir] if saliency_dir else []):
        missing = [n for n in names if not (folder / f"{n}.png").exists()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of the {len(names)} training images have no map in "
                                    f"{folder} (e.g. {missing[0]}): make them first (pseudo labels: "
                                    "notebooks/07_random_walk.ipynb; saliency: infercam.saliency.make_saliency_maps)")


def _saliency_bytes(saliency_dir: Path | None, name: str, shape: tuple[int, int]) -> np.ndarray:
    """The saliency map as its stored 0..255 (exactly: it moves with the image like a label map);
    zeros without maps."""
    if saliency_dir is None:
        return np.zeros(shape, np.uint8)
    return np.round(load_saliency(saliency_dir / f"{name}.png") * 255).astype(np.uint8)


class SegmentationPairs(torch.utils.data.Dataset):
    """(augmented uint8 crop (3, crop, crop), pseudo label (crop, crop) int64, saliency (crop,
    crop) float in [0, 1]) of each image; with ``background_cue``, non-salient pixels of the pseudo
    label (saliency below it) become background."""

    def __init__(self, dataset, label_dir: str | os.PathLike, saliency_dir: str | os.PathLike | None,
                 augment: ClassificationAugment, names: list[str] | None = None, background_cue: float | None = None):
        self.dataset, self.augment, self.background_cue = dataset, augment, background_cue
        self.label_dir, self.saliency_dir = Path(label_dir), Path(saliency_dir) if saliency_dir else None
        self.names = list(dataset.names if names is None else names)
        _check_maps(self.names, self.label_dir, self.saliency_dir)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        name = self.names[index]
        image, pseudo = self.dataset.load_image(name), load_label_png(self.label_dir / f"{name}.png")
        saliency = _saliency_bytes(self.saliency_dir, name, pseudo.shape)
        image, pseudo, saliency = self.augment(image, pseudo, saliency, fills=(IGNORE_INDEX, 0))
        if self.background_cue is not None:
            pseudo = background_cue(pseudo, saliency / 255, self.background_cue)
        return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), torch.from_numpy(pseudo.astype(np.int64)),
                torch.from_numpy(saliency.astype(np.float32) / 255))


@torch.no_grad()
def pyramid_features(backbone: nn.Module, dataset, names: list[str], device: torch.device | str = "cpu",
                     mixed_precision: bool = False, progress: bool = True) -> list[tuple[torch.Tensor, ...]]:
    """Per image, the fixed backbone's ``pyramid`` features (shallow, middle, deep) of the image and
    of its mirror image, each (2, C, h, w) float16 on the CPU: computed once, read every epoch."""
    device = torch.device(device)
    backbone.eval()
    features = []
    for name in tqdm(names, desc="features of the training images", disable=no_bar(progress), leave=False):
        x = to_tensor(dataset.load_image(name), device)[None]
        with autocast(device, mixed_precision):
            levels = backbone.pyramid(torch.cat([x, x.flip(-1)]))
        features.append(tuple(level.to("cpu", torch.float16) for level in levels))
    return features


#: The features of the last :func:`_shared_pyramid_features` call, by what decides them: a chapter's
#: decoders (one per pseudo-label source and use of saliency) all learn on the same backbone's features.
_last_features: dict[tuple, list[tuple[torch.Tensor, ...]]] = {}


def _shared_pyramid_features(backbone: nn.Module, settings: SegmentationTraining, dataset, names: list[str],
                             device: torch.device, progress: bool) -> list[tuple[torch.Tensor, ...]]:
    """:func:`pyramid_features`, computed once for the trainings that share the starting weights,
    images and precision (kept for the next call, one set at a time)."""
    key = (settings.backbone, settings.width, settings.identity()["initial_weights"], str(dataset.root), dataset.split,
           tuple(names), bool(settings.mixed_precision), str(device))
    if key not in _last_features:
        _last_features.clear()
        _last_features[key] = pyramid_features(backbone, dataset, names, device, settings.mixed_precision, progress)
    return _last_features[key]


class CachedPyramidPairs(torch.utils.data.Dataset):
    """(shallow, middle, deep features, pseudo label (H, W) int64, saliency (H, W) float in [0, 1])
    of each image, from :func:`pyramid_features`: the image or, with probability one half, its mirror
    image, with its label and saliency mirrored too. No random scaling or cropping: the features
    are those of the whole image at its own size."""

    in_memory = True  # nothing to read from disk: :func:`infercam.training.fit` starts no worker processes

    def __init__(self, features: list[tuple[torch.Tensor, ...]], names: list[str], label_dir: str | os.PathLike,
                 saliency_dir: str | os.PathLike | None, background_cue: float | None = None):
        label_dir, saliency_dir = Path(label_dir), Path(saliency_dir) if saliency_dir else None
        _check_maps(names, label_dir, saliency_dir)
        shapes = {tuple(tuple(level.shape) for level in levels) for levels in features}
        if len(shapes) > 1:
            raise ValueError("the training images differ in size, so their features cannot share a batch: "
                             "train the whole network instead (frozen_backbone False, the paper's recipe)")
        self.features = features
        self.pseudo = [load_label_png(label_dir / f"{name}.png") for name in names]
        self.saliency = [_saliency_bytes(saliency_dir, name, pseudo.shape) for name, pseudo in zip(names, self.pseudo)]
        self.background_cue = background_cue

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int):
        mirrored = int(torch.randint(2, ()))
        pseudo, saliency = self.pseudo[index], self.saliency[index]
        if mirrored:
            pseudo, saliency = pseudo[:, ::-1], saliency[:, ::-1]
        if self.background_cue is not None:
            pseudo = background_cue(pseudo, saliency / 255, self.background_cue)
        return (*(level[mirrored].float() for level in self.features[index]),
                torch.from_numpy(pseudo.astype(np.int64)), torch.from_numpy(saliency.astype(np.float32) / 255))


def at_logit_size(logits: torch.Tensor, pseudo: torch.Tensor, saliency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pseudo labels (N, H, W) and saliency maps (N, H, W) at the logits' (N, C, h, w) size, by
    nearest neighbour at the cells' centres: deeplab-pytorch's ``resize_labels``, which sets the loss
    at the logits' stride rather than upsampling the logits to the image (64 times fewer pixels at
    stride 8, the same targets on the grid the network predicts)."""
    if pseudo.shape[1:] == logits.shape[2:]:
        return pseudo, saliency
    size = logits.shape[2:]
    resized = F.interpolate(torch.stack([pseudo.float(), saliency.float()], dim=1), size=size, mode="nearest-exact")
    return resized[:, 0].long(), resized[:, 1]


def train_segmenter(dataset, label_dir: str | os.PathLike, saliency_dir: str | os.PathLike | None,
                    settings: SegmentationTraining, checkpoint: str | os.PathLike, device: torch.device | str = "cpu",
                    progress: bool = True, names: list[str] | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """Train (or resume) DeepLab v2 on the pseudo labels in ``label_dir`` of ``names`` (default:
    the split), using the saliency maps in ``saliency_dir`` as ``settings.saliency`` says; the
    backbone starts from ``settings.initial_weights`` when given (shared names only). With
    ``settings.frozen_backbone``, the backbone stays as it starts and only the decoder learns, on
    features computed once. Returns the model and the per-step history."""
    settings = dataclasses.replace(settings, labels=labels_identity(label_dir))  # saved with the checkpoint
    if settings.saliency != "none" and saliency_dir is None:
        raise ValueError(f"saliency {settings.saliency!r} needs saliency maps: pass saliency_dir")
    device = torch.device(device)
    torch.manual_seed(settings.seed)
    model = build_segmenter(settings.backbone, width=settings.width, frozen_backbone=settings.frozen_backbone).to(device)
    if settings.initial_weights:
        load_backbone_weights(model, settings.initial_weights)
    names = list(dataset.names if names is None else names)
    cue = settings.aamr.saliency_threshold if settings.saliency == "background_cue" else None
    saliency_dir = saliency_dir if settings.saliency != "none" else None
    if settings.frozen_backbone:
        features = _shared_pyramid_features(model.backbone, settings, dataset, names, device, progress)
        data = CachedPyramidPairs(features, names, label_dir, saliency_dir, cue)
        network = model.decoder
    else:
        augment = ClassificationAugment(settings.crop, settings.resize_long, settings.colour_jitter)
        data = SegmentationPairs(dataset, label_dir, saliency_dir, augment, names, cue)
        network = lambda images: model(normalise(images))  # noqa: E731

    def batch_loss(batch) -> torch.Tensor:
        *inputs, pseudo, saliency = (tensor.to(device, non_blocking=True) for tensor in batch)
        with autocast(device, settings.mixed_precision):
            logits = network(*inputs).float()
        pseudo, saliency = at_logit_size(logits, pseudo, saliency)
        loss, parts = aamr_loss(logits, pseudo, saliency if settings.saliency == "aamr" else None, settings.aamr)
        return loss, {name: value.mean() for name, value in parts.items()}

    return model, fit(model, data, batch_loss, settings, checkpoint, device, progress)


def load_finished_segmenter(settings: SegmentationTraining, checkpoint: str | os.PathLike, label_dir: str | os.PathLike,
                            device: torch.device | str = "cpu") -> tuple[nn.Module, pd.DataFrame] | None:
    """(network, history) of the finished ``checkpoint`` made with ``settings`` on the labels in
    ``label_dir``, or None."""
    settings = dataclasses.replace(settings, labels=labels_identity(label_dir))
    return load_finished(checkpoint, settings, lambda state: build_segmenter(
        settings.backbone, width=settings.width, imagenet=False, frozen_backbone=settings.frozen_backbone), device)


def load_or_train_segmenter(dataset, label_dir: str | os.PathLike, saliency_dir: str | os.PathLike | None,
                            settings: SegmentationTraining, checkpoint: str | os.PathLike,
                            device: torch.device | str = "cpu", progress: bool = True,
                            names: list[str] | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """The finished checkpoint if there is one (made with these settings and these labels), else
    train or resume."""
    return (load_finished_segmenter(settings, checkpoint, label_dir, device)
            or train_segmenter(dataset, label_dir, saliency_dir, settings, checkpoint, device, progress, names))


@torch.no_grad()
def segment_probabilities(model: nn.Module, image: np.ndarray, scales=(1.0,), flip: bool = True,
                          device: torch.device | str = "cpu", mixed_precision: bool = False) -> np.ndarray:
    """Class probabilities (C, H, W) of an (H, W, 3) uint8 image: the softmax of the logits at
    each scale, and of the mirrored image mirrored back, upsampled to the image and averaged."""
    device = torch.device(device)
    model.eval()
    x = to_tensor(image, device)[None]
    total = 0
    for scale in scales:
        scaled = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        with autocast(device, mixed_precision):
            logits = model(torch.cat([scaled, scaled.flip(-1)]) if flip else scaled)
        logits = F.interpolate(logits.float(), size=x.shape[2:], mode="bilinear", align_corners=False)
        probabilities = torch.softmax(logits, dim=1)
        total = total + probabilities[0] + (probabilities[1].flip(-1) if flip else 0)
    return (total / (len(scales) * (2 if flip else 1))).cpu().numpy()


def segment_dataset(model: nn.Module, dataset, out_dir: str | os.PathLike, model_settings: dict,
                    names: list[str] | None = None, scales=(1.0,), flip: bool = True,
                    crf_dir: str | os.PathLike | None = None, crf: CRFSettings = DEEPLAB_CRF,
                    device: torch.device | str = "cpu", mixed_precision: bool = False, progress: bool = True) -> Path:
    """The segmenter's label maps of ``names`` (default: the split) into ``out_dir`` and, with
    ``crf_dir``, refined by the dense CRF (deeplab-pytorch's settings) there; ``model_settings``
    (its training settings' ``identity()``) is recorded with them, so maps of another model are never mixed in.
    Returns ``out_dir``."""
    # the weights too: predictions of a network retrained since (other labels, another recipe) are never mixed in
    record = {"step": "segmentation", "model": model_settings, "weights": weights_fingerprint(model),
              "scales": list(scales), "flip": flip,
              "mixed_precision": resolve_mixed_precision(mixed_precision, device)}  # resolved: see random_walk_labels

    def probabilities(name: str, image: np.ndarray):
        scores = segment_probabilities(model, image, scales, flip, device, mixed_precision)
        return scores, np.arange(len(scores))

    return save_label_maps(dataset, dataset.names if names is None else names, probabilities, out_dir, crf_dir, crf,
                           record, f"segmenting {dataset.split}", progress)
