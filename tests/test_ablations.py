"""The ablation batch on a throwaway notebook that writes made-up metrics (no model, no data): grid
checks, one run per configuration, failures named without losing the others, finished runs skipped,
and the collected table."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from infercam.ablations import GridError, load_grid, run_grid

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers, whatever the import mode
from fake_notebooks import write_fake_notebook  # noqa: E402

FAKE_RUN = '''
from infercam.runs import write_metrics
if fail:
    raise ValueError(f"{configuration} was told to fail")
write_metrics(work_dir, metrics_step, {"slug": configuration, "images": 3, "best_threshold": 0.2, "miou": miou,
                                       "seconds_per_image": seconds}, {})
'''


@pytest.fixture
def fake_notebook(tmp_path) -> Path:
    return write_fake_notebook(tmp_path / "fake_run.ipynb", 'work_dir = "unused"\nconfiguration = ""\nmetrics_step = ""\n'
                               'miou = 0.4\nseconds = 1.0\nfail = False', FAKE_RUN)


def write_grid(path: Path, configurations, **extra) -> Path:
    path.write_text(yaml.safe_dump({"description": "test grid", "configurations": configurations, **extra}))
    return path


GRID = [
    {"name": "baseline", "paper": "TABLE2/baseline"},
    {"name": "better", "paper": "TABLE2/both", "parameters": {"miou": 0.5, "seconds": 3.0}},
    {"name": "broken", "parameters": {"fail": True}},
]


def test_batch_runs_each_configuration_names_failures_and_builds_the_table(tmp_path, fake_notebook):
    grid = write_grid(tmp_path / "mini.yaml", GRID, reference="baseline")
    base = {"work_dir": str(tmp_path / "work"), "profile": "test"}
    result = run_grid(grid, base, output_dir=tmp_path / "executed", notebook=fake_notebook, progress=False)
    assert result.ran == ["baseline", "better"] and result.skipped == []
    assert list(result.failed) == ["broken"] and "broken was told to fail" in str(result.failed["broken"])
    assert (tmp_path / "executed" / "broken.ipynb").is_file()  # the failing run's traceback is kept
    # the kernels' standard error (e.g. ipykernel's warnings) goes to a file, not into a chapter running the batch
    assert (tmp_path / "executed" / "baseline.kernel.log").is_file()
    table = result.table
    assert list(table.index) == ["baseline", "better"]
    assert table.loc["better", "Δ vs baseline"] == pytest.approx(10.0)
    # no ratio of times written by different runs (a fresh clone showed 0.17x); the row's own time stays
    assert "× time" not in table and table.loc["better", "s / image"] == pytest.approx(3.0)
    assert table.loc["better", "paper Δ"] == pytest.approx(52.2 - 48.0)
    csv, markdown = result.table_files
    assert pd.read_csv(csv, index_col=0).loc["better", "mIoU (%)"] == pytest.approx(50.0)
    assert "| better" in markdown.read_text()

    # the same values, however they are given (a default spelt out, keys the notebook does not take): skipped
    same = {**base, "seconds": 1.0, "smoke": {"image_size": 128}}
    again = run_grid(grid, same, output_dir=tmp_path / "executed", notebook=fake_notebook, progress=False)
    assert again.skipped == ["baseline", "better"] and again.ran == [] and list(again.failed) == ["broken"]

    GRID[1]["parameters"]["miou"] = 0.6  # a changed configuration runs again; the others do not
    try:
        changed = run_grid(write_grid(grid, GRID, reference="baseline"), base, output_dir=tmp_path / "executed",
                           notebook=fake_notebook, only=["baseline", "better"], progress=False)
    finally:
        GRID[1]["parameters"]["miou"] = 0.5
    assert changed.ran == ["better"] and changed.skipped == ["baseline"]
    assert changed.table.loc["better", "mIoU (%)"] == pytest.approx(60.0)


@pytest.mark.parametrize("configurations, extra, message", [
    ([{"name": "a", "parameters": {"learning_rate": 1}}], {}, r"sets \['learning_rate'\], which fake_run.ipynb does not take"),
    ([{"name": "a"}, {"name": "a"}], {}, r"used twice: \['a'\]"),
    ([{"name": "a b"}], {}, "may hold only letters"),
    ([{"name": "a", "paper": "TABLE2/nothing"}], {}, "no paper number 'TABLE2/nothing'"),
    ([{"name": "a"}], {"reference": "b"}, "reference 'b' is not one of"),
    ([{"name": "a"}], {"parameters": {"epochs": 3}}, r"parameters \['epochs'\] are not parameters"),
    ([], {}, "no configurations"),
])
def test_bad_grids_are_refused_with_the_reason(tmp_path, fake_notebook, configurations, extra, message):
    with pytest.raises(GridError, match=message):
        load_grid(write_grid(tmp_path / "bad.yaml", configurations, **extra), fake_notebook)


def test_the_project_grid_is_valid():
    grid = load_grid()
    assert {"baseline", "split_unite", "iterative", "combined"} <= {c.name for c in grid.configurations}
    assert grid.reference == "baseline"


def test_the_table_has_interval_columns_from_the_runs_saved_confusions(tmp_path, fake_notebook):
    # Catches a table whose differences carry no interval (or a reversed one) although the runs
    # saved their per-image confusions, and rows on other images paired silently.
    import numpy as np

    from infercam.ablations import class_count_intervals, collect_table
    from infercam.bootstrap import ImageConfusions, truth_class_counts
    from infercam.cam_analysis import class_count_group
    from infercam.metrics import mean_iou
    from infercam.runs import write_confusions, write_metrics

    grid = load_grid(write_grid(tmp_path / "mini.yaml", GRID[:2], reference="baseline"), fake_notebook)
    names = tuple(f"img{i}" for i in range(20))
    base = np.random.default_rng(0).integers(0, 30, size=(20, 21, 21))
    better = base.copy()
    better[:, 1, 1] += 60  # more of class 1 right on every image: a gain whatever the resample
    for name, confusions in (("baseline", base), ("better", better)):
        step = f"ablation/mini/{name}"
        write_metrics(tmp_path, step, {"slug": name, "images": 20, "best_threshold": 0.2, "miou": mean_iou(confusions.sum(0)),
                                       "seconds_per_image": 1.0}, {})
        write_confusions(tmp_path, step, {name: ImageConfusions(names, confusions)})
    table = collect_table(grid, tmp_path)
    row = table.loc["better"]
    assert 0 < row["Δ vs baseline low"] <= row["Δ vs baseline"] <= row["Δ vs baseline high"]
    assert row["mIoU low"] <= row["mIoU high"]
    assert row["verdict"].startswith("gains") and pd.isna(table.loc["baseline", "verdict"])
    # the by-class-count table: every group of images present in the truth, each with its own interval
    by_group = class_count_intervals(grid, tmp_path)
    groups = truth_class_counts(ImageConfusions(names, base)).map(class_count_group)
    assert set(by_group.index.unique("classes in the image")) == set(groups) - {"0"}
    for group, images in groups.value_counts().items():
        assert (by_group.loc[group, "images"] == images).all()
        assert by_group.loc[(group, "better"), "Δ low"] > 0
    write_confusions(tmp_path, "ablation/mini/better", {"better": ImageConfusions(names[1:] + ("other",), better)})
    with pytest.raises(ValueError, match="'better' against 'baseline'.*different images"):
        collect_table(grid, tmp_path)


def test_the_shown_table_is_narrow_and_says_what_each_interval_says():
    from infercam.ablations import effects_view

    table = pd.DataFrame({"mIoU (%)": [40.0, 45.0, 39.5], "Δ vs baseline": [0.0, 5.0, -0.5],
                          "Δ vs baseline low": [0.0, 2.0, -1.5], "Δ vs baseline high": [0.0, 8.0, 0.4],
                          "paper (%)": [48.0, 52.2, None], "paper Δ": [0.0, 4.2, None]},
                         index=pd.Index(["baseline", "split_unite", "iterative_stop_2pct"], name="configuration"))
    view = effects_view(table, "baseline", paper_columns=True)
    assert list(view.columns) == ["mIoU (%)", "Δ − baseline", "95% interval", "says", "paper (%)", "paper Δ − baseline"]
    assert view.iloc[0].tolist()[1:4] == ["—", "—", "—"]  # the reference has no difference to itself
    assert view.iloc[1].tolist()[1:4] == ["+5.00", "+2.00 to +8.00", "gains"]
    assert view.iloc[2].tolist()[3:] == ["within noise", "—", "—"]
    assert "\u200b" in view.index[2]  # long names may wrap after their underscores
