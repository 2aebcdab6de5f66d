"""The book's front page in numbers: each effect the paper reports, what this profile's runs measured
for it, with its 95% interval over the images, its range over training seeds (where ``make seeds``
measured it), and whether it reproduces here.

Built from the same tables and intervals as the results chapter (:mod:`infercam.results`), so the
front page and the chapters never disagree: a number here is a number of a chapter's metrics file.
"""
from __future__ import annotations

import pandas as pd

from infercam import results
from infercam.bootstrap import conclusion
from infercam.seeds import profile_seed_spread

# Which chapter measures each of the paper's tables; Table 1's walked labels ("train CAM + RW", with or
# without CRF) are 07's, its CAMs 04's.
CHAPTERS = {"Table 1": "04_combined", "Table 2": "05_ablations", "Table 3": "04_combined",
            "Table 4": "06_split_retraining", "Table 5": "08_segmentation"}
WALKED_CHAPTER = "07_random_walk"

REPRODUCES = "reproduces"
OPPOSITE = "the opposite, beyond noise"
WITHIN_NOISE = "within noise"
SAME_SIGN_NO_INTERVAL = "same sign, no interval"
OTHER_SIGN_NO_INTERVAL = "other sign, no interval"


def chapter(table: str, measure: str) -> str:
    """The chapter whose run measured ``measure`` of the paper's ``table`` ("" for a table no chapter has)."""
    return WALKED_CHAPTER if table == "Table 1" and "RW" in measure else CHAPTERS.get(table, "")


def outcome(paper_delta: float, delta: float, low: float | None, high: float | None) -> str:
    """Whether a measured difference reproduces the paper's: the paper's sign with an interval that
    excludes zero on that side reproduces; an interval excluding zero on the other side is the
    opposite; an interval holding zero is within noise. Without an interval, only the sign is said."""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return SAME_SIGN_NO_INTERVAL if (delta > 0) == (paper_delta > 0) else OTHER_SIGN_NO_INTERVAL
    said = conclusion(low, high)
    if said == "within noise":
        return WITHIN_NOISE
    return REPRODUCES if (said == "gains") == (paper_delta > 0) else OPPOSITE


def findings(work_dir, profile: str, seed: int = 0) -> pd.DataFrame:
    """One row per difference that the paper reports and this profile measured, keyed like the results
    chapter's tables (table, row, measure): the paper's Δ, ours, its 95% interval (low, high), the
    images it rests on, its range over the training seeds (seeds low, seeds high: the
    :func:`infercam.seeds.profile_seed_spread` table, NaN where none has it), the outcome
    (:func:`outcome`) and the chapter to read. Empty when the chapters have not run."""
    runs, _ = results.load_runs({profile: work_dir})
    effects = results.gains({name: build(runs) for name, build in results.TABLES.items()})
    if profile not in effects.columns:
        return pd.DataFrame(columns=["table", "row", "measure", "paper", "here", "low", "high", "images", "seeds low",
                                     "seeds high", "outcome", "chapter"])
    effects = effects[[results.PAPER, profile]].dropna()
    intervals = results.difference_intervals({profile: work_dir}, seed=seed)
    spread = profile_seed_spread(profile, work_dir)
    seed_rows = spread[0] if spread is not None else pd.DataFrame(columns=["min", "max"])
    rows = []
    for (table, row, measure), values in effects.iterrows():
        key = (table, row, measure, profile)
        found = intervals.loc[key] if key in intervals.index else None
        low, high = (found["Δ low"], found["Δ high"]) if found is not None else (None, None)
        rows.append({
            "table": table, "row": row, "measure": measure, "paper": values[results.PAPER], "here": values[profile],
            "low": low, "high": high, "images": int(found["images"]) if found is not None else None,
            "seeds low": seed_rows["min"].get((table, row, measure)), "seeds high": seed_rows["max"].get((table, row, measure)),
            "outcome": outcome(values[results.PAPER], values[profile], low, high),
            "chapter": chapter(table, measure),
        })
    return pd.DataFrame(rows)


def counts(table: pd.DataFrame) -> dict[str, int]:
    """How many findings have each outcome."""
    return table["outcome"].value_counts().to_dict() if len(table) else {}


def signed(value: float) -> str:
    """A difference with its sign and one decimal, or two where one would read as ±0.0: an interval
    that excludes zero by a few hundredths must not look as if it touched it."""
    return f"{value:+.1f}" if round(abs(value), 1) > 0 or value == 0 else f"{value:+.2f}"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`findings` as the front page shows it: differences with a sign and one decimal, the
    chapter in the effect's name, the images as an integer, no index column."""
    if not len(table):
        return table
    shown = pd.DataFrame({
        "effect (chapter)": [f"{t}: {r.removeprefix('Δ ')}, {m} (ch. {c[:2]})"
                             for t, r, m, c in zip(table["table"], table["row"], table["measure"], table["chapter"])],
        "paper": table["paper"].map(signed),
        "here": table["here"].map(signed),
        "95% interval": [f"{signed(low)} to {signed(high)}" if pd.notna(low) else "—" for low, high in zip(table["low"], table["high"])],
        "images": table["images"].map(lambda n: "—" if pd.isna(n) else f"{int(n)}"),
        "over seeds": [f"{signed(low)} to {signed(high)}" if pd.notna(low) else "—"
                       for low, high in zip(table["seeds low"], table["seeds high"])],
        "outcome": table["outcome"],
    })
    return shown.set_index("effect (chapter)")


def _baseline_rows(step: str, metrics: dict) -> list[tuple[str, str, float, int | None]]:
    """(chapter, split, baseline mIoU %, images) of one chapter's metrics, where it measured the baseline CAM."""
    cams = metrics.get("cams", {})
    # "split" names the evaluation split in most chapters; in 02 it holds split & unite's settings
    evaluated = metrics.get("split") if isinstance(metrics.get("split"), str) else "val"
    rows = []
    for key, summary in cams.items():
        method, _, split = key.partition("/")
        if method in ("train", "val") and not split:  # 01 keys its summaries by split
            method, split = "baseline", key
        if method == "baseline" and isinstance(summary, dict) and "miou" in summary:
            rows.append((step, split or evaluated, 100 * summary["miou"], summary.get("images")))
    table = metrics.get("table", {}).get("baseline")  # the ablation batch
    if step == "05_ablations" and table:
        split = metrics.get("parameters", {}).get("evaluation_split", "val")
        rows.append((step, split, table.get("mIoU (%)"), table.get("images")))
    return rows


def baselines(work_dir) -> pd.DataFrame:
    """The baseline CAM's best-threshold mIoU as each chapter measured it, with its split and how
    many images (the first n of the split's list), read from the chapters' metrics files."""
    from infercam.runs import metrics_path, read_metrics

    rows = []
    for step in ("01_baseline_cam", "02_split_unite", "03_iterative", "04_combined", "05_ablations"):
        if metrics_path(work_dir, step).is_file():
            rows += _baseline_rows(step, read_metrics(work_dir, step)["metrics"])
    sizes = read_metrics(work_dir, "00_minivoc")["metrics"].get("splits", {}) if metrics_path(work_dir, "00_minivoc").is_file() else {}
    table = pd.DataFrame(rows, columns=["chapter", "split", "baseline mIoU (%)", "images"])
    table["images"] = [("—" if pd.isna(n) else f"all {int(n)}" if sizes.get(split) == n else f"first {int(n)}")
                       for split, n in zip(table["split"], table["images"])]
    return table.set_index(["chapter", "split"]).round(1)
