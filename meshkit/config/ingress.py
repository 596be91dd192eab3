"""Entry points from outside the mesh: a gateway's hosts, port, TLS and routes."""

from __future__ import annotations

from pydantic import (
    Field,
    model_validator,
)

from meshkit.config.traffic import StringMatch
from meshkit.config.values import DnsLabel, Host, LabelKey, LabelValue, MeshModel, ObjectName, PortNumber


class IngressTls(MeshModel):
    """HTTPS at the gateway, with the certificate and key of a Secret in the gateway pods' namespace."""

    credential_name: ObjectName


class IngressRoute(MeshModel):
    """Requests to ``paths`` go to ``service``, with that service's own weights, request routes and faults."""

    service: DnsLabel
    paths: list[StringMatch] = Field(default_factory=lambda: [StringMatch(prefix="/")], min_length=1)
    """URI matches (any one of them); the default sends every path."""
    port: PortNumber | None = None
    """The service port to send to; needed when the service has several."""

    @model_validator(mode="after")
    def _fits_a_proxy(self) -> IngressRoute:
        for i, path in enumerate(self.paths):
            path.fits_a_request(":path", f"paths[{i}]")
        return self


class IngressSpec(MeshModel):
    """A named entry point from outside the mesh: an Istio Gateway on the ingress gateway pods, and the
    routes bound to it."""

    namespace: DnsLabel
    """Where the Gateway and its VirtualService live (a namespace of this stack)."""
    hosts: list[Host] = Field(default_factory=lambda: ["*"], min_length=1)
    port: PortNumber | None = None
    """The gateway pods' port; defaults to 8080 for HTTP and 8443 with ``tls`` (the ports of Istio's
    ingress gateway container, behind its Service's 80 and 443)."""
    tls: IngressTls | None = None
    selector: dict[LabelKey, LabelValue] = Field(default_factory=lambda: {"istio": "ingressgateway"}, min_length=1)
    """Labels of the ingress gateway pods that serve this entry point."""
    gateway_namespace: DnsLabel = "istio-system"
    """Where those pods run: their identity is what an exposed service's ``allowFrom`` must admit."""
    routes: list[IngressRoute] = Field(min_length=1)

    @property
    def listen_port(self) -> int:
        return self.port or (8443 if self.tls else 8080)
