"""Secure by default: mutual TLS, callers' allow-lists, hardened workloads and secrets."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.config.stack import StackConfig
from meshkit.errors import ConfigError, Severity
from meshkit.mesh.checks import check_stack, validate_stack
from meshkit.mesh.render import render_stack
from meshkit.pulumi.program import build_mesh, main

from .pulumi_mocks import pulumi_mocks
from .scenario_data import nginx_stack, scenario, scenario_raw


def _objects(stack: StackConfig) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]): m for m in render_stack(stack)}


def _problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_stack(raw)
    return {f.path: f.code for f in info.value.findings}


# --- mutual TLS -----------------------------------------------------------------------------------------


def test_namespaces_are_strict_and_destination_rules_use_istio_mutual() -> None:
    objects = _objects(scenario("B1"))
    assert objects[("PeerAuthentication", "bookinfo", "default")]["spec"] == {"mtls": {"mode": "STRICT"}}
    for service in ("productpage", "details", "reviews", "ratings"):
        rule = objects[("DestinationRule", "bookinfo", service)]
        assert rule["spec"]["trafficPolicy"] == {"tls": {"mode": "ISTIO_MUTUAL"}}


def test_permissive_on_request() -> None:
    raw = nginx_stack()
    raw["namespaces"]["demo"]["mtls"] = "PERMISSIVE"
    objects = _objects(validate_stack(raw))
    assert objects[("PeerAuthentication", "demo", "default")]["spec"] == {"mtls": {"mode": "PERMISSIVE"}}


def test_plaintext_destination_rule_contradicting_strict_mtls_is_refused() -> None:
    raw = nginx_stack(traffic={"weights": {"v1": 70, "v2": 30}, "tls": "DISABLE"})
    assert _problems(raw) == {"services.nginx.traffic.tls": "MK603"}
    raw["namespaces"]["demo"]["mtls"] = "PERMISSIVE"
    objects = _objects(validate_stack(raw))
    assert objects[("DestinationRule", "demo", "nginx")]["spec"]["trafficPolicy"] == {"tls": {"mode": "DISABLE"}}


# --- allow-lists ------------------------------------------------------------------------------------------


def test_scenario_a_only_sleep_may_call_nginx() -> None:
    objects = _objects(scenario("A3"))
    policy = objects[("AuthorizationPolicy", "demo", "nginx")]
    assert policy["spec"] == {
        "selector": {"matchLabels": {"app": "nginx"}},
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/demo/sa/sleep"]}}]}],
    }
    assert ("AuthorizationPolicy", "demo", "sleep") not in objects
    for version in ("v1", "v2"):
        pod = objects[("Deployment", "demo", f"nginx-{version}")]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "nginx" and pod["automountServiceAccountToken"] is False
    assert objects[("ServiceAccount", "demo", "sleep")]["automountServiceAccountToken"] is False


def test_allow_rules_with_namespaces_methods_paths_and_trust_domain() -> None:
    raw = nginx_stack(allowFrom=[{"namespace": "demo", "methods": ["GET"], "paths": ["/api/*"]}, {"service": "sleep"}])
    raw["trustDomain"] = "prod.example"
    policy = _objects(validate_stack(raw))[("AuthorizationPolicy", "demo", "nginx")]
    assert policy["spec"]["rules"] == [
        {
            "from": [{"source": {"namespaces": ["demo"]}}],
            "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}],
        },
        {"from": [{"source": {"principals": ["prod.example/ns/demo/sa/sleep"]}}]},
    ]


def test_empty_allow_list_allows_no_one() -> None:
    policy = _objects(validate_stack(nginx_stack(allowFrom=[])))[("AuthorizationPolicy", "demo", "nginx")]
    assert "rules" not in policy["spec"] and policy["spec"]["action"] == "ALLOW"


@pytest.mark.parametrize(("rule", "path", "code"), [
    ({"service": "web"}, "services.nginx.allowFrom[0].service", "MK601"),
    ({"namespace": "prod"}, "services.nginx.allowFrom[0].namespace", "MK602"),
    ({"service": "sleep", "namespace": "demo"}, "services.nginx.allowFrom[0]", "MK003"),
])  # fmt: skip
def test_unknown_callers_are_refused(rule: dict[str, str], path: str, code: str) -> None:
    assert _problems(nginx_stack(allowFrom=[rule])) == {path: code}


def test_deny_by_default_namespace() -> None:
    raw = scenario_raw("B1")
    raw["namespaces"]["bookinfo"]["defaultDeny"] = True
    # Without this, the ingress's requests to productpage would be denied (MK703, tests/bad_configs.yaml).
    raw["services"]["productpage"]["allowFrom"] = [{"namespace": "istio-system"}]
    stack = validate_stack(raw)
    deny = _objects(stack)[("AuthorizationPolicy", "bookinfo", "allow-nothing")]
    assert deny["spec"] == {"action": "ALLOW"}
    # A warning for each declared caller a deny-by-default namespace would cut off: none here.
    assert check_stack(stack) == []
    raw["services"]["productpage"]["calls"]["reviews"] = {"timeout": "3s"}
    del raw["services"]["reviews"]["allowFrom"]
    (warning,) = check_stack(validate_stack(raw))
    assert (warning.code, warning.path, warning.severity) == (
        "MK606",
        "services.productpage.calls.reviews",
        Severity.WARNING,
    )


def test_caller_missing_from_the_allow_list_is_a_warning() -> None:
    raw = scenario_raw("B1")
    raw["services"]["reviews"]["allowFrom"] = [{"service": "details"}]
    (warning,) = check_stack(validate_stack(raw))
    assert (warning.code, warning.path) == ("MK606", "services.productpage.calls.reviews")
    assert "403" in warning.message


def test_deny_by_default_waits_for_every_allow_list_of_its_namespace() -> None:
    raw = scenario_raw("B1")
    raw["namespaces"]["bookinfo"]["defaultDeny"] = True
    raw["services"]["productpage"]["allowFrom"] = [{"namespace": "istio-system"}]
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(validate_stack(raw)))
    deny = recorder.by_name("bookinfo-allow-nothing")
    assert recorder.names_of(deny.dependencies) >= {
        "details-authorizationpolicy",
        "reviews-authorizationpolicy",
        "ratings-authorizationpolicy",
    }


def test_pods_wait_for_their_identity_and_allow_list() -> None:
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(scenario("A3")))
    assert recorder.names_of(recorder.by_name("nginx-v2-deployment").dependencies) >= {
        "nginx-serviceaccount",
        "nginx-authorizationpolicy",
    }


# --- workload hardening -----------------------------------------------------------------------------------


def test_containers_are_hardened_by_default() -> None:
    container = _objects(scenario("A3"))[("Deployment", "demo", "sleep-v1")]["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": False,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


def test_nginx_keeps_the_capabilities_its_image_needs() -> None:
    pod = _objects(scenario("A3"))[("Deployment", "demo", "nginx-v1")]["spec"]["template"]["spec"]
    assert pod["containers"][0]["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"],
    }
    # Hardening sits on the application container only: Istio's injected init container needs root.
    assert "securityContext" not in pod


def test_per_version_overrides() -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v2"].update(
        runAsNonRoot=True, runAsUser=101, readOnlyRootFilesystem=True, resources={"limits": {"memory": "1Gi"}}
    )
    container = _objects(validate_stack(raw))[("Deployment", "demo", "nginx-v2")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["runAsUser"] == 101
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}


def test_unknown_capability_is_refused() -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v1"]["capabilities"] = ["CAP_NET_ADMIN"]
    assert _problems(raw) == {"services.nginx.versions.v1.capabilities[0]": "MK310"}


@pytest.mark.parametrize("image", ["nginx", "nginx:latest", "registry.local:5000/nginx", "docker.io/library/nginx"])
def test_unpinned_image_is_refused_in_production_and_a_warning_elsewhere(image: str) -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v2"]["image"] = image
    assert _problems(raw) == {"services.nginx.versions.v2.image": "MK604"}
    raw["production"] = False
    (warning,) = check_stack(validate_stack(raw))
    assert (warning.code, warning.severity) == ("MK604", Severity.WARNING)


@pytest.mark.parametrize("image", ["nginx:1.15", "registry.local:5000/nginx:1.15", "nginx@sha256:" + "a" * 64])
def test_pinned_images_pass(image: str) -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v2"]["image"] = image
    validate_stack(raw)


def test_empty_capability_is_refused() -> None:
    """It used to render ``add: [""]``."""
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v1"]["capabilities"] = ["CHOWN", ""]
    assert _problems(raw) == {"services.nginx.versions.v1.capabilities[1]": "MK310"}


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("image", [
    "nginx:1.15",
    "library/nginx:1.15",
    "registry.example.com/team/app:1.2",
    "registry.example.com:5000/team/sub/app:v1.2.3-rc_1",
    "localhost:5000/app:1",
    "localhost/app:1",
    "[::1]:5000/app:1",
    "Registry.Example.com/app:1",  # host names are case-insensitive; paths are not
    "my_app__x-y--z.w:1",
    f"nginx@{DIGEST}",
    f"nginx:1.15@{DIGEST}",
    "nginx@sha512:" + "ab" * 64,
    "app:" + "t" * 128,
])  # fmt: skip
def test_valid_image_references_pass(image: str) -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v2"]["image"] = image
    validate_stack(raw)


@pytest.mark.parametrize(("image", "why"), [
    ("nginx:", "empty tag"),
    ("registry.example.com:5000/app:", "empty tag"),
    ("Nginx:1.15", "upper case"),
    ("registry.example.com/Team/app:1", "upper case"),
    ("team//app:1", "empty path component"),
    ("/app:1", "empty path component"),
    ("registry.example.com/:1", "empty path component"),
    ("nginx@", "empty digest"),
    ("nginx@sha256:abc", "digest"),
    ("nginx@sha256:" + "A" * 64, "digest"),
    ("nginx@sha256:" + "a" * 63, "digest"),
    ("nginx@md5:" + "a" * 32, "digest"),
    ("nginx:-1", "tag"),
    ("nginx:" + "t" * 129, "tag"),
    ("nginx:1.15 ", "space"),
    ("", "empty"),
    ("a" * 256 + ":1", "longer than 255"),
    ("app_:1", "grammar"),
    ("app:1:2", "grammar"),
])  # fmt: skip
def test_invalid_image_references_are_refused(image: str, why: str) -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v2"]["image"] = image
    with pytest.raises(ConfigError) as info:
        validate_stack(raw)
    (finding,) = info.value.findings
    assert (finding.path, finding.code) == ("services.nginx.versions.v2.image", "MK311")
    assert why in finding.message and repr(image) in finding.message


# --- secrets --------------------------------------------------------------------------------------------

SECRET_VALUE = "s3cr3t-never-shown"


def _with_secret_env(raw: dict[str, Any]) -> dict[str, Any]:
    raw["services"]["nginx"]["versions"]["v2"]["env"] = {
        "LOG_LEVEL": "info",
        "DB_PASSWORD": {"secret": "dbPassword"},
        "API_TOKEN": {"secretKeyRef": {"name": "api", "key": "token"}},
    }
    return raw


def test_env_from_secrets_renders_references_and_redacted_values() -> None:
    raw = _with_secret_env(nginx_stack())
    raw["secrets"] = {"dbPassword": SECRET_VALUE}
    stack = validate_stack(raw)
    assert SECRET_VALUE not in repr(stack)
    objects = _objects(stack)
    env = objects[("Deployment", "demo", "nginx-v2")]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "nginx-secrets", "key": "dbPassword"}}},
        {"name": "LOG_LEVEL", "value": "info"},
    ]
    assert objects[("Secret", "demo", "nginx-secrets")]["stringData"] == {"dbPassword": "[secret]"}


def test_unknown_secret_is_refused() -> None:
    assert _problems(_with_secret_env(nginx_stack())) == {"services.nginx.versions.v2.env.DB_PASSWORD.secret": "MK605"}


def test_secret_values_reach_only_the_kubernetes_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _with_secret_env(nginx_stack())
    raw["secrets"] = {"dbPassword": SECRET_VALUE}
    outputs: dict[str, Any] = {}
    logged: list[str] = []
    monkeypatch.setattr(pulumi, "export", lambda key, value: outputs.__setitem__(key, value))
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: logged.append(message))
    with pulumi_mocks(raw, secret_keys=["meshkit:secrets"]) as run:
        recorder = run(lambda: main(read_deployed=lambda stack: {}))
    secret = recorder.by_name("nginx-secrets")
    # Sent to the engine wrapped as a secret, so the state holds it encrypted.
    assert secret.secret_inputs == ["stringData"]
    assert secret.inputs["stringData"]["value"] == {"dbPassword": SECRET_VALUE}
    for registration in recorder.registrations:
        if registration.name != "nginx-secrets":
            assert SECRET_VALUE not in repr(registration.inputs), registration.name
    assert SECRET_VALUE not in repr(outputs) and SECRET_VALUE not in repr(logged)


def test_render_and_check_never_show_a_secret(tmp_path: Any) -> None:
    stack_file = tmp_path / "Pulumi.x.yaml"
    ciphertext = "v1:AAAA:ciphertext-of-the-secret"
    stack_file.write_text(
        "config:\n"
        "  meshkit:secrets:\n"
        "    dbPassword:\n"
        f"      secure: {ciphertext}\n"
        "  meshkit:namespaces: {demo: {}}\n"
        "  meshkit:services:\n"
        "    web:\n"
        "      namespace: demo\n"
        "      ports: [{name: http, port: 80}]\n"
        "      versions:\n"
        "        v1: {image: 'nginx:1.15', env: {DB_PASSWORD: {secret: dbPassword}}}\n"
    )
    rendered = CliRunner().invoke(app, ["render", str(stack_file)])
    assert rendered.exit_code == 0 and "dbPassword: '[secret]'" in rendered.output
    assert ciphertext not in rendered.output
    checked = CliRunner().invoke(app, ["check", str(stack_file), "--json"])
    assert checked.exit_code == 0 and ciphertext not in checked.output
