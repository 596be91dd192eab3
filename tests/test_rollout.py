"""Rollout safety against the last deployed state (the stack's own outputs)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from meshkit.errors import ConfigError
from meshkit.mesh.checks import validate_stack
from meshkit.pulumi.program import main
from meshkit.rollout.summary import (
    check_rollout,
    deployment_outputs,
    previous_weights,
    stack_summary,
    summary_from_outputs,
)

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


# --- the weights to roll back to (previousWeights) ----------------------------------------------------


def _deploy(*steps: str, start: dict[str, Any] | None = None) -> dict[str, Any]:
    """The outputs after deploying scenario steps one after the other, each read back as the next run of
    the program reads its last outputs (JSON through ``summary_from_outputs``)."""
    outputs = start
    for step in steps:
        exported = json.loads(json.dumps(deployment_outputs(scenario(step), outputs)))
        outputs = summary_from_outputs(exported, f"outputs after {step}")
    assert outputs is not None
    return outputs


def test_first_deployment_records_no_previous_weights() -> None:
    assert previous_weights(scenario("A3"), None) == previous_weights(scenario("A3"), {}) == {}
    assert deployment_outputs(scenario("A3"), None) == stack_summary(scenario("A3"))


def test_a_weight_change_records_the_weights_deployed_before() -> None:
    # A2 → A3: v2 arrives at 30%; sleep's weights do not change, so it has no record.
    assert previous_weights(scenario("A3"), _deploy("A2")) == {"nginx": {"v1": 100}}
    # A3 → A4: 70/30 → 20/80
    outputs = _deploy("A2", "A3", "A4")
    assert outputs["services"]["nginx"]["previousWeights"] == {"v1": 70, "v2": 30}
    assert "previousWeights" not in outputs["services"]["sleep"]


def test_a_deployment_that_changes_no_weight_carries_the_record_forward() -> None:
    changed_image = nginx_stack(traffic={"weights": {"v1": 20, "v2": 80}})  # A4 with another v2 image
    changed_image["services"]["nginx"]["versions"]["v2"]["image"] = "nginx:1.15.1"
    after_a4 = _deploy("A2", "A3", "A4")
    assert previous_weights(validate_stack(changed_image), after_a4) == {"nginx": {"v1": 70, "v2": 30}}
    # Retiring a version at 0% (A5 → A6) moves no request either: A5's change is still the last one.
    assert _deploy("A4", "A5", "A6", start=after_a4)["services"]["nginx"]["previousWeights"] == {"v1": 20, "v2": 80}
    # Redeploying the same file keeps it too.
    assert _deploy("A4", start=after_a4)["services"]["nginx"]["previousWeights"] == {"v1": 70, "v2": 30}


def test_outputs_without_the_record_are_still_read() -> None:
    older = json.loads(json.dumps(stack_summary(scenario("A3"))))  # a meshkit before previousWeights
    assert summary_from_outputs(older, "older outputs") == stack_summary(scenario("A3"))
    # The first weight change after an upgrade records the weights, as any other.
    assert previous_weights(scenario("A4"), older) == {"nginx": {"v1": 70, "v2": 30}}
    assert previous_weights(scenario("A3"), older) == {}


@pytest.mark.parametrize(("value", "path", "message"), [
    ([70, 30], "services.nginx.previousWeights", "must be a JSON object"),
    ({"v1": "most"}, "services.nginx.previousWeights.v1", "valid integer"),
])  # fmt: skip
def test_previous_weights_of_the_wrong_shape_are_an_mk008(value: Any, path: str, message: str) -> None:
    outputs = json.loads(json.dumps(stack_summary(scenario("A3"))))
    outputs["services"]["nginx"]["previousWeights"] = value
    with pytest.raises(ConfigError) as info:
        summary_from_outputs(outputs, "outputs.json")
    (finding,) = info.value.findings
    assert (finding.code, finding.path) == ("MK008", path) and message in finding.message, finding


def test_program_exports_the_weights_to_roll_back_to(monkeypatch: pytest.MonkeyPatch) -> None:
    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda key, value: exported.__setitem__(key, value))
    with pulumi_mocks(scenario_raw("A4")) as run:
        run(lambda: main(read_deployed=lambda stack: _deploy("A2", "A3")))
    assert exported["services"]["nginx"]["previousWeights"] == {"v1": 70, "v2": 30}
    assert exported["services"]["nginx"]["weights"] == {"v1": 20, "v2": 80}
