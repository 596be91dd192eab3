"""Every step of scenarios A and B, deployed with `pulumi up` to a real API server.

After each step: the objects the API server stores are what `meshkit render` shows, spec for spec, and no
others; every Deployment is Available; Istio's analyzer finds nothing against the live cluster (every object
also passed istiod's validating webhook, and the pods its injector); a second `up` writes nothing (the audit
log's word). The order of writes comes from watches, whose resourceVersions are etcd revisions: one order
across every kind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshkit.mesh.render import render_stack
from toolchain.cluster import LocalCluster

from ..scenario_data import A_STEPS, B_STEPS, C_STEPS, scenario
from . import istio
from .deploy import (
    DEPLOYMENT,
    DESTINATION_RULE,
    GATEWAY,
    VIRTUAL_SERVICE,
    extra_objects,
    new_live_stack,
    routed_subsets,
    stored_against_render,
    unavailable_deployments,
)
from .kube import Event, Kube, Recording, object_path

pytestmark = pytest.mark.live


def _available(event: Event) -> bool:
    status = event.object.get("status") or {}
    return status.get("availableReplicas", 0) >= event.object["spec"]["replicas"] and any(
        c["type"] == "Available" and c["status"] == "True" for c in status.get("conditions") or []
    )


def _subsets(event: Event) -> set[str]:
    return {s["name"] for s in event.object["spec"].get("subsets", [])}


def _routed(event: Event) -> set[str]:
    return routed_subsets(event.object)


WATCHED = (DEPLOYMENT, DESTINATION_RULE, VIRTUAL_SERVICE, GATEWAY)
SERVICE, HTTP_ROUTE, WAYPOINT = (
    ("v1", "Service"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
)


def _walk(
    steps: list[str],
    namespace: str,
    cluster: LocalCluster,
    kube: Kube,
    directory: Path,
    kinds: tuple[tuple[str, str], ...] = WATCHED,
) -> dict[str, Recording]:
    """Deploy each step in turn and check what landed; the watch recording of each step's `up`."""
    stack = new_live_stack(directory, cluster)
    recordings = {}
    for step in steps:
        config = scenario(step)
        stack.use_step(step)
        with kube.watching(namespace, *kinds) as recording:
            stack.up()
        recordings[step] = recording
        assert stored_against_render(kube, config) == [], step
        assert extra_objects(kube, config) == [], step
        assert unavailable_deployments(kube, config) == [], step
        assert istio.findings(cluster) == [], f"{step}: istioctl analyze -A against the live cluster"
        # Idempotent: a second `up` of the same file sends the API server no write at all.
        offset = kube.audit_offset()
        stack.up()
        assert kube.audit_writes(offset) == [], f"{step}: the second up wrote"
    last = scenario(steps[-1])
    stack.destroy()
    left = [m["metadata"]["name"] for m in render_stack(last) if kube.get(object_path(m)) is not None]
    assert left == [], "pulumi destroy left objects behind"
    return recordings


def test_scenario_a_on_a_live_cluster(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    recordings = _walk(A_STEPS, "demo", cluster, kube, tmp_path)

    # A3, make-before-break: subset v2 and the v2 pods, Available, before any route sends v2 a request.
    a3 = recordings["A3"]
    routed = a3.first("VirtualService", "nginx", lambda e: "v2" in _routed(e))
    subset = a3.first("DestinationRule", "nginx", lambda e: "v2" in _subsets(e))
    available = a3.first("Deployment", "nginx-v2", _available)
    assert routed and subset and available, a3.events
    assert subset.resource_version < routed.resource_version
    assert available.resource_version < routed.resource_version

    # A5 then A6: the route leaves v1 first; then its subset goes, and its Deployment after that.
    left_route = recordings["A5"].first("VirtualService", "nginx", lambda e: "v1" not in _routed(e))
    a6 = recordings["A6"]
    left_subset = a6.first("DestinationRule", "nginx", lambda e: "v1" not in _subsets(e))
    deleted = a6.first("Deployment", "nginx-v1", lambda e: e.type == "DELETED")
    assert left_route and left_subset and deleted, a6.events
    assert left_route.resource_version < left_subset.resource_version < deleted.resource_version
    assert not [e for e in a6.events if e.kind == "VirtualService"], "A6 must not touch the routes"


def test_scenario_b_on_a_live_cluster(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    recordings = _walk(B_STEPS, "bookinfo", cluster, kube, tmp_path)

    # B1 creates everything: no VirtualService exists before the Deployments it routes to are Available.
    b1 = recordings["B1"]
    for service, versions in {"reviews": ["v1"], "ratings": ["v1"], "details": ["v1"], "productpage": ["v1"]}.items():
        created = b1.first("VirtualService", service, lambda e: e.type == "ADDED")
        assert created, b1.events
        for version in versions:
            ready = b1.first("Deployment", f"{service}-{version}", _available)
            assert ready and ready.resource_version < created.resource_version, service
    # The route from outside (Istio's bookinfo-gateway) waits for its Gateway and for productpage's pods.
    from_outside = b1.first("VirtualService", "bookinfo-gateway", lambda e: e.type == "ADDED")
    gateway = b1.first("Gateway", "bookinfo-gateway", lambda e: e.type == "ADDED")
    ready = b1.first("Deployment", "productpage-v1", _available)
    assert from_outside and gateway and ready, b1.events
    assert gateway.resource_version < from_outside.resource_version
    assert ready.resource_version < from_outside.resource_version
    # B5 moves reviews to v3 only after v3's pods (deployed since B1) are Available.
    b5 = recordings["B5"]
    to_v3 = b5.first("VirtualService", "reviews", lambda e: "v3" in _routed(e))
    assert to_v3 and not b5.first("Deployment", "reviews-v3", lambda e: e.type != "MODIFIED" or not _available(e))


def _backends(event: Event) -> set[str]:
    return {ref["name"] for rule in event.object["spec"]["rules"] for ref in rule.get("backendRefs", [])}


def test_scenario_c_on_a_live_cluster(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    # Scenario A's canary on the Gateway API in an ambient namespace.
    recordings = _walk(C_STEPS, "demo", cluster, kube, tmp_path, kinds=(DEPLOYMENT, SERVICE, HTTP_ROUTE, WAYPOINT))

    # The waypoint exists before the first route, so L7 routing applies from the first request.
    c1 = recordings["C1"]
    waypoint = c1.first("Gateway", "waypoint", lambda e: e.type == "ADDED")
    route = c1.first("HTTPRoute", "nginx", lambda e: e.type == "ADDED")
    assert waypoint and route and waypoint.resource_version < route.resource_version, c1.events

    # C3, make-before-break: the v2 Service and the v2 pods, Available, before the route names nginx-v2.
    c3 = recordings["C3"]
    routed = c3.first("HTTPRoute", "nginx", lambda e: "nginx-v2" in _backends(e))
    backend = c3.first("Service", "nginx-v2", lambda e: e.type == "ADDED")
    available = c3.first("Deployment", "nginx-v2", _available)
    assert routed and backend and available, c3.events
    assert backend.resource_version < routed.resource_version
    assert available.resource_version < routed.resource_version

    # C5 then C6: the route leaves v1 first; its Service and Deployment go in the next step, untouched route.
    left = recordings["C5"].first("HTTPRoute", "nginx", lambda e: "nginx-v1" not in _backends(e))
    c6 = recordings["C6"]
    gone = [c6.first(kind, "nginx-v1", lambda e: e.type == "DELETED") for kind in ("Service", "Deployment")]
    assert left and all(gone), c6.events
    assert not [e for e in c6.events if e.kind == "HTTPRoute"], "C6 must not touch the route"
