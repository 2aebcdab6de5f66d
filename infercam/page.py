"""How a chapter looks, in JupyterLab and in the built book: one call sets the tables' and figures'
defaults, and small helpers show a function's own code and a saved file's place in the project.

A chapter's first code cell calls :func:`setup`. Figures are drawn at :data:`FIGURE_WIDTH` inches
(the book's text column at 1280 px) so that the book shows them at their own size; a figure of
several panels stacks them in rows instead of growing wider.
"""
from __future__ import annotations

import inspect
import os
import textwrap
from pathlib import Path

from infercam.config import PROJECT_ROOT

FIGURE_WIDTH = 7.0  # inches at FIGURE_DPI: about the book's text column at a 1280 px window
FIGURE_DPI = 100


def setup() -> None:
    """Readable defaults for a chapter: whole table cells (no "..."), rounded floats, integers
    shown as integers, figures sized to the book's column with legible fonts."""
    import matplotlib as mpl
    import pandas as pd
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.precision", 2)
    mpl.rcParams.update({
        "figure.figsize": (FIGURE_WIDTH, 3.4), "figure.dpi": FIGURE_DPI, "savefig.dpi": FIGURE_DPI,
        "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 9,
        "xtick.labelsize": 9, "ytick.labelsize": 9,
    })


def shown_path(path: str | os.PathLike) -> str:
    """A path as the reader's copy of the project would have it: relative to the repository root
    when inside it (never the build machine's absolute path)."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def source_markdown(*objects) -> str:
    """The source code of functions or classes as one Markdown code block, each headed by the
    module it lives in, so a chapter shows the code of the idea it teaches as the module runs it."""
    blocks = []
    for obj in objects:
        module = inspect.getmodule(obj).__name__
        blocks.append(f"# {module}.{obj.__qualname__}\n" + textwrap.dedent(inspect.getsource(obj)).rstrip())
    return "```python\n" + "\n\n\n".join(blocks) + "\n```"


def show_source(*objects) -> None:
    """Display :func:`source_markdown` of ``objects`` (in a cell whose input the book hides)."""
    from IPython.display import Markdown, display

    display(Markdown(source_markdown(*objects)))


def saved(path: str | os.PathLike) -> None:
    """Print where a chapter saved its numbers, relative to the repository root."""
    print(f"saved {shown_path(path)}")
