"""The teachers' page (book/teaching.md) keeps up with the chapters: it names every exercise, and its
table of times is the measured file, with every chapter and its prerequisites as they are now."""
from __future__ import annotations

import re

import nbformat
import pandas as pd
import yaml

from infercam.notebooks import BOOK_DIR, list_notebooks
from infercam.prerequisites import PREREQUISITES_COLUMN, READS_FROM, TIMES_FILE, needed

PAGE = BOOK_DIR / "teaching.md"
_EXERCISE = re.compile(r"^(```+|:::+)\{exercise\}(?P<body>.*?)^\1\s*$", re.MULTILINE | re.DOTALL)
_LABEL = re.compile(r"^:label:\s*(\S+)", re.MULTILINE)


def exercises() -> dict[str, list[str | None]]:
    """Each notebook's exercises' labels (None for an exercise without one)."""
    found = {}
    for path in list_notebooks():
        cells = nbformat.read(path, as_version=4).cells
        labels = [next(iter(_LABEL.findall(match.group("body"))), None) for cell in cells if cell.cell_type == "markdown"
                  for match in _EXERCISE.finditer(cell.source)]
        if labels:
            found[path.stem] = labels
    return found


def test_the_page_names_every_exercise_of_the_chapters():
    # Catches an exercise added to a chapter (or relabelled) without the teachers' list knowing it, and
    # an exercise without a label, which the page could not link to (sphinx-exercise numbers it anew).
    page = PAGE.read_text()
    assert exercises(), "no {exercise} found in the chapters: has their form changed?"
    unlabelled = {stem: labels.count(None) for stem, labels in exercises().items() if None in labels}
    assert not unlabelled, f"exercises without a :label: (chapter: how many): {unlabelled}"
    missing = [label for labels in exercises().values() for label in labels
               if not re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", page)]
    assert not missing, f"book/teaching.md does not name the exercises {missing}"


def test_the_page_is_in_the_table_of_contents():
    # Catches the page dropped from the book: with only_build_toc_files, a page outside the toc is not built.
    assert "file: teaching" in (BOOK_DIR / "_toc.yml").read_text()
    assert yaml.safe_load((BOOK_DIR / "_config.yml").read_text())["only_build_toc_files"] is True


def test_the_times_table_is_the_measured_file_with_every_chapter_and_its_prerequisites():
    # Catches the page including another file than the one `python -m infercam.prerequisites --times`
    # writes, and a file not written again after a chapter was added or its prerequisites changed.
    included = re.search(r"^```\{csv-table\}.*?^:file:\s*(\S+)", PAGE.read_text(), re.MULTILINE | re.DOTALL)
    assert included, "book/teaching.md has no {csv-table} with a :file:"
    assert (PAGE.parent / included.group(1)).resolve() == TIMES_FILE.resolve()
    table = pd.read_csv(TIMES_FILE, dtype=str, keep_default_na=False)
    assert list(table["chapter"]) == list(READS_FROM)
    assert list(table[PREREQUISITES_COLUMN]) == [" ".join(step[:2] for step in needed(chapter)) for chapter in READS_FROM]
    assert any(column.startswith("smoke ") for column in table.columns), "no measured column in the times table"
