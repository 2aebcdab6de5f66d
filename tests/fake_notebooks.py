"""Throwaway notebooks for the batch runners' tests: a parameters cell and a cell of code, no model, no data."""
from __future__ import annotations

from pathlib import Path

import nbformat


def write_fake_notebook(path: Path, parameters: str, code: str) -> Path:
    """A notebook at ``path`` whose tagged parameters cell is ``parameters`` and whose one other cell is ``code``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [cell, nbformat.v4.new_code_cell(code)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path
