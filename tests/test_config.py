"""Devices and mixed precision: 'auto' must pick float32 on a CPU that only emulates bfloat16."""
from __future__ import annotations

import pytest
import torch

from infercam import config
from infercam.config import autocast, cpu_computes_bfloat16, cpu_name, resolve_mixed_precision

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
def test_auto_on_the_cpu_follows_its_units(monkeypatch, units):
    monkeypatch.setattr(config, "cpu_computes_bfloat16", lambda: units)
    assert resolve_mixed_precision("auto", "cpu") is units
    assert resolve_mixed_precision(True, "cpu") is True
    assert resolve_mixed_precision(False, torch.device("cpu")) is False


def test_autocast_auto_computes_in_float32_without_bfloat16_units(monkeypatch):
    layer = torch.nn.Linear(4, 4)
    monkeypatch.setattr(config, "cpu_computes_bfloat16", lambda: False)
    with autocast("cpu", "auto"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    monkeypatch.setattr(config, "cpu_computes_bfloat16", lambda: True)
    with autocast("cpu", "auto"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        resolve_mixed_precision("yes", "cpu")


def test_the_cpu_is_named_by_its_model_and_usable_cores(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: avx2\n")
    monkeypatch.setattr(config.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert cpu_name(path) == "AMD EPYC 7B13 64-Core Processor, 2 cores"


def test_without_cpuinfo_the_cpu_is_named_by_the_platform(tmp_path, monkeypatch):
    monkeypatch.setattr(config.platform, "processor", lambda: "")
    monkeypatch.setattr(config.platform, "machine", lambda: "aarch64")
    assert cpu_name(tmp_path / "missing").startswith("aarch64, ")
