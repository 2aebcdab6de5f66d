"""The seed batch on throwaway notebooks that write made-up metrics (no model, no data): each seed
in its own work_dir, finished notebooks skipped, and each difference's spread across the seeds."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from infercam import config, seeds
from infercam.notebooks import run_notebooks
from infercam.runs import record_parameters, write_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers, whatever the import mode
from fake_notebooks import write_fake_notebook  # noqa: E402

FAKE_COMBINED = '''
from infercam.runs import write_metrics
write_metrics(work_dir, "04_combined", {"table1": {"baseline": {"train mIoU (%)": 40.0, "val mIoU (%)": 30.0},
                                                   "ours": {"train mIoU (%)": 40.0 + seed, "val mIoU (%)": 31.0}}}, {})
'''


def combined_metrics(train_gain: float) -> dict:
    return {"table1": {"baseline": {"train mIoU (%)": 40.0, "val mIoU (%)": 30.0},
                       "ours": {"train mIoU (%)": 40.0 + train_gain, "val mIoU (%)": 31.0}}}


def test_spread_of_each_difference_across_seeds(tmp_path):
    # Catches a spread taken over the wrong axis (over the differences instead of the seeds), a
    # seed's column lost, and chapter 02's own variants left out of the table.
    work_dirs = {seed: tmp_path / f"seed{seed}" for seed in (0, 1, 2)}
    for seed, gain in zip(work_dirs, (1.0, 2.0, 4.5)):
        write_metrics(work_dirs[seed], "04_combined", combined_metrics(gain), {})
        write_metrics(work_dirs[seed], "02_split_unite", {"cams": {"baseline": {"miou": 0.30},
                                                                   "common scale": {"miou": 0.30 + gain / 100}}}, {})
    table = seeds.collect_seed_table(work_dirs)
    train = table.loc[("Table 1", "Δ ours − baseline", "train CAM")]
    assert [train[f"seed {s}"] for s in (0, 1, 2)] == pytest.approx([1.0, 2.0, 4.5])
    assert (train["mean"], train["min"], train["max"], train["range"], train["seeds"]) == pytest.approx(
        (2.5, 1.0, 4.5, 3.5, 3))
    assert train["paper"] == pytest.approx(52.2 - 48.0)
    val = table.loc[("Table 1", "Δ ours − baseline", "val CAM")]
    assert val["range"] == 0 and val["mean"] == pytest.approx(1.0)
    chapter = table.loc[("02_split_unite", "Δ common scale − baseline", "val CAM")]
    assert chapter["mean"] == pytest.approx(2.5) and math.isnan(chapter["paper"])
    # a difference that only seed 0 measured has no spread to show (it would read as range 0)
    write_metrics(work_dirs[0], "03_iterative", {"cams": {"baseline": {"miou": 0.30}, "max": {"miou": 0.31}}}, {})
    assert ("03_iterative", "Δ max − baseline", "val CAM") not in seeds.collect_seed_table(work_dirs).index
    files = seeds.write_seed_table(table, tmp_path / "work", seeds.seed_contexts(work_dirs))
    assert [f.name for f in files] == ["seed_spread.csv", "seed_spread.md", "seed_spread.json"]
    assert files[0].parent == tmp_path / "work-seeds"
    back = seeds.read_seed_table(tmp_path / "work")
    assert back.loc[("Table 1", "Δ ours − baseline", "train CAM"), "range"] == pytest.approx(3.5)
    assert seeds.read_seed_table(tmp_path / "never") is None


def test_a_kept_seed_table_reads_back_with_where_each_seed_ran_and_sign_changes_are_named(tmp_path):
    # Catches a copy of the table (measurements/cpu-seeds) that loses which run made each seed's numbers,
    # and a verdict that calls a difference steady when one seed's is negative and another's positive.
    work_dirs = {seed: tmp_path / f"seed{seed}" for seed in (0, 1)}
    for seed, gain in zip(work_dirs, (-1.0, 2.0)):
        write_metrics(work_dirs[seed], "04_combined", combined_metrics(gain), {"git_commit": f"c{seed}", "seed": seed})
        write_metrics(work_dirs[seed], "00_minivoc", {}, {"git_commit": "older"})  # not the seed's run: its data
    table = seeds.collect_seed_table(work_dirs)
    seeds.write_seed_table(table, tmp_path / "work", seeds.seed_contexts(work_dirs))
    kept, contexts = seeds.read_seed_spread(tmp_path / "work-seeds")
    assert {seed: context["git_commit"] for seed, context in contexts.items()} == {"seed 0": "c0", "seed 1": "c1"}
    assert ("Table 1", "Δ ours − baseline", "train CAM") in seeds.sign_changes(kept)
    assert ("Table 1", "Δ ours − baseline", "val CAM") not in seeds.sign_changes(kept)  # 1.0 under both seeds
    assert seeds.read_seed_spread(tmp_path / "nothing") is None


def test_the_kept_table_is_shown_when_this_profile_has_none_even_if_another_profile_has_one(tmp_path):
    # Catches 10_results hiding the cpu book's kept seed table whenever any other profile (the kept
    # cpu-scratch run) had a table, and showing a kept table that another profile's seeds made.
    def make_table(work_dir, profile):
        work_dirs = {seed: tmp_path / profile / f"seed{seed}" for seed in (0, 1)}
        for seed in work_dirs:
            write_metrics(work_dirs[seed], "04_combined", combined_metrics(float(seed)), {"profile": profile})
        seeds.write_seed_table(seeds.collect_seed_table(work_dirs), work_dir, seeds.seed_contexts(work_dirs))

    make_table(tmp_path / "scratch", "cpu-scratch")
    make_table(tmp_path / "kept", "cpu")
    work_dirs = {"cpu-scratch": tmp_path / "scratch", "cpu": tmp_path / "cpu"}
    shown = seeds.spreads_to_show(work_dirs, "cpu", tmp_path / "kept-seeds")
    assert list(shown) == [f"cpu-scratch (`{tmp_path / 'scratch-seeds' / 'seed_spread.csv'}`)",
                           f"cpu, kept in the repository (`{tmp_path / 'kept-seeds'}`)"]
    assert list(seeds.spreads_to_show(work_dirs, "smoke", tmp_path / "kept-seeds")) == list(shown)[:1]
    make_table(tmp_path / "cpu", "cpu")  # this profile's own table replaces the kept one
    assert list(seeds.spreads_to_show(work_dirs, "cpu", tmp_path / "kept-seeds"))[1].startswith("cpu (`")


def test_each_seed_runs_in_its_own_work_dir_and_finished_ones_are_skipped(tmp_path, capsys):
    # Catches seeds sharing a work_dir (the second would reuse the first's classifier), the seed not
    # reaching the notebook, a rerun that repeats finished work, and the book's run (the profile's
    # seed, recorded by run_notebooks) run a second time.
    write_fake_notebook(tmp_path / "notebooks" / "04_combined.ipynb", 'work_dir = "unused"\nseed = 0', FAKE_COMBINED)
    profile = tmp_path / "fake.yaml"
    profile.write_text(yaml.safe_dump({"profile": "fake", "work_dir": str(tmp_path / "runs" / "fake"), "seed": 0,
                                       "epochs": 1}))
    run = dict(notebooks=["04_combined"], notebooks_dir=tmp_path / "notebooks", output_dir=tmp_path / "executed")
    run_notebooks(profile, ["04_combined"], tmp_path / "book", tmp_path / "notebooks")  # the book's run: seed 0
    table, files, failures = seeds.run_seeds(profile, [0, 3], **run)
    assert failures == {}
    assert capsys.readouterr().out.count("seed 0: 04_combined finished with the same parameters, skipped") == 1
    assert (tmp_path / "runs" / "fake-seeds" / "seed3" / "metrics" / "04_combined.json").is_file()
    assert not (tmp_path / "runs" / "fake-seeds" / "seed0").exists()
    train = table.loc[("Table 1", "Δ ours − baseline", "train CAM")]
    assert (train["seed 0"], train["seed 3"]) == (0.0, 3.0)
    assert files[0] == tmp_path / "runs" / "fake-seeds" / "seed_spread.csv"
    seeds.run_seeds(profile, [0, 3], **run)
    assert capsys.readouterr().out.count("finished with the same parameters, skipped") == 2


def test_a_run_made_before_a_notebook_default_changed_runs_again(tmp_path, capsys):
    # Catches the book's run and a seed's run counted as finished after a default of the notebook
    # changed (a new training recipe): the profile passes the same values, so a record of those alone
    # would keep the old numbers in the seed table.
    notebook = tmp_path / "notebooks" / "04_combined.ipynb"
    write_fake_notebook(notebook, 'work_dir = "unused"\nseed = 0\nbatch_size = 10', FAKE_COMBINED)
    profile = tmp_path / "fake.yaml"
    profile.write_text(yaml.safe_dump({"profile": "fake", "work_dir": str(tmp_path / "runs" / "fake"), "seed": 0}))
    run = dict(notebooks=["04_combined"], notebooks_dir=tmp_path / "notebooks", output_dir=tmp_path / "executed")
    run_notebooks(profile, ["04_combined"], tmp_path / "book", tmp_path / "notebooks")  # the book's run: seed 0
    seeds.run_seeds(profile, [0, 3], **run)
    assert capsys.readouterr().out.count("finished with the same parameters, skipped") == 1  # the book's seed 0
    write_fake_notebook(notebook, 'work_dir = "unused"\nseed = 0\nbatch_size = 5', FAKE_COMBINED)
    seeds.run_seeds(profile, [0, 3], **run)
    assert "skipped" not in capsys.readouterr().out


def test_the_book_s_run_is_skipped_when_the_profile_gives_its_work_dir_relative_to_the_repository(tmp_path, capsys,
                                                                                                  monkeypatch):
    # Catches the book's run (make book records the profile's work_dir as written, e.g. runs/cpu) run a
    # second time by make seeds, which asked for the same notebook with the absolute path.
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path)
    write_fake_notebook(tmp_path / "notebooks" / "04_combined.ipynb", 'work_dir = "unused"\nseed = 0', FAKE_COMBINED)
    profile = tmp_path / "fake.yaml"
    profile.write_text(yaml.safe_dump({"profile": "fake", "work_dir": "runs/fake", "seed": 0}))
    book_run = tmp_path / "runs" / "fake"
    write_metrics(book_run, "04_combined", combined_metrics(1.0), {})
    record_parameters(book_run, "04_combined", {"work_dir": "runs/fake", "seed": 0})  # what run_notebooks records
    table, _, failures = seeds.run_seeds(profile, [0], notebooks=["04_combined"], notebooks_dir=tmp_path / "notebooks",
                                         output_dir=tmp_path / "executed")
    assert "seed 0: 04_combined finished with the same parameters, skipped" in capsys.readouterr().out
    assert failures == {} and not (tmp_path / "executed").exists()


def test_one_seed_is_refused():
    assert seeds.main(["--seeds", "1", "1"]) == 2


def test_the_default_seed_batch_covers_tables_4_and_5_with_every_chapter_they_read_from():
    # Catches `make seeds` leaving out the chapters of Tables 4 and 5 (06, 08), or running one of them
    # without a chapter it reads from (08 without 07's pseudo labels stops at its prerequisite check
    # in a seed's fresh work_dir), or out of the book's order.
    from infercam.prerequisites import DATA_STEP, needed

    assert {"06_split_retraining", "08_segmentation"} <= set(seeds.DEFAULT_NOTEBOOKS)
    assert seeds.DEFAULT_NOTEBOOKS == sorted(seeds.DEFAULT_NOTEBOOKS)
    for chapter in seeds.DEFAULT_NOTEBOOKS:
        assert set(needed(chapter)) - {DATA_STEP} <= set(seeds.DEFAULT_NOTEBOOKS), chapter


def interval(low: float, high: float) -> pd.Series:
    return pd.Series({"Δ": (low + high) / 2, "Δ low": low, "Δ high": high, "images": 50})


def test_a_verdict_sets_the_seeds_range_beside_the_images_interval_and_names_the_larger(tmp_path):
    # Catches the seeds' range compared with the interval's width (three seeds' range is narrower than
    # a 95% interval of the same spread, so the images would nearly always seem to dominate), the two
    # sources of noise named the wrong way round, and a row of another difference quoted.
    work_dirs = {seed: tmp_path / f"seed{seed}" for seed in (0, 1, 2)}
    for seed, gain in zip(work_dirs, (1.0, 2.0, 4.5)):  # train CAM: 1.0..4.5, sd 1.80; val CAM: 1.0 under each
        write_metrics(work_dirs[seed], "04_combined", combined_metrics(gain), {"profile": "cpu"})
    seeds.write_seed_table(seeds.collect_seed_table(work_dirs), tmp_path / "work", seeds.seed_contexts(work_dirs))
    spread = seeds.profile_seed_spread("cpu", tmp_path / "work")
    train, val = ("Table 1", "Δ ours − baseline", "train CAM"), ("Table 1", "Δ ours − baseline", "val CAM")
    # 3.9 points wide (standard error 0.99), wider than the seeds' range of 3.5, yet a smaller spread than theirs
    said = seeds.seed_shares(spread, {"The train gain": (train, interval(-0.5, 3.4))}, "cpu")
    assert "The train gain, over 3 training seeds" in said and "+1.00..+4.50 (standard deviation 1.80 points)" in said
    assert "95% interval over the images of -0.50..+3.40 (standard error about 0.99)" in said
    assert "the training seed moves it more than the sampled images do" in said
    said = seeds.seed_shares(spread, {"The train gain": (train, interval(-6.0, 6.0))}, "cpu")  # standard error 3.06
    assert "the sampled images move it more than the training seed does" in said
    said = seeds.seed_shares(spread, {"The train gain": (train, interval(-2.5, 4.5))}, "cpu")  # standard error 1.79
    assert "the two move it about as much" in said
    said = seeds.seed_shares(spread, {"The val gain": (val, interval(0.5, 1.5))}, "cpu")
    assert "+1.00..+1.00 (standard deviation 0.00 points)" in said
    missing = ("Table 5", "Δ AAMR − no saliency", "val (CRF)")
    assert seeds.seed_shares(spread, {"AAMR": (missing, interval(0, 1))}, "cpu") == seeds.seed_shares(None, {}, "cpu")
    assert "`make seeds PROFILE=cpu`" in seeds.seed_shares(None, {"AAMR": (missing, interval(0, 1))}, "cpu")


def test_a_chapter_quotes_its_own_seed_table_else_the_kept_copy_of_its_own_profile_only(tmp_path):
    # Catches a chapter quoting another profile's kept seeds (the cpu book's seeds under the smoke
    # profile), preferring the kept copy to the work_dir's own newer table, and "" (no kept copy)
    # read as the repository's root.
    def make_table(work_dir, profile, gain):
        work_dirs = {seed: tmp_path / profile / str(gain) / f"seed{seed}" for seed in (0, 1)}
        for seed in work_dirs:
            write_metrics(work_dirs[seed], "04_combined", combined_metrics(gain * seed), {"profile": profile, "date": "2026-12-07"})
        seeds.write_seed_table(seeds.collect_seed_table(work_dirs), work_dir, seeds.seed_contexts(work_dirs))

    make_table(tmp_path / "kept", "cpu", 1.0)
    kept = tmp_path / "kept-seeds"
    table, source = seeds.profile_seed_spread("cpu", tmp_path / "book", kept)
    assert source == f"the `make seeds` run of 2026-12-07 kept in `{kept}`"
    assert table.loc[("Table 1", "Δ ours − baseline", "train CAM"), "max"] == pytest.approx(1.0)
    assert seeds.profile_seed_spread("smoke", tmp_path / "book", kept) is None
    assert seeds.profile_seed_spread("cpu", tmp_path / "book", "") is None
    make_table(tmp_path / "book", "cpu", 2.0)
    table, source = seeds.profile_seed_spread("cpu", tmp_path / "book", kept)
    assert source == f"`make seeds`, `{tmp_path / 'book-seeds'}`"
    assert table.loc[("Table 1", "Δ ours − baseline", "train CAM"), "max"] == pytest.approx(2.0)
