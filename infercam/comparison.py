"""Side-by-side numbers of two runs of the same chapter, read from their metrics files: the
sensitivity of a chapter's conclusions to a choice made for the whole run (e.g. a classifier
trained from scratch against one that starts from ImageNet)."""
from __future__ import annotations

import os

import pandas as pd

from infercam.runs import read_metrics


def metric(metrics: dict, dotted: str):
    """``metrics["a"]["b"]`` for ``"a/b"`` (a path of keys joined by ``/``: keys may hold dots)."""
    value = metrics
    for key in dotted.split("/"):
        value = value[key]
    return value


def compare_runs(runs: dict[str, str | os.PathLike], step: str, rows: dict[str, str]) -> pd.DataFrame:
    """One column per run (label -> work_dir) and one row per metric (label -> key path into the
    step's metrics, see :func:`metric`), then the last run's change over the first; the runs' dates
    and profiles in ``.attrs["runs"]``. A run without the step's metrics raises FileNotFoundError
    naming the notebook to run."""
    payloads = {label: read_metrics(work_dir, step) for label, work_dir in runs.items()}
    table = pd.DataFrame({label: {row: metric(payload["metrics"], key) for row, key in rows.items()}
                          for label, payload in payloads.items()}).astype(float)
    first, last = table.columns[0], table.columns[-1]
    table["change"] = table[last] - table[first]
    # precision: absent from files saved before it was recorded (shown empty)
    provenance = ("profile", "date", "git_commit", "device_name", "precision")
    table.attrs["runs"] = {label: {key: payload["context"].get(key) for key in provenance}
                           for label, payload in payloads.items()}
    return table


def classifier_start(work_dir: str | os.PathLike) -> str:
    """The classifier a run's baseline chapter trained, e.g. ``"resnet18 (from scratch)"`` or
    ``"efficientnet_lite0 (ImageNet)"``."""
    from infercam.models import IMAGENET_BACKBONES

    backbone = metric(read_metrics(work_dir, "01_baseline_cam")["metrics"], "classifier/settings/backbone")
    return f"{backbone} ({'ImageNet' if backbone in IMAGENET_BACKBONES else 'from scratch'})"


def compare_starts(work_dirs: list[str | os.PathLike], step: str, rows: dict[str, str]) -> pd.DataFrame:
    """:func:`compare_runs` of runs labelled by their classifier's start, the run from scratch first
    (so that "change" reads ImageNet minus scratch whichever run is the chapter's own); rows labelled
    ``... (%)`` hold fractions and are shown as percentages."""
    runs = {classifier_start(work_dir): work_dir for work_dir in work_dirs}
    runs = dict(sorted(runs.items(), key=lambda run: "ImageNet" in run[0]))
    if len(runs) < len(work_dirs):
        raise ValueError(f"the runs {[str(w) for w in work_dirs]} started their classifiers the same way: "
                         f"compare_with should name a run with the other start")
    table = compare_runs(runs, step, rows)
    percent = [row for row in table.index if row.endswith("(%)")]
    table.loc[percent] *= 100
    return table


def compare_with_other_start(work_dir: str | os.PathLike, compare_with: str | os.PathLike, step: str,
                             rows: dict[str, str]) -> pd.DataFrame | None:
    """:func:`compare_starts` of this chapter's run and ``compare_with`` (a notebook's parameter),
    or None, saying why, when there is nothing to compare with: no ``compare_with``, the other run
    lacks the step, or its metrics lack a row (made before the row existed)."""
    if not compare_with:
        print("no run with the other start to compare with (compare_with)")
        return None
    try:
        return compare_starts([work_dir, compare_with], step, rows)
    except FileNotFoundError as missing:
        print(f"no comparison: {missing}")
    except KeyError as missing:
        print(f"no comparison: the metrics of {step} in {compare_with} or {work_dir} have no {missing}: "
              f"rerun that chapter there")
    return None
