"""Traffic from outside the mesh: for each ingress, an Istio ``Gateway`` and one VirtualService bound to it.

Istio applies a VirtualService bound to a gateway at that gateway only, and a service's own VirtualService
(bound to ``mesh``) at sidecars only: a request that enters through the ingress gateway never meets the
service's own rules. So the ingress VirtualService carries, for each exposed service, that service's rules
(its faults, request routes and weighted default route, from :func:`meshkit.mesh.istio.http_rules`) with the
ingress paths added to every match. Both are rendered from one :class:`~meshkit.config.service.ServiceSpec`, so a
canary step moves the traffic from inside and from outside in the same update.

A service routed by the Gateway API (``traffic.api: gateway``) is composed the same way: its rules, which
:mod:`meshkit.mesh.gatewayapi` made sure the Gateway API can express, send each version's share to that version's
own Service (``<service>-<version>``, its HTTPRoute's backend) instead of a subset, which it has none of.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping

from meshkit.config.ingress import IngressRoute, IngressSpec
from meshkit.config.service import AllowRule, ServiceSpec
from meshkit.config.stack import StackConfig
from meshkit.config.traffic import StringMatch
from meshkit.errors import Finding
from meshkit.mesh.gatewayapi import backend_port, waypoint_of
from meshkit.mesh.istio import http_rules, string_match
from meshkit.mesh.manifest import ISTIO_NETWORKING, Manifest, object_metadata, traffic_metadata, version_service_name

# The cluster's DNS domain. The ingress VirtualService lives in its own namespace, where a short host
# (``reviews``) would mean a service of that namespace, so destinations are written in full.
CLUSTER_DOMAIN = "cluster.local"


def service_host(service: str, svc: ServiceSpec) -> str:
    return f"{service}.{svc.namespace}.svc.{CLUSTER_DOMAIN}"


def route_port(route: IngressRoute, svc: ServiceSpec) -> int | None:
    """The service port an ingress route sends to: its own, else the one the service's routes use."""
    return route.port if route.port is not None else backend_port(svc)


def gateway_manifest(name: str, spec: IngressSpec) -> Manifest:
    server: Manifest = {
        "port": {
            "number": spec.listen_port,
            "name": "https" if spec.tls else "http",
            "protocol": "HTTPS" if spec.tls else "HTTP",
        },
        "hosts": list(spec.hosts),
    }
    if spec.tls is not None:
        server["tls"] = {"mode": "SIMPLE", "credentialName": spec.tls.credential_name}
    return {
        "apiVersion": ISTIO_NETWORKING,
        "kind": "Gateway",
        "metadata": object_metadata(name, spec.namespace),
        "spec": {"selector": dict(sorted(spec.selector.items())), "servers": [server]},
    }


def _at_the_gateway(destination: Manifest, service: str, svc: ServiceSpec, port: int | None) -> Manifest:
    """A destination of the service's own rules as the gateway writes it: the full host, and for a service
    routed by the Gateway API, the version's own Service in place of the subset."""
    if svc.traffic.api == "gateway":
        moved = {key: value for key, value in destination.items() if key != "subset"}
        moved["host"] = service_host(version_service_name(service, destination["subset"]), svc)
    else:
        moved = {**destination, "host": service_host(service, svc)}
    if port is not None:
        moved["port"] = {"number": port}
    return moved


def _exposed_rule(service: str, rule: Manifest, route: IngressRoute, svc: ServiceSpec) -> Manifest:
    """One of the service's own rules as the gateway applies it: only for the ingress paths, full hosts."""
    port = route_port(route, svc)
    paths = [{"uri": string_match(path)} for path in route.paths]
    # A rule's match blocks are alternatives (OR), the conditions in a block all hold (AND): every block
    # of the service's rule gets every path, so both the rule's conditions and one path must hold.
    conditions = rule.get("match", [{}])
    exposed: Manifest = {}
    if "name" in rule:
        exposed["name"] = f"{service}-{rule['name']}"
    exposed["match"] = [{**condition, **path} for condition in conditions for path in paths]
    for key, value in rule.items():
        if key in ("name", "match"):
            continue
        if key == "route":
            value = [
                {**entry, "destination": _at_the_gateway(entry["destination"], service, svc, port)} for entry in value
            ]
        elif key == "mirror":
            value = _at_the_gateway(value, service, svc, port)
        exposed[key] = value
    return exposed


def ingress_virtual_service_manifest(name: str, spec: IngressSpec, services: Mapping[str, ServiceSpec]) -> Manifest:
    """The routes bound to the ingress's Gateway: each route's service rules, in the order of ``routes``."""
    rules = [
        _exposed_rule(route.service, rule, route, services[route.service])
        for route in spec.routes
        for rule in http_rules(route.service, services[route.service])
    ]
    return {
        "apiVersion": ISTIO_NETWORKING,
        "kind": "VirtualService",
        "metadata": traffic_metadata(name, spec.namespace),
        "spec": {"hosts": list(spec.hosts), "gateways": [name], "http": rules},
    }


# --- checks ------------------------------------------------------------------------------------------


def _admits_gateway(stack: StackConfig, svc: ServiceSpec, gateway_namespace: str) -> bool:
    if svc.allow_from is None:
        namespace = stack.namespaces.get(svc.namespace)
        return namespace is None or not namespace.default_deny
    return any(rule.namespace == gateway_namespace for rule in svc.allow_from)


def _may_allow(sent: StringMatch, allowed: str) -> bool:
    """Whether a request path the ingress sends (``sent``) may match an AuthorizationPolicy path: exact,
    ``<prefix>*``, ``*<suffix>`` or ``*``. What cannot be told (a regex, a ``{*}`` template) counts as a match."""
    value = _path_value(sent)
    if value is None or allowed == "*" or "{" in allowed:
        return True
    if allowed.endswith("*"):
        stem = allowed[:-1]
        return value.startswith(stem) or (sent.prefix is not None and stem.startswith(value))
    if allowed.startswith("*"):
        return sent.prefix is not None or value.endswith(allowed[1:])
    return value == allowed if sent.exact is not None else allowed.startswith(value)


def _gateway_rules_missing(
    svc: ServiceSpec, gateway_namespace: str, route: IngressRoute
) -> list[tuple[int, AllowRule]]:
    """The allow rules that admit the gateway, with their index, when each admits it only on paths this route
    never sends (every request of the route then gets 403); otherwise none."""
    rules = [(j, rule) for j, rule in enumerate(svc.allow_from or []) if rule.namespace == gateway_namespace]
    reached = any(
        not rule.paths or any(_may_allow(sent, allowed) for sent in route.paths for allowed in rule.paths)
        for _, rule in rules
    )
    return [] if reached else rules


def _describe_path(match: StringMatch) -> str:
    kind, value = next(iter(string_match(match).items()))
    return f"{value}{'*' if kind == 'prefix' else ''}" if kind != "regex" else f"regex {value}"


def _hosts_overlap(first: str, second: str) -> bool:
    def covers(wildcard: str, host: str) -> bool:
        return wildcard == "*" or (wildcard.startswith("*.") and host.endswith(wildcard[1:]))

    return first == second or covers(first, second) or covers(second, first)


def _check_route(stack: StackConfig, name: str, spec: IngressSpec, i: int) -> Iterator[Finding]:
    route = spec.routes[i]
    path = f"ingresses.{name}.routes[{i}]"
    svc = stack.services.get(route.service)
    if svc is None:
        yield Finding(
            f"{path}.service",
            "MK701",
            f"routes to service {route.service!r}, which the stack does not declare",
            f"name a service of the stack ({', '.join(stack.services) or 'none'})",
            obj=f"VirtualService {name}.{spec.namespace}",
        )
        return
    numbers = [p.port for p in svc.ports]
    if route.port is not None and route.port not in numbers:
        yield Finding(
            f"{path}.port",
            "MK108",
            f"port {route.port} is not a port of service {route.service!r}",
            f"use one of {', '.join(map(str, numbers))}",
            obj=f"VirtualService {name}.{spec.namespace}",
        )
    elif route_port(route, svc) is None:
        yield Finding(
            f"{path}.port",
            "MK108",
            f"service {route.service!r} exposes {len(numbers)} ports and the ingress route picks none",
            f"set port to one of {', '.join(map(str, numbers))}",
            obj=f"VirtualService {name}.{spec.namespace}",
        )
    namespace = stack.namespaces.get(svc.namespace)
    if namespace is not None and namespace.default_deny and waypoint_of(stack, svc.namespace) is not None:
        yield Finding(
            f"{path}.service",
            "MK703",
            f"service {route.service!r} is in namespace {svc.namespace!r}, ambient with a waypoint and defaultDeny: "
            "the ingress gateway calls the pods directly, past the waypoint, and their ztunnel admits only the "
            "waypoint, so every request through this ingress would be refused",
            f"expose a service of a namespace without defaultDeny, or set namespaces.{svc.namespace}.waypoint: false "
            "if its services need no L7 rules",
            obj=f"AuthorizationPolicy allow-waypoint.{svc.namespace}",
        )
    elif not _admits_gateway(stack, svc, spec.gateway_namespace):
        yield Finding(
            f"{path}.service",
            "MK703",
            f"service {route.service!r} does not admit the ingress gateway (namespace {spec.gateway_namespace!r}): "
            "every request through this ingress would get 403",
            f"add {{namespace: {spec.gateway_namespace}}} to services.{route.service}.allowFrom",
            obj=f"AuthorizationPolicy {route.service}.{svc.namespace}",
        )
    elif rules := _gateway_rules_missing(svc, spec.gateway_namespace, route):
        named = " and ".join(f"allowFrom[{j}] ({', '.join(rule.paths)})" for j, rule in rules)
        yield Finding(
            f"{path}.paths",
            "MK703",
            f"service {route.service!r} admits the ingress gateway (namespace {spec.gateway_namespace!r}) only on "
            f"paths this route never sends: services.{route.service}.{named}, against "
            f"{', '.join(map(_describe_path, route.paths))}: every request through this route would get 403",
            f"add the route's paths to services.{route.service}.allowFrom[{rules[0][0]}].paths (or remove its "
            "paths), or send this route only paths the allow-list admits",
            obj=f"AuthorizationPolicy {route.service}.{svc.namespace}",
        )
    uri_rules = [r.name or f"routes[{j}]" for j, r in enumerate(svc.traffic.routes) if r.match and r.match.uri]
    uri_rules += [f.name or f"faults[{j}]" for j, f in enumerate(svc.faults) if f.match and f.match.uri]
    if uri_rules:
        yield Finding(
            f"{path}.paths",
            "MK704",
            f"service {route.service!r} already matches on the URI ({', '.join(uri_rules)}), "
            "and a request matches one URI condition only, so the ingress paths cannot be added to its rules",
            "match those rules on headers or cookies instead, or expose the service on every path (omit paths)",
            obj=f"VirtualService {name}.{spec.namespace}",
        )


def _path_value(match: StringMatch) -> str | None:
    return match.exact if match.exact is not None else match.prefix


def _covers(earlier: StringMatch, later: StringMatch) -> bool:
    """Whether every request ``later`` matches is matched by ``earlier`` first (regexes are not compared)."""
    value = _path_value(later)
    if value is None or earlier.regex is not None:
        return False
    if earlier.prefix is not None:
        return value.startswith(earlier.prefix)  # Istio's prefix is a string prefix: /static takes /staticx
    return later.exact is not None and earlier.exact == later.exact


def _check_paths(name: str, spec: IngressSpec, i: int) -> Iterator[Finding]:
    """Paths no request can have (Envoy matches the path without its query or fragment), and routes whose
    every path an earlier route of the ingress takes first (its requests never reach it)."""
    route = spec.routes[i]
    base = f"ingresses.{name}.routes[{i}]"
    for j, match in enumerate(route.paths):
        value = _path_value(match)
        if value is not None and (not value.startswith("/") or "?" in value or "#" in value):
            yield Finding(
                f"{base}.paths[{j}]",
                "MK707",
                f"path {value!r} can never match: request paths start with '/' and are matched without their query "
                "string or fragment",
                "write the path alone, starting with '/' (e.g. /productpage); match a query parameter with "
                "a header or a regex rule of the service instead",
                obj=f"VirtualService {name}.{spec.namespace}",
            )
    for k, earlier in enumerate(spec.routes[:i]):
        if all(any(_covers(first, path) for first in earlier.paths) for path in route.paths):
            yield Finding(
                f"{base}.paths",
                "MK708",
                f"every path of this route (to {route.service!r}) is taken first by routes[{k}] (to "
                f"{earlier.service!r}): its requests never reach it",
                f"put this route before routes[{k}], or give routes[{k}] narrower paths",
                obj=f"VirtualService {name}.{spec.namespace}",
            )
            break


def _check_shared_hosts(stack: StackConfig, deployed: Collection[str]) -> Iterator[Finding]:
    """Two ingresses serving overlapping hosts on one port of the same gateway pods (MK705). Istio keeps the
    servers of the Gateway created first (of two created in one second, the first by name) and drops the other's;
    an ingress of the last deployment was created before any new one. The finding is on the one dropped."""
    first = sorted(stack.ingresses, key=lambda name: (name not in deployed, name))
    for i, name in enumerate(first):
        spec = stack.ingresses[name]
        for other_name in first[:i]:
            other = stack.ingresses[other_name]
            served = [host for host in other.hosts if any(_hosts_overlap(host, mine) for mine in spec.hosts)]
            if other.selector != spec.selector or other.listen_port != spec.listen_port or not served:
                continue
            mine = [host for host in spec.hosts if any(_hosts_overlap(host, theirs) for theirs in other.hosts)]
            why = (
                "it is deployed, and Istio keeps the Gateway created first"
                if other_name in deployed and name not in deployed
                else "Istio keeps the Gateway created first, and of two created together the first by name"
            )
            yield Finding(
                f"ingresses.{name}.hosts",
                "MK705",
                f"ingress {other_name!r} already serves {', '.join(served)} on port {spec.listen_port} of the same "
                f"gateway pods ({why}): Istio would drop this ingress's routes for {', '.join(mine)}",
                f"give this ingress other hosts or another port, or put its routes under ingress {other_name!r}",
                obj=f"Gateway {name}.{spec.namespace}",
            )


def check_ingresses(stack: StackConfig, deployed: Collection[str] = ()) -> Iterator[Finding]:
    """Every cross-object finding about the stack's ingresses; ``deployed`` names those of the last deployment."""
    for name, spec in stack.ingresses.items():
        base = f"ingresses.{name}"
        if spec.namespace not in stack.namespaces:
            yield Finding(
                f"{base}.namespace",
                "MK102",
                f"namespace {spec.namespace!r} is not declared, so nothing creates it before the Gateway",
                f"add it under namespaces (declared: {', '.join(stack.namespaces) or 'none'})",
            )
        owner = stack.services.get(name)
        if owner is not None and owner.namespace == spec.namespace:
            yield Finding(
                base,
                "MK706",
                f"VirtualService {name}.{spec.namespace} would be both service {name!r}'s and this ingress's",
                "give the ingress another name (e.g. " + f"{name}-gateway)",
                obj=f"VirtualService {name}.{spec.namespace}",
            )
        for i in range(len(spec.routes)):
            yield from _check_route(stack, name, spec, i)
            yield from _check_paths(name, spec, i)
    yield from _check_shared_hosts(stack, deployed)
