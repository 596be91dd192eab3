"""meshkit's wheel in clean virtualenvs, at either end of the dependency ranges it declares (pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from ..scenario_data import REPO


def run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def build_wheel(source: Path, dist: Path) -> Path:
    """meshkit's wheel, built from a copy of the sources in ``source`` (the checkout stays clean) as `make wheel`
    builds it."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "meshkit", source / "meshkit", ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir",
         str(dist), str(source)])  # fmt: skip
    (built,) = dist.glob("meshkit-*.whl")
    return built


def tool_pins() -> list[str]:
    """The test runner and its plugins as the project pins them (its `dev` extra): what varies in a run at either
    end of the ranges is meshkit's own dependencies, not the tools that run its tests."""
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    return [pin for pin in dev if pin.split("==")[0] in ("pytest", "hypothesis", "pytest-timeout")]


def run_unit_tests(python: Path) -> None:
    """meshkit's unit tests, the checkout's (the wheel's sources), with the packages of ``python``'s virtualenv.
    Not the tiers that need the toolchain (e2e, live, dataplane: the data plane's cluster is the session's), nor
    Istio's analyzer (istioctl is the toolchain's)."""
    run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not e2e and not live and not dataplane",
         "--ignore", str(REPO / "tests" / "istio"), str(REPO / "tests")], cwd=REPO)  # fmt: skip
