"""What a reader of the built book sees, measured in headless Chromium: every problem of a page.

:func:`open_page` loads one page at one window width in its own Chromium process, driven through
the DevTools protocol over a pipe (``--remote-debugging-pipe``: the standard library is enough, and
nothing listens on a port), and returns what ``book_checks.js`` measured there; :func:`problems`
turns that into readable sentences, all of them, not only the first.

    python tests/book_checks.py book/_build/html            # every page of the toc, both widths
    python tests/book_checks.py /tmp/x/_build/html --pages notebooks/07_random_walk.html

prints the problems page by page (a Markdown list) and exits 1 when there are any.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

CHECKS_JS = (Path(__file__).with_name("book_checks.js")).read_text()
WIDTHS = (1280, 390)  # a laptop, and a phone
PHONE = 600  # narrower windows are emulated as a mobile device (the viewport meta tag applies)
VIEWPORT_HEIGHT = {1280: 900, 390: 844}
TIMEOUT_S = 120  # one page takes a few seconds
SCREENSHOT_HEIGHT = 12000  # at most this much of a page's top goes into a screenshot
FIGURE_SCALE = 0.8  # a figure shown narrower than this share of its size is too small to read

# Text that MathJax would have replaced: $$, \( \[ delimiters and TeX commands such as \frac.
RAW_LATEX = re.compile(r"\$\$|\\[(\[]|\\[A-Za-z]+")
WARNING = re.compile(r"Warning\b|WARNING|Traceback|DeprecationWarning|TqdmWarning|\[IPKernelApp\]")
# A build machine's paths; a command such as `.venv/bin/python` (relative to the repository) is fine.
ABSOLUTE_PATH = re.compile(r"/home/|/work/|/tmp/|/root/|/\.venv/|site-packages|\b[A-Z]:\\")
ISSUE = re.compile(r"\bissues? #?\d+", re.IGNORECASE)
PROGRESS_BAR = re.compile(r"\d+%\|[^|\n]{0,40}\|")  # tqdm's " 40%|████      | 4/10"


class RenderedPage(HTMLParser):
    """What a DOM dump shows: title, visible text (without code, which may quote TeX), image
    sources."""

    HIDDEN = {"script", "style", "pre", "code", "mjx-container", "math"}

    def __init__(self, dom: str):
        super().__init__()
        self.title, self.text, self.images = "", [], []
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


def toc_pages(book_source: Path) -> list[str]:
    """The HTML pages of the book's table of contents, in its order (relative to the HTML folder)."""
    toc = yaml.safe_load((book_source / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [f"{Path(name).with_suffix('')}.html" for name in files]


class DevTools:
    """Chromium's DevTools protocol over ``--remote-debugging-pipe``: commands on the browser's fd 3,
    answers and events on its fd 4, each a JSON message ended by a NUL byte."""

    def __init__(self, chromium: str, profile: Path, width: int, height: int, deadline: float):
        self.deadline, self._id, self._buffer, self.events = deadline, 0, b"", []
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def give_pipes():  # in the child, before exec: the two pipe ends become its fds 3 and 4
            read_end, write_end = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser))
            os.dup2(read_end, 3)  # dup2's copies are inherited; Python's own fds close at exec
            os.dup2(write_end, 4)
            os.close(read_end)
            os.close(write_end)

        command = [
            chromium, "--headless", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-dev-shm-usage",  # containers' /dev/shm is often too small for it
            f"--user-data-dir={profile}",  # never share (or lock) the user's own profile
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--allow-file-access-from-files",
            f"--window-size={width},{height}", "about:blank",
        ]
        # Its own session, so that a timeout kills Chromium's helper processes too, not only the first one.
        self._errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty browser never blocks on it
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=self._errors, start_new_session=True,
                                        preexec_fn=give_pipes, close_fds=False)
        os.close(to_browser)
        os.close(from_browser)
        self.session = None

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise ConnectionError(f"Chromium closed its DevTools pipe (exit {self.process.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"DevTools {method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, event: str) -> dict:
        while True:
            for index, seen in enumerate(self.events):
                if seen.get("method") == event:
                    return self.events.pop(index)
            self.events.append(self._receive())

    def evaluate(self, expression: str) -> object:
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"the page's JavaScript failed: {json.dumps(result['exceptionDetails'])[:2000]}")
        return result["result"].get("value")

    def close(self) -> str:
        """Stop Chromium (all its processes); its stderr. Closing again returns ""."""
        if self._errors.closed:
            return ""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        os.close(self._read)
        os.close(self._write)
        self._errors.seek(0)
        errors = self._errors.read().decode(errors="replace")
        self._errors.close()
        return errors


# Waits for MathJax 3 to have typeset the page (sphinx-mathjax-offline loads it deferred), for the
# fonts and for every image.
SETTLE_JS = """(async () => {
  for (let i = 0; i < 100 && window.MathJax && !(MathJax.startup && MathJax.startup.promise); i++)
    await new Promise((resolve) => setTimeout(resolve, 100));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  await Promise.all([...document.images].map((img) => img.complete ? null :
    new Promise((resolve) => { img.onload = img.onerror = resolve; })));
  return true;
})()"""


def open_page(chromium: str, page: Path, width: int, profile: Path, screenshot: Path | None = None) -> dict:
    """Load ``page`` at ``width`` px in a fresh headless Chromium; what book_checks.js measured.
    ``screenshot``: also save the page's top (up to SCREENSHOT_HEIGHT px) there as PNG."""
    height = VIEWPORT_HEIGHT.get(width, 900)
    browser = DevTools(chromium, profile, width, height, time.monotonic() + TIMEOUT_S)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        browser.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                            "mobile": width < PHONE})
        browser.send("Page.enable")
        browser.send("Page.navigate", {"url": page.as_uri()})
        browser.wait_for("Page.loadEventFired")
        browser.evaluate(SETTLE_JS)
        report = browser.evaluate(f"({CHECKS_JS})({json.dumps({'width': width})})")
        if screenshot is not None:
            full = browser.evaluate("document.documentElement.scrollHeight")
            shot = browser.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": min(full, SCREENSHOT_HEIGHT), "scale": 1}})
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return report
    except TimeoutError:
        browser.close()
        raise TimeoutError(f"Chromium took more than {TIMEOUT_S} s on {page} at {width} px") from None
    except (ConnectionError, RuntimeError) as error:
        raise RuntimeError(f"Chromium failed on {page} at {width} px: {error}\n{browser.close()[-3000:]}") from None
    finally:
        browser.close()


@dataclass
class PageReport:
    """All problems of one page at one width, grouped by check."""
    page: str
    width: int
    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, check: str, problem: str) -> None:
        self.problems.setdefault(check, []).append(problem)

    def count(self) -> int:
        return sum(map(len, self.problems.values()))

    def __str__(self) -> str:
        lines = [f"{self.page} at {self.width} px: {self.count()} problem(s)"]
        for check, found in self.problems.items():
            lines.append(f"  {check} ({len(found)}):")
            lines.extend(f"    - {problem}" for problem in found)
        return "\n".join(lines)


def _where(item: dict) -> str:
    """An element as the report names it: tag and classes, its code cell (counting the page's code
    cells from 1) and the start of its text."""
    cell = f"code cell {item['cell'] + 1}, " if item.get("cell", -1) >= 0 else ""
    return f"{item['tag']} ({cell}{item['text']!r})"


def _matches(pattern: re.Pattern, text: str, limit: int = 8) -> list[str]:
    found = []
    for match in pattern.finditer(text):
        start, end = max(match.start() - 40, 0), min(match.end() + 40, len(text))
        found.append(f"{match.group(0)!r} in {' '.join(text[start:end].split())!r}")
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])


def _anchors(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        cache[path] = set(re.findall(r"""\bid=["']([^"']+)["']""", path.read_text(errors="replace")))
    return cache[path]


def problems(report: dict, html_dir: Path, page: str, width: int, title: str | None = None,
             anchors: dict | None = None) -> PageReport:
    """Every problem that ``report`` (book_checks.js on ``page`` of the book in ``html_dir``) shows."""
    result = PageReport(page, width)
    anchors = {} if anchors is None else anchors
    page_path = (html_dir / page).resolve()
    html_root = html_dir.resolve()
    rendered = RenderedPage(report["html"])
    prose = " ".join(rendered.text)

    # What the book always checked: title, MathJax, no raw LaTeX, images of the book that decode.
    if title is not None and not (title in rendered.title and title in prose):
        result.add("title", f"the page does not show the title {title!r}")
    if report["typeset"] != report["maths"]:
        result.add("maths", f"MathJax typeset {report['typeset']} of the {report['maths']} maths elements")
    raw = sorted(set(RAW_LATEX.findall(prose)))
    if raw:
        result.add("maths", f"raw LaTeX in the text: {raw}")

    # (a) Overflow.
    if report["pageWidth"] > width + 1:
        culprits = "; ".join(f"{_where(item)} by {item['px']} px" for item in report["beyondWindow"])
        result.add("overflow", f"the page scrolls sideways: {report['pageWidth']} px wide in a {width} px window"
                               + (f"; beyond the window: {culprits}" if culprits else ""))
    for item in report["overflows"]:
        result.add("overflow", f"{_where(item)} is {item['px']} px wider than its column ({item['how']})")

    # (b) Visible text.
    outputs_and_prose = report["text"]
    for line in report["inputs"].splitlines():  # code may name a warning class; its outputs may not
        outputs_and_prose = outputs_and_prose.replace(line, "", 1) if line.strip() else outputs_and_prose
    for check, pattern, text in (("warning text", WARNING, outputs_and_prose),
                                 ("absolute path", ABSOLUTE_PATH, report["text"]),
                                 ("issue number", ISSUE, report["text"]),
                                 ("progress bar", PROGRESS_BAR, outputs_and_prose)):
        for found in _matches(pattern, text):
            result.add(check, found)

    # (c) Links and images.
    for link in report["links"]:
        url = urlsplit(link["url"])
        href = link["href"]
        if url.scheme != "file":
            continue  # http(s), mailto: not ours to resolve offline
        target = Path(unquote(url.path))
        is_download = "download" in (link["classes"] or "") or "/_sources/" in url.path
        if target.suffix == ".ipynb" and not is_download:
            result.add("links", f"link to a notebook file: {href!r} ({link['text']!r})")
        try:
            target.resolve().relative_to(html_root)
        except ValueError:
            result.add("links", f"link outside the book: {href!r} ({link['text']!r})")
            continue
        if not target.is_file():
            result.add("links", f"broken link: {href!r} ({link['text']!r}): no {target.relative_to(html_root)}")
        elif url.fragment and target.suffix == ".html":
            ids = set(report["ids"]) if target.resolve() == page_path else _anchors(target.resolve(), anchors)
            if unquote(url.fragment) not in ids:
                result.add("links", f"broken anchor: {href!r} ({link['text']!r}): no id {url.fragment!r} "
                                    f"in {target.relative_to(html_root)}")
    for image in report["images"]:
        source = image["src"] or ""
        if re.match(r"[a-z]+:|//", source) and not source.startswith("data:"):
            result.add("images", f"image loaded from elsewhere: {source}")
            continue
        if not source.startswith("data:"):
            path = page_path.parent / unquote(source.split("#")[0])
            if not path.is_file():
                result.add("images", f"missing image: {source}")
                continue
            try:
                from PIL import Image

                with Image.open(path) as opened:
                    opened.verify()  # a file the browser can decode, not an empty or truncated one
            except Exception as error:  # noqa: BLE001 - any decoding failure is the finding
                result.add("images", f"image that does not decode: {source} ({error})")
                continue
        if not image["decoded"]:
            result.add("images", f"image the browser could not show: {source[:80]}")

    # (d) Empty output boxes.
    for item in report["empty"]:
        result.add("empty output", f"{_where(item)} shows nothing")

    # (e) Figures at their size (the phone has only the overflow rule).
    if width >= 1000:
        for figure in report["figures"]:
            if figure["intended"] > figure["column"] and figure["rendered"] < FIGURE_SCALE * figure["intended"]:
                result.add("figure size", f"{figure['src']} (code cell {figure['cell'] + 1}) is shown at "
                                          f"{figure['rendered']} px of its {figure['intended']} px "
                                          f"({figure['rendered'] / figure['intended']:.0%}); the column is "
                                          f"{figure['column']} px")

    # (f) Exercises shown; their solutions folded until the reader clicks the toggle, then shown.
    for exercise in report["exercises"]:
        if not exercise["shown"]:
            result.add("exercises", f"exercise {exercise['id']!r} ({exercise['title']!r}) is hidden")
    for solution in report["solutions"]:
        where = f"solution {solution['id']!r} ({solution['title']!r})"
        if not solution["foldedAtFirst"]:
            result.add("exercises", f"{where} is unfolded before any click: the reader sees the answer first")
        if not solution["toggle"]:
            result.add("exercises", f"{where} has no toggle button in its title")
        elif not solution["shownAfterClick"]:
            result.add("exercises", f"{where} stays hidden after its toggle is clicked")
    return result


def check_page(chromium: str, html_dir: Path, page: str, width: int, profile: Path, title: str | None = None,
               screenshot: Path | None = None, anchors: dict | None = None) -> PageReport:
    report = open_page(chromium, html_dir / page, width, profile, screenshot)
    return problems(report, html_dir, page, width, title, anchors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", type=Path, help="the built book's HTML folder (…/_build/html)")
    parser.add_argument("--book-source", type=Path, help="the folder with _toc.yml (default: html_dir/../..)")
    parser.add_argument("--pages", nargs="+", help="pages relative to html_dir (default: the toc's)")
    parser.add_argument("--widths", nargs="+", type=int, default=list(WIDTHS))
    parser.add_argument("--chromium", default="chromium")
    parser.add_argument("--json", type=Path, help="also write the problems as JSON here")
    args = parser.parse_args(argv)
    args.html_dir = args.html_dir.resolve()  # Chromium opens file URIs, which must be absolute
    source = args.book_source or args.html_dir.parent.parent
    pages = args.pages or toc_pages(source)
    title = yaml.safe_load((source / "_config.yml").read_text()).get("title") if (source / "_config.yml").is_file() else None
    anchors: dict = {}
    found = []
    with tempfile.TemporaryDirectory() as scratch:
        for page in pages:
            for width in args.widths:
                try:
                    report = check_page(args.chromium, args.html_dir, page, width, Path(scratch) / "profile", title,
                                        anchors=anchors)
                except (RuntimeError, TimeoutError) as error:
                    report = PageReport(page, width, {"browser": [str(error)]})
                found.append(report)
                print(report, flush=True)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in found], indent=1))
    return 1 if any(r.count() for r in found) else 0


if __name__ == "__main__":
    sys.exit(main())
