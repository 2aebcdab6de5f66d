"""Profiles, paths, devices and seeds: what every notebook sets up in its first cell."""
from __future__ import annotations

import functools
import json
import os
import platform
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import yaml

# The repository root: profiles and relative data paths are resolved against it, so a notebook
# gives the same result whether it runs from the repo root (papermill) or from notebooks/ (Jupyter).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = PROJECT_ROOT / "profiles"


def bars_off() -> bool:
    """Whether the environment turns every progress bar off (``TQDM_DISABLE``, which the book's
    runner sets for its kernels: a bar frozen at its last state is noise on a static page)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def no_bar(progress: bool) -> bool:
    """tqdm's ``disable`` for a step called with ``progress``. tqdm reads ``TQDM_DISABLE`` only as a
    default, which an explicit ``disable=False`` overrides, so every bar asks here."""
    return not progress or bars_off()


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


class ProfileValueError(ValueError):
    """A profile (or -p) value of another type than the parameter's default."""


def _kinds_of(default) -> tuple[tuple[type, ...], str] | None:
    """The types a value replacing ``default`` may have, and their name; None: any (a string
    default may be replaced by a bool, e.g. mixed_precision "auto" by true)."""
    if isinstance(default, bool):
        return (bool,), "true or false"
    if isinstance(default, int):
        return (int,), "a whole number"
    if isinstance(default, float):
        return (int, float), "a number"
    if isinstance(default, (list, tuple)):
        return (list, tuple), "a list"
    if isinstance(default, dict):
        return (dict,), "a mapping"
    return None


def check_parameter_types(values: dict, defaults: dict, where: str) -> None:
    """Refuse a value in ``values`` whose type does not fit the default of the same name in
    ``defaults`` (``where`` declares them, e.g. a notebook): ``cam_scales: 1.0`` for a list would
    otherwise fail deep in a step, or run with a silently different meaning."""
    for name, value in values.items():
        kinds = _kinds_of(defaults.get(name))
        if kinds is None or value is None or (isinstance(value, kinds[0])  # None: "all", "none" (e.g. num_images)
                                              and not (isinstance(value, bool) and bool not in kinds[0])):
            continue
        example = [value] if kinds[0] == (list, tuple) else defaults[name]
        raise ProfileValueError(f"parameter {name} is {value!r} ({type(value).__name__}), but {where} takes "
                                f"{kinds[1]} (its default: {defaults[name]!r}): write it like {name}: "
                                f"{json.dumps(example)} in the profile (or -p)")


# The backbones whose stem and first stages can stay fixed while the rest fine-tunes (frozen_stages > 0);
# psa's ResNet-38 keeps its own fixed layers (psa's Net.not_training), the from-scratch ResNet-18 none.
FREEZABLE_BACKBONES = ("efficientnet_lite0",)


def check_frozen_stages(values: dict, where: str) -> None:
    """Refuse ``frozen_stages`` > 0 for a ``backbone`` that has no stages to freeze: a profile that
    changes the backbone but keeps a notebook's default of 3 would otherwise fail after the
    notebooks before it ran (the paper profile in chapter 06, 12 minutes into the rehearsal)."""
    backbone, frozen = values.get("backbone"), values.get("frozen_stages")
    if backbone is not None and frozen and backbone not in FREEZABLE_BACKBONES:
        raise ProfileValueError(f"frozen_stages={frozen} in {where}, but backbone {backbone!r} has no stages to freeze "
                                f"(only {', '.join(FREEZABLE_BACKBONES)}): set frozen_stages: 0 in the profile (or -p)")


class WorkDirError(OSError):
    """The work_dir cannot be written."""


def check_writable(folder: str | os.PathLike) -> Path:
    """Make ``folder`` (a work_dir) and check that a file can be written in it, before a long run
    finds out at its first result; returns it resolved."""
    folder = resolve_path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise WorkDirError(f"work_dir {folder} cannot be written ({error.strerror or error}): every step saves its "
                           "results there; set work_dir in the profile (or -p work_dir <folder>) to a folder "
                           "you can write") from error
    return folder


def resolve_device(device: str = "auto"):
    """``"auto"`` picks CUDA when present, else the CPU; anything else is passed to torch. A CUDA
    device is made repeatable (:func:`make_cuda_repeatable`)."""
    import torch

    resolved = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    if resolved.type == "cuda":
        make_cuda_repeatable()
    return resolved


# What torch.use_deterministic_algorithms(warn_only=True) reported in this process: the operations
# that ran without a deterministic implementation (write_metrics puts them in the run's context).
_NONDETERMINISTIC_OPS: set[str] = set()
_NONDETERMINISTIC_MARK = " does not have a deterministic implementation"


def make_cuda_repeatable() -> None:
    """CUDA settings that make a run repeat and "float32" mean float32: deterministic cuDNN
    algorithms (no benchmark search), deterministic implementations of the other operations where
    torch has one (an operation without one runs anyway and is recorded: see
    :func:`nondeterministic_ops`), cuBLAS's deterministic workspace, and TF32 off (cuDNN
    convolutions use TF32 by default on Ampere and newer, 10 mantissa bits instead of 23).
    Global and idempotent; :func:`resolve_device` calls it for every CUDA device."""
    import warnings

    import torch

    # cuBLAS reads it when it first makes its workspace; a value the user set is kept.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.conv.fp32_precision = "ieee"  # torch >= 2.9's switch; "tf32" is cuDNN's default
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.use_deterministic_algorithms(True, warn_only=True)
    if not getattr(warnings.showwarning, "records_nondeterminism", False):
        shown = warnings.showwarning

        def showwarning(message, *args, **kwargs):
            record_nondeterministic_warning(str(message))
            return shown(message, *args, **kwargs)

        showwarning.records_nondeterminism = True
        warnings.showwarning = showwarning


def record_nondeterministic_warning(message: str) -> None:
    """Remember the operation a warning of ``use_deterministic_algorithms(warn_only=True)`` names."""
    if _NONDETERMINISTIC_MARK in message:
        _NONDETERMINISTIC_OPS.add(message.split(_NONDETERMINISTIC_MARK)[0].strip())


def record_nondeterministic_ops(ops) -> None:
    """Add operations known to have run non-deterministically (e.g. those a loaded checkpoint's
    training recorded) to this process's list."""
    _NONDETERMINISTIC_OPS.update(ops)


def nondeterministic_ops() -> list[str]:
    """The operations that ran in this process without a deterministic implementation (CUDA only:
    on the CPU every operation used here is deterministic)."""
    return sorted(_NONDETERMINISTIC_OPS)


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


MIXED_PRECISION_SETTINGS = (True, False, "auto", "native")


def cuda_computes_bfloat16(device) -> bool:
    """Whether the GPU ``device`` (its own index, not the current device) has bfloat16 units:
    compute capability 8.0 or newer (Ampere on). ``torch.cuda.is_bf16_supported()`` also says yes
    on older GPUs (T4, V100, RTX 20xx) where torch only emulates bfloat16 and cuDNN has no
    bfloat16 convolutions."""
    import torch

    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve_mixed_precision(setting: bool | str, device) -> bool:
    """Whether the networks compute in bfloat16 autocast on ``device``. ``"auto"`` (the default):
    on a GPU with bfloat16 units (compute capability 8.0+), float32 elsewhere, and always float32
    on a CPU, so that no CPU computes in bfloat16 unasked (bfloat16 on a CPU with bfloat16 units
    moved the classifier's val mAP by 2 points). Float32 is not bit for bit the same on every CPU:
    other vector units (AVX2, AVX-512, AMX) round differently, and a training drifts from there. ``"native"``: also on CPUs with
    bfloat16 units (AVX-512 BF16, AMX; faster, see ``benchmarks/cpu_precision.py``, with numbers
    that depend on the CPU). True or False force it (bfloat16 on a device that only emulates it
    is many times slower)."""
    if isinstance(setting, bool):
        return setting
    if setting not in MIXED_PRECISION_SETTINGS:
        raise ValueError(f"mixed_precision must be True, False, 'auto' (bfloat16 on GPUs with bfloat16 units) or "
                         f"'native' (also on CPUs with them), not {setting!r}")
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return cuda_computes_bfloat16(device)
    return setting == "native" and device.type == "cpu" and cpu_computes_bfloat16()


def precision_name(mixed_precision: bool) -> str:
    """How a step's networks computed, for its metrics and the book's provenance."""
    return "bfloat16 autocast" if mixed_precision else "float32"


def autocast(device, enabled: bool | str = "auto"):
    """bfloat16 autocast on the CPU or the GPU (no loss scaling needed, unlike float16); a no-op when
    ``enabled`` is false. ``"auto"`` and ``"native"`` are resolved by
    :func:`resolve_mixed_precision`."""
    import torch

    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=resolve_mixed_precision(enabled, device))
