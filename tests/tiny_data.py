"""Tiny generated mini-VOC splits for tests: seconds to make, no downloads."""
from __future__ import annotations

from infercam.datasets import VOCSegmentation
from infercam.minivoc import MiniVOCConfig, generate_minivoc


def tiny_split(root, split: str, seed: int, image_size: int = 48, num_train: int = 6, num_val: int = 2,
               num_aug: int = 1) -> VOCSegmentation:
    """A split of a freshly generated tiny mini-VOC under ``root``."""
    voc = generate_minivoc(root / "VOC2012", MiniVOCConfig(seed=seed, image_size=image_size, num_train=num_train,
                                                           num_val=num_val, num_aug=num_aug), progress=False)
    return VOCSegmentation(voc, split)
