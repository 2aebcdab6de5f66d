"""Training DeepLab on pseudo labels with each use of saliency, on a tiny generated mini-VOC."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from infercam.saliency import make_saliency_maps
from infercam.segmentation import SegmentationPairs, SegmentationTraining, train_segmenter
from infercam.transforms import ClassificationAugment
from infercam.voc import save_label_png
from tiny_data import tiny_split


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    dataset = tiny_split(root, "train", seed=9, num_aug=2)
    (root / "pseudo").mkdir()
    for name in dataset.names:  # the ground truth stands in for pseudo labels here
        save_label_png(dataset.load_label(name), root / "pseudo" / f"{name}.png")
    make_saliency_maps(dataset, root / "saliency", progress=False)
    return root, dataset


def tiny(**changes) -> SegmentationTraining:
    base = dict(backbone="resnet18", width=4, epochs=1, batch_size=2, crop=32, resize_long=(32, 48), optimizer="adamw",
                lr=1e-3, mixed_precision=False, num_workers=0, seed=1)
    return SegmentationTraining(**{**base, **changes})


@pytest.mark.parametrize("saliency", ["none", "background_cue", "aamr"])
def test_each_use_of_saliency_trains_and_checkpoints(data, tmp_path, saliency):
    root, dataset = data
    model, history = train_segmenter(dataset, root / "pseudo", root / "saliency", tiny(saliency=saliency),
                                     tmp_path / "deeplab.pth", progress=False)
    assert (tmp_path / "deeplab.pth").is_file() and np.isfinite(history["loss"]).all()
    assert model.eval().predict(torch.zeros(1, 3, 40, 40)).shape == (1, 21, 40, 40)


def test_the_background_cue_turns_non_salient_pseudo_labels_into_background(data):
    root, dataset = data
    augment = ClassificationAugment(crop=48, resize_long=(48, 48), jitter=None, flip=False)
    plain = SegmentationPairs(dataset, root / "pseudo", root / "saliency", augment)
    cued = SegmentationPairs(dataset, root / "pseudo", root / "saliency", augment, background_cue=0.5)
    torch.manual_seed(0)
    _, pseudo, saliency = plain[0]
    torch.manual_seed(0)
    _, cued_pseudo, _ = cued[0]
    non_salient = (saliency < 0.5) & (pseudo != 255)
    assert (cued_pseudo[non_salient] == 0).all()
    assert torch.equal(cued_pseudo[~non_salient], pseudo[~non_salient])


def test_missing_maps_and_settings_are_named(data, tmp_path):
    root, dataset = data
    with pytest.raises(FileNotFoundError, match="have no map in"):
        train_segmenter(dataset, tmp_path / "none", root / "saliency", tiny(), tmp_path / "d.pth")
    with pytest.raises(ValueError, match="needs saliency maps"):
        train_segmenter(dataset, root / "pseudo", None, tiny(saliency="aamr"), tmp_path / "d.pth")
    with pytest.raises(ValueError, match="saliency must be one of"):
        tiny(saliency="mask")
