"""The Gateway API path (``traffic.api: gateway``) and ambient waypoints: scenario C as meshkit renders it, the
HTTPRoute's vocabulary, the waypoint, the allow-lists behind it, the components' order, the ingress composed
with an HTTPRoute-routed service, and the summaries, plans and rollout checks of the new path.

The refusals (MK801 to MK804, and MK203, MK401, MK703 for waypoints) are cases of tests/bad_configs.yaml.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkit.config.stack import StackConfig
from meshkit.mesh.checks import check_stack, validate_stack
from meshkit.mesh.conformance import crd_schema, schema_errors
from meshkit.mesh.gatewayapi import gateway_duration, mirror_share, waypoint_of
from meshkit.mesh.render import render_stack
from meshkit.pulumi.components import (
    HTTPRouteSplit,
    HTTPRouteSplitArgs,
    TrafficSplit,
    TrafficSplitArgs,
    VersionedService,
    VersionedServiceArgs,
)
from meshkit.pulumi.failures import FailedObject, explain_failure
from meshkit.pulumi.program import build_mesh
from meshkit.rollout.draw import to_dot, to_mermaid
from meshkit.rollout.drift import weight_drift
from meshkit.rollout.plan import plan_changes
from meshkit.rollout.summary import check_rollout, stack_summary, summary_from_outputs

from .pulumi_mocks import Recorder, pulumi_mocks
from .scenario_data import SCENARIO_STEPS, scenario, scenario_raw
from .test_properties import stacks, weights

C_STEPS = [s for s in SCENARIO_STEPS if s.startswith("C")]


def _objects(stack: StackConfig) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in render_stack(stack)}


def _gateway_nginx(**traffic: Any) -> StackConfig:
    """Scenario C3 (nginx v1/v2 at 70/30 through an HTTPRoute, ambient) with nginx's traffic keys replaced."""
    raw = scenario_raw("C3")
    raw["services"]["nginx"]["traffic"].update(copy.deepcopy(traffic))
    return validate_stack(raw)


def _weights(route: dict[str, Any]) -> dict[str, int]:
    """Version Service → weight of an HTTPRoute's default (last) rule."""
    return {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][-1]["backendRefs"]}


# --- scenario C, rendered ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "weights"),
    [
        ("C1", {"nginx-v1": 100}),
        ("C2", {"nginx-v1": 100}),
        ("C3", {"nginx-v1": 70, "nginx-v2": 30}),
        ("C4", {"nginx-v1": 20, "nginx-v2": 80}),
        ("C5", {"nginx-v2": 100}),
        ("C6", {"nginx-v2": 100}),
    ],
)
def test_scenario_c_routes_each_step_through_an_http_route(step: str, weights: dict[str, int]) -> None:
    objects = _objects(scenario(step))
    route = objects[("HTTPRoute", "nginx")]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "nginx"}]
    assert _weights(route) == weights
    # No VirtualService, and no DestinationRule: the routes go to the version Services, not to subsets.
    assert not {kind for kind, _ in objects} & {"VirtualService", "DestinationRule"}
    versions = [v for v in ("v1", "v2") if v in scenario(step).services["nginx"].versions]
    for version in versions:
        backend = objects[("Service", f"nginx-{version}")]
        assert backend["spec"]["selector"] == {"app": "nginx", "version": version}
        assert backend["spec"]["ports"] == objects[("Service", "nginx")]["spec"]["ports"]
    assert {name for kind, name in objects if kind == "Service" and name.startswith("nginx-")} == {
        f"nginx-{v}" for v in versions
    }


def test_c5_keeps_v1_deployed_but_no_longer_a_backend() -> None:
    objects = _objects(scenario("C5"))
    assert ("Deployment", "nginx-v1") in objects and ("Service", "nginx-v1") in objects
    assert [ref["name"] for ref in objects[("HTTPRoute", "nginx")]["spec"]["rules"][-1]["backendRefs"]] == ["nginx-v2"]


def test_c6_retires_v1_and_leaves_the_route_as_it_was() -> None:
    c5, c6 = _objects(scenario("C5")), _objects(scenario("C6"))
    assert ("Deployment", "nginx-v1") not in c6 and ("Service", "nginx-v1") not in c6
    assert c6[("HTTPRoute", "nginx")] == c5[("HTTPRoute", "nginx")]


# --- the vocabulary of the HTTPRoute -----------------------------------------------------------------


def test_request_routes_headers_cookies_paths_timeouts_and_mirror() -> None:
    stack = _gateway_nginx(
        routes=[
            {"name": "api", "match": {"uri": {"exact": "/api/v2"}}, "to": "v2", "timeout": "250ms"},
            {"match": {"headers": {"end-user": {"exact": "jason"}, "x-team": {"prefix": "qa."}}}, "to": "v2"},
            {"name": "jason", "match": {"cookie": {"user": "jason"}}, "weights": {"v1": 50, "v2": 50}},
        ],
        timeout="1.5s",
        mirror={"version": "v2", "percentage": 10},
        weights={"v1": 100},
    )
    rules = _objects(stack)[("HTTPRoute", "nginx")]["spec"]["rules"]
    v1 = {"group": "", "kind": "Service", "name": "nginx-v1", "port": 8080}
    v2 = {"group": "", "kind": "Service", "name": "nginx-v2", "port": 8080}
    assert rules == [
        {
            "name": "api",
            "matches": [{"path": {"type": "Exact", "value": "/api/v2"}}],
            "backendRefs": [{**v2, "weight": 100}],
            "timeouts": {"request": "250ms"},
        },
        {
            "matches": [
                {
                    "path": {"type": "PathPrefix", "value": "/"},
                    "headers": [
                        {"name": "end-user", "type": "Exact", "value": "jason"},
                        {"name": "x-team", "type": "RegularExpression", "value": r"qa\..*"},
                    ],
                }
            ],
            "backendRefs": [{**v2, "weight": 100}],
            "timeouts": {"request": "1500ms"},
        },
        {
            "name": "jason",
            "matches": [
                {
                    "path": {"type": "PathPrefix", "value": "/"},
                    "headers": [
                        {
                            "name": "cookie",
                            "type": "RegularExpression",
                            "value": r"^(.*?;[ \t]*)?(user=jason)([ \t]*;.*)?$",
                        }
                    ],
                }
            ],
            "backendRefs": [{**v1, "weight": 50}, {**v2, "weight": 50}],
            "timeouts": {"request": "1500ms"},
        },
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{**v1, "weight": 100}],
            "timeouts": {"request": "1500ms"},
            "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": v2, "percent": 10}}],
        },
    ]
    assert check_stack(stack) == []
    for manifest in render_stack(stack):
        assert schema_errors(manifest) == [], manifest["metadata"]


def test_a_routing_port_is_the_parent_port_and_every_backend_port() -> None:
    raw = scenario_raw("C3")
    raw["services"]["nginx"]["ports"].append({"name": "http-admin", "port": 9090})
    raw["services"]["nginx"]["traffic"]["port"] = 8080
    route = _objects(validate_stack(raw))[("HTTPRoute", "nginx")]["spec"]
    assert route["parentRefs"] == [{"group": "", "kind": "Service", "name": "nginx", "port": 8080}]
    assert {ref["port"] for ref in route["rules"][-1]["backendRefs"]} == {8080}


@pytest.mark.parametrize(
    ("istio", "gateway"),
    [("7s", "7s"), ("250ms", "250ms"), ("1m30s", "1m30s"), ("1.5s", "1500ms"), ("90m", "90m"), ("100000s", "27h46m40s"),
     ("0.5ms", None), ("1500us", None), ("1000000ns", "1ms"), ("200000h", None)],
)  # fmt: skip
def test_durations_become_gateway_api_durations(istio: str, gateway: str | None) -> None:
    assert gateway_duration(istio) == gateway


def test_a_mirror_share_is_a_percent_or_an_exact_fraction() -> None:
    assert mirror_share(10) == {"percent": 10}
    assert mirror_share(0.5) == {"fraction": {"numerator": 5, "denominator": 1000}}
    assert mirror_share(12.25) == {"fraction": {"numerator": 1225, "denominator": 10000}}
    assert mirror_share(1e-9) is None


# --- invariants over generated configs (Hypothesis), as tests/test_properties.py for VirtualServices -----


def _on_the_gateway_api(raw: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    raw["namespaces"]["demo"] = {"dataplane": "ambient"}
    raw["services"]["nginx"]["traffic"]["api"] = "gateway"
    return raw


@settings(max_examples=200, deadline=None)
@given(stacks())
def test_every_rule_sends_exactly_100_percent_to_version_services_that_exist(raw: dict[str, Any]) -> None:
    manifests = render_stack(validate_stack(_on_the_gateway_api(raw)))
    (route,) = [m for m in manifests if m["kind"] == "HTTPRoute"]
    services = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Service"}
    deployments = {m["metadata"]["name"] for m in manifests if m["kind"] == "Deployment"}
    for rule in route["spec"]["rules"]:
        assert sum(ref["weight"] for ref in rule["backendRefs"]) == 100
        for ref in rule["backendRefs"]:
            assert ref["weight"] > 0 and ref["name"] in deployments
            assert services[ref["name"]]["spec"]["selector"]["version"] == ref["name"].removeprefix("nginx-")
            assert ref["port"] in {p["port"] for p in services[ref["name"]]["spec"]["ports"]}


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_pure_weight_change_alters_only_the_http_route(data: st.DataObject) -> None:
    raw = _on_the_gateway_api(data.draw(stacks()))
    changed = copy.deepcopy(raw)
    changed["services"]["nginx"]["traffic"]["weights"] = data.draw(weights(list(raw["services"]["nginx"]["versions"])))
    before, after = render_stack(validate_stack(raw)), render_stack(validate_stack(changed))
    assert {m["kind"] for m, n in zip(before, after, strict=True) if m != n} <= {"HTTPRoute"}


# --- the order Istio gives HTTPRoute rules (MK802) ---------------------------------------------------


def _order_findings(*routes: dict[str, Any]) -> list[tuple[str, str]]:
    raw = scenario_raw("C3")
    raw["services"]["nginx"]["traffic"].update({"routes": list(routes), "weights": {"v1": 100}})
    return [(f.code, f.path) for f in check_stack(StackConfig.model_validate(raw)) if f.code == "MK802"]


def test_rules_listed_most_specific_first_keep_their_order() -> None:
    assert (
        _order_findings(
            {"match": {"uri": {"exact": "/login"}}, "to": "v2"},
            {"match": {"uri": {"prefix": "/api"}, "headers": {"end-user": {"exact": "jason"}}}, "to": "v2"},
            {"match": {"uri": {"prefix": "/api"}}, "to": "v1"},
            {"match": {"headers": {"end-user": {"exact": "jason"}, "x-team": {"exact": "qa"}}}, "to": "v2"},
            {"match": {"cookie": {"user": "jason"}}, "to": "v2"},
        )
        == []
    )


def test_a_later_rule_that_istio_ranks_higher_is_refused_unless_the_two_cannot_both_match() -> None:
    jason = {"match": {"headers": {"end-user": {"exact": "jason"}}}, "to": "v2"}
    assert _order_findings(jason, {"match": {"uri": {"prefix": "/api"}}, "to": "v1"}) == [
        ("MK802", "services.nginx.traffic.routes[1].match")
    ]
    two_headers = {"match": {"headers": {"end-user": {"exact": "alice"}, "x-team": {"exact": "qa"}}}, "to": "v1"}
    assert _order_findings(jason, two_headers) == []  # end-user is jason or alice: never both


def test_a_regex_path_would_never_be_reached_behind_the_default_route() -> None:
    assert _order_findings({"match": {"uri": {"regex": "/api/v[0-9]+"}}, "to": "v2"}) == [
        ("MK802", "services.nginx.traffic.routes[0].match.uri")
    ]


# --- waypoints ---------------------------------------------------------------------------------------


def test_the_waypoint_is_the_gateway_istioctl_waypoint_generate_writes() -> None:
    objects = _objects(scenario("C1"))
    assert objects[("Gateway", "waypoint")] == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "waypoint", "namespace": "demo"},
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
    }
    assert objects[("Namespace", "demo")]["metadata"]["labels"] == {
        "istio.io/dataplane-mode": "ambient",
        "istio.io/use-waypoint": "waypoint",
    }


def test_a_waypoint_comes_with_the_first_service_and_can_be_named_or_refused() -> None:
    # C0: an ambient namespace that holds no service of the stack gets none.
    assert ("Gateway", "waypoint") not in _objects(scenario("C0"))
    assert waypoint_of(scenario("C0"), "demo") is None and waypoint_of(scenario("C1"), "demo") == "waypoint"
    raw = scenario_raw("C0")
    raw["namespaces"]["demo"]["waypoint"] = "edge-l7"
    named = _objects(validate_stack(raw))
    assert ("Gateway", "edge-l7") in named
    assert named[("Namespace", "demo")]["metadata"]["labels"]["istio.io/use-waypoint"] == "edge-l7"
    raw = scenario_raw("C1")
    raw["namespaces"]["demo"]["waypoint"] = False
    without = _objects(validate_stack(raw))  # one version, no L7 rule: nothing needs a waypoint
    assert not [name for kind, name in without if kind == "Gateway"]
    assert without[("Namespace", "demo")]["metadata"]["labels"] == {"istio.io/dataplane-mode": "ambient"}
    # Sidecar namespaces never get one: their sidecars apply the routes.
    assert waypoint_of(scenario("A3"), "demo") is None


def test_behind_a_waypoint_the_allow_list_is_attached_to_the_services_it_guards() -> None:
    policy = _objects(scenario("C3"))[("AuthorizationPolicy", "nginx")]["spec"]
    assert "selector" not in policy
    assert policy["targetRefs"] == [
        {"group": "", "kind": "Service", "name": name} for name in ("nginx", "nginx-v1", "nginx-v2")
    ]
    assert policy["rules"] == [{"from": [{"source": {"principals": ["cluster.local/ns/demo/sa/sleep"]}}]}]
    # Without a waypoint, ztunnel enforces it on the pods, as in sidecar namespaces.
    assert "selector" in _objects(scenario("A3"))[("AuthorizationPolicy", "nginx")]["spec"]


def test_deny_by_default_behind_a_waypoint_admits_the_waypoint_and_denies_at_it() -> None:
    raw = scenario_raw("C3")
    raw["namespaces"]["demo"]["defaultDeny"] = True
    objects = _objects(validate_stack(raw))
    assert objects[("AuthorizationPolicy", "allow-nothing")]["spec"] == {"action": "ALLOW"}
    assert objects[("AuthorizationPolicy", "allow-waypoint")]["spec"] == {
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/demo/sa/waypoint"]}}]}],
    }
    assert objects[("AuthorizationPolicy", "allow-nothing-waypoint")]["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}],
        "action": "ALLOW",
    }
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(validate_stack(raw)))
    for name in ("demo-allow-waypoint", "demo-allow-nothing-waypoint"):
        assert "nginx-authorizationpolicy" in _dependencies(recorder, name)


# --- components: make-before-break --------------------------------------------------------------------


def _dependencies(recorder: Recorder, name: str) -> set[str]:
    return recorder.names_of(recorder.by_name(name).dependencies)


def test_the_http_route_waits_for_the_services_and_pods_of_its_backends_and_the_waypoint() -> None:
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(scenario("C3")))
    assert _dependencies(recorder, "nginx-httproute") == {
        "nginx-v1-service",
        "nginx-v2-service",
        "nginx-v1-deployment",
        "nginx-v2-deployment",
        "demo-waypoint",
    }
    assert recorder.by_name("nginx-httproute").type == "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
    assert recorder.by_name("nginx-httproute").parent.endswith("meshkit:index:HTTPRouteSplit::nginx")
    assert recorder.by_name("demo-waypoint").parent.endswith("meshkit:index:InjectedNamespace::demo")
    assert "demo-namespace" in _dependencies(recorder, "demo-waypoint")
    # Pods start once their allow-list (attached for the waypoint) exists, as in sidecar namespaces.
    assert "nginx-authorizationpolicy" in _dependencies(recorder, "nginx-v2-deployment")


def test_the_http_route_does_not_wait_for_a_version_at_zero_percent() -> None:
    # C5: v1 is still deployed, at 0%: retiring it (C6) deletes its Service and pods without touching the route.
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(scenario("C5")))
    assert _dependencies(recorder, "nginx-httproute") == {"nginx-v2-service", "nginx-v2-deployment", "demo-waypoint"}


def test_a_mirror_target_exists_before_the_route_copies_requests_to_it() -> None:
    stack = _gateway_nginx(weights={"v1": 100}, mirror={"version": "v2", "percentage": 5})
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(stack))
    assert {"nginx-v2-service", "nginx-v2-deployment"} <= _dependencies(recorder, "nginx-httproute")


def test_each_split_component_takes_the_api_it_renders() -> None:
    gateway, istio = scenario("C3"), scenario("A3")

    def program() -> None:
        backend = VersionedService("nginx", VersionedServiceArgs(gateway.services["nginx"], principals={"sleep": "x"}))
        assert backend.destination_rule is None and set(backend.version_services) == {"v1", "v2"}
        TrafficSplit("nginx", TrafficSplitArgs(gateway.services["nginx"], backend))

    with pulumi_mocks() as run, pytest.raises(Exception, match=r"routed by the Gateway API .*: use HTTPRouteSplit"):
        run(program)

    def other() -> None:
        backend = VersionedService("nginx", VersionedServiceArgs(istio.services["nginx"], principals={"sleep": "x"}))
        HTTPRouteSplit("nginx", HTTPRouteSplitArgs(istio.services["nginx"], backend))

    with pulumi_mocks() as run, pytest.raises(Exception, match=r"routed by a VirtualService .*: use TrafficSplit"):
        run(other)


def test_switching_a_service_to_the_gateway_api_creates_the_route_before_the_virtual_service_goes() -> None:
    # A3 → the same service on the Gateway API: the version Services and the HTTPRoute are new objects the
    # engine creates (after their backends) before it deletes the VirtualService and DestinationRule, which
    # left the program; both carry the same weights, and the plan names the switch.
    raw = scenario_raw("A3")
    raw["services"]["nginx"]["traffic"]["api"] = "gateway"
    changes = plan_changes(stack_summary(scenario("A3")), stack_summary(validate_stack(raw)))
    assert [(c.service, c.aspect, c.arrow) for c in changes] == [("nginx", "routes by", "VirtualService → HTTPRoute")]


# --- an ingress in front of a service routed by the Gateway API ---------------------------------------


def _exposed(step: str) -> StackConfig:
    raw = scenario_raw(step)
    raw["services"]["nginx"]["allowFrom"].append({"namespace": "istio-system"})
    raw["ingresses"] = {"shop": {"namespace": "demo", "hosts": ["shop.example.com"], "routes": [{"service": "nginx"}]}}
    return validate_stack(raw)


@pytest.mark.parametrize("step", ["C3", "C4", "C5", "C6"])
def test_the_ingress_sends_each_versions_share_to_its_service(step: str) -> None:
    stack = _exposed(step)
    objects = _objects(stack)
    (rule,) = objects[("VirtualService", "shop")]["spec"]["http"]
    outside = {d["destination"]["host"]: d.get("weight", 100) for d in rule["route"]}
    inside = _weights(objects[("HTTPRoute", "nginx")])
    assert outside == {f"{name}.demo.svc.cluster.local": weight for name, weight in inside.items()}
    assert all("subset" not in d["destination"] for d in rule["route"])
    assert all(d["destination"]["port"] == {"number": 8080} for d in rule["route"])
    assert check_stack(stack) == []


def test_the_route_from_outside_waits_for_the_version_services() -> None:
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(_exposed("C3")))
    assert _dependencies(recorder, "shop-ingress-virtualservice") == {
        "shop-gateway",
        "nginx-v1-service",
        "nginx-v2-service",
        "nginx-v1-deployment",
        "nginx-v2-deployment",
    }


# --- summaries, plans, pictures, rollout checks ------------------------------------------------------


def test_the_summary_names_the_api_and_the_waypoint_and_reads_back_as_written() -> None:
    summary = stack_summary(scenario("C4"))
    assert summary["services"]["nginx"]["api"] == "gateway"
    assert summary["services"]["nginx"]["weights"] == {"v1": 20, "v2": 80}
    assert summary["waypoints"] == {"demo": "waypoint"}
    assert summary_from_outputs(json.loads(json.dumps(summary)), "outputs.json") == summary
    # The outputs of a stack without either do not change (A's stay as they were).
    assert "api" not in stack_summary(scenario("A4"))["services"]["nginx"]
    assert "waypoints" not in stack_summary(scenario("A4"))


def test_the_plan_shows_http_route_weights_like_virtual_service_weights() -> None:
    def plan(before: str, after: str) -> list[tuple[str, str, str]]:
        changes = plan_changes(stack_summary(scenario(before)), stack_summary(scenario(after)))
        return [(c.service, c.aspect, c.arrow) for c in changes]

    assert plan("C3", "C4") == [("nginx", "weight v1", "70 → 20"), ("nginx", "weight v2", "30 → 80")]
    assert plan("C3", "C4") == plan("A3", "A4")
    assert plan("C0", "C1")[0] == ("namespace demo", "waypoint", "(none) → waypoint")
    assert ("nginx", "service", "(none) → namespace demo, versions v1, Gateway API (HTTPRoute)") in plan("C0", "C1")


def test_the_picture_draws_the_weights_per_version_and_names_the_api_and_the_waypoint() -> None:
    mermaid = to_mermaid(stack_summary(scenario("C3")))
    assert 'subgraph N_demo["namespace demo, waypoint waypoint"]' in mermaid
    assert 'S_nginx(["nginx (Gateway API)"])' in mermaid
    assert 'S_nginx -->|"70%"| S_nginx_V_v1' in mermaid and 'S_nginx -->|"30%"| S_nginx_V_v2' in mermaid
    assert to_mermaid(stack_summary(scenario("C3"))).count("-->") == to_mermaid(stack_summary(scenario("A3"))).count(
        "-->"
    )
    assert 'label="nginx (Gateway API)"' in to_dot(stack_summary(scenario("C3")))


@pytest.mark.parametrize(("before", "after"), list(itertools.pairwise(C_STEPS)))
def test_each_step_of_scenario_c_is_a_safe_step(before: str, after: str) -> None:
    assert check_rollout(scenario(after), stack_summary(scenario(before))) == []


def test_retiring_a_version_the_http_route_still_sends_to_is_refused() -> None:
    (finding,) = check_rollout(scenario("C6"), stack_summary(scenario("C4")))
    assert (finding.code, finding.path) == ("MK501", "services.nginx.versions")
    assert "'v1'" in finding.message and "20%" in finding.message and "its Service and pods" in finding.message
    assert finding.obj == "Service nginx-v1.demo"


def test_a_weight_step_over_max_step_is_refused_on_the_gateway_api_too() -> None:
    raw = scenario_raw("C4")
    raw["services"]["nginx"]["traffic"]["maxStep"] = 25
    findings = check_rollout(validate_stack(raw), stack_summary(scenario("C3")))
    assert {(f.code, f.path, f.obj) for f in findings} == {
        ("MK502", "services.nginx.traffic.weights.v1", "HTTPRoute nginx.demo"),
        ("MK502", "services.nginx.traffic.weights.v2", "HTTPRoute nginx.demo"),
    }


@pytest.mark.parametrize("api", ["istio", "gateway"])
def test_a_version_leaves_only_once_the_mirror_stops_copying_to_it(api: str) -> None:
    raw = scenario_raw("C5")
    raw["services"]["nginx"]["traffic"].update({"api": api, "weights": {"v1": 0, "v2": 100}})
    raw["services"]["nginx"]["traffic"]["mirror"] = {"version": "v1", "percentage": 5}
    mirrored = stack_summary(validate_stack(raw))
    retired = scenario_raw("C6")
    retired["services"]["nginx"]["traffic"]["api"] = api
    (finding,) = check_rollout(validate_stack(retired), mirrored)
    assert (finding.code, finding.path) == ("MK501", "services.nginx.versions") and "(5%)" in finding.message


def test_drift_reads_virtual_services_only() -> None:
    # A service routed by an HTTPRoute has no VirtualService to read back: it is not reported missing.
    assert [(c.service, c.aspect) for c in weight_drift(stack_summary(scenario("A4")), {})] == [
        ("nginx", "VirtualService"),
        ("sleep", "VirtualService"),
    ]
    assert weight_drift(stack_summary(scenario("C4")), {}) == []


def test_a_failed_http_route_keeps_the_routes_in_force() -> None:
    route = _objects(scenario("C4"))[("HTTPRoute", "nginx")]
    failed = FailedObject.from_hook(
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "update", route, ["admission webhook denied"]
    )
    message = explain_failure(failed)
    assert message.startswith("meshkit: update of HTTPRoute demo/nginx failed: admission webhook denied.")
    assert "The HTTPRoute nginx keeps the routes it had before this step." in message


# --- schemas -----------------------------------------------------------------------------------------


def test_crd_schemas_are_found_by_api_group_and_kind() -> None:
    istio = crd_schema("networking.istio.io/v1", "Gateway")
    gateway_api = crd_schema("gateway.networking.k8s.io/v1", "Gateway")
    assert istio is not None and "servers" in istio["properties"]["spec"]["properties"]
    assert gateway_api is not None and "listeners" in gateway_api["properties"]["spec"]["properties"]
    assert crd_schema("gateway.networking.k8s.io/v1", "VirtualService") is None


def test_the_http_route_schema_refuses_what_the_api_server_would() -> None:
    route = copy.deepcopy(_objects(scenario("C3"))[("HTTPRoute", "nginx")])
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = "seventy"
    route["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
    assert schema_errors(route) == [
        "spec.rules.0.backendRefs.0.weight: 'seventy' is not of type 'integer'",
        "spec.rules.0.matches.0.path.type: 'Prefix' is not one of ['Exact', 'PathPrefix', 'RegularExpression']",
    ]
    waypoint = copy.deepcopy(_objects(scenario("C1"))[("Gateway", "waypoint")])
    del waypoint["spec"]["gatewayClassName"]
    assert schema_errors(waypoint) == ["spec: 'gatewayClassName' is a required property"]
