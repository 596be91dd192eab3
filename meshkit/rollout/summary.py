"""Rollout safety: the new config against the state the stack last deployed (its own stack outputs).

Pulumi orders the steps of one ``up`` by dependencies: a VirtualService waits for the DestinationRule it
routes through. That is right when a version arrives and wrong when one leaves in the same step as its
last traffic: the subset would go before the route stops using it. So a version may leave only once the
deployed state sends it nothing (make-before-break across two steps), which this module enforces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meshkit.config.ingress import IngressSpec
from meshkit.config.service import ServiceSpec
from meshkit.config.stack import StackConfig
from meshkit.config.traffic import FaultRule, Mirror, Retries, RouteRule, StringMatch
from meshkit.config.validation import format_path
from meshkit.config.workload import UNION_TAGS
from meshkit.errors import ConfigError, Finding
from meshkit.mesh.gatewayapi import waypoint_of


def _dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True) if model else None


PREVIOUS_WEIGHTS = "previousWeights"
"""The output key, per service, of the weights before the last deployed weight change."""


def service_summary(svc: ServiceSpec) -> dict[str, Any]:
    """What a stack output reports per service: the versions, weights, routes and faults in force.

    The rollout checks and ``meshkit plan`` compare these, whether they come from the last deployment
    (the stack's outputs) or from another revision of the stack file.
    """
    summary = {
        "namespace": svc.namespace,
        # Only when not the default, so that the outputs of a stack without Gateway API routes do not change.
        "api": svc.traffic.api if svc.traffic.api != "istio" else None,
        "versions": {v: {"image": s.image, "replicas": s.replicas} for v, s in svc.versions.items()},
        "weights": svc.default_weights(),
        "routes": [_dump(r) for r in svc.traffic.routes],
        "faults": [_dump(f) for f in svc.faults],
        "timeout": svc.traffic.timeout,
        "retries": _dump(svc.traffic.retries),
        "mirror": _dump(svc.traffic.mirror),
    }
    return {key: value for key, value in summary.items() if value is not None}


def ingress_summary(spec: IngressSpec) -> dict[str, Any]:
    """What a stack output reports per ingress: where it listens, and which paths go to which service."""
    summary: dict[str, Any] = {"namespace": spec.namespace, "hosts": list(spec.hosts), "port": spec.listen_port}
    if spec.tls is not None:
        summary["tls"] = spec.tls.credential_name
    summary["routes"] = [_ingress_route(route.service, route.paths, route.port) for route in spec.routes]
    return summary


def _ingress_route(service: str, paths: list[StringMatch], port: int | None) -> dict[str, Any]:
    route: dict[str, Any] = {"service": service, "paths": [_dump(path) for path in paths]}
    if port is not None:
        route["port"] = port
    return route


def stack_summary(stack: StackConfig) -> dict[str, Any]:
    """The stack outputs of a deployment of ``stack`` (``pulumi stack output --json`` reads them back),
    without what only the deployed state knows (:func:`deployment_outputs` adds it)."""
    summary: dict[str, Any] = {
        "services": {name: service_summary(svc) for name, svc in stack.services.items()},
        "production": stack.production,
    }
    if stack.ingresses:
        summary["ingresses"] = {name: ingress_summary(spec) for name, spec in stack.ingresses.items()}
    waypoints = {namespace: waypoint_of(stack, namespace) for namespace in stack.namespaces}
    if any(waypoints.values()):
        summary["waypoints"] = {namespace: name for namespace, name in waypoints.items() if name}
    return summary


# --- the weights to roll back to --------------------------------------------------------------------


def _routing(weights: Mapping[str, Any]) -> dict[str, int]:
    """The versions that get traffic, with their percent: what a weight change changes. A version at 0
    that is added or removed (a canary declared, a version retired) moves no request."""
    return {version: int(weight) for version, weight in weights.items() if weight}


def previous_weights(stack: StackConfig, deployed: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """Per service, the default-route weights it had before the most recent deployment that changed them,
    for ``meshkit step --rollback``: a deployment of ``stack`` over ``deployed`` (the last outputs) that
    changes a service's weights records the deployed ones; one that does not carries the record forward.
    A service without a record is left out: its first deployment, no weight change since, or outputs
    written before meshkit kept the record."""
    services = (deployed or {}).get("services") or {}
    found: dict[str, dict[str, int]] = {}
    for name, svc in stack.services.items():
        last = services.get(name)
        if last is None:
            continue
        weights = {version: int(weight) for version, weight in (last.get("weights") or {}).items()}
        if _routing(weights) != _routing(svc.default_weights()):
            found[name] = weights
        elif last.get(PREVIOUS_WEIGHTS) is not None:
            found[name] = {version: int(weight) for version, weight in last[PREVIOUS_WEIGHTS].items()}
    return found


def deployment_outputs(stack: StackConfig, deployed: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stack outputs the program exports when it deploys ``stack`` over ``deployed`` (the last
    outputs; None or {} before the first deployment): :func:`stack_summary`, and per service the weights
    to roll back to (``previousWeights``) where there are any."""
    summary = stack_summary(stack)
    for name, weights in previous_weights(stack, deployed).items():
        summary["services"][name][PREVIOUS_WEIGHTS] = weights
    return summary


# --- stack outputs read back ------------------------------------------------------------------------


class _Outputs(BaseModel):
    """The shape of saved stack outputs: what a summary holds. Keys other deployments may have added are
    ignored; the rules are meshkit's own models, so a summary read back is one :func:`stack_summary` wrote."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, strict=False)


class _VersionOutputs(_Outputs):
    image: str
    replicas: int


class _ServiceOutputs(_Outputs):
    namespace: str
    # Absent for a VirtualService, and in outputs of meshkit versions before the Gateway API.
    api: Literal["istio", "gateway"] = "istio"
    versions: dict[str, _VersionOutputs] = Field(default_factory=dict)
    weights: dict[str, int] = Field(default_factory=dict)
    routes: list[RouteRule] = Field(default_factory=list)
    faults: list[FaultRule] = Field(default_factory=list)
    timeout: str | None = None
    retries: Retries | None = None
    mirror: Mirror | None = None
    # Absent in outputs of a first deployment, and in those of meshkit versions before it was recorded.
    previous_weights: dict[str, int] | None = Field(default=None, alias=PREVIOUS_WEIGHTS)


class _IngressRouteOutputs(_Outputs):
    service: str
    paths: list[StringMatch] = Field(default_factory=list)
    port: int | None = None


class _IngressOutputs(_Outputs):
    namespace: str
    hosts: list[str] = Field(default_factory=list)
    port: int
    tls: str | None = None
    routes: list[_IngressRouteOutputs] = Field(default_factory=list)


class _StackOutputs(_Outputs):
    services: dict[str, _ServiceOutputs] = Field(default_factory=dict)
    production: bool = False
    # Absent in outputs of stacks without ingresses, and of meshkit versions before them.
    ingresses: dict[str, _IngressOutputs] = Field(default_factory=dict)
    # Namespace → its waypoint; absent without ambient waypoints, and before meshkit rendered them.
    waypoints: dict[str, str] = Field(default_factory=dict)


OUTPUTS_FIX = "save them with `pulumi stack output --json > FILE` from the stack's last deployment"
OUTPUTS_OUTCOME = "nothing was compared with them"
_OUTPUTS_MESSAGES = {
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON list",
}


def summary_from_outputs(outputs: object, source: str) -> dict[str, Any]:
    """Stack outputs read back (``pulumi stack output --json``) as the summary :func:`stack_summary` makes,
    or a :class:`ConfigError` (MK008) naming each value of the wrong shape."""
    if not isinstance(outputs, dict):
        found = "a list" if isinstance(outputs, list) else f"{type(outputs).__name__} {outputs!r}"[:80]
        raise ConfigError(
            [Finding("(file)", "MK008", f"stack outputs must be a JSON object, found {found}", OUTPUTS_FIX)],
            source,
            outcome=OUTPUTS_OUTCOME,
        )
    try:
        parsed = _StackOutputs.model_validate(outputs)
    except ValidationError as err:
        findings = []
        for item in err.errors():
            loc = tuple(part for part in item["loc"] if part not in UNION_TAGS)
            value = item.get("input")
            message = _OUTPUTS_MESSAGES.get(item["type"]) or str((item.get("ctx") or {}).get("message") or item["msg"])
            shown = "" if isinstance(value, dict | list) else f", got {value!r}"[:120]
            findings.append(
                Finding(format_path(loc) or "(file)", "MK008", f"{message[0].lower()}{message[1:]}{shown}", OUTPUTS_FIX)
            )
        raise ConfigError(findings, source, outcome=OUTPUTS_OUTCOME) from None
    services = {}
    for name, svc in parsed.services.items():
        summary = {
            "namespace": svc.namespace,
            "api": svc.api if svc.api != "istio" else None,
            "versions": {v: {"image": s.image, "replicas": s.replicas} for v, s in svc.versions.items()},
            "weights": dict(svc.weights),
            "routes": [_dump(r) for r in svc.routes],
            "faults": [_dump(f) for f in svc.faults],
            "timeout": svc.timeout,
            "retries": _dump(svc.retries),
            "mirror": _dump(svc.mirror),
            PREVIOUS_WEIGHTS: None if svc.previous_weights is None else dict(svc.previous_weights),
        }
        services[name] = {key: value for key, value in summary.items() if value is not None}
    result: dict[str, Any] = {"services": services, "production": parsed.production}
    if parsed.ingresses:
        result["ingresses"] = {
            name: {
                "namespace": ingress.namespace,
                "hosts": list(ingress.hosts),
                "port": ingress.port,
                **({"tls": ingress.tls} if ingress.tls is not None else {}),
                "routes": [_ingress_route(route.service, route.paths, route.port) for route in ingress.routes],
            }
            for name, ingress in parsed.ingresses.items()
        }
    if parsed.waypoints:
        result["waypoints"] = dict(parsed.waypoints)
    return result


# --- the checks --------------------------------------------------------------------------------------


def _previously_routed(summary: Mapping[str, Any]) -> dict[str, int]:
    """Version → percent of the default route, plus 100 for any version a request-content route used, and
    the share of the version the mirror copied requests to."""
    routed = {v: int(w) for v, w in (summary.get("weights") or {}).items() if w}
    for route in summary.get("routes") or []:
        for version in [route["to"]] if route.get("to") else list(route.get("weights") or {}):
            routed.setdefault(version, 100)
    mirror = summary.get("mirror")
    if mirror and mirror.get("version"):
        routed.setdefault(mirror["version"], round(float(mirror.get("percentage", 100))))
    return routed


def _check_service(stack: StackConfig, name: str, previous: Mapping[str, Any]) -> Iterator[Finding]:
    svc = stack.services[name]
    # What a leaving version takes away: its subset (VirtualService), or its own Service (HTTPRoute).
    gateway = svc.traffic.api == "gateway"
    for version, weight in sorted(_previously_routed(previous).items()):
        if version not in svc.versions:
            yield Finding(
                f"services.{name}.versions",
                "MK501",
                f"version {version!r} leaves while the deployed routes still send it traffic ({weight}%): "
                f"its {'Service' if gateway else 'subset'} and pods would go before the route stops using them",
                f"first set {version!r} to 0 (and drop it from routes and the mirror) and deploy, then remove it",
                obj=f"Service {name}-{version}.{svc.namespace}"
                if gateway
                else f"DestinationRule {name}.{svc.namespace}",
            )
    max_step = svc.traffic.max_step if svc.traffic.max_step is not None else stack.max_step
    if max_step is None:
        return
    before = {v: int(w) for v, w in (previous.get("weights") or {}).items()}
    for version, weight in svc.default_weights().items():
        change = abs(weight - before.get(version, 0))
        if change > max_step:
            yield Finding(
                f"services.{name}.traffic.weights.{version}",
                "MK502",
                f"moves {version!r} from {before.get(version, 0)}% to {weight}%, a step of {change} "
                f"over maxStep {max_step}",
                f"take it in steps of at most {max_step} points, deploying each",
                obj=f"{'HTTPRoute' if gateway else 'VirtualService'} {name}.{svc.namespace}",
            )


def check_rollout(stack: StackConfig, deployed: Mapping[str, Any] | None) -> list[Finding]:
    """Findings of the step from ``deployed`` (the stack's last outputs; None or {} before the first
    deployment, when only the config-only checks apply) to ``stack``."""
    services = (deployed or {}).get("services") or {}
    findings = [
        f
        for name, previous in services.items()
        if name in stack.services
        for f in _check_service(stack, name, previous)
    ]
    return sorted(findings)
