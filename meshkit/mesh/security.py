"""Istio's security objects: mutual TLS per namespace (PeerAuthentication), each service's callers
(AuthorizationPolicy) and a namespace's deny-by-default.
"""

from __future__ import annotations

from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import ServiceSpec
from meshkit.config.stack import StackConfig
from meshkit.mesh.manifest import ISTIO_SECURITY, Manifest, object_metadata, version_service_name


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
