"""Each chapter's student copy runs, in the smoke profile, up to its first check cell, and that check
says "Not written yet" with a hint: the copy a student opens works as it is, before any answer.

The copy runs with the parameters and work_dir of the smoke run that conftest's smoke_run executed
the chapter with, after it, so the chapter's steps find their outputs saved and skip the work; the
exercises stand at each chapter's end, so this re-runs the chapter's cells once, cheaply.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest

from conftest import SMOKE
from infercam.config import load_profile
from infercam.notebooks import execute_notebook
from infercam.student_copies import student_copy
from test_student_copies import EXERCISE_CHAPTERS, read

CHECK_CELL = re.compile(r"^\s*check\(", re.MULTILINE)


def run_to_first_check(notebook: nbformat.NotebookNode, name: str, folder: Path) -> tuple[str, float]:
    """Execute ``notebook``'s student copy, cut after its first check cell, in the smoke profile;
    (the text that check cell printed, seconds taken)."""
    copy = student_copy(notebook, name)
    first = next((i for i, cell in enumerate(copy.cells) if cell.cell_type == "code" and CHECK_CELL.search(cell.source)), None)
    assert first is not None, f"the student copy of {name} has no check(...) cell"
    copy.cells = copy.cells[:first + 1]
    source, executed = folder / name, folder / f"executed-{name}"
    nbformat.write(copy, source)
    start = time.perf_counter()
    failure = execute_notebook(source, executed, load_profile(SMOKE), progress_bar=False)
    seconds = time.perf_counter() - start
    assert failure is None, f"the student copy of {name}, up to its first check: {failure}"
    outputs = nbformat.read(executed, as_version=4).cells[-1].outputs
    return "".join(output.get("text", "") for output in outputs if output.output_type == "stream"), seconds


@pytest.mark.parametrize("stem", EXERCISE_CHAPTERS)
def test_student_copy_runs_to_its_first_check_which_says_not_written(stem, smoke_run, tmp_path):
    # Catches a copy that fails before the student gets to write (a dropped solution cell defined a
    # name a later chapter cell uses; a cell tagged student-copy-remove that the chapter needed),
    # and a first check that passes or fails otherwise on the stub (its cell checks another function).
    smoke_run.executed(stem)
    printed, seconds = run_to_first_check(read(stem), f"{stem}.ipynb", tmp_path)
    print(f"{stem}: student copy up to its first check in {seconds:.1f} s")
    assert "Not written yet" in printed and "Hint:" in printed, f"{stem}'s first check printed: {printed!r}"
