"""`meshkit up`'s commands and process environment: a step scope never leaks into an untargeted update; a
stack with a cluster is refreshed before its update, in a command of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshkit.engine_step import _environment, step_command
from meshkit.step_scope import SCOPE_FILE_ENV

from .scenario_data import SCENARIOS


def test_a_scope_in_the_callers_environment_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCOPE_FILE_ENV, "/tmp/left-over.json")
    assert SCOPE_FILE_ENV not in _environment({})
    assert _environment({SCOPE_FILE_ENV: "/tmp/this-step.json"})[SCOPE_FILE_ENV] == "/tmp/this-step.json"


def test_the_engine_collects_garbage_less_often_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    assert _environment({})["GOGC"] == "400"
    monkeypatch.setenv("GOGC", "100")
    assert _environment({})["GOGC"] == "100"


def _stack_file(tmp_path: Path, with_cluster: bool) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: meshkit\nruntime: python\n")
    (tmp_path / "stacks").mkdir()
    text = (SCENARIOS / "A3.yaml").read_text()
    if with_cluster:
        text = text.replace("config:\n", "config:\n  kubernetes:kubeconfig: /tmp/kubeconfig\n", 1)
    path = tmp_path / "stacks" / "Pulumi.prod.yaml"
    path.write_text(text)
    return path


def test_a_step_on_a_stack_with_a_cluster_refreshes_first_in_a_command_of_its_own(tmp_path: Path) -> None:
    # `up --refresh --target …` fails on a cluster: the engine's refresh does not load the provider of the
    # targeted objects ("unknown provider"); the refresh runs untargeted, before the update.
    command = step_command(_stack_file(tmp_path, with_cluster=True), "prod", full=True)
    assert "--refresh" not in command.argv and "--skip-preview=false" in command.argv
    assert command.refresh_argv is not None and command.refresh_argv[:2] == ["pulumi", "refresh"]
    assert "--clear-pending-creates" in command.refresh_argv and "--target" not in " ".join(command.refresh_argv)


def test_a_step_on_a_rendered_stack_has_nothing_to_refresh(tmp_path: Path) -> None:
    command = step_command(_stack_file(tmp_path, with_cluster=False), "prod", full=True)
    assert command.refresh_argv is None and "--skip-preview" in command.argv
