"""The built book in headless Chromium, offline, as a reader sees it: every page of the table of
contents at 1280 px and at 390 px (a phone). tests/book_checks.py measures, and a page fails with the
list of all its problems:

- the title is there, MathJax typesets every maths element, no raw LaTeX is left in the text;
- (a) nothing is wider than its column (tables, display maths, figures, code and outputs: neither
  the element nor the box that scrolls it), and the page does not scroll sideways;
- (b) no visible warning, traceback, build-machine path, issue number or progress bar;
- (c) every internal link reaches a page of the book (and its anchor), none points at an .ipynb
  except the download button; every image is a file of the book that the browser decodes;
- (d) no output box without text or image;
- (e) at 1280 px, figures in outputs are shown at >= 80% of the width they were made at;
- (f) every exercise is shown and every solution folded until its toggle is clicked, then shown
  (EXERCISE_PAGE must have at least one of each: the check cannot pass by finding none).

INFERCAM_BOOK_HTML names the HTML folder of an already built book to check (e.g. the cpu book,
book/_build/html); by default the smoke book that conftest's built_book builds. Screenshots of a few
pages at both widths go to the test's tmp_path and, when INFERCAM_SCREENSHOTS names a folder
(relative: to the repository root), are copied there too. Chromium is required: `make browser`
installs it, and INFERCAM_SKIP_BROWSER=1 skips these tests instead.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from book_checks import WIDTHS, open_page, problems, toc_pages
from infercam.config import resolve_path
from infercam.notebooks import BOOK_DIR

TITLE = yaml.safe_load((BOOK_DIR / "_config.yml").read_text())["title"]  # test_book checks its value
CHAPTER = "notebooks/07_random_walk.html"  # maths in its prose, figures in its outputs
EXERCISE_PAGE = "notebooks/02_split_unite.html"  # exercises with folded solutions
BOOK_HTML = os.environ.get("INFERCAM_BOOK_HTML")
# The pages: the table of contents of the book checked (a built book's sources are two folders up).
_SOURCE = resolve_path(BOOK_HTML).parent.parent if BOOK_HTML else BOOK_DIR
PAGES = toc_pages(_SOURCE if (_SOURCE / "_toc.yml").is_file() else BOOK_DIR)
SCREENSHOTS = {"intro.html", "notebooks/02_split_unite.html", CHAPTER, "notebooks/08_segmentation.html"}

pytestmark = pytest.mark.skipif(os.environ.get("INFERCAM_SKIP_BROWSER") == "1", reason="INFERCAM_SKIP_BROWSER=1")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path; asked for before the book, so that a missing browser fails at once."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Chromium is not installed, and the browser tests need it: run `make browser` "
                    "(or `sudo apt-get install chromium`), or set INFERCAM_SKIP_BROWSER=1 to skip them.",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def book_html(request) -> Path:
    """The HTML folder checked: INFERCAM_BOOK_HTML's, or the smoke book built for the session."""
    if BOOK_HTML:
        folder = resolve_path(BOOK_HTML)
        if not (folder / "intro.html").is_file():
            pytest.fail(f"INFERCAM_BOOK_HTML={BOOK_HTML} is not a built book's HTML folder (no intro.html)", pytrace=False)
        return folder
    return request.getfixturevalue("built_book")


@pytest.fixture(scope="session")
def anchors() -> dict:
    """Each linked page's ids, read once per session."""
    return {}


def keep_screenshot(screenshot: Path) -> None:
    print(f"screenshot: {screenshot}")
    if os.environ.get("INFERCAM_SCREENSHOTS"):
        folder = resolve_path(os.environ["INFERCAM_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        print(f"screenshot: {shutil.copy2(screenshot, folder)}")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", PAGES)
def test_page_reads_well(chromium, book_html, anchors, tmp_path, name, width):
    page = book_html / name
    assert page.is_file(), f"the table of contents lists {name}, which the build did not make"
    screenshot = tmp_path / f"{page.stem}-{width}.png" if name in SCREENSHOTS else None
    try:
        measured = open_page(chromium, page, width, tmp_path / "chromium-profile", screenshot)
    except (RuntimeError, TimeoutError) as error:  # Chromium failed or hung (its processes are killed)
        pytest.fail(str(error), pytrace=False)
    report = problems(measured, book_html, name, width, TITLE, anchors)
    if name == CHAPTER and not (measured["maths"] and measured["figures"]):  # the page chosen to have both
        report.add("test", f"{name} has no maths or no figures any more: choose another chapter for CHAPTER")
    # Catches solutions printed unfolded (the reader sees the answer before trying), or a toggle that
    # never opens them, on a page that really has exercises.
    if name == EXERCISE_PAGE and not (measured["exercises"] and measured["solutions"]):
        report.add("test", f"{name} has no exercise with a solution any more: choose another page for EXERCISE_PAGE")
    if screenshot is not None:
        keep_screenshot(screenshot)
        with Image.open(screenshot) as shot:
            colours = shot.convert("RGB").getcolors(maxcolors=1 << 24)
            if shot.size[0] != width or len(colours) <= 16:
                report.add("screenshot", f"the screenshot is blank or {shot.size[0]} px wide, not {width}")
    assert not report.count(), str(report)

