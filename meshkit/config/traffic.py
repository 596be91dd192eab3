"""Where requests go: request matches, routes, weights, retries, mirrors and injected faults."""

from __future__ import annotations

import itertools
import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from meshkit.config.values import (
    ISTIO_RE2_MAX_PROGRAM_SIZE,
    RETRY_ON_POLICIES,
    CookieName,
    CookieValue,
    Count,
    DnsLabel,
    Duration,
    HeaderName,
    MeshModel,
    MetricsSetup,
    Percent,
    PortNumber,
    Re2Pattern,
    Weight,
    Weights,
    _re2_program_size,
    duration_seconds,
    fits_a_request,
    invalid,
    program_too_large,
)


class StringMatch(MeshModel):
    """Exactly one of ``exact``, ``prefix``, ``regex`` (RE2)."""

    exact: str | None = None
    prefix: str | None = None
    regex: Re2Pattern | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StringMatch:
        if sum(v is not None for v in (self.exact, self.prefix, self.regex)) != 1:
            raise invalid("MK003", "a string match needs exactly one kind", "give one of exact, prefix, regex")
        return self

    def fits_a_request(self, header: str, key: str) -> None:
        """Refuse an exact or prefix value no request can carry in ``header`` (a regex's RE2 program is bounded,
        which bounds what it can require)."""
        kind = "exact" if self.exact is not None else "prefix"
        fits_a_request(header, self.exact if self.exact is not None else self.prefix, f"{key}.{kind}")


def re2_literal(text: str) -> str:
    """``text`` as an RE2 literal: only RE2's metacharacters escaped, so the rendered regex stays readable."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def cookie_regex(name: str, value: str) -> str:
    r"""The Cookie header regex that matches one cookie wherever it stands, e.g. for ``user=jason``
    ``^(.*?;[ \t]*)?(user=jason)([ \t]*;.*)?$``.

    Browsers separate cookies with ``"; "`` (RFC 6265 5.4), some clients with ``";"``; Envoy joins the
    cookie headers of an HTTP/2 request with ``"; "``. The name can only start the header or follow a ``;``
    and optional whitespace, and the value can only end it or precede one, so ``xuser=jason`` and
    ``user=jasonx`` do not match. (Istio's old Bookinfo sample, ``^(.*?;)?(user=jason)(;.*)?$``, misses the
    cookie after ``"; "``; it can still be written under ``headers: {cookie: {regex: …}}``.)
    """
    return rf"^(.*?;[ \t]*)?({re2_literal(name)}={re2_literal(value)})([ \t]*;.*)?$"


class RequestMatch(MeshModel):
    """Conditions on a request; all must hold. ``cookie: {user: jason}`` is shorthand for the cookie regex."""

    headers: dict[HeaderName, StringMatch] = Field(default_factory=dict)
    cookie: dict[CookieName, CookieValue] = Field(default_factory=dict, max_length=1)
    uri: StringMatch | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> RequestMatch:
        if not (self.headers or self.cookie or self.uri):
            raise invalid("MK003", "a match needs at least one condition", "give headers, cookie or uri")
        if self.cookie and "cookie" in self.headers:
            raise invalid("MK003", "the cookie is matched twice", "use either the 'cookie' shorthand or headers.cookie")
        return self

    @model_validator(mode="after")
    def _fits_a_proxy(self) -> RequestMatch:
        for header, match in self.headers.items():
            match.fits_a_request(header, f"headers.{header}")
        if self.uri is not None:
            self.uri.fits_a_request(":path", "uri")
        for name, value in self.cookie.items():
            size = _re2_program_size(cookie_regex(name, value))
            if size > ISTIO_RE2_MAX_PROGRAM_SIZE:
                what = f"the Cookie regex of this {len(value)}-character value"
                raise program_too_large(what, size, f"cookie.{name}")
        return self

    def header_matches(self) -> dict[str, StringMatch]:
        """All header conditions, the cookie shorthand expanded."""
        merged = dict(self.headers)
        for name, value in self.cookie.items():
            merged["cookie"] = StringMatch(regex=cookie_regex(name, value))
        return dict(sorted(merged.items()))


class Retries(MeshModel):
    attempts: Count = Field(ge=0, le=100)
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    """Comma-separated Envoy retry policies (``5xx,connect-failure``) or HTTP status codes."""

    @field_validator("retry_on")
    @classmethod
    def _known_policies(cls, value: str | None) -> str | None:
        if value is None:
            return value
        unknown = [p for p in value.split(",") if p.strip() not in RETRY_ON_POLICIES and not p.strip().isdigit()]
        if unknown:
            raise invalid(
                "MK308",
                f"unknown retry policy {', '.join(map(repr, unknown))}",
                f"use a comma-separated list of {', '.join(sorted(RETRY_ON_POLICIES))} or HTTP status codes",
            )
        return value


class Mirror(MeshModel):
    """Copy a share of requests to a version, fire-and-forget (responses are dropped)."""

    version: DnsLabel
    percentage: Percent = 100


class RouteRule(MeshModel):
    """A request-content route: requests matching ``match`` go to ``to`` (one version) or ``weights``."""

    name: DnsLabel | None = None
    match: RequestMatch
    to: DnsLabel | None = None
    weights: Weights = Field(default_factory=dict)
    timeout: Duration | None = None
    retries: Retries | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> RouteRule:
        if (self.to is None) == (not self.weights):
            raise invalid("MK003", "a route needs one destination", "give either 'to' (a version) or 'weights'", "to")
        return self

    def destinations(self) -> dict[str, int]:
        return {self.to: 100} if self.to else dict(self.weights)


class Delay(MeshModel):
    fixed_delay: Duration
    percentage: Percent = 100


class Abort(MeshModel):
    http_status: Count = Field(ge=200, le=599)
    percentage: Percent = 100


class FaultRule(MeshModel):
    """Delay and/or abort requests to a service, for requests matching ``match`` (all requests if omitted).

    Composed into the service's single VirtualService: a fault whose match equals a route's match is
    added to that route; any other scoped fault becomes its own rule ahead of the routes, sending traffic
    where the default route does; an unscoped fault is added to every rule.
    """

    name: DnsLabel | None = None
    match: RequestMatch | None = None
    delay: Delay | None = None
    abort: Abort | None = None
    allow_unscoped: bool = False
    """Allow a fault without ``match`` in a production stack, where it would hit every user."""

    @model_validator(mode="after")
    def _something_to_inject(self) -> FaultRule:
        if self.delay is None and self.abort is None:
            raise invalid("MK003", "a fault injects nothing", "give a delay, an abort, or both")
        return self


# The shortest window the gate judges over: a rate needs two scrapes of a counter inside it, and the local
# cluster's Prometheus scrapes every 5 s (a production one, commonly every 15-30 s: choose a window of minutes).
MIN_WINDOW_SECONDS = 10
MAX_WINDOW_SECONDS = 24 * 3600


class Analysis(MeshModel):
    """The metric gate of ``meshkit step --promote`` and ``--take-over``: before a step that moves traffic to a
    version (the canary), its requests over the last ``window`` are read from the stack's Prometheus
    (``meshkit:prometheus``), and the step is refused unless the canary had at least ``minRequests``, answered
    at least ``minSuccessRate`` % of them without a 5xx, and its ``latencyPercentile`` latency was at most
    ``maxLatency``. The other versions' numbers are shown beside the canary's (``meshkit plan`` too)."""

    min_success_rate: Percent = 99
    """Floor of the share of requests not answered with a 5xx (an upstream reset or refused connection counts
    as one), in percent."""
    latency_percentile: float = Field(default=99, gt=0, lt=100)
    """Which percentile of the request duration is held to ``maxLatency`` (99: p99)."""
    max_latency: Duration = "500ms"
    """Ceiling of that percentile."""
    window: Duration = "5m"
    """How far back the requests are read."""
    min_requests: Count = Field(default=100, ge=1)
    """Fewer requests to the canary in the window and it is not judged: the step is refused ("not enough
    traffic to judge"), never let through for lack of evidence."""
    metrics: MetricsSetup = "envoy"
    """Which metrics the cluster's Prometheus holds: ``envoy``, Envoy's own per-cluster statistics
    (``envoy_cluster_upstream_rq_*`` as Istio's bootstrap tags them; upstream Envoy, the local cluster), or
    ``istio``, Istio's standard metrics (``istio_requests_total``, ``istio_request_duration_milliseconds``;
    Istio's own proxy build)."""

    @field_validator("window")
    @classmethod
    def _judgeable_window(cls, window: str) -> str:
        seconds = duration_seconds(window)
        if not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
            raise invalid(
                "MK903",
                f"window {window!r} is outside {MIN_WINDOW_SECONDS}s..24h",
                f"read at least {MIN_WINDOW_SECONDS}s (a few scrapes of the proxies) and at most 24h, e.g. '5m'",
            )
        return window

    def window_seconds(self) -> float:
        return duration_seconds(self.window)

    def max_latency_ms(self) -> float:
        return duration_seconds(self.max_latency) * 1000


class TrafficPolicy(MeshModel):
    """Where a service's requests go: the weighted default route plus request-content routes."""

    api: Literal["istio", "gateway"] = "istio"
    """How the routes are written: ``istio``, a VirtualService over a DestinationRule's subsets; ``gateway``, a
    Kubernetes Gateway API HTTPRoute whose parent is the Service (GAMMA), with one Service per version as its
    backends (see :mod:`meshkit.mesh.gatewayapi`). What the Gateway API cannot express is refused (MK801)."""
    tls: Literal["ISTIO_MUTUAL", "DISABLE"] = "ISTIO_MUTUAL"
    """TLS from callers' sidecars to this service (DestinationRule); DISABLE contradicts STRICT mTLS."""
    weights: Weights = Field(default_factory=dict)
    """Version → percent for the default route; declared versions left out get 0. May be omitted
    when the service has one version."""
    timeout: Duration | None = None
    retries: Retries | None = None
    mirror: Mirror | None = None
    port: PortNumber | None = None
    """Service port the routes apply to; needed when the service exposes more than one port."""
    max_step: Weight | None = None
    """Largest change of any version's weight in one step, against the last deployed state."""
    routes: list[RouteRule] = Field(default_factory=list)
    """Request-content routes, tried in order before the default route."""
    steps: list[Weight] = Field(default_factory=list)
    """The canary's weights, step by step, for ``meshkit step --promote`` (e.g. ``[10, 30, 50, 100]``)."""
    analysis: Analysis | None = None
    """The metric gate of ``meshkit step --promote``/``--take-over`` (:class:`Analysis`)."""

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[int]) -> list[int]:
        if steps and (steps[-1] != 100 or any(a >= b for a, b in itertools.pairwise(steps))):
            raise invalid(
                "MK309",
                f"steps {steps} must increase and end at 100",
                "list the canary's weights in increasing order, e.g. [10, 30, 50, 100]",
            )
        return steps
