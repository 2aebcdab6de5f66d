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
