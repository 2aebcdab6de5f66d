"""The results chapter's tables: each of the paper's tables beside what our runs measured, for every
profile that was run, built from the runs' metrics files only (never a typed-in number but the
paper's, from :mod:`infercam.paper`).

``runs`` is ``{profile: {step: metrics file}}`` (:func:`load_runs`), each file as
:func:`infercam.runs.write_metrics` wrote it (``{"step", "context", "metrics"}``). Every table is a
DataFrame indexed by (row, measure), the paper's column (:data:`PAPER`) first, then one column a
profile; a profile whose metrics lack the steps a table needs gets no column and is named with the
reason in ``table.attrs["missing"]`` (:func:`missing_note` says it in words). Rows named ``Δ ...``
are differences of two rows, in the paper's column as in ours (:func:`gains` collects them).
"""
from __future__ import annotations

import json
import math
import os
from typing import Callable

import pandas as pd

from infercam import paper
from infercam.bootstrap import conclusion, paired_bootstrap, verdict_of
from infercam.config import resolve_path
from infercam.page import shown_path
from infercam.runs import read_confusions
from infercam.sbd import TRAIN_AUG_COUNT, VOC_TRAIN_COUNT
from infercam.segmentation import GROUND_TRUTH

PAPER = "paper (reported)"
INDEX_NAMES = ["row", "measure"]
RESULTS_STEP = "10_results"  # the chapter's own metrics: never read back as a result

# Our names of the rows -> the paper's
TABLE1_ROWS = {"baseline": "Baseline (psa)", "ours": "Ours"}
TABLE2_ROWS = {"baseline": "baseline", "split_unite": "split & unite", "iterative": "iterative inference", "combined": "both"}
TABLE3_ROWS = {"baseline": "Baseline", "ours": "Ours"}
TABLE4_ROWS = {"baseline classifier: baseline CAM": "Baseline",
               "baseline classifier: ours": "Ours (direct inference)",
               "split & unite fine-tuning: ours": "Ours + split & unite re-training"}
TABLE5_ROWS = {"none": "no saliency", "background_cue": "saliency as a background cue", "aamr": "saliency, AAMR loss"}
PAPER_TABLE5_ROWS = {"Ours (no saliency)": "none", "Ours (with saliency, AAMR loss)": "aamr"}
PSEUDO_LABELS = "the pseudo labels DeepLab learns from"
STEP_NAMES = {"rw": "CAM + RW", "rw_crf": "CAM + RW + CRF"}
ABLATION_GRID = "cam_methods"
TABLE3_GROUPS = {"1": "1 class", "2": "2 classes", "3+": "3+ classes", "total": "all"}
AAMR_GAIN = "Δ AAMR − no saliency"
RETRAINING_GAIN = "Δ re-training − direct inference"


def load_runs(work_dirs: dict[str, str | os.PathLike]) -> tuple[dict[str, dict[str, dict]], dict[str, str]]:
    """({profile: {step: metrics file}}, {profile: why it was skipped}) of the profiles' work_dirs:
    every ``<work_dir>/metrics/**/*.json`` with a ``metrics`` entry, keyed by its ``step``."""
    runs, skipped = {}, {}
    for profile, work_dir in work_dirs.items():
        folder = resolve_path(work_dir) / "metrics"
        steps = {}
        for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
            payload = json.loads(path.read_text())
            if isinstance(payload, dict) and "metrics" in payload:
                step = payload.get("step") or path.relative_to(folder).with_suffix("").as_posix()
                if step != RESULTS_STEP:
                    steps[step] = payload
        if steps:
            runs[profile] = steps
        else:
            skipped[profile] = f"no metrics files in {shown_path(folder)}"
    return runs, skipped


def _assemble(runs: dict, paper_values: dict[tuple, float | None], needed: tuple[str, ...],
              measure: Callable[[dict], dict[tuple, float]], differences: dict[str, tuple[str, str]] | None = None
              ) -> pd.DataFrame:
    """The table: the paper's values, then each profile's ``measure({step: metrics})`` (missing
    cells NaN), then each ``differences`` row ``label: (minuend row, subtrahend row)``."""
    columns, missing = {PAPER: paper_values}, {}
    for profile, steps in runs.items():
        absent = [step for step in needed if step not in steps]
        values = measure({step: payload["metrics"] for step, payload in steps.items()})
        if not values:
            missing[profile] = f"no metrics of {', '.join(absent or needed)}"
            continue
        if absent:
            missing[profile] = f"no metrics of {', '.join(absent)}: those cells are empty"
        columns[profile] = values
    keys = list(dict.fromkeys(key for values in columns.values() for key in values))
    row_order = {row: i for i, row in enumerate(dict.fromkeys(row for row, _ in keys))}
    measure_order = {name: i for i, name in enumerate(dict.fromkeys(name for _, name in keys))}
    keys.sort(key=lambda key: (row_order[key[0]], measure_order[key[1]]))
    table = pd.DataFrame({column: [_number(values.get(key)) for key in keys] for column, values in columns.items()},
                         index=pd.MultiIndex.from_tuples(keys, names=INDEX_NAMES), dtype=float)
    rows = set(table.index.get_level_values("row"))
    for label, (minuend, subtrahend) in (differences or {}).items():
        if not {minuend, subtrahend} <= rows:
            continue
        for measure_name in table.loc[minuend].index.intersection(table.loc[subtrahend].index):
            table.loc[(label, measure_name), :] = table.loc[(minuend, measure_name)] - table.loc[(subtrahend, measure_name)]
    table.attrs["missing"] = missing
    return table


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def _paper(table: dict, measures: list[str] | None = None) -> dict[tuple, float | None]:
    """A table of :mod:`infercam.paper` as {(row, measure): value} (None where the paper has none)."""
    return {(row, measure): values.get(measure) for row, values in table.items() for measure in (measures or values)}


def table1(runs: dict) -> pd.DataFrame:
    """Table 1: mIoU (%) of the initial maps on train and val (``04_combined``) and of the pseudo
    labels after the random walk, and after the walk and the CRF (``07_random_walk``)."""
    measures = ["train CAM", "val CAM", "train CAM + RW"]
    paper_values = _paper(paper.TABLE1, measures=measures)
    for row in TABLE1_ROWS.values():
        paper_values[row, "train CAM + RW + CRF"] = None

    def measure(steps):
        values = {}
        for ours, row in TABLE1_ROWS.items():
            cams = steps.get("04_combined", {}).get("table1", {}).get(ours, {})
            walked = steps.get("07_random_walk", {}).get("table1_rw", {}).get(ours, {})
            for name, value in (("train CAM", cams.get("train mIoU (%)")), ("val CAM", cams.get("val mIoU (%)")),
                                ("train CAM + RW", walked.get("CAM + RW")),
                                ("train CAM + RW + CRF", walked.get("CAM + RW + CRF"))):
                if value is not None:
                    values[row, name] = value
        return values

    return _assemble(runs, paper_values, ("04_combined", "07_random_walk"), measure,
                     {"Δ ours − baseline": ("Ours", "Baseline (psa)")})


def _ablation_miou(steps: dict, configuration: str) -> float | None:
    """A Table 2 row's mIoU (%): from 05_ablations' table, else from the ablation run's own metrics."""
    table = steps.get("05_ablations", {}).get("table", {})
    if configuration in table:
        return table[configuration].get("mIoU (%)")
    run = steps.get(f"ablation/{ABLATION_GRID}/{configuration}")
    return 100 * run["miou"] if run and run.get("miou") is not None else None


def table2(runs: dict) -> pd.DataFrame:
    """Table 2: mIoU (%) of the baseline, each module alone and both (the ablation batch of
    ``05_ablations``; the paper on VOC train, ours on the grid's images), with each one's gain."""
    paper_values = {(row, "mIoU (%)"): paper.TABLE2[row] for row in TABLE2_ROWS.values()}

    def measure(steps):
        values = {(row, "mIoU (%)"): _ablation_miou(steps, configuration) for configuration, row in TABLE2_ROWS.items()}
        return {key: value for key, value in values.items() if value is not None}

    base = TABLE2_ROWS["baseline"]
    return _assemble(runs, paper_values, ("05_ablations",), measure,
                     {f"Δ {row} − baseline": (row, base) for row in list(TABLE2_ROWS.values())[1:]})


def table3(runs: dict) -> pd.DataFrame:
    """Table 3: train mIoU (%) by the number of classes in the image (``04_combined``)."""
    def measure(steps):
        table = steps.get("04_combined", {}).get("table3", {})
        return {(row, name): table[ours][group] for ours, row in TABLE3_ROWS.items() if ours in table
                for group, name in TABLE3_GROUPS.items() if table[ours].get(group) is not None}

    paper_values = {(row, name): values[group] for row, values in paper.TABLE3.items()
                    for group, name in TABLE3_GROUPS.items()}
    return _assemble(runs, paper_values, ("04_combined",), measure,
                     {"Δ ours − baseline": ("Ours", "Baseline")})


def table4(runs: dict) -> pd.DataFrame:
    """Table 4: mIoU (%) of the baseline CAM and the combined module on re-trained classifiers
    (``06_split_retraining``; its control, fine-tuning without patches, has no paper row)."""

    def measure(steps):
        table = steps.get("06_split_retraining", {}).get("table4", {})
        return {(TABLE4_ROWS.get(ours, ours), split): values[f"{split} mIoU (%)"] for ours, values in table.items()
                for split in ("train", "val") if values.get(f"{split} mIoU (%)") is not None}

    return _assemble(runs, _paper(paper.TABLE4), ("06_split_retraining",), measure,
                     {RETRAINING_GAIN: ("Ours + split & unite re-training", "Ours (direct inference)")})


def table5(runs: dict) -> pd.DataFrame:
    """Table 5: mIoU (%) of the segmentation network trained on the pseudo labels, on val, with and
    without the CRF, per use of saliency (``08_segmentation``: ``table5``), and whose walked maps
    the pseudo labels came from, with their train mIoU; the networks without saliency trained on
    other methods' labels (``pseudo_label_sources``) are rows of their own. The paper trains on its
    own maps' labels; its val and test numbers are after its CRF post-processing."""
    reported = {variant: paper.TABLE5[paper_row] for paper_row, variant in PAPER_TABLE5_ROWS.items()}
    paper_values = {}
    for variant, row in TABLE5_ROWS.items():
        values = reported.get(variant, {})
        paper_values.update({(row, "val (CRF)"): values.get("val"), (row, "val (no CRF)"): None,
                             (row, "test"): values.get("test")})
    paper_values[PSEUDO_LABELS, f"ours {STEP_NAMES['rw']}: train mIoU"] = paper.TABLE1["Ours"]["train CAM + RW"]

    def measure(steps):
        segmentation = steps.get("08_segmentation", {})
        values = {(TABLE5_ROWS.get(variant, variant), f"val ({crf})"): value
                  for variant, scores in segmentation.get("table5", {}).items()
                  for crf, value in (("CRF", scores.get("CRF")), ("no CRF", scores.get("no CRF"))) if value is not None}
        main = segmentation.get("pseudo_labels", {})
        step = STEP_NAMES.get(main.get("step"), main.get("step"))
        if "train_miou" in main:
            values[PSEUDO_LABELS, f"{main['method']} {step}: train mIoU"] = main["train_miou"]
        for method, scores in segmentation.get("pseudo_label_sources", {}).items():
            if method == GROUND_TRUTH:  # no pseudo label: the upper bound of every one
                values.update({("no saliency, on the ground truth (upper bound)", f"val ({crf})"): scores[crf]
                               for crf in ("CRF", "no CRF")})
            elif method != main.get("method"):
                values.update({(f"no saliency, on the {method} pseudo labels", f"val ({crf})"): scores[crf]
                               for crf in ("CRF", "no CRF")})
                values[PSEUDO_LABELS, f"{method} {step}: train mIoU"] = scores["train_miou"]
        return values

    return _assemble(runs, paper_values, ("08_segmentation",), measure,
                     {AAMR_GAIN: (TABLE5_ROWS["aamr"], TABLE5_ROWS["none"])})


def recall(runs: dict) -> pd.DataFrame:
    """Section 3.1: the share (%) of ground-truth object pixels of train where the baseline CAM is
    positive, with psa's protocol and with one forward, beside the background it also covers
    (``01_baseline_cam``). The paper does not say which inference its 84% comes from."""
    inferences = {"the CAM protocol": ("cams", "train"), "one forward": ("cams_single_scale", "train")}
    paper_values = {}
    for inference in inferences:
        paper_values.update({(inference, "object pixels with CAM > 0 (%)"): 100 * paper.CAM_POSITIVE_RECALL,
                             (inference, "background pixels with CAM > 0 (%)"): None})

    def measure(steps):
        values = {}
        for inference, (key, split) in inferences.items():
            summary = steps.get("01_baseline_cam", {}).get(key, {}).get(split, {})
            for name, field in (("object pixels with CAM > 0 (%)", "recall_cam_positive"),
                                ("background pixels with CAM > 0 (%)", "background_share_cam_positive")):
                if summary.get(field) is not None:
                    values[inference, name] = 100 * summary[field]
        return values

    return _assemble(runs, paper_values, ("01_baseline_cam",), measure)


def cost(runs: dict) -> pd.DataFrame:
    """Section 4.5: the response maps' cost (``09_computation_time``), beside the paper's 13 and 40
    minutes for VOC train and its 6 hours of classifier re-training, on its GPU."""
    minutes, train, train_aug = paper.CAM_MINUTES, VOC_TRAIN_COUNT, TRAIN_AUG_COUNT
    paper_values = {("baseline CAM", "min for VOC train"): minutes["baseline"],
                    ("ours (combined)", "min for VOC train"): minutes["ours"],
                    ("ours (combined)", "× baseline"): minutes["ours"] / minutes["baseline"],
                    ("ours (combined)", "extra h for VOC train_aug"): (minutes["ours"] - minutes["baseline"]) / train * train_aug / 60,
                    ("classifier training", "h for VOC train_aug"): paper.CLASSIFIER_RETRAINING_HOURS}

    def measure(steps):
        summary = steps.get("09_computation_time", {}).get("summary", {})
        values = {("baseline CAM", "min for VOC train"): summary.get("baseline_minutes_voc_train"),
                  ("ours (combined)", "min for VOC train"): summary.get("ours_minutes_voc_train"),
                  ("ours (combined)", "× baseline"): summary.get("ours_over_baseline"),
                  ("ours (combined)", "extra h for VOC train_aug"): summary.get("extra_hours_voc_train_aug"),
                  ("classifier training", "h for VOC train_aug"): summary.get("classifier_training_hours_voc_train_aug")}
        return {key: value for key, value in values.items() if value is not None}

    return _assemble(runs, paper_values, ("09_computation_time",), measure)


TABLES = {"Table 1": table1, "Table 2": table2, "Table 3": table3, "Table 4": table4, "Table 5": table5,
          "CAM > 0 recall (sec. 3.1)": recall, "Computation time (sec. 4.5)": cost}


def gains(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``Δ`` rows of every table with a number in some column, indexed by (table, row, measure):
    the paper's effects and ours."""
    parts = {name: table[table.index.get_level_values("row").str.startswith("Δ")].dropna(how="all")
             for name, table in tables.items()}
    parts = {name: part for name, part in parts.items() if len(part)}
    if not parts:
        return pd.DataFrame(columns=[PAPER], index=pd.MultiIndex.from_tuples([], names=["table", *INDEX_NAMES]))
    return pd.concat(parts, names=["table"])


def _ablation_side(configuration: str) -> tuple[str, str]:
    return f"ablation/{ABLATION_GRID}/{configuration}", configuration


def _interval_comparisons() -> dict[tuple[str, str, str], tuple[tuple[str, str], tuple[str, str]]]:
    """The ``Δ`` rows of the tables that a bootstrap can give an interval, keyed like :func:`gains`
    ((table, row, measure)), each as ((step, label) of the minuend, (step, label) of the
    subtrahend) in the steps' saved per-image confusions (:func:`infercam.runs.read_confusions`)."""
    comparisons = {}
    for measure, (step, label) in {"train CAM": ("04_combined", "{}/train"), "val CAM": ("04_combined", "{}/val"),
                                   "train CAM + RW": ("07_random_walk", "{}/CAM + RW"),
                                   "train CAM + RW + CRF": ("07_random_walk", "{}/CAM + RW + CRF")}.items():
        comparisons["Table 1", "Δ ours − baseline", measure] = ((step, label.format("ours")), (step, label.format("baseline")))
    for configuration, row in list(TABLE2_ROWS.items())[1:]:
        comparisons["Table 2", f"Δ {row} − baseline", "mIoU (%)"] = (_ablation_side(configuration), _ablation_side("baseline"))
    for group, measure in TABLE3_GROUPS.items():
        label = "{}/train" if group == "total" else f"{{}}/train/classes {group}"
        comparisons["Table 3", "Δ ours − baseline", measure] = (("04_combined", label.format("ours")),
                                                                ("04_combined", label.format("baseline")))
    for split in ("train", "val"):
        comparisons["Table 4", RETRAINING_GAIN, split] = (("06_split_retraining", f"split & unite fine-tuning: ours/{split}"),
                                                          ("06_split_retraining", f"baseline classifier: ours/{split}"))
    for crf in ("CRF", "no CRF"):
        comparisons["Table 5", AAMR_GAIN, f"val ({crf})"] = (("08_segmentation", f"aamr/{crf}"),
                                                            ("08_segmentation", f"none/{crf}"))
    return comparisons


INTERVAL_COLUMNS = ["images", "Δ", "Δ low", "Δ high", "verdict"]


def difference_intervals(work_dirs: dict[str, str | os.PathLike], seed: int = 0) -> pd.DataFrame:
    """Every ``Δ`` row of the tables whose two sides saved their per-image confusions, per profile:
    the difference (points), its 95% interval from a paired bootstrap over the images
    (:func:`infercam.bootstrap.paired_bootstrap`; each side keeps the settings, e.g. the best
    background score, it chose on all the images) and the verdict it gives. Indexed by (table,
    row, measure, profile); runs made before the confusions were saved have no rows."""
    rows = {}
    for profile, work_dir in work_dirs.items():
        saved: dict[str, dict] = {}
        for key, sides in _interval_comparisons().items():
            found = {}
            for side, (step, label) in zip(("minuend", "subtrahend"), sides):
                if step not in saved:
                    saved[step] = read_confusions(work_dir, step)
                found[side] = saved[step].get(label)
            if None in found.values():
                continue
            row = paired_bootstrap(found, "subtrahend", seed=seed).loc["minuend"]
            rows[(*key, profile)] = {**row[INTERVAL_COLUMNS[:-1]].to_dict(), "verdict": verdict_of(row)}
    index = pd.MultiIndex.from_tuples(list(rows), names=["table", *INDEX_NAMES, "profile"])
    return pd.DataFrame(list(rows.values()), index=index, columns=INTERVAL_COLUMNS)


def conclusion_changes(intervals: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Each difference that both profiles measured (rows of :func:`difference_intervals`), side by
    side: its value and :func:`conclusion` under each, and whether the conclusion changes from
    ``first`` to ``second`` (e.g. a classifier from scratch against one from ImageNet)."""
    profiles = intervals.index.get_level_values("profile")
    sides = {name: intervals[profiles == name].droplevel("profile") for name in (first, second)}
    both = sides[first].index.intersection(sides[second].index)
    table = pd.DataFrame(index=both)
    for name, side in sides.items():
        table[f"Δ, {name}"] = side.loc[both, "Δ"]
        table[f"{name} says"] = [conclusion(low, high) for low, high in side.loc[both, ["Δ low", "Δ high"]].itertuples(index=False)]
    table["conclusion changes"] = table[f"{first} says"] != table[f"{second} says"]
    return table


def provenance(runs: dict) -> pd.DataFrame:
    """Which run made each metrics file: (profile, step) -> date, profile, seed, device, precision
    (of its networks; empty for a step without one), the operations that ran without a
    deterministic implementation (CUDA), versions, git commit. The ablation batch's runs are one
    row per grid: its latest run, and how many."""
    rows = {}
    for profile, steps in runs.items():
        batches: dict[str, list[dict]] = {}
        for step, payload in steps.items():
            if step.startswith("ablation/"):
                batches.setdefault(step.rsplit("/", 1)[0], []).append(payload)
            else:
                rows[profile, step] = _context_row(payload)
        for batch, payloads in batches.items():
            latest = max(payloads, key=lambda payload: payload.get("context", {}).get("date") or "")
            rows[profile, f"{batch} ({len(payloads)} runs, latest)"] = _context_row(latest)
    table = pd.DataFrame.from_dict(rows, orient="index")
    if len(table):
        table.index = pd.MultiIndex.from_tuples(table.index, names=["profile", "step"])
        table = table.sort_index()
    return table


def provenance_long(runs: dict) -> pd.DataFrame:
    """:func:`provenance` narrow enough for a phone: per profile, each field (date, seed, device,
    precision, versions, commit...) with the steps that share its value, so that a value common to
    every step is one row. Columns: profile, field, value, steps."""
    wide = provenance(runs)
    rows = []
    for profile, steps in wide.groupby(level="profile", sort=True):
        steps = steps.droplevel("profile")
        for field in steps.columns:
            values = steps[field].map(lambda value: "—" if value is None or (isinstance(value, float) and math.isnan(value))
                                      else str(value)[:10] if field == "date" else str(value))
            for value, members in values.groupby(values, sort=False):
                rows.append({"profile": profile, "field": field, "value": value,
                             "steps": "all" if len(members) == len(steps) else ", ".join(members.index)})
    return pd.DataFrame(rows, columns=["profile", "field", "value", "steps"]).set_index(["profile", "field"])


def _context_row(payload: dict) -> dict:
    context = payload.get("context", {})
    versions = context.get("versions", {})
    return {"date": context.get("date"), "profile": context.get("profile"), "seed": context.get("seed"),
            "device": context.get("device"), "device name": context.get("device_name"),
            "precision": context.get("precision"),
            "not deterministic": None if context.get("nondeterministic_ops") is None  # made before it was recorded
            else ", ".join(context["nondeterministic_ops"]) or "none",
            "git commit": context.get("git_commit"), **{name: versions.get(name) for name in sorted(versions)}}


def sample_sizes(runs: dict) -> pd.DataFrame:
    """How many images each profile's numbers rest on (rows: what; columns: profiles). Table 4's
    counts are those asked for, capped by the split's size where ``00_minivoc`` recorded it."""
    def images(steps):
        combined = steps.get("04_combined", {}).get("images", {})
        ablation = steps.get("05_ablations", {})
        retraining = steps.get("06_split_retraining", {}).get("images", {})
        walk = steps.get("07_random_walk", {}).get("images", {})
        splits = steps.get("00_minivoc", {}).get("splits", {})

        def capped(split):
            asked = retraining.get(split)
            return min(asked, splits[split]) if asked is not None and split in splits else asked

        return {"Table 1, 3: train images": combined.get("train"), "Table 1: val images": combined.get("val"),
                "Table 1: train images after the walk": walk.get("evaluated"),
                f"Table 2: {ablation.get('parameters', {}).get('evaluation_split', '?')} images":
                    ablation.get("table", {}).get("baseline", {}).get("images"),
                "Table 4: train images": capped("train"), "Table 4: val images": capped("val"),
                "sec. 4.5: train images timed": steps.get("09_computation_time", {}).get("images")}

    return pd.DataFrame({profile: images({step: p["metrics"] for step, p in steps.items()})
                         for profile, steps in runs.items()}, dtype=float)


def _first_of(count, total) -> str:
    if count is None:
        return "—"
    return f"all {int(count)}" if total is not None and int(count) >= int(total) else \
        f"first {int(count)}" + (f" of {int(total)}" if total is not None else "")


def baseline_by_subset(steps: dict) -> pd.DataFrame:
    """The baseline CAM's mIoU (%) on each subset of images a chapter measured it on (``steps``: one
    profile's {step: metrics}): each chapter measures the first images of a split, not always as
    many, so the baseline differs from table to table. Rows: where it is shown; columns: split,
    images ("first 60 of 300"), baseline mIoU (%)."""
    splits = steps.get("00_minivoc", {}).get("splits", {})
    rows = {}

    def add(where, split, count, miou):
        if count is not None and miou is not None:
            rows[where] = {"split": split, "images": _first_of(count, splits.get(split)), "baseline mIoU (%)": miou}

    cams = steps.get("01_baseline_cam", {}).get("cams", {})
    for split in ("train", "val"):
        add(f"the baseline chapter (01), {split}", split, cams.get(split, {}).get("images"),
            100 * cams[split]["miou"] if cams.get(split, {}).get("miou") is not None else None)
    combined = steps.get("04_combined", {})
    for split in ("train", "val"):
        add(f"Table 1{', 3' if split == 'train' else ''} (the combined chapter, 04), {split}", split,
            combined.get("images", {}).get(split), combined.get("table1", {}).get("baseline", {}).get(f"{split} mIoU (%)"))
    ablation = steps.get("05_ablations", {})
    baseline = ablation.get("table", {}).get("baseline", {})
    add("Table 2 (the ablation batch, 05), " + ablation.get("parameters", {}).get("evaluation_split", "val"),
        ablation.get("parameters", {}).get("evaluation_split", "val"), baseline.get("images"), baseline.get("mIoU (%)"))
    retraining = steps.get("06_split_retraining", {})
    for split in ("train", "val"):
        add(f"Table 4 (the re-training chapter, 06), {split}", split, retraining.get("images", {}).get(split),
            retraining.get("table4", {}).get("baseline classifier: baseline CAM", {}).get(f"{split} mIoU (%)"))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["split", "images", "baseline mIoU (%)"])


def intervals_view(intervals: pd.DataFrame) -> pd.DataFrame:
    """Rows of :func:`difference_intervals` (one table's) as the chapter shows them: the images, the
    difference with its 95% interval, and what the interval says."""
    return pd.DataFrame({"images": intervals["images"].astype(int),
                         "Δ (95% interval)": [difference_text(*row) for row in intervals[["Δ", "Δ low", "Δ high"]].itertuples(index=False)],
                         "says": [conclusion(low, high) for low, high in intervals[["Δ low", "Δ high"]].itertuples(index=False)]},
                        index=intervals.index)


def missing_note(table: pd.DataFrame) -> str:
    """Markdown naming the profiles a table could not show (or show whole), and why."""
    missing = table.attrs.get("missing", {})
    if not missing:
        return ""
    return "Not measured: " + "; ".join(f"**{profile}**: {why}" for profile, why in missing.items()) + "."


def to_json(table: pd.DataFrame) -> dict:
    """``{"columns", "rows": {row: {measure: {column: value or None}}}, "missing"}`` for a metrics file."""
    rows: dict[str, dict] = {}
    for (row, measure), values in table.iterrows():
        rows.setdefault(row, {})[measure] = {column: None if value is None or (isinstance(value, float) and math.isnan(value))
                                             else value for column, value in values.items()}
    return {"columns": list(table.columns), "rows": rows, "missing": table.attrs.get("missing", {})}


def agreement(gains_table: pd.DataFrame, intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per profile: how many of the paper's effects (the ``Δ`` rows with a number in both columns) it
    measured, and what became of them (:func:`infercam.findings.outcome`): reproduced (the 95%
    interval excludes zero on the paper's side), within noise (the interval holds zero), the
    opposite beyond noise, and, for differences without an interval (``intervals``: rows of
    :func:`difference_intervals`; None: none has one), whether the sign alone is the paper's; then
    the mean of ours − the paper's. Counts are integers."""
    from infercam.findings import outcome  # findings builds on this module

    rows = {}
    for profile in gains_table.columns.drop(PAPER):
        both = gains_table[[PAPER, profile]].dropna()
        counts = {}
        for (table, row, measure), values in both.iterrows():
            key = (table, row, measure, profile)
            found = intervals.loc[key] if intervals is not None and key in intervals.index else None
            said = outcome(values[PAPER], values[profile], *((found["Δ low"], found["Δ high"]) if found is not None else (None, None)))
            counts[said] = counts.get(said, 0) + 1
        rows[profile] = {"effects measured": len(both),
                         "reproduced (95% interval on the paper's side)": counts.get("reproduces", 0),
                         "within noise (interval holds 0)": counts.get("within noise", 0),
                         "the opposite, beyond noise": counts.get("the opposite, beyond noise", 0),
                         "no interval: same sign": counts.get("same sign, no interval", 0),
                         "no interval: other sign": counts.get("other sign, no interval", 0),
                         "mean of ours − paper (points)": (both[profile] - both[PAPER]).mean() if len(both) else float("nan")}
    table = pd.DataFrame.from_dict(rows, orient="index")
    counts = [column for column in table.columns if not column.startswith("mean")]
    return table.astype({column: int for column in counts})


def choices_against_rules(ablation: dict, work_dir: str | os.PathLike | None = None, seed: int = 0) -> pd.DataFrame:
    """The ablation batch's rows that change one of the paper's rules (an official-code choice or an
    alternative), each beside the row of the same module with the paper's rules: mIoU (%), the
    difference (this choice − the paper's rules), whether it is the official code's choice where the
    paper's text says otherwise (``official code``, from the grid), and, with ``work_dir``, the
    difference's 95% interval from a paired bootstrap over the images (``Δ low``, ``Δ high``; NaN
    where a run saved no per-image confusions). ``ablation``: ``05_ablations``'s ``table``
    (configuration -> its row)."""
    table = pd.DataFrame.from_dict(ablation, orient="index")
    if "official code" not in table:  # a table saved before the grid marked the official code's choices
        from infercam.ablations import load_grid

        marked = {configuration.name: configuration.official_code for configuration in load_grid().configurations}
        table["official code"] = [marked.get(name, False) for name in table.index]
    by_maps = table.set_index("maps")["mIoU (%)"]
    rule_rows = {row["maps"]: name for name, row in table.iterrows()}
    rows = {}
    for name, row in table.iterrows():
        kind = row["maps"].split("-")[0]
        if row["maps"] == kind or kind not in by_maps:  # a row with the paper's rules itself
            continue
        rows[name] = {"choice": row["description"], "the paper's rules": kind, "paper's rules (%)": by_maps[kind],
                      "this choice (%)": row["mIoU (%)"], "Δ (points)": row["mIoU (%)"] - by_maps[kind],
                      "Δ low": float("nan"), "Δ high": float("nan"),
                      "official code": bool(row.get("official code", False)), "images": row["images"]}
        if work_dir is not None:
            saved = {side: read_confusions(work_dir, f"ablation/{ABLATION_GRID}/{configuration}").get(configuration)
                     for side, configuration in (("choice", name), ("rules", rule_rows[kind]))}
            if None not in saved.values():
                found = paired_bootstrap(saved, "rules", seed=seed).loc["choice"]
                rows[name] |= {"Δ low": found["Δ low"], "Δ high": found["Δ high"]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("configuration")


def choices_view(choices: pd.DataFrame) -> pd.DataFrame:
    """:func:`choices_against_rules` as the chapter shows it: what each row changes, its difference
    to the paper's rules with the 95% interval and what that says, and whether it is the official
    code's choice."""
    return pd.DataFrame({
        "choice": choices["choice"].to_list(),
        "Δ choice − paper's rules (95% interval)": [difference_text(*row) for row in
                                                    choices[["Δ (points)", "Δ low", "Δ high"]].itertuples(index=False)],
        "says": ["—" if pd.isna(low) else conclusion(low, high) for low, high in choices[["Δ low", "Δ high"]].itertuples(index=False)],
        "official code": ["yes" if flag else "no" for flag in choices["official code"]],
    }, index=[name.replace("_", "_\u200b") for name in choices.index]).rename_axis("configuration")


def aamr_choices(segmentation: dict) -> pd.DataFrame:
    """``08_segmentation``'s open choices of the AAMR loss beside the run with ours: val mIoU (%)
    with and without the CRF, and the differences."""
    ours = segmentation.get("table5", {}).get("aamr")
    rows = {}
    for name, values in segmentation.get("aamr_alternatives", {}).items():
        rows[name.removeprefix("aamr-")] = {**{f"{crf} (%)": values[crf] for crf in ("no CRF", "CRF")},
                                            **({f"Δ {crf}": values[crf] - ours[crf] for crf in ("no CRF", "CRF")} if ours else {})}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("choice changed")


def difference_text(delta: float, low: float | None = None, high: float | None = None) -> str:
    """A difference and its 95% interval as one short table cell, e.g. "+1.20 (-0.35 to +2.71)";
    "—" for a missing difference, the difference alone without an interval."""
    if delta is None or pd.isna(delta):
        return "—"
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"{delta:+.2f}"
    return f"{delta:+.2f} ({low:+.2f} to {high:+.2f})"


def readable(table: pd.DataFrame, decimals: int | dict[str, int] = 2, integers: tuple[str, ...] = ()) -> pd.DataFrame:
    """A table as the book shows it: numbers rounded to ``decimals`` (or ``{column: decimals}``, 2 for
    the others), the columns of integer type and those named in ``integers`` as whole numbers (a
    count is "500", not "500.0"), missing cells "—"."""
    shown = table.copy().astype(object)
    for column in table.columns:
        values = table[column]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            shown[column] = [("—" if value is None or (isinstance(value, float) and math.isnan(value)) else value)
                             for value in values]
            continue
        whole = column in integers or pd.api.types.is_integer_dtype(values)
        places = decimals.get(column, 2) if isinstance(decimals, dict) else decimals
        shown[column] = ["—" if pd.isna(value) else f"{value:.0f}" if whole else f"{value:.{places}f}" for value in values]
    return shown
