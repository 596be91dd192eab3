"""Pure functions from config models to plain Kubernetes/Istio manifest dicts.

Deterministic: the same models give the same dicts, in the same order, every time; nothing reads the
clock, the environment or Pulumi. The Pulumi components (:mod:`meshkit.pulumi.components`) register exactly these
dicts, and ``meshkit render`` prints them, so what a reviewer sees is what gets deployed.
"""

from __future__ import annotations

from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import ServiceSpec
from meshkit.config.stack import StackConfig
from meshkit.mesh.istio import destination_rule_manifest, virtual_service_manifest
from meshkit.mesh.manifest import Manifest, manifest_key
from meshkit.mesh.security import (
    allow_nothing_manifest,
    authorization_policy_manifest,
    caller_principals,
    peer_authentication_manifest,
    waypoint_deny_manifests,
)
from meshkit.mesh.workloads import (
    deployment_manifest,
    namespace_manifest,
    secret_manifest,
    service_account_manifest,
    service_manifest,
)


def namespace_manifests(name: str, spec: NamespaceSpec, trust_domain: str = "cluster.local") -> list[Manifest]:
    """A namespace's own objects; ``spec.waypoint`` must be resolved (a name or false, see
    :func:`meshkit.mesh.gatewayapi.resolved_namespace`)."""
    from meshkit.mesh.gatewayapi import waypoint_manifest

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
    ``gateway`` a Service per version and an HTTPRoute (see :mod:`meshkit.mesh.gatewayapi`)."""
    from meshkit.mesh.gatewayapi import http_route_manifest, version_service_manifest

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


def owned_manifests(stack: StackConfig) -> list[tuple[str, Manifest]]:
    """Every manifest of a stack, unsorted, each with the config path of what declares it (``namespaces.demo``,
    ``services.nginx``, ``services.nginx.versions.v2``, ``ingresses.shop``): whom a finding about it names."""
    # The ingresses and the Gateway API build on this module's route rules (meshkit/mesh/ingress.py and
    # meshkit/mesh/gatewayapi.py import it), hence imported here.
    from meshkit.mesh.gatewayapi import resolved_namespace, waypoint_of
    from meshkit.mesh.ingress import ingress_manifests

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
    ``ingress/<name>``): what a targeted step deploys together (see :mod:`meshkit.rollout.step_scope`)."""
    units: dict[str, list[Manifest]] = {}
    for owner, manifest in owned_manifests(stack):
        section, name = owner.split(".")[:2]
        units.setdefault(f"{UNIT_OF_OWNER[section]}/{name}", []).append(manifest)
    return units


def render_stack(stack: StackConfig) -> list[Manifest]:
    """Every manifest of a stack, sorted by kind, namespace and name."""
    return sorted((m for _, m in owned_manifests(stack)), key=manifest_key)
