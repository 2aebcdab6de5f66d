"""Metrics files' context: the GPU named is the one the run used, the precision each step computed
in, and the operations that ran without a deterministic implementation."""
from __future__ import annotations

import json

import pytest
import torch

from infercam import config
from infercam.runs import run_context, write_metrics
from test_config import fake_gpus


def test_the_context_names_the_gpu_of_the_device_index(monkeypatch):
    # Catches: runs.py named GPU 0 whatever `device` said.
    fake_gpus(monkeypatch, {0: (9, 0), 1: (7, 5)})
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"GPU {torch.device(device).index}")
    context = run_context("paper", 0, "cuda:1", "auto")
    assert context["device"] == "cuda:1" and context["device_name"] == "GPU 1"
    assert context["precision"] == "float32"  # GPU 1 (7.5) has no bfloat16 units; GPU 0 (9.0) has
    assert run_context("paper", 0, torch.device("cuda", 0), "auto")["precision"] == "bfloat16 autocast"


@pytest.mark.parametrize("setting, units, precision", [("auto", True, "float32"), ("native", True, "bfloat16 autocast"),
                                                       ("native", False, "float32"), (None, True, None)])
def test_the_context_says_which_precision_the_step_computed_in(monkeypatch, setting, units, precision):
    # Catches: the precision was in no metrics file, so the book could not say why numbers differ.
    monkeypatch.setattr(config, "cpu_computes_bfloat16", lambda: units)
    assert run_context("cpu", 0, "cpu", setting)["precision"] == precision


def test_metrics_record_the_operations_that_ran_non_deterministically(monkeypatch, tmp_path):
    # Catches: what could not be deterministic must be in the run's record.
    monkeypatch.setattr(config, "_NONDETERMINISTIC_OPS", set())
    write_metrics(tmp_path, "a", {"x": 1}, run_context("cpu", 0, "cpu", False))
    assert json.loads((tmp_path / "metrics" / "a.json").read_text())["context"]["nondeterministic_ops"] == []
    config.record_nondeterministic_warning("adaptive_avg_pool2d_backward_cuda does not have a deterministic "
                                           "implementation, but you set 'torch.use_deterministic_algorithms(True, ...")
    config.record_nondeterministic_warning("an unrelated warning")
    write_metrics(tmp_path, "b", {"x": 1}, run_context("cpu", 0, "cpu", False))
    saved = json.loads((tmp_path / "metrics" / "b.json").read_text())["context"]
    assert saved["nondeterministic_ops"] == ["adaptive_avg_pool2d_backward_cuda"]
