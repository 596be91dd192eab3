"""`meshkit graph`'s pictures read back by the real parsers, Mermaid's own and Graphviz's `dot`: whatever the
names (keywords of either language, names that join alike) and the values in labels, both accept the diagram,
draw one node per service, version and ingress, and show the labels as written."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkit.mesh.checks import validate_stack
from meshkit.rollout.draw import to_dot, to_mermaid
from meshkit.rollout.plan import Summary
from meshkit.rollout.summary import stack_summary, summary_from_outputs

from .graph_parsers import Diagram, Mermaid, parse_dot
from .test_properties import weights

# Names (DNS labels, so lower case) that are keywords of Mermaid's flowcharts or of DOT, or start like one.
KEYWORDS = [
    *("flowchart", "graph", "subgraph", "end", "direction", "style", "linkstyle", "classdef", "class", "click"),
    *("call", "callback", "href", "default", "interpolate", "acctitle", "accdescr", "tb", "td", "bt", "rl", "lr"),
    *("v", "o", "x", "flowchart-elk", "node", "edge", "digraph", "strict", "endpoint", "end-user", "x-o", "o-x"),
]
# Values that mean something to one of the languages: quotes, HTML and entities, Mermaid's entity codes,
# directives, comments, Markdown strings, style syntax and placeholders, Graphviz's backslash escapes.
HOSTILE = [
    *('"quoted"', "<b>bold</b>", "a & b", "&amp;", "&lt;", "#quot;", "#60;", "%%{init: {'theme': 'dark'}}%%"),
    *("`markdown`", "back\\slash", "\\N", '\\"', "x-style=a:#1;", "classDef c fill:#f00;", "pipe|bar", "semi;colon"),
    *("end", "{curly}", "[square]", "(round)", "--> arrow", "é ü 中文 ×", "line\u2028%% separator", "ﬂ°°65¶ß"),
]


@pytest.fixture(scope="module")
def mermaid() -> Iterator[Mermaid]:
    parser = Mermaid()
    yield parser
    parser.close()


def _drawn(summary: Summary, mermaid: Mermaid) -> dict[str, Diagram]:
    return {"mermaid": mermaid.parse(to_mermaid(summary)), "dot": parse_dot(to_dot(summary))}


def _summary(services: dict[str, Any], ingresses: dict[str, Any] | None = None) -> Summary:
    namespaces = {s["namespace"] for s in services.values()} | {i["namespace"] for i in (ingresses or {}).values()}
    raw = {"namespaces": {ns: {} for ns in namespaces}, "services": services, "ingresses": ingresses or {}}
    return stack_summary(validate_stack(raw))


def _service(namespace: str, versions: list[str], **overrides: Any) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "ports": [{"name": "http", "port": 8080}],
        "versions": {version: {"image": "nginx:1.27"} for version in versions},
        "traffic": {"weights": {version: 100 if i == 0 else 0 for i, version in enumerate(versions)}},
    } | overrides


def _ingress(namespace: str, *routes: tuple[str, str], port: int = 8080) -> dict[str, Any]:
    """An ingress with a route per (service, exact path)."""
    routes_ = [{"service": service, "paths": [{"exact": path}]} for service, path in routes]
    return {"namespace": namespace, "port": port, "routes": routes_}


def _header(value: str) -> dict[str, Any]:
    return {"headers": {"x-user": {"exact": value}}}


def _first_line(label: str) -> str:
    return label.split("\n")[0]


def _first_lines(labels: Iterable[str]) -> list[str]:
    return sorted(map(_first_line, labels))


def _assert_one_node_per_thing(summary: Summary, diagram: Diagram) -> None:
    """One node per service, version and ingress, each namespace's in a subgraph of its own: told apart by what
    their labels name, so that two things drawn as one node, or a node lost to a keyword, show."""
    services, ingresses = summary["services"], summary.get("ingresses") or {}

    def things(names: Iterable[str]) -> list[str]:
        return sorted(thing for name in names for thing in [name, *services[name]["versions"]])

    assert _first_lines(diagram.nodes.values()) == sorted([*things(services), *(f"ingress {i}" for i in ingresses)])
    namespaces = {service["namespace"] for service in services.values()}
    assert sorted(
        (_first_line(label), _first_lines(diagram.nodes[node] for node in nodes))
        for label, nodes in diagram.clusters.values()
    ) == sorted(
        (f"namespace {namespace}", things(n for n, service in services.items() if service["namespace"] == namespace))
        for namespace in namespaces
    )


def _words(text: str) -> str:
    # Whitespace is not compared: HTML (Mermaid's labels) collapses it and Mermaid trims a label's ends.
    return " ".join(text.split())


def _assert_edge_labels(diagram: Diagram, expected: list[str]) -> None:
    shown = {_words(label) for _, _, label in diagram.edges}
    assert [text for text in expected if _words(text) not in shown] == []


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_a_keyword_names_a_namespace_service_version_and_ingress(mermaid: Mermaid, keyword: str) -> None:
    # The ingress in a namespace of its own: in the service's, their VirtualServices would have one name (MK706).
    summary = _summary({keyword: _service(keyword, [keyword, "v1"])}, {keyword: _ingress("gateways", (keyword, "/"))})
    for diagram in _drawn(summary, mermaid).values():
        _assert_one_node_per_thing(summary, diagram)
        _assert_edge_labels(diagram, ["100%", "uri=/"])


def test_names_that_join_alike_get_a_node_each(mermaid: Mermaid) -> None:
    """Service `a--b` against version `b` of service `a`, ingress `x` against version `x` of service
    `ingress`, namespace `demo` against version `demo` of service `ns`: a naive join of names and a separator
    gives each pair one id."""
    summary = _summary(
        {
            "a--b": _service("demo", ["v1"]),
            "a": _service("demo", ["v1", "b"]),
            "ingress": _service("demo", ["x"]),
            "ns": _service("other", ["demo"]),
        },
        {"x": _ingress("demo", ("a", "/a"))},
    )
    for diagram in _drawn(summary, mermaid).values():
        _assert_one_node_per_thing(summary, diagram)


def test_names_read_back_from_stack_outputs_need_not_be_dns_labels(mermaid: Mermaid) -> None:
    """`meshkit plan` draws the deployed state from stack outputs, whose names are not checked again."""
    names = ["a-b", "a_b", "aU5FUb", "A", "a.b", "ü", "end"]
    version = {"image": "nginx:1.27", "replicas": 1}
    outputs = {
        "services": {
            name: {"namespace": f"ns {name}", "versions": {name: version, "v_1": version}, "weights": {name: 100}}
            for name in names
        }
    }
    summary = summary_from_outputs(outputs, "outputs.json")
    for diagram in _drawn(summary, mermaid).values():
        _assert_one_node_per_thing(summary, diagram)


def test_labels_show_header_values_and_paths_as_written(mermaid: Mermaid) -> None:
    routes = [{"match": _header(value), "to": "v1"} for value in HOSTILE]
    paths = ["/" + value.replace("#", "") for value in HOSTILE]
    summary = _summary(
        {"web": _service("demo", ["v1"], traffic={"weights": {"v1": 100}, "routes": routes})},
        {"edge": _ingress("demo", *(("web", path) for path in paths))},
    )
    for diagram in _drawn(summary, mermaid).values():
        _assert_edge_labels(diagram, [*(f"x-user={v}" for v in HOSTILE), *(f"uri={p}" for p in paths)])


def test_a_control_character_shows_as_its_picture(mermaid: Mermaid) -> None:
    routes = [{"match": _header("a\nb\r\tc\x00\x7f"), "to": "v1"}]
    summary = _summary({"web": _service("demo", ["v1"], traffic={"weights": {"v1": 100}, "routes": routes})})
    for diagram in _drawn(summary, mermaid).values():
        _assert_edge_labels(diagram, ["x-user=a␊b␍␉c␀␡"])


# --- any names, any values ---------------------------------------------------------------------------

NAMES = st.one_of(
    st.sampled_from([*KEYWORDS, "a", "b", "a-b", "a--b", "ingress", "ns", "s", "n", "v1"]),
    st.from_regex(r"[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?", fullmatch=True),
)
# Control characters are shown as pictures (above); surrogates cannot be written as UTF-8.
VALUES = st.one_of(
    st.sampled_from(HOSTILE), st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=12)
)


@st.composite
def stacks(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Services and ingresses with any names, and the edge labels that show a drawn value."""
    namespaces = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    services: dict[str, Any] = {}
    labels: list[str] = []
    for name in draw(st.lists(NAMES, min_size=1, max_size=4, unique=True)):
        versions = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
        traffic: dict[str, Any] = {"weights": draw(weights(versions))}
        if draw(st.booleans()):
            value = draw(VALUES)
            traffic["routes"] = [{"match": _header(value), "to": draw(st.sampled_from(versions))}]
            labels.append(f"x-user={value}")
        mirrored = [v for v, weight in traffic["weights"].items() if weight < 100]
        if draw(st.booleans()) and mirrored:
            traffic["mirror"] = {"version": draw(st.sampled_from(mirrored))}
        faults: list[dict[str, Any]] = []
        if draw(st.booleans()):
            value = draw(VALUES)
            faults.append({"match": _header(value), "abort": {"httpStatus": 503}})
            labels.append(f"fault abort 503 (100%) for x-user={value}")
        services[name] = _service(draw(st.sampled_from(namespaces)), versions, traffic=traffic, faults=faults)
    ingresses: dict[str, Any] = {}
    for port, name in enumerate(draw(st.lists(NAMES, max_size=2, unique=True)), start=8080):
        namespace = draw(st.sampled_from(namespaces))
        if name in services and services[name]["namespace"] == namespace:
            continue  # their VirtualServices would have one name (MK706)
        path = "/" + draw(VALUES).replace("?", "").replace("#", "")  # a request path has neither
        # A port each: two ingresses serving the same hosts on one port are refused (MK705).
        ingresses[name] = _ingress(namespace, (draw(st.sampled_from(list(services))), path), port=port)
        labels.append(f"uri={path}")
    return services, ingresses, labels


@settings(max_examples=100, deadline=None)
@given(stacks())
def test_any_names_and_values_parse_with_a_node_per_thing(
    mermaid: Mermaid, stack: tuple[dict[str, Any], dict[str, Any], list[str]]
) -> None:
    services, ingresses, labels = stack
    summary = _summary(services, ingresses)
    for diagram in _drawn(summary, mermaid).values():
        _assert_one_node_per_thing(summary, diagram)
        _assert_edge_labels(diagram, labels)


def test_a_mirror_share_is_labelled_as_written(mermaid: Mermaid) -> None:
    # As the plan writes it (plan.describe_mirror): 0.00001, not Python's 1e-05.
    traffic = {"weights": {"v1": 100}, "mirror": {"version": "v2", "percentage": 0.00001}}
    summary = _summary({"web": _service("demo", ["v1", "v2"], traffic=traffic)})
    for diagram in _drawn(summary, mermaid).values():
        _assert_edge_labels(diagram, ["mirror 0.00001%"])


def test_live_numbers_label_the_weight_edge_of_each_version(mermaid: Mermaid) -> None:
    services = {"web": _service("demo", ["v1", "v2"], traffic={"weights": {"v1": 70, "v2": 30}})}
    summary = _summary(services)
    live = {"web": {"v1": "7.0 req/s, 0.0% errors, p99 5 ms", "v2": "3.0 req/s, 20.0% errors, p99 9 ms"}}
    drawn = {"mermaid": mermaid.parse(to_mermaid(summary, live)), "dot": parse_dot(to_dot(summary, live))}
    for diagram in drawn.values():
        assert sorted(diagram.edges) == [
            ("S_web", "S_web_V_v1", "70% · 7.0 req/s, 0.0% errors, p99 5 ms"),
            ("S_web", "S_web_V_v2", "30% · 3.0 req/s, 20.0% errors, p99 9 ms"),
        ], diagram.edges  # fmt: skip
    assert to_mermaid(summary, {}) == to_mermaid(summary)
