"""The bad-config corpus (tests/bad_configs.yaml): each case refused with its code and config path, by
``meshkit check`` and by the Pulumi program, which registers nothing. A case marked ``warning: true`` is
deployable: ``check`` refuses it only with ``--strict``, and the program logs the warning and goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.pulumi.program import main

from .pulumi_mocks import pulumi_mocks
from .scenario_data import TESTS, case_config, stack_file_text

CASES: list[dict[str, Any]] = yaml.safe_load((TESTS / "bad_configs.yaml").read_text())


def _stack_file_text(case: dict[str, Any]) -> str:
    if "text" in case:
        return str(case["text"])
    raw = case_config(case)
    return stack_file_text(raw)


def test_the_corpus_covers_at_least_40_cases_and_every_code_group() -> None:
    assert len(CASES) >= 40
    assert len({case["name"] for case in CASES}) == len(CASES), "case names must be unique"
    groups = {case["expect"][0][:3] for case in CASES}
    assert groups >= {"MK0", "MK1", "MK2", "MK3", "MK4", "MK5", "MK6"}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_check_refuses_with_code_and_path(case: dict[str, Any], tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text(_stack_file_text(case))
    warning = case.get("warning", False)
    if warning:
        assert CliRunner().invoke(app, ["check", str(stack_file)]).exit_code == 0, "a warning alone is deployable"
    result = CliRunner().invoke(app, ["check", str(stack_file), "--json", *(["--strict"] if warning else [])])
    assert result.exit_code == 1, result.output
    findings = json.loads(result.output)["findings"]
    code, path = case["expect"]
    assert (code, path) in {(f["code"], f["path"]) for f in findings}, findings
    finding = next(f for f in findings if (f["code"], f["path"]) == (code, path))
    assert finding["message"] and finding["fix"], "every finding says what is wrong and how to fix it"
    assert finding["severity"] == ("warning" if warning else "error")


@pytest.mark.parametrize("case", [c for c in CASES if "text" not in c and c.get("warning")], ids=lambda c: c["name"])
def test_program_logs_the_warning_and_deploys(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    raw = case_config(case)
    with pulumi_mocks(raw) as run:
        recorder = run(lambda: main(read_deployed=lambda stack: {}))
    code, path = case["expect"]
    assert any(w.startswith(f"warning {code} {path}: ") for w in warnings), warnings
    assert recorder.registrations


@pytest.mark.parametrize(
    "case", [c for c in CASES if "text" not in c and not c.get("warning")], ids=lambda c: c["name"]
)
def test_program_refuses_and_registers_nothing(case: dict[str, Any]) -> None:
    raw = case_config(case)
    with pulumi_mocks(raw) as run, pytest.raises(pulumi.RunError) as info:
        run(lambda: main(read_deployed=lambda stack: {}))
    code, path = case["expect"]
    assert f"{code} {path}: " in str(info.value)
    assert run.recorder.registrations == []
