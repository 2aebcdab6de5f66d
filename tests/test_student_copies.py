"""Student copies (infercam.student_copies): first on small hand-made notebooks, then on the book's own.

A student copy must keep every exercise and the cell where the student writes, and give away no
solution: no solution code, no folded solution prose, no outputs of the executed book.
"""
from __future__ import annotations

import ast
import re

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from infercam.exercises import run_checks
from infercam.notebooks import list_notebooks
from infercam.student_copies import (BEGIN, END, STUDENT_NOTE, SolutionMarkersError, chapters_with_exercises,
                                     has_solution_code, student_copy)

NBGRADER = {"grade": False, "grade_id": "ex-02-double-solution", "locked": False, "schema_version": 3,
            "solution": True, "task": False}
SOLUTION_CELL = f'''def my_double(values, times=2):
    """Each value times ``times``."""
    if values is None:
        {BEGIN}
        return None
        {END}
    {BEGIN}
    doubled = [times * value for value in values]
    return doubled
    {END}'''
STUB_CELL = '''def my_double(values, times=2):
    """Each value times ``times``."""
    if values is None:
        # YOUR CODE HERE
        raise NotImplementedError()
    # YOUR CODE HERE
    raise NotImplementedError()'''


def markdown(source: str, tags=()):
    cell = new_markdown_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def code(source: str, tags=(), nbgrader: dict | None = None, outputs=()):
    cell = new_code_cell(source, outputs=list(outputs), execution_count=7 if outputs else None)
    if tags:
        cell.metadata["tags"] = list(tags)
    if nbgrader:
        cell.metadata["nbgrader"] = dict(nbgrader)
    return cell


def exercise(label: str = "ex-02-double") -> str:
    return f"```{{exercise}} Write my_double\n:label: {label}\nDouble each value.\n```"


def solution_start(label: str = "ex-02-double") -> str:
    return f"```{{solution-start}} {label}\n:class: dropdown\n```"


SOLUTION_END = "```{solution-end}\n```"


def chapter(*cells) -> nbformat.NotebookNode:
    return new_notebook(cells=[markdown("# 02 A chapter"), *cells])


def sources(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells]


# --- hand-made notebooks --------------------------------------------------------------------------

def test_stub_keeps_indentation_and_nbgrader_metadata():
    # Catches a stub written at column 0 (or at the def's indent) inside a function body, which is a
    # syntax error in the student's cell, and the nbgrader metadata lost on the way (nbgrader would
    # no longer know the cell as a solution cell).
    copy = student_copy(chapter(code(SOLUTION_CELL, nbgrader=NBGRADER)), "02.ipynb")
    stub = copy.cells[-1]
    assert stub.source == STUB_CELL
    ast.parse(stub.source)
    assert stub.metadata["nbgrader"] == NBGRADER


def test_everything_between_solution_start_and_end_goes_except_marked_code():
    # Catches folded solution prose or a cell showing the measured outcome left in the copy, and the
    # my_ cell dropped along with the rest of the solution (the student would have nowhere to write).
    notebook = chapter(
        markdown("Some chapter text."),
        markdown(exercise()),
        markdown(solution_start()),
        markdown("The answer: multiply each value by two."),
        code("print(measured_outcome)", tags=["remove-input"]),
        code(SOLUTION_CELL, nbgrader=NBGRADER),
        markdown(SOLUTION_END),
        code('check("double", my_double)'),
    )
    copy = student_copy(notebook, "02.ipynb")
    assert sources(copy) == ["# 02 A chapter", STUDENT_NOTE, "Some chapter text.", exercise(), STUB_CELL,
                             'check("double", my_double)']


@pytest.mark.parametrize("fence", ["```", "````", ":::"])
def test_solution_blocks_inside_markdown_go(fence):
    # Catches an ungated {solution} block (the whole solution in one markdown cell) left in the copy,
    # and the text around it removed with it.
    inner = "2 * x" if fence == "```" else "```python\n2 * x\n```"  # a fence holds only shorter ones
    block = f"{fence}{{solution}} ex-02-double\n:class: dropdown\nMultiply:\n{inner}\n{fence}\n"
    copy = student_copy(chapter(markdown(f"{exercise()}\n\n{block}\nAfter the solution.")), "02.ipynb")
    kept = copy.cells[-1].source
    assert kept.startswith(exercise()) and kept.endswith("\nAfter the solution.")
    assert not any(text in kept for text in ("{solution}", "Multiply", "2 * x"))


@pytest.mark.parametrize("cells, cell", [
    ([code(f"def f():\n    {BEGIN}\n    return 1")], 1),  # BEGIN without END
    ([code(f"def f():\n    return 1\n    {END}")], 1),  # END without BEGIN
    ([code(f"def f():\n    {BEGIN}\n    {BEGIN}\n    return 1\n    {END}")], 1),  # BEGIN twice
    ([markdown(exercise()), markdown(solution_start()), markdown("The answer.")], 2),  # start without end
    ([markdown("Text."), markdown(SOLUTION_END)], 2),  # end without start
    ([markdown(solution_start()), markdown(solution_start()), markdown(SOLUTION_END)], 2),  # start twice
], ids=["begin-without-end", "end-without-begin", "begin-twice", "start-without-end", "end-without-start",
        "start-twice"])
def test_unpaired_markers_name_the_notebook_and_the_cell(cells, cell):
    # Catches a copy written from broken markers (half a solution left in, or the rest of the
    # chapter dropped as if it were a solution), and an error that does not say where to look.
    with pytest.raises(SolutionMarkersError, match=rf"^02_split_unite\.ipynb, cell {cell}\b"):
        student_copy(chapter(*cells), "02_split_unite.ipynb")


def test_outputs_and_execution_counts_are_cleared():
    # Catches a copy made from an executed notebook that hands out the book's outputs ("Correct: ...",
    # the solution's measured outcome, every figure).
    notebook = chapter(code("print(1)", outputs=[new_output("stream", name="stdout", text="1\n")]),
                       code(SOLUTION_CELL, nbgrader=NBGRADER,
                            outputs=[new_output("execute_result", data={"text/plain": "2"}, execution_count=7)]))
    copy = student_copy(notebook, "02.ipynb")
    assert [(cell.outputs, cell.execution_count) for cell in copy.cells if cell.cell_type == "code"] == [([], None)] * 2


def test_a_stub_hidden_in_the_book_is_shown_in_the_copy():
    # Catches the book's remove-input/hide-input/remove-cell tags kept on the stub (the student would
    # not see the cell to write in), and other tags lost, or other cells' tags touched.
    notebook = chapter(code(SOLUTION_CELL, tags=["remove-input", "hide-input", "remove-cell", "keep-me"], nbgrader=NBGRADER),
                       code("figure()", tags=["remove-input"]))
    copy = student_copy(notebook, "02.ipynb")
    assert [cell.metadata["tags"] for cell in copy.cells if cell.cell_type == "code"] == [["keep-me"], ["remove-input"]]


def test_cells_tagged_student_copy_remove_are_dropped():
    # Catches a chapter cell that shows the reference function's source (page.show_source(...)),
    # outside any solution, handing the answer to the student.
    notebook = chapter(markdown("The function, as the package writes it:", tags=["student-copy-remove"]),
                       code("page.show_source(double)", tags=["remove-input", "student-copy-remove"]),
                       code("x = double([1])"))
    assert sources(student_copy(notebook, "02.ipynb")) == ["# 02 A chapter", STUDENT_NOTE, "x = double([1])"]


# --- the book's notebooks ---------------------------------------------------------------------------

EXERCISE_CHAPTERS = [path.stem for path in chapters_with_exercises()] or [
    pytest.param(None, marks=pytest.mark.skip(reason="no chapter has an implement exercise yet"))]
_EXERCISE_LABEL = re.compile(r"^(```+|:::+)\{exercise\}.*?^:label:\s*(\S+)", re.MULTILINE | re.DOTALL)
_CHECK_CALL = re.compile(r"\bcheck\(")


def read(stem: str) -> nbformat.NotebookNode:
    return nbformat.read(list_notebooks(names=[stem])[0], as_version=4)


def solution_lines(notebook) -> set[str]:
    """The stripped lines that only a solution holds: between BEGIN/END SOLUTION markers, in cells
    between {solution-start} and {solution-end} and in {solution} blocks, and nowhere else."""
    inside_gate, in_solution, elsewhere = False, set(), set()
    for cell in notebook.cells:
        gate = re.search(r"\{solution-(start|end)\}", cell.source) if cell.cell_type == "markdown" else None
        if gate:
            inside_gate = gate.group(1) == "start"
            continue
        in_region, fence = False, None  # fence: the one that closes the {solution} block we are in
        for line in cell.source.splitlines():
            stripped = line.strip()
            block = re.match(r"(```+|:::+)\{solution\}", stripped) if cell.cell_type == "markdown" else None
            if stripped in (BEGIN, END):
                in_region = stripped == BEGIN
            elif block:
                in_region, fence = True, block.group(1)
            elif fence and stripped == fence:
                in_region, fence = False, None
            elif stripped:
                marked_but_outside = inside_gate and has_solution_code(cell) and not in_region
                (in_solution if (in_region or inside_gate) and not marked_but_outside else elsewhere).add(stripped)
    return in_solution - elsewhere


def exercise_labels(notebook) -> list[str]:
    return [match.group(2) for cell in notebook.cells if cell.cell_type == "markdown"
            for match in _EXERCISE_LABEL.finditer(cell.source)]


def test_every_solution_cell_is_marked_for_nbgrader_with_a_grade_id_unique_in_the_book():
    # Catches a solution cell without nbgrader's solution flag (`nbgrader generate_assignment` would
    # hand its code out as it is), a cell flagged without the markers (a misspelt marker: the student
    # copy keeps the code, and nbgrader replaces the whole cell, def line included), and two cells
    # with one grade_id (nbgrader refuses the notebook, and a course that gathers the chapters into
    # one assignment would mix their grades).
    seen: dict[str, str] = {}
    for path in list_notebooks():
        for number, cell in enumerate(nbformat.read(path, as_version=4).cells):
            marks = cell.metadata.get("nbgrader", {})
            where = f"{path.name}, cell {number}"
            if marks.get("solution") and cell.cell_type == "code":
                assert has_solution_code(cell), f"{where} is an nbgrader solution cell without a {BEGIN!r} line"
            if not has_solution_code(cell):
                continue
            assert marks.get("solution") is True, f"{where} holds {BEGIN!r} but not nbgrader's solution: true"
            grade_id = marks.get("grade_id")
            assert grade_id, f"{where} has no nbgrader grade_id"
            assert grade_id not in seen, f"{where} and {seen.get(grade_id)} share the grade_id {grade_id!r}"
            seen[grade_id] = where


@pytest.mark.parametrize("stem", EXERCISE_CHAPTERS)
def test_the_copy_keeps_the_exercises_and_no_solution(stem):
    # Catches solution code or prose that the copy keeps (a gate or {solution} block written in a form
    # that student_copy does not recognise, or student_copy itself broken), a {solution...} directive
    # left over (the copy would not build as a book), and an exercise lost with its solution (its
    # text in the same cell as {solution-start}).
    notebook = read(stem)
    copy = student_copy(notebook, f"{stem}.ipynb")
    copy_lines = {line.strip() for cell in copy.cells for line in cell.source.splitlines()}
    leaked = sorted(solution_lines(notebook) & copy_lines)
    assert not leaked, f"the student copy of {stem} keeps these solution lines: {leaked[:10]}"
    directives = [cell.source[:80] for cell in copy.cells if "{solution" in cell.source]
    assert not directives, f"the student copy of {stem} keeps solution directives: {directives}"
    assert exercise_labels(copy) == exercise_labels(notebook), f"the student copy of {stem} lost exercises"


def python(cell) -> ast.Module:
    """A code cell's source as Python, its IPython magics (``%matplotlib``, ``!ls``) made calls."""
    return ast.parse(TransformerManager().transform_cell(cell.source))


def check_calls(notebook) -> list[tuple[str, str]]:
    """(exercise name, function name) of every ``check("name", function)`` in the code cells."""
    return [(call.args[0].value, call.args[1].id) for cell in notebook.cells if cell.cell_type == "code"
            and _CHECK_CALL.search(cell.source) for call in ast.walk(python(cell))
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "check" and len(call.args) == 2
            and isinstance(call.args[0], ast.Constant) and isinstance(call.args[1], ast.Name)]


@pytest.mark.parametrize("stem", EXERCISE_CHAPTERS)
def test_each_implement_exercise_is_a_stub_that_check_reports_as_not_written(stem):
    # Catches a stub that still answers (the BEGIN marker after a return, part of the solution above
    # it), a my_ function that no check cell checks, and a check cell naming another exercise: in the
    # copy, check(...) on the stub must say "Not written yet" with a hint.
    copy = student_copy(read(stem), f"{stem}.ipynb")
    stubs = {node.name: cell.source for cell in copy.cells if cell.cell_type == "code" and "nbgrader" in cell.metadata
             for node in python(cell).body if isinstance(node, ast.FunctionDef) and node.name.startswith("my_")}
    assert stubs, f"{stem} has solution cells but defines no my_ function in them"
    checked = dict((function, name) for name, function in check_calls(copy))
    assert set(stubs) <= set(checked), f"{stem}: no check(...) cell for {sorted(set(stubs) - set(checked))}"
    assert set(checked) <= set(stubs), f"{stem}: the copy checks {sorted(set(checked) - set(stubs))}, which it does not define"
    # The stub cell is defined the way the student runs it, with the copy's imports in scope (not
    # the chapter's computed variables: check() calls it on hand-made cases only).
    imports = [ast.Module(body=[node], type_ignores=[]) for cell in copy.cells if cell.cell_type == "code"
               for node in python(cell).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    for function, source in stubs.items():
        namespace: dict = {}
        for statement in imports:
            exec(compile(statement, f"{stem} imports", "exec"), namespace)
        exec(compile(source, f"{stem} {function}", "exec"), namespace)
        message = run_checks(checked[function], namespace[function]).message
        assert message.startswith("Not written yet") and "Hint:" in message, f"{stem}, {function}: {message}"
