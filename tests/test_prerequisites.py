"""Any chapter can be opened first: it names the one command that computes what it reads from."""
import json

import pytest

from infercam import prerequisites
from infercam.notebooks import list_notebooks
from infercam.prerequisites import MissingPrerequisites, check, missing, needed


def test_every_chapter_says_what_it_reads_from():
    # Catches a new chapter added without its prerequisites (it would open on a fresh clone and fail deep inside).
    assert set(prerequisites.READS_FROM) == {notebook.stem for notebook in list_notebooks()}
    for chapter, steps in prerequisites.READS_FROM.items():
        assert all(step < chapter for step in steps), f"{chapter} reads from a later chapter: {steps}"


def test_needed_is_the_whole_chain_in_file_order():
    assert needed("00_minivoc") == []
    assert needed("03_iterative") == ["00_minivoc", "01_baseline_cam"]
    # catches taking only the direct prerequisite (08 reads 07's labels, which need 04's maps and 01's classifier)
    assert needed("08_segmentation") == ["00_minivoc", "01_baseline_cam", "04_combined", "07_random_walk"]


def finished(work_dir, *steps):
    for step in steps:
        path = work_dir / "metrics" / f"{step}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"step": step, "metrics": {}, "context": {}}))


def test_only_the_chapters_not_yet_run_are_missing(tmp_path):
    finished(tmp_path, "00_minivoc", "01_baseline_cam")
    assert missing("03_iterative", tmp_path) == []
    check("03_iterative", "smoke", tmp_path)  # nothing missing: no error
    # catches rerunning chapters that finished (01's training) when only 04 and 07 are missing
    assert missing("08_segmentation", tmp_path) == ["04_combined", "07_random_walk"]


def test_a_chapter_opened_first_stops_with_the_command(tmp_path):
    with pytest.raises(MissingPrerequisites) as error:
        check("03_iterative", "smoke", tmp_path)
    message = str(error.value)
    assert "make prerequisites CHAPTER=03_iterative PROFILE=smoke" in message
    assert "00_minivoc, 01_baseline_cam" in message


def test_cli_runs_exactly_the_missing_chapters(tmp_path, monkeypatch, capsys):
    profile = tmp_path / "profile.yaml"
    profile.write_text(f"profile: mine\nwork_dir: {tmp_path / 'work'}\n")
    finished(tmp_path / "work", "00_minivoc", "01_baseline_cam")
    ran = []
    monkeypatch.setattr("infercam.notebooks.run_notebooks", lambda profile, names: ran.append(names))
    assert prerequisites.main(["--chapter", "07_random_walk", "--profile", str(profile)]) == 0
    assert ran == [["04_combined"]]
    assert prerequisites.main(["--chapter", "nonsense", "--profile", str(profile)]) == 2
    assert "unknown chapter" in capsys.readouterr().err


def test_data_made_by_make_minivoc_counts_as_the_data_chapter(tmp_path):
    # Catches `make seeds` (which runs 01 to 04 in fresh work_dirs, never 00) being stopped for want of 00's metrics.
    data_root = tmp_path / "VOC2012"
    assert missing("01_baseline_cam", tmp_path / "work", data_root) == ["00_minivoc"]
    (data_root / "ImageSets" / "Segmentation").mkdir(parents=True)
    assert missing("01_baseline_cam", tmp_path / "work", data_root) == []
    check("01_baseline_cam", "cpu", tmp_path / "work", data_root)


def record_times(executed, profile, seconds: dict, status="ok", day="2026-12-01"):
    folder = executed / profile
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timings.json").write_text(json.dumps({"notebooks": {
        stem: {"seconds": value, "status": status, "finished": f"{day}T10:00:00+00:00"} for stem, value in seconds.items()}}))


def test_chapter_times_sum_each_chapter_with_what_it_reads(tmp_path):
    # Catches a "with prerequisites" time that adds only the direct prerequisite (07 needs 00, 01 and
    # 04), or that counts a chapter without a record as zero minutes (a fresh clone would take longer).
    record_times(tmp_path, "smoke", {"00_minivoc": 60, "01_baseline_cam": 120, "04_combined": 30, "07_random_walk": 90})
    table = prerequisites.chapter_times(("smoke", "cpu"), tmp_path).set_index("chapter")
    assert table.loc["07_random_walk", "runs first"] == "00 01 04"
    assert table.loc["07_random_walk", "smoke (min, 2026-12-01)"] == 1.5
    assert table.loc["07_random_walk", "smoke with prerequisites (min)"] == 5.0
    assert table["smoke with prerequisites (min)"].isna()["08_segmentation"]  # 08 has no record
    assert not [column for column in table.columns if column.startswith("cpu ")]  # nor has the cpu profile


def test_a_failed_run_is_not_a_time(tmp_path):
    # Catches the seconds of a notebook that failed half-way shown as the chapter's time.
    record_times(tmp_path, "smoke", {"00_minivoc": 60}, status="failed")
    assert "smoke with prerequisites (min)" not in prerequisites.chapter_times(("smoke",), tmp_path)


def test_writing_the_times_keeps_the_columns_of_a_profile_without_records(tmp_path, capsys, monkeypatch):
    # Catches the lead's second run (the cpu build's records only) wiping the smoke column measured
    # before: each profile's columns are replaced only by that profile's own records.
    csv = tmp_path / "chapter_times.csv"
    record_times(tmp_path / "executed", "smoke", {"00_minivoc": 6}, day="2026-12-01")
    first = prerequisites.write_chapter_times(csv, ("smoke", "cpu"), tmp_path / "executed")
    (tmp_path / "executed" / "smoke" / "timings.json").unlink()
    record_times(tmp_path / "executed", "cpu", {"00_minivoc": 120}, day="2026-12-05")
    second = prerequisites.write_chapter_times(csv, ("smoke", "cpu"), tmp_path / "executed")
    assert list(second.columns) == ["chapter", "runs first", "smoke (min, 2026-12-01)", "smoke with prerequisites (min)",
                                    "cpu (min, 2026-12-05)", "cpu with prerequisites (min)"]
    assert second.loc[0, "smoke (min, 2026-12-01)"] == "0.1" == str(first.loc[0, "smoke (min, 2026-12-01)"])
    assert second.loc[0, "cpu (min, 2026-12-05)"] == 2.0
    # the command line does the same with measurements/chapter_times.csv (here: the test's) and the
    # records of build/executed/ or, as here, of another folder (a clean clone's)
    monkeypatch.setattr(prerequisites, "TIMES_FILE", csv)
    (tmp_path / "executed" / "cpu" / "timings.json").unlink()
    assert prerequisites.main(["--times", "--executed-dir", str(tmp_path / "executed")]) == 0
    assert f"written: {csv}" in capsys.readouterr().out
    assert csv.read_text() == second.to_csv(index=False)
