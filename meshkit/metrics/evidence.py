"""Evidence for a reviewer: for each service with ``traffic.analysis`` whose weights a change moves, each
moved version's requests, success rate and latency over the window, and the gate's verdict on the version
that gains traffic (what ``meshkit step --promote`` would say now). ``meshkit plan`` shows it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshkit.config.stack import StackConfig
from meshkit.config.traffic import Analysis
from meshkit.metrics.gate import Verdict, judge
from meshkit.metrics.prometheus import Prometheus, PrometheusError
from meshkit.metrics.stats import VersionStats, version_stats


@dataclass(frozen=True)
class ServiceEvidence:
    service: str
    analysis: Analysis
    weights: dict[str, tuple[int, int]]
    """Version → (weight before, weight after), for the versions whose weight changes."""
    stats: dict[str, VersionStats] = field(default_factory=dict)
    problem: str = ""
    """Why there are no numbers (Prometheus did not answer, or the stack names none); '' with numbers."""
    verdict: Verdict | None = None
    """The gate's verdict on the one version whose weight goes up, if one does."""


def weight_moves(before: Mapping[str, Any], after: Mapping[str, Any], service: str) -> dict[str, tuple[int, int]]:
    """Version → (before, after) for each version of ``service`` whose default-route weight changes between two
    stack summaries (a version absent on one side has 0 there)."""
    old = ((before.get("services") or {}).get(service) or {}).get("weights") or {}
    new = ((after.get("services") or {}).get(service) or {}).get("weights") or {}
    moves = {v: (int(old.get(v, 0)), int(new.get(v, 0))) for v in [*new, *(v for v in old if v not in new)]}
    return {v: (b, a) for v, (b, a) in moves.items() if b != a}


def gained(moves: Mapping[str, tuple[int, int]]) -> str | None:
    """The one version whose weight goes up (the canary of the step), or None."""
    up = [v for v, (b, a) in moves.items() if a > b]
    return up[0] if len(up) == 1 else None


def plan_evidence(stack: StackConfig, before: Mapping[str, Any], after: Mapping[str, Any],
                  at: float | None = None) -> list[ServiceEvidence]:  # fmt: skip
    """The evidence of every service of ``stack`` (the one planned, whose summary is ``after``) that has an
    analysis and whose weights move from ``before``. Prometheus not answering is said, per service."""
    found = []
    for name, svc in stack.services.items():
        analysis = svc.traffic.analysis
        moves = weight_moves(before, after, name)
        if analysis is None or not moves:
            continue
        if stack.prometheus is None:
            found.append(ServiceEvidence(name, analysis, moves, problem="the stack names no Prometheus (MK901)"))
            continue
        try:
            stats = version_stats(Prometheus(stack.prometheus.address), name, svc, analysis, moves, at)
        except PrometheusError as error:
            found.append(ServiceEvidence(name, analysis, moves, problem=str(error)))
            continue
        canary = gained(moves)
        verdict = None
        if canary is not None:
            others = {v: stats[v] for v in moves if v != canary and moves[v][0] > 0}
            verdict = judge(name, analysis, stats[canary], others)
        found.append(ServiceEvidence(name, analysis, moves, stats, verdict=verdict))
    return found
