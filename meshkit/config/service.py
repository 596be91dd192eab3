"""A service: its versions, its traffic policy, its faults, who may call it and whom it calls."""

from __future__ import annotations

from pydantic import (
    Field,
    model_validator,
)

from meshkit.config.traffic import FaultRule, TrafficPolicy
from meshkit.config.values import (
    Count,
    DnsLabel,
    Duration,
    MeshModel,
    duration_seconds,
    fits_a_request,
    invalid,
)
from meshkit.config.workload import ServicePort, VersionSpec


class AllowRule(MeshModel):
    """Callers allowed to reach a service: one stack service or one declared namespace, optionally only
    for some methods and paths."""

    service: DnsLabel | None = None
    namespace: DnsLabel | None = None
    methods: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_caller(self) -> AllowRule:
        if (self.service is None) == (self.namespace is None):
            raise invalid("MK003", "an allow rule names one caller", "give either 'service' or 'namespace'")
        return self

    @model_validator(mode="after")
    def _fits_a_proxy(self) -> AllowRule:
        for i, path in enumerate(self.paths):
            fits_a_request(":path", path.strip("*"), f"paths[{i}]")
        return self


class CallBudget(MeshModel):
    """How long a service's own client code waits on a call to another service, which Istio cannot see
    (Bookinfo's productpage gives reviews 3s and one retry)."""

    timeout: Duration
    retries: Count = Field(default=0, ge=0, le=100)

    def seconds(self) -> float:
        """The whole budget: timeout × (1 + retries)."""
        return duration_seconds(self.timeout) * (1 + self.retries)


class ServiceSpec(MeshModel):
    """A service with one or more versions, one Service, one DestinationRule and one VirtualService."""

    namespace: DnsLabel
    ports: list[ServicePort] = Field(min_length=1)
    versions: dict[DnsLabel, VersionSpec] = Field(min_length=1)
    traffic: TrafficPolicy = Field(default_factory=TrafficPolicy)
    faults: list[FaultRule] = Field(default_factory=list)
    allow_from: list[AllowRule] | None = None
    """Who may call this service (an AuthorizationPolicy); omitted: anyone, unless the namespace denies
    by default; ``[]``: no one."""
    calls: dict[DnsLabel, CallBudget] = Field(default_factory=dict)
    """Services this one calls, with its client's timeout budget; a fault delay downstream that exceeds
    the budget is reported (MK503)."""

    def default_weights(self) -> dict[str, int]:
        """Percent per declared version for the default route (a lone version takes all traffic)."""
        if not self.traffic.weights and len(self.versions) == 1:
            return {next(iter(self.versions)): 100}
        return {version: self.traffic.weights.get(version, 0) for version in self.versions}

    def routed_versions(self) -> set[str]:
        """Versions that any route, default or request-content, sends traffic to."""
        routed = {v for v, w in self.default_weights().items() if w > 0}
        for route in self.traffic.routes:
            routed |= {v for v, w in route.destinations().items() if w > 0}
        if self.traffic.mirror:
            routed.add(self.traffic.mirror.version)
        return routed
