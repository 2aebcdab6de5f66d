"""The paired bootstrap against a direct resampling loop and against cases whose interval is known."""
from __future__ import annotations

import numpy as np
import pytest

from infercam.bootstrap import (ImageConfusions, mean_ious, paired_bootstrap, paired_bootstrap_by_group, resample_counts,
                                resampled_mious, truth_class_counts, verdict)
from infercam.metrics import NUM_LABELS, ThresholdSweep, mean_iou
from infercam.runs import read_confusions, write_confusions


def random_confusions(images: int, seed: int, labels: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 50, size=(images, labels, labels))


def names(count: int) -> tuple[str, ...]:
    return tuple(f"img{i:03d}" for i in range(count))


def test_vectorised_resamples_equal_a_direct_loop_over_the_same_draws():
    # Catches a wrong matrix product or reshape (e.g. counts applied to the wrong axis, or the
    # resampled confusions transposed): each resample is recomputed the slow way from its drawn images.
    confusions = random_confusions(7, seed=1)
    confusions[:, 3, :] = confusions[:, :, 3] = 0  # a class absent from every image must not count
    counts = resample_counts(7, resamples=25, seed=3)
    fast = resampled_mious(confusions, counts)
    for resample, row in enumerate(counts):
        drawn = np.repeat(np.arange(7), row)  # the images of this resample, repeats included
        assert fast[resample] == pytest.approx(mean_iou(confusions[drawn].sum(axis=0)))
        assert row.sum() == 7


def test_mean_ious_agrees_with_mean_iou_on_absent_classes():
    # Catches counting a class that is neither in the truth nor predicted (the book's mIoU skips it).
    confusion = np.zeros((NUM_LABELS, NUM_LABELS), dtype=np.int64)
    confusion[0, 0], confusion[5, 5], confusion[5, 0] = 6, 3, 1
    assert mean_ious(confusion[None])[0] == pytest.approx(mean_iou(confusion))


def test_identical_rows_differ_by_exactly_zero_and_images_all_alike_give_no_spread():
    # Catches unpaired resampling (each row drawn independently would give a nonzero interval for
    # identical rows) and a point estimate not taken from all the images.
    varied = ImageConfusions(names(30), random_confusions(30, seed=2))
    same_image = ImageConfusions(names(30), np.repeat(random_confusions(1, seed=4), 30, axis=0))
    table = paired_bootstrap({"a": varied, "copy of a": varied, "alike": same_image}, reference="a", resamples=200)
    assert table.loc["copy of a", ["Δ", "Δ low", "Δ high"]].tolist() == [0, 0, 0]
    point = 100 * mean_iou(same_image.confusions[0])
    assert table.loc["alike", ["mIoU (%)", "mIoU low", "mIoU high"]].tolist() == pytest.approx([point] * 3)
    assert table.loc["a", "mIoU low"] < table.loc["a", "mIoU (%)"] < table.loc["a", "mIoU high"]
    assert table.loc["a", "mIoU (%)"] == pytest.approx(100 * mean_iou(varied.confusions.sum(axis=0)))


def test_rows_are_paired_by_image_name_not_by_position():
    # Catches pairing by position: the same row saved in another image order is still the same row.
    row = ImageConfusions(names(12), random_confusions(12, seed=5))
    order = np.random.default_rng(0).permutation(12)
    shuffled = ImageConfusions(tuple(np.array(row.names)[order]), row.confusions[order])
    table = paired_bootstrap({"row": row, "shuffled": shuffled}, reference="row", resamples=50)
    assert table.loc["shuffled", ["Δ low", "Δ high"]].tolist() == [0, 0]


def test_rows_on_different_images_are_refused():
    # Catches silently comparing rows measured on different image sets.
    a = ImageConfusions(names(5), random_confusions(5, seed=6))
    b = ImageConfusions(names(6)[1:], random_confusions(5, seed=7))
    with pytest.raises(ValueError, match="row .b. against .a.: cannot pair rows evaluated on different images.*img005.*img000"):
        paired_bootstrap({"a": a, "b": b}, reference="a")


def test_same_seed_same_interval_and_the_interval_holds_a_clear_gain():
    # Catches an unseeded draw (intervals that change between runs of the book) and a verdict that
    # ignores the interval.
    base = random_confusions(40, seed=8)
    better = base.copy()
    better[:, 1, 1] += 40  # every image predicts more of class 1 right: a gain on every resample
    rows = {"base": ImageConfusions(names(40), base), "better": ImageConfusions(names(40), better)}
    first, second = (paired_bootstrap(rows, reference="base", resamples=300, seed=11) for _ in range(2))
    assert first.equals(second)
    gain = first.loc["better"]
    assert 0 < gain["Δ low"] <= gain["Δ"] <= gain["Δ high"]
    assert verdict(gain["Δ"], gain["Δ low"], gain["Δ high"], 40).startswith("gains +")
    assert verdict(0.3, -0.2, 0.8, 40) == "is within noise on 40 images (+0.30 points, 95% CI -0.20..+0.80)"
    assert verdict(-1.0, -1.5, -0.5, 40).startswith("loses 1.00 points")


def test_sweep_per_image_confusions_sum_to_the_threshold_row():
    # Catches per-image confusions taken at another threshold than the chosen one, or that lose pixels.
    rng = np.random.default_rng(0)
    sweep = ThresholdSweep()
    for _ in range(4):
        truth = rng.integers(0, 3, size=(6, 5))
        truth[0, 0] = 255
        sweep.add(rng.random((2, 6, 5)).astype(np.float32), [0, 1], truth)
    for index in (0, 17, 59):
        per_image = sweep.image_confusions(sweep.thresholds[index])
        assert per_image.shape == (4, NUM_LABELS, NUM_LABELS)
        assert (per_image.sum(axis=0) == sweep.confusions[index]).all()
    with pytest.raises(ValueError, match="not one of the sweep's"):
        sweep.image_confusions(0.123)


def test_confusions_are_saved_and_read_back_by_label(tmp_path):
    # Catches labels or names lost on the way to disk (the results chapter pairs rows by them).
    rows = {"baseline/val": ImageConfusions(names(3), random_confusions(3, seed=1)),
            "ours/val": ImageConfusions(names(3)[::-1], random_confusions(3, seed=2))}
    write_confusions(tmp_path, "04_combined", rows)
    back = read_confusions(tmp_path, "04_combined")
    assert set(back) == set(rows)
    for label, row in rows.items():
        assert back[label].names == row.names and (back[label].confusions == row.confusions).all()
    assert read_confusions(tmp_path, "never_ran") == {}


def test_class_counts_come_from_the_truth_rows_and_groups_are_bootstrapped_alone():
    # Catches counting classes from the predictions (columns) instead of the ground truth (rows), or
    # a group's interval computed over all images: the 1-class images gain, the 2-class ones lose.
    image_names = names(6)
    reference = np.zeros((6, NUM_LABELS, NUM_LABELS), dtype=np.int64)
    reference[:, 0, 0] = 50
    reference[:3, 1, 1] = 10  # images 0-2: class 1 only
    reference[3:, 1, 1] = reference[3:, 2, 2] = 10  # images 3-5: classes 1 and 2
    reference[:, 0, 7] = 5  # a predicted class absent from every truth
    method = reference.copy()
    method[:3, 1, 1], method[:3, 1, 0] = 10, 0
    reference[:3, 1, 1], reference[:3, 1, 0] = 6, 4  # the method is better on the 1-class images
    method[3:, 2, 2], method[3:, 2, 0] = 5, 5  # and worse on the 2-class ones
    rows = {"reference": ImageConfusions(image_names, reference), "method": ImageConfusions(image_names, method)}
    counts = truth_class_counts(rows["reference"])
    assert counts.tolist() == [1, 1, 1, 2, 2, 2]
    table = paired_bootstrap_by_group(rows, "reference", counts.astype(str), resamples=200)
    assert set(table.index.get_level_values("group")) == {"1", "2"}
    assert (table["images"] == 3).all()
    one, two = table.loc[("1", "method")], table.loc[("2", "method")]
    assert one["Δ low"] > 0 and two["Δ high"] < 0
    assert one["Δ"] == pytest.approx(paired_bootstrap({k: v.subset(image_names[:3]) for k, v in rows.items()},
                                                      "reference").loc["method", "Δ"])


def test_interval_is_the_central_95_percent_of_the_values():
    # Catches an interval built from other percentiles (5th and 95th: a 90% interval) called 95%.
    from infercam.bootstrap import LEVEL, interval

    assert LEVEL == 0.95
    assert interval(np.arange(1001.0)) == pytest.approx((25.0, 975.0))


def test_paired_intervals_cover_the_true_difference_95_percent_of_the_time():
    # Catches a narrower interval than the level it claims (a 90% interval called 95% covers about
    # 90% here): draw samples of images from a known population again and again, and count how
    # often the interval of the difference holds the population's difference. Seeded: deterministic.
    rng = np.random.default_rng(0)
    population, images, trials = 4000, 60, 400
    truth_fg = rng.integers(200, 800, population)  # each image: one class on a background of 1,000 pixels
    found = {"reference": rng.uniform(0.3, 0.9, population), "method": rng.uniform(0.35, 0.9, population)}

    def confusions(share):
        hit = np.round(truth_fg * share)
        matrix = np.zeros((population, 2, 2))
        matrix[:, 1, 1], matrix[:, 1, 0] = hit, truth_fg - hit
        matrix[:, 0, 0], matrix[:, 0, 1] = 1000 - truth_fg - 20, 20
        return matrix

    rows = {name: confusions(share) for name, share in found.items()}
    true_delta = 100 * (mean_ious(rows["method"].sum(axis=0)) - mean_ious(rows["reference"].sum(axis=0)))
    covered = 0
    for trial in range(trials):
        drawn = rng.choice(population, images, replace=False)
        names = tuple(f"image{i}" for i in drawn)
        table = paired_bootstrap({name: ImageConfusions(names, matrix[drawn]) for name, matrix in rows.items()},
                                 "reference", resamples=500, seed=trial)
        covered += table.loc["method", "Δ low"] <= true_delta <= table.loc["method", "Δ high"]
    assert 0.92 <= covered / trials <= 0.98, f"a '95%' interval covered the true difference {covered / trials:.1%} of the time"
