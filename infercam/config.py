"""Profiles, paths, devices and seeds: what every notebook sets up in its first cell."""
from __future__ import annotations

import functools
import os
import platform
import random
import re
from pathlib import Path

import numpy as np
import yaml

# The repository root: profiles and relative data paths are resolved against it, so a notebook
# gives the same result whether it runs from the repo root (papermill) or from notebooks/ (Jupyter).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = PROJECT_ROOT / "profiles"


def resolve_path(path: str | os.PathLike) -> Path:
    """Absolute paths stay; relative ones are taken from the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_profile(profile: str | os.PathLike) -> dict:
    """Read a profile: a name under profiles/ (``"cpu"``) or a path to a YAML file. A profile that
    says ``extends: <base>`` (a name or path, as here) gets the base's values, its own replacing them."""
    return _load_profile(profile, ())


def _profile_path(profile: str | os.PathLike) -> Path:
    path = Path(profile)
    if path.suffix not in {".yaml", ".yml"}:
        path = PROFILES_DIR / f"{profile}.yaml"
    path = resolve_path(path)
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no profile {profile!r} (looked for {path}); known profiles: {known}")
    return path


def _load_profile(profile: str | os.PathLike, extended_by: tuple[Path, ...]) -> dict:
    path = _profile_path(profile)
    if path in extended_by:
        chain = " -> ".join(str(p.name) for p in (*extended_by, path))
        raise ValueError(f"profiles extend each other in a circle ({chain}): remove one of the `extends:` lines")
    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    base = values.pop("extends", None)
    return values if base is None else {**_load_profile(base, (*extended_by, path)), **values}


def resolve_device(device: str = "auto"):
    """``"auto"`` picks CUDA when present, else the CPU; anything else is passed to torch."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return resolved


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a run repeats."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


def _read_cpuinfo(cpuinfo: str | os.PathLike) -> str:
    """The text of /proc/cpuinfo (or a stand-in), empty where there is none (not Linux)."""
    try:
        return Path(cpuinfo).read_text()
    except OSError:
        return ""


@functools.lru_cache  # autocast("auto") asks on every forward; the CPU does not change
def cpu_computes_bfloat16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bfloat16 units (AVX-512 BF16 or AMX), read from its flags (Linux).
    Elsewhere oneDNN emulates bfloat16: measured here on an AVX2-only AMD EPYC, bfloat16 autocast
    made a ResNet-18 forward 46x and a training step 13x slower than float32."""
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", _read_cpuinfo(cpuinfo)) is not None


def cpu_name(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model and how many cores this process may use, e.g. "AMD EPYC 7B13, 2 cores": the
    model name from ``cpuinfo`` (Linux), else what :mod:`platform` knows."""
    found = re.search(r"^model name\s*:\s*(.+)$", _read_cpuinfo(cpuinfo), re.MULTILINE)
    model = found.group(1).strip() if found else platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores"


def resolve_mixed_precision(setting: bool | str, device) -> bool:
    """``"auto"``: bfloat16 autocast where the device computes bfloat16 natively (a GPU that
    supports it, a CPU with bfloat16 units), float32 elsewhere; True or False force it."""
    if isinstance(setting, bool):
        return setting
    if setting != "auto":
        raise ValueError(f"mixed_precision must be True, False or 'auto', not {setting!r}")
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_computes_bfloat16()


def autocast(device, enabled: bool | str = "auto"):
    """bfloat16 autocast on the CPU or the GPU (no loss scaling needed, unlike float16); a no-op when
    ``enabled`` is false. ``"auto"`` turns it on only where the device computes bfloat16 natively
    (:func:`resolve_mixed_precision`): on CPUs with bfloat16 units (AVX-512 BF16, AMX) convolutions
    run about twice as fast, on the others many times slower."""
    import torch

    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=resolve_mixed_precision(enabled, device))
