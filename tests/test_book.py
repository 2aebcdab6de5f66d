"""The book builds, warning-free, from the smoke-executed notebooks, and lists every notebook."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infercam.notebooks import BOOK_DIR, list_notebooks, stage_book

TITLE = "InferCam, executable"
NOTEBOOKS = list_notebooks()
needs_notebooks = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks in notebooks/ yet")


def toc_files(entry) -> list[str]:
    """Every `file:` in a _toc.yml tree."""
    if isinstance(entry, dict):
        return ([entry["file"]] if "file" in entry else []) + [f for value in entry.values() for f in toc_files(value)]
    if isinstance(entry, list):
        return [f for item in entry for f in toc_files(item)]
    return []


def test_config_is_offline_and_titled():
    config = yaml.safe_load((BOOK_DIR / "_config.yml").read_text())
    assert config["title"] == TITLE
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True


@needs_notebooks
def test_toc_lists_exactly_the_notebooks():
    # With only_build_toc_files, a notebook missing from the toc would silently drop out of the book.
    listed = {f for f in toc_files(yaml.safe_load((BOOK_DIR / "_toc.yml").read_text())) if f.startswith("notebooks/")}
    assert listed == {f"notebooks/{nb.stem}" for nb in NOTEBOOKS}


@needs_notebooks
def test_book_builds_without_warnings(smoke_run, tmp_path):
    for notebook in NOTEBOOKS:
        smoke_run.executed(notebook.stem)
    # A copy of the book's sources, so that the build never touches book/_build or book/notebooks.
    book = tmp_path / "book"
    shutil.copytree(BOOK_DIR, book, ignore=shutil.ignore_patterns("_build", "notebooks"))
    stage_book(smoke_run.output_dir, book)

    build = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(book), "--all", "-W", "--keep-going"],
                           capture_output=True, text=True)
    assert build.returncode == 0, f"jupyter-book build failed:\n{build.stdout[-6000:]}\n{build.stderr[-6000:]}"

    html = book / "_build" / "html"
    assert "intro.html" in (html / "index.html").read_text()  # the redirect to the root page
    pages = [html / "intro.html", html / "data.html"] + [html / "notebooks" / f"{nb.stem}.html" for nb in NOTEBOOKS]
    for page in pages:
        assert page.is_file(), f"{page} was not built"
        assert TITLE in page.read_text(), f"{page} lacks the book title"
