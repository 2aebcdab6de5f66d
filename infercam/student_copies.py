"""Student copies of the chapters: the same notebooks with the exercises' solutions taken out.

The source notebooks mark solutions the way nbgrader does, so a teacher can also run nbgrader on them
as they are:

- solution code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in a code cell whose
  metadata says ``nbgrader: {solution: true, ...}``; the student copy keeps the cell and replaces each
  marked region with ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` (nbgrader's own stub);
- the solution's prose and any cell that shows its measured outcome sit between a
  ``{solution-start}`` and a ``{solution-end}`` cell (sphinx-exercise's gated solution, which the
  book shows folded); the student copy drops those cells, except marked code cells, which it stubs;
- a cell tagged ``student-copy-remove`` (one that shows a reference answer's source, say) is dropped
  wherever it stands.

``python -m infercam.student_copies --out build/exercises`` (``make exercises``) writes one copy per
chapter that has exercises, without outputs.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

from infercam.config import PROJECT_ROOT, resolve_path
from infercam.notebooks import list_notebooks

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
REMOVE_TAG = "student-copy-remove"
_GATE = re.compile(r"^\s*(```+|:::+)\{solution-(start|end)\}", re.MULTILINE)
_SOLUTION_BLOCK = re.compile(r"^(?P<fence>```+|:::+)\{solution\}.*?^(?P=fence)\s*$\n?", re.MULTILINE | re.DOTALL)
STUDENT_NOTE = ("*Student copy: the exercises' solutions are taken out. Write your code where a cell says "
                "`# YOUR CODE HERE`, then run the `check(...)` cell below it.*")


class SolutionMarkersError(ValueError):
    """A notebook's solution markers do not pair up; the message names the notebook and the cell."""


def stub_solutions(source: str, where: str = "a cell") -> str:
    """``source`` with each BEGIN/END SOLUTION region replaced by nbgrader's stub, at the marker's indent."""
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise SolutionMarkersError(f"{where}: '{BEGIN}' twice without '{END}' between them")
            indent = line[:len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
            inside = True
        elif stripped == END:
            if not inside:
                raise SolutionMarkersError(f"{where}: '{END}' without '{BEGIN}' before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionMarkersError(f"{where}: '{BEGIN}' without '{END}' after it")
    return "\n".join(out)


def _has_marker(cell, marker: str) -> bool:
    return cell.cell_type == "code" and any(line.strip() == marker for line in cell.source.splitlines())


def has_solution_code(cell) -> bool:
    return _has_marker(cell, BEGIN)


def _gate(cell) -> str | None:
    found = _GATE.search(cell.source) if cell.cell_type == "markdown" else None
    return found.group(2) if found else None


def student_copy(notebook: nbformat.NotebookNode, name: str = "the notebook") -> nbformat.NotebookNode:
    """A copy of ``notebook`` without solutions, folded solution text or outputs (see the module's doc)."""
    copy = nbformat.from_dict(notebook)
    cells, opened = [], None  # opened: the number of the {solution-start} cell we are inside, if any
    for number, cell in enumerate(copy.cells):
        where = f"{name}, cell {number}"
        gate = _gate(cell)
        if gate == "start":
            if opened is not None:
                raise SolutionMarkersError(f"{where}: a second {{solution-start}} before {{solution-end}} "
                                           f"(the first is cell {opened})")
            opened = number
            continue
        if gate == "end":
            if opened is None:
                raise SolutionMarkersError(f"{where}: {{solution-end}} without {{solution-start}} before it")
            opened = None
            continue
        if REMOVE_TAG in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "markdown":
            cell.source = _SOLUTION_BLOCK.sub("", cell.source)
        marked = has_solution_code(cell)
        if marked or _has_marker(cell, END):  # an END alone: a misspelt BEGIN, whose solution would stay
            cell.source = stub_solutions(cell.source, where)
        elif opened is not None:
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            tags = cell.metadata.get("tags", [])
            # the stub is where the student writes: never hidden, whatever the book does with the solution
            cell.metadata["tags"] = [t for t in tags if not (marked and t in ("remove-input", "hide-input", "remove-cell"))]
        cells.append(cell)
    if opened is not None:
        raise SolutionMarkersError(f"{name}, cell {opened}: {{solution-start}} without {{solution-end}} after it")
    title = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"), 0)
    cells.insert(title + 1, nbformat.v4.new_markdown_cell(STUDENT_NOTE))
    copy.cells = cells
    return copy


def chapters_with_exercises(notebooks: list[Path] | None = None) -> list[Path]:
    return [path for path in (notebooks or list_notebooks())
            if any(has_solution_code(cell) for cell in nbformat.read(path, as_version=4).cells)]


def write_student_copies(out_dir: Path, notebooks: list[Path] | None = None) -> list[Path]:
    """Write a student copy of each chapter with exercises into ``out_dir``; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapters_with_exercises(notebooks):
        copy = student_copy(nbformat.read(path, as_version=4), path.name)
        nbformat.write(copy, out_dir / path.name)
        written.append(out_dir / path.name)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/exercises", help="folder for the student copies (default: %(default)s)")
    args = parser.parse_args(argv)
    out_dir = resolve_path(args.out)
    written = write_student_copies(out_dir)
    for path in written:
        print(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path)
    print(f"{len(written)} student copies in {args.out}: open them with `make lab NOTEBOOKS={args.out}` "
          f"(they read the same work_dir as the chapters, so run `make prerequisites` first where a chapter asks)")


if __name__ == "__main__":
    main()
