"""One dataset class for the VOC layout: real PASCAL VOC 2012 (+ SBD) and mini-VOC alike."""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from infercam.config import no_bar, resolve_path
from infercam.voc import IGNORE_INDEX, VOC_CLASSES, image_level_label, load_label_png, read_annotation_classes


class DataRootError(FileNotFoundError):
    """The data root is missing or incomplete; the message names the command that fixes it."""


def _is_real_voc(root: Path) -> bool:
    return "VOCdevkit" in root.parts and not (root / "minivoc.json").exists()


def how_to_get(root: Path, missing: str) -> str:
    """The command that produces what is missing under ``root``."""
    if _is_real_voc(root):
        data_dir = root.parent.parent  # <root>/VOCdevkit/VOC2012
        if missing in {"SegmentationClassAug", "train_aug.txt"}:
            return f"python data_scripts/get_sbd.py --root {data_dir}   (builds SegmentationClassAug and train_aug.txt from SBD)"
        return f"python data_scripts/get_voc.py --root {data_dir}   (or: make data-paper)"
    return ("make minivoc PROFILE=<profile>   (or: python data_scripts/make_minivoc.py --profile <profile>; "
            "the profile's data_root must be this folder)")


class VOCSegmentation(Dataset):
    """Images, segmentation labels and image-level labels of one split of a VOC-layout folder.

    ``data_root`` is the ``VOC2012`` folder. Each item is a dict with ``name``, ``image`` (H, W, 3)
    uint8 RGB, ``label`` (H, W) uint8 with 255 = ignore, and ``cls_label``, a multi-hot float32
    vector over the 20 classes in VOC order, built from the XML annotation. ``label_dir="auto"``
    reads ``SegmentationClassAug`` for ``train_aug`` and ``SegmentationClass`` for VOC's own splits.
    """

    def __init__(self, data_root: str | os.PathLike, split: str = "train", label_dir: str = "auto",
                 transform: Callable[[dict], dict] | None = None):
        self.root = resolve_path(data_root)
        self.split = split
        self.transform = transform
        if not self.root.is_dir():
            raise DataRootError(f"data root {self.root} does not exist. Get it with: {how_to_get(self.root, 'root')}")
        list_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            raise DataRootError(f"{self.root} has no image list for split {split!r} ({list_file} is missing). "
                                f"Get it with: {how_to_get(self.root, f'{split}.txt')}")
        self.names = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        if not self.names:
            raise DataRootError(f"{list_file} lists no images; regenerate it with: {how_to_get(self.root, f'{split}.txt')}")
        self.label_dir = self.root / self._pick_label_dir(label_dir)
        for folder in (self.root / "JPEGImages", self.root / "Annotations", self.label_dir):
            if not folder.is_dir():
                raise DataRootError(f"{self.root} is incomplete: {folder.name}/ is missing. "
                                    f"Get it with: {how_to_get(self.root, folder.name)}")

    def _pick_label_dir(self, label_dir: str) -> str:
        if label_dir != "auto":
            return label_dir
        # Only the SBD-augmented split needs SegmentationClassAug; VOC's own splits use VOC's labels.
        return "SegmentationClassAug" if self.split.startswith("train_aug") else "SegmentationClass"

    def __len__(self) -> int:
        return len(self.names)

    def _file(self, folder: Path, name: str, suffix: str) -> Path:
        path = folder / f"{name}{suffix}"
        if not path.is_file():
            raise DataRootError(f"{path} is missing (listed in {self.split}.txt). "
                                f"Re-run: {how_to_get(self.root, folder.name)}")
        return path

    def load_image(self, name: str) -> np.ndarray:
        path = self._file(self.root / "JPEGImages", name, ".jpg")
        try:
            with Image.open(path) as image:
                return np.array(image.convert("RGB"))
        except OSError as error:
            raise OSError(f"corrupt image {path}: {error}. Delete it and re-run: {how_to_get(self.root, 'JPEGImages')}") from error

    def load_label(self, name: str) -> np.ndarray:
        return load_label_png(self._file(self.label_dir, name, ".png"))

    def class_names(self, name: str) -> list[str]:
        """The distinct classes of an image, from its XML annotation, in VOC order."""
        found = set(read_annotation_classes(self._file(self.root / "Annotations", name, ".xml")))
        return [c for c in VOC_CLASSES if c in found]

    @cached_property
    def cls_labels(self) -> np.ndarray:
        """(N, 20) multi-hot image-level labels of the whole split."""
        return np.stack([image_level_label(self.class_names(name)) for name in self.names])

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        item = {"name": name, "image": self.load_image(name), "label": self.load_label(name),
                "cls_label": image_level_label(self.class_names(name))}
        return self.transform(item) if self.transform else item



def image_table(dataset: VOCSegmentation, progress: bool = True):
    """One row per image: classes, objects, and the share of foreground and void pixels."""
    import pandas as pd
    from tqdm import tqdm  # text bars: no ipywidgets needed, and they render in the static book

    rows = []
    for name in tqdm(dataset.names, desc=f"statistics of {dataset.split}", disable=no_bar(progress)):
        label = dataset.load_label(name)
        objects = read_annotation_classes(dataset.root / "Annotations" / f"{name}.xml")
        rows.append({"name": name, "classes": len(set(objects)), "objects": len(objects),
                     "foreground": float(((label > 0) & (label != IGNORE_INDEX)).mean()),
                     "void": float((label == IGNORE_INDEX).mean()), "height": label.shape[0], "width": label.shape[1]})
    return pd.DataFrame(rows)


def class_count_shares(table):
    """Share of images with 1, 2 and 3+ classes (the paper's Table 3 buckets) in an image table."""
    buckets = table["classes"].clip(upper=3).map({1: "1", 2: "2", 3: "3+"})
    return buckets.value_counts(normalize=True).reindex(["1", "2", "3+"]).fillna(0.0)
