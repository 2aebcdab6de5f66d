"""The committed notebooks: clean, parameterised, and executing with the smoke profile; and the runner."""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from infercam.config import PROFILES_DIR, ProfileValueError, load_profile
from infercam.notebooks import (NOTEBOOKS_DIR, NotebookFailed, list_notebooks, notebook_defaults, notebook_parameters,
                                notebook_times, run_notebooks, stage_book)
from infercam.runs import metrics_path

PARAMETERS = {"profile", "data_root", "work_dir", "device", "seed"}
STEMS = [nb.stem for nb in list_notebooks()] or [
    pytest.param(None, marks=pytest.mark.skip(reason="no notebooks in notebooks/ yet"))]


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_executes_and_writes_metrics(stem, smoke_run):
    executed = smoke_run.executed(stem)
    assert executed.is_file()
    metrics = metrics_path(load_profile("smoke")["work_dir"], stem)
    assert metrics.is_file(), f"{stem} wrote no {metrics}"
    assert metrics.stat().st_mtime >= smoke_run.started[stem] - 1, f"{metrics} is left over from an earlier run"
    payload = json.loads(metrics.read_text())
    assert payload["step"] == stem  # written by infercam.runs.write_metrics
    check_metric_values(stem, payload["metrics"])


# --- the values in the smoke run's metrics files ---------------------------------------------------
# Ranges and agreements that a broken step would break (a metrics file that merely exists proves
# little): every mIoU summary agrees with its own per-class IoUs and sweep, the images evaluated are
# the split's, and the baseline measured again in a later notebook equals notebook 01's.

def split_size(split: str) -> int:
    from infercam.datasets import VOCSegmentation

    return len(VOCSegmentation(load_profile("smoke")["data_root"], split).names)


def smoke_metrics(step: str) -> dict:
    return json.loads(metrics_path(load_profile("smoke")["work_dir"], step).read_text())["metrics"]


def percent_miou(step: str, maps: str) -> float:
    """The mIoU (%) of ``step``'s CAM summary ``maps`` (e.g. notebook 01's "val", 04's "ours/val")."""
    return 100 * smoke_metrics(step)["cams"][maps]["miou"]


def miou_summaries(node, path=()):
    """(path, summary) of every dict that holds a "miou" and its "per_class_iou"."""
    if isinstance(node, dict):
        if "miou" in node and "per_class_iou" in node:
            yield path, node
        for key, value in node.items():
            yield from miou_summaries(value, (*path, key))


def check_miou_summary(path, summary):
    ious = np.array([np.nan if value is None else value for value in summary["per_class_iou"].values()], float)
    assert len(ious) == 21 and np.all((ious[~np.isnan(ious)] >= 0) & (ious[~np.isnan(ious)] <= 1)), path
    assert 0 <= summary["miou"] <= 1 and summary["miou"] == pytest.approx(np.nanmean(ious), abs=1e-9), path
    assert summary["images"] >= 1, path
    if "miou_at" in summary:  # the best threshold's mIoU is the sweep's maximum
        assert summary["miou"] >= max(summary["miou_at"].values()) - 1e-9, path


def check_metric_values(stem: str, metrics: dict) -> None:
    for path, summary in miou_summaries(metrics):
        check_miou_summary(path, summary)
    STEP_CHECKS.get(stem, lambda metrics: None)(metrics)


def check_minivoc(metrics):
    for split, count in metrics["splits"].items():
        assert count == split_size(split)
        assert sum(metrics["class_count_share"][split].values()) == pytest.approx(1)
        assert 0 < metrics["foreground_share_mean"][split] + metrics["void_share_mean"][split] < 1


def check_baseline_cam(metrics):
    for split in ("train", "val"):
        assert metrics["cams"][split]["images"] == metrics["cam_inference"][split]["images"]
    assert metrics["cams"]["val"]["images"] == split_size("val")
    average_precisions = np.array([np.nan if ap is None else ap for ap in metrics["classifier"]["val_ap"].values()], float)
    assert metrics["classifier"]["val_map"] == pytest.approx(np.nanmean(average_precisions))


def check_same_baseline(metrics):
    """A later CAM notebook's baseline on val: notebook 01's maps, so notebook 01's numbers."""
    assert metrics["cams"]["baseline"]["miou"] == pytest.approx(smoke_metrics("01_baseline_cam")["cams"]["val"]["miou"])
    assert {summary["images"] for summary in metrics["cams"].values()} == {metrics["images"]}


def check_iterative(metrics):
    check_same_baseline(metrics)
    assert 1 <= metrics["passes_per_image_mean"] <= metrics["settings"]["max_passes"]


def check_combined(metrics):
    baseline = smoke_metrics("01_baseline_cam")["cams"]
    for split in ("train", "val"):
        assert metrics["cams"][f"baseline/{split}"]["miou"] == pytest.approx(baseline[split]["miou"])
        assert metrics["cams"][f"ours/{split}"]["images"] == metrics["images"][split] == baseline[split]["images"]


def check_ablations(metrics):
    rows = metrics["table"]
    assert rows["baseline"]["mIoU (%)"] == pytest.approx(percent_miou("01_baseline_cam", "val"))
    for name, row in rows.items():
        assert row["images"] == split_size(metrics["parameters"]["evaluation_split"]), name
        assert row["mIoU low"] <= row["mIoU (%)"] <= row["mIoU high"], name
        assert row["Δ vs baseline"] == pytest.approx(row["mIoU (%)"] - rows["baseline"]["mIoU (%)"], abs=1e-9), name
        assert row["Δ vs baseline low"] <= row["Δ vs baseline"] <= row["Δ vs baseline high"], name


def check_split_retraining(metrics):
    # the images measured, not the parameter asked for (the smoke splits hold fewer)
    asked = {**notebook_defaults(NOTEBOOKS_DIR / "06_split_retraining.ipynb"), **load_profile("smoke")}
    assert metrics["images"] == {split: min(asked[f"num_{split}_images"] or split_size(split), split_size(split))
                                 for split in ("train", "val")}
    rows = metrics["table4"]
    for split in ("train", "val"):  # the baseline classifier's rows: notebooks 01 and 04's maps
        assert rows["baseline classifier: baseline CAM"][f"{split} mIoU (%)"] == pytest.approx(percent_miou("01_baseline_cam", split))
        assert rows["baseline classifier: ours"][f"{split} mIoU (%)"] == pytest.approx(percent_miou("04_combined", f"ours/{split}"))
        for name, row in rows.items():
            assert row[f"Δ {split} vs ours low"] <= row[f"Δ {split} vs ours"] <= row[f"Δ {split} vs ours high"], name


def check_random_walk(metrics):
    assert sum(metrics["affinity_label_shares"].values()) == pytest.approx(1)
    assert metrics["images"]["evaluated"] == split_size("train")
    rows = metrics["table1_rw"]
    assert rows["baseline"]["CAM (best t)"] == pytest.approx(percent_miou("01_baseline_cam", "train"))
    assert rows["ours"]["CAM (best t)"] == pytest.approx(percent_miou("04_combined", "ours/train"))
    for column in ("CAM (best t)", "CAM + RW", "CAM + RW + CRF"):
        assert rows["ours − baseline"][column] == pytest.approx(rows["ours"][column] - rows["baseline"][column], abs=1e-9)
    assert all(0 <= row["CAM + RW"] <= 100 for name, row in rows.items() if name != "ours − baseline")


def check_segmentation(metrics):
    walks = smoke_metrics("07_random_walk")["table1_rw"]  # the pseudo labels are notebook 07's walks
    assert metrics["pseudo_labels"]["step"] == "rw"
    sources = dict(metrics["pseudo_label_sources"])
    # the upper bound learns from the annotations themselves (catches it reading a walk instead)
    assert sources.pop("ground_truth")["train_miou"] == pytest.approx(100)
    for method, source in sources.items():
        assert source["train_miou"] == pytest.approx(walks[method]["CAM + RW"])
    baseline = metrics["pseudo_label_sources"][metrics["pseudo_labels"]["method"]]
    assert [metrics["table5"]["none"][step] for step in ("no CRF", "CRF")] == \
        pytest.approx([baseline[step] for step in ("no CRF", "CRF")], rel=1e-12, abs=0)  # the same DeepLab: the same
    # number, unrounded (rounded to 2 decimals, 50.0536 showed as 50.0 in one paragraph and 50.1 in the next)
    assert metrics["images"]["train"] == split_size("train") and 0 < metrics["images"]["val"] <= split_size("val")
    assert {run["images"] for run in metrics["training"].values()} == {metrics["images"]["train"]}
    assert 0 <= metrics["saliency"]["tau_mean"] <= 1
    rates = np.array(list(metrics["saliency"]["conflict_rates"].values()), float)
    assert np.all((rates[~np.isnan(rates)] >= 0) & (rates[~np.isnan(rates)] <= 1))


def check_results(metrics):
    # Catches a later cell reusing the name of the shown profiles (the seed cell's runs string made
    # "shown" a list of characters once a seed table was displayed).
    assert set(metrics["shown"]) <= set(metrics["profiles"]), metrics["shown"]


def check_findings(metrics):
    # Catches the front page disagreeing with the chapters: each finding is the results chapter's
    # difference for the same table, row and measure, and its outcome is what its interval says.
    from infercam.findings import outcome

    tables = smoke_metrics("10_results")["tables"]
    assert metrics["findings"], "the smoke run measured no effect of the paper: the front page would be empty"
    for finding in metrics["findings"]:
        cell = tables[finding["table"]]["rows"][finding["row"]][finding["measure"]]
        assert finding["here"] == pytest.approx(cell["smoke"]), finding
        assert finding["paper"] == pytest.approx(cell["paper (reported)"]), finding
        assert finding["outcome"] == outcome(finding["paper"], finding["here"], finding["low"], finding["high"])
    assert sum(metrics["outcomes"].values()) == len(metrics["findings"])


STEP_CHECKS = {"00_minivoc": check_minivoc, "01_baseline_cam": check_baseline_cam, "02_split_unite": check_same_baseline,
               "03_iterative": check_iterative, "04_combined": check_combined,
               "05_ablations": check_ablations, "06_split_retraining": check_split_retraining,
               "07_random_walk": check_random_walk, "08_segmentation": check_segmentation,
               "10_results": check_results, "12_findings": check_findings}


@pytest.mark.parametrize("stem", STEMS + ["ablation/cam_method"])  # + the notebook the ablation batch runs
def test_committed_notebook_is_clean_and_parameterised(stem):
    notebook = nbformat.read(NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"code cells {dirty} have outputs or execution counts: commit notebooks without outputs"
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells are tagged 'parameters'; papermill needs exactly one"
    assert not any("injected-parameters" in cell.metadata.get("tags", []) for cell in notebook.cells)
    assigned = {target.id for node in ast.parse(tagged[0].source).body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Name)}
    assert PARAMETERS <= assigned, f"the parameters cell does not set {sorted(PARAMETERS - assigned)}"


# every profile in profiles/ (minivoc.yaml holds data settings, not a profile): a new one is checked without a list to update
@pytest.mark.parametrize("profile", sorted(path.stem for path in PROFILES_DIR.glob("*.yaml") if path.stem != "minivoc"))
def test_every_profile_key_is_a_parameter_of_some_notebook(profile):
    # the runner passes a notebook only the keys it declares, so a misspelt key would be ignored silently
    declared = set().union(*(notebook_defaults(nb) for nb in [*list_notebooks(), NOTEBOOKS_DIR / "ablation" / "cam_method.ipynb"]))
    assert not set(load_profile(profile)) - declared, f"profiles/{profile}.yaml sets parameters no notebook declares"


@pytest.mark.parametrize("profile", sorted(path.stem for path in PROFILES_DIR.glob("*.yaml") if path.stem != "minivoc"))
def test_every_profile_gives_each_notebook_a_backbone_and_frozen_stages_that_fit(profile):
    # the paper profile (psa's ResNet-38) once inherited 06's frozen_stages = 3, and the rehearsal failed in 06
    for notebook in [*list_notebooks(), NOTEBOOKS_DIR / "ablation" / "cam_method.ipynb"]:
        notebook_parameters(notebook, load_profile(profile))


def test_frozen_stages_for_a_backbone_without_stages_is_refused_before_any_notebook_runs():
    with pytest.raises(ProfileValueError, match=r"frozen_stages=3 in 06_split_retraining.ipynb, but backbone 'resnet38d'.*"
                                                r"set frozen_stages: 0"):
        notebook_parameters(NOTEBOOKS_DIR / "06_split_retraining.ipynb", {"backbone": "resnet38d"})


# --- the runner itself, on throwaway notebooks -----------------------------------------------

PARAMETERS_CELL = 'profile = "cpu"\ndata_root = "unused"\nwork_dir = "unused"\ndevice = "auto"\nseed = 0'


def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook with a markdown title, the parameters cell, then one code cell per source."""
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(PARAMETERS_CELL)
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), parameters,
                      *(nbformat.v4.new_code_cell(source) for source in sources)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def record_interpreter(path: Path) -> str:
    return f"import sys, pathlib\npathlib.Path({str(path)!r}).write_text(sys.executable)"


def test_failure_names_notebook_cell_and_exception_and_keeps_earlier_ones(tmp_path):
    notebooks, output = tmp_path / "notebooks", tmp_path / "executed"
    write_notebook(notebooks / "00_ok.ipynb", "x = 1")
    write_notebook(notebooks / "01_fail.ipynb", "x = 1", "y = x / 0\nprint(y)", "print('after')")
    write_notebook(notebooks / "02_never.ipynb", "x = 1")

    with pytest.raises(NotebookFailed) as caught:
        run_notebooks("smoke", output_dir=output, notebooks_dir=notebooks)

    message = str(caught.value)
    assert "01_fail.ipynb" in message
    assert "cell 3 " in message  # index in the committed notebook, not in papermill's copy
    assert "y = x / 0" in message
    assert "ZeroDivisionError: division by zero" in message
    assert (output / "00_ok.ipynb").is_file() and (output / "01_fail.ipynb").is_file()
    assert not (output / "02_never.ipynb").exists()
    timings = json.loads((output / "timings.json").read_text())
    assert {k: v["status"] for k, v in timings["notebooks"].items()} == {"00_ok": "ok", "01_fail": "failed"}
    assert timings["profile"] == "smoke"
    # A failed notebook never reaches the book.
    with pytest.raises(FileNotFoundError, match="01_fail"):
        stage_book(output, tmp_path / "book", notebooks)


def test_a_notebook_gets_only_the_profile_values_it_declares(tmp_path):
    write_notebook(tmp_path / "notebooks" / "00_params.ipynb", "assert 'epochs' not in globals()")
    executed, = run_notebooks("smoke", output_dir=tmp_path / "executed", notebooks_dir=tmp_path / "notebooks")
    injected = [c.source for c in nbformat.read(executed, as_version=4).cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'profile = "smoke"' in injected[0] and "epochs" not in injected[0]


def test_kernel_is_this_interpreter_even_with_a_foreign_python3_kernelspec(tmp_path, monkeypatch):
    # A "python3" kernelspec that comes first on the Jupyter path and points elsewhere
    # (as another environment or ~/.local/share/jupyter can have) must not be used.
    foreign = tmp_path / "jupyter" / "kernels" / "python3"
    foreign.mkdir(parents=True)
    (foreign / "kernel.json").write_text(json.dumps({
        "argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "foreign", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    seen = tmp_path / "interpreter.txt"
    write_notebook(tmp_path / "notebooks" / "00_which.ipynb", record_interpreter(seen))

    executed = run_notebooks("smoke", output_dir=tmp_path / "executed", notebooks_dir=tmp_path / "notebooks")

    assert [p.name for p in executed] == ["00_which.ipynb"]
    assert seen.read_text() == sys.executable


def test_unknown_notebook_name_lists_the_known_ones(tmp_path):
    write_notebook(tmp_path / "00_a.ipynb", "x = 1")
    assert list_notebooks(tmp_path, ["00_a.ipynb"]) == [tmp_path / "00_a.ipynb"]
    with pytest.raises(FileNotFoundError, match=r"\['00_a'\]"):
        list_notebooks(tmp_path, ["01_missing"])


def collapsed(tmp_path, outputs) -> list[tuple[str, str]]:
    """(stream, text) of a one-cell notebook's outputs after :func:`collapse_streams`."""
    import nbformat

    from infercam.notebooks import collapse_streams

    path = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name=name, text=text) for name, text in outputs])]), path)
    collapse_streams(path)
    return [(o.name, o.text) for o in nbformat.read(path, as_version=4).cells[0].outputs]


def test_progress_bars_keep_their_last_state_only(tmp_path):
    from infercam.notebooks import terminal_text

    assert terminal_text("a:  0%|\ra: 50%|\ra:100%|\ndone\n") == "a:100%|\ndone\n"
    assert terminal_text("bar 10%\r") == "bar 10%"  # a line ended by \r keeps what it showed
    assert collapsed(tmp_path, [("stderr", "p:  0%|"), ("stderr", "\rp:100%|\n"), ("stdout", "result\n")]) == \
        [("stderr", "p:100%|\n"), ("stdout", "result\n")]


def test_streams_left_blank_are_dropped(tmp_path):
    # Catches: an empty output box in the book where a bar erased itself (leave=False: only "\r"s).
    assert collapsed(tmp_path, [("stderr", "epoch:  50%|\r"), ("stderr", "\r        \r"), ("stdout", "result\n")]) == \
        [("stdout", "result\n")]


def test_notebook_times_reads_the_runners_timings(tmp_path):
    assert notebook_times(tmp_path).empty  # nothing ran yet
    (tmp_path / "timings.json").write_text(json.dumps({"notebooks": {
        "01_b": {"seconds": 90.0, "peak_memory_gb": 1.25, "status": "ok", "finished": "2026-11-30T14:00:00+00:00"},
        "00_a": {"seconds": 30.0, "status": "failed", "finished": "2026-11-30T13:58:00+00:00"}}}))
    times = notebook_times(tmp_path)
    assert list(times.index) == ["00_a", "01_b"]
    assert times.loc["01_b", "minutes"] == 1.5 and times.loc["00_a", "status"] == "failed"
    assert times.loc["01_b", "peak_memory_gb"] == 1.25 and pd.isna(times.loc["00_a", "peak_memory_gb"])  # recorded before it was measured


def test_peak_memory_counts_the_childrens_memory_not_the_runners():
    # Catches a chapter's peak read from the runner process (which holds no chapter's tensors) or
    # from a child after it ended: a child holding 300 MB for a moment must show as >= 0.25 GB.
    import subprocess

    from infercam.notebooks import PeakMemory

    holder = "import time; block = bytearray(300 * 2**20); time.sleep(1.0)"
    with PeakMemory(interval=0.05) as memory:
        subprocess.run([sys.executable, "-c", holder], check=True)
    assert memory.peak_gb >= 0.25, memory.peak_gb
    # a runner without children, itself holding 300 MB: nothing of the runner's own is counted (in a
    # process of its own, since this test session's process has children of its own)
    runner = ("import time; from infercam.notebooks import PeakMemory; block = bytearray(300 * 2**20)\n"
              "with PeakMemory(interval=0.05) as idle: time.sleep(0.3)\nprint(idle.peak_gb)")
    said = subprocess.run([sys.executable, "-c", runner], check=True, capture_output=True, text=True).stdout
    assert float(said) == 0, said


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PSS is read from Linux's smaps")
def test_peak_memory_counts_pages_that_forked_workers_share_once():
    # Catches the peak summed as each child's RSS: a kernel holding 400 MB that forks three workers
    # (as a DataLoader does) showed as 1.6 GB, though the workers only share the kernel's pages.
    import subprocess

    from infercam.notebooks import PeakMemory

    kernel = ("import os, time\nblock = bytearray(os.urandom(400 * 2**20))  # touched: resident\n"
              "workers = []\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n        time.sleep(1.5)\n"
              "        os._exit(0)\n    workers.append(pid)\nfor pid in workers:\n    os.waitpid(pid, 0)\n")
    with PeakMemory(interval=0.05) as memory:
        subprocess.run([sys.executable, "-c", kernel], check=True)
    assert 0.38 <= memory.peak_gb < 0.8, memory.peak_gb  # the 400 MB once, not four times


def test_a_dead_kernel_is_a_named_failure_not_a_hang(tmp_path):
    # Catches the kernel-died path (no cell error from papermill) escaping as a raw exception, or
    # recorded as "ok" in the timings.
    notebooks, output = tmp_path / "notebooks", tmp_path / "executed"
    write_notebook(notebooks / "00_dies.ipynb", "import os\nos._exit(3)")
    with pytest.raises(NotebookFailed) as caught:
        run_notebooks("smoke", output_dir=output, notebooks_dir=notebooks)
    message = str(caught.value)
    assert "00_dies.ipynb failed at" in message and "DeadKernelError" in message
    assert json.loads((output / "timings.json").read_text())["notebooks"]["00_dies"]["status"] == "failed"


def test_a_failure_before_the_parameters_cell_keeps_its_cell_number(tmp_path):
    # Catches the injected-parameters shift applied to cells above the parameters cell.
    notebook = write_notebook(tmp_path / "notebooks" / "00_early.ipynb", "x = 1")
    cells = nbformat.read(notebook, as_version=4)
    cells.cells.insert(1, nbformat.v4.new_code_cell("import sys\nraise RuntimeError('before the parameters')"))
    nbformat.write(cells, notebook)  # markdown 0, failing cell 1, parameters 2, code 3
    with pytest.raises(NotebookFailed) as caught:
        run_notebooks("smoke", output_dir=tmp_path / "executed", notebooks_dir=tmp_path / "notebooks")
    assert caught.value.cell_index == 1
    assert "cell 1 " in str(caught.value) and "RuntimeError: before the parameters" in str(caught.value)


def test_cli_exit_status_and_stage_book(tmp_path, monkeypatch, capsys):
    # Catches a CLI that exits 0 after a failed notebook (make and CI would go on), and a
    # --stage-book that stages a failed run or answers a missing one with a traceback.
    import infercam.notebooks as runner

    notebooks, output, book = tmp_path / "notebooks", tmp_path / "executed", tmp_path / "book"
    monkeypatch.setattr(runner, "BOOK_DIR", book)
    write_notebook(notebooks / "00_ok.ipynb", "x = 1")
    folders = ["--notebooks-dir", str(notebooks), "--output-dir", str(output)]
    assert runner.main(["--profile", "smoke", *folders]) == 0
    assert "all done" in capsys.readouterr().out
    assert runner.main(["--stage-book", *folders]) == 0
    assert [p.name for p in (book / "notebooks").iterdir()] == ["00_ok.ipynb"]

    write_notebook(notebooks / "01_fail.ipynb", "raise ValueError('broken step')")
    assert runner.main(["--profile", "smoke", "--only", "01_fail", *folders]) == 1
    assert "error: notebook" in capsys.readouterr().err
    assert runner.main(["--stage-book", *folders]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "01_fail" in error and "make notebooks" in error
    assert [p.name for p in (book / "notebooks").iterdir()] == ["00_ok.ipynb"]  # the staged book is left as it was
