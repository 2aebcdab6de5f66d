"""Iterative inference, "hide and re-infer" (paper section 3.2, Fig. 4): erase where the map is
high, show the erased image to the same fixed classifier, add what it finds, repeat.

Pass 0 is the baseline CAM protocol on the image. After each pass, the pixels where some class's
(max-normalised) pass map is >= ``erase_threshold`` (0.7) are painted with the image's mean colour,
and the next pass sees the painted image. The iteration stops when a pass reveals high activation
on less than ``stop_fraction`` of the image (the paper: 1%; the official code: 2%, 1% until March
2022), or after ``max_passes`` passes (the official code: 5; the paper gives no limit).

How the passes are added decides the result (``accumulate``):

* ``"sum"`` (the paper: "add the newly generated activation map of every iteration together"):
  the passes' raw maps are summed on their common scale and the sum is max-normalised once, so a
  pass in which the classifier barely sees the class adds little;
* ``"normalised_sum"``: each pass max-normalised, then summed (a weak pass counts as much as the
  first);
* ``"max"`` (the official code): running element-wise maximum of the max-normalised passes.

Erased pixels are painted with the original image's mean colour (the paper); ``fill="current_mean"``
takes the mean of the image as the pass saw it, erased parts included (the official code, which
takes it per scale of the normalised input: the same colour up to resampling).

The image is erased once, before it is scaled and flipped, so the flipped inputs are erased where
the unflipped ones are (the official code erases flipped inputs with the unflipped mask).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from infercam.cam import PSA_SCALES, max_normalise, response_maps

ACCUMULATIONS = ("sum", "normalised_sum", "max")
FILLS = ("original_mean", "current_mean")


@dataclass
class IterativePass:
    """What one pass saw and found: its max-normalised maps, the pixels it newly erases (those that
    the next pass sees painted), and their share of the image."""

    maps: np.ndarray
    new_erased: np.ndarray
    new_fraction: float


@dataclass
class IterativeInference:
    """``(model, image, class_ids) -> maps (K, H, W)`` with the CAM protocol's scales and flips at
    every pass; :meth:`run` also returns the passes."""

    scales: tuple[float, ...] = PSA_SCALES
    flip: bool = True
    erase_threshold: float = 0.7
    stop_fraction: float = 0.01
    max_passes: int = 5
    accumulate: str = "sum"
    device: str | torch.device = "cpu"
    mixed_precision: bool = False
    normalise: bool = True  # False: the accumulated maps on their own scale (the raw sum for "sum")
    fill: str = "original_mean"  # or "current_mean": the mean of the image this pass sees (the official code)

    def __post_init__(self):
        if self.fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {self.fill!r}")
        if self.accumulate not in ACCUMULATIONS:
            raise ValueError(f"accumulate must be one of {ACCUMULATIONS}, got {self.accumulate!r}")
        if self.max_passes < 1:
            raise ValueError("max_passes must be at least 1")

    def __call__(self, model, image: np.ndarray, class_ids) -> np.ndarray:
        return self.run(model, image, class_ids)[0]

    def run(self, model, image: np.ndarray, class_ids) -> tuple[np.ndarray, list[IterativePass]]:
        class_ids = [int(c) for c in class_ids]
        height, width = image.shape[:2]
        if not class_ids:
            return np.zeros((0, height, width), dtype=np.float32), []
        current = image.copy()
        erased = np.zeros((height, width), dtype=bool)
        total, passes = None, []
        for _ in range(self.max_passes):
            raw = response_maps(model, [current], [class_ids], self.scales, self.flip, self.device,
                                self.mixed_precision)[0]
            normalised = max_normalise(raw)
            if total is None:
                total = raw if self.accumulate == "sum" else normalised
            elif self.accumulate == "sum":
                total = total + raw
            elif self.accumulate == "normalised_sum":
                total = total + normalised
            else:
                total = torch.maximum(total, normalised)
            maps = normalised.cpu().numpy()
            new = (maps.max(axis=0) >= self.erase_threshold) & ~erased
            passes.append(IterativePass(maps, new, float(new.mean())))
            if new.mean() < self.stop_fraction or len(passes) == self.max_passes:
                break
            erased |= new
            current[erased] = _mean_colour(image if self.fill == "original_mean" else current)
        return (max_normalise(total) if self.normalise else total).cpu().numpy(), passes


def _mean_colour(image: np.ndarray) -> np.ndarray:
    return np.round(image.reshape(-1, 3).mean(axis=0)).astype(image.dtype)
