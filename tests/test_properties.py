"""Invariants over generated configs (Hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meshkit.mesh.checks import validate_stack
from meshkit.mesh.render import render_stack

VERSIONS = ["v1", "v2", "v3", "v4"]


@st.composite
def weights(draw: st.DrawFn, versions: list[str]) -> dict[str, int]:
    """A split of 100 percent over the versions (some may get 0)."""
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(versions) - 1, max_size=len(versions) - 1)))
    bounds = [0, *cuts, 100]
    return {v: bounds[i + 1] - bounds[i] for i, v in enumerate(versions)}


@st.composite
def stacks(draw: st.DrawFn) -> dict[str, Any]:
    versions = VERSIONS[: draw(st.integers(1, len(VERSIONS)))]
    routes = [
        {"match": {"headers": {f"x-user-{i}": {"exact": f"user{i}"}}}, "weights": draw(weights(versions))}
        for i in range(draw(st.integers(0, 2)))
    ]
    service = {
        "namespace": "demo",
        "ports": [{"name": "http", "port": 8080, "targetPort": 80}],
        "versions": {
            v: {"image": f"nginx:1.{i + 14}", "replicas": draw(st.integers(1, 5))} for i, v in enumerate(versions)
        },
        "traffic": {"weights": draw(weights(versions)), "routes": routes},
    }
    return {"namespaces": {"demo": {}}, "services": {"nginx": service}}


def _virtual_service(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == "VirtualService")


@settings(max_examples=200, deadline=None)
@given(stacks())
def test_every_rule_sends_exactly_100_percent(raw: dict[str, Any]) -> None:
    for rule in _virtual_service(render_stack(validate_stack(raw)))["spec"]["http"]:
        destinations = rule["route"]
        assert sum(d.get("weight", 100) for d in destinations) == 100
        assert all(d.get("weight", 100) > 0 for d in destinations)


@settings(max_examples=200, deadline=None)
@given(stacks())
def test_every_routed_subset_exists_in_the_destination_rule(raw: dict[str, Any]) -> None:
    manifests = render_stack(validate_stack(raw))
    subsets = {s["name"] for m in manifests if m["kind"] == "DestinationRule" for s in m["spec"]["subsets"]}
    deployments = {m["metadata"]["labels"]["version"] for m in manifests if m["kind"] == "Deployment"}
    routed = {d["destination"]["subset"] for r in _virtual_service(manifests)["spec"]["http"] for d in r["route"]}
    assert routed <= subsets == deployments


@settings(max_examples=100, deadline=None)
@given(stacks())
def test_rendering_is_deterministic(raw: dict[str, Any]) -> None:
    stack = validate_stack(raw)
    again = validate_stack(stack.model_dump(by_alias=True))
    assert render_stack(stack) == render_stack(stack) == render_stack(again)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_pure_weight_change_alters_only_the_virtual_service(data: st.DataObject) -> None:
    raw = data.draw(stacks())
    versions = list(raw["services"]["nginx"]["versions"])
    changed = {**raw, "services": {"nginx": {**raw["services"]["nginx"]}}}
    changed["services"]["nginx"]["traffic"] = {
        **raw["services"]["nginx"]["traffic"],
        "weights": data.draw(weights(versions)),
    }
    before, after = render_stack(validate_stack(raw)), render_stack(validate_stack(changed))
    differing = {m["kind"] for m, n in zip(before, after, strict=True) if m != n}
    assert differing <= {"VirtualService"}
