"""Split & unite (paper section 3.2, Fig. 3): infer the classifier on parts of the image, each
part holding a piece of the object, and unite the parts' maps by element-wise maximum.

Where to split comes from the baseline CAM: the centre of mass of each class's (max-normalised,
unthresholded) map.

* 1 class: the four quadrants about its centre.
* 2 classes: the rectangle spanned by the two centres is kept in all four patches, whose outer
  corners are the image's corners (Fig. 3, second row).
* 3+ classes: the paper splits "by the CAM mass center for each class separately": each class gets
  its own four quadrants, which give that class's map only (``many_classes="per_class"``); the
  official code does not split such images (``many_classes="none"``: the baseline map is kept).

``buffer`` lets neighbouring patches overlap by that many pixels each way (the official code: 10 px
for one class, 20 px for two; the paper: none). Patches are clipped to the image (never wrapped
around, unlike the official code's negative slices), and a split line is kept ``min_size`` pixels
from the image's edges so that no patch is a sliver (our choice; neither the paper nor the code has
one: a centre on the border would give a patch a few pixels wide, whose max-normalised map is noise).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from infercam.cam import infer_in_batches, load_cams, to_tensor


@dataclass(frozen=True)
class Patch:
    """A half-open box ``[top, bottom) x [left, right)`` and the classes whose maps it gives."""

    top: int
    left: int
    bottom: int
    right: int
    class_ids: tuple[int, ...]

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def rows(self) -> slice:
        return slice(self.top, self.bottom)

    @property
    def columns(self) -> slice:
        return slice(self.left, self.right)


def centre_of_mass(cam: np.ndarray) -> tuple[float, float]:
    """(y, x) centre of mass of a non-negative map; the image centre for
    a map that is all zero."""
    cam = np.clip(np.asarray(cam, dtype=np.float64), 0, None)
    total = cam.sum()
    height, width = cam.shape
    if total <= 0:
        return (height - 1) / 2, (width - 1) / 2
    ys, xs = np.arange(height), np.arange(width)
    y = ys @ cam.sum(axis=1) / total  # activation-weighted mean row
    x = xs @ cam.sum(axis=0) / total  # and column
    return float(y), float(x)


def _split_line(coordinate: float, size: int, min_size: int) -> int:
    """The pixel boundary at a centre coordinate (pixels < it go up/left,
    >= it down/right), kept ``min_size`` pixels from either edge so that
    no patch is a sliver."""
    line = np.floor(coordinate + 0.5)  # not round(): it rounds .5 to even
    return int(np.clip(line, min_size, size - min_size))


def quadrant_boxes(centre: tuple[float, float], height: int, width: int,
                   buffer: int = 0, min_size: int = 16) -> list[tuple]:
    """The four quadrants about ``centre`` as (top, left, bottom, right),
    each reaching ``buffer`` pixels into its neighbours, clipped to the
    image."""
    y = _split_line(centre[0], height, min_size)
    x = _split_line(centre[1], width, min_size)
    return [(0, 0, min(y + buffer, height), min(x + buffer, width)),
            (0, max(x - buffer, 0), min(y + buffer, height), width),
            (max(y - buffer, 0), 0, height, min(x + buffer, width)),
            (max(y - buffer, 0), max(x - buffer, 0), height, width)]


def rectangle_boxes(first: tuple[float, float], second: tuple[float, float],
                    height: int, width: int, buffer: int = 0,
                    min_size: int = 16) -> list[tuple]:
    """Two classes: the rectangle spanned by the two centres (grown by
    ``buffer``) lies in each of the four patches, which reach from it to
    one corner of the image each."""
    y0, y1 = sorted([first[0], second[0]])
    x0, x1 = sorted([first[1], second[1]])
    top = max(_split_line(y0, height, min_size) - buffer, 0)
    bottom = min(_split_line(y1, height, min_size) + buffer, height)
    left = max(_split_line(x0, width, min_size) - buffer, 0)
    right = min(_split_line(x1, width, min_size) + buffer, width)
    return [(0, 0, bottom, right), (0, left, bottom, width),
            (top, 0, height, right), (top, left, height, width)]


def plan_patches(cams: np.ndarray, class_ids,
                 many_classes: str = "per_class", buffer: int = 0,
                 min_size: int = 16) -> list[Patch]:
    """The patches to infer for an image from its baseline CAMs (K, H, W)
    of ``class_ids``; none for an image smaller than two ``min_size``
    patches or (``many_classes="none"``) with 3+ classes."""
    if many_classes not in ("per_class", "none"):
        raise ValueError(f"many_classes must be 'per_class' or 'none', "
                         f"got {many_classes!r}")
    class_ids = tuple(int(c) for c in class_ids)
    height, width = cams.shape[1:]
    if min(height, width) < 2 * min_size or not class_ids:
        return []
    centres = [centre_of_mass(cam) for cam in cams]
    size = dict(height=height, width=width, buffer=buffer,
                min_size=min_size)
    if len(class_ids) == 1:
        boxes = [(box, class_ids)
                 for box in quadrant_boxes(centres[0], **size)]
    elif len(class_ids) == 2:
        boxes = [(box, class_ids)
                 for box in rectangle_boxes(centres[0], centres[1], **size)]
    elif many_classes == "per_class":  # quadrants about each class's centre
        boxes = [(box, (c,)) for c, centre in zip(class_ids, centres)
                 for box in quadrant_boxes(centre, **size)]
    else:
        boxes = []
    return [Patch(*box, ids) for box, ids in boxes]


def unite(patch_maps: list[tuple[Patch, np.ndarray]], class_ids,
          shape: tuple[int, int]) -> np.ndarray:
    """Element-wise maximum of the patches' maps (one per class of the
    patch) in the full canvas: (K, H, W) float32 for ``class_ids``. Every
    pixel of a class must be covered by some patch."""
    class_ids = [int(c) for c in class_ids]
    united = np.full((len(class_ids), *shape), -np.inf, dtype=np.float32)
    for patch, maps in patch_maps:
        for map_, class_id in zip(maps, patch.class_ids):
            k = class_ids.index(class_id)
            region = united[k, patch.rows, patch.columns]  # a view
            np.maximum(region, map_, out=region)
    if np.isinf(united).any():
        raise ValueError("the patches leave pixels of some class uncovered")
    return united


def normalise_per_class(maps: np.ndarray) -> np.ndarray:
    """Each class's map (K, H, W) divided by its maximum over the image
    (+1e-5, psa's guard)."""
    return maps / (maps.max(axis=(1, 2), keepdims=True) + 1e-5)


@dataclass
class SplitUnite:
    """``(model, image, class_ids, baseline) -> maps (K, H, W)``: plan the patches from the baseline
    maps, infer each patch with ``inner`` (a method of the same call shape: :class:`BaselineCAM`
    for split & unite alone, :class:`IterativeInference` for the combined module), unite, and
    max-normalise the united map per class. :meth:`run` also returns the patches and their maps.

    How the patches' maps meet is the choice that decides the result:

    * the paper max-normalises each patch on its own (``inner`` normalises), so a patch that holds
      no part of the class still reaches 1 somewhere: its false positives count as much as the
      object in another patch;
    * ``BaselineCAM(normalise=False)`` as ``inner`` keeps the patches on the classifier's common
      scale, normalised once after the union;
    * ``score_gate``: the paper's Eq. 2 takes the class-conditional map only where the classifier
      says the class is there, h(c | I') > tau. With a gate, a patch gives class c's map only when
      its sigmoid score for c exceeds the gate (one extra forward of the patch at scale 1), else
      zeros."""

    inner: Callable
    many_classes: str = "per_class"
    buffer: int = 0
    min_size: int = 16
    score_gate: float | None = None

    def __call__(self, model, image: np.ndarray, class_ids, baseline: np.ndarray) -> np.ndarray:
        return self.run(model, image, class_ids, baseline)[0]

    def run(self, model, image: np.ndarray, class_ids, baseline: np.ndarray):
        """(united maps, patches, each patch with its maps)."""
        patches = plan_patches(baseline, class_ids, self.many_classes,
                               self.buffer, self.min_size)
        if not patches:
            return np.asarray(baseline, dtype=np.float32), [], []
        patch_maps = self.infer_patches(model, image, patches)
        united = unite(patch_maps, class_ids, image.shape[:2])
        return normalise_per_class(united), patches, patch_maps

    def infer_patches(self, model, image: np.ndarray,
                      patches: list[Patch]) -> list[tuple]:
        """Each patch with its maps (one per class of the patch): ``inner``
        run on the patch's pixels alone, as if it were a whole image, so
        that with the paper's rule each patch's map is max-normalised on
        its own; with ``score_gate``, zeros for a class the classifier does
        not see in the patch."""
        crops = [image[patch.rows, patch.columns] for patch in patches]
        classes = [list(patch.class_ids) for patch in patches]
        # patches of one size go through the network together
        inferred = infer_in_batches(self.inner, model, crops, classes)
        patch_maps = []
        for patch, crop, maps in zip(patches, crops, inferred):
            maps = np.asarray(maps, dtype=np.float32)
            if self.score_gate is not None:
                scores = self._scores(model, crop, patch.class_ids)
                maps = maps * (scores > self.score_gate)[:, None, None]
            patch_maps.append((patch, maps))
        return patch_maps

    def _scores(self, model, crop: np.ndarray, class_ids) -> np.ndarray:
        device = getattr(self.inner, "device", "cpu")
        with torch.no_grad():
            logits = model(to_tensor(crop)[None].to(device))
        return torch.sigmoid(logits.float())[0, list(class_ids)].cpu().numpy()


def plan_dataset_patches(names, cam_dir, many_classes: str = "per_class", buffer: int = 0,
                         min_size: int = 16) -> dict[str, list[Patch]]:
    """name -> the patches :func:`plan_patches` gives from the image's saved baseline CAMs in
    ``cam_dir`` (for split & unite as a training augmentation)."""
    plans = {}
    for name in names:
        cams, class_ids = load_cams(Path(cam_dir) / f"{name}.npz")
        plans[name] = plan_patches(cams, class_ids, many_classes, buffer, min_size)
    return plans


def patch_responses(model, image: np.ndarray, class_ids, baseline: np.ndarray, truth: np.ndarray, scales,
                    flip: bool = True, device="cpu", mixed_precision: bool = False, many_classes: str = "per_class",
                    buffer: int = 0, min_size: int = 16) -> list[dict]:
    """How the classifier answers each split & unite patch on its own, against the same pixels seen
    inside the whole image: one row per (patch, class) with the share of the patch that is the
    class's object (``truth``: VOC label map), the patch's peak raw response over the whole image's
    peak on those pixels, and whether each peak lies on the object. If the paper's premise holds,
    a patch holding part of the object answers *more* strongly than the image did there."""
    from infercam.cam import response_maps

    class_ids = [int(c) for c in class_ids]
    whole = response_maps(model, [image], [class_ids], scales, flip, device, mixed_precision)[0].float().cpu().numpy()
    rows = []
    for index, patch in enumerate(plan_patches(baseline, class_ids, many_classes, buffer, min_size)):
        alone = response_maps(model, [image[patch.rows, patch.columns]], [list(patch.class_ids)], scales, flip, device,
                              mixed_precision)[0].float().cpu().numpy()
        for maps, class_id in zip(alone, patch.class_ids):
            inside = whole[class_ids.index(class_id), patch.rows, patch.columns]
            on_object = truth[patch.rows, patch.columns] == class_id + 1
            rows.append({"patch": index, "class_id": class_id, "object_share": float(on_object.mean()),
                         "peak_ratio": float(maps.max() / max(inside.max(), 1e-5)),
                         "patch_peak_on_object": bool(on_object.flat[maps.argmax()]),
                         "image_peak_on_object": bool(on_object.flat[inside.argmax()])})
    return rows
