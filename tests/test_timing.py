"""What the cost measurements count (forwards, pixels, per-image seconds) and how training times and
extrapolations are read; never how fast anything is."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from infercam.conditional import MethodSettings
from infercam.runs import write_metrics
from infercam.timing import (VOC_IMAGES, CountingClassifier, extrapolate, time_cam_methods, time_walk_and_crf, timed,
                             training_times, with_mious)
from tiny_models import TinyClassifier

PROTOCOL = dict(scales=[1.0, 0.5], flip=True, device="cpu", mixed_precision=False)
CONTEXT = {"profile": "test", "seed": 0}


def tiny_images(count: int = 4, size: int = 64):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]
    class_ids = [np.array([0]), np.array([2, 5]), np.array([1]), np.array([3, 4, 7])][:count]
    return images, class_ids


def test_counting_classifier_counts_forwards_pixels_and_returns_the_models_output():
    model = TinyClassifier()
    counted = CountingClassifier(model, "cpu")
    x = torch.rand(2, 3, 16, 24)
    assert torch.equal(counted.cam(x), model.cam(x))
    counted.cam(torch.rand(1, 3, 8, 8))
    assert counted.forwards == 2
    assert counted.pixels == 2 * 16 * 24 + 8 * 8
    assert counted.seconds > 0


def test_timed_measures_the_block_even_when_it_raises(monkeypatch):
    # Catches a stopwatch reading the wrong clock readings (or none when the block raises): a fake
    # clock gives the block exactly 2.5 s.
    import infercam.timing

    readings = iter([100.0, 102.5, 200.0, 200.25])
    monkeypatch.setattr(infercam.timing.time, "perf_counter", lambda: next(readings))
    with timed("cpu") as watch:
        pass
    assert watch.seconds == 2.5
    with pytest.raises(KeyError), timed("cpu") as failed:
        raise KeyError("inside the block")
    assert failed.seconds == 0.25


def test_methods_are_timed_per_image_with_their_forwards_and_the_same_maps():
    model = TinyClassifier().eval()
    images, class_ids = tiny_images()
    methods = {"baseline": MethodSettings(), "split & unite": MethodSettings(split_unite=True),
               "combined": MethodSettings(split_unite=True, iterative=True), "baseline, batched": MethodSettings()}
    table, per_image, maps = time_cam_methods(model, images, class_ids, methods, PROTOCOL,
                                              batch_sizes={"baseline, batched": 2}, keep_maps=["combined"], progress=False)
    assert list(table.index) == list(methods)
    assert per_image.shape == (len(images), len(methods)) and (per_image > 0).all().all()
    # the baseline: one forward per scale (each image and its flip in one batch); batched: two images per forward
    assert table.loc["baseline", "forwards / image"] == len(PROTOCOL["scales"])
    assert table.loc["baseline, batched", "forwards / image"] == len(PROTOCOL["scales"]) / 2
    assert table.loc["baseline", "megapixels / image"] == pytest.approx(2 * (64 * 64 + 32 * 32) / 1e6)
    # split & unite: at least four patches an image, each with the whole protocol
    assert table.loc["split & unite", "forwards / image"] >= 4 * len(PROTOCOL["scales"])
    assert table.loc["combined", "forwards / image"] >= table.loc["split & unite", "forwards / image"]
    # times against the baseline's; split & unite's full cost adds the baseline maps it splits by
    assert table.loc["baseline", "× baseline"] == 1.0
    assert table.loc["split & unite", "× baseline, with its baseline maps"] == pytest.approx(
        table.loc["split & unite", "× baseline"] + 1)
    assert table.loc["baseline, batched", "× baseline, with its baseline maps"] == table.loc["baseline, batched", "× baseline"]
    assert table.loc["baseline", "s / image"] == pytest.approx(per_image["baseline"].mean())
    # the kept maps are the method's own
    baseline = MethodSettings().build(**PROTOCOL)
    ours = MethodSettings(split_unite=True, iterative=True).build(**PROTOCOL)
    expected = ours(model, images[1], class_ids[1], baseline(model, images[1], class_ids[1]))
    np.testing.assert_allclose(maps["combined"][1], expected, atol=1e-6)
    assert set(maps) == {"combined"}


def test_with_mious_scores_each_methods_own_maps_on_the_truth():
    # catches one method's mIoU computed from another's maps, or a row without maps given a number
    truth = np.zeros((8, 8), np.uint8)
    truth[:, 4:] = 3  # class id 2 (0-based) on the right half
    exact = np.zeros((1, 8, 8), np.float32)
    exact[0, :, 4:] = 1
    table = pd.DataFrame({"s / image": [1.0, 1.0, 1.0]}, index=["exact", "everywhere", "no maps"])
    table = with_mious(table, {"exact": [exact], "everywhere": [np.ones((1, 8, 8), np.float32)]}, [[2]], [truth])
    assert table.loc["exact", "mIoU (%)"] == pytest.approx(100.0)
    assert table.loc["everywhere", "mIoU (%)"] < 100.0
    assert np.isnan(table.loc["no maps", "mIoU (%)"])


def test_with_mious_gives_the_fast_rows_difference_to_its_faithful_row_with_an_interval():
    # catches a difference taken against the wrong row or with the sign reversed, and an interval
    # that does not hold its own point on images where the two rows differ
    truth = np.zeros((8, 8), np.uint8)
    truth[:, 4:] = 3
    exact = np.zeros((1, 8, 8), np.float32)
    exact[0, :, 4:] = 1
    half = np.zeros((1, 8, 8), np.float32)
    half[0, :4, 4:] = 1
    maps = {"faithful": [exact] * 3 + [half], "fast": [half] * 3 + [exact]}
    table = pd.DataFrame({"s / image": [1.0, 0.5]}, index=["faithful", "fast"])
    table = with_mious(table, maps, [[2]] * 4, [truth] * 4, against={"fast": "faithful"})
    fast = table.loc["fast"]
    assert fast["Δ mIoU"] == pytest.approx(fast["mIoU (%)"] - table.loc["faithful", "mIoU (%)"]) and fast["Δ mIoU"] < 0
    assert fast["Δ low"] <= fast["Δ mIoU"] <= fast["Δ high"] and fast["Δ low"] < fast["Δ high"]
    assert np.isnan(table.loc["faithful", "Δ mIoU"])


def test_the_reference_must_be_the_baseline():
    images, class_ids = tiny_images(1)
    with pytest.raises(ValueError, match="baseline"):
        time_cam_methods(TinyClassifier(), images, class_ids, {"baseline": MethodSettings(iterative=True)}, PROTOCOL)


def test_walk_and_crf_are_timed_and_memory_traced_on_request():
    from infercam.affinity import pair_indices

    rng = np.random.default_rng(0)
    first, second = pair_indices(4, 4)
    affinities = torch.from_numpy(rng.random(len(first), dtype=np.float32))
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cams = rng.random((2, 32, 32), dtype=np.float32)
    row = time_walk_and_crf(image, cams, affinities, first, second, (4, 4), logt=2)
    assert set(row) == {"random walk s", "CRF s"} and min(row.values()) > 0
    traced = time_walk_and_crf(image, cams, affinities, first, second, (4, 4), logt=2, trace_memory=True)
    assert traced["walk peak MiB"] > 0


def test_extrapolate_gives_minutes_per_image_count():
    minutes = extrapolate(pd.Series({"a": 0.5, "b": 1.5}), {"set": 120})
    assert list(minutes.columns) == ["min for set (120 images)"]
    assert minutes.loc["a"].iloc[0] == pytest.approx(1.0) and minutes.loc["b"].iloc[0] == pytest.approx(3.0)
    assert VOC_IMAGES == {"VOC train": 1464, "VOC val": 1449, "VOC train_aug": 10582}  # VOC 2012's split sizes


def test_training_times_read_the_metrics_files_and_note_what_is_missing(tmp_path):
    write_metrics(tmp_path, "01_baseline_cam", {"classifier": {"training_seconds": 300.0, "settings": {"epochs": 6}}}, CONTEXT)
    write_metrics(tmp_path, "07_random_walk", {"affinity_training_seconds": 50.0, "images": {"affinity_labels": 25}}, CONTEXT)
    table, notes = training_times(tmp_path, classifier_images=100)
    assert list(table.index) == ["classifier (01)", "AffinityNet (07)"]
    assert table.loc["classifier (01)", "s / training image (all epochs)"] == pytest.approx(3.0)
    assert table.loc["classifier (01)", "epochs"] == 6
    assert table.loc["AffinityNet (07)", "s / training image (all epochs)"] == pytest.approx(2.0)
    assert len(notes) == 1 and "08_segmentation" in notes[0]

    write_metrics(tmp_path, "08_segmentation", {"training": {
        "none": {"seconds": 80.0, "seconds_per_epoch": 40.0, "epochs": 2, "images": 40},
        "aamr": {"seconds": 90.0, "seconds_per_epoch": 45.0, "epochs": 2, "images": 40}}}, CONTEXT)
    table, notes = training_times(tmp_path, classifier_images=100)
    assert notes == []
    assert table.loc["DeepLab, aamr (08)", "seconds"] == 90.0
    assert table.loc["DeepLab, none (08)", "s / training image (all epochs)"] == pytest.approx(2.0)


def test_training_times_of_loaded_weights_are_unknown_not_zero(tmp_path):
    write_metrics(tmp_path, "01_baseline_cam", {"classifier": {"training_seconds": 0.0, "settings": {"weights": "w.pth"}}},
                  CONTEXT)
    table, notes = training_times(tmp_path, classifier_images=100)
    assert np.isnan(table.loc["classifier (01)", "seconds"])
    assert any("loaded, not trained" in note for note in notes)
