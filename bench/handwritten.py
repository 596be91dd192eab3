"""The baseline: what a team writes without meshkit, plain pulumi-kubernetes over the same config dicts.

It registers the same manifests meshkit does for the benchmark stacks (``bench/mock_cost.py`` checks
that), but with no validation, no analysis and no component resources: the floor meshkit is held to.
"""

from __future__ import annotations

from typing import Any

import pulumi_kubernetes as k8s

HARDENED = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": False,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}


def _istio(name: str, kind: str, group: str, namespace: str, meta_name: str, spec: dict[str, Any]) -> None:
    metadata: dict[str, Any] = {"name": meta_name, "namespace": namespace}
    if kind in ("DestinationRule", "VirtualService"):
        # The routes are the stack's: a hand edit of them is overwritten (server-side apply with force).
        metadata["annotations"] = {"pulumi.com/patchForce": "true"}
    k8s.apiextensions.CustomResource(name, api_version=f"{group}/v1", kind=kind, metadata=metadata, spec=spec)


def register(config: dict[str, Any]) -> None:
    for ns in config["namespaces"]:
        k8s.core.v1.Namespace(f"{ns}-namespace", metadata={"name": ns, "labels": {"istio-injection": "enabled"}})
        _istio(
            f"{ns}-peerauthentication",
            "PeerAuthentication",
            "security.istio.io",
            ns,
            "default",
            {"mtls": {"mode": "STRICT"}},
        )
    for name, svc in config["services"].items():
        ns, port = svc["namespace"], svc["ports"][0]
        labels = {"app": name}
        k8s.core.v1.ServiceAccount(
            f"{name}-serviceaccount",
            metadata={"name": name, "namespace": ns, "labels": labels},
            automount_service_account_token=False,
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": name, "namespace": ns, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": port["name"], "port": port["port"], "targetPort": port["port"], "protocol": "TCP"}],
            },
        )
        for version, spec in svc["versions"].items():
            pod_labels = {"app": name, "version": version}
            container = {
                "name": name,
                "image": spec["image"],
                "ports": [{"containerPort": port["port"], "protocol": "TCP"}],
                "resources": RESOURCES,
                "securityContext": HARDENED,
            }
            k8s.apps.v1.Deployment(
                f"{name}-{version}-deployment",
                metadata={"name": f"{name}-{version}", "namespace": ns, "labels": pod_labels},
                spec={
                    "replicas": spec["replicas"],
                    "selector": {"matchLabels": pod_labels},
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "serviceAccountName": name,
                            "automountServiceAccountToken": False,
                            "containers": [container],
                        },
                    },
                },
            )
        _istio(
            f"{name}-destinationrule",
            "DestinationRule",
            "networking.istio.io",
            ns,
            name,
            {
                "host": name,
                "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                "subsets": [{"name": v, "labels": {"version": v}} for v in svc["versions"]],
            },
        )
        traffic = svc["traffic"]
        http = [
            {
                "name": r["name"],
                "match": [{"headers": r["match"]["headers"]}],
                "route": [{"destination": {"host": name, "subset": r["to"]}}],
                "timeout": traffic["timeout"],
            }
            for r in traffic["routes"]
        ]
        weighted = [(v, w) for v, w in traffic["weights"].items() if w > 0]
        http.append(
            {
                "route": [{"destination": {"host": name, "subset": v}, "weight": w} for v, w in weighted],
                "timeout": traffic["timeout"],
            }
        )
        _istio(
            f"{name}-virtualservice", "VirtualService", "networking.istio.io", ns, name, {"hosts": [name], "http": http}
        )
