"""The kernels that execute notebooks for the book: no progress bars, no warning about them.

Catches: every chapter of the built book showed tqdm bars frozen at their last state, a
"TqdmWarning: IProgress not found" naming the build machine's path to its virtual environment
(timm imports huggingface_hub, which imports tqdm.auto), and the ablation chapter, which runs
notebooks itself, showed each inner kernel's "[IPKernelApp] WARNING | Kernel is running over TCP".
"""
from __future__ import annotations

import os

import nbformat

from infercam.notebooks import KERNEL_ENVIRONMENT, execute_notebook, kernel_environment

PROBE = """\
import os
from tqdm import tqdm
import infercam.models.efficientnet  # imports timm, which imported tqdm.auto with a warning
from infercam.config import no_bar
print("TQDM_DISABLE", os.environ.get("TQDM_DISABLE"), "bar disabled", tqdm(range(3)).disable)
# a step asked for its bar (progress=True), as every chapter's steps are: tqdm's explicit
# disable=False would override TQDM_DISABLE
print("step's bar disabled", tqdm(range(3), disable=no_bar(True)).disable)
"""


def test_kernel_environment_is_restored(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "previous")
    with kernel_environment({"TQDM_DISABLE": "1", "INFERCAM_PROBE_UNSET": "x"}):
        assert os.environ["TQDM_DISABLE"] == "1" and os.environ["INFERCAM_PROBE_UNSET"] == "x"
    assert os.environ["TQDM_DISABLE"] == "previous" and "INFERCAM_PROBE_UNSET" not in os.environ


def test_notebook_kernels_show_no_progress_bars_nor_tqdm_warnings(tmp_path, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    notebook, executed = tmp_path / "probe.ipynb", tmp_path / "probe-executed.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)]), notebook)

    assert execute_notebook(notebook, executed, {}, progress_bar=False) is None
    outputs = nbformat.read(executed, as_version=4).cells[0].outputs
    text = "".join(output.get("text", "") for output in outputs)
    assert f"TQDM_DISABLE {KERNEL_ENVIRONMENT['TQDM_DISABLE']} bar disabled True" in text, text
    assert "step's bar disabled True" in text, text
    assert "Warning" not in text and "IProgress" not in text, text
    assert "TQDM_DISABLE" not in os.environ  # a person's own runs keep their bars


NESTED = """\
from pathlib import Path
from infercam.notebooks import execute_notebook
import sys, time
print("inner run failed:", execute_notebook(Path({inner!r}), Path({output!r}), {{}}, progress_bar=False))
time.sleep(2)  # what the inner kernel wrote to this kernel's stderr arrives asynchronously
sys.stderr.flush()
"""


def test_a_notebook_that_runs_notebooks_shows_no_kernel_log(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # ipykernel captures its process's stderr only outside pytest
    inner, outer = tmp_path / "inner.ipynb", tmp_path / "outer.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('inner ran')")]), inner)
    source = NESTED.format(inner=str(inner), output=str(tmp_path / "inner-executed.ipynb"))
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), outer)

    assert execute_notebook(outer, tmp_path / "outer-executed.ipynb", {}, progress_bar=False) is None
    outputs = nbformat.read(tmp_path / "outer-executed.ipynb", as_version=4).cells[0].outputs
    text = "".join(output.get("text", "") for output in outputs)
    assert "inner run failed: None" in text and "IPKernelApp" not in text and "WARNING" not in text, text
