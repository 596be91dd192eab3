"""A picture of a stack's traffic, as Mermaid (renders in pull requests) or Graphviz DOT text.

Like :mod:`meshkit.rollout.plan`, it reads a stack summary, so the last deployed state can be drawn the same way
as a stack file. Each service points at its versions: solid edges for the default weights, labelled
edges for request-content routes, dashed edges for fault rules and mirrors. Each ingress points at the
services it exposes, labelled with their paths.

Whatever the names (a keyword of either language, say) and the values in labels (header values, paths,
hosts), both languages' own parsers read the text back as drawn: tests/test_graph.py checks it with them.

``live`` (service → version → text, e.g. ``17.5 req/s, 0.4% errors, p99 12 ms``) is what the traffic measured,
given by the caller (``meshkit graph --live`` reads it from Prometheus): it is added to the label of the first
solid edge to each version (the default route's weight), or its first edge when it has no solid one. Drawing
stays pure: this module reads no metrics.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from meshkit.config.values import percent_text
from meshkit.rollout.plan import (
    Summary,
    describe_fault,
    describe_ingress,
    describe_match,
    describe_string_match,
    describe_version,
)


@dataclass(frozen=True)
class Node:
    id: str
    kind: Literal["service", "version", "ingress"]
    lines: tuple[str, ...]
    """The label, line by line."""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    dashed: bool = False


@dataclass(frozen=True)
class Cluster:
    """A namespace and the services and versions in it."""

    id: str
    label: str
    nodes: list[Node]


@dataclass(frozen=True)
class Picture:
    """What both formats draw."""

    clusters: list[Cluster]
    ingresses: list[Node]
    edges: list[Edge]


# Ids are made from names, which are DNS labels (a-z, 0-9, '-'): each name is tagged with a capital letter for
# what it names, and its '-' become '_' (a DOT id without quotes cannot have '-'). No name has a capital, so
# distinct things get distinct ids (service `a--b` is S_a__b, version `b` of service `a` is S_a_V_b), and an
# id, which always has a '_', is never a keyword of either language (`end`, `graph`, `node`, `subgraph`, …).
# Stack outputs read back are not checked for DNS labels: any other character is written U<hex>U, which keeps
# the ids distinct (no tag is U or a hex digit).
def _id(tag: str, name: str) -> str:
    return f"{tag}_" + re.sub(r"[^a-z0-9-]", lambda found: f"U{ord(found[0]):X}U", name).replace("-", "_")


def namespace_id(namespace: str) -> str:
    return _id("N", namespace)


def service_id(service: str) -> str:
    return _id("S", service)


def version_id(service: str, version: str) -> str:
    return f"{service_id(service)}_{_id('V', version)}"


def ingress_id(ingress: str) -> str:
    return _id("I", ingress)


def _fault_targets(service: Mapping[str, Any], fault: Mapping[str, Any]) -> list[str]:
    """Where the faulted requests go: the route with the same match, else the default route."""
    route = next((r for r in service.get("routes") or [] if r.get("match") == fault.get("match")), None)
    if route is not None:
        return [route["to"]] if route.get("to") else [v for v, w in route["weights"].items() if w]
    return [v for v, w in (service.get("weights") or {}).items() if w]


def edges(name: str, service: Mapping[str, Any]) -> Iterator[Edge]:
    def to(version: str, label: str, dashed: bool = False) -> Edge:
        return Edge(service_id(name), version_id(name, version), label, dashed)

    for version, weight in (service.get("weights") or {}).items():
        if weight:
            yield to(version, f"{weight}%")
    for route in service.get("routes") or []:
        label = f"{route['name']}: " if route.get("name") else ""
        targets = {route["to"]: 100} if route.get("to") else route["weights"]
        for version, weight in targets.items():
            if weight:
                share = "" if weight == 100 else f" {weight}%"
                yield to(version, f"{label}{describe_match(route['match'])}{share}")
    for fault in service.get("faults") or []:
        label = f"{fault['name']}: " if fault.get("name") else ""
        for version in _fault_targets(service, fault):
            yield to(version, f"fault {label}{describe_fault(fault)}", dashed=True)
    mirror = service.get("mirror")
    if mirror:
        yield to(mirror["version"], f"mirror {percent_text(mirror.get('percentage', 100))}%", dashed=True)


def ingress_edges(name: str, ingress: Mapping[str, Any]) -> Iterator[Edge]:
    for route in ingress.get("routes") or []:
        paths = ", ".join(describe_string_match("uri", path) for path in route.get("paths") or [])
        yield Edge(ingress_id(name), service_id(route["service"]), paths or "every path")


def _by_namespace(summary: Summary) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
    groups: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for name, service in (summary.get("services") or {}).items():
        groups.setdefault(service["namespace"], []).append((name, service))
    return groups


def _service_label(name: str, service: Mapping[str, Any]) -> str:
    return f"{name} (Gateway API)" if service.get("api") == "gateway" else name


def _namespace_label(summary: Summary, namespace: str) -> str:
    waypoint = (summary.get("waypoints") or {}).get(namespace)
    return f"namespace {namespace}" + (f", waypoint {waypoint}" if waypoint else "")


LiveLabels = Mapping[str, Mapping[str, str]]
"""Service → version → what the traffic measured, shown on the edge to the version."""


def annotated(service: str, found: list[Edge], live: LiveLabels | None) -> list[Edge]:
    """``found`` (one service's edges) with each version's live text added to its first solid edge, else to its
    first edge."""
    texts = dict((live or {}).get(service) or {})
    if not texts:
        return found
    order = sorted(range(len(found)), key=lambda i: found[i].dashed)  # solid edges first, else in order
    result = list(found)
    for i in order:
        edge = found[i]
        version = next((v for v in texts if version_id(service, v) == edge.target), None)
        if version is not None:
            result[i] = Edge(edge.source, edge.target, f"{edge.label} · {texts.pop(version)}", edge.dashed)
    return result


def picture(summary: Summary, live: LiveLabels | None = None) -> Picture:
    clusters: list[Cluster] = []
    all_edges: list[Edge] = []
    for namespace, services in _by_namespace(summary).items():
        nodes: list[Node] = []
        for name, service in services:
            nodes.append(Node(service_id(name), "service", (_service_label(name, service),)))
            for version, spec in (service.get("versions") or {}).items():
                nodes.append(Node(version_id(name, version), "version", (version, describe_version(spec))))
            all_edges += annotated(name, list(edges(name, service)), live)
        clusters.append(Cluster(namespace_id(namespace), _namespace_label(summary, namespace), nodes))
    ingresses: list[Node] = []
    for name, ingress in (summary.get("ingresses") or {}).items():
        ingresses.append(Node(ingress_id(name), "ingress", (f"ingress {name}", describe_ingress(ingress))))
        all_edges += ingress_edges(name, ingress)
    return Picture(clusters, ingresses, all_edges)


# Header values, paths and hosts can hold any character. A control character is shown as its picture (␊ for
# a newline): each label stays on one line of the diagram's text.
_CONTROL_PICTURES = {code: 0x2400 + code for code in range(0x20)} | {0x7F: 0x2421}

# Written as Mermaid's entity codes (#60; for '<'): '"' would end the label; '<', '>' and '&' would be HTML
# (labels are HTML); '#' would start a code, and 'ﬂ' and '¶' a placeholder Mermaid writes codes as while it
# parses; '`' first makes a Markdown label; '{' after '%%' starts a directive anywhere in the text; and
# JavaScript ends a line at U+2028 and U+2029 (a '%%' after one starts a comment).
_MERMAID_ESCAPED = re.compile('["#&<>`{ﬂ¶\u2028\u2029]')


def _mermaid_label(*lines: str) -> str:
    label = "<br/>".join(
        _MERMAID_ESCAPED.sub(lambda found: f"#{ord(found[0])};", line.translate(_CONTROL_PICTURES)) for line in lines
    )
    # In a line with `style` or `classDef` anywhere (a name can hold either), Mermaid reads `:…#…;` as its own
    # style syntax and drops the ';' that ends a code. Without a ':' there is nothing to read.
    return label.replace(":", "#58;") if "#" in label else label


_MERMAID_SHAPES = {"service": ('(["', '"])'), "version": ('["', '"]'), "ingress": ('[/"', '"/]')}


def _mermaid_node(node: Node) -> str:
    start, end = _MERMAID_SHAPES[node.kind]
    return f"{node.id}{start}{_mermaid_label(*node.lines)}{end}"


def to_mermaid(summary: Summary, live: LiveLabels | None = None) -> str:
    drawn = picture(summary, live)
    lines = ["flowchart LR"]
    for cluster in drawn.clusters:
        lines.append(f'  subgraph {cluster.id}["{_mermaid_label(cluster.label)}"]')
        lines += (f"    {_mermaid_node(node)}" for node in cluster.nodes)
        lines.append("  end")
    lines += (f"  {_mermaid_node(node)}" for node in drawn.ingresses)
    for edge in drawn.edges:
        arrow = "-.->" if edge.dashed else "-->"
        lines.append(f'  {edge.source} {arrow}|"{_mermaid_label(edge.label)}"| {edge.target}')
    return "\n".join(lines) + "\n"


# A DOT string ends at '"' (written \"); in a label, Graphviz also reads backslash escapes (\n, \N for the
# node's name) and HTML entities (&amp;), so a backslash and '&' are escaped too.
def _dot_label(*lines: str) -> str:
    return "\\n".join(
        line.translate(_CONTROL_PICTURES).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")
        for line in lines
    )


_DOT_SHAPES = {"service": "shape=box, style=rounded", "version": "shape=box", "ingress": "shape=invhouse"}


def _dot_node(node: Node) -> str:
    return f'{node.id} [label="{_dot_label(*node.lines)}", {_DOT_SHAPES[node.kind]}];'


def to_dot(summary: Summary, live: LiveLabels | None = None) -> str:
    drawn = picture(summary, live)
    lines = ["digraph traffic {", "  rankdir=LR;", '  node [fontname="Helvetica"];', '  edge [fontname="Helvetica"];']
    for cluster in drawn.clusters:
        # A subgraph is a cluster (drawn as a box) when its id starts with `cluster`.
        lines.append(f"  subgraph cluster_{cluster.id} {{")
        lines.append(f'    label="{_dot_label(cluster.label)}";')
        lines += (f"    {_dot_node(node)}" for node in cluster.nodes)
        lines.append("  }")
    lines += (f"  {_dot_node(node)}" for node in drawn.ingresses)
    for edge in drawn.edges:
        style = ", style=dashed" if edge.dashed else ""
        lines.append(f'  {edge.source} -> {edge.target} [label="{_dot_label(edge.label)}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"
