"""The canary gate: a verdict on the version a step moves traffic to, from its numbers over the window.

:func:`judge` is pure (numbers in, verdict out); :func:`gate` reads the numbers from the stack's Prometheus
first. A canary passes only with evidence: at least ``minRequests`` requests, a success rate at or above the
floor and the latency percentile at or below the ceiling. Prometheus not answering is no evidence: the
caller refuses the step (:class:`~meshkit.metrics.prometheus.PrometheusError`), never lets it through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshkit.config.stack import StackConfig
from meshkit.config.traffic import Analysis
from meshkit.config.values import percent_text
from meshkit.metrics.prometheus import Prometheus, PrometheusError
from meshkit.metrics.stats import VersionStats, version_stats


def percentile_label(percentile: float) -> str:
    """``p99``, ``p99.9``, ``p50``."""
    return f"p{percent_text(percentile)}"


def shown_rate(measured: float, floor: float) -> str:
    """A success rate with as many decimals (1 to 3) as it takes not to read as the floor it is compared
    with, nor as 100 when a request failed: 98.96 against 99 is ``98.96``, not ``99.0``; 99.95 is not ``100.0``."""
    for decimals in (1, 2, 3):
        text = f"{measured:.{decimals}f}"
        if (measured == floor or float(text) != floor) and (measured >= 100 or float(text) < 100):
            return text
    return f"{measured:.3f}"


def count_text(count: float) -> str:
    """A request count as Prometheus extrapolates it (``increase``), rounded to a whole request."""
    return str(round(count))


def stats_text(stats: VersionStats, analysis: Analysis) -> str:
    """``1204 requests, success 99.9%, p99 12 ms`` (or ``no requests``)."""
    if stats.requests <= 0:
        return "no requests"
    rate = stats.success_rate
    parts = [f"{count_text(stats.requests)} requests"]
    parts.append(f"success {shown_rate(rate, analysis.min_success_rate)}%" if rate is not None else "success ?")
    label = percentile_label(analysis.latency_percentile)
    parts.append(f"{label} {stats.latency_ms:.0f} ms" if stats.latency_ms is not None else f"{label} unknown")
    return ", ".join(parts)


@dataclass(frozen=True)
class Verdict:
    """The gate's word on one canary, with the numbers it read."""

    service: str
    canary: VersionStats
    others: tuple[VersionStats, ...]
    """The versions that took traffic before the step (the stable ones), for comparison: not judged."""
    analysis: Analysis
    failures: tuple[str, ...]
    """Why the canary fails, one reason each (``success 97.1% < 99%``); empty: it passes."""

    @property
    def passed(self) -> bool:
        return not self.failures

    def evidence(self) -> str:
        """``v2: 1204 requests, success 99.9%, p99 12 ms; v1: …`` over the window."""
        shown = [f"{s.version}: {stats_text(s, self.analysis)}" for s in (self.canary, *self.others)]
        return f"{'; '.join(shown)} (last {self.analysis.window})"

    def summary(self) -> str:
        """One sentence for the step's output or its refusal."""
        if self.passed:
            a = self.analysis
            thresholds = (f"≥ {count_text(a.min_requests)} requests, success ≥ {percent_text(a.min_success_rate)}%, "
                          f"{percentile_label(a.latency_percentile)} ≤ {a.max_latency_ms():.0f} ms")  # fmt: skip
            return f"canary {self.canary.version} passes the analysis ({thresholds}): {self.evidence()}"
        return f"canary {self.canary.version} fails the analysis: {'; '.join(self.failures)}; {self.evidence()}"


def judge(service: str, analysis: Analysis, canary: VersionStats, others: Mapping[str, VersionStats] | None = None
          ) -> Verdict:  # fmt: skip
    """The verdict on ``canary`` by ``analysis``'s thresholds (pure: the numbers are given)."""
    failures: list[str] = []
    if canary.requests < analysis.min_requests:
        # Its rate and latency over a handful of requests say nothing: not judged on them.
        too_few = f"{count_text(canary.requests)} requests < {analysis.min_requests}"
        failures.append(f"{too_few}: not enough traffic to judge")
    else:
        rate = canary.success_rate
        if rate is not None and rate < analysis.min_success_rate:
            floor = analysis.min_success_rate
            failures.append(f"success {shown_rate(rate, floor)}% < {percent_text(floor)}%")
        label = percentile_label(analysis.latency_percentile)
        ceiling = analysis.max_latency_ms()
        if canary.latency_ms is None:
            failures.append(f"{label} unknown: no request duration histogram for {canary.version} in Prometheus "
                            "(do the proxies keep upstream_rq_time?)")  # fmt: skip
        elif canary.latency_ms > ceiling:
            failures.append(f"{label} {canary.latency_ms:.0f} ms > {ceiling:.0f} ms")
    return Verdict(service, canary, tuple((others or {}).values()), analysis, tuple(failures))


def gate(stack: StackConfig, service: str, canary: str, stable: list[str], at: float | None = None) -> Verdict:
    """Read ``canary``'s and the ``stable`` versions' numbers from the stack's Prometheus and judge the canary.
    Raises :class:`PrometheusError` (no evidence) when Prometheus cannot say, or the stack names none."""
    svc = stack.services[service]
    analysis = svc.traffic.analysis
    if analysis is None:
        raise ValueError(f"service {service!r} has no traffic.analysis")
    if stack.prometheus is None:
        raise PrometheusError("the stack names no Prometheus (meshkit:prometheus.address, MK901)")
    stats = version_stats(Prometheus(stack.prometheus.address), service, svc, analysis, [canary, *stable], at)
    return judge(service, analysis, stats[canary], {v: stats[v] for v in stable})
