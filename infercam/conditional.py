"""The paper's CAM methods and their ablations, named by their settings.

A :class:`MethodSettings` says which modules run (split & unite, iterative inference, both, or
neither: the baseline) and every choice on which the paper and the official code differ; it builds
the method object (the shared call shape ``(model, image, class_ids[, baseline]) -> maps``) and
names the folder of its maps, ``<work_dir>/cams/<slug>/<split>``, so that every chapter and every
ablation run asking for the same method reuses the same maps (the folder's ``settings.json``
guards against mixing methods).

Defaults follow the paper: no overlap between patches, images with 3+ classes split per class,
each patch max-normalised on its own, erase at 0.7 with the original image's mean colour, stop below
1% newly erased, passes summed.

``conditional_inference``: ``"faithful"`` (the default, the paper's numbers) infers every
patch and every pass of iterative inference with the whole protocol; ``"fast"`` infers split &
unite's patches at the protocol's largest scale only (:func:`fast_patch_scales`: a patch shrunk to
half its size is a few map cells, and each forward costs a fixed overhead besides its pixels) and
iterative inference's passes after the first at its smallest scale only (:func:`fast_later_scales`:
they only have to find what the erasing newly reveals). ``benchmarks/conditional_inference.py`` and
``09_computation_time`` time both side by side and give the mIoU of each on the same images, with
the interval of their difference.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from infercam.cam import BaselineCAM, infer_method_cams
from infercam.config import resolve_path
from infercam.iterative import ACCUMULATIONS, IterativeInference
from infercam.split_unite import SplitUnite

PATCH_SCALES = ("per_patch", "common")
PATCH_BATCHES = ("by_size", "padded")
CONDITIONAL_INFERENCE = ("faithful", "fast")
SPLIT_FIELDS = ("many_classes", "buffer", "min_size", "patch_scale", "score_gate", "patch_batches", "conditional_inference")
ITERATIVE_FIELDS = ("erase_threshold", "stop_fraction", "max_passes", "accumulate", "fill", "conditional_inference")
KINDS = {(False, False): "baseline", (True, False): "split_unite", (False, True): "iterative", (True, True): "combined"}


@dataclass(frozen=True)
class MethodSettings:
    """Which modules run and how (see :mod:`infercam.split_unite` and :mod:`infercam.iterative`).

    ``patch_scale``: ``"per_patch"`` (the paper) max-normalises each patch's map on its own;
    ``"common"`` keeps the patches on the classifier's own scale and normalises once after the
    union.

    ``patch_batches``: ``"by_size"`` (exact) sends an image's patches of one size through the
    network together; ``"padded"`` pads patches of different sizes into common batches
    (:func:`infercam.cam.padded_groups`), fewer forwards for slightly different maps near the
    padded edges."""

    split_unite: bool = False
    iterative: bool = False
    many_classes: str = "per_class"
    buffer: int = 0
    min_size: int = 16
    patch_scale: str = "per_patch"
    score_gate: float | None = None
    erase_threshold: float = 0.7
    stop_fraction: float = 0.01
    max_passes: int = 5
    accumulate: str = "sum"
    fill: str = "original_mean"
    conditional_inference: str = "faithful"
    patch_batches: str = "by_size"

    def __post_init__(self):
        if self.conditional_inference not in CONDITIONAL_INFERENCE:
            raise ValueError(f"conditional_inference must be one of {CONDITIONAL_INFERENCE} ('faithful': every patch "
                             f"and pass at the whole protocol, the paper; 'fast': patches at its largest scale, later "
                             f"passes at its smallest), got {self.conditional_inference!r}")
        if self.patch_batches not in PATCH_BATCHES:
            raise ValueError(f"patch_batches must be one of {PATCH_BATCHES} ('by_size': exact; 'padded': patches of "
                             f"different sizes padded into common batches), got {self.patch_batches!r}")
        if self.patch_scale not in PATCH_SCALES:
            raise ValueError(f"patch_scale must be one of {PATCH_SCALES}, got {self.patch_scale!r}")
        if self.accumulate not in ACCUMULATIONS:
            raise ValueError(f"accumulate must be one of {ACCUMULATIONS}, got {self.accumulate!r}")

    @classmethod
    def from_parameters(cls, parameters: dict) -> "MethodSettings":
        """The settings among a notebook's parameters (other keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in parameters.items() if key in names})

    @property
    def kind(self) -> str:
        """'baseline', 'split_unite', 'iterative' or 'combined'."""
        return KINDS[(bool(self.split_unite), bool(self.iterative))]

    def changed(self) -> dict:
        """The settings that apply to this kind and differ from the paper's."""
        applying = (SPLIT_FIELDS if self.split_unite else ()) + (ITERATIVE_FIELDS if self.iterative else ())
        default = MethodSettings()
        return {name: getattr(self, name) for name in applying if getattr(self, name) != getattr(default, name)}

    @property
    def slug(self) -> str:
        """Folder name: the kind, then each changed setting, e.g. ``iterative-stop_fraction=0.02``."""
        return "-".join([self.kind] + [f"{name}={value}" for name, value in self.changed().items()])

    def build(self, scales, flip: bool = True, device="cpu", mixed_precision: bool = False):
        """The method object, with the CAM protocol's scales and flips at every forward (the fast
        setting: fewer scales for the patches and the later passes)."""
        fast = self.conditional_inference == "fast"
        protocol = dict(scales=fast_patch_scales(scales) if fast and self.split_unite else tuple(scales), flip=flip,
                        device=device, mixed_precision=mixed_precision,
                        pad_batches=self.split_unite and self.patch_batches == "padded")
        # The combined module's patches stay on their common scale too when asked (normalised after the union).
        on_own_scale = self.patch_scale == "per_patch" or not self.split_unite
        if self.iterative:
            later_scales = fast_later_scales(scales) if fast else None
            inner = IterativeInference(erase_threshold=self.erase_threshold, stop_fraction=self.stop_fraction,
                                       max_passes=self.max_passes, accumulate=self.accumulate, fill=self.fill,
                                       normalise=on_own_scale, later_scales=later_scales, **protocol)
        else:
            inner = BaselineCAM(normalise=on_own_scale, **protocol)
        if not self.split_unite:
            return inner
        return SplitUnite(inner, many_classes=self.many_classes, buffer=self.buffer, min_size=self.min_size,
                          score_gate=self.score_gate)


def fast_patch_scales(scales) -> tuple[float, ...]:
    """The scales of split & unite's patches (and of their first pass in the combined module) in the
    ``"fast"`` setting: the protocol's largest."""
    return (max(float(scale) for scale in scales),)


def fast_later_scales(scales) -> tuple[float, ...]:
    """The scales of iterative inference's passes after the first in the ``"fast"`` setting: the
    protocol's smallest (a quarter of the pixels at 0.5)."""
    return (min(float(scale) for scale in scales),)


def maps_dir(work_dir: str | os.PathLike, settings: MethodSettings, split: str) -> Path:
    """``<work_dir>/cams/<slug>/<split>``: where the maps of a method on a split live."""
    return resolve_path(work_dir) / "cams" / settings.slug / split


def compute_maps(settings: MethodSettings, model, dataset, work_dir: str | os.PathLike, scales, flip: bool = True,
                 device="cpu", mixed_precision: bool = False, names: list[str] | None = None,
                 progress: bool = True, batch_size: int = 1) -> Path:
    """The method's maps of ``names`` (default: the whole split) in :func:`maps_dir`, computing only
    the missing ones; split & unite first makes the baseline maps it splits by. ``batch_size``:
    images of one size per forward (see :func:`infer_method_cams`)."""
    baseline_dir = None
    if settings.split_unite:
        baseline_dir = compute_maps(MethodSettings(), model, dataset, work_dir, scales, flip, device,
                                    mixed_precision, names, progress, batch_size)
    method = settings.build(scales, flip, device, mixed_precision)
    return infer_method_cams(method, model, dataset, maps_dir(work_dir, settings, dataset.split),
                             baseline_dir=baseline_dir, names=names, progress=progress, batch_size=batch_size)
