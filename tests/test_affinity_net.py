"""AffinityNet's steps end to end on a tiny generated mini-VOC and tiny networks: labels, training
(from a classifier's backbone), random-walk pseudo labels; each resumable, with clear errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from infercam.affinity_net import load_or_train_affinity_net, make_affinity_labels, random_walk_labels
from infercam.cam import SETTINGS_FILE, MapsSettingsError, infer_cams
from infercam.crf import PSA_CRF
from infercam.models import build_affinity_net
from infercam.training import AffinityTraining, CheckpointError, load_backbone_weights, train_classifier
from infercam.voc import load_label_png
from test_training import tiny_settings
from tiny_data import tiny_split


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    root = tmp_path_factory.mktemp("aff")
    dataset = tiny_split(root, "train", seed=5, num_aug=2)
    classifier, _ = train_classifier(dataset, tiny_settings(epochs=1, output_stride=8), root / "classifier.pth",
                                     progress=False)
    cams = infer_cams(classifier.eval(), dataset, root / "cams", scales=(1.0,), progress=False)
    return root, dataset, cams


def affinity_settings(root, **changes) -> AffinityTraining:
    base = dict(backbone="resnet18", width=4, epochs=1, batch_size=2, crop=32, resize_long=(24, 48), optimizer="adamw",
                lr=1e-3, mixed_precision=False, num_workers=0, seed=1, initial_weights=str(root / "classifier.pth"))
    return AffinityTraining(**{**base, **changes})


def test_labels_training_and_walk(steps):
    root, dataset, cams = steps
    labels_dir = make_affinity_labels(dataset, cams, root / "labels", progress=False)
    half = make_affinity_labels(dataset, cams, root / "labels_half", scale=0.5, progress=False)
    for name in dataset.names:
        labels = load_label_png(labels_dir / f"{name}.png")
        allowed = {0, 255} | {c + 1 for c in np.flatnonzero(dataset.cls_labels[dataset.names.index(name)])}
        assert labels.shape == (48, 48) and set(np.unique(labels)) <= allowed
        assert load_label_png(half / f"{name}.png").shape == (48, 48)
    model, history = load_or_train_affinity_net(dataset, labels_dir, affinity_settings(root), root / "aff.pth",
                                                progress=False)
    assert (root / "aff.pth").is_file() and np.isfinite(history["loss"]).all()
    again, _ = load_or_train_affinity_net(dataset, labels_dir, affinity_settings(root), root / "aff.pth")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    out = random_walk_labels(model, dataset, cams, root / "walk", logt=3, crf_dir=root / "walk_crf", crf=PSA_CRF,
                             progress=False)
    for folder in (out, root / "walk_crf"):
        for name in dataset.names:
            walked = load_label_png(folder / f"{name}.png")
            allowed = {0} | {c + 1 for c in np.flatnonzero(dataset.cls_labels[dataset.names.index(name)])}
            assert walked.shape == (48, 48) and set(np.unique(walked)) <= allowed
    (root / "walk_crf" / f"{dataset.names[0]}.png").unlink()  # resumes: only the missing file is made again
    stamp = (out / f"{dataset.names[1]}.png").stat().st_mtime_ns
    random_walk_labels(model, dataset, cams, root / "walk", logt=3, crf_dir=root / "walk_crf", progress=False)
    assert (root / "walk_crf" / f"{dataset.names[0]}.png").exists()
    assert (out / f"{dataset.names[1]}.png").stat().st_mtime_ns == stamp
    # A folder walked in float32 (a CPU) must not be resumed silently in bfloat16 (a GPU).
    with pytest.raises(MapsSettingsError, match="mixed_precision"):
        random_walk_labels(model, dataset, cams, root / "walk", logt=3, mixed_precision=True, progress=False)


def test_backbone_weights_come_from_the_classifier_and_a_foreign_file_is_refused(steps, tmp_path):
    root, dataset, _ = steps
    model = build_affinity_net("resnet18", width=4)
    before = model.backbone.conv1.weight.clone()
    assert load_backbone_weights(model, root / "classifier.pth") > 10
    assert not torch.equal(before, model.backbone.conv1.weight)
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(ValueError, match="shares no weights"):
        load_backbone_weights(model, tmp_path / "foreign.pth")
    with pytest.raises(FileNotFoundError, match="no backbone weights"):
        load_backbone_weights(model, tmp_path / "none.pth")


def test_training_without_labels_says_which_step_makes_them(steps, tmp_path):
    root, dataset, _ = steps
    with pytest.raises(FileNotFoundError, match="make them first"):
        load_or_train_affinity_net(dataset, tmp_path / "no_labels", affinity_settings(root), tmp_path / "aff.pth")


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_recomputing_activations_in_backward_keeps_the_gradients_and_statistics_bit_for_bit(backbone):
    # Catches the memory saving of a CPU's AffinityNet training changing its weights: a recomputed
    # forward pass that updated the BatchNorm running statistics a second time, or gradients that
    # differ in a last bit; and a recompute that keeps as many tensors as before (no saving).
    import copy

    from infercam.affinity import affinity_loss

    torch.manual_seed(0)
    kept = build_affinity_net(backbone, 8, imagenet=False).train()
    recomputed = copy.deepcopy(kept)
    recomputed.recompute_in_backward = True
    images = torch.randn(2, 3, 64, 64)
    kept_bytes = {}

    def step(model):
        sizes = {}

        def pack(tensor):  # the tensors kept for backward outside any recomputed block
            sizes[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            affinities = model(images, 5)
        masks = torch.rand(3, *affinities.shape, generator=torch.Generator().manual_seed(1)) > 0.5
        loss = affinity_loss(affinities, *masks)[0]
        loss.backward()
        kept_bytes[model is recomputed] = sum(sizes.values())
        return loss

    assert torch.equal(step(kept), step(recomputed))
    for (name, plain), again in zip(kept.named_parameters(), recomputed.parameters()):
        assert (plain.grad is None) == (again.grad is None) and (plain.grad is None or torch.equal(plain.grad, again.grad)), name
    for (name, plain), again in zip(kept.named_buffers(), recomputed.buffers()):
        assert torch.equal(plain, again), name  # running statistics updated once
    if backbone == "efficientnet_lite0":  # its blocks are recomputed; resnet18's only the pair differences
        assert kept_bytes[True] < kept_bytes[False] / 3, kept_bytes


def test_a_cpu_training_recomputes_activations(steps, tmp_path):
    # Catches the memory saving left off where a laptop trains (the cpu profile's 07 kept 6.4 GB).
    from infercam.affinity_net import train_affinity_net

    root, dataset, cams = steps
    labels_dir = make_affinity_labels(dataset, cams, tmp_path / "labels", progress=False)
    model, _ = train_affinity_net(dataset, labels_dir, affinity_settings(root), tmp_path / "aff.pth", "cpu", progress=False)
    assert model.recompute_in_backward
    assert build_affinity_net("resnet18", 8, imagenet=False).recompute_in_backward is False  # inference keeps nothing


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_at_output_stride_16_the_affinities_stay_on_the_stride_8_grid(backbone):
    # Catches deep features left on the stride-16 grid: the walk would pair the cells of a coarser
    # grid than the one the maps are pooled onto (by 8), and the labels would not line up.
    image = torch.rand(1, 3, 64, 96)
    for stride in (8, 16):
        net = build_affinity_net(backbone, width=4, imagenet=False, output_stride=stride).eval()
        with torch.no_grad():
            assert net.features(image).shape[2:] == (8, 12)
    with pytest.raises(ValueError, match="aff_output_stride"):
        build_affinity_net("resnet38d", output_stride=16)


def test_the_affinitynet_trains_at_its_settings_stride_and_reloads_so(steps, tmp_path):
    # Catches a finished checkpoint rebuilt at the default stride 8 (its deep weights would run on
    # another grid than they learned on) while it was trained at 16.
    root, dataset, cams = steps
    labels_dir = make_affinity_labels(dataset, cams, tmp_path / "labels", progress=False)
    settings = affinity_settings(root, output_stride=16)
    model, _ = load_or_train_affinity_net(dataset, labels_dir, settings, tmp_path / "aff.pth", progress=False)
    again, _ = load_or_train_affinity_net(dataset, labels_dir, settings, tmp_path / "aff.pth")
    assert model.backbone.output_stride == again.backbone.output_stride == 16


def test_labels_walked_by_another_affinitynet_are_not_mixed_in(steps, tmp_path):
    # Catches a folder of walked labels resumed with a retrained AffinityNet: its record named the
    # maps and the walk's settings only, so the new network's labels were added to the old ones.
    root, dataset, cams = steps
    first, second = (build_affinity_net("resnet18", width=4).eval() for _ in range(2))  # two random draws
    random_walk_labels(first, dataset, cams, tmp_path / "walk", names=dataset.names[:1], logt=1, progress=False)
    with pytest.raises(MapsSettingsError, match="affinity_net"):
        random_walk_labels(second, dataset, cams, tmp_path / "walk", logt=1, progress=False)


def test_labels_made_from_maps_made_again_by_another_classifier_are_refused(steps, tmp_path):
    # Catches affinity labels and walked labels resumed after their CAMs were made again by a retrained
    # classifier: their record named the maps' folder, which had not changed, so old labels were reused.
    root, dataset, cams = steps
    model = build_affinity_net("resnet18", width=4).eval()
    cam_dir = tmp_path / "cams"
    cam_dir.mkdir()
    for path in cams.iterdir():
        (cam_dir / path.name).write_bytes(path.read_bytes())
    make_affinity_labels(dataset, cam_dir, tmp_path / "labels", names=dataset.names[:1], progress=False)
    random_walk_labels(model, dataset, cam_dir, tmp_path / "walk", names=dataset.names[:1], logt=1, progress=False)
    record = json.loads((cam_dir / SETTINGS_FILE).read_text())
    (cam_dir / SETTINGS_FILE).write_text(json.dumps({**record, "classifier": "retrained"}))  # as a retrained one claims it
    with pytest.raises(MapsSettingsError, match="cams"):
        make_affinity_labels(dataset, cam_dir, tmp_path / "labels", progress=False)
    with pytest.raises(MapsSettingsError, match="cams"):
        random_walk_labels(model, dataset, cam_dir, tmp_path / "walk", logt=1, progress=False)


def test_a_moved_project_keeps_its_labels(steps, tmp_path):
    # Catches records that named the maps by their absolute path: a work_dir moved or copied elsewhere
    # refused every folder of labels made from them.
    root, dataset, cams = steps
    model = build_affinity_net("resnet18", width=4).eval()
    for place in ("before", "after"):
        cam_dir = tmp_path / place / "cams"
        shutil.copytree(cams, cam_dir)
        if place == "after":
            shutil.copytree(tmp_path / "before" / "labels", tmp_path / "after" / "labels")
            shutil.copytree(tmp_path / "before" / "walk", tmp_path / "after" / "walk")
        make_affinity_labels(dataset, cam_dir, tmp_path / place / "labels", names=dataset.names[:1], progress=False)
        random_walk_labels(model, dataset, cam_dir, tmp_path / place / "walk", names=dataset.names[:1], logt=1,
                           progress=False)


def test_an_affinitynet_trained_on_labels_made_since_is_refused(steps, tmp_path):
    # Catches a finished AffinityNet reused after its affinity labels were made again (from other maps):
    # its checkpoint did not say which labels it learned from.
    root, dataset, cams = steps
    labels_dir = make_affinity_labels(dataset, cams, tmp_path / "labels", progress=False)
    load_or_train_affinity_net(dataset, labels_dir, affinity_settings(root), tmp_path / "aff.pth", progress=False)
    shutil.rmtree(labels_dir)
    make_affinity_labels(dataset, cams, labels_dir, alpha_low=2, progress=False)  # other labels, same folder
    with pytest.raises(CheckpointError, match="labels"):
        load_or_train_affinity_net(dataset, labels_dir, affinity_settings(root), tmp_path / "aff.pth", progress=False)
