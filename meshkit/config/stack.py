"""Everything under the ``meshkit:`` keys of one stack file."""

from __future__ import annotations

from pydantic import (
    Field,
)

from meshkit.config.ingress import IngressSpec
from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import ServiceSpec
from meshkit.config.values import (
    DnsLabel,
    Duration,
    EnvName,
    HttpAddress,
    MeshModel,
    Redacted,
    TrustDomain,
    Weight,
)


class PrometheusSpec(MeshModel):
    """Where the stack's metrics are read (``meshkit step``'s gate, ``meshkit plan``'s evidence)."""

    address: HttpAddress
    """The Prometheus HTTP API's base URL, e.g. ``http://127.0.0.1:9090``: only this address is ever asked."""


class StackConfig(MeshModel):
    """Everything under the ``meshkit:`` keys of one stack file."""

    production: bool = False
    """Marks a production environment: stricter rollout rules apply."""
    max_step: Weight | None = None
    """Default ``maxStep`` of every service of the stack."""
    trust_domain: TrustDomain = "cluster.local"
    """The mesh's trust domain, the first part of every SPIFFE principal."""
    ready_timeout: Duration = "10m"
    """How long ``pulumi up`` waits for a created or updated Deployment to become Available before the step
    fails (the routes to that version are then left as they were)."""
    secrets: dict[EnvName, Redacted] = Field(default_factory=dict)
    """Pulumi secrets for ``env`` (``pulumi config set --secret --path meshkit:secrets.<name> <value>``);
    only their names reach the models."""
    namespaces: dict[DnsLabel, NamespaceSpec] = Field(default_factory=dict)
    services: dict[DnsLabel, ServiceSpec] = Field(default_factory=dict)
    prometheus: PrometheusSpec | None = None
    """The Prometheus that ``traffic.analysis`` reads (MK901 without it)."""
    ingresses: dict[DnsLabel, IngressSpec] = Field(default_factory=dict)
    """Entry points from outside the mesh, by name (the Gateway's and its VirtualService's name)."""
