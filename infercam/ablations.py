"""Ablations as a papermill batch: one run of ``notebooks/ablation/cam_method.ipynb`` per
configuration of a grid file, each writing its metrics; the collected table as CSV and Markdown.

    python -m infercam.ablations --profile cpu                          # ablations/cam_methods.yaml
    python -m infercam.ablations --profile smoke --grid my_grid.yaml --only baseline combined
    make ablations PROFILE=cpu

A grid file (YAML)::

    description: what the grid asks
    parameters: {num_images: 100}          # for every configuration
    reference: baseline                    # the row the others are compared with
    configurations:
      - name: combined                     # letters, digits, - and _
        description: split & unite + iterative inference
        paper: TABLE2/both                 # optional: a number of infercam.paper to show beside
        official_code: false               # optional: true where the row is the official code's choice
        parameters: {split_unite: true, iterative: true}       # and the paper's text says otherwise

Each configuration runs with the notebook's defaults, then the profile's values of its parameters
(other profile keys are not passed), then the grid's, then its own. A finished configuration (its
metrics file exists and it ran with the same values) is skipped; a failing one
is reported by name and the others still run. Executed copies go to
``build/ablations/<profile>/<grid>/<name>.ipynb``, each beside the log of its kernel
(``<name>.kernel.log``: what the kernel wrote to its standard error); metrics to
``<work_dir>/metrics/ablation/<grid>/<name>.json``; the table to ``<work_dir>/ablations/<grid>.csv``
and ``.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from tqdm import tqdm

from infercam import paper
from infercam.bootstrap import (ImageConfusions, conclusion, paired_bootstrap, paired_bootstrap_by_group,
                                truth_class_counts, verdict_of)
from infercam.cam_analysis import class_count_group
from infercam.config import (PROJECT_ROOT, bars_off, check_writable, load_profile, no_bar, ProfileValueError,
                             resolve_path, WorkDirError)
from infercam.download import write_text_atomic
from infercam.notebooks import NOTEBOOKS_DIR, NotebookFailed, execute_notebook, notebook_defaults
from infercam.runs import finished_with_parameters, metrics_path, read_confusions, record_parameters

DEFAULT_GRID = PROJECT_ROOT / "ablations" / "cam_methods.yaml"
RUN_NOTEBOOK = NOTEBOOKS_DIR / "ablation" / "cam_method.ipynb"
OUTPUT_DIR = PROJECT_ROOT / "build" / "ablations"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")


@contextlib.contextmanager
def _standard_error_to(path: Path):
    """Point this process's standard error (file descriptor 2) at ``path`` for the block: a kernel
    started inside it inherits it, so the kernel's log lines (e.g. ipykernel's warning that it runs
    over TCP without encryption) go to a file instead of into the output of the chapter that runs
    the batch (a Jupyter kernel forwards its file descriptor 2 to the running cell)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class GridError(ValueError):
    """A grid file that cannot be run: names the file and what is wrong with it."""


@dataclass
class Configuration:
    name: str
    description: str = ""
    parameters: dict = field(default_factory=dict)
    paper: str | None = None  # "TABLE2/both": infercam.paper.TABLE2["both"]
    official_code: bool = False  # the official code's choice where the paper's text differs

    def paper_value(self) -> float | None:
        if not self.paper:
            return None
        table, _, row = self.paper.partition("/")
        return getattr(paper, table)[row]


@dataclass
class Grid:
    name: str
    description: str
    parameters: dict
    reference: str
    configurations: list[Configuration]


def load_grid(path: str | os.PathLike = DEFAULT_GRID, notebook: str | os.PathLike = RUN_NOTEBOOK) -> Grid:
    """Read and check a grid file: unique names, known parameters (those of ``notebook``'s
    parameters cell), known paper rows, and a reference row that exists."""
    path = resolve_path(path)
    if not path.is_file():
        raise GridError(f"no grid file {path}; the project's grid is {DEFAULT_GRID.relative_to(PROJECT_ROOT)}")
    with open(path) as handle:
        raw = yaml.safe_load(handle) or {}
    known = set(notebook_defaults(notebook))
    configurations = []
    for entry in raw.get("configurations") or []:
        configuration = Configuration(**entry)
        if not NAME_PATTERN.match(configuration.name):
            raise GridError(f"{path}: configuration name {configuration.name!r} may hold only letters, digits, - and _")
        unknown = sorted(set(configuration.parameters) - known)
        if unknown:
            raise GridError(f"{path}: configuration {configuration.name!r} sets {unknown}, which "
                            f"{Path(notebook).name} does not take; its parameters are {sorted(known)}")
        try:
            configuration.paper_value()
        except (AttributeError, KeyError) as error:
            raise GridError(f"{path}: configuration {configuration.name!r}: no paper number {configuration.paper!r} "
                            f"in infercam.paper ({error})") from error
        configurations.append(configuration)
    names = [c.name for c in configurations]
    if not names:
        raise GridError(f"{path}: no configurations")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise GridError(f"{path}: configuration names used twice: {repeated}")
    unknown = sorted(set(raw.get("parameters") or {}) - known)
    if unknown:
        raise GridError(f"{path}: parameters {unknown} are not parameters of {Path(notebook).name}")
    reference = raw.get("reference", names[0])
    if reference not in names:
        raise GridError(f"{path}: reference {reference!r} is not one of the configurations {names}")
    return Grid(path.stem, raw.get("description", ""), raw.get("parameters") or {}, reference, configurations)


@dataclass
class GridRun:
    """What a batch did: the configurations run, skipped and failed (name -> error), and the table."""

    ran: list[str]
    skipped: list[str]
    failed: dict[str, NotebookFailed]
    table: pd.DataFrame
    table_files: list[Path]


def _step(grid: Grid, configuration: Configuration) -> str:
    return f"ablation/{grid.name}/{configuration.name}"


def run_grid(grid: Grid | str | os.PathLike, base_parameters: dict, only: list[str] | None = None,
             output_dir: str | os.PathLike | None = None, notebook: str | os.PathLike = RUN_NOTEBOOK,
             progress: bool | None = None) -> GridRun:
    """Run every configuration of ``grid`` (or those in ``only``) that has not finished with the
    same parameters, then collect the table. ``base_parameters``: the profile's parameters.
    ``progress``: a progress bar and a line per configuration (None: unless ``TQDM_DISABLE`` is
    set, as in the book's build, which shows the batch's result only); failures are in the result
    either way."""
    progress = not bars_off() if progress is None else progress
    grid = grid if isinstance(grid, Grid) else load_grid(grid, notebook)
    work_dir = check_writable(base_parameters["work_dir"])
    profile = str(base_parameters.get("profile", "custom"))
    output_dir = resolve_path(output_dir) if output_dir else OUTPUT_DIR / profile / grid.name
    output_dir.mkdir(parents=True, exist_ok=True)
    selected = [c for c in grid.configurations if only is None or c.name in only]
    if only is not None and len(selected) != len(set(only)):
        raise GridError(f"no configuration {sorted(set(only) - {c.name for c in selected})} in grid {grid.name}; "
                        f"there are {[c.name for c in grid.configurations]}")
    # The values the run will see (its defaults, then the profile's, the grid's and the row's), so
    # that a row finished from the shell counts as finished in the book and the other way round.
    defaults = notebook_defaults(notebook)
    profile_values = {key: value for key, value in base_parameters.items() if key in defaults}
    ran, skipped, failed = [], [], {}
    for configuration in tqdm(selected, desc=f"ablation grid {grid.name}", disable=no_bar(progress)):
        step = _step(grid, configuration)
        parameters = {**defaults, **profile_values, **grid.parameters, **configuration.parameters,
                      "configuration": configuration.name, "metrics_step": step}
        if finished_with_parameters(work_dir, step, parameters):
            skipped.append(configuration.name)
            continue
        started = time.perf_counter()
        with _standard_error_to(output_dir / f"{configuration.name}.kernel.log"):
            failure = execute_notebook(Path(notebook), output_dir / f"{configuration.name}.ipynb", parameters,
                                       progress_bar=False)
        if failure:
            failed[configuration.name] = failure
            if progress:
                tqdm.write(f"configuration {configuration.name} FAILED: {failure.error}")
            continue
        record_parameters(work_dir, step, parameters)
        ran.append(configuration.name)
        if progress:
            tqdm.write(f"configuration {configuration.name} done in {time.perf_counter() - started:.0f} s")
    table = collect_table(grid, work_dir)
    return GridRun(ran, skipped, failed, table, write_table(table, grid, work_dir))


def run_metrics(grid: Grid, work_dir) -> dict[str, dict]:
    """name -> what the configuration's run measured, for those that have run."""
    paths = {c.name: metrics_path(work_dir, _step(grid, c)) for c in grid.configurations}
    return {name: json.loads(path.read_text())["metrics"] for name, path in paths.items() if path.is_file()}


def collect_table(grid: Grid, work_dir) -> pd.DataFrame:
    """One row per configuration with a metrics file: its mIoU, the change against the reference
    row, the time per image its maps took, and the paper's number. No ratio of times: the rows'
    maps were timed by different runs at different times (on a busy machine, or another one), so
    their ratio is not the methods'; ``09_computation_time`` times them side by side."""
    rows = {}
    measurements = run_metrics(grid, work_dir)
    for configuration in grid.configurations:
        if configuration.name not in measurements:
            continue
        measured = measurements[configuration.name]
        rows[configuration.name] = {
            "description": configuration.description, "maps": measured["slug"], "images": measured["images"],
            "best t": measured["best_threshold"], "mIoU (%)": 100 * measured["miou"],
            "s / image": measured["seconds_per_image"], "paper (%)": configuration.paper_value(),
            "official code": configuration.official_code,
        }
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("configuration")
    if grid.reference in table.index:
        reference = table.loc[grid.reference]
        table.insert(5, f"Δ vs {grid.reference}", table["mIoU (%)"] - reference["mIoU (%)"])
        reference_paper = reference["paper (%)"]
        table["paper Δ"] = table["paper (%)"] - reference_paper if reference_paper is not None else None
        table = _with_intervals(table, grid, work_dir)
    return table


def saved_confusions(grid: Grid, work_dir, names=None) -> dict[str, ImageConfusions]:
    """The per-image confusions each configuration's run saved (of ``names``, default all), by name."""
    saved = {configuration.name: read_confusions(work_dir, _step(grid, configuration)).get(configuration.name)
             for configuration in grid.configurations if names is None or configuration.name in names}
    return {name: rows for name, rows in saved.items() if rows is not None}


def class_count_intervals(grid: Grid, work_dir) -> pd.DataFrame | None:
    """Each configuration's difference to the reference within the images of 1, 2 and 3+ classes,
    with its 95% interval (paired bootstrap within the group), indexed by (classes, configuration);
    None when the reference saved no per-image confusions."""
    saved = saved_confusions(grid, work_dir)
    if grid.reference not in saved:
        return None
    groups = truth_class_counts(saved[grid.reference]).map(class_count_group)
    table = paired_bootstrap_by_group(saved, grid.reference, groups[groups != "0"])
    return table.rename_axis(["classes in the image", "configuration"])


def _with_intervals(table: pd.DataFrame, grid: Grid, work_dir) -> pd.DataFrame:
    """The table with each row's 95% interval of its mIoU and of its difference to the reference
    (a paired bootstrap over the images, :mod:`infercam.bootstrap`) and the verdict it gives, for
    the rows whose runs saved their per-image confusions."""
    saved = saved_confusions(grid, work_dir, table.index)
    if grid.reference not in saved:
        return table
    intervals = paired_bootstrap(saved, grid.reference)
    delta = f"Δ vs {grid.reference}"
    at = table.columns.get_loc(delta)
    for offset, (column, source) in enumerate({"mIoU low": "mIoU low", "mIoU high": "mIoU high",
                                               f"{delta} low": "Δ low", f"{delta} high": "Δ high"}.items()):
        table.insert(at + 1 + offset, column, intervals[source].reindex(table.index))
    table["verdict"] = [verdict_of(intervals.loc[name]) if name in intervals.index and name != grid.reference else None
                        for name in table.index]
    return table


def _breakable(name: str) -> str:
    """A configuration's name that a narrow table may wrap after its underscores (a zero-width space
    after each), so that a long name does not widen the table."""
    return name.replace("_", "_\u200b")


def interval_text(low: float, high: float) -> str:
    """A 95% interval as a short cell, e.g. "-8.17 to -3.04" (two decimals: an interval that just
    excludes zero does not read as ending at -0.0)."""
    return f"{low:+.2f} to {high:+.2f}"


def _rounded(value, decimals: int = 1, sign: str = "") -> str:
    """``value`` with ``decimals`` decimals (``sign`` "+": a difference, signed), "—" when missing."""
    return "—" if value is None or pd.isna(value) else f"{value:{sign}.{decimals}f}"


def effects_view(table: pd.DataFrame, reference: str, rows: list[str] | None = None, paper_columns: bool = False
                 ) -> pd.DataFrame:
    """The batch's table as the chapter shows it, narrow enough for a phone: each row's mIoU (%), its
    difference to ``reference`` (this row − the reference), that difference's 95% interval and what
    the interval says, and (``paper_columns``) the paper's mIoU and difference. ``rows``: those to
    show (default all). Missing values, and the reference's own difference, are "—"."""
    table = table.loc[rows] if rows is not None else table
    delta = f"Δ vs {reference}"
    cells = {}
    for name, row in table.iterrows():
        low, high = row.get(f"{delta} low"), row.get(f"{delta} high")
        has_interval = name != reference and low is not None and not pd.isna(low)
        cells[_breakable(name)] = {
            "mIoU (%)": _rounded(row["mIoU (%)"]),
            f"Δ − {reference}": "—" if name == reference else _rounded(row[delta], 2, "+"),
            "95% interval": interval_text(low, high) if has_interval else "—",
            "says": conclusion(low, high) if has_interval else "—",
        }
        if paper_columns:
            cells[_breakable(name)] |= {"paper (%)": _rounded(row.get("paper (%)")),
                                        f"paper Δ − {reference}": "—" if name == reference else _rounded(row.get("paper Δ"), 1, "+")}
    return pd.DataFrame.from_dict(cells, orient="index").rename_axis("configuration")


def descriptions_view(grid: Grid, table: pd.DataFrame) -> pd.DataFrame:
    """What each configuration of the table changes (its grid description) and the background score
    it chose (its best t on these images)."""
    described = {c.name: c.description + (" [official code]" if c.official_code and "official code" not in c.description
                                          else "") for c in grid.configurations}
    view = pd.DataFrame({"what it computes": [described[name] for name in table.index],
                         "best\u00a0t": [f"{t:.2f}" for t in table["best t"]]}, index=[_breakable(n) for n in table.index])
    return view.rename_axis("configuration")


def class_count_view(group_intervals: pd.DataFrame, reference: str, counts: dict[str, int]) -> pd.DataFrame:
    """:func:`class_count_intervals` as the chapter shows it: one row a configuration (not the
    reference), one column a group of images ("1 (13 images)"), each cell the difference to the
    reference with its 95% interval, e.g. "+0.5 (-1.3 to +3.1)"."""
    changed = group_intervals.drop(reference, level="configuration")
    cells = changed.apply(lambda r: f"{r['Δ']:+.1f} ({r['Δ low']:+.1f} to {r['Δ high']:+.1f})", axis=1)
    view = cells.unstack("classes in the image").rename(columns=lambda group: f"{group} ({counts[group]} images)")
    order = [name for name in dict.fromkeys(changed.index.get_level_values("configuration"))]
    return view.reindex(order).rename(index=_breakable)


def starts_view(start_table: pd.DataFrame, modules: dict[str, str]) -> pd.DataFrame:
    """Table 2 under each start of the classifier, one column a start: the baseline's mIoU (%) and
    each module's difference to it with its 95% interval ("Δ (low to high)"). ``start_table``:
    :func:`infercam.comparison.compare_with_other_start` of rows "baseline mIoU", "Δ <label>",
    "Δ <label>, 95% CI low" and "... high"; ``modules``: configuration -> label."""
    starts = [column for column in start_table.columns if column != "change"]
    view = {}
    for start in starts:
        column = start_table[start]
        cells = {"baseline mIoU (%)": _rounded(column["baseline mIoU"])}
        for label in modules.values():
            low, high = column.get(f"Δ {label}, 95% CI low"), column.get(f"Δ {label}, 95% CI high")
            interval = f" ({interval_text(low, high)})" if low is not None and not pd.isna(low) else ""
            cells[f"Δ {label} − baseline"] = _rounded(column[f"Δ {label}"], 2, "+") + interval
        view[start] = cells
    return pd.DataFrame(view)


def write_table(table: pd.DataFrame, grid: Grid, work_dir) -> list[Path]:
    """``<work_dir>/ablations/<grid>.csv`` and ``.md``."""
    out = resolve_path(work_dir) / "ablations"
    out.mkdir(parents=True, exist_ok=True)
    csv, markdown = out / f"{grid.name}.csv", out / f"{grid.name}.md"
    write_text_atomic(csv, table.to_csv())  # atomic: a run killed while writing never leaves half a table
    write_text_atomic(markdown, f"# {grid.name}\n\n{grid.description}\n\n" + table.to_markdown(floatfmt=".3g") + "\n")
    return [csv, markdown]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infercam.ablations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", help="profile name under profiles/ or a YAML path (default: cpu)")
    parser.add_argument("--grid", default=str(DEFAULT_GRID), help="grid file (default: ablations/cam_methods.yaml)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations")
    args = parser.parse_args(argv)
    try:
        result = run_grid(args.grid, load_profile(args.profile), args.only)
    except (GridError, FileNotFoundError, ProfileValueError, WorkDirError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.table.to_string(float_format=lambda v: f"{v:.3g}"))
    print(f"ran {len(result.ran)}, skipped {len(result.skipped)} (finished with the same parameters), "
          f"failed {len(result.failed)}; table: {', '.join(map(str, result.table_files))}")
    for name, failure in result.failed.items():
        print(f"error: configuration {name} failed: {failure}", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
