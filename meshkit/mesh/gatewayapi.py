"""The Kubernetes Gateway API: a service's routes as an HTTPRoute (``traffic.api: gateway``), and the waypoints
that apply L7 rules in ambient namespaces.

An HTTPRoute whose parent is the Service (GAMMA: ``parentRefs`` group ``""``, kind ``Service``) routes the
requests sent to that Service. It cannot name a subset, so each version gets a Service of its own
(``<service>-<version>``, selecting ``app`` and ``version``) and the weights are those Services'
``backendRefs``. The route is written in the stack file's vocabulary, as a VirtualService is (weights,
request routes, timeout, mirror), and rendered from the same :class:`~meshkit.config.service.ServiceSpec`; what the
Gateway API cannot express is refused before anything is rendered (MK801, MK802), with ``traffic.api: istio``
as the way to get it. No DestinationRule is rendered for such a service: its subsets would name nothing
(the routes go to the version Services, whose hosts a DestinationRule for ``<service>`` does not cover),
Istio's automatic mutual TLS already uses Istio's certificates, and in ambient namespaces ztunnel's HBONE
does.

Istio converts an HTTPRoute into its own routes and orders its rules as the Gateway API says (most specific
match first: exact path, longer path prefix, more header matches), not as they are listed; meshkit refuses
routes whose listed order that would change (MK802). A path prefix matches whole path segments on the
Gateway API (``/api`` matches ``/api`` and ``/api/v1``, not ``/apiv1``), where a VirtualService's prefix is a
string prefix.

In an ambient namespace, ztunnel carries traffic at L4 only: weights, request routes, timeouts, mirrors and
allow-lists with methods or paths need the namespace's waypoint (a Gateway of class ``istio-waypoint``, the
form ``istioctl waypoint generate`` writes, and the label ``istio.io/use-waypoint`` on the namespace). A
waypoint is added to every ambient namespace that holds a service of the stack, unless the namespace says
``waypoint: false``, where L7 rules are then refused (MK804).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations

from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import ServiceSpec
from meshkit.config.stack import StackConfig
from meshkit.config.traffic import RequestMatch, StringMatch, re2_literal
from meshkit.config.values import duration_nanoseconds, percent_text
from meshkit.errors import Finding
from meshkit.mesh.manifest import Manifest, deployment_name, object_metadata, traffic_metadata, version_service_name
from meshkit.mesh.workloads import service_manifest

GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
WAYPOINT_CLASS = "istio-waypoint"
DEFAULT_WAYPOINT = "waypoint"
"""The name ``istioctl waypoint generate`` gives a namespace's waypoint."""
HBONE_PORT = 15008

# The standard channel's limits on one HTTPRoute (gateway-api v1.6.1 CRD).
MAX_RULES = 16
MAX_BACKENDS = 16
_INT32_MAX = 2**31 - 1
# GEP-2257 durations: at most four parts, each of at most five digits and a unit of h, m, s or ms.
_GATEWAY_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
# The characters the Gateway API allows in an Exact or PathPrefix path (its CRD's CEL rule).
_PATH_CHARACTERS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$")
USE_ISTIO = "or use traffic.api: istio, whose VirtualService can"


# --- waypoints ---------------------------------------------------------------------------------------


def waypoint_of(stack: StackConfig, namespace: str) -> str | None:
    """The waypoint an ambient namespace of the stack has: the one it names, else ``waypoint`` as soon as it
    holds a service of the stack; None for sidecar namespaces, undeclared ones and ``waypoint: false``."""
    spec = stack.namespaces.get(namespace)
    if spec is None or spec.dataplane != "ambient" or spec.waypoint is False:
        return None
    if isinstance(spec.waypoint, str):
        return spec.waypoint
    return DEFAULT_WAYPOINT if any(svc.namespace == namespace for svc in stack.services.values()) else None


def resolved_namespace(stack: StackConfig, name: str) -> NamespaceSpec:
    """The namespace's spec with its waypoint decided (a name, or false): what its component renders."""
    spec = stack.namespaces[name]
    if spec.dataplane != "ambient":
        return spec
    return spec.model_copy(update={"waypoint": waypoint_of(stack, name) or False})


def waypoint_manifest(namespace: str, name: str) -> Manifest:
    """A namespace's waypoint as ``istioctl waypoint generate`` writes it: istiod deploys it (a Deployment, a
    Service and a ServiceAccount of this name) and sends it the traffic of every Service of a namespace
    labelled ``istio.io/use-waypoint: <name>``."""
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": object_metadata(name, namespace),
        "spec": {
            "gatewayClassName": WAYPOINT_CLASS,
            "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}],
        },
    }


# --- HTTPRoute ---------------------------------------------------------------------------------------


def version_service_manifest(service: str, svc: ServiceSpec, version: str) -> Manifest:
    """The Service of one version: the service's ports, selecting that version's pods only."""
    manifest = service_manifest(service, svc)
    labels = {"app": service, "version": version}
    manifest["metadata"] = object_metadata(version_service_name(service, version), svc.namespace, labels)
    manifest["spec"]["selector"] = dict(labels)
    return manifest


def backend_port(svc: ServiceSpec) -> int | None:
    """The port the routes send to: ``traffic.port``, or the service's only port (MK108 refuses the rest)."""
    if svc.traffic.port is not None:
        return svc.traffic.port
    return svc.ports[0].port if len(svc.ports) == 1 else None


def gateway_duration(value: str) -> str | None:
    """An Istio duration (``7s``, ``1.5s``, ``250ms``) as a Gateway API one (GEP-2257: whole numbers of h, m,
    s, ms); None when it has no such form (a fraction of a millisecond, or over 99999 hours)."""
    if _GATEWAY_DURATION.fullmatch(value):
        return value
    nanoseconds = duration_nanoseconds(value)
    milliseconds, rest = divmod(nanoseconds, 10**6)
    if rest or milliseconds < 1:
        return None
    whole = int(milliseconds)
    # One unit where one fits (1.5s → 1500ms, 2h), else h, m, s and ms together (100000s → 27h46m40s).
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if whole % size == 0 and whole // size <= 99999:
            return f"{whole // size}{unit}"
    parts = [(whole // 3_600_000, "h"), (whole // 60_000 % 60, "m"), (whole // 1000 % 60, "s"), (whole % 1000, "ms")]
    if parts[0][0] > 99999:
        return None
    return "".join(f"{number}{unit}" for number, unit in parts if number)


def mirror_share(percentage: float) -> Manifest | None:
    """A mirror's share as a RequestMirror filter writes it: ``percent`` when whole, else an exact
    ``fraction``; None when the fraction's terms would not fit the API's 32-bit integers."""
    if float(percentage).is_integer():
        return {"percent": int(percentage)}
    exact = Decimal(repr(float(percentage)))
    exponent = exact.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    denominator = 100 * 10**places
    numerator = int(exact * 10**places)
    if denominator > _INT32_MAX:
        return None
    return {"fraction": {"numerator": numerator, "denominator": denominator}}


def _path(match: StringMatch) -> Manifest:
    if match.exact is not None:
        return {"type": "Exact", "value": match.exact}
    if match.prefix is not None:
        return {"type": "PathPrefix", "value": match.prefix}
    return {"type": "RegularExpression", "value": match.regex}


def _header(name: str, match: StringMatch) -> Manifest:
    """The Gateway API matches a header exactly or by regular expression (RE2 in Istio, whole value); a
    prefix is the regular expression of that literal followed by anything."""
    if match.exact is not None:
        return {"name": name, "type": "Exact", "value": match.exact}
    value = match.regex if match.regex is not None else f"{re2_literal(match.prefix or '')}.*"
    return {"name": name, "type": "RegularExpression", "value": value}


DEFAULT_PATH: Manifest = {"type": "PathPrefix", "value": "/"}
"""The path of a match that names none (the API server writes it in)."""


def _matches(match: RequestMatch | None) -> list[Manifest]:
    condition: Manifest = {"path": _path(match.uri) if match is not None and match.uri is not None else DEFAULT_PATH}
    headers = match.header_matches() if match is not None else {}
    if headers:
        condition["headers"] = [_header(name, m) for name, m in headers.items()]
    return [condition]


def _backend(service: str, version: str, port: int | None) -> Manifest:
    ref: Manifest = {"group": "", "kind": "Service", "name": version_service_name(service, version)}
    if port is not None:
        ref["port"] = port
    return ref


def _rule(
    service: str,
    svc: ServiceSpec,
    *,
    weights: dict[str, int],
    name: str | None = None,
    match: RequestMatch | None = None,
    timeout: str | None = None,
) -> Manifest:
    """The one builder of an HTTPRoute rule, shared by request routes and the default route. Versions at 0%
    are left out, as from a VirtualService route; every weight is written, in percent."""
    rule: Manifest = {}
    if name:
        rule["name"] = name
    rule["matches"] = _matches(match)
    port = backend_port(svc)
    rule["backendRefs"] = [
        {**_backend(service, v, port), "weight": weights[v]} for v in svc.versions if weights.get(v, 0) > 0
    ]
    if timeout:
        rule["timeouts"] = {"request": gateway_duration(timeout) or timeout}
    return rule


def http_route_rules(service: str, svc: ServiceSpec) -> list[Manifest]:
    """The rules of the service's HTTPRoute: its request routes as listed, then the default weighted route
    (with the mirror). Istio orders them by specificity, which :func:`check_gateway_services` makes sure is
    the listed order wherever a request could match two."""
    traffic = svc.traffic
    rules = [
        _rule(
            service,
            svc,
            weights=route.destinations(),
            name=route.name,
            match=route.match,
            timeout=route.timeout or traffic.timeout,
        )
        for route in traffic.routes
    ]
    default = _rule(service, svc, weights=svc.default_weights(), timeout=traffic.timeout)
    if traffic.mirror is not None:
        mirror: Manifest = {"backendRef": _backend(service, traffic.mirror.version, backend_port(svc))}
        mirror.update(mirror_share(traffic.mirror.percentage) or {"percent": int(traffic.mirror.percentage)})
        default["filters"] = [{"type": "RequestMirror", "requestMirror": mirror}]
    return [*rules, default]


def http_route_manifest(service: str, svc: ServiceSpec) -> Manifest:
    parent: Manifest = {"group": "", "kind": "Service", "name": service}
    if svc.traffic.port is not None:
        parent["port"] = svc.traffic.port
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": traffic_metadata(service, svc.namespace),
        "spec": {"parentRefs": [parent], "rules": http_route_rules(service, svc)},
    }


# --- checks ------------------------------------------------------------------------------------------


def _route(name: str, svc: ServiceSpec) -> str:
    return f"HTTPRoute {name}.{svc.namespace}"


def _cannot(path: str, name: str, svc: ServiceSpec, what: str, fix: str) -> Finding:
    return Finding(
        path, "MK801", f"the Gateway API cannot express this: {what}", f"{fix}, {USE_ISTIO}", obj=_route(name, svc)
    )


def _path_problem(value: str) -> str:
    """Why the Gateway API refuses an Exact or PathPrefix path (its CRD's CEL rules), or ''."""
    if not value.startswith("/"):
        return "does not start with '/'"
    for bad in ("//", "/./", "/../", "%2f", "%2F", "#"):
        if bad in value:
            return f"contains {bad!r}"
    if value.endswith(("/..", "/.")):
        return "ends with '/.' or '/..'"
    if len(value) > 1024:
        return "is longer than 1024 characters"
    if not _PATH_CHARACTERS.fullmatch(value):
        return "has a character outside letters, digits, -._~!$&'()*+,;=:@/ and %XX escapes"
    return ""


def _check_match(name: str, svc: ServiceSpec, match: RequestMatch, path: str) -> Iterator[Finding]:
    if match.uri is not None and match.uri.regex is None:
        value = match.uri.exact if match.uri.exact is not None else match.uri.prefix or ""
        problem = _path_problem(value)
        if problem:
            yield _cannot(
                f"{path}.uri",
                name,
                svc,
                f"path {value!r} {problem}, and the Gateway API accepts no such path",
                "write an absolute path of URL characters",
            )
    for header, condition in match.header_matches().items():
        value = condition.exact if condition.exact is not None else condition.prefix or condition.regex or ""
        if not value or len(value) > 4096:
            yield _cannot(
                f"{path}.headers.{header}" if header in match.headers else f"{path}.cookie",
                name,
                svc,
                f"header {header!r} matched against {'an empty value' if not value else 'over 4096 characters'} "
                "(the Gateway API takes 1 to 4096)",
                "match a non-empty value",
            )


def _precedence(match: RequestMatch | None) -> tuple[int, int, int]:
    """How Istio ranks an HTTPRoute rule's match (its conversion's sortHTTPRoutes, after the Gateway API):
    exact path, then prefix, then regex; a longer path; then more header matches. A match without a path
    has the prefix ``/``."""
    uri = match.uri if match is not None else None
    headers = len(match.header_matches()) if match is not None else 0
    if uri is None:
        return (2, 1, headers)
    if uri.exact is not None:
        return (3, len(uri.exact), headers)
    if uri.prefix is not None:
        prefix = uri.prefix if uri.prefix == "/" else uri.prefix.rstrip("/") or "/"
        return (2, len(prefix), headers)
    return (1, len(uri.regex or ""), headers)


def _exclusive(first: RequestMatch | None, second: RequestMatch | None) -> bool:
    """Whether no request can match both: two different exact values of one header, or two exact paths."""
    if first is None or second is None:
        return False
    a, b = first.header_matches(), second.header_matches()
    for header in set(a) & set(b):
        if a[header].exact is not None and b[header].exact is not None and a[header].exact != b[header].exact:
            return True
    return (
        first.uri is not None
        and second.uri is not None
        and first.uri.exact is not None
        and second.uri.exact is not None
        and first.uri.exact != second.uri.exact
    )


def _describe(match: RequestMatch | None) -> str:
    if match is None or (match.uri is None and not match.header_matches()):
        return "every request"
    parts = []
    if match.uri is not None:
        kind, value = next((k, v) for k, v in match.uri.model_dump(exclude_none=True).items())
        parts.append(f"path {kind} {value}")
    headers = list(match.header_matches())
    if headers:
        parts.append(f"header{'s' if len(headers) > 1 else ''} {', '.join(headers)}")
    return ", ".join(parts)


def _check_order(name: str, svc: ServiceSpec) -> Iterator[Finding]:
    """Rules listed in an order Istio would not keep (MK802): a later rule that ranks higher than an earlier
    one takes the requests both match."""
    base = f"services.{name}.traffic.routes"
    rules: list[tuple[str, RequestMatch | None]] = [(f"{base}[{i}]", r.match) for i, r in enumerate(svc.traffic.routes)]
    rules.append(("the default route", None))
    for (first, first_match), (then, then_match) in combinations(rules, 2):
        if _precedence(then_match) > _precedence(first_match) and not _exclusive(first_match, then_match):
            if then_match is None:
                yield Finding(
                    f"{first}.match.uri",
                    "MK802",
                    f"Istio ranks an HTTPRoute's rules by their match, not as listed, and {_describe(first_match)} "
                    "ranks below the default route's path prefix '/': this route would never be reached",
                    f"match with an exact path or a path prefix instead, {USE_ISTIO.replace('can', 'keeps order')}",
                    obj=_route(name, svc),
                )
            else:
                yield Finding(
                    f"{then}.match",
                    "MK802",
                    f"Istio ranks an HTTPRoute's rules by their match, not as listed: this route "
                    f"({_describe(then_match)}) outranks {first.rsplit('.', 1)[-1]} ({_describe(first_match)}), so "
                    "requests that match both would take this one",
                    f"list it before {first.rsplit('.', 1)[-1]}, or make the two matches exclusive, "
                    f"{USE_ISTIO.replace('can', 'keeps order')}",
                    obj=_route(name, svc),
                )


def _check_service(name: str, svc: ServiceSpec) -> Iterator[Finding]:
    base = f"services.{name}"
    traffic = svc.traffic
    for i, _fault in enumerate(svc.faults):
        yield _cannot(f"{base}.faults[{i}]", name, svc, "an HTTPRoute has no fault injection", "remove the fault")
    retries = [(f"{base}.traffic.retries", traffic.retries)]
    retries += [(f"{base}.traffic.routes[{i}].retries", r.retries) for i, r in enumerate(traffic.routes)]
    for path, policy in retries:
        if policy is not None:
            yield _cannot(path, name, svc, "the standard HTTPRoute (v1.6) has no retry policy", "remove the retries")
    if traffic.tls == "DISABLE":
        yield _cannot(
            f"{base}.traffic.tls",
            name,
            svc,
            "the TLS mode is a DestinationRule's, and a service routed by an HTTPRoute has none",
            "remove tls: DISABLE",
        )
    timeouts = [(f"{base}.traffic.timeout", traffic.timeout)]
    timeouts += [(f"{base}.traffic.routes[{i}].timeout", r.timeout) for i, r in enumerate(traffic.routes)]
    for path, timeout in timeouts:
        if timeout is not None and gateway_duration(timeout) is None:
            yield _cannot(
                path,
                name,
                svc,
                f"timeout {timeout} is not a whole number of milliseconds under 100000h (GEP-2257 durations)",
                "round it to milliseconds",
            )
    if traffic.mirror is not None and mirror_share(traffic.mirror.percentage) is None:
        yield _cannot(
            f"{base}.traffic.mirror.percentage",
            name,
            svc,
            f"mirror percentage {percent_text(traffic.mirror.percentage)} has more decimals than a RequestMirror "
            "fraction holds",
            "round it to a few decimals",
        )
    if len(traffic.routes) + 1 > MAX_RULES:
        yield _cannot(
            f"{base}.traffic.routes",
            name,
            svc,
            f"{len(traffic.routes)} routes and the default route make {len(traffic.routes) + 1} rules, "
            f"over the HTTPRoute's {MAX_RULES}",
            "merge routes",
        )
    if len(svc.versions) > MAX_BACKENDS:
        yield _cannot(
            f"{base}.versions",
            name,
            svc,
            f"{len(svc.versions)} versions, and an HTTPRoute rule holds at most {MAX_BACKENDS} backends",
            "retire versions",
        )
    for i, route in enumerate(traffic.routes):
        yield from _check_match(name, svc, route.match, f"{base}.traffic.routes[{i}].match")
    yield from _check_order(name, svc)


@dataclass(frozen=True)
class L7Rule:
    """A rule of a service that only a proxy reading HTTP applies: its config path below ``services.<name>``,
    what it is, and what happens to requests where no such proxy applies it."""

    key: str
    what: str
    lost: str


def l7_rules(svc: ServiceSpec) -> list[L7Rule]:
    """What of a service only a proxy that reads HTTP can apply (ztunnel in an ambient namespace without a waypoint,
    a sidecar on a port it proxies as bytes: neither does)."""
    traffic = svc.traffic
    found = []
    if len(svc.versions) > 1:
        found.append(
            L7Rule(
                "versions",
                f"a split between {len(svc.versions)} versions",
                "every version's pods would take requests in proportion to their number, whatever the weights say",
            )
        )
    for key, value, what, lost in (
        ("traffic.routes", traffic.routes, "request routes", "no request would be routed by its headers or path"),
        ("traffic.timeout", traffic.timeout, "a timeout", "no timeout would cut a slow request short"),
        ("traffic.retries", traffic.retries, "retries", "no failed request would be retried"),
        ("traffic.mirror", traffic.mirror, "a mirror", "no request would be mirrored"),
        ("faults", svc.faults, "fault injection", "no fault would be injected"),
    ):
        if value:
            found.append(L7Rule(key, what, lost))
    for i, rule in enumerate(svc.allow_from or []):
        if rule.methods or rule.paths:
            found.append(
                L7Rule(
                    f"allowFrom[{i}]",
                    "an allow rule on methods or paths",
                    "the rule could not be checked, so every request it covers would be refused",
                )
            )
    return found


def _check_waypoints(stack: StackConfig) -> Iterator[Finding]:
    """L7 rules in an ambient namespace without a waypoint (MK804): ztunnel would ignore the routing and
    turn an allow rule on methods or paths into a deny."""
    for name, svc in stack.services.items():
        namespace = stack.namespaces.get(svc.namespace)
        if namespace is None or namespace.dataplane != "ambient" or namespace.waypoint is not False:
            continue
        for rule in l7_rules(svc):
            yield Finding(
                f"services.{name}.{rule.key}",
                "MK804",
                f"namespace {svc.namespace!r} is ambient with waypoint: false, and {rule.what} needs a waypoint "
                f"(ztunnel forwards at L4 only): {rule.lost}",
                f"remove waypoint: false from namespaces.{svc.namespace} (or name the waypoint), or drop the L7 rule",
                obj=f"Namespace {svc.namespace}",
            )


def _check_names(stack: StackConfig) -> Iterator[Finding]:
    """Names two objects would claim (MK803): a version's Service named like another service (one host
    routed both by an HTTPRoute's backend and by that service's own VirtualService or HTTPRoute), or like
    the namespace's waypoint, whose Service istiod creates under its own name."""
    claims: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for name, svc in stack.services.items():
        own = "VirtualService" if svc.traffic.api == "istio" else "HTTPRoute"
        claims.setdefault((svc.namespace, name), []).append(
            (f"services.{name}", f"service {name!r}'s own Service (routed by its {own})")
        )
        if svc.traffic.api == "gateway":
            for version in svc.versions:
                claims.setdefault((svc.namespace, version_service_name(name, version)), []).append(
                    (
                        f"services.{name}.versions.{version}",
                        f"version {version!r} of service {name!r} (a backend of HTTPRoute {name})",
                    )
                )
    for namespace in stack.namespaces:
        waypoint = waypoint_of(stack, namespace)
        if waypoint is not None:
            claims.setdefault((namespace, waypoint), []).append(
                (f"namespaces.{namespace}.waypoint", f"the waypoint {waypoint!r}, whose Service istiod creates")
            )
            if waypoint in stack.ingresses and stack.ingresses[waypoint].namespace == namespace:
                yield Finding(
                    f"ingresses.{waypoint}",
                    "MK803",
                    f"Gateway {waypoint}.{namespace} would be both this ingress's (Istio) and the namespace's waypoint "
                    "(Gateway API): two objects of one kind and name, told apart only by their API group",
                    "give the ingress another name, or name the waypoint otherwise (namespaces.<ns>.waypoint)",
                    obj=f"Gateway {waypoint}.{namespace}",
                )
    for (namespace, service_name), owners in claims.items():
        for path, what in owners[1:]:
            yield Finding(
                path,
                "MK803",
                f"Service {service_name}.{namespace} would be both {owners[0][1]} and {what}: Istio does not define "
                "which routes apply to a host that a VirtualService and an HTTPRoute both route",
                "rename the service or the version (or the waypoint), so that each Service has one owner",
                obj=f"Service {service_name}.{namespace}",
            )
    for name, svc in stack.services.items():
        if svc.traffic.api != "gateway":
            continue
        for version in svc.versions:
            service_name = version_service_name(name, version)
            if len(service_name) > 63:
                yield Finding(
                    f"services.{name}.versions.{version}",
                    "MK203",
                    f"the version's Service {service_name!r} would be longer than 63 characters",
                    "shorten the service or version name",
                    obj=f"Deployment {deployment_name(name, version)}.{svc.namespace}",
                )


def check_gateway_services(stack: StackConfig) -> Iterator[Finding]:
    """Every cross-object finding about the Gateway API and the waypoints of the stack."""
    for name, svc in stack.services.items():
        if svc.traffic.api == "gateway":
            yield from _check_service(name, svc)
    yield from _check_waypoints(stack)
    yield from _check_names(stack)
