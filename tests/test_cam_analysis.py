"""CAM evaluation and section 3.1's diagnostics on hand-made label maps and CAMs."""
from __future__ import annotations

import numpy as np
import pytest

from infercam.cam import save_cams
from infercam.cam_analysis import class_count_group, evaluate_cams


class HandMadeSplit:
    """The three things evaluate_cams asks of a dataset: names, split, load_label."""

    split = "train"

    def __init__(self, labels: dict[str, np.ndarray]):
        self.labels = labels
        self.names = list(labels)

    def __len__(self):
        return len(self.names)

    def load_label(self, name):
        return self.labels[name]


@pytest.fixture
def evaluation(tmp_path):
    # Image a: a 4x4 cat (class 8, label 8) in an 8x8 image, with a void ring pixel; its CAM is 1.0 on
    # the cat's left half, 0.2 on its right half, 0.1 on 8 background pixels, 0 elsewhere.
    cat = np.zeros((8, 8), np.uint8)
    cat[2:6, 2:6] = 8
    cat[0, 0] = 255
    cam_a = np.zeros((1, 8, 8), np.float32)
    cam_a[0, 2:6, 2:4], cam_a[0, 2:6, 4:6], cam_a[0, 7, :] = 1.0, 0.2, 0.1
    save_cams(tmp_path / "a.npz", cam_a, [7])
    # Image b: dog (12) on the top half, person (15) on the bottom half; the dog map covers the top
    # row only, the person map nothing.
    two = np.full((4, 4), 12, np.uint8)
    two[2:] = 15
    cam_b = np.zeros((2, 4, 4), np.float32)
    cam_b[0, 0] = 1.0
    save_cams(tmp_path / "b.npz", cam_b, [11, 14])
    return evaluate_cams(HandMadeSplit({"a": cat, "b": two}), tmp_path, progress=False)


def test_recall_of_cam_positive(evaluation):
    # object pixels: 16 cat (all > 0) + 16 in b (4 > 0)
    assert evaluation.recall_cam_positive() == pytest.approx(20 / 32)
    assert evaluation.own_class_recall() == pytest.approx(20 / 32)
    summary = evaluation.summary()
    # background of a: 63 valid - 16 cat = 47 pixels, 8 of them (row 7) activated
    assert summary["background_share_cam_positive"] == pytest.approx(8 / 47)
    assert summary["image_share_cam_positive"] == pytest.approx((24 / 64 + 4 / 16) / 2)


def test_coverage_and_activation_distribution(evaluation):
    objects = evaluation.objects.set_index(["name", "class"])
    coverage = evaluation.coverage(0.5).set_axis(objects.index)
    assert coverage["a", "cat"] == pytest.approx(0.5)
    assert coverage["b", "dog"] == pytest.approx(0.5) and coverage["b", "person"] == 0
    assert evaluation.coverage(0.15).set_axis(objects.index)["a", "cat"] == pytest.approx(1.0)
    distribution = evaluation.activation_distribution()
    assert distribution.iloc[0] == pytest.approx(12 / 32)  # exact zeros: 4 dog + 8 person pixels
    assert distribution.sum() == pytest.approx(1.0)


def test_best_threshold_and_class_count_breakdown(evaluation):
    best = evaluation.best
    # at t in [0.10, 0.20) the cat is found whole and the background row is not: cat IoU 1
    assert 0.10 <= best["threshold"] < 0.20
    assert best["per_class_iou"]["cat"] == pytest.approx(1.0)
    table = evaluation.by_class_count()
    assert table.loc["1", "images"] == 1 and table.loc["2", "images"] == 1
    assert "3+" not in table.index  # no image with 3 classes: no row rather than a fake zero


def test_missing_cams_name_the_step_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="1 of 1 images have no CAMs .*run the CAM inference step"):
        evaluate_cams(HandMadeSplit({"x": np.zeros((2, 2), np.uint8)}), tmp_path, progress=False)


def test_class_count_groups():
    assert [class_count_group(n) for n in (1, 2, 3, 7)] == ["1", "2", "3+", "3+"]


def test_per_image_confusions_are_taken_at_the_splits_best_threshold(evaluation):
    # Catches per-image confusions at another threshold than the one the split's mIoU was chosen at
    # (the intervals would be about other numbers than the book's) or attached to the wrong image.
    from infercam.metrics import mean_iou

    rows = evaluation.image_confusions()
    assert rows.names == ("a", "b")
    assert mean_iou(rows.confusions.sum(axis=0)) == pytest.approx(evaluation.best["miou"])
    # image a at the best t: the 16 cat pixels are cat (8), none of its 47 background pixels is
    assert rows.confusions[0, 8, 8] == 16 and rows.confusions[0, 0, 0] == 47
