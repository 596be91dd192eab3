"""Rendering: the manifests of each scenario step carry the routing semantics of Istio's own samples."""

from __future__ import annotations

import copy
from typing import Any

from meshkit.config.stack import StackConfig
from meshkit.mesh.render import render_stack

from .scenario_data import SCENARIO_STEPS, nginx_stack, scenario

# The seed's cookie regex, ^(.*?;)?(user=jason)(;.*)?$, missed the cookie after a browser's "; " (issue 12):
# the shorthand renders one that finds it anywhere (tests/test_cookies.py runs both through RE2).
JASON_COOKIE = {"headers": {"cookie": {"regex": r"^(.*?;[ \t]*)?(user=jason)([ \t]*;.*)?$"}}}


def _by_kind(stack: StackConfig) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in render_stack(stack)}


def _http(stack: StackConfig, service: str) -> list[dict[str, Any]]:
    """The VirtualService's http rules, without rule names (Istio's samples leave them out)."""
    rules = copy.deepcopy(_by_kind(stack)[("VirtualService", service)]["spec"]["http"])
    for rule in rules:
        rule.pop("name", None)
    return rules


def _to(host: str, subset: str, weight: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"destination": {"host": host, "subset": subset}}
    if weight is not None:
        entry["weight"] = weight
    return entry


# --- scenario B: Istio's Bookinfo samples ---------------------------------------------------------------


def test_b1_every_service_routes_to_v1() -> None:
    stack = scenario("B1")
    for service in ("productpage", "details", "reviews", "ratings"):
        assert _http(stack, service) == [{"route": [_to(service, "v1")]}]  # virtual-service-all-v1.yaml


def test_b2_jason_sees_reviews_v2_by_cookie() -> None:
    assert _http(scenario("B2"), "reviews") == [
        {"match": [JASON_COOKIE], "route": [_to("reviews", "v2")]},
        {"route": [_to("reviews", "v1")]},
    ]


def test_b2_end_user_header_form_of_current_samples() -> None:
    raw = scenario("B2").model_dump(by_alias=True, exclude_defaults=True)
    raw["services"]["reviews"]["traffic"]["routes"][0]["match"] = {"headers": {"end-user": {"exact": "jason"}}}
    assert _http(StackConfig.model_validate(raw), "reviews")[0] == {
        "match": [{"headers": {"end-user": {"exact": "jason"}}}],
        "route": [_to("reviews", "v2")],
    }  # virtual-service-reviews-test-v2.yaml


def test_b3_seven_second_delay_for_jason_on_ratings() -> None:
    assert _http(scenario("B3"), "ratings") == [
        {
            "match": [JASON_COOKIE],
            "fault": {"delay": {"fixedDelay": "7s", "percentage": {"value": 100.0}}},
            "route": [_to("ratings", "v1")],
        },
        {"route": [_to("ratings", "v1")]},
    ]  # virtual-service-ratings-test-delay.yaml


def test_b4_http_500_abort_for_jason_on_ratings() -> None:
    assert _http(scenario("B4"), "ratings") == [
        {
            "match": [JASON_COOKIE],
            "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 100.0}}},
            "route": [_to("ratings", "v1")],
        },
        {"route": [_to("ratings", "v1")]},
    ]  # virtual-service-ratings-test-abort.yaml


def test_b5_half_of_reviews_to_v3() -> None:
    stack = scenario("B5")
    assert _http(stack, "reviews") == [{"route": [_to("reviews", "v1", 50), _to("reviews", "v3", 50)]}]
    assert _http(stack, "ratings") == [{"route": [_to("ratings", "v1")]}]


def test_every_service_has_a_subset_per_version() -> None:
    subsets = _by_kind(scenario("B1"))[("DestinationRule", "reviews")]["spec"]["subsets"]
    assert subsets == [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")]


# --- scenario A: the nginx canary ------------------------------------------------------------------------


def test_a0_namespace_is_labelled_for_sidecar_injection() -> None:
    namespace, peer_authentication = render_stack(scenario("A0"))
    assert namespace["metadata"] == {"name": "demo", "labels": {"istio-injection": "enabled"}}
    assert peer_authentication["kind"] == "PeerAuthentication"
    assert peer_authentication["metadata"] == {"name": "default", "namespace": "demo"}
    assert peer_authentication["spec"] == {"mtls": {"mode": "STRICT"}}


def test_a1_objects_of_a_versioned_service() -> None:
    objects = _by_kind(scenario("A1"))
    service = objects[("Service", "nginx")]
    assert service["spec"]["selector"] == {"app": "nginx"}
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": 80, "protocol": "TCP"}]
    deployment = objects[("Deployment", "nginx-v1")]
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "nginx", "version": "v1"}
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.14"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"}
    ]
    assert objects[("DestinationRule", "nginx")]["spec"]["subsets"] == [{"name": "v1", "labels": {"version": "v1"}}]
    assert _http(scenario("A1"), "nginx") == [{"route": [_to("nginx", "v1")]}]


def test_a2_sleep_client_runs_its_command() -> None:
    container = _by_kind(scenario("A2"))[("Deployment", "sleep-v1")]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/bin/sleep", "3650d"]


def test_a3_to_a5_weights() -> None:
    assert _http(scenario("A3"), "nginx") == [{"route": [_to("nginx", "v1", 70), _to("nginx", "v2", 30)]}]
    assert _http(scenario("A4"), "nginx") == [{"route": [_to("nginx", "v1", 20), _to("nginx", "v2", 80)]}]
    # A5: v1 is still deployed and in the DestinationRule, but no route mentions it.
    assert _http(scenario("A5"), "nginx") == [{"route": [_to("nginx", "v2")]}]
    assert ("Deployment", "nginx-v1") in _by_kind(scenario("A5"))


def test_a6_v1_is_gone_everywhere() -> None:
    objects = _by_kind(scenario("A6"))
    assert ("Deployment", "nginx-v1") not in objects
    assert objects[("DestinationRule", "nginx")]["spec"]["subsets"] == [{"name": "v2", "labels": {"version": "v2"}}]
    assert _http(scenario("A6"), "nginx") == _http(scenario("A5"), "nginx")


def test_every_namespaced_object_names_its_namespace() -> None:
    for step in SCENARIO_STEPS:
        for manifest in render_stack(scenario(step)):
            assert (manifest["kind"] == "Namespace") != ("namespace" in manifest["metadata"]), manifest


def test_istio_objects_use_the_v1_api() -> None:
    kinds = {m["kind"]: m["apiVersion"] for m in render_stack(scenario("A3"))}
    assert kinds["VirtualService"] == kinds["DestinationRule"] == "networking.istio.io/v1"


# --- composition of faults, routes, timeouts, retries, mirror --------------------------------------------


def test_fault_with_the_same_match_as_a_route_rides_on_that_route() -> None:
    match = {"cookie": {"user": "jason"}}
    stack = StackConfig.model_validate(nginx_stack(
        traffic={"weights": {"v1": 100}, "routes": [{"name": "jason", "match": match, "to": "v2"}]},
        faults=[{"match": match, "delay": {"fixedDelay": "2s"}}],
    ))  # fmt: skip
    rules = _http(stack, "nginx")
    assert len(rules) == 2
    assert rules[0]["route"] == [_to("nginx", "v2")]
    assert rules[0]["fault"] == {"delay": {"fixedDelay": "2s", "percentage": {"value": 100.0}}}
    assert "fault" not in rules[1]


def test_unscoped_fault_applies_to_every_rule() -> None:
    stack = StackConfig.model_validate(nginx_stack(
        traffic={"weights": {"v1": 100}, "routes": [{"match": {"cookie": {"user": "jason"}}, "to": "v2"}]},
        faults=[{"abort": {"httpStatus": 503, "percentage": 10}, "allowUnscoped": True}],
    ))  # fmt: skip
    rules = _http(stack, "nginx")
    assert [r["fault"] for r in rules] == [{"abort": {"httpStatus": 503, "percentage": {"value": 10.0}}}] * 2


def test_timeouts_retries_and_mirror() -> None:
    stack = StackConfig.model_validate(nginx_stack(traffic={
        "weights": {"v1": 100},
        "timeout": "3s",
        "retries": {"attempts": 1, "perTryTimeout": "3s", "retryOn": "5xx,connect-failure"},
        "mirror": {"version": "v2", "percentage": 5},
        "routes": [{"match": {"uri": {"prefix": "/api"}}, "to": "v2", "timeout": "10s"}],
    }))  # fmt: skip
    route, default = _http(stack, "nginx")
    assert route["timeout"] == "10s" and route["retries"]["attempts"] == 1
    assert route["match"] == [{"uri": {"prefix": "/api"}}]
    assert default["timeout"] == "3s"
    assert default["retries"] == {"attempts": 1, "perTryTimeout": "3s", "retryOn": "5xx,connect-failure"}
    assert default["mirror"] == {"host": "nginx", "subset": "v2"}
    assert default["mirrorPercentage"] == {"value": 5.0}


def test_multi_port_service_routes_name_the_port() -> None:
    stack = StackConfig.model_validate(nginx_stack(
        ports=[{"name": "http", "port": 8080, "targetPort": 80}, {"name": "http-admin", "port": 9000}],
        traffic={"weights": {"v1": 100}, "port": 8080},
    ))  # fmt: skip
    assert _http(stack, "nginx")[0]["route"][0]["destination"]["port"] == {"number": 8080}


def test_revision_and_ambient_namespaces() -> None:
    # An ambient namespace that holds services gets its waypoint (meshkit/mesh/gatewayapi.py), and the label for it.
    ambient = {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"}
    for spec, label in (({"revision": "1-30"}, {"istio.io/rev": "1-30"}),
                        ({"dataplane": "ambient"}, ambient)):  # fmt: skip
        raw = nginx_stack()
        raw["namespaces"]["demo"] = spec
        namespace = _by_kind(StackConfig.model_validate(raw))[("Namespace", "demo")]
        assert namespace["metadata"]["labels"] == label


def test_rendering_is_deterministic_and_leaves_the_models_alone() -> None:
    stack = scenario("B4")
    before = stack.model_dump()
    assert render_stack(stack) == render_stack(scenario("B4"))
    assert stack.model_dump() == before
