"""benchmarks/gpu_check.py, the one command that checks the GPU path, exercised where no GPU is:
its refusal without CUDA and its dry run on the CPU (about 20 s on 2 cores)."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from infercam.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", PROJECT_ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_refuses_and_names_the_way_out(gpu_check, monkeypatch, tmp_path, capsys):
    # Catches a check that starts a long run on the CPU, or crashes obscurely, where there is no GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "report.json")]) == 2
    assert "needs CUDA" in capsys.readouterr().err and not (tmp_path / "report.json").exists()


def test_the_dry_run_runs_every_check_but_the_smoke_book_and_records_them(gpu_check, tmp_path):
    # Catches a check that crashes (found only when a GPU is lent, with little time to fix it), and
    # training that does not resume to identical weights.
    assert gpu_check.main(["--dry-run", "--scratch", str(tmp_path / "scratch"), "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    checks = report["checks"]
    assert report["dry_run"] and set(checks) == {"resume", "cams_cpu_vs_gpu", "walk_repeat", "bf16_vs_fp32",
                                                 "peak_memory"}
    assert checks["resume"]["repeat_identical"] and checks["resume"]["resume_identical"]
    assert checks["cams_cpu_vs_gpu"]["max_difference"] == 0  # the CPU stands in for the GPU
    assert checks["walk_repeat"]["repeat_identical"] and checks["walk_repeat"]["cpu_max_difference"] == 0
    for precision in ("float32", "bfloat16"):
        assert 0 < checks["bf16_vs_fp32"][precision]["miou"] < 1
    steps = checks["peak_memory"]["steps"]
    assert len(steps) == 5 and all(step["seconds"] > 0 and step["peak_memory_mib"] is None for step in steps.values())
