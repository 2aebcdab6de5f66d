"""Devices and mixed precision: 'auto' must compute in float32 on every CPU (no CPU in bfloat16 unasked)
and in bfloat16 only on GPUs with bfloat16 units, asked of the GPU the run uses; CUDA runs repeat."""
from __future__ import annotations

import os
import warnings

import pytest
import torch

from infercam import config
from infercam.config import (autocast, cpu_computes_bfloat16, cpu_name, make_cuda_repeatable, nondeterministic_ops,
                             resolve_device, resolve_mixed_precision)

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


@pytest.mark.parametrize("cpuinfo, expected", [(AVX2_ONLY, False), (AMX, True),
                                               ("flags : avx512_bf16\n", True), ("flags : avx512_bf16x\n", False)])
def test_bfloat16_units_are_read_from_the_cpu_flags(tmp_path, cpuinfo, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert cpu_computes_bfloat16(path) is expected


def test_no_cpuinfo_means_no_bfloat16_units(tmp_path):
    assert cpu_computes_bfloat16(tmp_path / "missing") is False


@pytest.mark.parametrize("units", [False, True])
def test_auto_computes_in_float32_on_every_cpu(monkeypatch, units):
    # Catches: "auto" took bfloat16 on CPUs with bfloat16 units, so a seed gave
    # other numbers there (val mAP 65.7% vs 68.0%).
    monkeypatch.setattr(config, "cpu_computes_bfloat16", lambda: units)
    assert resolve_mixed_precision("auto", "cpu") is False
    assert resolve_mixed_precision("native", "cpu") is units  # the opt-in for speed follows the units
    assert resolve_mixed_precision(True, "cpu") is True
    assert resolve_mixed_precision(False, torch.device("cpu")) is False


def test_autocast_follows_the_setting_on_the_cpu(monkeypatch):
    layer = torch.nn.Linear(4, 4)
    monkeypatch.setattr(config, "cpu_computes_bfloat16", lambda: True)
    with autocast("cpu", "auto"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    with autocast("cpu", "native"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    monkeypatch.setattr(config, "cpu_computes_bfloat16", lambda: False)
    with autocast("cpu", "native"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32


def fake_gpus(monkeypatch, capabilities: dict[int, tuple[int, int]], current: int = 0):
    """CUDA queries answered for GPUs of the given compute capabilities (by index); torch's own
    ``is_bf16_supported`` says yes, as it does for GPUs that only emulate bfloat16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda device=None: capabilities[current if torch.device(device).index is None
                                                         else torch.device(device).index])


@pytest.mark.parametrize("capability, bfloat16", [((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_auto_takes_bfloat16_only_on_gpus_with_bfloat16_units(monkeypatch, capability, bfloat16):
    # Catches: is_bf16_supported() counts emulation, so V100 / T4 (7.x) got bfloat16.
    fake_gpus(monkeypatch, {0: capability})
    assert resolve_mixed_precision("auto", "cuda") is bfloat16
    assert resolve_mixed_precision("native", "cuda:0") is bfloat16


def test_the_precision_is_that_of_the_gpu_asked_for_not_the_current_one(monkeypatch):
    # Catches: the current device was asked whether it has bfloat16, not `device`.
    fake_gpus(monkeypatch, {0: (9, 0), 1: (7, 5)}, current=0)
    assert resolve_mixed_precision("auto", "cuda:1") is False
    assert resolve_mixed_precision("auto", "cuda:0") is True


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="True, False, 'auto' .* or 'native'"):
        resolve_mixed_precision("yes", "cpu")


@pytest.fixture
def restore_torch_globals(monkeypatch):
    """make_cuda_repeatable changes process-wide settings: put them back after the test."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setattr(config, "_NONDETERMINISTIC_OPS", set())
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:4]
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved[4:]


def test_cuda_runs_are_deterministic_in_true_float32_and_record_what_is_not(restore_torch_globals):
    # Catches: no deterministic cuDNN / algorithms on CUDA, TF32 convolutions
    # in "float32" runs; and an operation without a deterministic implementation going unrecorded.
    make_cuda_repeatable()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.conv.fp32_precision == "ieee" and torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    # put_ without accumulation has no deterministic implementation on any device: warn_only lets it run
    torch.zeros(3).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))
    assert nondeterministic_ops() == ["put_"]


def test_a_cuda_device_keeps_its_index_and_is_made_repeatable(monkeypatch):
    # Catches, at its source: "cuda:1" must stay GPU 1.
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(config, "make_cuda_repeatable", lambda: calls.append(True))
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and len(calls) == 1
    assert resolve_device("auto") == torch.device("cuda") and len(calls) == 2  # "auto" finding a GPU too
    assert resolve_device("cpu") == torch.device("cpu") and len(calls) == 2


def test_the_cpu_is_named_by_its_model_and_usable_cores(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: avx2\n")
    monkeypatch.setattr(config.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert cpu_name(path) == "AMD EPYC 7B13 64-Core Processor, 2 cores"


def test_without_cpuinfo_the_cpu_is_named_by_the_platform(tmp_path, monkeypatch):
    monkeypatch.setattr(config.platform, "processor", lambda: "")
    monkeypatch.setattr(config.platform, "machine", lambda: "aarch64")
    assert cpu_name(tmp_path / "missing").startswith("aarch64, ")


def test_a_step_asked_for_its_bar_still_hides_it_when_the_environment_says_so(monkeypatch):
    # Catches progress bars in the built book: tqdm reads TQDM_DISABLE only as a default, and every
    # step passed disable=not progress, an explicit False that overrode it.
    from infercam.config import no_bar

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert no_bar(True) is False and no_bar(False) is True
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert no_bar(True) is True
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert no_bar(True) is False
