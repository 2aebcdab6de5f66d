"""The method chapters' tables: short columns, "—" instead of NaN, counts as integers, verdicts
that follow the interval."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from infercam.method_tables import images_phrase, pixels_table, quality_table, response_table, verdict_word


def evaluation(miou, threshold=0.2):
    summary = {"best_threshold": threshold, "object_coverage_at_best_threshold_mean": 0.5,
               "background_share_cam_positive": 0.25}
    return SimpleNamespace(best={"miou": miou, "threshold": threshold}, summary=lambda: summary)


def test_quality_table_says_what_each_interval_says():
    evaluations = {"baseline": evaluation(0.40), "a": evaluation(0.45), "b": evaluation(0.41), "c": evaluation(0.30)}
    intervals = pd.DataFrame({"Δ": [0.0, 5.0, 1.0, -10.0], "Δ low": [0.0, 1.0, -1.0, -12.0], "Δ high": [0.0, 9.0, 3.0, -8.0]},
                             index=list(evaluations))
    table = quality_table(evaluations, intervals)
    assert list(table["verdict"]) == ["—", "better", "within noise", "worse"]
    assert table.loc["baseline", "Δ − baseline (95% CI)"] == "—"
    assert table.loc["a", "Δ − baseline (95% CI)"] == "+5.00 (+1.00 to +9.00)"
    assert table.loc["a", "mIoU (%)"] == 45.0
    assert verdict_word(intervals.loc["b"]) == "within noise"
    assert list(pixels_table(evaluations).loc["a"]) == [0.2, 50.0, 25.0]
    assert list(pixels_table(evaluations).columns) == ["best t", "object ≥ t (%)", "background CAM > 0 (%)"]


def test_response_table_counts_are_integers_and_empty_groups_dashes():
    why = pd.DataFrame({"patches": [0, 3], "median_peak_ratio": [np.nan, 0.834],
                        "patch_peak_on_object": [np.nan, 0.5], "image_peak_on_object": [np.nan, 0.25]},
                       index=["none of the object", "> 25% object"])
    table = response_table(why)
    assert table["patches"].dtype.kind == "i"
    assert list(table.loc["none of the object"])[1:] == ["—", "—", "—"]
    assert list(table.loc["> 25% object"])[1:] == ["0.83", "50", "25"]


def test_images_phrase_names_the_subset():
    assert images_phrase(60, "val", 1449) == "the first 60 val images (of 1449, in the order of val.txt)"
    assert images_phrase(60, "val", 1449, detail=False) == "the first 60 val images"
    assert images_phrase(24, "val", 24) == "all 24 val images"
