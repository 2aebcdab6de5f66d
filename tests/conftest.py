"""One smoke-profile execution of the committed notebooks, shared by test_notebooks and test_book, and
one book built from it, shared by test_book and test_book_browser."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infercam.config import PROJECT_ROOT
from infercam.notebooks import BOOK_DIR, NotebookFailed, list_notebooks, run_notebooks, stage_book

SMOKE = "smoke"  # CI or not, the notebook tests use the smoke profile


class SmokeRun:
    """Executes the notebooks in order, each at most once per session, as tests ask for them:
    a notebook may read what the ones before it wrote, so asking for one runs its predecessors."""

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir
        self.started: dict[str, float] = {}  # stem -> wall-clock start, to tell fresh metrics from stale
        self._outcomes: dict[str, Path | NotebookFailed] = {}
        self._data_ready = False

    def _prepare_data(self) -> None:
        # The same command `make minivoc PROFILE=smoke` runs; it returns at once when the data is complete.
        if not self._data_ready:
            subprocess.run([sys.executable, "data_scripts/make_minivoc.py", "--profile", SMOKE],
                           cwd=PROJECT_ROOT, check=True)
            self._data_ready = True

    def executed(self, stem: str) -> Path:
        """The executed copy of notebook ``stem``; fails the calling test if it or one before it failed."""
        for notebook in list_notebooks():
            if notebook.stem not in self._outcomes:
                self._prepare_data()
                self.started[notebook.stem] = time.time()
                try:
                    self._outcomes[notebook.stem] = run_notebooks(SMOKE, [notebook.stem], self.output_dir)[0]
                except NotebookFailed as failure:
                    self._outcomes[notebook.stem] = failure
            outcome = self._outcomes[notebook.stem]
            if isinstance(outcome, NotebookFailed):
                pytest.fail(str(outcome) if notebook.stem == stem else f"{stem} comes after {notebook.stem}, which failed",
                            pytrace=False)
            if notebook.stem == stem:
                return outcome
        raise KeyError(f"no notebook {stem!r}")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    return SmokeRun(tmp_path_factory.mktemp("executed-smoke"))


@pytest.fixture(scope="session")
def built_book(smoke_run, tmp_path_factory) -> Path:
    """The HTML folder of the book built (jupyter-book -W) from every smoke-executed notebook."""
    for notebook in list_notebooks():
        smoke_run.executed(notebook.stem)
    # A copy of the book's sources, so that the build never touches book/_build or book/notebooks.
    book = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(BOOK_DIR, book, ignore=shutil.ignore_patterns("_build", "notebooks"))
    # beside it, as in the repository: pages include measured tables from measurements/ by a relative path
    shutil.copytree(PROJECT_ROOT / "measurements", book.parent / "measurements")
    stage_book(smoke_run.output_dir, book)

    build = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(book), "--all", "-W", "--keep-going"],
                           capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"jupyter-book build failed:\n{build.stdout[-6000:]}\n{build.stderr[-6000:]}", pytrace=False)
    return book / "_build" / "html"
