"""The front page's verdict on each of the paper's effects (infercam.findings.outcome)."""
import pandas as pd
import pytest

from infercam.findings import (OPPOSITE, OTHER_SIGN_NO_INTERVAL, REPRODUCES, SAME_SIGN_NO_INTERVAL, WITHIN_NOISE, chapter,
                               display_table, outcome)


@pytest.mark.parametrize("paper, delta, low, high, expected", [
    (+4.2, +1.0, +0.2, +1.8, REPRODUCES),        # the paper's gain, beyond noise
    (-1.0, -2.0, -3.0, -0.5, REPRODUCES),        # a loss the paper also reports (e.g. a worse variant)
    (+4.2, -6.0, -7.5, -4.5, OPPOSITE),          # catches a verdict that reads the sign of the interval, not the paper's
    (+4.2, +0.5, -0.6, +1.6, WITHIN_NOISE),      # catches counting a positive difference as a reproduction
    (+4.2, -0.5, -1.6, +0.6, WITHIN_NOISE),
    (+4.2, +0.5, None, None, SAME_SIGN_NO_INTERVAL),
    (+4.2, -0.5, float("nan"), float("nan"), OTHER_SIGN_NO_INTERVAL),
])
def test_outcome_follows_the_interval_and_the_papers_sign(paper, delta, low, high, expected):
    assert outcome(paper, delta, low, high) == expected


def test_display_table_names_the_chapter_and_shows_counts_as_integers():
    # Catches counts printed as "60.0", NaN cells shown to the reader, and a seed range that shows
    # another column's numbers.
    table = pd.DataFrame([{"table": "Table 2", "row": "Δ iterative inference − baseline", "measure": "mIoU (%)",
                           "paper": 1.4, "here": 0.5, "low": -0.6, "high": 1.6, "images": 60.0,
                           "seeds low": -0.2, "seeds high": 1.1, "outcome": WITHIN_NOISE, "chapter": "05_ablations"},
                          {"table": "Table 5", "row": "Δ AAMR − no saliency", "measure": "val (CRF)",
                           "paper": 4.6, "here": -1.3, "low": None, "high": None, "images": None,
                           "seeds low": None, "seeds high": None, "outcome": OTHER_SIGN_NO_INTERVAL, "chapter": "08_segmentation"}])
    shown = display_table(table)
    assert list(shown.index) == ["Table 2: iterative inference − baseline, mIoU (%) (ch. 05)",
                                 "Table 5: AAMR − no saliency, val (CRF) (ch. 08)"]
    assert list(shown["images"]) == ["60", "—"] and list(shown["95% interval"]) == ["-0.6 to +1.6", "—"]
    assert list(shown["over seeds"]) == ["-0.2 to +1.1", "—"]
    assert not shown.isna().any().any()


def test_an_interval_that_excludes_zero_by_hundredths_does_not_read_as_touching_it():
    # Catches "+0.0 to +1.4" beside the verdict "reproduces" (the interval's low end was +0.02), and
    # "-0.0" for a small negative bound; differences that one decimal shows keep one decimal.
    table = pd.DataFrame([{"table": "Table 5", "row": "Δ AAMR − no saliency", "measure": "val (CRF)",
                           "paper": 4.6, "here": 0.69, "low": 0.0152, "high": 1.388, "images": 50,
                           "seeds low": -0.04, "seeds high": 0.91, "outcome": REPRODUCES, "chapter": "08_segmentation"}])
    shown = display_table(table).iloc[0]
    assert (shown["here"], shown["95% interval"], shown["over seeds"]) == ("+0.7", "+0.02 to +1.4", "-0.04 to +0.9")


@pytest.mark.parametrize("table, measure, expected", [
    ("Table 1", "train CAM", "04_combined"), ("Table 1", "val CAM", "04_combined"),
    ("Table 1", "train CAM + RW", "07_random_walk"), ("Table 1", "train CAM + RW + CRF", "07_random_walk"),
    ("Table 5", "val (CRF)", "08_segmentation"), ("Table 9", "mIoU (%)", "")])
def test_each_finding_names_the_chapter_that_measured_it(table, measure, expected):
    # Catches the front page sending a reader of the walked labels' difference to 04, which never walks.
    assert chapter(table, measure) == expected


def test_baseline_rows_read_the_split_from_chapters_whose_split_key_holds_settings():
    # Catches the front page failing with "unhashable type: 'dict'": split & unite's metrics use
    # "split" for its settings, not for the split it evaluated.
    from infercam.findings import _baseline_rows

    metrics = {"split": {"buffer": 0, "min_size": 16}, "cams": {"baseline": {"miou": 0.5, "images": 24}}}
    assert _baseline_rows("02_split_unite", metrics) == [("02_split_unite", "val", 50.0, 24)]
    assert _baseline_rows("03_iterative", {"split": "train", "cams": {"baseline": {"miou": 0.25, "images": 40}}}) == \
        [("03_iterative", "train", 25.0, 40)]
