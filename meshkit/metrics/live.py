"""The traffic that flows, per service and version, for ``meshkit graph --live`` and ``meshkit watch``: requests
per second, the share answered with a 5xx and a latency percentile over a short window, read from the stack's
Prometheus with the same queries as the gate (:mod:`meshkit.metrics.queries`).

A service with ``traffic.analysis`` is read in its metrics setup and latency percentile; the others as Envoy's
statistics and p99. The numbers are measured per version (the proxies count per upstream subset), so they
belong to the edge from a service to a version whatever route sent the requests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from meshkit.config.stack import StackConfig
from meshkit.config.traffic import Analysis
from meshkit.metrics.gate import percentile_label
from meshkit.metrics.prometheus import Prometheus, PrometheusError
from meshkit.metrics.stats import VersionStats, version_stats

LIVE_WINDOW = "1m"


@dataclass(frozen=True)
class LiveVersion:
    """One version's traffic over the window."""

    stats: VersionStats
    window_seconds: float
    percentile: float

    @property
    def rps(self) -> float:
        return self.stats.requests / self.window_seconds

    def label(self) -> str:
        """``17.5 req/s, 0.4% errors, p99 12 ms`` (or ``no requests``): what an edge of the graph says."""
        if self.stats.requests <= 0:
            return "no requests"
        rate = self.stats.success_rate or 0.0
        latency = f"{self.stats.latency_ms:.0f} ms" if self.stats.latency_ms is not None else "unknown"
        return f"{self.rps:.1f} req/s, {100 - rate:.1f}% errors, {percentile_label(self.percentile)} {latency}"


@dataclass(frozen=True)
class LiveTraffic:
    """Service → version → its traffic; or, when Prometheus could not say, ``problem`` and no numbers."""

    versions: dict[str, dict[str, LiveVersion]]
    window: str
    problem: str = ""

    def labels(self) -> dict[str, dict[str, str]]:
        """Service → version → edge label, for :func:`meshkit.rollout.draw.to_mermaid`'s ``live``."""
        return {service: {v: live.label() for v, live in versions.items()}
                for service, versions in self.versions.items()}  # fmt: skip


def live_traffic(stack: StackConfig, window: str = LIVE_WINDOW, at: float | None = None) -> LiveTraffic:
    """Every service's versions' traffic over ``window`` up to ``at`` (default now), all read at that moment."""
    if stack.prometheus is None:
        return LiveTraffic({}, window, "the stack names no Prometheus (meshkit:prometheus.address, MK901)")
    prometheus = Prometheus(stack.prometheus.address)
    moment = time.time() if at is None else at
    found: dict[str, dict[str, LiveVersion]] = {}
    try:
        for name, svc in stack.services.items():
            analysis = (svc.traffic.analysis or Analysis()).model_copy(update={"window": window})
            stats = version_stats(prometheus, name, svc, analysis, list(svc.versions), moment)
            seconds = analysis.window_seconds()
            found[name] = {v: LiveVersion(s, seconds, analysis.latency_percentile) for v, s in stats.items()}
    except PrometheusError as error:
        return LiveTraffic({}, window, str(error))
    return LiveTraffic(found, window)
