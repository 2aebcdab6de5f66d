"""The results chapter's tables, on small fake metrics files: the paper's column holds the paper's
numbers, each profile's column what its metrics files say, and a profile that lacks them is named."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from infercam import paper, results
from infercam.runs import write_metrics

CONTEXT = {"date": "2026-01-02T03:04:05+00:00", "profile": "cpu", "seed": 0, "device": "cpu", "device_name": "x86_64",
           "versions": {"torch": "2.0", "python": "3.11"}, "git_commit": "abc1234"}


def payload(step: str, metrics: dict, **context) -> dict:
    return {"step": step, "context": {**CONTEXT, **context}, "metrics": metrics}


def combined(baseline_train=40.0, ours_train=45.0, baseline_val=38.0, ours_val=41.0) -> dict:
    return payload("04_combined", {
        "images": {"train": 300, "val": 200},
        "table1": {"baseline": {"train mIoU (%)": baseline_train, "val mIoU (%)": baseline_val},
                   "ours": {"train mIoU (%)": ours_train, "val mIoU (%)": ours_val}},
        "table3": {"baseline": {"1": 50.0, "2": 40.0, "3+": 30.0, "total": baseline_train},
                   "ours": {"1": 52.0, "2": 39.0, "3+": 35.0, "total": ours_train}}})


def random_walk() -> dict:
    return payload("07_random_walk", {"images": {"affinity_labels": 10, "evaluated": 5},
                                      "table1_rw": {"baseline": {"CAM + RW": 50.0, "CAM + RW + CRF": 51.0},
                                                    "ours": {"CAM + RW": 55.5, "CAM + RW + CRF": 57.0}}})


def value(table, row, measure, column):
    return table.loc[(row, measure), column]


def test_table1_puts_the_papers_numbers_beside_each_profiles():
    runs = {"cpu": {"04_combined": combined(), "07_random_walk": random_walk()}}
    table = results.table1(runs)
    assert list(table.columns) == [results.PAPER, "cpu"]
    assert value(table, "Ours", "train CAM", results.PAPER) == paper.TABLE1["Ours"]["train CAM"]
    assert value(table, "Baseline (psa)", "train CAM + RW", results.PAPER) == paper.TABLE1["Baseline (psa)"]["train CAM + RW"]
    assert value(table, "Ours", "train CAM", "cpu") == 45.0
    assert value(table, "Ours", "val CAM", "cpu") == 41.0
    assert value(table, "Ours", "train CAM + RW", "cpu") == 55.5
    assert value(table, "Baseline (psa)", "train CAM + RW + CRF", "cpu") == 51.0
    # the difference row, in the paper's column as in ours
    assert value(table, "Δ ours − baseline", "train CAM", "cpu") == pytest.approx(5.0)
    assert value(table, "Δ ours − baseline", "train CAM + RW", "cpu") == pytest.approx(5.5)
    assert value(table, "Δ ours − baseline", "val CAM", results.PAPER) == pytest.approx(
        paper.TABLE1["Ours"]["val CAM"] - paper.TABLE1["Baseline (psa)"]["val CAM"])
    # rows the paper has and we do not measure stay, empty on our side
    assert value(table, "SC-CAM", "train CAM", results.PAPER) == paper.TABLE1["SC-CAM"]["train CAM"]
    assert math.isnan(value(table, "SC-CAM", "train CAM", "cpu"))
    assert table.attrs["missing"] == {}


def test_a_profile_without_the_steps_is_skipped_and_named():
    runs = {"cpu": {"04_combined": combined()}, "smoke": {"00_minivoc": payload("00_minivoc", {})}}
    table = results.table3(runs)
    assert "smoke" not in table.columns
    assert "04_combined" in table.attrs["missing"]["smoke"]
    note = results.missing_note(table)
    assert "smoke" in note and "04_combined" in note and "cpu" not in note
    assert value(table, "Ours", "3+ classes", "cpu") == 35.0
    assert value(table, "Δ ours − baseline", "3+ classes", "cpu") == pytest.approx(5.0)
    assert value(table, "Baseline", "1 class", results.PAPER) == paper.TABLE3["Baseline"]["1"]


def test_a_profile_with_some_of_the_steps_keeps_its_column_and_says_what_is_empty():
    runs = {"cpu": {"04_combined": combined()}}  # no 07_random_walk: no CAM + RW
    table = results.table1(runs)
    assert value(table, "Ours", "train CAM", "cpu") == 45.0
    assert math.isnan(value(table, "Ours", "train CAM + RW", "cpu"))
    assert "07_random_walk" in table.attrs["missing"]["cpu"]


def test_table5_when_no_profile_has_segmentation_is_the_papers_alone():
    table = results.table5({"cpu": {"04_combined": combined()}})
    assert list(table.columns) == [results.PAPER]
    assert value(table, "saliency, AAMR loss", "val (CRF)", results.PAPER) == \
        paper.TABLE5["Ours (with saliency, AAMR loss)"]["val"]
    assert value(table, "no saliency", "test", results.PAPER) == paper.TABLE5["Ours (no saliency)"]["test"]
    assert value(table, results.PSEUDO_LABELS, "ours CAM + RW: train mIoU", results.PAPER) == \
        paper.TABLE1["Ours"]["train CAM + RW"]
    assert "08_segmentation" in table.attrs["missing"]["cpu"]


def test_table5_reads_the_segmentation_metrics():
    segmentation = payload("08_segmentation", {"table5": {"none": {"no CRF": 30.0, "CRF": 32.0},
                                                          "background_cue": {"no CRF": 31.0, "CRF": 33.0},
                                                          "aamr": {"no CRF": 34.0, "CRF": 36.5}},
                                               "pseudo_labels": {"method": "ours", "step": "rw", "train_miou": 60.0}})
    table = results.table5({"paper": {"08_segmentation": segmentation}})
    assert value(table, "saliency, AAMR loss", "val (CRF)", "paper") == 36.5
    assert value(table, "no saliency", "val (no CRF)", "paper") == 30.0
    assert value(table, "saliency as a background cue", "val (CRF)", "paper") == 33.0
    assert value(table, "Δ AAMR − no saliency", "val (CRF)", "paper") == pytest.approx(4.5)
    assert value(table, results.PSEUDO_LABELS, "ours CAM + RW: train mIoU", "paper") == 60.0
    assert math.isnan(value(table, "no saliency", "test", "paper"))  # the test set is not scored here


def test_table5_names_whose_pseudo_labels_each_network_learnt_from():
    segmentation = payload("08_segmentation", {
        "table5": {"none": {"no CRF": 20.0, "CRF": 21.0}, "aamr": {"no CRF": 22.0, "CRF": 23.0}},
        "pseudo_labels": {"method": "baseline", "step": "rw_crf", "train_miou": 47.0},
        "pseudo_label_sources": {"baseline": {"train_miou": 47.0, "no CRF": 20.0, "CRF": 21.0},
                                 "ours": {"train_miou": 25.0, "no CRF": 5.0, "CRF": 6.0},
                                 "ground_truth": {"train_miou": 100.0, "no CRF": 40.0, "CRF": 41.0}}})
    table = results.table5({"cpu": {"08_segmentation": segmentation}})
    assert value(table, results.PSEUDO_LABELS, "baseline CAM + RW + CRF: train mIoU", "cpu") == 47.0
    assert value(table, results.PSEUDO_LABELS, "ours CAM + RW + CRF: train mIoU", "cpu") == 25.0
    assert value(table, "no saliency, on the ours pseudo labels", "val (CRF)", "cpu") == 6.0
    assert value(table, "no saliency", "val (CRF)", "cpu") == 21.0  # the main source is not repeated as a row
    assert "no saliency, on the baseline pseudo labels" not in table.index.get_level_values("row")
    # the upper bound is named as such, and its labels (the annotations) are no pseudo-label row
    assert value(table, "no saliency, on the ground truth (upper bound)", "val (CRF)", "cpu") == 41.0
    assert not any("ground_truth" in part for entry in table.index for part in entry)


def test_table2_reads_the_ablation_table_or_else_the_ablation_runs():
    from_table = payload("05_ablations", {"table": {name: {"mIoU (%)": miou} for name, miou in
                                                    {"baseline": 40.0, "split_unite": 41.0, "iterative": 42.0,
                                                     "combined": 43.0}.items()}})
    from_runs = {f"ablation/cam_methods/{name}": payload(f"ablation/cam_methods/{name}", {"miou": miou})
                 for name, miou in {"baseline": 0.30, "split_unite": 0.29, "iterative": 0.31, "combined": 0.305}.items()}
    table = results.table2({"cpu": {"05_ablations": from_table}, "smoke": from_runs})
    assert value(table, "both", "mIoU (%)", "cpu") == 43.0
    assert value(table, "both", "mIoU (%)", "smoke") == pytest.approx(30.5)
    assert value(table, "Δ split & unite − baseline", "mIoU (%)", "smoke") == pytest.approx(-1.0)
    assert value(table, "Δ both − baseline", "mIoU (%)", results.PAPER) == pytest.approx(
        paper.TABLE2["both"] - paper.TABLE2["baseline"])


def test_recall_is_in_percent_beside_the_papers_84():
    baseline = payload("01_baseline_cam", {
        "cams": {"train": {"recall_cam_positive": 0.9, "background_share_cam_positive": 0.5}},
        "cams_single_scale": {"train": {"recall_cam_positive": 0.8, "background_share_cam_positive": 0.3}}})
    table = results.recall({"cpu": {"01_baseline_cam": baseline}})
    assert value(table, "the CAM protocol", "object pixels with CAM > 0 (%)", "cpu") == pytest.approx(90.0)
    assert value(table, "one forward", "background pixels with CAM > 0 (%)", "cpu") == pytest.approx(30.0)
    assert value(table, "one forward", "object pixels with CAM > 0 (%)", results.PAPER) == pytest.approx(
        100 * paper.CAM_POSITIVE_RECALL)


def test_cost_puts_the_papers_minutes_and_ratio_beside_the_timing_run():
    timing = payload("09_computation_time", {"images": 20, "summary": {
        "baseline_minutes_voc_train": 5.0, "ours_minutes_voc_train": 12.5, "ours_over_baseline": 2.5,
        "extra_hours_voc_train_aug": 0.9, "classifier_training_hours_voc_train_aug": None}})
    table = results.cost({"cpu": {"09_computation_time": timing}})
    assert value(table, "ours (combined)", "× baseline", results.PAPER) == pytest.approx(
        paper.CAM_MINUTES["ours"] / paper.CAM_MINUTES["baseline"])
    assert value(table, "baseline CAM", "min for VOC train", results.PAPER) == paper.CAM_MINUTES["baseline"]
    assert value(table, "classifier training", "h for VOC train_aug", results.PAPER) == paper.CLASSIFIER_RETRAINING_HOURS
    assert value(table, "ours (combined)", "× baseline", "cpu") == 2.5
    assert math.isnan(value(table, "classifier training", "h for VOC train_aug", "cpu"))  # loaded, not trained


def test_gains_and_agreement_count_the_effects_that_go_the_papers_way():
    # ours: +5 train, +3 val, +5.5 after the walk (all the paper's way); smoke: the combined module loses on train
    runs = {"cpu": {"04_combined": combined(), "07_random_walk": random_walk()},
            "smoke": {"04_combined": combined(baseline_train=40.0, ours_train=35.0)}}
    tables = {"Table 1": results.table1(runs)}
    effects = results.gains(tables)
    assert set(effects.index.get_level_values("row")) == {"Δ ours − baseline"}
    agreement = results.agreement(effects)  # no intervals: only the signs can be counted
    assert agreement.loc["cpu", "effects measured"] == 3
    assert agreement.loc["cpu", "no interval: same sign"] == 3
    assert agreement.loc["cpu", "reproduced (95% interval on the paper's side)"] == 0  # a sign is not a reproduction
    assert agreement.loc["smoke", "effects measured"] == 2  # no walk: train and val CAM only
    assert agreement.loc["smoke", "no interval: same sign"] == 1  # val +3 yes, train −5 no
    assert agreement.loc["smoke", "no interval: other sign"] == 1
    paper_gain = paper.TABLE1["Ours"]["train CAM"] - paper.TABLE1["Baseline (psa)"]["train CAM"]
    assert agreement.loc["cpu", "mean of ours − paper (points)"] == pytest.approx(
        ((5.0 - paper_gain) + (3.0 - 3.9) + (5.5 - 6.1)) / 3)


def test_load_runs_reads_the_metrics_files_and_names_the_missing_profiles(tmp_path):
    cpu = tmp_path / "cpu"
    write_metrics(cpu, "04_combined", combined()["metrics"], CONTEXT)
    write_metrics(cpu, "ablation/cam_methods/baseline", {"miou": 0.3}, CONTEXT)
    write_metrics(cpu, results.RESULTS_STEP, {"tables": {}}, CONTEXT)  # the chapter's own output is not a result
    (cpu / "metrics" / "ablation" / "cam_methods" / "baseline.parameters.json").write_text(json.dumps({"seed": 0}))
    runs, skipped = results.load_runs({"cpu": cpu, "paper": tmp_path / "paper"})
    assert set(runs) == {"cpu"}
    assert set(runs["cpu"]) == {"04_combined", "ablation/cam_methods/baseline"}
    assert runs["cpu"]["04_combined"]["metrics"]["table1"]["ours"]["train mIoU (%)"] == 45.0
    assert "paper" in skipped and str(tmp_path / "paper") in skipped["paper"]


def test_provenance_shows_each_runs_context_and_one_row_per_ablation_batch():
    runs = {"cpu": {"04_combined": combined(),
                    "ablation/cam_methods/a": payload("ablation/cam_methods/a", {}, date="2026-01-01T00:00:00+00:00"),
                    "ablation/cam_methods/b": payload("ablation/cam_methods/b", {}, date="2026-01-05T00:00:00+00:00",
                                                      git_commit="def5678")}}
    table = results.provenance(runs)
    assert table.loc[("cpu", "04_combined"), "git commit"] == "abc1234"
    assert table.loc[("cpu", "04_combined"), "torch"] == "2.0"
    assert table.loc[("cpu", "ablation/cam_methods (2 runs, latest)"), "git commit"] == "def5678"
    assert len(table) == 2


def test_provenance_shows_each_steps_precision_and_what_was_not_deterministic():
    # Catches: the book could not say a step ran in bfloat16, nor record what could not be
    # deterministic on CUDA.
    runs = {"cpu": {"01_baseline_cam": payload("01_baseline_cam", {}, precision="float32", nondeterministic_ops=[]),
                    "08_segmentation": payload("08_segmentation", {}, device="cuda:1", precision="bfloat16 autocast",
                                               nondeterministic_ops=["nll_loss2d_forward_out_cuda_template",
                                                                     "upsample_bilinear2d_backward_out_cuda"]),
                    "04_combined": combined()}}
    table = results.provenance(runs)
    assert table.loc[("cpu", "01_baseline_cam"), "precision"] == "float32"
    assert table.loc[("cpu", "01_baseline_cam"), "not deterministic"] == "none"
    assert table.loc[("cpu", "08_segmentation"), "precision"] == "bfloat16 autocast"
    assert table.loc[("cpu", "08_segmentation"), "not deterministic"] == ("nll_loss2d_forward_out_cuda_template, "
                                                                          "upsample_bilinear2d_backward_out_cuda")
    assert pd.isna(table.loc[("cpu", "04_combined"), "not deterministic"])  # an older file: unknown, not "none"


def test_to_json_is_nested_and_has_no_nan():
    table = results.table1({"cpu": {"04_combined": combined()}})
    data = results.to_json(table)
    assert data["columns"] == [results.PAPER, "cpu"]
    assert data["rows"]["Ours"]["train CAM"] == {results.PAPER: paper.TABLE1["Ours"]["train CAM"], "cpu": 45.0}
    assert data["rows"]["Ours"]["train CAM + RW"]["cpu"] is None
    assert "07_random_walk" in data["missing"]["cpu"]
    json.dumps(data, allow_nan=False)  # valid JSON: no NaN


def test_each_changed_choice_is_compared_with_its_modules_paper_rules():
    ablation = {"baseline": {"maps": "baseline", "description": "b", "mIoU (%)": 47.0, "images": 10},
                "iterative": {"maps": "iterative", "description": "i", "mIoU (%)": 48.0, "images": 10},
                "stop": {"maps": "iterative-stop_fraction=0.02", "description": "stop 2%", "mIoU (%)": 47.5,
                         "images": 10},
                "orphan": {"maps": "split_unite-buffer=10", "description": "no rule row", "mIoU (%)": 40.0,
                           "images": 10}}
    table = results.choices_against_rules(ablation)
    assert list(table.index) == ["stop"]  # rows with the paper's rules, and changes without their rule row, are not listed
    assert table.loc["stop", "the paper's rules"] == "iterative"
    assert table.loc["stop", "Δ (points)"] == pytest.approx(-0.5)


def test_aamr_choices_are_differences_to_the_aamr_run():
    metrics = {"table5": {"aamr": {"no CRF": 30.0, "CRF": 31.0}},
               "aamr_alternatives": {"aamr-tau_scope=batch": {"no CRF": 29.0, "CRF": 32.5}}}
    table = results.aamr_choices(metrics)
    assert table.loc["tau_scope=batch", "Δ CRF"] == pytest.approx(1.5)
    assert table.loc["tau_scope=batch", "Δ no CRF"] == pytest.approx(-1.0)
    assert results.aamr_choices({"table5": {}}).empty


def test_difference_intervals_pair_the_saved_confusions_of_each_tables_delta_rows(tmp_path):
    # Catches intervals keyed differently from the tables' Δ rows (the chapter could not put them
    # beside the numbers), sides swapped (an interval of baseline − ours), and a profile whose runs
    # saved no confusions given made-up rows.
    import numpy as np

    from infercam.bootstrap import ImageConfusions
    from infercam.metrics import mean_iou
    from infercam.runs import write_confusions

    names = tuple(f"img{i}" for i in range(15))
    base = np.random.default_rng(1).integers(0, 20, size=(15, 21, 21))
    better = base.copy()
    better[:, 2, 2] += 50
    side = {"baseline": ImageConfusions(names, base), "ours": ImageConfusions(names, better)}
    write_confusions(tmp_path / "cpu", "04_combined", {f"{m}/{split}": rows for m, rows in side.items()
                                                       for split in ("train", "val")})
    for configuration in ("baseline", "combined"):
        write_confusions(tmp_path / "cpu", f"ablation/{results.ABLATION_GRID}/{configuration}",
                         {configuration: side["ours" if configuration == "combined" else "baseline"]})
    intervals = results.difference_intervals({"cpu": tmp_path / "cpu", "smoke": tmp_path / "smoke"})
    assert set(intervals.index.get_level_values("profile")) == {"cpu"}
    assert set(intervals.index.droplevel("profile")) == {("Table 1", "Δ ours − baseline", "train CAM"),
                                                         ("Table 1", "Δ ours − baseline", "val CAM"),
                                                         ("Table 2", "Δ both − baseline", "mIoU (%)"),
                                                         ("Table 3", "Δ ours − baseline", "all")}
    row = intervals.loc[("Table 1", "Δ ours − baseline", "train CAM", "cpu")]
    expected = 100 * (mean_iou(better.sum(0)) - mean_iou(base.sum(0)))
    assert row["Δ"] == pytest.approx(expected) and 0 < row["Δ low"] <= expected <= row["Δ high"]
    assert row["images"] == 15 and row["verdict"].startswith("gains")
    runs = {"cpu": {"04_combined": combined(), "05_ablations": payload("05_ablations", {"table": {
        "baseline": {"mIoU (%)": 40.0}, "combined": {"mIoU (%)": 44.0}}})}}
    effects = results.gains({name: results.TABLES[name](runs) for name in ("Table 1", "Table 2", "Table 3")})
    assert set(intervals.index.droplevel("profile")) <= set(effects.index)


def test_conclusion_changes_name_the_differences_whose_verdict_depends_on_the_profile():
    # Catches a conclusion read from the point value instead of the interval (+0.4 within -0.2..+1.0
    # is noise, not a gain), profiles swapped, and a difference only one profile measured compared.
    index = pd.MultiIndex.from_tuples([
        ("Table 1", "Δ ours − baseline", "val CAM", "cpu"), ("Table 1", "Δ ours − baseline", "val CAM", "cpu-imagenet"),
        ("Table 2", "Δ iterative inference − baseline", "mIoU (%)", "cpu"),
        ("Table 2", "Δ iterative inference − baseline", "mIoU (%)", "cpu-imagenet"),
        ("Table 5", "Δ AAMR − no saliency", "val (CRF)", "cpu")], names=["table", "row", "measure", "profile"])
    intervals = pd.DataFrame({"images": 50, "Δ": [-6.0, -7.0, 0.4, 1.2], "Δ low": [-8.0, -9.0, -0.2, 0.3],
                              "Δ high": [-4.0, -5.0, 1.0, 2.0], "verdict": ""}, index=index[:4])
    intervals = pd.concat([intervals, pd.DataFrame({"images": 50, "Δ": 0.2, "Δ low": -0.4, "Δ high": 1.3, "verdict": ""},
                                                   index=index[4:])])
    table = results.conclusion_changes(intervals, "cpu", "cpu-imagenet")
    assert len(table) == 2
    ours = table.loc[("Table 1", "Δ ours − baseline", "val CAM")]
    assert (ours["cpu says"], ours["cpu-imagenet says"], ours["conclusion changes"]) == ("loses", "loses", False)
    iterative = table.loc[("Table 2", "Δ iterative inference − baseline", "mIoU (%)")]
    assert (iterative["cpu says"], iterative["cpu-imagenet says"]) == ("within noise", "gains")
    assert iterative["conclusion changes"] and iterative["Δ, cpu-imagenet"] == 1.2


def test_agreement_counts_an_effect_as_reproduced_only_when_its_interval_excludes_zero_on_the_papers_side():
    runs = {"cpu": {"04_combined": combined(), "07_random_walk": random_walk()}}
    effects = results.gains({"Table 1": results.table1(runs)})
    index = pd.MultiIndex.from_tuples([("Table 1", "Δ ours − baseline", measure, "cpu") for measure in
                                       ("train CAM", "val CAM", "train CAM + RW")],
                                      names=["table", *results.INDEX_NAMES, "profile"])
    intervals = pd.DataFrame({"images": [10, 10, 10], "Δ": [5.0, 3.0, 5.5], "Δ low": [1.0, -0.5, -2.0],
                              "Δ high": [9.0, 6.0, -0.1], "verdict": ["", "", ""]}, index=index)
    agreement = results.agreement(effects, intervals)
    assert agreement.loc["cpu", "reproduced (95% interval on the paper's side)"] == 1  # train: above zero
    assert agreement.loc["cpu", "within noise (interval holds 0)"] == 1  # val: holds zero, though positive
    assert agreement.loc["cpu", "the opposite, beyond noise"] == 1  # the walk: below zero, the paper's is a gain
    assert agreement["effects measured"].dtype.kind == "i"


def test_readable_shows_counts_as_integers_and_missing_cells_as_a_dash():
    table = pd.DataFrame({"images": [500.0, float("nan")], "mIoU": [41.234, 40.0], "name": ["a", None]})
    shown = results.readable(table, 1, integers=("images",))
    assert shown["images"].tolist() == ["500", "—"]
    assert shown["mIoU"].tolist() == ["41.2", "40.0"]
    assert shown["name"].tolist() == ["a", "—"]


def test_baseline_by_subset_names_each_tables_images():
    steps = {"00_minivoc": {"splits": {"train": 500, "val": 300}},
             "01_baseline_cam": {"cams": {"val": {"images": 300, "miou": 0.41}}},
             "04_combined": combined()["metrics"],
             "05_ablations": {"parameters": {"evaluation_split": "val"},
                              "table": {"baseline": {"images": 60, "mIoU (%)": 37.9}}}}
    table = results.baseline_by_subset(steps)
    assert table.loc["the baseline chapter (01), val", "images"] == "all 300"
    assert table.loc["Table 1 (the combined chapter, 04), val", "images"] == "first 200 of 300"
    assert table.loc["Table 2 (the ablation batch, 05), val", "images"] == "first 60 of 300"
    assert table.loc["Table 2 (the ablation batch, 05), val", "baseline mIoU (%)"] == pytest.approx(37.9)


def test_provenance_long_gives_a_value_shared_by_every_step_once():
    runs = {"cpu": {"04_combined": combined(), "07_random_walk": random_walk()}}
    table = results.provenance_long(runs)
    assert table.loc[("cpu", "git commit"), "steps"] == "all"
    assert table.loc[("cpu", "date"), "value"] == "2026-01-02"
