"""What every rendered object shares: the manifest type, metadata, object names, kind order and YAML."""

from __future__ import annotations

from typing import Any

import yaml

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
    share to (:mod:`meshkit.mesh.gatewayapi`)."""
    return f"{service}-{version}"


def object_name(manifest: Manifest) -> str:
    """``Kind name.namespace`` (Flagger's habit), or ``Kind name`` for an object of the whole cluster."""
    meta = manifest["metadata"]
    return f"{manifest['kind']} {meta['name']}" + (f".{meta['namespace']}" if "namespace" in meta else "")


def manifest_key(manifest: Manifest) -> tuple[int, str, str]:
    meta = manifest["metadata"]
    return (KIND_ORDER.index(manifest["kind"]), meta.get("namespace", ""), meta["name"])


def manifests_to_yaml(manifests: list[Manifest]) -> str:
    """Multi-document YAML, keys in the order Kubernetes users read them (apiVersion, kind, metadata…)."""
    return yaml.dump_all(manifests, Dumper=YAML_DUMPER, sort_keys=False, default_flow_style=False, width=120)
