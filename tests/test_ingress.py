"""Ingresses: Istio's Bookinfo gateway as meshkit renders it, and a service's routing applied at the gateway.

The refusals (MK701 to MK706, MK210) are cases of tests/bad_configs.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.config.stack import StackConfig
from meshkit.errors import ConfigError
from meshkit.mesh.checks import check_stack, validate_stack
from meshkit.mesh.ingress import service_host
from meshkit.mesh.istio import virtual_service_manifest
from meshkit.mesh.render import render_stack
from meshkit.pulumi.program import build_mesh, main
from meshkit.rollout.plan import plan_changes
from meshkit.rollout.summary import stack_summary, summary_from_outputs

from .pulumi_mocks import pulumi_mocks
from .scenario_data import SCENARIO_STEPS, scenario, scenario_raw, stack_file_text

# The routing of Istio's samples/bookinfo/networking/bookinfo-gateway.yaml (Istio 1.30): a Gateway on the
# ingress gateway pods, HTTP on 8080 for every host, and these five paths to productpage's port 9080.
BOOKINFO_PATHS = [
    {"uri": {"exact": "/productpage"}},
    {"uri": {"prefix": "/static"}},
    {"uri": {"exact": "/login"}},
    {"uri": {"exact": "/logout"}},
    {"uri": {"prefix": "/api/v1/products"}},
]


def _objects(stack: StackConfig, kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in render_stack(stack) if m["kind"] == kind}


@pytest.mark.parametrize("step", ["B1", "B2", "B3", "B4", "B5"])
def test_bookinfo_gets_the_routing_of_istios_bookinfo_gateway(step: str) -> None:
    stack = scenario(step)
    gateway = _objects(stack, "Gateway")["bookinfo-gateway"]
    assert gateway["metadata"]["namespace"] == "bookinfo"
    assert gateway["spec"] == {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
    }
    routes = _objects(stack, "VirtualService")["bookinfo-gateway"]["spec"]
    assert routes["hosts"] == ["*"] and routes["gateways"] == ["bookinfo-gateway"]
    # productpage has one version in every Bookinfo step: every path goes to it, and nothing else does.
    assert routes["http"] == [
        {
            "match": BOOKINFO_PATHS,
            "route": [
                {
                    "destination": {
                        "host": "productpage.bookinfo.svc.cluster.local",
                        "subset": "v1",
                        "port": {"number": 9080},
                    }
                }
            ],
        }
    ]


def _exposing(step: str, service: str, paths: list[dict[str, str]] | None = None) -> StackConfig:
    raw = scenario_raw(step)
    namespace = raw["services"][service]["namespace"]
    route: dict[str, Any] = {"service": service, **({"paths": paths} if paths else {})}
    if raw["services"][service].get("allowFrom") is not None:
        raw["services"][service]["allowFrom"].append({"namespace": "istio-system"})
    raw["ingresses"] = {"edge": {"namespace": namespace, "hosts": ["shop.example.com"], "routes": [route]}}
    return validate_stack(raw)


@pytest.mark.parametrize("step", [s for s in SCENARIO_STEPS if s.startswith("A") and s != "A0"])
def test_requests_through_the_ingress_get_the_services_own_weights(step: str) -> None:
    # Every canary step of scenario A, with nginx exposed: the gateway's route is the mesh route, so a step
    # moves traffic from outside exactly as it moves traffic from inside.
    stack = _exposing(step, "nginx")
    mesh = virtual_service_manifest("nginx", stack.services["nginx"])["spec"]["http"]
    (edge,) = [m for m in render_stack(stack) if m["kind"] == "VirtualService" and m["metadata"]["name"] == "edge"]
    assert [rule["match"] for rule in edge["spec"]["http"]] == [[{"uri": {"prefix": "/"}}]] * len(mesh)
    weights = [[(r["destination"]["subset"], r.get("weight")) for r in rule["route"]] for rule in edge["spec"]["http"]]
    assert weights == [[(r["destination"]["subset"], r.get("weight")) for r in rule["route"]] for rule in mesh]
    for rule in edge["spec"]["http"]:
        for entry in rule["route"]:
            assert entry["destination"]["host"] == service_host("nginx", stack.services["nginx"])
            assert entry["destination"]["port"] == {"number": 8080}


def test_header_routes_and_faults_apply_at_the_gateway_on_the_ingress_paths_only() -> None:
    # B4: jason goes to reviews v2, and ratings aborts jason's requests with HTTP 500. Exposing ratings on
    # /ratings keeps that order: the fault for jason first, then everyone else, each on that path only.
    stack = _exposing("B4", "ratings", [{"prefix": "/ratings"}])
    mesh = virtual_service_manifest("ratings", stack.services["ratings"])["spec"]["http"]
    (edge,) = [m for m in render_stack(stack) if m["kind"] == "VirtualService" and m["metadata"]["name"] == "edge"]
    rules = edge["spec"]["http"]
    assert len(rules) == len(mesh) == 2
    jason, everyone = rules
    assert jason["fault"] == mesh[0]["fault"]
    assert jason["match"] == [{**mesh[0]["match"][0], "uri": {"prefix": "/ratings"}}]
    assert everyone["match"] == [{"uri": {"prefix": "/ratings"}}] and "fault" not in everyone


def test_tls_serves_https_with_the_named_credential() -> None:
    raw = scenario_raw("B1")
    raw["ingresses"]["bookinfo-gateway"]["tls"] = {"credentialName": "bookinfo-cert"}
    del raw["ingresses"]["bookinfo-gateway"]["port"]
    gateway = _objects(validate_stack(raw), "Gateway")["bookinfo-gateway"]
    assert gateway["spec"]["servers"] == [
        {
            "port": {"number": 8443, "name": "https", "protocol": "HTTPS"},
            "hosts": ["*"],
            "tls": {"mode": "SIMPLE", "credentialName": "bookinfo-cert"},
        }
    ]


def _dependencies(recorder: Any, name: str) -> set[str]:
    return recorder.names_of(recorder.by_name(name).dependencies)


def test_the_route_from_outside_waits_for_the_gateway_and_every_routed_version() -> None:
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(_exposing("A3", "nginx")))
    assert _dependencies(recorder, "edge-ingress-virtualservice") == {
        "edge-gateway",
        "nginx-destinationrule",
        "nginx-v1-deployment",
        "nginx-v2-deployment",
    }
    assert "demo-namespace" in _dependencies(recorder, "edge-gateway")
    # A5: v1 is at 0%, so retiring it (A6) deletes its Deployment without waiting on the route from outside.
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(_exposing("A5", "nginx")))
    assert "nginx-v1-deployment" not in _dependencies(recorder, "edge-ingress-virtualservice")


def test_the_plan_shows_a_new_ingress_and_the_weights_it_moves() -> None:
    added = plan_changes(stack_summary(scenario("A3")), stack_summary(_exposing("A3", "nginx")))
    assert [(c.service, c.aspect, c.after) for c in added if c.service == "ingress edge"] == [
        ("ingress edge", "ingress", "http shop.example.com port 8080, namespace demo"),
        ("ingress edge", "route[0]", "uri^=/ → nginx"),
    ]
    # A canary step of an exposed service: its weights move at the gateway too, and the plan says so.
    step = plan_changes(stack_summary(_exposing("A3", "nginx")), stack_summary(_exposing("A4", "nginx")))
    assert [(c.service, c.aspect, c.arrow) for c in step if c.service == "ingress edge"] == [
        ("ingress edge", "weight v1 of nginx", "70 → 20"),
        ("ingress edge", "weight v2 of nginx", "30 → 80"),
    ]


def test_ingresses_in_the_outputs_read_back_as_written() -> None:
    summary = stack_summary(scenario("B4"))
    assert summary_from_outputs(json.loads(json.dumps(summary)), "outputs.json") == summary
    broken = json.loads(json.dumps(summary))
    broken["ingresses"]["bookinfo-gateway"]["routes"][0]["paths"] = "/productpage"
    with pytest.raises(
        ConfigError, match=r"MK008 ingresses\.bookinfo-gateway\.routes\[0\]\.paths: must be a JSON list"
    ):
        summary_from_outputs(broken, "outputs.json")


@pytest.mark.parametrize(
    ("sent", "allowed", "admitted"),
    [
        ({"exact": "/login"}, "/login", True),
        ({"exact": "/login"}, "/logout", False),
        ({"exact": "/api"}, "/api/*", False),  # Istio's /api/* is the prefix /api/
        ({"exact": "/api/v1"}, "/api/*", True),
        ({"prefix": "/api"}, "/api/*", True),  # /api/x is sent and admitted
        ({"prefix": "/static"}, "/admin/*", False),
        ({"prefix": "/"}, "/admin", True),
        ({"prefix": "/static"}, "/stat", False),
        ({"exact": "/a.css"}, "*.css", True),
        ({"exact": "/a.js"}, "*.css", False),
        ({"prefix": "/static"}, "*.css", True),
        ({"exact": "/x"}, "*", True),
        ({"regex": "/x/.*"}, "/y", True),  # a regex cannot be told apart: no refusal
        ({"exact": "/x"}, "/{*}/y", True),  # nor a path template
    ],
)
def test_an_ingress_path_against_an_allow_rule_path(sent: dict[str, str], allowed: str, admitted: bool) -> None:
    raw = scenario_raw("B1")
    raw["namespaces"]["bookinfo"]["defaultDeny"] = True
    raw["services"]["productpage"]["allowFrom"] = [{"namespace": "istio-system", "paths": [allowed]}]
    raw["ingresses"]["bookinfo-gateway"]["routes"][0]["paths"] = [sent]
    findings = check_stack(StackConfig.model_validate(raw))
    assert [(f.code, f.path) for f in findings] == ([] if admitted else [
        ("MK703", "ingresses.bookinfo-gateway.routes[0].paths")
    ])  # fmt: skip


def test_one_allow_rule_without_paths_admits_the_gateway_on_every_path() -> None:
    raw = scenario_raw("B1")
    raw["services"]["productpage"]["allowFrom"] = [
        {"namespace": "istio-system", "paths": ["/admin/*"]},
        {"namespace": "istio-system", "methods": ["GET"]},
    ]
    assert check_stack(StackConfig.model_validate(raw)) == []


def _two_ingresses(new: str, hosts: list[str]) -> dict[str, Any]:
    """B1 (ingress bookinfo-gateway: every host on 8080) and a second ingress on the same port and pods."""
    raw = scenario_raw("B1")
    raw["ingresses"][new] = {"namespace": "bookinfo", "hosts": hosts, "routes": [{"service": "productpage"}]}
    raw["services"]["productpage"]["allowFrom"] = None
    return raw


def _mk705(raw: dict[str, Any], deployed: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    return [(f.path, f.message) for f in check_stack(StackConfig.model_validate(raw), deployed) if f.code == "MK705"]


def test_mk705_names_the_deployed_ingress_as_the_one_that_serves_even_when_the_new_one_sorts_first() -> None:
    deployed = stack_summary(scenario("B1"))
    ((path, message),) = _mk705(_two_ingresses("api-gateway", ["api.example.com"]), deployed)
    assert path == "ingresses.api-gateway.hosts"
    assert message.startswith("ingress 'bookinfo-gateway' already serves * on port 8080 of the same gateway pods")
    assert "it is deployed" in message and "drop this ingress's routes for api.example.com" in message


def test_mk705_without_a_deployment_names_the_first_by_name_as_istio_ranks_gateways_created_together() -> None:
    ((path, message),) = _mk705(_two_ingresses("api-gateway", ["api.example.com"]))
    assert path == "ingresses.bookinfo-gateway.hosts"
    assert message.startswith("ingress 'api-gateway' already serves api.example.com on port 8080")
    assert "the first by name" in message and "routes for *" in message


def test_mk705_names_the_hosts_each_ingress_serves() -> None:
    raw = _two_ingresses("shop", ["*.example.com"])
    raw["ingresses"]["bookinfo-gateway"]["hosts"] = ["bookinfo.example.com", "other.example.org"]
    ((path, message),) = _mk705(raw, stack_summary(scenario("B1")))
    assert path == "ingresses.shop.hosts"
    assert "already serves bookinfo.example.com on port" in message and "routes for *.example.com" in message


def test_check_and_the_program_name_the_deployed_ingress_from_the_last_deployment(tmp_path: Path) -> None:
    raw = _two_ingresses("api-gateway", ["api.example.com"])
    deployed = stack_summary(scenario("B1"))
    stack_file, outputs = tmp_path / "Pulumi.b.yaml", tmp_path / "outputs.json"
    stack_file.write_text(stack_file_text(raw))
    outputs.write_text(json.dumps(deployed))
    result = CliRunner().invoke(app, ["check", str(stack_file), "--deployed", str(outputs), "--json"])
    assert [f["path"] for f in json.loads(result.output)["findings"] if f["code"] == "MK705"] == [
        "ingresses.api-gateway.hosts"
    ]
    with pulumi_mocks(raw) as run, pytest.raises(pulumi.RunError) as info:
        run(lambda: main(read_deployed=lambda stack: deployed))
    assert "MK705 ingresses.api-gateway.hosts: ingress 'bookinfo-gateway' already serves" in str(info.value)
