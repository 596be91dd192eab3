"""End-to-end: every scenario step through the real Pulumi CLI and Kubernetes provider, in render mode.

Before each `up`, the engine's own plan (`pulumi preview --json`) must contain exactly the expected
operations; after it, the rendered manifests must show the step, and a second preview must be empty.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..scenario_data import scenario_raw, stack_file_text
from .engine import VENV_BIN, PulumiProject, Step, new_project

pytestmark = pytest.mark.e2e

DR, VS, DEPLOY = (
    "kubernetes:networking.istio.io/v1:DestinationRule",
    "kubernetes:networking.istio.io/v1:VirtualService",
    "kubernetes:apps/v1:Deployment",
)


def _ops(plan: list[Step]) -> set[tuple[str, str]]:
    return {(s.op, s.name) for s in plan if s.type != "pulumi:pulumi:Stack"}


def _created(*names: str) -> set[tuple[str, str]]:
    return {("create", n) for n in names}


def _service_objects(name: str, *versions: str, allow_list: bool = False) -> list[str]:
    objects = [name, f"{name}-serviceaccount", f"{name}-service", *(f"{name}-{v}-deployment" for v in versions),
               f"{name}-destinationrule", f"{name}-virtualservice"]  # fmt: skip
    return objects + ([f"{name}-authorizationpolicy"] if allow_list else [])


# Scenario A: the expected plan of each step, relative to the one before.
A_PLANS: dict[str, set[tuple[str, str]]] = {
    "A0": _created("k8s", "demo", "demo-namespace", "demo-peerauthentication"),
    "A1": _created(*_service_objects("nginx", "v1")),
    # sleep arrives, and from now on only sleep may call nginx
    "A2": _created(*_service_objects("sleep", "v1"), "nginx-authorizationpolicy"),
    "A3": {("create", "nginx-v2-deployment"), ("update", "nginx-destinationrule"), ("update", "nginx-virtualservice")},
    "A4": {("update", "nginx-virtualservice")},
    "A5": {("update", "nginx-virtualservice")},
    "A6": {("delete", "nginx-v1-deployment"), ("update", "nginx-destinationrule")},
}

B_PLANS: dict[str, set[tuple[str, str]]] = {
    "B1": _created(
        "k8s",
        "bookinfo",
        "bookinfo-namespace",
        "bookinfo-peerauthentication",
        *_service_objects("productpage", "v1"),
        *_service_objects("details", "v1", allow_list=True),
        *_service_objects("reviews", "v1", "v2", "v3", allow_list=True),
        *_service_objects("ratings", "v1", allow_list=True),
        # Istio's bookinfo-gateway: the Gateway, and productpage's routes at it.
        "bookinfo-gateway",
        "bookinfo-gateway-gateway",
        "bookinfo-gateway-ingress-virtualservice",
    ),
    "B2": {("update", "reviews-virtualservice")},
    "B3": {("update", "ratings-virtualservice")},
    "B4": {("update", "ratings-virtualservice")},
    "B5": {("update", "reviews-virtualservice"), ("update", "ratings-virtualservice")},
}


def _gateway_service_objects(name: str, *versions: str, allow_list: bool = False) -> list[str]:
    """A service routed by the Gateway API: a Service per version and an HTTPRoute, no DestinationRule or
    VirtualService."""
    objects = [name, f"{name}-serviceaccount", f"{name}-service", *(f"{name}-{v}-deployment" for v in versions),
               *(f"{name}-{v}-service" for v in versions), f"{name}-httproute"]  # fmt: skip
    return objects + ([f"{name}-authorizationpolicy"] if allow_list else [])


# Scenario C: scenario A's canary on the Gateway API, in an ambient namespace with a waypoint.
C_PLANS: dict[str, set[tuple[str, str]]] = {
    "C0": _created("k8s", "demo", "demo-namespace", "demo-peerauthentication"),
    # the first service: the namespace gets its waypoint, and the label that sends traffic through it
    "C1": _created(*_gateway_service_objects("nginx", "v1"), "demo-waypoint") | {("update", "demo-namespace")},
    # the allow-list is attached to nginx's Services, for the waypoint to enforce
    "C2": _created(*_gateway_service_objects("sleep", "v1"), "nginx-authorizationpolicy"),
    "C3": _created("nginx-v2-deployment", "nginx-v2-service")
    | {("update", "nginx-httproute"), ("update", "nginx-authorizationpolicy")},
    "C4": {("update", "nginx-httproute")},
    "C5": {("update", "nginx-httproute")},
    "C6": {("delete", "nginx-v1-deployment"), ("delete", "nginx-v1-service"), ("update", "nginx-authorizationpolicy")},
}


def _backend_weights(rendered: dict[str, dict[str, Any]], service: str) -> dict[str, int]:
    """Version Service → weight of a service's HTTPRoute's default (last) rule."""
    default_rule = rendered[f"HTTPRoute/{service}"]["spec"]["rules"][-1]
    return {ref["name"]: ref["weight"] for ref in default_rule["backendRefs"]}


def _weights(rendered: dict[str, dict[str, Any]], service: str) -> dict[str, int]:
    default_route = rendered[f"VirtualService/{service}"]["spec"]["http"][-1]["route"]
    return {d["destination"]["subset"]: d.get("weight", 100) for d in default_route}


def _completed_before(events: list[dict[str, Any]], first: str, then: str) -> bool:
    """Whether resource ``first``'s step finished before resource ``then``'s step started."""

    def index(kind: str, name: str) -> int:
        return next(i for i, e in enumerate(events) if kind in e and e[kind]["metadata"]["urn"].endswith(f"::{name}"))

    return index("resOutputsEvent", first) < index("resourcePreEvent", then)


def _dependencies_in_state(project: PulumiProject, name: str) -> set[str]:
    """The resources the engine recorded ``name`` as depending on (its ``depends_on``), by name."""
    state = json.loads(project.pulumi("stack", "export").stdout)
    (resource,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith(f"::{name}")]
    return {urn.rsplit("::", 1)[-1] for urn in resource.get("dependencies") or []}


def _step(project: PulumiProject, step: str, expected: set[tuple[str, str]]) -> list[dict[str, Any]]:
    project.use_config(step)
    plan = project.preview()
    assert _ops(plan) == expected, f"{step}: plan was {plan}"
    assert not [s for s in plan if s.op in {"replace", "create-replacement", "delete-replaced"}]
    events = project.up()
    assert _ops(project.preview()) == set(), f"{step}: a second up would change something"
    return events


def test_scenario_a_nginx_canary(tmp_path: Path) -> None:
    project = new_project(tmp_path, "canary")
    for step, expected in A_PLANS.items():
        events = _step(project, step, expected)
        rendered = project.rendered()
        if step == "A0":
            assert rendered["Namespace/demo"]["metadata"]["labels"]["istio-injection"] == "enabled"
            assert rendered["PeerAuthentication/default"]["spec"] == {"mtls": {"mode": "STRICT"}}
        if step == "A2":
            rules = rendered["AuthorizationPolicy/nginx"]["spec"]["rules"]
            assert rules == [{"from": [{"source": {"principals": ["cluster.local/ns/demo/sa/sleep"]}}]}]
            assert rendered["Deployment/sleep-v1"]["spec"]["template"]["spec"]["serviceAccountName"] == "sleep"
        if step == "A3":
            assert _weights(rendered, "nginx") == {"v1": 70, "v2": 30}
            assert {s["name"] for s in rendered["DestinationRule/nginx"]["spec"]["subsets"]} == {"v1", "v2"}
            # Make-before-break: subsets and pods first, the route after.
            assert _completed_before(events, "nginx-destinationrule", "nginx-virtualservice")
            assert _completed_before(events, "nginx-v2-deployment", "nginx-virtualservice")
        if step == "A4":
            assert _weights(rendered, "nginx") == {"v1": 20, "v2": 80}
        if step == "A5":
            assert _weights(rendered, "nginx") == {"v2": 100}
            assert "Deployment/nginx-v1" in rendered
        if step == "A6":
            assert "Deployment/nginx-v1" not in rendered
            assert [s["name"] for s in rendered["DestinationRule/nginx"]["spec"]["subsets"]] == ["v2"]
            # The subset leaves while no route uses it (since A5), and the pods leave after the subset.
            assert _completed_before(events, "nginx-destinationrule", "nginx-v1-deployment")


def test_scenario_c_gateway_api_canary_in_an_ambient_namespace(tmp_path: Path) -> None:
    project = new_project(tmp_path, "gamma")
    for step, expected in C_PLANS.items():
        if step == "C5":
            # v1 still has 20% in the deployed HTTPRoute: retiring it now is refused (MK501), nothing changes.
            project.use_config("C6")
            result = project.pulumi("preview", check=False)
            assert result.returncode != 0
            assert "MK501 services.nginx.versions: version 'v1' leaves" in result.stdout + result.stderr
        events = _step(project, step, expected)
        rendered = project.rendered()
        assert not [key for key in rendered if key.startswith(("VirtualService/", "DestinationRule/"))]
        if step == "C0":
            assert rendered["Namespace/demo"]["metadata"]["labels"] == {"istio.io/dataplane-mode": "ambient"}
        if step == "C1":
            labels = rendered["Namespace/demo"]["metadata"]["labels"]
            assert labels == {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"}
            assert rendered["Gateway/waypoint"]["spec"]["gatewayClassName"] == "istio-waypoint"
            assert _backend_weights(rendered, "nginx") == {"nginx-v1": 100}
            # The waypoint that applies the route exists before the route.
            assert _completed_before(events, "demo-waypoint", "nginx-httproute")
            assert _completed_before(events, "nginx-v1-service", "nginx-httproute")
        if step == "C2":
            policy = rendered["AuthorizationPolicy/nginx"]["spec"]
            assert policy["targetRefs"] == [{"group": "", "kind": "Service", "name": n} for n in ("nginx", "nginx-v1")]
        if step == "C3":
            assert _backend_weights(rendered, "nginx") == {"nginx-v1": 70, "nginx-v2": 30}
            assert rendered["Service/nginx-v2"]["spec"]["selector"] == {"app": "nginx", "version": "v2"}
            # Make-before-break: the version's Service and pods first, the route after (as the engine ran it,
            # and as the state records it, whatever the timing).
            assert _completed_before(events, "nginx-v2-service", "nginx-httproute")
            assert _completed_before(events, "nginx-v2-deployment", "nginx-httproute")
            assert _dependencies_in_state(project, "nginx-httproute") == {
                "nginx-v1-service", "nginx-v2-service", "nginx-v1-deployment", "nginx-v2-deployment", "demo-waypoint",
            }  # fmt: skip
        if step == "C4":
            assert _backend_weights(rendered, "nginx") == {"nginx-v1": 20, "nginx-v2": 80}
        if step == "C5":
            assert _backend_weights(rendered, "nginx") == {"nginx-v2": 100}
            assert "Deployment/nginx-v1" in rendered and "Service/nginx-v1" in rendered
            # v1 is no backend: its Service and pods can go (C6) without waiting on the route.
            assert _dependencies_in_state(project, "nginx-httproute") == {
                "nginx-v2-service", "nginx-v2-deployment", "demo-waypoint",
            }  # fmt: skip
        if step == "C6":
            assert "Deployment/nginx-v1" not in rendered and "Service/nginx-v1" not in rendered
            assert _backend_weights(rendered, "nginx") == {"nginx-v2": 100}


def test_switching_a_service_to_the_gateway_api_creates_the_http_route_before_the_virtual_service_goes(
    tmp_path: Path,
) -> None:
    project = new_project(tmp_path, "switch")
    project.use_config("A3")
    project.up()
    raw = scenario_raw("A3")
    raw["services"]["nginx"]["traffic"]["api"] = "gateway"
    project.use_stack_text(stack_file_text(raw))
    assert _ops(project.preview()) == {
        ("create", "nginx"),  # the HTTPRouteSplit component (the TrafficSplit component "nginx" leaves)
        ("delete", "nginx"),
        ("create", "nginx-v1-service"),
        ("create", "nginx-v2-service"),
        ("create", "nginx-httproute"),
        ("delete", "nginx-virtualservice"),
        ("delete", "nginx-destinationrule"),
    }
    events = project.up()
    rendered = project.rendered()
    assert _backend_weights(rendered, "nginx") == {"nginx-v1": 70, "nginx-v2": 30}
    assert "VirtualService/nginx" not in rendered and "DestinationRule/nginx" not in rendered
    # The same weights are in force all along: the new route exists before the VirtualService is deleted.
    for old in ("nginx-virtualservice", "nginx-destinationrule"):
        assert _completed_before(events, "nginx-httproute", old)
    assert _ops(project.preview()) == set()


def test_scenario_b_bookinfo_routing(tmp_path: Path) -> None:
    project = new_project(tmp_path, "bookinfo")
    for step, expected in B_PLANS.items():
        _step(project, step, expected)
        rendered = project.rendered()
        reviews, ratings = (
            rendered["VirtualService/reviews"]["spec"]["http"],
            rendered["VirtualService/ratings"]["spec"]["http"],
        )
        if step == "B1":
            assert all(_weights(rendered, s) == {"v1": 100} for s in ("productpage", "details", "reviews", "ratings"))
            from_outside = rendered["VirtualService/bookinfo-gateway"]["spec"]
            assert from_outside["gateways"] == ["bookinfo-gateway"] and "Gateway/bookinfo-gateway" in rendered
            assert from_outside["http"][0]["route"][0]["destination"]["subset"] == "v1"
        if step == "B2":
            assert reviews[0]["route"][0]["destination"]["subset"] == "v2"
            assert reviews[0]["match"][0]["headers"]["cookie"]["regex"] == r"^(.*?;[ \t]*)?(user=jason)([ \t]*;.*)?$"
        if step == "B3":
            assert ratings[0]["fault"]["delay"] == {"fixedDelay": "7s", "percentage": {"value": 100}}
        if step == "B4":
            assert ratings[0]["fault"]["abort"] == {"httpStatus": 500, "percentage": {"value": 100}}
        if step == "B5":
            assert _weights(rendered, "reviews") == {"v1": 50, "v3": 50} and len(reviews) == 1 and len(ratings) == 1


def test_invalid_config_fails_preview_and_up_and_changes_nothing(tmp_path: Path) -> None:
    project = new_project(tmp_path, "bad")
    _step(project, "A3", A_PLANS["A0"] | A_PLANS["A1"] | A_PLANS["A2"] | _created("nginx-v2-deployment"))
    state_before = sorted((p.name, p.read_bytes()) for p in (tmp_path / ".pulumi-state").rglob("*.json") if p.is_file())
    rendered_before = project.rendered()

    text = project.stack_file.read_text().replace("v2: 30", "v2: 20")
    project.stack_file.write_text(text)
    for command in (["preview"], ["up", "--yes"]):
        result = project.pulumi(*command, check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "services.nginx.traffic.weights: must sum to 100, got 90 (v1=70, v2=20)" in output
    state_after = sorted((p.name, p.read_bytes()) for p in (tmp_path / ".pulumi-state").rglob("*.json") if p.is_file())
    assert project.rendered() == rendered_before
    assert [name for name, _ in state_after] == [name for name, _ in state_before]


def test_retiring_a_version_that_still_has_traffic_is_refused(tmp_path: Path) -> None:
    project = new_project(tmp_path, "retire")
    project.use_config("A4")
    project.up()
    project.use_config("A6")  # v1 still has 20% in the deployed state
    for command in (["preview"], ["up", "--yes"]):
        result = project.pulumi(*command, check=False)
        assert result.returncode != 0
        assert (
            "MK501 services.nginx.versions: version 'v1' leaves while the deployed routes"
            in result.stdout + result.stderr
        )
    assert "Deployment/nginx-v1" in project.rendered()
    # Make-before-break: first route nothing to v1, then retire it.
    _step(project, "A5", A_PLANS["A5"])
    _step(project, "A6", A_PLANS["A6"])


def test_rollback_step_restores_the_weights_before_the_last_deployed_change(tmp_path: Path) -> None:
    project = new_project(tmp_path, "rollback")
    project.use_config("A3")
    project.up()
    deployed_a3 = _weights(project.rendered(), "nginx")
    project.use_config("A4")  # the canary step to undo: 70/30 → 20/80
    project.up()
    a4_text = project.stack_file.read_text()
    outputs = json.loads(project.pulumi("stack", "output", "--json").stdout)
    assert outputs["services"]["nginx"]["previousWeights"] == {"v1": 70, "v2": 30}
    assert "previousWeights" not in outputs["services"]["sleep"]  # never changed

    # As a user runs it in the project: the last deployment's outputs come from `pulumi stack output`.
    result = subprocess.run(
        [str(VENV_BIN / "meshkit"), "step", "rollback", "nginx", "--rollback"],
        cwd=project.root, env=project.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "from the outputs of stack 'rollback'" in result.stdout
    # Only the two weight values differ from the deployed file (comments and salt line kept).
    assert project.stack_file.read_text() == a4_text.replace("v1: 20\n", "v1: 70\n").replace("v2: 80\n", "v2: 30\n")

    assert _ops(project.preview()) == {("update", "nginx-virtualservice")}
    project.up()
    assert _weights(project.rendered(), "nginx") == deployed_a3 == {"v1": 70, "v2": 30}
    assert _ops(project.preview()) == set()
    # The rollback is itself a weight change: a second --rollback would redo the undone step.
    outputs = json.loads(project.pulumi("stack", "output", "--json").stdout)
    assert outputs["services"]["nginx"]["previousWeights"] == {"v1": 20, "v2": 80}


def test_pulumi_secret_stays_out_of_state_and_outputs(tmp_path: Path) -> None:
    secret = "e2e-s3cr3t-value"
    project = new_project(tmp_path, "secrets")
    project.use_config("A3")
    text = project.stack_file.read_text().replace(
        "          image: nginx:1.15\n",
        "          image: nginx:1.15\n          env: {DB_PASSWORD: {secret: dbPassword}}\n",
    )
    project.stack_file.write_text(text)
    project.pulumi("config", "set", "--secret", "--path", "meshkit:secrets.dbPassword", secret)
    assert secret not in project.stack_file.read_text(), "the stack file holds only the ciphertext"
    project.up()
    rendered = project.rendered()
    env = rendered["Deployment/nginx-v2"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "nginx-secrets", "key": "dbPassword"}}}
    ]
    # Render mode writes the Secret's value out (the provider turns stringData into base64 data), as the
    # security page of the docs warns (docs/security.md); the state keeps it encrypted.
    assert "stringData" not in rendered["Secret/nginx-secrets"]
    assert base64.b64decode(rendered["Secret/nginx-secrets"]["data"]["dbPassword"]).decode() == secret
    state = project.pulumi("stack", "export").stdout
    assert secret not in state and "nginx-secrets" in state
    outputs = project.pulumi("stack", "output", "--json").stdout
    assert secret not in outputs


def _nginx_behind_an_ingress(step: str) -> str:
    raw = scenario_raw(step)
    raw["ingresses"] = {"shop": {"namespace": "demo", "hosts": ["shop.example.com"], "routes": [{"service": "nginx"}]}}
    raw["services"]["nginx"]["allowFrom"].append({"namespace": "istio-system"})
    return stack_file_text(raw)


def test_an_ingress_in_front_of_an_http_route_moves_its_weights_in_the_same_step(tmp_path: Path) -> None:
    project = new_project(tmp_path, "edge-gamma")
    project.use_stack_text(_nginx_behind_an_ingress("C3"))
    project.up()
    project.use_stack_text(_nginx_behind_an_ingress("C4"))
    assert _ops(project.preview()) == {("update", "nginx-httproute"), ("update", "shop-ingress-virtualservice")}
    project.up()
    rendered = project.rendered()
    outside = rendered["VirtualService/shop"]["spec"]["http"][-1]["route"]
    assert {r["destination"]["host"]: r["weight"] for r in outside} == {
        f"{name}.demo.svc.cluster.local": weight for name, weight in _backend_weights(rendered, "nginx").items()
    }
    assert _backend_weights(rendered, "nginx") == {"nginx-v1": 20, "nginx-v2": 80}


def test_a_canary_step_moves_the_traffic_from_outside_with_the_traffic_from_inside(tmp_path: Path) -> None:
    project = new_project(tmp_path, "edge")
    project.use_stack_text(_nginx_behind_an_ingress("A3"))
    project.up()
    project.use_stack_text(_nginx_behind_an_ingress("A4"))
    # One reviewed step, both routes: the service's own and the one bound to the gateway.
    assert _ops(project.preview()) == {("update", "nginx-virtualservice"), ("update", "shop-ingress-virtualservice")}
    project.up()
    rendered = project.rendered()
    outside = rendered["VirtualService/shop"]["spec"]["http"][-1]["route"]
    assert (
        {r["destination"]["subset"]: r["weight"] for r in outside}
        == _weights(rendered, "nginx")
        == {"v1": 20, "v2": 80}
    )
    assert _ops(project.preview()) == set()
