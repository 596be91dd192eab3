"""Rollout safety against the last deployed state (the stack's own outputs)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from meshkit.analysis import validate_stack
from meshkit.program import main
from meshkit.rollout import check_rollout, stack_summary

from .pulumi_mocks import pulumi_mocks
from .scenario_data import nginx_stack, scenario, scenario_raw


def _deployed(step: str) -> dict[str, Any]:
    """The outputs a stack has after deploying a scenario step."""
    return stack_summary(scenario(step))


def test_first_deployment_has_no_rollout_findings() -> None:
    assert check_rollout(scenario("A6"), None) == check_rollout(scenario("A6"), {}) == []


@pytest.mark.parametrize(("before", "after"), [("A2", "A3"), ("A3", "A4"), ("A4", "A5"), ("A5", "A6")])
def test_each_canary_step_is_a_safe_step(before: str, after: str) -> None:
    assert check_rollout(scenario(after), _deployed(before)) == []


def test_removing_a_version_that_still_had_weight_is_refused() -> None:
    (finding,) = check_rollout(scenario("A6"), _deployed("A4"))
    assert (finding.code, finding.path) == ("MK501", "services.nginx.versions")
    assert "'v1'" in finding.message and "20%" in finding.message
    assert finding.obj == "DestinationRule nginx.demo"


def test_removing_a_version_a_header_route_used_is_refused() -> None:
    raw = scenario("B2").model_dump(by_alias=True, exclude_defaults=True)
    del raw["services"]["reviews"]["versions"]["v2"]
    del raw["services"]["reviews"]["traffic"]["routes"]
    (finding,) = check_rollout(validate_stack(raw), _deployed("B2"))
    assert finding.code == "MK501" and "'v2'" in finding.message


@pytest.mark.parametrize(("where", "max_step"), [("service", 20), ("stack", 20)])
def test_weight_step_larger_than_max_step_is_refused(where: str, max_step: int) -> None:
    raw = nginx_stack(traffic={"weights": {"v1": 20, "v2": 80}})  # from A3's 70/30: a step of 50
    if where == "service":
        raw["services"]["nginx"]["traffic"]["maxStep"] = max_step
    else:
        raw["maxStep"] = max_step
    findings = check_rollout(validate_stack(raw), _deployed("A3"))
    assert {(f.code, f.path) for f in findings} == {
        ("MK502", "services.nginx.traffic.weights.v1"),
        ("MK502", "services.nginx.traffic.weights.v2"),
    }


def test_weight_step_within_max_step_passes() -> None:
    raw = nginx_stack(traffic={"weights": {"v1": 50, "v2": 50}, "maxStep": 20})
    assert check_rollout(validate_stack(raw), _deployed("A3")) == []


def test_unsafe_step_registers_nothing() -> None:
    with pulumi_mocks(scenario_raw("A6")) as run, pytest.raises(pulumi.RunError) as info:
        run(lambda: main(read_deployed=lambda stack: _deployed("A4")))
    assert "MK501 services.nginx.versions" in str(info.value)
    assert run.recorder.registrations == []
