"""One smoke-profile execution of the committed notebooks, shared by test_notebooks and test_book."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from infercam.config import PROJECT_ROOT
from infercam.notebooks import NotebookFailed, list_notebooks, run_notebooks

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
