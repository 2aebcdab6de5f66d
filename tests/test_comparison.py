"""Two runs' metrics side by side (e.g. the classifier from scratch vs from ImageNet)."""
from __future__ import annotations

import pytest

from infercam.comparison import compare_runs, compare_starts, compare_with_other_start
from infercam.runs import write_metrics


def test_runs_side_by_side_with_the_change_from_the_first_and_a_named_missing_run(tmp_path):
    # Catches a change computed the wrong way round, a key path split on the dots inside a key,
    # and a missing run that passes silently instead of naming the notebook to run.
    write_metrics(tmp_path / "a", "01_step", {"cams": {"val": {"miou": 0.40}}, "x": {"> 0.5 share": 0.1}},
                  {"profile": "cpu", "date": "d1"})
    write_metrics(tmp_path / "b", "01_step", {"cams": {"val": {"miou": 0.47}}, "x": {"> 0.5 share": 0.3}},
                  {"profile": "cpu-imagenet", "date": "d2"})
    table = compare_runs({"scratch": tmp_path / "a", "imagenet": tmp_path / "b"}, "01_step",
                         {"mIoU": "cams/val/miou", "share": "x/> 0.5 share"})
    assert list(table.columns) == ["scratch", "imagenet", "change"]
    assert table.loc["mIoU", "change"] == pytest.approx(0.07)
    assert table.loc["share", "imagenet"] == pytest.approx(0.3)
    assert table.attrs["runs"]["imagenet"]["profile"] == "cpu-imagenet"
    with pytest.raises(FileNotFoundError, match="run notebooks/01_step.ipynb"):
        compare_runs({"scratch": tmp_path / "a", "none": tmp_path / "c"}, "01_step", {"mIoU": "cams/val/miou"})


def test_starts_are_labelled_by_the_classifier_and_percentages_scaled(tmp_path):
    # Catches a comparison of two runs with the same start (one column would silently vanish) and
    # fractions shown as percentages without scaling.
    for run, backbone, miou in (("a", "resnet18", 0.4), ("b", "efficientnet_lite0", 0.5), ("c", "resnet18", 0.3)):
        write_metrics(tmp_path / run, "01_baseline_cam", {"classifier": {"settings": {"backbone": backbone}},
                                                           "cams": {"val": {"miou": miou, "best_threshold": 0.2}}}, {})
    rows = {"mIoU (%)": "cams/val/miou", "best t": "cams/val/best_threshold"}
    table = compare_starts([tmp_path / "a", tmp_path / "b"], "01_baseline_cam", rows)
    assert list(table.columns) == ["resnet18 (from scratch)", "efficientnet_lite0 (ImageNet)", "change"]
    assert table.loc["mIoU (%)", "change"] == pytest.approx(10.0)
    assert table.loc["best t", "change"] == pytest.approx(0.0)
    # Catches a change column whose sign depends on which run is the chapter's own: the ImageNet run
    # (the cpu book's) compared with the scratch one must still read ImageNet minus scratch.
    swapped = compare_starts([tmp_path / "b", tmp_path / "a"], "01_baseline_cam", rows)
    assert list(swapped.columns) == list(table.columns)
    assert swapped.loc["mIoU (%)", "change"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="the other start"):
        compare_starts([tmp_path / "a", tmp_path / "c"], "01_baseline_cam", rows)


def test_a_chapter_without_a_run_to_compare_with_says_why_and_goes_on(tmp_path, capsys):
    # Catches a chapter that stops with a traceback where the other run is absent, lacks the step, or
    # predates a row (a KeyError), instead of saying so and going on with the book.
    for run, backbone in (("a", "resnet18"), ("b", "efficientnet_lite0")):
        write_metrics(tmp_path / run, "01_baseline_cam", {"classifier": {"settings": {"backbone": backbone}}}, {})
        write_metrics(tmp_path / run, "07_random_walk", {"table1_rw": {"ours": {"CAM + RW": 30.0}}}, {})
    rows = {"ours, CAM + RW": "table1_rw/ours/CAM + RW"}
    assert compare_with_other_start(tmp_path / "a", "", "07_random_walk", rows) is None
    assert "no run with the other start" in capsys.readouterr().out
    assert compare_with_other_start(tmp_path / "a", tmp_path / "b", "08_segmentation", rows) is None
    assert "run notebooks/08_segmentation.ipynb" in capsys.readouterr().out
    assert compare_with_other_start(tmp_path / "a", tmp_path / "b", "07_random_walk", {"x": "table1_rw/ground_truth/CRF"}) is None
    assert "have no 'ground_truth'" in capsys.readouterr().out
    table = compare_with_other_start(tmp_path / "a", tmp_path / "b", "07_random_walk", rows)
    assert list(table.columns) == ["resnet18 (from scratch)", "efficientnet_lite0 (ImageNet)", "change"]
