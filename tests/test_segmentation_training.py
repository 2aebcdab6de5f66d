"""Training DeepLab on pseudo labels with each use of saliency, segmenting with it, and the offline
saliency detector, on a tiny generated mini-VOC and a few generated scenes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from infercam import segmentation
from infercam.cam import MapsSettingsError, claim_folder
from infercam.minivoc import compose_saliency_scene
from infercam.models import build_segmenter
from infercam.saliency import make_saliency_maps
from infercam.saliency_net import SaliencyTraining, load_or_train_saliency_net, predict_saliency
from infercam.cam import normalise
from infercam.segmentation import (CachedPyramidPairs, SegmentationPairs, SegmentationTraining, at_logit_size,
                                   load_finished_segmenter, load_or_train_segmenter, pyramid_features, segment_dataset,
                                   segment_probabilities, train_segmenter)
from infercam.training import CheckpointError, load_backbone_weights
from infercam.transforms import ClassificationAugment
from infercam.voc import load_label_png, save_label_png
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


SALIENCY_USES = ["none", "background_cue", "aamr"]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """Each use of saliency trained once from the same seed: (model, history, checkpoint) by use."""
    root, dataset = data
    runs = {}
    for saliency in SALIENCY_USES:
        checkpoint = tmp_path_factory.mktemp(saliency) / "deeplab.pth"
        model, history = train_segmenter(dataset, root / "pseudo", root / "saliency", tiny(saliency=saliency),
                                         checkpoint, progress=False)
        runs[saliency] = model, history, checkpoint
    return runs


@pytest.mark.parametrize("saliency", SALIENCY_USES)
def test_each_use_of_saliency_trains_and_checkpoints(trained, saliency):
    model, history, checkpoint = trained[saliency]
    assert checkpoint.is_file() and np.isfinite(history["loss"]).all()
    assert model.eval().predict(torch.zeros(1, 3, 40, 40)).shape == (1, 21, 40, 40)


def test_each_use_of_saliency_changes_the_training(trained):
    # Catches the saliency setting ignored (all three runs would be the same run): from one seed and
    # one first batch, the background cue changes the targets (another cross-entropy at step 0), and
    # AAMR keeps the plain cross-entropy but adds its saliency term to the loss.
    plain, cued, aamr = (trained[saliency][1] for saliency in SALIENCY_USES)
    assert np.allclose(plain["loss"], plain["ce"])
    assert abs(cued["ce"][0] - plain["ce"][0]) > 1e-4
    assert aamr["ce"][0] == pytest.approx(plain["ce"][0], rel=1e-5)
    assert (aamr["loss"] - aamr["ce"] > 0).all() and (aamr["bce"] > 0).all()
    heads = [trained[saliency][0].state_dict()["aspp.branches.0.weight"] for saliency in SALIENCY_USES]
    assert not torch.equal(heads[0], heads[1]) and not torch.equal(heads[0], heads[2])  # three different networks


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


def test_the_aamr_run_records_its_loss_terms(trained):
    history = trained["aamr"][1]
    assert {"ce", "bce", "tau"} <= set(history.columns)
    assert ((history["tau"] >= 0) & (history["tau"] <= 1)).all() and (history["ce"] <= history["loss"] + 1e-6).all()


def test_segmenting_saves_labels_with_and_without_crf_and_guards_its_folder(data, tmp_path):
    root, dataset = data
    settings = tiny(saliency="none")
    model, _ = load_or_train_segmenter(dataset, root / "pseudo", None, settings, tmp_path / "deeplab.pth", progress=False)
    names = dataset.names[:2]
    out = segment_dataset(model, dataset, tmp_path / "val", settings.to_dict(), names, scales=(1.0,), flip=False,
                          crf_dir=tmp_path / "val_crf", progress=False)
    for folder in (out, tmp_path / "val_crf"):
        label = load_label_png(folder / f"{names[0]}.png")
        assert label.shape == dataset.load_label(names[0]).shape and label.max() <= 20
    expected = segment_probabilities(model, dataset.load_image(names[0]), (1.0,), False).argmax(axis=0)
    assert np.array_equal(load_label_png(out / f"{names[0]}.png"), expected)
    with pytest.raises(MapsSettingsError, match="other settings"):
        segment_dataset(model, dataset, out, tiny(saliency="aamr").to_dict(), names, progress=False)
    # Label maps of another precision (a work_dir resumed on a GPU) must not be mixed silently.
    with pytest.raises(MapsSettingsError, match="mixed_precision"):
        segment_dataset(model, dataset, out, settings.to_dict(), names, scales=(1.0,), flip=False,
                        crf_dir=tmp_path / "val_crf", mixed_precision=True, progress=False)


def test_the_saliency_detector_learns_from_non_voc_scenes_only(tmp_path):
    scene, mask = compose_saliency_scene(np.random.default_rng(3), 96)
    again, _ = compose_saliency_scene(np.random.default_rng(3), 96)
    assert np.array_equal(scene, again) and 0 < mask.mean() < 0.9
    settings = SaliencyTraining(width=4, epochs=2, batch_size=4, crop=64, resize_long=(64, 80), num_scenes=8,
                                scene_size=80, mixed_precision=False, num_workers=0)
    model, history = load_or_train_saliency_net(settings, tmp_path / "detector.pth", progress=False)
    assert (tmp_path / "detector.pth").is_file() and np.isfinite(history["loss"]).all()
    saliency = predict_saliency(model, scene, long_side=64)
    assert saliency.shape == mask.shape and 0 <= saliency.min() <= saliency.max() <= 1
    loaded, _ = load_or_train_saliency_net(settings, tmp_path / "detector.pth", progress=False)
    assert np.allclose(predict_saliency(loaded, scene, long_side=64), saliency)


def test_deeplab_starts_from_a_bare_imagenet_backbone(tmp_path):
    torchvision_resnet = torchvision.models.resnet50(weights=None)
    torch.save(torchvision_resnet.state_dict(), tmp_path / "resnet50.pth")  # torchvision's names: conv1.weight, ...
    model = build_segmenter("resnet50")
    assert load_backbone_weights(model, tmp_path / "resnet50.pth") == len(model.backbone.state_dict())
    assert torch.equal(model.backbone.layer4[2].conv3.weight, torchvision_resnet.layer4[2].conv3.weight)


@pytest.fixture(scope="module")
def frozen(data, tmp_path_factory):
    """A decoder trained with AAMR on a frozen backbone that starts from a saved classifier-like state."""
    root, dataset = data
    folder = tmp_path_factory.mktemp("frozen")
    torch.manual_seed(5)
    start = build_segmenter("resnet18", width=4, frozen_backbone=True)
    torch.save({"model": {f"backbone.{k}": v for k, v in start.backbone.state_dict().items()}}, folder / "start.pth")
    settings = tiny(saliency="aamr", frozen_backbone=True, epochs=2, initial_weights=str(folder / "start.pth"))
    model, history = train_segmenter(dataset, root / "pseudo", root / "saliency", settings, folder / "deeplab.pth",
                                     progress=False)
    return start, model, history, settings, folder / "deeplab.pth"


def test_a_frozen_backbone_stays_as_it_started_and_only_the_decoder_learns(frozen):
    # Catches a backbone that does not start from the given weights (the features cached for training
    # would not be those of the classifier 08 names) or that changes during training (the test would
    # segment with another backbone than the decoder learned on), and a decoder that learns nothing.
    start, model, history, _, _ = frozen
    assert np.isfinite(history["loss"]).all() and (history["bce"] > 0).all()
    for name, value in start.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], value), name
    untrained = build_segmenter("resnet18", width=4, frozen_backbone=True).decoder.state_dict()
    assert not torch.equal(model.decoder.state_dict()["classifier.weight"], untrained["classifier.weight"])


def test_the_mirrored_features_come_with_the_mirrored_labels(data):
    # Catches features of the image paired with a mirrored label (or the reverse): the decoder would
    # learn objects on the wrong side. The mirror image's features are the backbone's of the mirrored
    # image, not the image's features mirrored (a convolution's padding makes them differ).
    root, dataset = data
    backbone = build_segmenter("resnet18", width=4, frozen_backbone=True).backbone
    names = dataset.names[:1]
    features = pyramid_features(backbone, dataset, names, progress=False)
    pairs = CachedPyramidPairs(features, names, root / "pseudo", root / "saliency")
    image = torch.from_numpy(dataset.load_image(names[0])).permute(2, 0, 1)[None]
    with torch.no_grad():
        mirrored_deep = backbone.eval().pyramid(normalise(image.flip(-1)))[2][0]
    label = load_label_png(root / "pseudo" / f"{names[0]}.png")
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        *_, deep, pseudo, _ = pairs[0]
        mirrored = not np.array_equal(pseudo.numpy(), label)
        assert np.array_equal(pseudo.numpy(), label[:, ::-1] if mirrored else label)
        assert torch.equal(deep, features[0][2][int(mirrored)].float())
        if mirrored:
            assert torch.allclose(deep, mirrored_deep.half().float())
        seen.add(mirrored)
    assert seen == {False, True}


def test_a_finished_frozen_segmenter_reloads_as_it_was_trained(data, frozen):
    # Catches the reload building the other network (DeepLab v2's ASPP instead of the decoder) or
    # taking the ImageNet start: 08 re-run with finished checkpoints would segment with another network.
    root, dataset = data
    _, model, _, settings, checkpoint = frozen
    reloaded, _ = load_or_train_segmenter(dataset, root / "pseudo", root / "saliency", settings, checkpoint,
                                          progress=False)
    image = dataset.load_image(dataset.names[0])
    assert np.allclose(segment_probabilities(reloaded, image, (1.0,), True),
                       segment_probabilities(model, image, (1.0,), True), atol=1e-6)


def test_images_of_different_sizes_are_refused_with_the_fix(data):
    root, dataset = data
    names = dataset.names[:2]
    features = [tuple(torch.zeros(2, 4, size, size) for _ in range(3)) for size in (4, 6)]
    with pytest.raises(ValueError, match="differ in size.*frozen_backbone False"):
        CachedPyramidPairs(features, names, root / "pseudo", None)


def test_label_maps_of_a_whole_network_made_before_the_frozen_backbone_setting_still_match(data, tmp_path):
    # Catches a work_dir whose DeepLab predictions (made before the setting existed, so without it in
    # their record) are refused after the update: re-running 08 would demand deleting them.
    root, dataset = data
    settings = tiny(saliency="none")
    model, _ = load_or_train_segmenter(dataset, root / "pseudo", None, settings, tmp_path / "deeplab.pth", progress=False)
    older = {key: value for key, value in settings.identity().items() if key != "frozen_backbone"}
    names = dataset.names[:1]
    segment_dataset(model, dataset, tmp_path / "val", older, names, scales=(1.0,), flip=False, progress=False)
    segment_dataset(model, dataset, tmp_path / "val", settings.identity(), names, scales=(1.0,), flip=False,
                    progress=False)
    with pytest.raises(MapsSettingsError, match="frozen_backbone"):
        segment_dataset(model, dataset, tmp_path / "val", tiny(saliency="none", frozen_backbone=True).identity(), names,
                        scales=(1.0,), flip=False, progress=False)


def test_the_loss_reads_the_labels_at_the_logits_cells_as_deeplab_pytorch_does():
    # Catches labels resized by an interpolation that blends class ids into ids no pixel has, or
    # sampled off the cells' centres (labels shifted against the predictions): deeplab-pytorch
    # resizes them to the logits with PIL's nearest neighbour.
    rng = np.random.default_rng(0)
    for size, cells in ((384, 48), (321, 41)):
        labels = rng.integers(0, 21, (2, size, size)).astype(np.uint8)
        labels[:, :7] = 255
        saliency = rng.random((2, size, size)).astype(np.float32)
        pseudo, resized = at_logit_size(torch.zeros(2, 21, cells, cells), torch.from_numpy(labels).long(),
                                        torch.from_numpy(saliency))
        nearest = lambda maps: np.stack([np.asarray(Image.fromarray(m).resize((cells, cells), Image.NEAREST)) for m in maps])
        assert pseudo.dtype == torch.int64 and np.array_equal(pseudo.numpy(), nearest(labels))
        assert np.array_equal(resized.numpy(), nearest(saliency))


def test_decoders_on_one_backbone_and_one_set_of_images_compute_its_features_once(data, frozen, tmp_path, monkeypatch):
    # Catches each of a chapter's decoders (one per use of saliency and per source of labels)
    # computing the fixed backbone's features of every training image again.
    root, dataset = data
    *_, settings, _ = frozen
    computed = []
    compute = segmentation.pyramid_features
    monkeypatch.setattr(segmentation, "pyramid_features", lambda *args, **kwargs: computed.append(1) or compute(*args, **kwargs))
    monkeypatch.setattr(segmentation, "_last_features", {})
    for saliency in ("none", "background_cue"):
        train_segmenter(dataset, root / "pseudo", root / "saliency", dataclasses.replace(settings, saliency=saliency),
                        tmp_path / saliency / "deeplab.pth", progress=False)
    assert len(computed) == 1
    train_segmenter(dataset, root / "pseudo", root / "saliency", settings, tmp_path / "fewer" / "deeplab.pth",
                    progress=False, names=dataset.names[:4])
    assert len(computed) == 2  # other images: their own features


def test_a_network_trained_on_labels_made_since_is_not_taken_for_the_new_one(data, tmp_path):
    # Catches a DeepLab checkpoint, or its predictions, reused after its pseudo labels were made
    # again (e.g. walked by a retrained AffinityNet): its settings alone do not say which labels it learned.
    root, dataset = data
    labels = tmp_path / "pseudo"
    claim_folder(labels, {"step": "random_walk", "affinity_net": "first"})
    for name in dataset.names:
        save_label_png(dataset.load_label(name), labels / f"{name}.png")
    settings = tiny(saliency="none")
    model, _ = load_or_train_segmenter(dataset, labels, None, settings, tmp_path / "deeplab.pth", progress=False)
    assert load_finished_segmenter(settings, tmp_path / "deeplab.pth", labels) is not None
    (labels / "settings.json").unlink()
    claim_folder(labels, {"step": "random_walk", "affinity_net": "second"})
    for name in dataset.names:  # the new network's labels: everything background
        save_label_png(np.zeros_like(dataset.load_label(name)), labels / f"{name}.png")
    with pytest.raises(CheckpointError, match="labels"):
        load_or_train_segmenter(dataset, labels, None, settings, tmp_path / "deeplab.pth", progress=False)
    names = dataset.names[:1]
    segment_dataset(model, dataset, tmp_path / "val", settings.identity(), names, flip=False, progress=False)
    retrained, _ = train_segmenter(dataset, labels, None, settings, tmp_path / "again.pth", progress=False)
    with pytest.raises(MapsSettingsError, match="weights"):
        segment_dataset(retrained, dataset, tmp_path / "val", settings.identity(), names, flip=False, progress=False)
