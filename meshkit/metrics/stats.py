"""Per-version request statistics over a window, read from Prometheus: what the gate judges, what ``meshkit
plan`` shows as evidence, and what a live view of the traffic would draw."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from meshkit.config.service import ServiceSpec
from meshkit.config.traffic import Analysis
from meshkit.metrics.prometheus import Prometheus
from meshkit.metrics.queries import analysis_queries


@dataclass(frozen=True)
class VersionStats:
    """One version's requests over the window (the count Prometheus extrapolates, so not always whole)."""

    version: str
    requests: float
    errors: float
    latency_ms: float | None
    """The analysis' latency percentile in milliseconds; None without requests (or without the histogram)."""

    @property
    def success_rate(self) -> float | None:
        """Percent of requests not answered with a 5xx; None without requests."""
        if self.requests <= 0:
            return None
        return max(0.0, 100.0 * (1 - self.errors / self.requests))


def version_stats(
    prometheus: Prometheus, service: str, svc: ServiceSpec, analysis: Analysis, versions: Iterable[str],
    at: float | None = None,
) -> dict[str, VersionStats]:  # fmt: skip
    """Each of ``versions``' stats over ``analysis.window`` up to ``at`` (default: now), all read at that one
    moment. Raises :class:`~meshkit.metrics.prometheus.PrometheusError` when Prometheus cannot say."""
    moment = time.time() if at is None else at
    found = {}
    for version in versions:
        queries = analysis_queries(analysis, svc.namespace, service, version, svc.traffic.api)
        requests = prometheus.value(queries.requests, moment) or 0.0
        errors = (prometheus.value(queries.errors, moment) or 0.0) if requests else 0.0
        latency = prometheus.value(queries.latency, moment) if requests else None
        found[version] = VersionStats(version, requests, min(errors, requests), latency)
    return found
