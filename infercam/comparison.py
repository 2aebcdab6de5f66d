"""Side-by-side numbers of two runs of the same chapter, read from their metrics files: the
sensitivity of a chapter's conclusions to a choice made for the whole run (issue 15: a classifier
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
    table.attrs["runs"] = {label: {key: payload["context"].get(key) for key in ("profile", "date", "git_commit")}
                           for label, payload in payloads.items()}
    return table
