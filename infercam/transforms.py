"""psa's training augmentation for the classifier, on uint8 images.

psa: random resize of the long side to 256..512 px, colour jitter (brightness, contrast, saturation
0.3, hue 0.1), ImageNet normalisation, a random crop of 448 px that pads with zeros where the image is
smaller (zero after normalisation = the ImageNet mean colour), horizontal flip. Here the padding is
the mean colour in uint8, which normalises to ~0, and the jitter runs after the crop (on fewer
pixels; the result has the same distribution). All randomness comes from torch's generator, which
the DataLoader seeds per worker, so a seeded run repeats.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import ColorJitter

from infercam.cam import IMAGENET_MEAN
from infercam.voc import IGNORE_INDEX

MEAN_COLOUR = tuple(round(255 * m) for m in IMAGENET_MEAN)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def _randint(high: int) -> int:
    """Uniform integer in 0..high (inclusive)."""
    return int(torch.randint(0, high + 1, ()).item())


class ClassificationAugment:
    """``augment(image) -> (crop, crop, 3)`` uint8: resize long side, crop (mean-colour padded),
    flip, colour jitter. ``augment(image, label, ...)`` also returns the maps moved the same way
    (affinity labels for AffinityNet; pseudo labels and saliency for the segmentation network)."""

    def __init__(self, crop: int, resize_long: tuple[int, int], jitter=(0.3, 0.3, 0.3, 0.1), flip: bool = True):
        if resize_long[0] > resize_long[1]:
            raise ValueError(f"resize_long must be (min, max), got {resize_long}")
        self.crop, self.resize_long, self.flip = crop, tuple(resize_long), flip
        self.jitter = ColorJitter(*jitter) if jitter and any(jitter) else None

    def __call__(self, image: np.ndarray, *maps: np.ndarray, fills: tuple[int, ...] | None = None):
        """The augmented image, or (image, *maps) with each uint8 map (H, W) moved the same way
        (nearest-neighbour resize; padded with ``fills``, default 255 = ignore for each)."""
        picture = Image.fromarray(image)
        long_side = round(_uniform(*self.resize_long))
        scale = long_side / max(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.BILINEAR)
        offsets = (_randint(abs(size[0] - self.crop)), _randint(abs(size[1] - self.crop)))
        picture = self._crop(picture, offsets, MEAN_COLOUR)
        flipped = self.flip and torch.rand(()).item() < 0.5
        if flipped:
            picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
        if self.jitter is not None:
            picture = self.jitter(picture)
        if not maps:
            return np.array(picture)  # writable, for torch.from_numpy
        moved = []
        for values, fill in zip(maps, fills or (IGNORE_INDEX,) * len(maps)):
            mask = self._crop(Image.fromarray(values).resize(size, Image.NEAREST), offsets, fill)
            moved.append(np.array(mask.transpose(Image.FLIP_LEFT_RIGHT) if flipped else mask))
        return (np.array(picture), *moved)

    def _crop(self, picture: Image.Image, offsets: tuple[int, int], fill) -> Image.Image:
        """psa's RandomCrop: the crop window and the image are placed at random offsets, so an image
        larger than the crop is cut and a smaller one lands anywhere inside a padded canvas."""
        canvas = Image.new(picture.mode, (self.crop, self.crop), fill)
        offset_x, offset_y = offsets
        left = offset_x if picture.width > self.crop else 0
        top = offset_y if picture.height > self.crop else 0
        region = picture.crop((left, top, left + min(self.crop, picture.width), top + min(self.crop, picture.height)))
        canvas.paste(region, (0 if picture.width > self.crop else offset_x, 0 if picture.height > self.crop else offset_y))
        return canvas
