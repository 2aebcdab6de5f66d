"""Execute the tutorial's notebooks with papermill, in file-name order, for one profile.

    python -m infercam.notebooks --profile smoke                 # every notebook
    python -m infercam.notebooks --profile cpu --only 00_minivoc  # some of them
    python -m infercam.notebooks --profile cpu --stage-book       # copy executed ones into book/

A profile (``profiles/<name>.yaml`` or a path to a YAML file) is the notebooks' parameters, exactly
as ``papermill -f profiles/<name>.yaml`` would pass them. Notebooks run with the repository root as
their working directory, so the relative paths in profiles resolve the same way everywhere.
Executed copies and ``timings.json`` go to ``build/executed/<profile>/``.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import papermill
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec
from papermill.exceptions import PapermillExecutionError

from infercam.config import (PROJECT_ROOT, ProfileValueError, WorkDirError, check_frozen_stages, check_parameter_types,
                             check_writable, load_profile, resolve_path)
from infercam.runs import record_parameters

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
EXECUTED_DIR = PROJECT_ROOT / "build" / "executed"
BOOK_DIR = PROJECT_ROOT / "book"
TIMINGS_FILE = "timings.json"


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the failing cell and the exception."""

    def __init__(self, notebook: Path, executed: Path, error: str, cell_index: int | None = None,
                 cell_source: str = ""):
        self.notebook, self.executed, self.error = notebook, executed, error
        self.cell_index, self.cell_source = cell_index, cell_source
        where = f"cell {cell_index}" if cell_index is not None else "an unknown cell"
        head = "\n".join("    " + line for line in cell_source.splitlines()[:3])
        super().__init__(
            f"notebook {_shown(notebook)} failed at {where} (counting from 0 in the committed notebook)"
            + (f":\n{head}\n" if head else "\n")
            + f"{error}\nThe executed copy, with the full traceback, is at {_shown(executed)}"
        )


class _ThisInterpreterKernelManager(AsyncKernelManager):
    """Starts ipykernel on the interpreter running this module (the venv's own python), whatever
    "python3" kernelspec another environment or the user's ~/.local/share/jupyter put first."""

    @property
    def kernel_spec(self) -> KernelSpec:
        if self._kernel_spec is None:
            from ipykernel.kernelspec import get_kernel_dict  # argv = [sys.executable, "-m", "ipykernel_launcher", ...]

            spec = get_kernel_dict()
            # Only the kernel's errors: its startup warning ("Kernel is running over TCP without
            # encryption", about the loopback connection to this process) lands in the chapter's
            # output when a chapter itself runs notebooks (the ablation grid).
            spec["argv"] = [*spec["argv"], "--IPKernelApp.log_level=ERROR"]
            self._kernel_spec = KernelSpec(**spec)
        return self._kernel_spec


def _shown(path: Path) -> str:
    """Paths inside the repository relative to it, others absolute."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def list_notebooks(notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR, names: list[str] | None = None) -> list[Path]:
    """The notebooks in file-name order; ``names`` (stems or file names) selects some of them."""
    notebooks = sorted(Path(notebooks_dir).glob("*.ipynb"))
    if names is None:
        return notebooks
    wanted = {Path(name).stem for name in names}
    unknown = wanted - {nb.stem for nb in notebooks}
    if unknown:
        raise FileNotFoundError(f"no notebook {sorted(unknown)} in {_shown(Path(notebooks_dir))}; "
                                f"there are: {[nb.stem for nb in notebooks]}")
    return [nb for nb in notebooks if nb.stem in wanted]


def _profile(profile: str | os.PathLike) -> tuple[str, dict]:
    """(profile name, papermill parameters) of a profile name or YAML path."""
    parameters = load_profile(profile)
    return str(parameters.get("profile", Path(profile).stem)), parameters


def executed_dir(profile: str | os.PathLike) -> Path:
    """Where the executed notebooks of a profile go by default: build/executed/<profile>/."""
    return EXECUTED_DIR / _profile(profile)[0]


def _read_timings(output_dir: Path) -> dict:
    path = output_dir / TIMINGS_FILE
    return json.loads(path.read_text()) if path.is_file() else {"notebooks": {}}


def notebook_times(output_dir: str | os.PathLike):
    """Each notebook's wall time and its kernel's peak resident memory as the runner last recorded them in
    ``<output_dir>/timings.json`` (a DataFrame indexed by notebook: seconds, minutes, peak_memory_gb
    (NaN for runs recorded before the runner measured it), status, finished; empty when none ran)."""
    import pandas as pd

    entries = _read_timings(Path(output_dir))["notebooks"]
    table = pd.DataFrame.from_dict(entries, orient="index", columns=["seconds", "peak_memory_gb", "status", "finished"]).sort_index()
    table.insert(1, "minutes", table["seconds"] / 60)
    return table.rename_axis("notebook")


def process_memory(process) -> int:
    """Bytes of memory that ``process`` (a psutil.Process) accounts for: its PSS (its private pages
    and its share of the pages it shares), else its RSS where the system tells no PSS."""
    import psutil

    try:
        pss = getattr(process.memory_full_info(), "pss", None)
    except psutil.AccessDenied:
        pss = None
    return pss if pss is not None else process.memory_info().rss


class PeakMemory(contextlib.AbstractContextManager):
    """The largest memory that this process's children (the notebook's kernel and whatever it
    starts, e.g. DataLoader workers or the ablation batch's own kernels) held together while the
    block ran, sampled every ``interval`` seconds: a student's laptop must hold a chapter's peak, not
    the runner's. Each child counts its proportional set size (PSS): a page that forked processes
    share counts once in all, where summing their resident sizes (RSS) counts it in each of them
    (a forked worker's RSS includes the kernel's whole copy-on-write heap). Where PSS cannot be read
    (e.g. macOS), a child counts its RSS."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self._me, self.interval, self.peak_bytes = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _children_memory(self) -> int:
        import psutil

        total = 0
        for child in self._me.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a child may end between listing and reading it
                total += process_memory(child)
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._children_memory())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_gb(self) -> float:
        return round(self.peak_bytes / 2**30, 2)


def _write_timings(output_dir: Path, timings: dict) -> None:
    # Atomic, so an interrupted run never leaves half a file.
    with tempfile.NamedTemporaryFile("w", dir=output_dir, suffix=".tmp", delete=False) as handle:
        json.dump(timings, handle, indent=2, sort_keys=True)
    os.replace(handle.name, output_dir / TIMINGS_FILE)


def _committed_cell_index(notebook: Path, executed_index: int, injected: bool) -> int:
    """Papermill inserts its injected-parameters cell right after the `parameters` cell (at the
    top if there is none): map an index in the executed copy back to the committed notebook."""
    if not injected:
        return executed_index
    cells = nbformat.read(notebook, as_version=4).cells
    parameters_index = next((i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])), -1)
    # the injected cell itself counts as the parameters cell
    return max(executed_index - 1, 0) if executed_index > parameters_index else executed_index


def terminal_text(text: str) -> str:
    """What a terminal shows for ``text``: a carriage return overwrites its line, so a progress bar
    leaves its last state only, instead of one line per refresh in the static book."""
    lines = []
    for line in text.split("\n"):
        parts = [part for part in line.split("\r") if part]
        lines.append(parts[-1] if parts else "")
    return "\n".join(lines)


def collapse_streams(path: Path) -> None:
    """Merge each cell's consecutive stdout/stderr chunks, apply :func:`terminal_text`, and drop the
    streams that are left blank."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        merged = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and merged and merged[-1].output_type == "stream" \
                    and merged[-1].name == output.name:
                merged[-1].text += output.text
            else:
                merged.append(output)
        for output in merged:
            if output.output_type == "stream":
                output.text = terminal_text(output.text)
        if "outputs" in cell:
            # a stream left blank (a bar that erased itself) would show as an empty box in the book
            cell.outputs = [output for output in merged if output.output_type != "stream" or output.text.strip()]
    nbformat.write(notebook, path)


def notebook_defaults(notebook: str | os.PathLike) -> dict:
    """The parameters of ``notebook``'s parameters cell and their default values (literals)."""
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    return {target.id: ast.literal_eval(statement.value) for cell in cells for statement in ast.parse(cell.source).body
            if isinstance(statement, ast.Assign) for target in statement.targets if isinstance(target, ast.Name)}


def values_seen(notebook: str | os.PathLike, parameters: dict) -> dict:
    """What a run of ``notebook`` given ``parameters`` works with: its defaults, those given replacing
    them. The book and the seed batch record these (the ablation batch too): a run made before a
    default changed then never counts as finished with the new one."""
    return {**notebook_defaults(notebook), **parameters}


def notebook_parameters(notebook: str | os.PathLike, parameters: dict) -> dict:
    """Those of ``parameters`` that ``notebook``'s parameters cell declares, each checked against
    the type of its default (:func:`infercam.config.check_parameter_types`), and the backbone against
    the stages to freeze (:func:`infercam.config.check_frozen_stages`)."""
    declared = notebook_defaults(notebook)
    chosen = {name: value for name, value in parameters.items() if name in declared}
    check_parameter_types(chosen, declared, f"{Path(notebook).name}'s parameters cell")
    check_frozen_stages({**declared, **chosen}, Path(notebook).name)
    return chosen


# What the kernels that execute notebooks for the book inherit: no progress bars (tqdm reads TQDM_*
# variables when it is imported), which would otherwise fill the book with bars frozen at their
# last state. A person running a chapter in JupyterLab or a script keeps them.
KERNEL_ENVIRONMENT = {"TQDM_DISABLE": "1"}


@contextlib.contextmanager
def kernel_environment(variables: dict[str, str] = KERNEL_ENVIRONMENT):
    """Set ``variables`` in this process's environment, which a kernel started meanwhile inherits;
    restore the previous values (or their absence) afterwards."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_notebook(notebook: Path, output: Path, parameters: dict, log_output: bool = False,
                     progress_bar: bool = True) -> NotebookFailed | None:
    """Run one notebook with papermill into ``output`` (cwd: the repository root) with those of
    ``parameters`` that its parameters cell declares (a profile serves every notebook, and the
    book shows the injected values: only the notebook's own belong there), its kernel started in
    :data:`KERNEL_ENVIRONMENT`; the failure, naming the notebook and the failing cell, or None."""
    parameters = notebook_parameters(notebook, parameters)
    try:
        with kernel_environment():
            papermill.execute_notebook(
                notebook, output, parameters=parameters, cwd=PROJECT_ROOT,
                kernel_name="python3", language="python", progress_bar=progress_bar, log_output=log_output,
                kernel_manager_class=_ThisInterpreterKernelManager,
            )
    except PapermillExecutionError as error:
        return NotebookFailed(notebook, output, f"{error.ename}: {error.evalue}",
                              _committed_cell_index(notebook, error.cell_index, bool(parameters)), error.source)
    except Exception as error:  # e.g. the kernel died: no cell to point at
        return NotebookFailed(notebook, output, f"{type(error).__name__}: {error}")
    return None


def run_notebooks(profile: str | os.PathLike, names: list[str] | None = None,
                  output_dir: str | os.PathLike | None = None,
                  notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR, log_output: bool = False) -> list[Path]:
    """Execute notebooks (all, or those named) in order; return the executed copies' paths.

    Each notebook's wall time and peak memory (:class:`PeakMemory`) go into ``<output_dir>/timings.json`` (merged with earlier runs,
    one entry per notebook). The first failure stops the run with :class:`NotebookFailed`; the
    notebooks executed before it stay in ``output_dir``.
    """
    profile_name, parameters = _profile(profile)
    output_dir = resolve_path(output_dir) if output_dir is not None else EXECUTED_DIR / profile_name
    output_dir.mkdir(parents=True, exist_ok=True)
    notebooks = list_notebooks(notebooks_dir, names)
    if not notebooks:
        print(f"no notebooks in {_shown(Path(notebooks_dir))}: nothing to run", flush=True)
        return []

    # a wrong value or an unwritable work_dir fails now, not notebooks later
    passed = {notebook: notebook_parameters(notebook, parameters) for notebook in notebooks}
    if "work_dir" in parameters:
        check_writable(parameters["work_dir"])
    timings = _read_timings(output_dir)
    timings.update(profile=profile_name, parameters=parameters, python=sys.executable)
    executed = []
    for number, notebook in enumerate(notebooks, 1):
        output = output_dir / notebook.name
        print(f"[{number}/{len(notebooks)}] {notebook.stem} (profile {profile_name}) -> {_shown(output)}", flush=True)
        start = time.perf_counter()
        with PeakMemory() as memory:
            failure = execute_notebook(notebook, output, parameters, log_output)
        seconds = time.perf_counter() - start
        timings["notebooks"][notebook.stem] = {
            "seconds": round(seconds, 1), "peak_memory_gb": memory.peak_gb, "status": "failed" if failure else "ok",
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        _write_timings(output_dir, timings)
        if failure:
            print(f"[{number}/{len(notebooks)}] {notebook.stem} FAILED after {seconds:.1f} s", flush=True)
            raise failure
        print(f"[{number}/{len(notebooks)}] {notebook.stem} done in {seconds:.1f} s", flush=True)
        if "work_dir" in passed[notebook]:  # `make seeds` then counts the book's run as its seed's
            record_parameters(passed[notebook]["work_dir"], notebook.stem, values_seen(notebook, passed[notebook]))
        collapse_streams(output)
        executed.append(output)
    return executed


def stage_book(executed: str | os.PathLike, book_dir: str | os.PathLike = BOOK_DIR,
               notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR) -> list[Path]:
    """Copy the executed notebooks into ``<book_dir>/notebooks/`` (replacing what was there), after
    checking that every notebook in ``notebooks_dir`` has a successful executed copy."""
    executed = Path(executed)
    statuses = {name: entry["status"] for name, entry in _read_timings(executed)["notebooks"].items()}
    not_ok = [nb.stem for nb in list_notebooks(notebooks_dir)
              if not (executed / nb.name).is_file() or statuses.get(nb.stem) != "ok"]
    if not_ok:
        raise FileNotFoundError(f"no successful executed copy in {_shown(executed)} of {not_ok}: "
                                "execute them first (make notebooks PROFILE=...)")
    target = Path(book_dir) / "notebooks"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    return [Path(shutil.copy2(executed / nb.name, target)) for nb in list_notebooks(notebooks_dir)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infercam.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", help="profile name under profiles/ or path to a YAML file (default: cpu)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (stems, e.g. 00_minivoc)")
    parser.add_argument("--output-dir", help="where executed notebooks go (default: build/executed/<profile>)")
    parser.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR), help="folder of notebooks to run (default: notebooks/)")
    parser.add_argument("--log-output", action="store_true", help="also print the notebooks' output as they run")
    parser.add_argument("--stage-book", action="store_true",
                        help="run nothing: copy the executed notebooks into book/notebooks/ for the book build")
    args = parser.parse_args(argv)
    output_dir = resolve_path(args.output_dir) if args.output_dir else executed_dir(args.profile)
    if args.stage_book:
        try:
            staged = stage_book(output_dir, BOOK_DIR, args.notebooks_dir)
        except FileNotFoundError as error:  # the message says what to run first: no traceback
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"staged {len(staged)} executed notebook(s) from {_shown(output_dir)} into {_shown(BOOK_DIR / 'notebooks')}")
        return 0
    if args.log_output:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s")  # papermill logs cell output at INFO
    start = time.perf_counter()
    try:
        run_notebooks(args.profile, args.only, output_dir, args.notebooks_dir, args.log_output)
    except (NotebookFailed, FileNotFoundError, ProfileValueError, WorkDirError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    times = notebook_times(output_dir)
    print(times[["seconds", "minutes", "status"]].round(1).to_string())
    print(f"all done in {time.perf_counter() - start:.1f} s; timings in {_shown(output_dir / TIMINGS_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
