"""Classifier training: augmentation, schedule, checkpoints that resume exactly, clear errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from infercam import config, training
from infercam.datasets import VOCSegmentation
from infercam.minivoc import MiniVOCConfig, generate_minivoc
from infercam.training import (CheckpointError, ClassifierTraining, load_baseline_classifier, load_or_train_classifier,
                               poly_lr, train_classifier)
from infercam.transforms import MEAN_COLOUR, ClassificationAugment


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate_minivoc(tmp_path_factory.mktemp("data") / "VOC2012",
                            MiniVOCConfig(seed=3, image_size=48, num_train=8, num_val=2, num_aug=4), progress=False)
    return VOCSegmentation(root, "train_aug")


def tiny_settings(**changes) -> ClassifierTraining:
    base = dict(backbone="resnet18", width=4, output_stride=16, epochs=2, batch_size=4, crop=32, resize_long=(24, 48),
                optimizer="adamw", lr=1e-3, head_lr_multiplier=1, bias_lr_multiplier=1, mixed_precision=False,
                num_workers=0, seed=1)
    return ClassifierTraining(**{**base, **changes})


def test_augmentation_shape_padding_and_seeded_repeat():
    image = np.full((40, 60, 3), 200, dtype=np.uint8)
    augment = ClassificationAugment(crop=80, resize_long=(30, 30), jitter=None)
    torch.manual_seed(0)
    out = augment(image)
    assert out.shape == (80, 80, 3) and out.dtype == np.uint8
    assert (out == MEAN_COLOUR).all(axis=-1).mean() > 0.8  # a 30 x 20 image inside an 80 x 80 mean-colour canvas
    assert (out == 200).all(axis=-1).sum() == 30 * 20
    jittered = ClassificationAugment(crop=32, resize_long=(40, 80))
    torch.manual_seed(5)
    first = jittered(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    torch.manual_seed(5)
    again = jittered(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    assert np.array_equal(first, again)


def test_poly_schedule():
    assert poly_lr(0.01, 0, 100) == pytest.approx(0.01)
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert 0 < poly_lr(0.01, 99, 100) < 0.01 * 0.02
    assert poly_lr(0.01, 0, 100, warmup_steps=10) == pytest.approx(0.001)


def test_training_writes_a_checkpoint_and_an_interrupted_run_resumes_to_the_same_weights(dataset, tmp_path, monkeypatch):
    straight, history = train_classifier(dataset, tiny_settings(), tmp_path / "a" / "classifier.pth", progress=False)
    assert (tmp_path / "a" / "classifier.pth").is_file() and not (tmp_path / "a" / "classifier.pth.last").exists()
    assert sorted(history["epoch"].unique()) == [0, 1] and np.isfinite(history["loss"]).all()

    real_save = training.save_checkpoint

    def save_then_stop(path, state):  # the machine dies right after the first epoch's checkpoint
        real_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(dataset, tiny_settings(), tmp_path / "b" / "classifier.pth", progress=False)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    assert (tmp_path / "b" / "classifier.pth.last").is_file()
    resumed, resumed_history = load_or_train_classifier(dataset, tiny_settings(), tmp_path / "b" / "classifier.pth",
                                                        progress=False)
    assert len(resumed_history) == len(history)
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), key


def test_a_finished_checkpoint_is_loaded_not_retrained(dataset, tmp_path):
    path = tmp_path / "classifier.pth"
    trained, _ = train_classifier(dataset, tiny_settings(epochs=1), path, progress=False)
    stamp = path.stat().st_mtime_ns
    loaded, history = load_or_train_classifier(dataset, tiny_settings(epochs=1), path, progress=False)
    assert path.stat().st_mtime_ns == stamp and len(history) == 3  # (8 train + 4 aug) // batch 4 steps
    for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_a_checkpoint_carries_what_ran_non_deterministically_into_the_runs_that_load_it(dataset, tmp_path,
                                                                                         monkeypatch):
    # Catches (provenance): a later run that loads a CUDA-trained network must
    # still report the operations its training ran without a deterministic implementation.
    monkeypatch.setattr(config, "_NONDETERMINISTIC_OPS", {"nll_loss2d_forward_out_cuda_template"})
    path = tmp_path / "classifier.pth"
    train_classifier(dataset, tiny_settings(epochs=1), path, progress=False)
    monkeypatch.setattr(config, "_NONDETERMINISTIC_OPS", set())  # a new process
    load_or_train_classifier(dataset, tiny_settings(epochs=1), path, progress=False)
    assert config.nondeterministic_ops() == ["nll_loss2d_forward_out_cuda_template"]


def test_other_settings_or_a_corrupt_file_are_named_and_nothing_is_overwritten(dataset, tmp_path):
    path = tmp_path / "classifier.pth"
    train_classifier(dataset, tiny_settings(epochs=1), path, progress=False)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"other settings \(lr: saved 0.001 vs now 0.01\).*delete it"):
        load_or_train_classifier(dataset, tiny_settings(epochs=1, lr=0.01), path, progress=False)
    assert path.read_bytes() == before
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt checkpoint .*classifier.pth"):
        load_or_train_classifier(dataset, tiny_settings(epochs=1), path, progress=False)


def test_a_diverging_loss_stops_with_advice(dataset, tmp_path):
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train_classifier(dataset, tiny_settings(optimizer="sgd", lr=1e30), tmp_path / "c.pth", progress=False)


def test_later_steps_load_the_baseline_or_say_which_step_makes_it(dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="--profile smoke --only 01_baseline_cam"):
        load_baseline_classifier(tmp_path / "run", "smoke")
    with pytest.raises(FileNotFoundError, match="get_psa_weights.py"):
        load_baseline_classifier(tmp_path / "run", "paper", classifier_weights=str(tmp_path / "res38_cls.pth"))
    trained, _ = train_classifier(dataset, tiny_settings(epochs=1), tmp_path / "run" / "classifier" / "classifier.pth",
                                  progress=False)
    loaded = load_baseline_classifier(tmp_path / "run", "smoke", output_stride=8)
    assert loaded.output_stride == 8 and not loaded.training
    torch.save(trained.state_dict(), tmp_path / "weights.pth")
    with pytest.raises(RuntimeError, match="size mismatch"):  # strict: a width-4 net's weights never half-load
        load_baseline_classifier(tmp_path, "x", classifier_weights=str(tmp_path / "weights.pth"), backbone="resnet18")


def test_split_unite_augmentation_shows_patches_with_the_image_s_labels(dataset):
    from infercam.split_unite import Patch
    from infercam.training import AugmentedClassification

    name = dataset.names[0]
    image = dataset.load_image(name)
    corner = Patch(0, 0, 10, 12, (0,))
    seen = []
    data = AugmentedClassification(dataset, lambda picture: seen.append(picture) or picture, {name: [corner]}, 1.0)
    _, label = data[0]
    assert np.array_equal(seen[-1], image[:10, :12]) and torch.equal(label, data.labels[0])
    data.patch_probability = 0.0
    data[0]
    assert np.array_equal(seen[-1], image)
    data[1]  # an image without patches is shown whole
    assert seen[-1].shape == dataset.load_image(dataset.names[1]).shape


def test_fine_tuning_starts_from_the_given_weights_and_records_them(dataset, tmp_path):
    base, _ = train_classifier(dataset, tiny_settings(epochs=1), tmp_path / "base" / "classifier.pth", progress=False)
    tuned_settings = tiny_settings(epochs=1, lr=0.0, initial_weights=str(tmp_path / "base" / "classifier.pth"))
    tuned, _ = train_classifier(dataset, tuned_settings, tmp_path / "tuned" / "classifier.pth", progress=False)
    for (key, a), b in zip(base.state_dict().items(), tuned.state_dict().values()):
        if a.is_floating_point() and "running" not in key:  # lr 0: the weights stay the starting ones
            assert torch.allclose(a, b), key
    with pytest.raises(ValueError, match="needs each image's patches"):
        train_classifier(dataset, tiny_settings(split_unite_probability=0.5), tmp_path / "c" / "classifier.pth")
    with pytest.raises(FileNotFoundError, match="no weights to start from"):
        train_classifier(dataset, tiny_settings(initial_weights=str(tmp_path / "none.pth")), tmp_path / "d" / "c.pth")


def test_a_copied_work_dir_keeps_its_checkpoints_and_a_retrained_start_invalidates_them(dataset, tmp_path):
    # Catches checkpoints that name the weights they started from by their absolute path: a work_dir
    # copied or moved elsewhere was refused as "made with other settings" (AffinityNet and DeepLab start
    # from the classifier inside it). A retrained starting point must still be refused.
    train_classifier(dataset, tiny_settings(epochs=1), tmp_path / "run" / "classifier.pth", progress=False)

    def tuned(run):
        return tiny_settings(epochs=1, initial_weights=str(tmp_path / run / "classifier.pth"))

    train_classifier(dataset, tuned("run"), tmp_path / "run" / "tuned.pth", progress=False)
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    load_or_train_classifier(dataset, tuned("copy"), tmp_path / "copy" / "tuned.pth", progress=False)
    # a checkpoint saved before the fingerprint (the path in its settings) still loads where it was made
    state = torch.load(tmp_path / "run" / "tuned.pth", weights_only=False)
    state["settings"]["initial_weights"] = tuned("run").initial_weights
    torch.save(state, tmp_path / "run" / "tuned.pth")
    load_or_train_classifier(dataset, tuned("run"), tmp_path / "run" / "tuned.pth", progress=False)
    train_classifier(dataset, tiny_settings(epochs=1, seed=2), tmp_path / "other" / "classifier.pth", progress=False)
    shutil.copy(tmp_path / "other" / "classifier.pth", tmp_path / "copy" / "classifier.pth")
    with pytest.raises(CheckpointError, match="other settings \\(initial_weights: saved 'weights:"):
        load_or_train_classifier(dataset, tuned("copy"), tmp_path / "copy" / "tuned.pth", progress=False)


def test_a_checkpoint_older_than_a_new_setting_counts_as_its_default(dataset, tmp_path):
    path = tmp_path / "classifier.pth"
    train_classifier(dataset, tiny_settings(epochs=1), path, progress=False)
    state = torch.load(path, weights_only=False)
    del state["settings"]["split_unite_probability"]  # made before the setting existed
    torch.save(state, path)
    load_or_train_classifier(dataset, tiny_settings(epochs=1), path)  # loads, no CheckpointError
    with pytest.raises(CheckpointError, match="split_unite_probability"):
        load_or_train_classifier(dataset, tiny_settings(epochs=1, split_unite_probability=0.5), path, patches={"x": []})


def test_maps_move_with_the_image_and_pad_with_their_own_fill():
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :10] = 255  # a white band on the left ...
    label = np.zeros((20, 30), np.uint8)
    label[:, :10] = 7  # ... labelled 7
    saliency = np.where(label > 0, 200, 10).astype(np.uint8)
    augment = ClassificationAugment(crop=40, resize_long=(30, 30), jitter=None)
    for seed in range(6):  # flipped or not, placed anywhere in the padded canvas
        torch.manual_seed(seed)
        out, moved_label, moved_saliency = augment(image, label, saliency, fills=(255, 0))
        white = (out == 255).all(axis=-1)
        assert np.array_equal(white, moved_label == 7) and np.array_equal(white, moved_saliency == 200)
        assert (moved_label == 255).sum() == 40 * 40 - 20 * 30 == (moved_saliency == 0).sum()
