"""The dataset API over the VOC layout, and its errors for missing or broken data."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from infercam.datasets import DataRootError, VOCSegmentation
from infercam.minivoc import MiniVOCConfig, generate_minivoc
from infercam.voc import (IGNORE_INDEX, VOC_CLASSES, image_level_label, load_label_png, read_annotation_classes,
                          save_label_png, voc_palette)

CONFIG = MiniVOCConfig(seed=1, image_size=80, num_train=5, num_val=3, num_aug=3)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate_minivoc(tmp_path_factory.mktemp("data") / "VOC2012", CONFIG, progress=False)


def test_items_carry_image_label_and_image_level_label(root):
    dataset = VOCSegmentation(root, "train")
    assert len(dataset) == CONFIG.num_train
    item = dataset[2]
    assert item["name"] == "train_000002"
    assert item["image"].shape == (80, 80, 3) and item["image"].dtype == np.uint8
    assert item["label"].shape == (80, 80) and item["label"].dtype == np.uint8
    present = {VOC_CLASSES[v - 1] for v in np.unique(item["label"]) if 0 < v < IGNORE_INDEX}
    assert item["cls_label"].dtype == np.float32
    assert {VOC_CLASSES[i] for i in np.flatnonzero(item["cls_label"])} == present
    assert dataset.cls_labels.shape == (CONFIG.num_train, 20)
    assert np.array_equal(dataset.cls_labels[2], item["cls_label"])


def test_train_aug_reads_the_augmented_labels(root):
    dataset = VOCSegmentation(root, "train_aug")
    assert dataset.label_dir.name == "SegmentationClassAug"
    assert VOCSegmentation(root, "val").label_dir.name == "SegmentationClass"
    assert dataset[len(dataset) - 1]["name"].startswith("aug_")


def test_transform_is_applied(root):
    dataset = VOCSegmentation(root, "val", transform=lambda item: {**item, "flipped": item["image"][:, ::-1]})
    assert "flipped" in dataset[0]


def test_missing_minivoc_names_the_generator(tmp_path):
    with pytest.raises(DataRootError, match="make_minivoc.py --profile"):
        VOCSegmentation(tmp_path / "nowhere" / "VOC2012", "train")


def test_missing_real_voc_names_the_download(tmp_path):
    with pytest.raises(DataRootError, match="get_voc.py --root"):
        VOCSegmentation(tmp_path / "data" / "VOCdevkit" / "VOC2012", "train")


def test_real_voc_without_sbd_names_get_sbd(root, tmp_path):
    real = tmp_path / "data" / "VOCdevkit" / "VOC2012"
    shutil.copytree(root, real)
    (real / "minivoc.json").unlink()
    (real / "ImageSets/Segmentation/train_aug.txt").unlink()
    with pytest.raises(DataRootError, match="get_sbd.py"):
        VOCSegmentation(real, "train_aug")


def test_missing_file_and_corrupt_image_are_named(root, tmp_path):
    copy = shutil.copytree(root, tmp_path / "VOC2012")
    (copy / "SegmentationClass" / "val_000001.png").unlink()
    (copy / "JPEGImages" / "val_000002.jpg").write_bytes(b"not a jpeg")
    dataset = VOCSegmentation(copy, "val")
    with pytest.raises(DataRootError, match="val_000001.png is missing"):
        dataset[1]
    with pytest.raises(OSError, match="corrupt image .*val_000002.jpg"):
        dataset[2]


def test_voc_palette_matches_the_devkit():
    palette = voc_palette()
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]  # aeroplane
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[255].tolist() == [224, 224, 192]  # void


def test_label_png_round_trip_and_mode_check(tmp_path):
    label = np.array([[0, 1, 255], [20, 15, 0]], dtype=np.uint8)
    save_label_png(label, tmp_path / "a.png")
    assert np.array_equal(load_label_png(tmp_path / "a.png"), label)
    from PIL import Image

    Image.fromarray(label).convert("RGB").save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="not a palette PNG"):
        load_label_png(tmp_path / "rgb.png")


def test_annotation_errors_name_the_file(tmp_path):
    (tmp_path / "bad.xml").write_text("<annotation><object><name>cat")
    with pytest.raises(ValueError, match="corrupt VOC annotation .*bad.xml"):
        read_annotation_classes(tmp_path / "bad.xml")
    (tmp_path / "odd.xml").write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(ValueError, match="unicorn"):
        read_annotation_classes(tmp_path / "odd.xml")


def test_image_level_label_is_multi_hot_in_voc_order():
    label = image_level_label(["person", "aeroplane", "person"])
    assert label.tolist() == [1.0] + [0.0] * 13 + [1.0] + [0.0] * 5


def test_class_count_shares_bucket_three_and_more():
    import pandas as pd

    from infercam.datasets import class_count_shares

    shares = class_count_shares(pd.DataFrame({"classes": [1, 1, 2, 3, 4]}))
    assert shares.to_dict() == {"1": 0.4, "2": 0.2, "3+": 0.4}
    assert class_count_shares(pd.DataFrame({"classes": [1]})).to_dict() == {"1": 1.0, "2": 0.0, "3+": 0.0}
