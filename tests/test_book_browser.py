"""The built book in headless Chromium, offline: the title is there, every maths element is typeset by
the book's own MathJax, no raw LaTeX is left in the text, and the figures are files of the book.

Screenshots go to the test's tmp_path and, when INFERCAM_SCREENSHOTS names a folder (relative: to
the repository root), are copied there too. Chromium is required: `make browser` installs it, and
INFERCAM_SKIP_BROWSER=1 skips these tests instead.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from PIL import Image

from infercam.config import resolve_path
from infercam.notebooks import BOOK_DIR

TITLE = yaml.safe_load((BOOK_DIR / "_config.yml").read_text())["title"]  # test_book checks its value
CHAPTER = "notebooks/07_random_walk.html"  # maths in its prose, figures in its outputs
# page -> screenshot height: the chapter's is tall enough to show its first figures
PAGES = {"intro.html": 2000, CHAPTER: 10000}
TIMEOUT_S = 120  # one page takes a few seconds
# Text that MathJax would have replaced: $$, \( \[ delimiters and TeX commands such as \frac.
RAW_LATEX = re.compile(r"\$\$|\\[(\[]|\\[A-Za-z]+")

pytestmark = pytest.mark.skipif(os.environ.get("INFERCAM_SKIP_BROWSER") == "1", reason="INFERCAM_SKIP_BROWSER=1")


class RenderedPage(HTMLParser):
    """What a DOM dump shows: title, visible text (without code, which may quote TeX), image
    sources, and how many maths elements there are and how many MathJax typeset."""

    HIDDEN = {"script", "style", "pre", "code", "mjx-container", "math"}

    def __init__(self, dom: str):
        super().__init__()
        self.title, self.text, self.images = "", [], []
        self.maths = self.typeset = 0
        self._hidden = 0  # how deep inside hidden elements we are (a DOM dump closes every element)
        self._in_title = False
        self.feed(dom)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "title" and not self.title:  # the document's, not those of SVG icons further on
            self._in_title = True
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "mjx-container":
            self.typeset += 1
        if "math" in (attrs.get("class") or "").split():  # Sphinx's span.math / div.math
            self.maths += 1
        if tag in self.HIDDEN:
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag in self.HIDDEN:
            self._hidden -= 1

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._hidden:
            self.text.append(data)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path; asked for before built_book, so that a missing browser fails at once."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Chromium is not installed, and the browser tests need it: run `make browser` "
                    "(or `sudo apt-get install chromium`), or set INFERCAM_SKIP_BROWSER=1 to skip them.",
                    pytrace=False)
    return path


def open_page(chromium: str, page: Path, screenshot: Path, height: int, profile: Path) -> str:
    """Load ``page`` in headless Chromium, save a 1280 x ``height`` screenshot, return the DOM
    as it is once the page's scripts (MathJax) have run."""
    command = [
        chromium, "--headless", "--disable-gpu", "--hide-scrollbars",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",  # containers' /dev/shm is often too small for it
        f"--user-data-dir={profile}",  # never share (or lock) the user's own profile
        "--virtual-time-budget=10000",  # let MathJax finish before the DOM and the screenshot are taken
        f"--window-size=1280,{height}", f"--screenshot={screenshot}", "--dump-dom", page.as_uri(),
    ]
    # Its own session, so that a timeout kills Chromium's helper processes too, not only the first one.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        dom, errors = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"Chromium took more than {TIMEOUT_S} s on {page}", pytrace=False)
    assert process.returncode == 0 and screenshot.is_file(), \
        f"Chromium failed on {page} (exit {process.returncode}):\n{errors[-3000:]}"
    return dom


def keep_screenshot(screenshot: Path) -> None:
    print(f"screenshot: {screenshot}")
    if os.environ.get("INFERCAM_SCREENSHOTS"):
        folder = resolve_path(os.environ["INFERCAM_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        print(f"screenshot: {shutil.copy2(screenshot, folder)}")


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_offline(chromium, built_book, tmp_path, name):
    page = built_book / name
    screenshot = tmp_path / f"{page.stem}.png"
    rendered = RenderedPage(open_page(chromium, page, screenshot, PAGES[name], tmp_path / "chromium-profile"))
    keep_screenshot(screenshot)
    text = " ".join(rendered.text)

    assert TITLE in rendered.title and TITLE in text, f"{name} does not show the title {TITLE!r}"
    assert rendered.typeset == rendered.maths, \
        f"MathJax typeset {rendered.typeset} of the {rendered.maths} maths elements of {name}"
    raw = sorted(set(RAW_LATEX.findall(text)))
    assert not raw, f"{name} shows raw LaTeX: {raw}"
    for source in rendered.images:
        assert not re.match(r"[a-z]+:|//", source), f"{name} loads an image from elsewhere: {source}"
        image = page.parent / source
        assert image.is_file(), f"{name} shows {source}, which is missing"
        with Image.open(image) as opened:
            opened.verify()  # a file the browser can decode, not an empty or truncated one
    with Image.open(screenshot) as shot:
        colours = shot.convert("RGB").getcolors(maxcolors=1 << 24)
        assert shot.size == (1280, PAGES[name]) and len(colours) > 16, f"the screenshot of {name} is blank"
    if name == CHAPTER:  # the page chosen to have both
        assert rendered.maths and rendered.images, f"{name} has no maths or no figures any more: choose another chapter"
