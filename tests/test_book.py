"""The book builds, warning-free, from the smoke-executed notebooks, lists every notebook, and serves its own MathJax."""
from __future__ import annotations

import re

import pytest
import yaml

from infercam.notebooks import BOOK_DIR, list_notebooks

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
def test_book_builds_without_warnings(built_book):
    assert "intro.html" in (built_book / "index.html").read_text()  # the redirect to the root page
    pages = [built_book / "intro.html", built_book / "data.html"] + [built_book / "notebooks" / f"{nb.stem}.html" for nb in NOTEBOOKS]
    for page in pages:
        assert page.is_file(), f"{page} was not built"
        assert TITLE in page.read_text(), f"{page} lacks the book title"


@needs_notebooks
def test_maths_uses_the_books_own_mathjax(built_book):
    # Sphinx's default is a CDN, which leaves offline readers with raw LaTeX.
    pages_with_maths = [page for page in built_book.rglob("*.html") if 'class="math' in page.read_text()]
    assert pages_with_maths, "no page has maths: nothing to check"
    for page in pages_with_maths:
        sources = re.findall(r'<script[^>]*\bsrc="([^"]*mathjax[^"]*)"', page.read_text(), flags=re.IGNORECASE)
        assert sources, f"{page} has maths but loads no MathJax"
        for source in sources:
            assert not re.match(r"[a-z]+:|//", source), f"{page} loads MathJax from {source}"
            assert (page.parent / source).resolve().is_file(), f"{page} loads MathJax from {source}, which is missing"
