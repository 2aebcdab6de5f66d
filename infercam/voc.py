"""PASCAL VOC 2012 conventions shared by the real dataset and mini-VOC.

Class order, palette, label files and the XML annotation format are those of the VOC devkit, so
every function here reads real VOC and the generated mini-VOC alike.
"""
from __future__ import annotations

import os

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

#: The 20 object classes in VOC's (alphabetical) order; label value = index + 1, 0 = background.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
CLASS_NAMES: tuple[str, ...] = ("background",) + VOC_CLASSES
NUM_CLASSES = len(VOC_CLASSES)
IGNORE_INDEX = 255


def voc_palette() -> np.ndarray:
    """The devkit's 256-entry colour map (bit-interleaved), shape (256, 3), uint8."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, red, green, blue = index, 0, 0, 0
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (red, green, blue)
    return palette


def save_label_png(label: np.ndarray, path: str | Path) -> None:
    """Write a label map (H, W) of class indices / 255 as a VOC palette PNG."""
    image = Image.fromarray(np.asarray(label, dtype=np.uint8), mode="P")
    image.putpalette(voc_palette().reshape(-1).tolist())
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")  # atomic: an interrupted step never leaves half a file
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def load_label_png(path: str | Path) -> np.ndarray:
    """Read a VOC palette PNG as class indices (H, W) uint8, 255 = ignore; a file cut short or
    holding values that are no VOC label (21..254) is refused, naming it."""
    try:
        with Image.open(path) as image:
            if image.mode != "P":
                raise ValueError(f"{path} is not a palette PNG (mode {image.mode}); VOC labels are palette-indexed")
            label = np.array(image, dtype=np.uint8)
    except (OSError, SyntaxError) as error:  # PIL's errors for a truncated or garbled PNG
        raise OSError(f"corrupt label map {path}: {error}; delete it and re-run the step that made it "
                      "(or, for VOC's own labels, get the data again)") from error
    foreign = np.unique(label[(label > NUM_CLASSES) & (label != IGNORE_INDEX)])
    if foreign.size:
        raise ValueError(f"{path} holds values {foreign[:8].tolist()}, which are no VOC label (0 background, 1..20 "
                         f"the classes, 255 ignore): it is not a class label map (an instance map from "
                         f"SegmentationObject/, or a PNG from another dataset?); put the class labels "
                         f"(SegmentationClass/, SegmentationClassAug/) there")
    return label


def read_annotation_classes(path: str | Path) -> list[str]:
    """Class names of all objects in a VOC XML annotation, in file order (with repeats)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"corrupt VOC annotation {path}: {error}") from error
    names = [obj.findtext("name", "").strip() for obj in root.iter("object")]
    unknown = sorted(set(names) - set(VOC_CLASSES))
    if unknown:
        raise ValueError(f"{path} names classes outside VOC's 20: {unknown}")
    return names


def image_level_label(class_names: list[str]) -> np.ndarray:
    """Multi-hot float32 vector (20,) in VOC order, as psa's cls_labels.npy stores it."""
    label = np.zeros(NUM_CLASSES, dtype=np.float32)
    for name in class_names:
        label[VOC_CLASSES.index(name)] = 1.0
    return label

#: Images with 1 / 2 / 3+ classes in VOC 2012's splits (reference figures, used to compare mixtures).
VOC_CLASS_COUNT_SPLIT: dict[str, tuple[int, int, int]] = {
    "train": (933, 382, 149), "val": (927, 375, 147), "train_aug": (6249, 3104, 1229),
}
