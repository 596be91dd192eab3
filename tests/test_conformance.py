"""Every object rendered for every stack and scenario step conforms to the Istio and Kubernetes schemas."""

from __future__ import annotations

import copy

import pytest

from meshkit.config import load_stack_file
from meshkit.conformance import schema_errors
from meshkit.render import render_stack

from .scenario_data import REPO, SCENARIO_STEPS, scenario

STACKS = sorted(p.name for p in (REPO / "stacks").glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("step", SCENARIO_STEPS)
def test_scenario_manifests_conform(step: str) -> None:
    for manifest in render_stack(scenario(step)):
        assert schema_errors(manifest) == [], manifest["metadata"]


@pytest.mark.parametrize("stack_file", STACKS)
def test_stack_manifests_conform(stack_file: str) -> None:
    for manifest in render_stack(load_stack_file(REPO / "stacks" / stack_file)):
        assert schema_errors(manifest) == [], manifest["metadata"]


def test_schema_checks_can_fail() -> None:
    virtual_service = next(
        m for m in render_stack(scenario("B4")) if m["metadata"]["name"] == "ratings" and m["kind"] == "VirtualService"
    )
    broken = copy.deepcopy(virtual_service)
    broken["spec"]["http"][0]["fault"]["abort"]["httpStatus"] = "500"
    assert any("httpStatus" in e for e in schema_errors(broken))
    deployment = copy.deepcopy(next(m for m in render_stack(scenario("A1")) if m["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    assert schema_errors(deployment)
