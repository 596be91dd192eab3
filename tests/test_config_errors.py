"""Bad input: every problem is reported at once, by config path, with the bad value and a fix."""

from __future__ import annotations

from typing import Any

import pytest

from meshkit.analysis import validate_stack
from meshkit.config import load_stack_file, parse_stack_file_text
from meshkit.errors import ConfigError

from .scenario_data import nginx_stack


def _problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_stack(raw)
    return {f.path: f"{f.code} {f.message} | {f.fix}" for f in info.value.findings}


def _one(raw: dict[str, Any]) -> tuple[str, str]:
    problems = _problems(raw)
    assert len(problems) == 1, problems
    return next(iter(problems.items()))


def test_weights_must_sum_to_100_and_the_message_shows_each_weight() -> None:
    path, text = _one(nginx_stack(traffic={"weights": {"v1": 70, "v2": 20}}))
    assert path == "services.nginx.traffic.weights"
    assert text.startswith("MK301 must sum to 100, got 90 (v1=70, v2=20)")


def test_weight_out_of_range() -> None:
    problems = _problems(nginx_stack(traffic={"weights": {"v1": 120, "v2": -20}}))
    assert set(problems) == {"services.nginx.traffic.weights.v1", "services.nginx.traffic.weights.v2"}
    assert problems["services.nginx.traffic.weights.v1"].startswith(
        "MK302 input should be less than or equal to 100, got 120"
    )


def test_all_weights_zero_is_refused() -> None:
    path, text = _one(nginx_stack(traffic={"weights": {"v1": 0, "v2": 0}}))
    assert (path, text[:5]) == ("services.nginx.traffic.weights", "MK301")


def test_weight_on_undeclared_version_names_the_declared_ones() -> None:
    path, text = _one(nginx_stack(traffic={"weights": {"v1": 70, "v3": 30}}))
    assert path == "services.nginx.traffic.weights.v3"
    assert "MK101" in text and "'v3'" in text and "v1, v2" in text


def test_declared_version_missing_from_weights_gets_zero() -> None:
    stack = validate_stack(nginx_stack(traffic={"weights": {"v2": 100}}))
    assert stack.services["nginx"].default_weights() == {"v1": 0, "v2": 100}


def test_version_with_weight_and_zero_replicas() -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v2"]["replicas"] = 0
    path, text = _one(raw)
    assert path == "services.nginx.versions.v2.replicas"
    assert text.startswith("MK103") and "503" in text


def test_version_with_zero_weight_may_have_zero_replicas() -> None:
    raw = nginx_stack(traffic={"weights": {"v1": 100, "v2": 0}})
    raw["services"]["nginx"]["versions"]["v2"]["replicas"] = 0
    validate_stack(raw)


@pytest.mark.parametrize("name", ["web", "HTTP", "http_web", "httpx"])
def test_port_name_outside_the_istio_convention(name: str) -> None:
    path, text = _one(nginx_stack(ports=[{"name": name, "port": 8080, "targetPort": 80}]))
    assert path == "services.nginx.ports[0].name"
    assert text[:5] in {"MK201", "MK203"}


@pytest.mark.parametrize("name", ["http", "http-web", "grpc", "tcp-db", "http2"])
def test_port_names_in_the_convention_are_accepted(name: str) -> None:
    validate_stack(nginx_stack(ports=[{"name": name, "port": 8080, "targetPort": 80}]))


def test_app_protocol_replaces_the_name_convention() -> None:
    validate_stack(nginx_stack(ports=[{"name": "web", "port": 8080, "appProtocol": "http"}]))


@pytest.mark.parametrize("bad", ["Nginx", "nginx_v1", "-nginx", "a" * 64])
def test_service_name_must_be_dns_1123(bad: str) -> None:
    raw = nginx_stack()
    raw["services"][bad] = raw["services"].pop("nginx")
    problems = _problems(raw)
    assert f"services.{bad}" in problems and problems[f"services.{bad}"].startswith("MK203")


@pytest.mark.parametrize("duration", ["7", "7 s", "seven", "1d", "0s", "-1s"])
def test_durations_must_be_istio_durations(duration: str) -> None:
    path, text = _one(nginx_stack(traffic={"weights": {"v1": 100}, "timeout": duration}))
    assert path == "services.nginx.traffic.timeout"
    assert text.startswith("MK303")


@pytest.mark.parametrize("duration", ["7s", "250ms", "1m30s", "0.5s", "1h"])
def test_istio_durations_are_accepted(duration: str) -> None:
    validate_stack(nginx_stack(traffic={"weights": {"v1": 100}, "timeout": duration}))


@pytest.mark.parametrize("pattern", ["(?=jason)", r"(a)\1", "(unclosed"])
def test_regex_must_be_re2(pattern: str) -> None:
    route = {"match": {"headers": {"end-user": {"regex": pattern}}}, "to": "v2"}
    path, text = _one(nginx_stack(traffic={"weights": {"v1": 100}, "routes": [route]}))
    assert path == "services.nginx.traffic.routes[0].match.headers.end-user.regex"
    assert text.startswith("MK304")


@pytest.mark.parametrize(("fault", "key", "code"), [
    ({"delay": {"fixedDelay": "7s", "percentage": 101}}, "delay.percentage", "MK305"),
    ({"abort": {"httpStatus": 500, "percentage": -1}}, "abort.percentage", "MK305"),
    ({"abort": {"httpStatus": 600}}, "abort.httpStatus", "MK306"),
    ({"abort": {"httpStatus": 199}}, "abort.httpStatus", "MK306"),
])  # fmt: skip
def test_fault_values_out_of_range(fault: dict[str, Any], key: str, code: str) -> None:
    fault = {"match": {"cookie": {"user": "jason"}}, **fault}
    path, text = _one(nginx_stack(faults=[fault]))
    assert path == f"services.nginx.faults[0].{key}"
    assert text.startswith(code)


def test_unknown_key_suggests_the_intended_one() -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["traffic"] = {"weigths": {"v1": 100}}
    problems = _problems(raw)
    assert problems["services.nginx.traffic.weigths"].startswith("MK001 unknown key 'weigths'")
    assert "did you mean 'weights'?" in problems["services.nginx.traffic.weigths"]


def test_every_problem_is_reported_at_once() -> None:
    raw = nginx_stack(
        ports=[{"name": "web", "port": 8080}],
        traffic={"weights": {"v1": 70, "v2": 20}, "timeout": "soon"},
    )
    raw["services"]["nginx"]["replica"] = 3
    assert set(_problems(raw)) == {
        "services.nginx.ports[0].name",
        "services.nginx.traffic.weights",
        "services.nginx.traffic.timeout",
        "services.nginx.replica",
    }


def test_wrong_type_names_the_path_and_the_value() -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v1"]["replicas"] = "two"
    path, text = _one(raw)
    assert path == "services.nginx.versions.v1.replicas"
    assert "'two'" in text


def test_missing_required_key() -> None:
    raw = nginx_stack()
    del raw["services"]["nginx"]["versions"]["v1"]["image"]
    path, text = _one(raw)
    assert (path, text[:5]) == ("services.nginx.versions.v1.image", "MK002")


def test_undeclared_namespace() -> None:
    raw = nginx_stack(namespace="prod")
    problems = _problems(raw)
    assert problems["services.nginx.namespace"].startswith("MK102")


def test_namespace_with_two_injection_labels() -> None:
    raw = nginx_stack()
    raw["namespaces"]["demo"] = {"dataplane": "ambient", "revision": "canary"}
    path, text = _one(raw)
    assert (path, text[:5]) == ("namespaces.demo", "MK401")


def test_several_versions_need_weights() -> None:
    path, text = _one(nginx_stack(traffic={}))
    assert (path, text[:5]) == ("services.nginx.traffic.weights", "MK106")


def test_duplicate_route_match_is_unreachable() -> None:
    route = {"match": {"cookie": {"user": "jason"}}, "to": "v2"}
    path, text = _one(nginx_stack(traffic={"weights": {"v1": 100}, "routes": [route, {**route, "to": "v1"}]}))
    assert (path, text[:5]) == ("services.nginx.traffic.routes[1].match", "MK105")


def test_multi_port_service_must_pick_a_port_for_routes() -> None:
    ports = [{"name": "http", "port": 8080}, {"name": "grpc", "port": 9090}]
    path, text = _one(nginx_stack(ports=ports))
    assert (path, text[:5]) == ("services.nginx.traffic.port", "MK108")
    validate_stack(nginx_stack(ports=ports, traffic={"weights": {"v1": 70, "v2": 30}, "port": 9090}))


def test_unscoped_fault_in_production_needs_explicit_consent() -> None:
    fault = {"abort": {"httpStatus": 500}}
    path, text = _one(nginx_stack(faults=[fault]))
    assert (path, text[:5]) == ("services.nginx.faults[0].match", "MK504")
    validate_stack(nginx_stack(faults=[{**fault, "allowUnscoped": True}]))


# --- stack files ---------------------------------------------------------------------------------------


def test_empty_stack_file() -> None:
    with pytest.raises(ConfigError, match=r"(?s)Pulumi.x.yaml: 1 problem.*the file is empty"):
        parse_stack_file_text("", "stacks/Pulumi.x.yaml")


def test_stack_file_without_config_mapping() -> None:
    with pytest.raises(ConfigError, match=r"no 'config:' mapping"):
        parse_stack_file_text("meshkit:services: {}\n", "stacks/Pulumi.x.yaml")


def test_stack_file_that_is_not_yaml() -> None:
    with pytest.raises(ConfigError, match=r"MK004.*not valid YAML"):
        parse_stack_file_text("config: [unclosed\n", "stacks/Pulumi.x.yaml")


def test_missing_stack_file(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match=r"stack file not found"):
        load_stack_file(tmp_path / "Pulumi.nope.yaml")


def test_other_providers_keys_are_ignored_but_meshkit_typos_are_not() -> None:
    text = "config:\n  kubernetes:context: kind\n  meshkit:service: {}\n"
    with pytest.raises(ConfigError) as info:
        parse_stack_file_text(text, "stacks/Pulumi.x.yaml")
    (finding,) = info.value.findings
    assert (finding.path, finding.code) == ("service", "MK001")
    assert "did you mean 'services'?" in finding.fix
