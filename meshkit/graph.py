"""A picture of a stack's traffic, as Mermaid (renders in pull requests) or Graphviz DOT text.

Like :mod:`meshkit.plan`, it reads a stack summary, so the last deployed state can be drawn the same way
as a stack file. Each service points at its versions: solid edges for the default weights, labelled
edges for request-content routes, dashed edges for fault rules and mirrors. Each ingress points at the
services it exposes, labelled with their paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .plan import Summary, describe_fault, describe_ingress, describe_match, describe_string_match, describe_version


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    dashed: bool = False


def _node(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", "__".join(parts))


def _fault_targets(service: Mapping[str, Any], fault: Mapping[str, Any]) -> list[str]:
    """Where the faulted requests go: the route with the same match, else the default route."""
    route = next((r for r in service.get("routes") or [] if r.get("match") == fault.get("match")), None)
    if route is not None:
        return [route["to"]] if route.get("to") else [v for v, w in route["weights"].items() if w]
    return [v for v, w in (service.get("weights") or {}).items() if w]


def edges(name: str, service: Mapping[str, Any]) -> Iterator[Edge]:
    for version, weight in (service.get("weights") or {}).items():
        if weight:
            yield Edge(_node(name), _node(name, version), f"{weight}%")
    for route in service.get("routes") or []:
        label = f"{route['name']}: " if route.get("name") else ""
        targets = {route["to"]: 100} if route.get("to") else route["weights"]
        for version, weight in targets.items():
            if weight:
                share = "" if weight == 100 else f" {weight}%"
                yield Edge(_node(name), _node(name, version), f"{label}{describe_match(route['match'])}{share}")
    for fault in service.get("faults") or []:
        label = f"{fault['name']}: " if fault.get("name") else ""
        for version in _fault_targets(service, fault):
            yield Edge(_node(name), _node(name, version), f"fault {label}{describe_fault(fault)}", dashed=True)
    mirror = service.get("mirror")
    if mirror:
        yield Edge(_node(name), _node(name, mirror["version"]), f"mirror {mirror.get('percentage', 100):g}%", True)


def ingress_edges(name: str, ingress: Mapping[str, Any]) -> Iterator[Edge]:
    for route in ingress.get("routes") or []:
        paths = ", ".join(describe_string_match("uri", path) for path in route.get("paths") or [])
        yield Edge(_node("ingress", name), _node(route["service"]), paths or "every path")


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


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(summary: Summary) -> str:
    lines = ["flowchart LR"]
    all_edges: list[Edge] = []
    for namespace, services in _by_namespace(summary).items():
        lines.append(f'  subgraph {_node("ns", namespace)}["{_namespace_label(summary, namespace)}"]')
        for name, service in services:
            lines.append(f'    {_node(name)}(["{_mermaid_text(_service_label(name, service))}"])')
            for version, spec in (service.get("versions") or {}).items():
                lines.append(f'    {_node(name, version)}["{version}<br/>{_mermaid_text(describe_version(spec))}"]')
            all_edges += edges(name, service)
        lines.append("  end")
    for name, ingress in (summary.get("ingresses") or {}).items():
        lines.append(f'  {_node("ingress", name)}[/"ingress {name}<br/>{_mermaid_text(describe_ingress(ingress))}"/]')
        all_edges += ingress_edges(name, ingress)
    for edge in all_edges:
        arrow = "-.->" if edge.dashed else "-->"
        lines.append(f'  {edge.source} {arrow}|"{_mermaid_text(edge.label)}"| {edge.target}')
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(summary: Summary) -> str:
    lines = ["digraph traffic {", "  rankdir=LR;", '  node [fontname="Helvetica"];', '  edge [fontname="Helvetica"];']
    all_edges: list[Edge] = []
    for namespace, services in _by_namespace(summary).items():
        lines.append(f"  subgraph cluster_{_node(namespace)} {{")
        lines.append(f'    label="{_dot_text(_namespace_label(summary, namespace))}";')
        for name, service in services:
            label = _dot_text(_service_label(name, service))
            lines.append(f'    {_node(name)} [label="{label}", shape=box, style=rounded];')
            for version, spec in (service.get("versions") or {}).items():
                label = f"{_dot_text(version)}\\n{_dot_text(describe_version(spec))}"
                lines.append(f'    {_node(name, version)} [label="{label}", shape=box];')
            all_edges += edges(name, service)
        lines.append("  }")
    for name, ingress in (summary.get("ingresses") or {}).items():
        label = f"ingress {_dot_text(name)}\\n{_dot_text(describe_ingress(ingress))}"
        lines.append(f'  {_node("ingress", name)} [label="{label}", shape=invhouse];')
        all_edges += ingress_edges(name, ingress)
    for edge in all_edges:
        style = ", style=dashed" if edge.dashed else ""
        lines.append(f'  {edge.source} -> {edge.target} [label="{_dot_text(edge.label)}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"
