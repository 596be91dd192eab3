"""`meshkit up`'s process environment: a step scope never leaks into an untargeted update."""

from __future__ import annotations

import pytest

from meshkit.engine_step import _environment
from meshkit.step_scope import SCOPE_FILE_ENV


def test_a_scope_in_the_callers_environment_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCOPE_FILE_ENV, "/tmp/left-over.json")
    assert SCOPE_FILE_ENV not in _environment({})
    assert _environment({SCOPE_FILE_ENV: "/tmp/this-step.json"})[SCOPE_FILE_ENV] == "/tmp/this-step.json"


def test_the_engine_collects_garbage_less_often_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    assert _environment({})["GOGC"] == "400"
    monkeypatch.setenv("GOGC", "100")
    assert _environment({})["GOGC"] == "100"
