"""meshkit's wheel in a clean virtualenv at the newest versions its ranges allow (what a program that imports
meshkit today gets), running meshkit's unit tests there. The lowest versions are tested the same way in
test_consumer_example.py; the project's own pins (constraints.txt) by every other test."""

from __future__ import annotations

import venv
from pathlib import Path

import pytest

from .wheel import build_wheel, run, run_unit_tests, tool_pins

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def newest_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """meshkit's wheel and whatever pip resolves its dependencies to, with no constraints: the newest in range."""
    wheel = build_wheel(tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist"))
    root = tmp_path_factory.mktemp("newest-venv") / "venv"
    venv.create(root, with_pip=True)
    run([str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(wheel), *tool_pins()])  # fmt: skip
    return root


def test_meshkit_unit_tests_pass_at_the_newest_versions(newest_venv: Path) -> None:
    frozen = run([str(newest_venv / "bin" / "python"), "-m", "pip", "freeze"])
    print(f"newest resolution:\n{frozen}")  # shown with the failure, to reproduce it
    run_unit_tests(newest_venv / "bin" / "python")
