"""Which chapters a chapter reads from, so that any chapter can be opened first.

Each chapter reads what earlier ones saved under the profile's ``work_dir`` (the classifier, maps,
pseudo labels); a chapter has finished when its metrics file exists, which it writes last. A chapter
opened on a fresh clone calls :func:`check` in its first code cell: it runs, or stops at once with the
one command that computes exactly what is missing:

    make prerequisites CHAPTER=03_iterative PROFILE=smoke
    python -m infercam.prerequisites --chapter 03_iterative --profile smoke   # the same

``python -m infercam.prerequisites --times`` writes ``measurements/chapter_times.csv``: each
chapter's prerequisites and its wall time, alone and with them, as the notebook runner recorded it
for the smoke and cpu profiles (``build/executed/<profile>/timings.json``); a profile with no
records there keeps its columns from the file as it was.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from infercam.config import PROJECT_ROOT, resolve_path
from infercam.runs import metrics_path

DATA_STEP = "00_minivoc"  # makes mini-VOC; done wherever the data already is

# Chapter -> the chapters whose saved outputs it reads (the closure is taken by :func:`needed`).
READS_FROM: dict[str, list[str]] = {
    "00_minivoc": [],
    "01_baseline_cam": ["00_minivoc"],  # 00 generates mini-VOC
    "02_split_unite": ["01_baseline_cam"],  # the classifier and its baseline maps
    "03_iterative": ["01_baseline_cam"],
    "04_combined": ["01_baseline_cam"],
    "05_ablations": ["01_baseline_cam"],
    "06_split_retraining": ["01_baseline_cam"],
    "07_random_walk": ["04_combined"],  # the combined module's maps of train
    "08_segmentation": ["07_random_walk"],  # the pseudo labels
    "09_computation_time": ["08_segmentation"],  # AffinityNet, and the training times of 01, 07 and 08
    "10_results": ["05_ablations", "06_split_retraining", "08_segmentation", "09_computation_time"],
    "11_reproduction_notes": ["05_ablations", "08_segmentation"],
    "12_findings": ["10_results"],  # the same tables and intervals as the results chapter
}


TIMES_FILE = PROJECT_ROOT / "measurements" / "chapter_times.csv"
TIMED_PROFILES = ("smoke", "cpu")
PREREQUISITES_COLUMN = "runs first"


class MissingPrerequisites(RuntimeError):
    """A chapter was run before the chapters it reads from: names them and the command to run."""


def needed(chapter: str) -> list[str]:
    """Every chapter ``chapter`` depends on, directly or through others, in file-name order."""
    if chapter not in READS_FROM:
        raise KeyError(f"unknown chapter {chapter!r}; the chapters are: {', '.join(READS_FROM)}")
    found: set[str] = set()
    todo = list(READS_FROM[chapter])
    while todo:
        step = todo.pop()
        if step not in found:
            found.add(step)
            todo.extend(READS_FROM[step])
    return sorted(found)


def _finished(step: str, work_dir, data_root) -> bool:
    if step == DATA_STEP and data_root is not None:  # the data is there, however it was made (make minivoc, 00)
        return (resolve_path(data_root) / "ImageSets" / "Segmentation").is_dir()
    return metrics_path(work_dir, step).is_file()


def missing(chapter: str, work_dir: str | os.PathLike, data_root: str | os.PathLike | None = None) -> list[str]:
    """Those of :func:`needed` that have not finished for ``work_dir`` (no metrics file; for the data
    chapter, no data at ``data_root`` when it is given): what to run first, in order."""
    return [step for step in needed(chapter) if not _finished(step, work_dir, data_root)]


def command(chapter: str, profile: str) -> str:
    return f"make prerequisites CHAPTER={chapter} PROFILE={profile}"


def check(chapter: str, profile: str, work_dir: str | os.PathLike, data_root: str | os.PathLike | None = None) -> None:
    """Raise :class:`MissingPrerequisites`, naming the command that computes exactly what is missing,
    when a chapter ``chapter`` reads from has not run for this ``work_dir`` (or the data is not at
    ``data_root``); else nothing."""
    absent = missing(chapter, work_dir, data_root)
    if absent:
        raise MissingPrerequisites(
            f"{chapter} reads what {', '.join(absent)} saved, and the {profile} profile has not run "
            f"{'it' if len(absent) == 1 else 'them'} yet (no metrics file in {work_dir}/metrics/). From the repository "
            f"root, run:\n\n    {command(chapter, profile)}\n\nthen run this chapter again.")


def _profile_columns(profile: str, table) -> list[str]:
    return [column for column in table.columns if column.startswith(f"{profile} ")]


def chapter_times(profiles: tuple[str, ...] = TIMED_PROFILES, executed: Path | None = None, previous=None):
    """A table, one row per chapter: the chapters it reads from (what ``make prerequisites`` runs on a
    fresh clone) and, for each profile, its minutes alone and with those chapters, from the runner's
    last successful record of each notebook in ``<executed>/<profile>/timings.json`` (default
    build/executed/). The heading says the day of the profile's last record. A profile without
    records takes its columns from ``previous`` (the table as it was), if it has them."""
    import pandas as pd

    from infercam.notebooks import EXECUTED_DIR, notebook_times

    chapters = list(READS_FROM)
    table = pd.DataFrame({"chapter": chapters,
                          PREREQUISITES_COLUMN: [" ".join(step[:2] for step in needed(c)) for c in chapters]})
    for profile in profiles:
        times = notebook_times((executed or EXECUTED_DIR) / profile)
        times = times[times["status"] == "ok"]
        if times.empty:
            if previous is not None:
                kept = previous.set_index("chapter")[_profile_columns(profile, previous)]
                table = table.join(kept, on="chapter")
            continue
        day = max(times["finished"])[:10]
        minutes = times["minutes"].reindex(chapters)
        table[f"{profile} (min, {day})"] = minutes.round(1).to_numpy()
        # a sum with a chapter that has no record is unknown, not smaller
        table[f"{profile} with prerequisites (min)"] = [
            minutes[[*needed(c), c]].sum(min_count=len(needed(c)) + 1).round(1) for c in chapters]
    return table


def write_chapter_times(path: Path | None = None, profiles: tuple[str, ...] = TIMED_PROFILES,
                        executed: Path | None = None):
    """Write :func:`chapter_times` to ``path`` (default :data:`TIMES_FILE`), keeping from the file
    already there the columns of a profile that has no records now; the table written."""
    import pandas as pd

    path = path or TIMES_FILE
    previous = pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else None
    table = chapter_times(profiles, executed, previous)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table


def _shown(path: Path) -> Path:
    return path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path


def main(argv: list[str] | None = None) -> int:
    from infercam.config import load_profile
    from infercam.notebooks import NotebookFailed, run_notebooks

    parser = argparse.ArgumentParser(prog="python -m infercam.prerequisites",
                                     description="Run exactly the chapters a chapter needs and that have not run yet.")
    wanted = parser.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--chapter", help="e.g. 03_iterative")
    wanted.add_argument("--times", action="store_true",
                        help=f"run nothing: write each chapter's prerequisites and measured times to "
                             f"{_shown(TIMES_FILE)} from build/executed/{{{','.join(TIMED_PROFILES)}}}/")
    parser.add_argument("--executed-dir", type=Path,
                        help="with --times: the folder of the runner's <profile>/timings.json records, e.g. a clean "
                             "clone's build/executed (default: build/executed)")
    parser.add_argument("--profile", default="cpu", help="profile name under profiles/ or a YAML path (default: cpu)")
    parser.add_argument("--dry-run", action="store_true", help="only print which chapters would run")
    args = parser.parse_args(argv)
    if args.times:
        print(write_chapter_times(executed=args.executed_dir).to_string(index=False))
        print(f"written: {_shown(TIMES_FILE)}")
        return 0
    chapter = args.chapter.removesuffix(".ipynb")
    try:
        parameters = load_profile(args.profile)
        absent = missing(chapter, parameters["work_dir"], parameters.get("data_root"))
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    if not absent:
        print(f"{chapter}: every chapter it reads from has run for profile {args.profile}; nothing to do")
        return 0
    print(f"{chapter} needs: {' '.join(absent)}")
    if args.dry_run:
        return 0
    try:
        run_notebooks(args.profile, absent)
    except NotebookFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"done: open notebooks/{chapter}.ipynb and run it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
