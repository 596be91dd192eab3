"""Istio's networking objects for a service: the DestinationRule of its subsets and the VirtualService that
composes its routes, weights and faults.
"""

from __future__ import annotations

from meshkit.config.service import ServiceSpec
from meshkit.config.traffic import FaultRule, RequestMatch, Retries, RouteRule, StringMatch
from meshkit.mesh.manifest import ISTIO_NETWORKING, Manifest, traffic_metadata


def destination_rule_manifest(service: str, svc: ServiceSpec) -> Manifest:
    """One subset per declared version, selected by the pods' ``version`` label."""
    return {
        "apiVersion": ISTIO_NETWORKING,
        "kind": "DestinationRule",
        "metadata": traffic_metadata(service, svc.namespace),
        "spec": {
            "host": service,
            "trafficPolicy": {"tls": {"mode": svc.traffic.tls}},
            "subsets": [{"name": v, "labels": {"version": v}} for v in svc.versions],
        },
    }


def string_match(match: StringMatch) -> Manifest:
    return match.model_dump(exclude_none=True)


def _match(match: RequestMatch) -> list[Manifest]:
    condition: Manifest = {}
    headers = match.header_matches()
    if headers:
        condition["headers"] = {name: string_match(m) for name, m in headers.items()}
    if match.uri is not None:
        condition["uri"] = string_match(match.uri)
    return [condition]


def _destinations(service: str, svc: ServiceSpec, weights: dict[str, int]) -> list[Manifest]:
    """Route destinations in declaration order; versions at 0% are left out of the route entirely."""
    routed = [(v, weights[v]) for v in svc.versions if weights.get(v, 0) > 0]
    route = []
    for version, weight in routed:
        destination: Manifest = {"host": service, "subset": version}
        if svc.traffic.port is not None:
            destination["port"] = {"number": svc.traffic.port}
        entry: Manifest = {"destination": destination}
        if len(routed) > 1:
            entry["weight"] = weight
        route.append(entry)
    return route


def _fault(fault: FaultRule) -> Manifest:
    out: Manifest = {}
    if fault.delay is not None:
        out["delay"] = {"fixedDelay": fault.delay.fixed_delay, "percentage": {"value": float(fault.delay.percentage)}}
    if fault.abort is not None:
        out["abort"] = {"httpStatus": fault.abort.http_status, "percentage": {"value": float(fault.abort.percentage)}}
    return out


def _retries(retries: Retries) -> Manifest:
    return retries.model_dump(by_alias=True, exclude_none=True)


def _http_rule(
    service: str,
    svc: ServiceSpec,
    *,
    weights: dict[str, int],
    name: str | None = None,
    match: RequestMatch | None = None,
    fault: FaultRule | None = None,
    timeout: str | None = None,
    retries: Retries | None = None,
) -> Manifest:
    """The one builder of a VirtualService http rule, shared by fault, header and default routes."""
    rule: Manifest = {}
    if name:
        rule["name"] = name
    if match is not None:
        rule["match"] = _match(match)
    if fault is not None:
        rule["fault"] = _fault(fault)
    rule["route"] = _destinations(service, svc, weights)
    if timeout:
        rule["timeout"] = timeout
    if retries is not None:
        rule["retries"] = _retries(retries)
    return rule


def http_rules(service: str, svc: ServiceSpec) -> list[Manifest]:
    """All http rules of the service's VirtualService, most specific first.

    Istio does not merge two mesh VirtualServices for one host, so faults, request-content routes and
    the weighted default route are composed here into one ordered list:

    1. scoped faults whose match is no route's match, each sending traffic where the default route does;
    2. request-content routes, carrying the fault scoped to exactly their match, if any;
    3. the default weighted route.

    A fault without a match applies to every rule that carries no scoped fault.
    """
    traffic = svc.traffic
    unscoped = next((f for f in svc.faults if f.match is None), None)
    scoped = [f for f in svc.faults if f.match is not None]

    def fault_for(match: RequestMatch | None) -> FaultRule | None:
        same = next((f for f in scoped if match is not None and f.match == match), None)
        return same or unscoped

    default_weights = svc.default_weights()

    def where_default_goes(fault: FaultRule | None, match: RequestMatch | None = None) -> Manifest:
        """A rule sending its requests where the default route does (the default route itself, when
        ``match`` is None), with the default route's timeout and retries."""
        return _http_rule(
            service,
            svc,
            weights=default_weights,
            name=fault.name if match is not None and fault is not None else None,
            match=match,
            fault=fault,
            timeout=traffic.timeout,
            retries=traffic.retries,
        )

    route_matches = [r.match for r in traffic.routes]
    rules = [where_default_goes(f, f.match) for f in scoped if f.match not in route_matches]
    rules += [_route_rule(service, svc, route, fault_for(route.match)) for route in traffic.routes]
    default = where_default_goes(unscoped)
    if traffic.mirror is not None:
        default["mirror"] = {"host": service, "subset": traffic.mirror.version}
        default["mirrorPercentage"] = {"value": float(traffic.mirror.percentage)}
    return [*rules, default]


def _route_rule(service: str, svc: ServiceSpec, route: RouteRule, fault: FaultRule | None) -> Manifest:
    return _http_rule(
        service,
        svc,
        weights=route.destinations(),
        name=route.name,
        match=route.match,
        fault=fault,
        timeout=route.timeout or svc.traffic.timeout,
        retries=route.retries or svc.traffic.retries,
    )


def virtual_service_manifest(service: str, svc: ServiceSpec) -> Manifest:
    return {
        "apiVersion": ISTIO_NETWORKING,
        "kind": "VirtualService",
        "metadata": traffic_metadata(service, svc.namespace),
        "spec": {"hosts": [service], "http": http_rules(service, svc)},
    }
