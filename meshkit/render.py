"""Pure functions from config models to plain Kubernetes/Istio manifest dicts.

Deterministic: the same models give the same dicts, in the same order, every time; nothing reads the
clock, the environment or Pulumi. The Pulumi components (:mod:`meshkit.components`) register exactly these
dicts, and ``meshkit render`` prints them, so what a reviewer sees is what gets deployed.
"""

from __future__ import annotations

from typing import Any

import yaml

from .models import (
    DEFAULT_RESOURCES,
    REDACTED,
    EnvSource,
    FaultRule,
    NamespaceSpec,
    Probe,
    RequestMatch,
    Retries,
    RouteRule,
    ServiceSpec,
    StackConfig,
    StringMatch,
    VersionSpec,
)

Manifest = dict[str, Any]

# libyaml's emitter when PyYAML has it: the same text as the pure-Python one, much faster.
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

ISTIO_NETWORKING = "networking.istio.io/v1"
ISTIO_SECURITY = "security.istio.io/v1"
KIND_ORDER = (
    "Namespace",
    "PeerAuthentication",
    "ServiceAccount",
    "Secret",
    "Service",
    "Deployment",
    "DestinationRule",
    "Gateway",
    "VirtualService",
    "HTTPRoute",
    "AuthorizationPolicy",
)


def object_metadata(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(sorted(labels.items()))
    return meta


# The stack file decides where traffic goes: a hand edit of a route or subset (`kubectl edit`, a console)
# is drift that the next `up` undoes, not a field-manager conflict that stops the step. `meshkit plan
# --base deployed` shows such drift before the `up` that undoes it. (pulumi-kubernetes reads this
# annotation; without it, server-side apply refuses to take back fields another manager changed.)
TRAFFIC_OWNED = {"pulumi.com/patchForce": "true"}


def traffic_metadata(name: str, namespace: str) -> Manifest:
    return {**object_metadata(name, namespace), "annotations": dict(TRAFFIC_OWNED)}


def deployment_name(service: str, version: str) -> str:
    return f"{service}-{version}"


def version_service_name(service: str, version: str) -> str:
    """The Service of one version (``app`` and ``version``), the backend an HTTPRoute sends that version's
    share to (:mod:`meshkit.gatewayapi`)."""
    return f"{service}-{version}"


# --- namespace ---------------------------------------------------------------------------------------


def injection_labels(spec: NamespaceSpec) -> dict[str, str]:
    """The one data-plane label Istio reads from a namespace, and in ambient the waypoint its services use."""
    if spec.dataplane == "ambient":
        waypoint = {"istio.io/use-waypoint": spec.waypoint} if isinstance(spec.waypoint, str) else {}
        return {"istio.io/dataplane-mode": "ambient", **waypoint}
    if spec.revision:
        return {"istio.io/rev": spec.revision}
    return {"istio-injection": "enabled"}


def namespace_manifest(name: str, spec: NamespaceSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": object_metadata(name, labels={**spec.labels, **injection_labels(spec)}),
    }


def peer_authentication_manifest(name: str, spec: NamespaceSpec) -> Manifest:
    """The namespace-wide mTLS mode (a PeerAuthentication named ``default`` applies to the namespace)."""
    return {
        "apiVersion": ISTIO_SECURITY,
        "kind": "PeerAuthentication",
        "metadata": object_metadata("default", name),
        "spec": {"mtls": {"mode": spec.mtls}},
    }


def allow_nothing_manifest(name: str) -> Manifest:
    """Istio's allow-nothing policy: an ALLOW policy without rules, so only what another policy allows
    gets through."""
    return {
        "apiVersion": ISTIO_SECURITY,
        "kind": "AuthorizationPolicy",
        "metadata": object_metadata("allow-nothing", name),
        "spec": {"action": "ALLOW"},
    }


def waypoint_principal(trust_domain: str, namespace: str, waypoint: str) -> str:
    """The SPIFFE identity of a namespace's waypoint: istiod runs it under a ServiceAccount of its name."""
    return f"{trust_domain}/ns/{namespace}/sa/{waypoint}"


def waypoint_deny_manifests(name: str, waypoint: str, trust_domain: str) -> list[Manifest]:
    """Deny-by-default in an ambient namespace whose traffic passes its waypoint. The destination's ztunnel
    sees the waypoint as the caller, and the services' allow-lists are attached to the waypoint (see
    :func:`authorization_policy_manifest`), so: ztunnel lets the waypoint reach the pods (``allow-waypoint``,
    next to ``allow-nothing``), and the waypoint denies what no allow-list allows (``allow-nothing-waypoint``,
    attached to the waypoint's Gateway)."""
    return [
        {
            "apiVersion": ISTIO_SECURITY,
            "kind": "AuthorizationPolicy",
            "metadata": object_metadata("allow-waypoint", name),
            "spec": {
                "action": "ALLOW",
                "rules": [{"from": [{"source": {"principals": [waypoint_principal(trust_domain, name, waypoint)]}}]}],
            },
        },
        {
            "apiVersion": ISTIO_SECURITY,
            "kind": "AuthorizationPolicy",
            "metadata": object_metadata("allow-nothing-waypoint", name),
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": waypoint}],
                "action": "ALLOW",
            },
        },
    ]


# --- workloads ---------------------------------------------------------------------------------------


def _probe(probe: Probe) -> Manifest:
    action: Manifest
    if probe.http_get is not None:
        action = {"httpGet": {"path": probe.http_get.path, "port": probe.http_get.port}}
    elif probe.tcp_socket is not None:
        action = {"tcpSocket": {"port": probe.tcp_socket.port}}
    else:
        assert probe.exec_action is not None  # the model guarantees exactly one action
        action = {"exec": {"command": list(probe.exec_action.command)}}
    return {
        **action,
        "initialDelaySeconds": probe.initial_delay_seconds,
        "periodSeconds": probe.period_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "failureThreshold": probe.failure_threshold,
    }


def secrets_name(service: str) -> str:
    return f"{service}-secrets"


def _env_var(service: str, name: str, value: str | EnvSource) -> Manifest:
    if isinstance(value, str):
        return {"name": name, "value": value}
    if value.secret is not None:
        ref = {"name": secrets_name(service), "key": value.secret}
    else:
        assert value.secret_key_ref is not None  # the model guarantees exactly one source
        ref = value.secret_key_ref.model_dump()
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _resources(version: VersionSpec) -> Manifest:
    """DEFAULT_RESOURCES with the version's own values on top, so requests and limits are always set."""
    declared = version.resources.model_dump(exclude_none=True) if version.resources else {}
    return {kind: {**defaults, **declared.get(kind, {})} for kind, defaults in DEFAULT_RESOURCES.items()}


def _security_context(version: VersionSpec) -> Manifest:
    """Set on the application container only: Istio's injected init container needs NET_ADMIN and root."""
    capabilities: Manifest = {"drop": ["ALL"]}
    if version.capabilities:
        capabilities["add"] = sorted(version.capabilities)
    context: Manifest = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": capabilities,
        "readOnlyRootFilesystem": version.read_only_root_filesystem,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if version.run_as_non_root:
        context["runAsNonRoot"] = True
    if version.run_as_user is not None:
        context["runAsUser"] = version.run_as_user
    return context


def _container(service: str, svc: ServiceSpec, version: VersionSpec) -> Manifest:
    container: Manifest = {
        "name": service,
        "image": version.image,
        "ports": [
            {"containerPort": p.container_port, "protocol": p.protocol}
            for p in sorted(svc.ports, key=lambda p: p.container_port)
        ],
    }
    if version.command:
        container["command"] = list(version.command)
    if version.args:
        container["args"] = list(version.args)
    if version.env:
        container["env"] = [_env_var(service, name, value) for name, value in sorted(version.env.items())]
    container["resources"] = _resources(version)
    container["securityContext"] = _security_context(version)
    if version.readiness_probe is not None:
        container["readinessProbe"] = _probe(version.readiness_probe)
    if version.liveness_probe is not None:
        container["livenessProbe"] = _probe(version.liveness_probe)
    return container


def deployment_manifest(service: str, svc: ServiceSpec, version_name: str) -> Manifest:
    """One Deployment per version; pods labelled ``app`` and ``version`` as Istio's subsets expect."""
    version = svc.versions[version_name]
    labels = {"app": service, "version": version_name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_metadata(deployment_name(service, version_name), svc.namespace, labels),
        "spec": {
            "replicas": version.replicas,
            # The selector is immutable in Kubernetes: it must never depend on anything but the names.
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    # Its own identity (the SPIFFE principal callers are allowed by); no API token mounted.
                    "serviceAccountName": service,
                    "automountServiceAccountToken": False,
                    "containers": [_container(service, svc, version)],
                },
            },
        },
    }


def service_account_manifest(service: str, svc: ServiceSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_metadata(service, svc.namespace, {"app": service}),
        "automountServiceAccountToken": False,
    }


def secret_names(svc: ServiceSpec) -> list[str]:
    """The ``meshkit:secrets`` a service's env uses."""
    return sorted(
        {v.secret for spec in svc.versions.values() for v in spec.env.values() if isinstance(v, EnvSource) and v.secret}
    )


def secret_manifest(service: str, svc: ServiceSpec) -> Manifest | None:
    """The Kubernetes Secret holding the service's Pulumi secrets, values redacted: the component fills
    them in from the stack's secret config, so they never appear in rendered or reviewed output."""
    names = secret_names(svc)
    if not names:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_metadata(secrets_name(service), svc.namespace, {"app": service}),
        "type": "Opaque",
        "stringData": dict.fromkeys(names, REDACTED),
    }


def service_manifest(service: str, svc: ServiceSpec) -> Manifest:
    """The Service selects ``app`` only, so that every version stands behind it and routing picks one."""
    ports = []
    for port in svc.ports:
        entry: Manifest = {
            "name": port.name,
            "port": port.port,
            "targetPort": port.container_port,
            "protocol": port.protocol,
        }
        if port.app_protocol:
            entry["appProtocol"] = port.app_protocol
        ports.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_metadata(service, svc.namespace, {"app": service}),
        "spec": {"type": "ClusterIP", "selector": {"app": service}, "ports": ports},
    }


# --- Istio -------------------------------------------------------------------------------------------


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


def service_principal(stack: StackConfig, service: str) -> str:
    """The SPIFFE identity of a service's pods: ``<trust domain>/ns/<namespace>/sa/<service account>``."""
    return f"{stack.trust_domain}/ns/{stack.services[service].namespace}/sa/{service}"


def caller_principals(stack: StackConfig) -> dict[str, str]:
    return {name: service_principal(stack, name) for name in stack.services}


def authorization_policy_manifest(
    service: str, svc: ServiceSpec, principals: dict[str, str], waypoint: str | None = None
) -> Manifest | None:
    """ALLOW only the declared callers (``allowFrom``); an empty list allows no one.

    Behind a ``waypoint`` (ambient), the policy is attached to the service's Service, and to its versions'
    Services when the Gateway API routes it, so that the waypoint enforces it: the destination's ztunnel
    would see the waypoint, not the caller, and cannot check methods or paths at all."""
    if svc.allow_from is None:
        return None
    rules = []
    for allow in svc.allow_from:
        source = {"principals": [principals[allow.service]]} if allow.service else {"namespaces": [allow.namespace]}
        rule: Manifest = {"from": [{"source": source}]}
        operation = {key: value for key, value in (("methods", allow.methods), ("paths", allow.paths)) if value}
        if operation:
            rule["to"] = [{"operation": operation}]
        rules.append(rule)
    spec: Manifest = {"selector": {"matchLabels": {"app": service}}, "action": "ALLOW"}
    if waypoint is not None:
        backends = [version_service_name(service, v) for v in svc.versions] if svc.traffic.api == "gateway" else []
        spec = {"targetRefs": [{"group": "", "kind": "Service", "name": name} for name in [service, *backends]]}
        spec["action"] = "ALLOW"
    if rules:
        spec["rules"] = rules
    return {
        "apiVersion": ISTIO_SECURITY,
        "kind": "AuthorizationPolicy",
        "metadata": object_metadata(service, svc.namespace),
        "spec": spec,
    }


# --- whole stack -------------------------------------------------------------------------------------


def namespace_manifests(name: str, spec: NamespaceSpec, trust_domain: str = "cluster.local") -> list[Manifest]:
    """A namespace's own objects; ``spec.waypoint`` must be resolved (a name or false, see
    :func:`meshkit.gatewayapi.resolved_namespace`)."""
    from .gatewayapi import waypoint_manifest

    manifests = [namespace_manifest(name, spec), peer_authentication_manifest(name, spec)]
    waypoint = spec.waypoint if spec.dataplane == "ambient" and isinstance(spec.waypoint, str) else None
    if waypoint is not None:
        manifests.append(waypoint_manifest(name, waypoint))
    if spec.default_deny:
        manifests.append(allow_nothing_manifest(name))
        if waypoint is not None:
            manifests += waypoint_deny_manifests(name, waypoint, trust_domain)
    return manifests


def service_manifests(
    service: str, svc: ServiceSpec, principals: dict[str, str], waypoint: str | None = None
) -> list[Manifest]:
    """A service's objects: with ``traffic.api: istio`` a DestinationRule and a VirtualService, with
    ``gateway`` a Service per version and an HTTPRoute (see :mod:`meshkit.gatewayapi`)."""
    from .gatewayapi import http_route_manifest, version_service_manifest

    optional = [secret_manifest(service, svc), authorization_policy_manifest(service, svc, principals, waypoint)]
    if svc.traffic.api == "gateway":
        routing = [*(version_service_manifest(service, svc, v) for v in svc.versions)]
        routing.append(http_route_manifest(service, svc))
    else:
        routing = [destination_rule_manifest(service, svc), virtual_service_manifest(service, svc)]
    return [
        service_account_manifest(service, svc),
        service_manifest(service, svc),
        *(deployment_manifest(service, svc, v) for v in svc.versions),
        *routing,
        *(m for m in optional if m is not None),
    ]


def object_name(manifest: Manifest) -> str:
    """``Kind name.namespace`` (Flagger's habit), or ``Kind name`` for an object of the whole cluster."""
    meta = manifest["metadata"]
    return f"{manifest['kind']} {meta['name']}" + (f".{meta['namespace']}" if "namespace" in meta else "")


def manifest_key(manifest: Manifest) -> tuple[int, str, str]:
    meta = manifest["metadata"]
    return (KIND_ORDER.index(manifest["kind"]), meta.get("namespace", ""), meta["name"])


def owned_manifests(stack: StackConfig) -> list[tuple[str, Manifest]]:
    """Every manifest of a stack, unsorted, each with the config path of what declares it (``namespaces.demo``,
    ``services.nginx``, ``services.nginx.versions.v2``, ``ingresses.shop``): whom a finding about it names."""
    # The ingresses and the Gateway API build on this module's route rules (meshkit/ingress.py and
    # meshkit/gatewayapi.py import it), hence imported here.
    from .gatewayapi import resolved_namespace, waypoint_of
    from .ingress import ingress_manifests

    owned = [
        (f"namespaces.{name}", m)
        for name in stack.namespaces
        for m in namespace_manifests(name, resolved_namespace(stack, name), stack.trust_domain)
    ]
    principals = caller_principals(stack)
    for name, svc in stack.services.items():
        for m in service_manifests(name, svc, principals, waypoint_of(stack, svc.namespace)):
            version = m["metadata"].get("labels", {}).get("version")  # a version's own objects carry its label
            owned.append((f"services.{name}" + (f".versions.{version}" if version else ""), m))
    for name, spec in stack.ingresses.items():
        owned += [(f"ingresses.{name}", m) for m in ingress_manifests(name, spec, stack.services)]
    return owned


UNIT_OF_OWNER = {"namespaces": "namespace", "services": "service", "ingresses": "ingress"}


def unit_manifests(stack: StackConfig) -> dict[str, list[Manifest]]:
    """Every manifest of a stack by the unit it belongs to (``namespace/<name>``, ``service/<name>``,
    ``ingress/<name>``): what a targeted step deploys together (see :mod:`meshkit.step_scope`)."""
    units: dict[str, list[Manifest]] = {}
    for owner, manifest in owned_manifests(stack):
        section, name = owner.split(".")[:2]
        units.setdefault(f"{UNIT_OF_OWNER[section]}/{name}", []).append(manifest)
    return units


def render_stack(stack: StackConfig) -> list[Manifest]:
    """Every manifest of a stack, sorted by kind, namespace and name."""
    return sorted((m for _, m in owned_manifests(stack)), key=manifest_key)


def manifests_to_yaml(manifests: list[Manifest]) -> str:
    """Multi-document YAML, keys in the order Kubernetes users read them (apiVersion, kind, metadata…)."""
    return yaml.dump_all(manifests, Dumper=YAML_DUMPER, sort_keys=False, default_flow_style=False, width=120)
