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


def _weights(rendered: dict[str, dict[str, Any]], service: str) -> dict[str, int]:
    default_route = rendered[f"VirtualService/{service}"]["spec"]["http"][-1]["route"]
    return {d["destination"]["subset"]: d.get("weight", 100) for d in default_route}


def _completed_before(events: list[dict[str, Any]], first: str, then: str) -> bool:
    """Whether resource ``first``'s step finished before resource ``then``'s step started."""

    def index(kind: str, name: str) -> int:
        return next(i for i, e in enumerate(events) if kind in e and e[kind]["metadata"]["urn"].endswith(f"::{name}"))

    return index("resOutputsEvent", first) < index("resourcePreEvent", then)


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
    # README warns; the state keeps it encrypted.
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
