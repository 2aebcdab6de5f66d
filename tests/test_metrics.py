"""The evaluation protocol against hand-computed answers."""
from __future__ import annotations

import numpy as np
import pytest

from infercam.metrics import (NUM_LABELS, ThresholdSweep, average_precision, cam_prediction, confusion_matrix,
                              iou_per_class, mean_iou)


def test_confusion_matrix_by_hand():
    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    prediction = np.array([[0, 1, 1, 1], [2, 0, 2, 2]])
    confusion = confusion_matrix(prediction, truth, num_labels=3)
    # rows = truth, columns = prediction; the pixel with truth 255 is left out
    assert confusion.tolist() == [[1, 1, 0],
                                  [0, 2, 1],
                                  [1, 0, 1]]


def test_iou_by_hand():
    confusion = np.array([[1, 1, 0], [0, 2, 1], [1, 0, 1]])
    # class 0: TP 1, T 2, P 2 -> 1/3; class 1: TP 2, T 3, P 3 -> 2/4; class 2: TP 1, T 2, P 2 -> 1/3
    assert np.allclose(iou_per_class(confusion), [1 / 3, 1 / 2, 1 / 3])
    assert mean_iou(confusion) == pytest.approx((1 / 3 + 1 / 2 + 1 / 3) / 3)


def test_absent_classes_do_not_count():
    confusion = np.zeros((NUM_LABELS, NUM_LABELS), dtype=np.int64)
    confusion[0, 0], confusion[5, 5], confusion[5, 0] = 6, 3, 1
    ious = iou_per_class(confusion)
    assert np.isnan(ious[1]) and ious[0] == pytest.approx(6 / 7) and ious[5] == pytest.approx(3 / 4)
    assert mean_iou(confusion) == pytest.approx((6 / 7 + 3 / 4) / 2)


def test_out_of_range_labels_are_refused():
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix(np.array([3]), np.array([1]), num_labels=3)


def test_cam_prediction_prepends_a_constant_background():
    cams = np.array([[[0.9, 0.2], [0.5, 0.0]],   # class id 3 (boat -> label 4)
                     [[0.1, 0.6], [0.5, 0.0]]])  # class id 14 (person -> label 15)
    assert cam_prediction(cams, [3, 14], 0.3).tolist() == [[4, 15], [4, 0]]  # a tie goes to the first class
    assert cam_prediction(cams, [3, 14], 0.5).tolist() == [[4, 15], [0, 0]]  # a tie with t goes to background
    assert cam_prediction(np.zeros((0, 2, 2)), [], 0.1).tolist() == [[0, 0], [0, 0]]


def test_sweep_matches_one_threshold_at_a_time():
    rng = np.random.default_rng(0)
    sweep = ThresholdSweep()
    images = []
    for _ in range(4):
        class_ids = sorted(rng.choice(20, size=2, replace=False))
        cams = rng.random((2, 16, 16))
        truth = rng.choice([0, class_ids[0] + 1, class_ids[1] + 1, 255], size=(16, 16))
        sweep.add(cams, class_ids, truth)
        images.append((cams, class_ids, truth))
    for index in (0, 17, 59):
        threshold = sweep.thresholds[index]
        expected = sum(confusion_matrix(cam_prediction(c, ids, threshold), t) for c, ids, t in images)
        assert np.array_equal(sweep.confusions[index], expected)


def test_best_threshold_is_found_and_edges_are_flagged():
    truth = np.array([[0, 0, 1, 1]])
    cams = np.array([[[0.1, 0.3, 0.5, 0.7]]])  # class id 0 -> label 1
    sweep = ThresholdSweep()
    sweep.add(cams, [0], truth)
    best = sweep.best()
    assert 0.3 <= best["threshold"] < 0.5 and best["miou"] == pytest.approx(1.0)
    assert not best["at_edge"] and best["warning"] is None
    # Maps that are positive everywhere with a weak object need a higher background score than 0.59.
    saturated = ThresholdSweep()
    saturated.add(np.array([[[0.55, 0.58, 0.62, 0.9]]]), [0], np.array([[0, 0, 0, 1]]))
    best = saturated.best()
    # 0.58 and 0.59 tie at the top (mean of 2/3 and 1/2): the maximum touches the sweep's end.
    assert best["threshold"] == pytest.approx(0.58) and best["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert best["at_edge"] and "clipped" in best["warning"]


def test_average_precision_by_hand():
    scores = np.array([[0.9, 0.5], [0.8, 0.5], [0.7, 0.1], [0.6, 0.2]])
    targets = np.array([[1, 1], [0, 0], [1, 0], [0, 0]])
    ap = average_precision(scores, targets)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)  # hits at ranks 1 and 3
    assert ap[1] == pytest.approx(0.5)  # the positive ties with a negative: precision 1/2 at that threshold
    assert np.isnan(average_precision(scores, np.zeros_like(targets))).all()
    with pytest.raises(ValueError, match="differ in shape"):
        average_precision(scores, targets[:, :1])


def test_sweep_equals_one_confusion_matrix_per_threshold():
    rng = np.random.default_rng(7)
    sweep = ThresholdSweep()
    expected = np.zeros_like(sweep.confusions)
    for _ in range(3):
        class_ids = rng.choice(20, size=rng.integers(0, 4), replace=False)
        cams = rng.random((len(class_ids), 9, 11)).astype(np.float32) * 0.7
        cams[:, 0, 0] = 0.25  # exactly on a threshold: not above it
        truth = rng.integers(0, 21, (9, 11))
        truth[rng.random((9, 11)) < 0.1] = 255
        sweep.add(cams, class_ids, truth)
        for index, t in enumerate(sweep.thresholds):
            expected[index] += confusion_matrix(cam_prediction(cams, class_ids, t), truth)
    assert np.array_equal(sweep.confusions, expected)


def test_saved_label_maps_are_scored_against_the_ground_truth(tmp_path):
    from infercam.metrics import evaluate_label_maps
    from infercam.voc import save_label_png

    class Truth:
        names = ["a"]

        @staticmethod
        def load_label(name):
            label = np.zeros((4, 4), np.uint8)
            label[:, 2:] = 3
            label[0, 0] = 255
            return label

    prediction = np.zeros((4, 4), np.uint8)
    prediction[:, 3:] = 3  # half of class 3 found
    prediction[3, 0] = 255  # unlabelled: counts as background
    save_label_png(prediction, tmp_path / "a.png")
    result = evaluate_label_maps(Truth(), tmp_path)
    # background: truth 7 pixels (one ignored), predicted 7 + 4 = 11 -> IoU 7 / 11; class 3: 4 / 8
    assert result["per_class_iou"]["background"] == pytest.approx(7 / 11)
    assert result["miou"] == pytest.approx((7 / 11 + 4 / 8) / 2)
    with pytest.raises(FileNotFoundError, match="no label map"):
        evaluate_label_maps(Truth(), tmp_path / "missing")
