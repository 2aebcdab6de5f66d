"""The tables and verdicts of the method chapters (split & unite, iterative inference): each
variant against the baseline on the same images, in few short columns that fit a phone's width,
and the words a verdict uses, taken from the paired bootstrap's interval."""
from __future__ import annotations

import pandas as pd

from infercam.bootstrap import conclusion

#: What :func:`infercam.bootstrap.conclusion` says, as the word a sentence about a method uses.
WORDS = {"gains": "better", "loses": "worse", "within noise": "within noise"}


def interval_text(low: float, high: float) -> str:
    """A 95% interval as a short table cell, e.g. "-0.35 to +2.71"."""
    return f"{low:+.2f} to {high:+.2f}"


def quality_table(evaluations: dict, intervals: pd.DataFrame, reference: str = "baseline") -> pd.DataFrame:
    """Per method: its best mIoU (%), the difference to ``reference`` (method − reference, points)
    with its 95% interval from the paired bootstrap (``intervals``:
    :func:`infercam.cam_analysis.compare_evaluations`) in one cell, and what the interval says;
    "—" on the reference's own row."""
    rows = {}
    for name, evaluation in evaluations.items():
        row = intervals.loc[name]
        own = name == reference
        rows[name] = {"mIoU (%)": round(100 * evaluation.best["miou"], 1),
                      f"Δ − {reference} (95% CI)": "—" if own else difference_text(row["Δ"], row["Δ low"], row["Δ high"]),
                      "verdict": "—" if own else verdict_word(row)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def difference_text(delta: float, low: float, high: float) -> str:
    """A difference and its 95% interval as one short table cell, e.g. "+1.20 (-0.35 to +2.71)"."""
    return f"{delta:+.2f} ({interval_text(low, high)})"


def pixels_table(evaluations: dict) -> pd.DataFrame:
    """Per method: the background score t it scores best at (``best t``), the mean share of each
    object whose own-class activation reaches t, and the share of background pixels with CAM > 0
    (percentages)."""
    rows = {}
    for name, evaluation in evaluations.items():
        summary = evaluation.summary()
        rows[name] = {"best t": round(summary["best_threshold"], 2),
                      "object ≥ t (%)": round(100 * summary["object_coverage_at_best_threshold_mean"], 1),
                      "background CAM > 0 (%)": round(100 * summary["background_share_cam_positive"], 1)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def verdict_word(row) -> str:
    """"better", "worse" or "within noise": a row of the paired bootstrap's table in one word."""
    return WORDS[conclusion(row["Δ low"], row["Δ high"])]


def images_phrase(count: int, split: str = "val", total: int | None = None, detail: bool = True) -> str:
    """Which images a table measures, e.g. "the first 60 val images (of 1449, in the order of
    val.txt)"; ``detail=False`` leaves out the parenthesis (for a figure's title)."""
    if total is not None and count >= total:
        return f"all {count} {split} images"
    more = f" (of {total}, in the order of {split}.txt)" if total and detail else ""
    return f"the first {count} {split} images{more}"


def response_table(why: pd.DataFrame) -> pd.DataFrame:
    """Split & unite's patch-response summary (one row per share of the object a patch holds:
    ``patches``, ``median_peak_ratio``, ``patch_peak_on_object``, ``image_peak_on_object``) with
    short column names, shares in percent, counts as integers and "—" for an empty group."""
    def shown(values, text):
        return [("—" if pd.isna(value) else text(value)) for value in values]

    return pd.DataFrame({
        "patches": why["patches"].fillna(0).astype(int),
        "median peak ratio": shown(why["median_peak_ratio"], "{:.2f}".format),
        "patch peak on object (%)": shown(100 * why["patch_peak_on_object"], "{:.0f}".format),
        "image peak on object (%)": shown(100 * why["image_peak_on_object"], "{:.0f}".format),
    }, index=why.index)
