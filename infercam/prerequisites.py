"""Which chapters a chapter reads from, so that any chapter can be opened first.

Each chapter reads what earlier ones saved under the profile's ``work_dir`` (the classifier, maps,
pseudo labels); a chapter has finished when its metrics file exists, which it writes last. A chapter
opened on a fresh clone calls :func:`check` in its first code cell: it runs, or stops at once with the
one command that computes exactly what is missing:

    make prerequisites CHAPTER=03_iterative PROFILE=smoke
    python -m infercam.prerequisites --chapter 03_iterative --profile smoke   # the same
"""
from __future__ import annotations

import argparse
import os
import sys

from infercam.config import resolve_path
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


def main(argv: list[str] | None = None) -> int:
    from infercam.config import load_profile
    from infercam.notebooks import NotebookFailed, run_notebooks

    parser = argparse.ArgumentParser(prog="python -m infercam.prerequisites",
                                     description="Run exactly the chapters a chapter needs and that have not run yet.")
    parser.add_argument("--chapter", required=True, help="e.g. 03_iterative")
    parser.add_argument("--profile", default="cpu", help="profile name under profiles/ or a YAML path (default: cpu)")
    parser.add_argument("--dry-run", action="store_true", help="only print which chapters would run")
    args = parser.parse_args(argv)
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
