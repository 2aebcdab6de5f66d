"""Metrics files: what each notebook measured, with the facts needed to trust and compare it.

Every notebook writes ``<work_dir>/metrics/<step>.json``; the book's tables are built from these
files, never typed in.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from infercam import __version__
from infercam.bootstrap import ImageConfusions
from infercam.config import (PROJECT_ROOT, cpu_name, nondeterministic_ops, precision_name, resolve_mixed_precision,
                             resolve_path)
from infercam.download import write_text_atomic


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_context(profile: str, seed: int, device, mixed_precision: bool | str | None = None) -> dict:
    """Date, profile, seed, device, precision and versions of this run. ``mixed_precision``: the
    step's setting (resolved here for ``device``); None for a step that runs no network."""
    import torch

    device = torch.device(device)
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": profile,
        "seed": seed,
        "device": str(device),
        # The device's own index: "cuda:1" is not GPU 0 (None: the current GPU).
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "precision": None if mixed_precision is None else precision_name(resolve_mixed_precision(mixed_precision,
                                                                                                  device)),
        "versions": {"infercam": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__},
        "git_commit": _git_commit(),
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def metrics_path(work_dir: str | os.PathLike, step: str) -> Path:
    return resolve_path(work_dir) / "metrics" / f"{step}.json"


def write_metrics(work_dir: str | os.PathLike, step: str, metrics: dict, context: dict) -> Path:
    """Write ``{"context": ..., "metrics": ...}`` atomically, so a crash never leaves half a file.
    The context gains the operations that ran without a deterministic implementation so far in
    this process (CUDA; :func:`infercam.config.nondeterministic_ops`)."""
    path = metrics_path(work_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    context = {**context, "nondeterministic_ops": nondeterministic_ops()}
    payload = {"step": step, "context": _jsonable(context), "metrics": _jsonable(metrics)}
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".", suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
    os.replace(handle.name, path)
    return path


def read_metrics(work_dir: str | os.PathLike, step: str) -> dict:
    path = metrics_path(work_dir, step)
    if not path.is_file():
        raise FileNotFoundError(f"no metrics for step {step!r} at {path}: run notebooks/{step}.ipynb first")
    try:
        with open(path) as handle:
            return json.load(handle)
    except ValueError as error:  # written atomically, so only a file damaged on disk gets here
        raise ValueError(f"corrupt metrics file {path} ({error}): delete it and run the notebook of step "
                         f"{step!r} again") from error


def parameters_record_path(work_dir: str | os.PathLike, step: str) -> Path:
    """Beside the metrics file: the parameters the finished run was given."""
    return metrics_path(work_dir, step).with_suffix(".parameters.json")


def record_parameters(work_dir: str | os.PathLike, step: str, parameters: dict) -> Path:
    """Note that ``step`` finished with ``parameters``, so that a batch (ablations, seeds) can skip it."""
    record = parameters_record_path(work_dir, step)
    record.parent.mkdir(parents=True, exist_ok=True)
    # atomic: a half-written record never counts as finished
    write_text_atomic(record, json.dumps(_jsonable(parameters), indent=2, sort_keys=True))
    return record


def finished_with_parameters(work_dir: str | os.PathLike, step: str, parameters: dict) -> bool:
    """Whether ``step`` wrote its metrics and finished with exactly ``parameters``."""
    record = parameters_record_path(work_dir, step)
    if not (metrics_path(work_dir, step).is_file() and record.is_file()):
        return False
    try:
        saved = json.loads(record.read_text())
    except ValueError:  # cut short on disk: the run counts as unfinished and runs again
        return False
    return saved == json.loads(json.dumps(_jsonable(parameters)))


def confusions_path(work_dir: str | os.PathLike, step: str) -> Path:
    """Beside the metrics file: the per-image confusion matrices of the step's evaluations."""
    return metrics_path(work_dir, step).with_suffix(".confusions.npz")


def write_confusions(work_dir: str | os.PathLike, step: str, rows: dict[str, ImageConfusions]) -> Path:
    """Save each evaluation's per-image confusions (``label -> ImageConfusions``), for the
    bootstrap's intervals; written atomically like the metrics."""
    path = confusions_path(work_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for label, row in rows.items():
        arrays[f"{label}::names"] = np.array(row.names, dtype=str)
        arrays[f"{label}::confusions"] = row.confusions.astype(np.int32)  # pixel counts of one image
    # hidden (a dot file): a run killed while writing leaves nothing that looks like a result
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", suffix=".npz", delete=False) as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(handle.name, path)
    return path


def read_confusions(work_dir: str | os.PathLike, step: str) -> dict[str, ImageConfusions]:
    """``label -> ImageConfusions`` as :func:`write_confusions` saved them ({} when the step saved none)."""
    path = confusions_path(work_dir, step)
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as saved:
        labels = [key.removesuffix("::names") for key in saved.files if key.endswith("::names")]
        return {label: ImageConfusions(tuple(saved[f"{label}::names"].tolist()), saved[f"{label}::confusions"])
                for label in labels}
