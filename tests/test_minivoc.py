"""mini-VOC: determinism, VOC-format consistency, the class-count mixture, resuming."""
from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infercam.glyphs import CLASS_GLYPHS, class_glyphs
from infercam.minivoc import (SPLITS, MiniVOCConfig, compose_scene, generate_minivoc, image_name, is_complete,
                              minivoc_config, scene_rng)
from infercam.voc import IGNORE_INDEX, VOC_CLASSES, read_annotation_classes, voc_palette

TINY = MiniVOCConfig(seed=3, image_size=96, num_train=6, num_val=4, num_aug=4)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate_minivoc(tmp_path_factory.mktemp("minivoc") / "VOC2012", TINY, progress=False)


def test_same_seed_same_bytes_whatever_the_workers(tiny_root, tmp_path):
    again = generate_minivoc(tmp_path / "VOC2012", TINY, workers=2, progress=False)
    assert _digest(again) == _digest(tiny_root)


def test_other_seed_other_images(tiny_root, tmp_path):
    other = generate_minivoc(tmp_path / "VOC2012", dataclasses.replace(TINY, seed=4), progress=False)
    name = "JPEGImages/train_000000.jpg"
    assert (other / name).read_bytes() != (tiny_root / name).read_bytes()


def test_layout_and_lists(tiny_root):
    lists = tiny_root / "ImageSets" / "Segmentation"
    read = lambda split: (lists / f"{split}.txt").read_text().split()
    assert read("train") == [image_name("train", i) for i in range(TINY.num_train)]
    assert read("train_aug") == read("train") + [image_name("aug", i) for i in range(TINY.num_aug)]
    assert read("trainval") == read("train") + read("val")
    assert not set(read("train_aug")) & set(read("val"))
    for name in read("train_aug") + read("val"):
        assert (tiny_root / "JPEGImages" / f"{name}.jpg").is_file()
        assert (tiny_root / "SegmentationClassAug" / f"{name}.png").is_file()
    # As in real VOC, SegmentationClass covers train and val only.
    assert sorted(p.stem for p in (tiny_root / "SegmentationClass").glob("*.png")) == sorted(read("trainval"))


def test_labels_palette_and_xml_agree(tiny_root):
    palette = voc_palette()
    for name in (tiny_root / "ImageSets/Segmentation/trainval.txt").read_text().split():
        with Image.open(tiny_root / "SegmentationClass" / f"{name}.png") as png:
            assert png.mode == "P"
            assert np.array_equal(np.array(png.getpalette()[:768], dtype=np.uint8).reshape(256, 3), palette)
            label = np.array(png)
        assert np.array_equal(label, np.array(Image.open(tiny_root / "SegmentationClassAug" / f"{name}.png")))
        with Image.open(tiny_root / "JPEGImages" / f"{name}.jpg") as jpg:
            assert jpg.size == label.shape[::-1] == (TINY.image_size, TINY.image_size)
        values = set(np.unique(label).tolist())
        assert values <= set(range(21)) | {IGNORE_INDEX}
        xml_classes = read_annotation_classes(tiny_root / "Annotations" / f"{name}.xml")
        assert {VOC_CLASSES[v - 1] for v in values - {0, IGNORE_INDEX}} == set(xml_classes)
        assert IGNORE_INDEX in values  # every object has a void boundary band


def test_void_band_separates_classes(tiny_root):
    """No pixel of one class touches a pixel of another class (background included) directly."""
    for path in (tiny_root / "SegmentationClassAug").glob("*.png"):
        label = np.array(Image.open(path)).astype(np.int16)
        for a, b in ((label[:, 1:], label[:, :-1]), (label[1:], label[:-1])):
            touching = (a != b) & (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
            assert not touching.any(), path.name


def test_xml_boxes_cover_their_class(tiny_root):
    import xml.etree.ElementTree as ET

    for name in (tiny_root / "ImageSets/Segmentation/train.txt").read_text().split():
        label = np.array(Image.open(tiny_root / "SegmentationClass" / f"{name}.png"))
        covered = np.zeros_like(label, dtype=bool)
        for obj in ET.parse(tiny_root / "Annotations" / f"{name}.xml").getroot().iter("object"):
            box = [int(obj.find("bndbox").findtext(t)) - 1 for t in ("xmin", "ymin", "xmax", "ymax")]
            assert 0 <= box[0] <= box[2] < TINY.image_size and 0 <= box[1] <= box[3] < TINY.image_size
            covered[box[1]: box[3] + 1, box[0]: box[2] + 1] = True
        assert not ((label > 0) & (label < IGNORE_INDEX) & ~covered).any()


def test_class_count_mixture_follows_voc_train():
    config = MiniVOCConfig(seed=11, image_size=64)
    counts = Counter()
    for index in range(300):
        classes = {obj.class_name for obj in compose_scene(scene_rng(config, "train", index), config).objects}
        counts[min(len(classes), 3)] += 1
    observed = np.array([counts[1], counts[2], counts[3]]) / 300
    expected = np.array([933, 382, 149]) / 1464
    # 300 draws: a binomial standard deviation of at most 0.029; allow about three of them.
    assert np.abs(observed - expected).max() < 0.09, observed


def test_interrupted_generation_resumes_to_the_same_bytes(tiny_root, tmp_path):
    root = generate_minivoc(tmp_path / "VOC2012", TINY, progress=False)
    (root / "JPEGImages" / "val_000001.jpg").unlink()
    (root / "ImageSets" / "Segmentation" / "train_aug.txt").unlink()
    assert not is_complete(root, TINY)
    generate_minivoc(root, TINY, progress=False)
    assert is_complete(root, TINY)
    assert _digest(root) == _digest(tiny_root)


def test_other_settings_are_refused_not_mixed(tiny_root):
    with pytest.raises(RuntimeError, match="other settings.*image_size"):
        generate_minivoc(tiny_root, dataclasses.replace(TINY, image_size=80), progress=False)


def test_profiles_define_minivoc():
    assert minivoc_config("smoke", seed=5).seed == 5
    assert minivoc_config("cpu").image_size >= 224  # objects large enough for part-level CAMs
    with pytest.raises(KeyError, match="real VOC"):
        minivoc_config("paper")


@pytest.mark.parametrize("class_name", VOC_CLASSES)
def test_every_class_has_full_glyphs(class_name):
    glyphs = class_glyphs(class_name)
    assert len(glyphs) == len(CLASS_GLYPHS[class_name])
    for glyph in glyphs:
        alpha = glyph.rgba[..., 3]
        assert (alpha > 127).mean() > 0.15, glyph.code  # a body, not a few strokes
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()  # cropped


def test_boat_glyphs_lose_their_water():
    water = np.array([0x92, 0xD3, 0xF5])
    for glyph in class_glyphs("boat"):
        rgba = glyph.rgba.astype(int)
        watery = (np.abs(rgba[..., :3] - water).max(axis=-1) < 40) & (rgba[..., 3] > 127)
        assert watery.mean() < 0.01, glyph.code


def test_splits_have_independent_streams():
    first = {split: scene_rng(TINY, split, 0).random() for split in SPLITS}
    assert len(set(first.values())) == len(SPLITS)
