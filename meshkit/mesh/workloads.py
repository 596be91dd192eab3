"""Kubernetes' own objects for a namespace and a service: Namespace, ServiceAccount, Secret, Service and
one Deployment per version.
"""

from __future__ import annotations

from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import ServiceSpec
from meshkit.config.values import REDACTED
from meshkit.config.workload import DEFAULT_RESOURCES, EnvSource, Probe, VersionSpec
from meshkit.mesh.manifest import Manifest, deployment_name, object_metadata


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
