"""A namespace whose pods join the mesh: its data plane (sidecar or ambient), mutual TLS and waypoint."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from meshkit.config.values import DnsLabel, LabelKey, LabelValue, MeshModel, invalid

# The namespace labels meshkit derives from `dataplane`, `revision` and `waypoint`: one set by hand would
# be overwritten, or name a waypoint the stack does not deploy (every request to the namespace then fails).
MESH_LABELS = ("istio-injection", "istio.io/rev", "istio.io/dataplane-mode", "istio.io/use-waypoint",
               "istio.io/use-waypoint-namespace")  # fmt: skip


class NamespaceSpec(MeshModel):
    """A namespace whose pods join the mesh."""

    dataplane: Literal["sidecar", "ambient"] = "sidecar"
    """``sidecar``: Envoy injected into each pod; ``ambient``: ztunnel/waypoint, no sidecar."""
    revision: DnsLabel | None = None
    """Istio control-plane revision for sidecar injection (``istio.io/rev=<revision>``)."""
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    """Extra labels; the data-plane labels are meshkit's to set."""
    mtls: Literal["STRICT", "PERMISSIVE"] = "STRICT"
    """Mutual TLS between workloads (PeerAuthentication). PERMISSIVE also accepts plaintext, for migrating
    clients that are not in the mesh yet."""
    default_deny: bool = False
    """Deny every request that no service's ``allowFrom`` allows (Istio's namespace-wide allow-nothing)."""
    waypoint: DnsLabel | Literal[False] | None = None
    """Ambient only: the waypoint proxy that applies the namespace's L7 routing and policies (a Gateway API
    ``Gateway`` of class ``istio-waypoint`` by this name, and the label ``istio.io/use-waypoint``). Omitted:
    automatic, ``waypoint`` when the namespace holds a service of the stack; ``false``: none, and L7 rules
    there are refused (MK804)."""

    @model_validator(mode="after")
    def _one_injection_label(self) -> NamespaceSpec:
        owned = set(MESH_LABELS) & set(self.labels)
        if owned:
            raise invalid(
                "MK401",
                f"labels must not set {', '.join(sorted(owned))}: meshkit sets it from the namespace's settings",
                "choose the data plane with 'dataplane', 'revision' and 'waypoint', so that exactly one injection "
                "label is set and a waypoint label names a waypoint the stack deploys",
            )
        if self.revision and self.dataplane == "ambient":
            raise invalid(
                "MK401",
                "'revision' applies to sidecar injection only, and ambient was chosen",
                "remove 'revision' or use dataplane: sidecar",
            )
        if self.waypoint is not None and self.dataplane != "ambient":
            raise invalid(
                "MK401",
                "'waypoint' applies to the ambient data plane only, and sidecar was chosen",
                "remove 'waypoint' (sidecars apply L7 rules themselves) or use dataplane: ambient",
                "waypoint",
            )
        if isinstance(self.waypoint, str) and not self.waypoint[0].isalpha():
            raise invalid(
                "MK203",
                f"waypoint name {self.waypoint!r} does not start with a letter, and istiod names the waypoint's "
                "Service after it",
                "start the name with a letter, e.g. waypoint",
                "waypoint",
            )
        if self.waypoint == "none":
            raise invalid(
                "MK803",
                "waypoint name 'none' is reserved: istio.io/use-waypoint=none means no waypoint",
                "name the waypoint otherwise (e.g. waypoint), or write waypoint: false for none",
                "waypoint",
            )
        return self
