"""What a rollout step changes, service by service, for a reviewer: ``meshkit plan``.

Both sides of a plan are stack summaries (:func:`meshkit.rollout.summary.stack_summary`): the base comes from
another revision of the stack file or from the outputs of the last deployment, which have that same shape,
so one comparison serves both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from meshkit.config.values import percent_text

Summary = Mapping[str, Any]


@dataclass(frozen=True)
class Change:
    """One reviewable difference: ``nginx  weight v2  30 → 80``. An empty side means added or removed."""

    service: str
    aspect: str
    before: str
    after: str

    @property
    def arrow(self) -> str:
        return f"{self.before or '(none)'} → {self.after or '(none)'}"


# --- describing summary entries ---------------------------------------------------------------------


def describe_string_match(name: str, match: Mapping[str, str]) -> str:
    if "exact" in match:
        return f"{name}={match['exact']}"
    if "prefix" in match:
        return f"{name}^={match['prefix']}"
    return f"{name}~{match['regex']}"


def describe_match(match: Mapping[str, Any] | None) -> str:
    """``end-user=jason``, ``cookie user=jason``, ``uri^=/api``; ``all requests`` without a match."""
    if not match:
        return "all requests"
    parts = [describe_string_match(name, m) for name, m in sorted((match.get("headers") or {}).items())]
    parts += [f"cookie {name}={value}" for name, value in (match.get("cookie") or {}).items()]
    if match.get("uri"):
        parts.append(describe_string_match("uri", match["uri"]))
    return ", ".join(parts)


def _destinations(rule: Mapping[str, Any]) -> str:
    if rule.get("to"):
        return str(rule["to"])
    return " ".join(f"{v} {w}%" for v, w in (rule.get("weights") or {}).items())


def describe_route(route: Mapping[str, Any]) -> str:
    text = f"{describe_match(route.get('match'))} → {_destinations(route)}"
    if route.get("timeout"):
        text += f", timeout {route['timeout']}"
    if route.get("retries"):
        text += f", {describe_retries(route['retries'])}"
    return text


def describe_fault(fault: Mapping[str, Any]) -> str:
    effects = []
    if fault.get("delay"):
        effects.append(f"delay {fault['delay']['fixedDelay']} ({percent_text(fault['delay'].get('percentage', 100))}%)")
    if fault.get("abort"):
        effects.append(f"abort {fault['abort']['httpStatus']} ({percent_text(fault['abort'].get('percentage', 100))}%)")
    return f"{' + '.join(effects)} for {describe_match(fault.get('match'))}"


def describe_retries(retries: Mapping[str, Any] | None) -> str:
    if not retries:
        return ""
    text = f"{retries['attempts']} attempts"
    if retries.get("perTryTimeout"):
        text += f" of {retries['perTryTimeout']}"
    if retries.get("retryOn"):
        text += f" on {retries['retryOn']}"
    return text


def describe_version(version: Mapping[str, Any]) -> str:
    return f"{version['image']} ×{version['replicas']}"


def describe_service(service: Mapping[str, Any]) -> str:
    api = ", Gateway API (HTTPRoute)" if service.get("api") == "gateway" else ""
    return f"namespace {service['namespace']}, versions {', '.join(service.get('versions') or {})}{api}"


def describe_api(service: Mapping[str, Any]) -> str:
    """Which object carries the service's routes."""
    return "HTTPRoute" if service.get("api") == "gateway" else "VirtualService"


def rule_key(kind: str, rule: Mapping[str, Any], index: int) -> str:
    """Rules are compared by name, or by position when unnamed."""
    return f"{kind} {rule['name']}" if rule.get("name") else f"{kind}[{index}]"


# --- comparing --------------------------------------------------------------------------------------


def _compare(service: str, aspect: str, before: str, after: str) -> Iterator[Change]:
    if before != after:
        yield Change(service, aspect, before, after)


def _compare_keyed(service: str, before: dict[str, str], after: dict[str, str]) -> Iterator[Change]:
    for key in [*before, *(k for k in after if k not in before)]:
        yield from _compare(service, key, before.get(key, ""), after.get(key, ""))


def _rules(kind: str, rules: list[Mapping[str, Any]], describe: Any) -> dict[str, str]:
    return {rule_key(kind, rule, i): describe(rule) for i, rule in enumerate(rules)}


def service_changes(name: str, before: Summary, after: Summary) -> Iterator[Change]:
    """Changes of one service present on both sides, in reading order."""
    old_weights, new_weights = before.get("weights") or {}, after.get("weights") or {}
    for version in [*old_weights, *(v for v in new_weights if v not in old_weights)]:
        old, new = old_weights.get(version), new_weights.get(version)
        yield from _compare(name, f"weight {version}", "" if old is None else str(old), "" if new is None else str(new))
    yield from _compare(name, "namespace", before["namespace"], after["namespace"])
    yield from _compare(name, "routes by", describe_api(before), describe_api(after))
    yield from _compare_keyed(
        name,
        {f"version {v}": describe_version(s) for v, s in (before.get("versions") or {}).items()},
        {f"version {v}": describe_version(s) for v, s in (after.get("versions") or {}).items()},
    )
    yield from _compare_keyed(
        name,
        _rules("route", before.get("routes") or [], describe_route),
        _rules("route", after.get("routes") or [], describe_route),
    )
    yield from _compare_keyed(
        name,
        _rules("fault", before.get("faults") or [], describe_fault),
        _rules("fault", after.get("faults") or [], describe_fault),
    )
    yield from _compare(name, "timeout", before.get("timeout") or "", after.get("timeout") or "")
    yield from _compare(
        name, "retries", describe_retries(before.get("retries")), describe_retries(after.get("retries"))
    )
    yield from _compare(
        name,
        "mirror",
        describe_mirror(before.get("mirror")),
        describe_mirror(after.get("mirror")),
    )


def describe_mirror(mirror: Mapping[str, Any] | None) -> str:
    return f"{mirror['version']} {percent_text(mirror.get('percentage', 100))}%" if mirror else ""


def describe_ingress(ingress: Mapping[str, Any]) -> str:
    scheme = f"https (Secret {ingress['tls']})" if ingress.get("tls") else "http"
    return f"{scheme} {', '.join(ingress['hosts'])} port {ingress['port']}, namespace {ingress['namespace']}"


def describe_ingress_route(route: Mapping[str, Any]) -> str:
    paths = " | ".join(describe_string_match("uri", path) for path in route.get("paths") or []) or "every path"
    port = f":{route['port']}" if route.get("port") else ""
    return f"{paths} → {route['service']}{port}"


def ingress_changes(before: Summary, after: Summary, services: list[Change]) -> Iterator[Change]:
    """Changes of the ingresses, and what the step's weight changes do to the traffic from outside: an
    exposed service's rules are applied at the gateway too, so its weights move there as well."""
    old, new = before.get("ingresses") or {}, after.get("ingresses") or {}
    for name, ingress in new.items():
        label = f"ingress {name}"
        if name not in old:
            yield Change(label, "ingress", "", describe_ingress(ingress))
        else:
            yield from _compare(label, "listens", describe_ingress(old[name]), describe_ingress(ingress))
        yield from _compare_keyed(
            label,
            {f"route[{i}]": describe_ingress_route(r) for i, r in enumerate(old.get(name, {}).get("routes") or [])},
            {f"route[{i}]": describe_ingress_route(r) for i, r in enumerate(ingress["routes"])},
        )
        exposed = {route["service"] for route in ingress["routes"]}
        for change in services:
            if change.service in exposed and change.aspect.startswith("weight "):
                yield Change(label, f"{change.aspect} of {change.service}", change.before, change.after)
    yield from (Change(f"ingress {n}", "ingress", describe_ingress(i), "") for n, i in old.items() if n not in new)


def waypoint_changes(before: Summary, after: Summary) -> Iterator[Change]:
    """A waypoint added, renamed or removed: every L7 rule of the namespace's services moves with it."""
    old, new = before.get("waypoints") or {}, after.get("waypoints") or {}
    for namespace in [*old, *(n for n in new if n not in old)]:
        yield from _compare(f"namespace {namespace}", "waypoint", old.get(namespace, ""), new.get(namespace, ""))


def plan_changes(before: Summary, after: Summary) -> list[Change]:
    """Every change from the ``before`` stack summary to ``after``: the ambient namespaces' waypoints, the
    services in ``after``'s order, then the ingresses."""
    old, new = before.get("services") or {}, after.get("services") or {}
    changes: list[Change] = list(waypoint_changes(before, after))
    for name, service in new.items():
        if name in old:
            changes += service_changes(name, old[name], service)
        else:
            changes.append(Change(name, "service", "", describe_service(service)))
    changes += [Change(name, "service", describe_service(s), "") for name, s in old.items() if name not in new]
    return changes + list(ingress_changes(before, after, changes))
