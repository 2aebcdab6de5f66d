"""Training loops with checkpoints that resume, and the classifier's: multi-label soft-margin loss,
poly learning rate, psa's augmentation.

A training run writes ``<checkpoint>.last`` after every epoch (model, optimiser, history, the
settings) and ``<checkpoint>`` when it finishes. :func:`load_or_train_classifier` loads the finished
checkpoint when it is there, resumes from ``.last`` when a run was interrupted, and trains
otherwise; a checkpoint made with other settings is never silently reused or overwritten.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from infercam.cam import normalise, state_fingerprint
from infercam.config import (FREEZABLE_BACKBONES, autocast, make_cuda_repeatable, no_bar, nondeterministic_ops,
                             record_nondeterministic_ops, resolve_path)
from infercam.models import build_classifier
from infercam.transforms import ClassificationAugment


@dataclass
class TrainingSettings:
    """Settings every training here shares; the defaults are psa's classifier's for ResNet-38 (batch
    16, 15 epochs, crop 448, long side 256..512, SGD lr 0.01 with x2/x10/x20 groups, wd 5e-4, poly 0.9)."""

    backbone: str = "resnet38d"
    width: int = 64
    output_stride: int = 8  # while training; CAM inference may use another
    epochs: int = 15
    batch_size: int = 16
    crop: int = 448
    resize_long: tuple[int, int] = (256, 512)
    colour_jitter: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.1)
    optimizer: str = "sgd"  # or "adamw"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    head_lr_multiplier: float = 10.0
    bias_lr_multiplier: float = 2.0
    poly_power: float = 0.9
    warmup_steps: int = 0
    mixed_precision: bool | str = "auto"
    num_workers: int = 1
    seed: int = 0
    initial_weights: str = ""  # a checkpoint (or bare state dict) to start from instead of random weights
    frozen_stages: int = 0  # an ImageNet backbone's stem and first stages that stay fixed (efficientnet_lite0)

    def __post_init__(self):
        self.resize_long = tuple(self.resize_long)
        self.colour_jitter = tuple(self.colour_jitter)
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def identity(self) -> dict:
        """What decides the trained weights, as saved with a checkpoint and with the maps made by it:
        :meth:`to_dict`, but the weights it starts from named by their fingerprint
        (``"weights:<sha256>"``) rather than their file's path, so that a work_dir copied or moved
        elsewhere keeps its checkpoints, while a retrained classifier still invalidates them. A file
        that is not there keeps its path (a finished network whose starting point was deleted)."""
        values = self.to_dict()
        if self.initial_weights and resolve_path(self.initial_weights).is_file():
            values["initial_weights"] = initial_weights_fingerprint(self.initial_weights)
        return values


@dataclass
class ClassifierTraining(TrainingSettings):
    """The classifier's run. Split & unite as a training augmentation (paper section 4.3): the
    chance that an image is replaced by one of its split & unite patches, with the image's labels."""

    split_unite_probability: float = 0.0


@dataclass
class AffinityTraining(TrainingSettings):
    """AffinityNet's run; the defaults are psa's (batch 8, 8 epochs, crop 448, long side 448..768,
    SGD lr 0.1 — SEAM uses 0.01 —, wd 5e-4, head x10), pairs within ``radius`` on the stride-8 grid."""

    epochs: int = 8
    batch_size: int = 8
    resize_long: tuple[int, int] = (448, 768)
    lr: float = 0.1
    radius: int = 5
    labels: str = ""  # what the affinity labels are (:func:`infercam.cam.labels_identity`), set when trained or loaded


class AugmentedClassification(torch.utils.data.Dataset):
    """(augmented uint8 image (3, crop, crop), multi-hot label (20,)) of a VOCSegmentation split.
    With ``patches`` (name -> split & unite patches), an image is replaced by one of its patches,
    drawn at random, with chance ``patch_probability``; the label stays the image's."""

    def __init__(self, dataset, augment: ClassificationAugment, patches: dict | None = None,
                 patch_probability: float = 0.0):
        self.dataset, self.augment = dataset, augment
        self.patches, self.patch_probability = patches or {}, patch_probability
        self.labels = torch.from_numpy(dataset.cls_labels.astype(np.float32))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        name = self.dataset.names[index]
        image = self.dataset.load_image(name)
        patches = self.patches.get(name)
        if patches and torch.rand(()).item() < self.patch_probability:
            patch = patches[int(torch.randint(len(patches), ()).item())]
            image = image[patch.rows, patch.columns]
        image = self.augment(image)
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), self.labels[index]


def poly_lr(base_lr: float, step: int, total_steps: int, power: float = 0.9, warmup_steps: int = 0) -> float:
    """psa's poly schedule lr * (1 - step / total)^power, after an optional linear warm-up."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return base_lr * (1 - min(step, total_steps - 1) / total_steps) ** power


def make_optimizer(model: nn.Module, settings: TrainingSettings) -> torch.optim.Optimizer:
    """psa's four parameter groups: weights x1 (decayed), biases/norms x2, head weights x10 (decayed),
    head biases x20; the multipliers are settings (1 and 1 when everything starts from scratch)."""
    head, bias = settings.head_lr_multiplier, settings.bias_lr_multiplier
    multipliers = ((1.0, True), (bias, False), (head, True), (head * bias, False))
    groups = [{"params": params, "lr_multiplier": multiplier, "weight_decay": settings.weight_decay if decay else 0.0}
              for params, (multiplier, decay) in zip(model.parameter_groups(), multipliers) if params]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum)
    return torch.optim.AdamW(groups, lr=settings.lr)


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Atomic write: an interrupted save leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The dict saved at ``path``, on the CPU; :class:`CheckpointError` when it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"corrupt checkpoint {path}: {error}; delete it to train again") from error


def _check_settings(path: Path, state: dict, settings: TrainingSettings, identity: dict | None = None) -> None:
    """Raise CheckpointError unless the checkpoint was made with ``settings`` (``identity``: their
    :meth:`~TrainingSettings.identity`, when already computed)."""
    # A setting added after the checkpoint was made counts as its default (the behaviour before it existed).
    saved = {**type(settings)(backbone=settings.backbone).to_dict(), **state.get("settings", {})}
    wanted = identity or settings.identity()
    if saved["initial_weights"] == settings.initial_weights:  # saved before the fingerprint replaced the path
        saved["initial_weights"] = wanted["initial_weights"]
    differences = {key: (saved.get(key), value) for key, value in wanted.items() if saved.get(key) != value}
    if differences:
        shown = ", ".join(f"{key}: saved {old!r} vs now {new!r}" for key, (old, new) in differences.items())
        raise CheckpointError(f"{path} was made with other settings ({shown}); delete it to train with the new "
                              f"settings, or use another work_dir to keep it")


def classifier_from_checkpoint(state: dict) -> nn.Module:
    settings = state["settings"]
    # imagenet=False: the checkpoint's weights replace the ImageNet start anyway
    model = build_classifier(settings["backbone"], width=settings["width"], output_stride=settings["output_stride"],
                             imagenet=False)
    model.load_state_dict(state["model"])
    return model


def train_classifier(dataset, settings: ClassifierTraining, checkpoint: str | os.PathLike,
                     device: torch.device | str = "cpu", progress: bool = True,
                     patches: dict | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """Train (or resume training) a classifier on ``dataset``; returns the model and the per-step
    history (epoch, step, lr, loss, seconds). ``patches``: name -> split & unite patches, needed when
    ``settings.split_unite_probability`` > 0."""
    if settings.split_unite_probability > 0 and not patches:
        raise ValueError("split & unite training needs each image's patches: plan them from its baseline CAMs "
                         "(infercam.split_unite.plan_dataset_patches)")
    device = torch.device(device)
    torch.manual_seed(settings.seed)
    model = build_classifier(settings.backbone, width=settings.width, output_stride=settings.output_stride).to(device)
    load_initial_weights(model, settings.initial_weights)
    freeze_stages(model, settings.frozen_stages)
    augment = ClassificationAugment(settings.crop, settings.resize_long, settings.colour_jitter)
    data = AugmentedClassification(dataset, augment, patches, settings.split_unite_probability)

    def batch_loss(batch) -> torch.Tensor:
        images, labels = batch
        images, labels = normalise(images.to(device, non_blocking=True)), labels.to(device)
        with autocast(device, settings.mixed_precision):
            logits = model(images)
        return F.multilabel_soft_margin_loss(logits.float(), labels)

    return model, fit(model, data, batch_loss, settings, checkpoint, device, progress)


def freeze_stages(model: nn.Module, count: int) -> None:
    """Freeze the stem and first ``count`` stages of ``model.backbone`` (weights and BatchNorm
    statistics), when ``count`` > 0: for a backbone that starts from ImageNet's weights."""
    if not count:
        return
    backbone = getattr(model, "backbone", None)
    if not hasattr(backbone, "freeze_stages"):
        raise ValueError(f"frozen_stages={count}: only an ImageNet backbone ({', '.join(FREEZABLE_BACKBONES)}) has "
                         f"stages to freeze; set frozen_stages to 0 for another backbone")
    backbone.freeze_stages(count)


def _initial_state(initial_weights: str) -> dict:
    """The state dict in the file ``initial_weights`` (a checkpoint of this module or a bare state dict)."""
    path = resolve_path(initial_weights)
    if not path.is_file():
        raise FileNotFoundError(f"no weights to start from at {path} (initial_weights): train them first "
                                "(notebooks/01_baseline_cam.ipynb) or get psa's (data_scripts/get_psa_weights.py)")
    state = load_checkpoint(path)
    return state.get("model", state)


def initial_weights_fingerprint(initial_weights: str) -> str:
    """``"weights:<sha256>"`` of the weights in the file ``initial_weights`` (see :func:`state_fingerprint`)."""
    return f"weights:{state_fingerprint(_initial_state(initial_weights))}"


def load_initial_weights(model: nn.Module, initial_weights: str) -> None:
    """Start from ``initial_weights`` (a checkpoint of this module or a bare state dict such as
    psa's), when given."""
    if initial_weights:
        model.load_state_dict(_initial_state(initial_weights))


def load_backbone_weights(model: nn.Module, path: str | os.PathLike) -> int:
    """Copy into ``model`` every tensor of the checkpoint or state dict at ``path`` whose name and
    shape it shares (a classifier's backbone into AffinityNet or DeepLab), or, for a bare backbone's
    state dict (torchvision's ImageNet ResNet-101), that ``model.backbone`` shares; returns how
    many. None shared is an error: the file is for another network."""
    path = resolve_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no backbone weights at {path}: train the classifier first "
                                "(notebooks/01_baseline_cam.ipynb) or get psa's (data_scripts/get_psa_weights.py)")
    state = load_checkpoint(path)
    state = state.get("model", state)
    own = model.state_dict()
    shared = {key: value for key, value in state.items() if key in own and own[key].shape == value.shape}
    if not shared and hasattr(model, "backbone"):
        shared = {f"backbone.{key}": value for key, value in state.items()
                  if own.get(f"backbone.{key}") is not None and own[f"backbone.{key}"].shape == value.shape}
    if not shared:
        raise ValueError(f"{path} shares no weights with {type(model).__name__}: it was made for another network")
    model.load_state_dict(shared, strict=False)
    return len(shared)


def _loss_and_record(result) -> tuple[torch.Tensor, dict]:
    loss, recorded = result if isinstance(result, tuple) else (result, {})
    return loss, {name: float(value) for name, value in recorded.items()}


def fit(model: nn.Module, data, batch_loss, settings: TrainingSettings, checkpoint: str | os.PathLike,
        device: torch.device, progress: bool = True) -> pd.DataFrame:
    """The loop every training here shares: psa's parameter groups and poly schedule, batches and
    augmentation seeded per epoch, ``<checkpoint>.last`` after every epoch (an interrupted run
    resumes to the same weights), the final checkpoint, and a clear stop when the loss diverges.
    On CUDA, deterministic algorithms (:func:`~infercam.config.make_cuda_repeatable`); the
    operations that have none are saved with the checkpoints (``nondeterministic_ops``).
    ``batch_loss(batch) -> loss`` or ``(loss, {name: float})``, whose named values join the
    history. Returns the per-step history."""
    if device.type == "cuda":
        make_cuda_repeatable()
    checkpoint = Path(checkpoint)
    last = checkpoint.with_name(checkpoint.name + ".last")
    optimizer = make_optimizer(model, settings)
    identity = settings.identity()
    history, start_epoch = [], 0
    if last.exists():
        state = load_checkpoint(last)
        _check_settings(last, state, settings, identity)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, start_epoch = state["history"], state["epoch"]
        record_nondeterministic_ops(state.get("nondeterministic_ops", []))
    steps_per_epoch = len(data) // settings.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(data)} training images are fewer than one batch of {settings.batch_size}")
    total_steps = steps_per_epoch * settings.epochs
    for epoch in range(start_epoch, settings.epochs):
        # Seeds per epoch (the batches; the augmentation in the main process or, through the
        # generator, in the workers): a resumed run draws what an uninterrupted one draws.
        epoch_seed = settings.seed * 1000 + epoch
        torch.manual_seed(epoch_seed)
        generator = torch.Generator().manual_seed(epoch_seed)
        # data already in memory (cached features) is indexed faster than a worker process starts
        workers = 0 if getattr(data, "in_memory", False) else settings.num_workers
        loader = torch.utils.data.DataLoader(data, batch_size=settings.batch_size, shuffle=True, drop_last=True,
                                             num_workers=workers, generator=generator,
                                             pin_memory=device.type == "cuda")
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", disable=no_bar(progress), leave=False)
        started = time.time()
        for index, batch in enumerate(bar):
            step = epoch * steps_per_epoch + index
            lr = poly_lr(settings.lr, step, total_steps, settings.poly_power, settings.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_multiplier"]
            loss, recorded = _loss_and_record(batch_loss(batch))
            loss_value = loss.item()  # once: each .item() waits for the GPU
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"the loss diverged to {loss_value} at step {step} (lr {lr:.2e}); "
                                         f"lower the learning rate (psa: 0.1 diverges for ResNet-38, 0.01 works)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append({"epoch": epoch, "step": step, "lr": lr, "loss": loss_value,
                            "seconds": time.time() - started, **recorded})
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.1e}")
        save_checkpoint(last, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                               "history": history, "settings": identity,
                               "nondeterministic_ops": nondeterministic_ops()})
    save_checkpoint(checkpoint, {"model": model.state_dict(), "history": history, "settings": identity,
                                 "nondeterministic_ops": nondeterministic_ops()})
    last.unlink(missing_ok=True)
    return pd.DataFrame(history)


def training_seconds(history: pd.DataFrame) -> float:
    """What a :func:`fit` history's training took: each epoch's last ``seconds`` (counted from the
    epoch's start, so loading data before it and evaluating after it are left out), summed."""
    return float(history["seconds"].groupby(history["epoch"]).max().sum())


def load_finished(checkpoint: str | os.PathLike, settings: TrainingSettings, build,
                  device: torch.device | str = "cpu") -> tuple[nn.Module, pd.DataFrame] | None:
    """The model (on ``device``) of a finished ``checkpoint`` made with ``settings``
    (``build(state) -> model`` makes its empty model) and its history, or None when there is none yet."""
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        return None
    state = load_checkpoint(checkpoint)
    _check_settings(checkpoint, state, settings)
    record_nondeterministic_ops(state.get("nondeterministic_ops", []))  # its training's, for this run's metrics
    model = build(state)
    model.load_state_dict(state["model"])
    return model.to(device), pd.DataFrame(state["history"])


def load_or_train_classifier(dataset, settings: ClassifierTraining, checkpoint: str | os.PathLike,
                             device: torch.device | str = "cpu", progress: bool = True,
                             patches: dict | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """The finished checkpoint if there is one (made with these settings), else train or resume."""
    return (load_finished(checkpoint, settings, classifier_from_checkpoint, device)
            or train_classifier(dataset, settings, checkpoint, device, progress, patches))


@torch.no_grad()
def predict_scores(model: nn.Module, dataset, device: torch.device | str = "cpu", mixed_precision: bool | str = "auto",
                   progress: bool = True) -> np.ndarray:
    """Sigmoid class scores (N, 20) of every whole image of ``dataset`` (one image per forward:
    VOC's images differ in size)."""
    device = torch.device(device)
    model.eval()
    scores = []
    for name in tqdm(dataset.names, desc=f"scores of {dataset.split}", disable=no_bar(progress), leave=False):
        image = torch.from_numpy(np.ascontiguousarray(dataset.load_image(name))).permute(2, 0, 1)[None]
        with autocast(device, mixed_precision):
            logits = model(normalise(image.to(device)))
        scores.append(torch.sigmoid(logits.float())[0].cpu().numpy())
    return np.stack(scores)


def load_baseline_classifier(work_dir: str | os.PathLike, profile: str, classifier_weights: str = "",
                             backbone: str = "resnet38d", output_stride: int = 8,
                             device: torch.device | str = "cpu") -> nn.Module:
    """The fixed classifier that the later steps query, at ``output_stride``, in eval mode: the
    state dict ``classifier_weights`` when given (the paper profile: psa's ``res38_cls.pth`` into
    ``backbone``), else the one ``notebooks/01_baseline_cam.ipynb`` trained into ``work_dir``."""
    if classifier_weights:
        path = resolve_path(classifier_weights)
        if not path.is_file():
            raise FileNotFoundError(f"no classifier weights at {path}: get psa's with "
                                    f"python data_scripts/get_psa_weights.py --root data")
        model = build_classifier(backbone, output_stride=8 if backbone == "resnet38d" else output_stride)
        model.load_state_dict(torch.load(path, map_location="cpu"), strict=True)
    else:
        checkpoint = resolve_path(work_dir) / "classifier" / "classifier.pth"
        if not checkpoint.is_file():
            raise FileNotFoundError(f"no trained classifier at {checkpoint}: run notebooks/01_baseline_cam.ipynb "
                                    f"with the same work_dir first (for the profile's own work_dir: "
                                    f"python -m infercam.notebooks --profile {profile} --only 01_baseline_cam)")
        model = classifier_from_checkpoint(load_checkpoint(checkpoint))
    if hasattr(model, "set_output_stride"):
        model.set_output_stride(output_stride)
    return model.to(device).eval()
