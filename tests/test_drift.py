"""Drift between the last deployment and the VirtualServices the cluster stores (meshkit.rollout.drift)."""

from __future__ import annotations

import copy

from meshkit.mesh.render import render_stack
from meshkit.rollout.drift import live_weights, weight_drift
from meshkit.rollout.plan import Change
from meshkit.rollout.summary import stack_summary

from .scenario_data import scenario


def _virtual_services(step: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {m["metadata"]["name"]: m for m in render_stack(scenario(step)) if m["kind"] == "VirtualService"}


def test_no_drift_when_the_cluster_holds_what_was_deployed() -> None:
    for step in ("A3", "A5", "B2", "B4"):
        assert weight_drift(stack_summary(scenario(step)), _virtual_services(step)) == [], step


def test_a_hand_edited_weight_is_drift() -> None:
    live = _virtual_services("A3")
    edited = copy.deepcopy(live["nginx"])
    for destination in edited["spec"]["http"][-1]["route"]:
        destination["weight"] = 50
    live["nginx"] = edited
    assert live_weights(edited) == {"v1": 50, "v2": 50}
    assert weight_drift(stack_summary(scenario("A3")), live) == [
        Change("nginx", "weight v1", "70", "50"),
        Change("nginx", "weight v2", "30", "50"),
    ]


def test_the_default_route_is_read_past_request_content_routes() -> None:
    # B2: jason's route to v2 comes first; the default route (all to v1) is the last rule without a match.
    assert live_weights(_virtual_services("B2")["reviews"]) == {"v1": 100}


def test_a_deleted_virtual_service_is_drift() -> None:
    live = _virtual_services("A3")
    del live["sleep"]
    assert weight_drift(stack_summary(scenario("A3")), live) == [Change("sleep", "VirtualService", "present", "")]
