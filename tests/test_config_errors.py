"""Bad input: every problem is reported at once, by config path, with the bad value and a fix."""

from __future__ import annotations

from typing import Any

import pytest

from meshkit.errors import ConfigError, Severity
from meshkit.mesh.checks import check_stack, load_stack_file, parse_stack_file_text, validate_stack

from .scenario_data import nginx_stack, scenario_raw


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


# A tcp-db port is in the convention too, but not with the canary's weights (MK211): see below.
@pytest.mark.parametrize("name", ["http", "http-web", "grpc", "http2"])
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


# A boolean where a number belongs was taken as 1 or 0; a wrong type is MK003, not the key's range code.
@pytest.mark.parametrize(("service", "path"), [
    ({"traffic": {"weights": {"v1": True, "v2": 99}}}, "traffic.weights.v1"),
    ({"traffic": {"weights": {"v1": 100}, "steps": [50, True]}}, "traffic.steps[1]"),
    ({"traffic": {"weights": {"v1": 100}, "maxStep": True}}, "traffic.maxStep"),
    ({"traffic": {"weights": {"v1": 100}, "mirror": {"version": "v2", "percentage": True}}},
     "traffic.mirror.percentage"),
    ({"traffic": {"weights": {"v1": 100}, "retries": {"attempts": True}}}, "traffic.retries.attempts"),
    ({"faults": [{"match": {"cookie": {"user": "jason"}}, "abort": {"httpStatus": 500, "percentage": False}}]},
     "faults[0].abort.percentage"),
    ({"ports": [{"name": "http", "port": True}]}, "ports[0].port"),
])  # fmt: skip
def test_a_boolean_is_not_a_number(service: dict[str, Any], path: str) -> None:
    problems = _problems(nginx_stack(**service))
    assert problems[f"services.nginx.{path}"].startswith("MK003 expected a number, got ")
    assert "(a boolean)" in problems[f"services.nginx.{path}"]


@pytest.mark.parametrize("replicas", [True, False, "2", 2.0])
def test_replicas_are_a_whole_number_written_as_one(replicas: object) -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v2"]["replicas"] = replicas
    path, text = _one(raw)
    assert (path, text[:5]) == ("services.nginx.versions.v2.replicas", "MK003")


@pytest.mark.parametrize("percentage", [5, 5.5, "5.5"])
def test_percentages_may_be_written_as_pulumi_config_set_stores_them(percentage: object) -> None:
    """``pulumi config set --path`` stores an integer as a number, anything else (5.5) as a string."""
    mirror = {"version": "v2", "percentage": percentage}
    stack = validate_stack(nginx_stack(traffic={"weights": {"v1": 100}, "mirror": mirror}))
    assert stack.services["nginx"].traffic.mirror is not None
    assert stack.services["nginx"].traffic.mirror.percentage == float(str(percentage))


@pytest.mark.parametrize(("service", "path"), [
    ({"traffic": {"weights": ["v1", "v2"]}}, "traffic.weights"),
    ({"traffic": {"weights": "v1=70,v2=30"}}, "traffic.weights"),
    ({"faults": [{"match": {"cookie": {"user": "jason"}}, "delay": {"fixedDelay": "7s", "percentage": "100%"}}]},
     "faults[0].delay.percentage"),
    ({"faults": [{"match": {"cookie": {"user": "jason"}}, "abort": {"httpStatus": "five hundred"}}]},
     "faults[0].abort.httpStatus"),
])  # fmt: skip
def test_a_value_of_the_wrong_type_is_a_type_error_not_a_range_error(service: dict[str, Any], path: str) -> None:
    problems = _problems(nginx_stack(**service))
    assert problems[f"services.nginx.{path}"].startswith("MK003 ")
    assert "see the config reference" not in problems[f"services.nginx.{path}"], "the fix says what to write"


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


@pytest.mark.parametrize("labels", [
    {"team": "web"},
    {"team": ""},
    {"example.com/team": "web-1.x_y"},
    {"a.b-c.example/Team_1.x": "A" * 63},
    {"T": "v"},
])  # fmt: skip
def test_namespace_labels_kubernetes_accepts(labels: dict[str, str]) -> None:
    raw = nginx_stack()
    raw["namespaces"]["demo"] = {"labels": labels}
    validate_stack(raw)


@pytest.mark.parametrize(("labels", "key"), [
    ({"cost center": "web"}, "cost center"),
    ({"team": "-web"}, "team"),
    ({"team": "web."}, "team"),
    ({"team": "a" * 64}, "team"),
    ({"team": "web team"}, "team"),
    ({"team": "web/1"}, "team"),
    ({"-team": "web"}, "-team"),
    ({"t" * 64: "web"}, "t" * 64),
    ({"": "web"}, ""),
    ({"/team": "web"}, "/team"),
    ({"Example.com/team": "web"}, "Example.com/team"),
    ({"example..com/team": "web"}, "example..com/team"),
    ({"example.com/": "web"}, "example.com/"),
    ({"a/b/c": "web"}, "a/b/c"),
    ({("a" * 250) + ".com/team": "web"}, ("a" * 250) + ".com/team"),
])  # fmt: skip
def test_namespace_labels_kubernetes_refuses(labels: dict[str, str], key: str) -> None:
    raw = nginx_stack()
    raw["namespaces"]["demo"] = {"labels": labels}
    path, text = _one(raw)
    assert (path, text[:5]) == (f"namespaces.demo.labels.{key}", "MK208")
    assert repr(key) in text or repr(labels[key]) in text, "the message shows the bad key or value"


@pytest.mark.parametrize("domain", ["cluster.local", "prod.example", "td_1-a.b", "example"])
def test_trust_domains_spiffe_accepts(domain: str) -> None:
    validate_stack({**nginx_stack(), "trustDomain": domain})


@pytest.mark.parametrize(
    "domain", ["", "Cluster.local", "spiffe://cluster.local", "cluster.local/ns", "my domain", "td:8080", "trust\u00e9"]
)
def test_trust_domains_spiffe_refuses(domain: str) -> None:
    path, text = _one({**nginx_stack(), "trustDomain": domain})
    assert (path, text[:5]) == ("trustDomain", "MK209")
    assert repr(domain) in text


def test_several_versions_need_weights() -> None:
    path, text = _one(nginx_stack(traffic={}))
    assert (path, text[:5]) == ("services.nginx.traffic.weights", "MK106")


def test_duplicate_route_match_is_unreachable() -> None:
    route = {"match": {"cookie": {"user": "jason"}}, "to": "v2"}
    path, text = _one(nginx_stack(traffic={"weights": {"v1": 100}, "routes": [route, {**route, "to": "v1"}]}))
    assert (path, text[:5]) == ("services.nginx.traffic.routes[1].match", "MK105")


def test_mirror_to_the_version_that_takes_all_the_traffic() -> None:
    traffic = {"weights": {"v1": 0, "v2": 100}, "mirror": {"version": "v2"}}
    path, text = _one(nginx_stack(traffic=traffic))
    assert path == "services.nginx.traffic.mirror.version"
    assert text.startswith("MK109 mirrors to 'v2', which already takes 100%") and "(v1)" in text
    validate_stack(nginx_stack(traffic={**traffic, "mirror": {"version": "v1"}}))
    validate_stack(nginx_stack(traffic={"weights": {"v1": 90, "v2": 10}, "mirror": {"version": "v2"}}))


def test_mirror_of_a_lone_version_to_itself() -> None:
    raw = nginx_stack(versions={"v1": {"image": "nginx:1.14"}}, traffic={"mirror": {"version": "v1"}})
    path, text = _one(raw)
    assert (path, text[:5]) == ("services.nginx.traffic.mirror.version", "MK109")


def test_two_routes_with_one_name_is_a_warning() -> None:
    routes = [
        {"name": "testers", "match": {"cookie": {"user": "jason"}}, "to": "v2"},
        {"name": "canary", "match": {"uri": {"prefix": "/api"}}, "to": "v2"},
        {"name": "testers", "match": {"headers": {"end-user": {"exact": "jason"}}}, "to": "v2"},
    ]
    stack = validate_stack(nginx_stack(traffic={"weights": {"v1": 100}, "routes": routes}))
    (warning,) = check_stack(stack)
    assert (warning.code, warning.severity, warning.path) == (
        "MK110",
        Severity.WARNING,
        "services.nginx.traffic.routes[2].name",
    )
    assert "routes[0]" in warning.message
    unnamed = [{k: v for k, v in route.items() if k != "name"} for route in routes]
    assert check_stack(validate_stack(nginx_stack(traffic={"weights": {"v1": 100}, "routes": unnamed}))) == []


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


def test_http_rules_on_a_port_istio_does_not_route_as_http_are_refused_naming_what_would_be_ignored() -> None:
    path, text = _one(nginx_stack(ports=[{"name": "tcp-web", "port": 8080, "targetPort": 80}]))
    assert path == "services.nginx.ports[0].name"
    assert text.startswith("MK211 port 8080 speaks 'tcp'")
    assert "a split between 2 versions (versions): every version's pods would take requests in proportion" in text
    assert "name it http" in text


# Each rule a proxy that does not read HTTP cannot apply, and what the message says becomes of the requests.
ALL_TO_V1 = {"weights": {"v1": 100}}
TESTERS = {"headers": {"x-test": {"exact": "1"}}}
L7_RULES = [
    ({"traffic": {"weights": {"v1": 70, "v2": 30}}}, "versions", "whatever the weights say"),
    ({"traffic": {**ALL_TO_V1, "timeout": "2s"}}, "traffic.timeout", "no timeout would cut"),
    ({"traffic": {**ALL_TO_V1, "retries": {"attempts": 2}}}, "traffic.retries", "no failed request would be retried"),
    ({"traffic": {**ALL_TO_V1, "mirror": {"version": "v2"}}}, "traffic.mirror", "no request would be mirrored"),
    ({"traffic": ALL_TO_V1, "faults": [{"match": TESTERS, "abort": {"httpStatus": 500}}]}, "faults",
     "no fault would be injected"),
    ({"traffic": {**ALL_TO_V1, "routes": [{"match": TESTERS, "to": "v2"}]}}, "traffic.routes",
     "no request would be routed by its headers or path"),
    ({"traffic": ALL_TO_V1, "allowFrom": [{"service": "sleep", "paths": ["/admin/*"]}]}, "allowFrom[0]",
     "every request it covers would be refused"),
]  # fmt: skip


@pytest.mark.parametrize(("service", "key", "lost"), L7_RULES)
def test_an_l7_rule_on_a_tcp_port_says_what_becomes_of_the_requests_under_that_rule(
    service: dict[str, Any], key: str, lost: str
) -> None:
    path, text = _one(nginx_stack(ports=[{"name": "tcp-web", "port": 8080, "targetPort": 80}], **service))
    assert path == "services.nginx.ports[0].name"
    assert f"({key}): " in text and lost in text


@pytest.mark.parametrize(("service", "key", "lost"), L7_RULES)
def test_an_l7_rule_in_an_ambient_namespace_without_a_waypoint_says_what_becomes_of_the_requests(
    service: dict[str, Any], key: str, lost: str
) -> None:
    raw = _ambient_waypoint(False)
    raw["services"]["nginx"].update(service)
    raw["services"]["nginx"]["versions"]["v2"]["replicas"] = 1
    problems = _problems(raw)
    text = problems[f"services.nginx.{key}"]
    assert text.startswith("MK804 namespace 'demo' is ambient with waypoint: false") and lost in text


def test_a_tcp_service_with_one_version_and_no_http_rules_is_accepted() -> None:
    raw = nginx_stack(ports=[{"name": "tcp-db", "port": 8080, "targetPort": 80}], traffic={})
    raw["services"]["nginx"]["versions"].pop("v2")
    assert validate_stack(raw).services["nginx"].ports[0].name == "tcp-db"


@pytest.mark.parametrize("port", [{"name": "grpc", "port": 8080}, {"name": "web", "port": 8080, "appProtocol": "http2"},
                                  {"name": "ws", "port": 8080, "appProtocol": "kubernetes.io/ws"}])  # fmt: skip
def test_canary_weights_on_ports_istio_routes_as_http_are_accepted(port: dict[str, Any]) -> None:
    assert validate_stack(nginx_stack(ports=[port])).services["nginx"].traffic.weights == {"v1": 70, "v2": 30}


def _ambient_waypoint(waypoint: object) -> dict[str, Any]:
    raw = nginx_stack()
    raw["namespaces"]["demo"] = {"dataplane": "ambient", "waypoint": waypoint}
    return raw


def test_a_value_that_fits_no_branch_of_a_union_is_one_finding_in_the_stack_files_words() -> None:
    # waypoint is a DNS label or false: pydantic reports each branch, at paths like
    # `waypoint.function-after[_dns_label(), str]` and `waypoint.literal[False]`.
    problems = _problems(_ambient_waypoint("Bad_Name"))
    assert list(problems) == ["namespaces.demo.waypoint"], problems
    assert problems["namespaces.demo.waypoint"].startswith("MK203 'Bad_Name' is not a valid DNS-1123 label")
    problems = _problems(_ambient_waypoint(True))
    assert list(problems) == ["namespaces.demo.waypoint"], problems
    text = problems["namespaces.demo.waypoint"]
    assert text.startswith("MK003") and "should be false, got true" in text
    assert not any(word in text for word in ("literal[", "function-after", "False", "True"))


# --- values no proxy or API server takes ------------------------------------------------------------------

HEADERS_LIMIT = 60 * 1024  # Envoy's max_request_headers_kb default, for a request's headers together
A_VALUE_NO_REQUEST_CARRIES = "x" * HEADERS_LIMIT


def _routes(match: dict[str, Any]) -> dict[str, Any]:
    return nginx_stack(traffic={"weights": {"v1": 70, "v2": 30}, "routes": [{"match": match, "to": "v2"}]})


@pytest.mark.parametrize(
    ("raw", "path", "size"),
    [
        (_routes({"headers": {"x-token": {"exact": A_VALUE_NO_REQUEST_CARRIES}}}),
         "services.nginx.traffic.routes[0].match.headers.x-token.exact", HEADERS_LIMIT + 7),
        (_routes({"headers": {"x-token": {"prefix": A_VALUE_NO_REQUEST_CARRIES}}}),
         "services.nginx.traffic.routes[0].match.headers.x-token.prefix", HEADERS_LIMIT + 7),
        (_routes({"uri": {"exact": "/" + A_VALUE_NO_REQUEST_CARRIES}}),
         "services.nginx.traffic.routes[0].match.uri.exact", HEADERS_LIMIT + 6),
        (nginx_stack(faults=[{"match": {"headers": {"x-token": {"exact": A_VALUE_NO_REQUEST_CARRIES}}},
                              "abort": {"httpStatus": 500}}]),
         "services.nginx.faults[0].match.headers.x-token.exact", HEADERS_LIMIT + 7),
        (nginx_stack(allowFrom=[{"service": "sleep", "paths": ["/" + A_VALUE_NO_REQUEST_CARRIES + "*"]}]),
         "services.nginx.allowFrom[0].paths[0]", HEADERS_LIMIT + 6),
    ],
)  # fmt: skip
def test_a_match_on_a_value_beyond_envoys_header_limit_is_refused_with_the_size_and_the_limit(
    raw: dict[str, Any], path: str, size: int
) -> None:
    found, text = _one(raw)
    assert found == path
    assert text.startswith("MK312 ") and f"{size} bytes" in text and "61440 bytes (60 KiB)" in text and "431" in text
    assert "(61440 characters)" in text or "(61441 characters)" in text, "the value is shown by its start and length"


def test_an_ingress_path_beyond_envoys_header_limit_is_refused() -> None:
    raw = scenario_raw("B1")
    raw["ingresses"]["bookinfo-gateway"]["routes"][0]["paths"] = [{"prefix": "/" + A_VALUE_NO_REQUEST_CARRIES}]
    found, text = _one(raw)
    assert found == "ingresses.bookinfo-gateway.routes[0].paths[0].prefix" and text.startswith("MK312 the path")


def test_a_value_that_fits_envoys_header_limit_is_accepted() -> None:
    validate_stack(_routes({"headers": {"x-token": {"exact": "x" * (HEADERS_LIMIT - len("x-token"))}}}))


@pytest.mark.parametrize(
    ("match", "path"),
    [
        ({"headers": {"x-id": {"regex": "y" * 40_000}}}, "services.nginx.traffic.routes[0].match.headers.x-id.regex"),
        ({"uri": {"regex": "/(?:apple|banana|cherry)" * 2000}}, "services.nginx.traffic.routes[0].match.uri.regex"),
        ({"cookie": {"user": "y" * 40_000}}, "services.nginx.traffic.routes[0].match.cookie.user"),
    ],
)  # fmt: skip
def test_a_regex_over_the_re2_program_size_istios_proxies_accept_is_refused(match: dict[str, Any], path: str) -> None:
    found, text = _one(_routes(match))
    assert found == path
    assert text.startswith("MK312 ") and "RE2 program of size" in text and "over the 32768" in text


def _big_ingress() -> dict[str, Any]:
    # 60 paths × one header route of 30000 characters: the ingress's VirtualService repeats the route per path.
    raw = scenario_raw("B1")
    route = {"match": {"headers": {"x-token": {"exact": "y" * 30_000}}}, "to": "v1"}
    raw["services"]["productpage"]["traffic"] = {"routes": [route]}
    raw["ingresses"]["bookinfo-gateway"]["routes"][0]["paths"] = [{"exact": f"/page-{i}"} for i in range(60)]
    return raw


def test_an_object_beyond_what_the_api_server_stores_is_refused_naming_its_owner_size_and_largest_part() -> None:
    found, text = _one(_big_ingress())
    assert found == "ingresses.bookinfo-gateway"
    assert text.startswith("MK313 VirtualService bookinfo-gateway.bookinfo would be 18")
    assert "over the 1572864 bytes (1.5 MiB)" in text and "its largest part is spec.http[0].match (" in text


def test_a_deployment_beyond_what_the_api_server_stores_names_the_version() -> None:
    raw = nginx_stack()
    raw["services"]["nginx"]["versions"]["v1"]["env"] = {f"V{i}": "z" * 60_000 for i in range(30)}
    found, text = _one(raw)
    assert found == "services.nginx.versions.v1"
    assert "MK313 Deployment nginx-v1.demo" in text and "spec.template.spec.containers[0].env (" in text


@pytest.mark.parametrize(
    ("percentage", "shown"), [(-0.00001, "got -0.00001"), (100.5, "got 100.5"), (-12.5, "got -12.5")]
)
def test_a_percentage_out_of_range_is_shown_as_written(percentage: float, shown: str) -> None:
    path, text = _one(nginx_stack(faults=[{"abort": {"httpStatus": 500, "percentage": percentage}}]))
    assert path == "services.nginx.faults[0].abort.percentage" and text.startswith("MK305") and shown in text


def test_a_mirror_percentage_the_gateway_api_cannot_hold_is_shown_as_written() -> None:
    raw = nginx_stack(traffic={"api": "gateway", "weights": {"v1": 70, "v2": 30}})
    raw["services"]["nginx"]["traffic"]["mirror"] = {"version": "v2", "percentage": 0.00000001}
    path, text = _one(raw)
    assert path == "services.nginx.traffic.mirror.percentage" and "mirror percentage 0.00000001 has more" in text
