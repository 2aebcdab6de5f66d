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

``later_scales`` (the ``"fast"`` setting of :class:`infercam.conditional.MethodSettings`):
the scales of the passes after the first, which only have to find what the erasing newly reveals.
None (the paper) repeats the whole protocol at every pass. A later pass's raw maps are summed over
fewer inputs, so they are weighed by (inputs of the protocol) / (inputs of the later pass) to stay
on the first pass's scale, where ``"sum"`` adds them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from infercam.cam import PSA_SCALES, SETTING_ADDED_LATER, max_normalise, response_maps

#: How the passes are added (``accumulate``): see the module's description above.
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
    # the passes after the first (None: ``scales``, the paper); left out of the maps' settings at None,
    # so that folders made before it existed still count as made with the faithful setting
    later_scales: tuple[float, ...] | None = field(default=None, metadata={SETTING_ADDED_LATER: True})
    # images of different sizes iterate together, padded (response_maps' `pad`; split & unite's patches)
    pad_batches: bool = field(default=False, metadata={SETTING_ADDED_LATER: True})

    def __post_init__(self):
        if self.fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {self.fill!r}")
        if self.accumulate not in ACCUMULATIONS:
            raise ValueError(f"accumulate must be one of {ACCUMULATIONS}, got {self.accumulate!r}")
        if self.max_passes < 1:
            raise ValueError("max_passes must be at least 1")
        if self.later_scales is not None and not self.later_scales:
            raise ValueError("later_scales must name at least one scale, or be None (every pass at `scales`)")

    def __call__(self, model, image: np.ndarray, class_ids) -> np.ndarray:
        return self.run(model, image, class_ids)[0]

    def batch(self, model, images: list[np.ndarray], class_ids: list) -> list[np.ndarray]:
        """Maps of several images of one size (of any sizes with ``pad_batches``), their passes through the network together."""
        return [maps for maps, _ in self.run_batch(model, images, class_ids)]

    def run(self, model, image: np.ndarray, class_ids) -> tuple[np.ndarray, list[IterativePass]]:
        return self.run_batch(model, [image], [class_ids])[0]

    def run_batch(self, model, images: list[np.ndarray], class_ids: list
                  ) -> list[tuple[np.ndarray, list[IterativePass]]]:
        """(maps, passes) of each image. The images' passes run in
        lock-step, one forward per scale for all the images still
        iterating; each image stops on its own, so every image gets what it
        would get alone."""
        states = [_Iteration(image, [int(c) for c in ids])
                  for image, ids in zip(images, class_ids)]
        active = [state for state in states if state.class_ids]
        first = True  # lock-step: all images are at their first pass, or none
        while active:
            later = not first and self.later_scales is not None
            scales = self.later_scales if later else self.scales
            raws = response_maps(model, [state.current for state in active],
                                 [state.class_ids for state in active], scales,
                                 self.flip, self.device, self.mixed_precision,
                                 self.pad_batches)
            weight = len(self.scales) / len(scales)
            for state, raw in zip(active, raws):
                self._add_pass(state, raw if weight == 1 else raw * weight)
            first = False
            active = [state for state in active if not state.done]
        return [(self._result(state), state.passes) for state in states]

    def _add_pass(self, state: "_Iteration", raw: torch.Tensor) -> None:
        """Add one pass's raw maps to the image's total, then erase what
        the pass newly finds at or above ``erase_threshold`` for the next
        pass, or stop when that is under ``stop_fraction`` of the image (or
        the passes reach ``max_passes``)."""
        normalised = max_normalise(raw)
        state.total = self._accumulated(state.total, raw, normalised)
        maps = normalised.cpu().numpy()
        # new: some class at or above the threshold, not erased before
        new = (maps.max(axis=0) >= self.erase_threshold) & ~state.erased
        state.passes.append(IterativePass(maps, new, float(new.mean())))
        if (new.mean() < self.stop_fraction
                or len(state.passes) == self.max_passes):
            state.done = True
            return
        state.erased |= new
        original = self.fill == "original_mean"
        fill = _mean_colour(state.image if original else state.current)
        state.current[state.erased] = fill

    def _accumulated(self, total: torch.Tensor | None, raw: torch.Tensor,
                     normalised: torch.Tensor) -> torch.Tensor:
        """The passes so far (``total``; None before the first) with this
        pass added: its raw maps summed (``"sum"``), its max-normalised
        maps summed (``"normalised_sum"``) or kept where they exceed the
        running maximum (``"max"``)."""
        if self.accumulate == "sum":
            return raw if total is None else total + raw
        if total is None:
            return normalised
        if self.accumulate == "normalised_sum":
            return total + normalised
        return torch.maximum(total, normalised)

    def _result(self, state: "_Iteration") -> np.ndarray:
        if state.total is None:  # no classes
            return np.zeros((0, *state.image.shape[:2]), dtype=np.float32)
        return (max_normalise(state.total) if self.normalise else state.total).cpu().numpy()


@dataclass
class _Iteration:
    """One image's state between passes."""

    image: np.ndarray
    class_ids: list[int]
    current: np.ndarray = None
    erased: np.ndarray = None
    total: torch.Tensor | None = None
    passes: list = field(default_factory=list)
    done: bool = False

    def __post_init__(self):
        self.current = self.image.copy()
        self.erased = np.zeros(self.image.shape[:2], dtype=bool)


def _mean_colour(image: np.ndarray) -> np.ndarray:
    return np.round(image.reshape(-1, 3).mean(axis=0)).astype(image.dtype)
