"""Fault injection: every long step, killed by SIGKILL at a seeded random file commit (the file half
written), then run again, ends with the files and numbers of an uninterrupted run; nothing
half-written is taken as done. The steps and the kill are in tests/killable_steps.py."""
from __future__ import annotations

import json
import random
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers, whatever the import mode
from killable_steps import STEPS, prepare_inputs  # noqa: E402

KILLABLE = Path(__file__).resolve().parent / "killable_steps.py"
VOLATILE = {"seconds", "date"}  # wall-clock facts: differ between any two runs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fault-inputs")
    prepare_inputs(root)
    return root


def _committed(run, monkeypatch) -> list[Path]:
    """Run ``run``; the files it committed with ``os.replace``, in order."""
    import os

    real_replace, targets = os.replace, []

    def recording(source, target, **kwargs):
        targets.append(Path(target).resolve())
        return real_replace(source, target, **kwargs)

    monkeypatch.setattr(os, "replace", recording)
    run()
    monkeypatch.setattr(os, "replace", real_replace)
    return targets


def _written_by_kernels(path: Path) -> bool:
    """The batches' notebooks run in kernels, processes of their own, which write the executed copies
    (reports, never read back) and the metrics (write_metrics: atomic there)."""
    return path.suffix == ".ipynb" or ("metrics" in path.parts and not path.name.endswith(".parameters.json"))


def _outputs(folder: Path) -> list[Path]:
    """The files a step made, without temporaries and locks (hidden), its cost (timing.json) and the
    ablation batch's kernel logs (``<row>.kernel.log``: what each run's kernels said, appended run
    after run, e.g. a killed kernel's KeyboardInterrupt; a report, never read back)."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                  and p.name != "timing.json" and not p.name.endswith(".kernel.log"))


def _without_volatile(value):
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def _assert_same_file(straight: Path, resumed: Path, straight_root: Path, resumed_root: Path) -> None:
    if straight.suffix == ".npz":
        with np.load(straight) as a, np.load(resumed) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{resumed}: {key}")
    elif straight.suffix == ".png":
        with Image.open(straight) as a, Image.open(resumed) as b:
            np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=str(resumed))
    elif straight.suffix in {".pth", ".last"}:
        a, b = torch.load(straight, weights_only=False), torch.load(resumed, weights_only=False)
        assert a.keys() == b.keys(), resumed
        for key, tensor in a["model"].items():
            assert torch.equal(tensor, b["model"][key]), f"{resumed}: {key}"
        assert _without_volatile(a["history"]) == _without_volatile(b["history"]), resumed
        assert a["settings"] == b["settings"], resumed
    elif straight.suffix == ".json":  # paths inside name each run's own folder
        a = json.loads(straight.read_text())
        b = json.loads(resumed.read_text().replace(str(resumed_root), str(straight_root)))
        assert _without_volatile(a) == _without_volatile(b), resumed
    elif straight.suffix != ".ipynb":  # an executed notebook (a report) holds its run's times
        assert straight.read_bytes() == resumed.read_bytes().replace(bytes(resumed_root), bytes(straight_root)), resumed


def assert_same_outputs(straight: Path, resumed: Path) -> None:
    assert _outputs(straight) == _outputs(resumed)
    for relative in _outputs(straight):
        _assert_same_file(straight / relative, resumed / relative, straight, resumed)


@pytest.fixture(scope="module")
def killer(tmp_path_factory):
    """tests/killable_steps.py serving kills: (process, its log)."""
    log = tmp_path_factory.mktemp("killer") / "stderr.txt"
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, str(KILLABLE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=handle, text=True, start_new_session=True)
    yield process, log
    process.stdin.close()
    process.wait(timeout=60)


def _run_killed(killer, step: str, inputs: Path, work: Path, kill_at: int) -> int:
    process, log = killer
    process.stdin.write(json.dumps([step, str(inputs), str(work), kill_at]) + "\n")
    process.stdin.flush()
    ready, _, _ = select.select([process.stdout], [], [], 300)
    answer = process.stdout.readline() if ready else ""
    assert answer, f"no answer from {KILLABLE.name} for {step}:\n{log.read_text()[-3000:]}"
    return int(answer)


def kill_then_resume(killer, step: str, inputs: Path, straight: Path, resumed: Path, monkeypatch) -> None:
    """Run ``step`` whole into ``straight``; into ``resumed``, a run killed at a seeded random commit,
    then a whole run."""
    committed = _committed(lambda: STEPS[step](inputs, straight), monkeypatch)
    # every result arrives whole by a rename: one written in place could be cut short by a kill, then taken as done
    written_in_place = [p for p in _outputs(straight) if (straight / p).resolve() not in committed
                        and not _written_by_kernels(p)]
    assert not written_in_place, f"{step} wrote {written_in_place} in place, not atomically"
    kill_at = random.Random(step).randint(1, len(committed))  # seeded: the same point on every machine
    status = _run_killed(killer, step, inputs, resumed, kill_at)
    assert status == -signal.SIGKILL, f"{step} was not killed at commit {kill_at}:\n{killer[1].read_text()[-3000:]}"
    half_written = [p for p in resumed.rglob(".*") if p.is_file() and not p.name.endswith(".lock")]
    assert half_written, f"{step}: the kill at commit {kill_at} left no half-written temporary"
    STEPS[step](inputs, resumed)


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_step_killed_mid_write_resumes_to_the_uninterrupted_result(inputs, killer, tmp_path, monkeypatch, step):
    # catches a step that writes a result in place (not atomically), takes a half-written file as done,
    # does not redo what the kill lost, skips one of its folders on resume (split & unite's baseline, a
    # CRF folder), or resumes a training to other weights than an uninterrupted run (unseeded epochs,
    # optimizer state not restored)
    kill_then_resume(killer, step, inputs, tmp_path / "straight", tmp_path / "resumed", monkeypatch)
    assert_same_outputs(tmp_path / "straight", tmp_path / "resumed")
