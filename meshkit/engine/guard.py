"""``meshkit guard``: watch a canary and take its traffic away when the analysis keeps failing it.

Every interval the guard reads the stack file again, finds the service's canary (its newest version with
traffic, as ``step --promote`` does) and the stable versions (the others with traffic), and has the gate
(:func:`meshkit.metrics.gate.gate`) judge the canary by ``traffic.analysis``. Each check is one of:

* **pass**: the canary meets the analysis; the count of failures starts again;
* **fail**: it does not (success rate, latency); after ``failures`` of them in a row, the guard rolls it back;
* **quiet**: too few requests to judge: no evidence either way, neither counted nor a reset (flagger#1035);
* **no evidence**: Prometheus did not answer, or not with a result: said at every check, neither counted nor
  a reset, and never a reason to roll back.

The rollback is all the canary's traffic to the stable version (the one with the most traffic, if several):
not ``step --rollback``'s "the weights before the last deployed change", which after a 30 → 60 step would
leave the failing canary 30%. The edit is :func:`meshkit.rollout.edit.step_weights`, checked as every step is
(nothing is written when a check refuses it), then performed as ``meshkit up`` performs a step
(:mod:`meshkit.engine.step`). A rollback is safety: it does not wait for review; the stack file change is left
for the team to commit. The guard never moves traffic towards a canary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from meshkit.config.engine_yaml import encode_text
from meshkit.config.service import ServiceSpec
from meshkit.config.stack_file import read_stack_bytes, stack_text
from meshkit.errors import MeshkitError
from meshkit.mesh.checks import parse_stack_file_text
from meshkit.metrics.gate import Verdict, gate
from meshkit.metrics.prometheus import PrometheusError
from meshkit.rollout import edit

# Exit codes of `meshkit guard` (docs/reference/cli.md): 1 and 2 as every command's.
WATCHED = 0
"""The guard stopped without rolling back: --once with a passing or unjudged canary, or no canary left."""
REFUSED = 1
ROLLED_BACK = 3
"""The canary failed ``failures`` checks in a row: its traffic was moved to the stable version and performed."""
NO_EVIDENCE = 4
"""--once, and Prometheus gave no evidence."""
INTERRUPTED = 130

Outcome = Literal["pass", "fail", "quiet", "no-evidence", "no-canary"]


@dataclass(frozen=True)
class Check:
    """One look at the canary."""

    outcome: Outcome
    text: str
    """What the guard says about it (the numbers, or why there are none)."""
    verdict: Verdict | None = None


def outcome_of(verdict: Verdict) -> Outcome:
    """A verdict failing only for too few requests is "quiet": not enough traffic to judge is no failure."""
    if verdict.passed:
        return "pass"
    return "quiet" if verdict.canary.requests < verdict.analysis.min_requests else "fail"


def canary_and_stable(svc: ServiceSpec) -> tuple[str, list[str]] | None:
    """The canary (the newest version with traffic, if another version has traffic too) and the stable versions
    (the others with traffic), most traffic first; None when there is no canary to guard."""
    weights = svc.default_weights()
    serving = [v for v in svc.versions if weights.get(v, 0) > 0]
    if len(serving) < 2:
        return None
    canary = serving[-1]
    return canary, sorted((v for v in serving if v != canary), key=lambda v: -weights[v])


def check_canary(path: Path, service: str) -> Check:
    """Read the stack file at ``path`` and judge ``service``'s canary now."""
    config = parse_stack_file_text(stack_text(read_stack_bytes(path), str(path)), str(path))
    if service not in config.services:
        raise MeshkitError(f"{path}: services.{service}: no such service (services: {', '.join(config.services)})")
    svc = config.services[service]
    if svc.traffic.analysis is None:
        raise MeshkitError(
            f"{path}: services.{service}.traffic.analysis: not set, so there is nothing to judge the canary by; "
            "add it (minSuccessRate, maxLatency, window, minRequests), see docs/operations/canary-analysis.md"
        )
    found = canary_and_stable(svc)
    if found is None:
        weights = ", ".join(f"{v}={w}" for v, w in svc.default_weights().items())
        return Check("no-canary", f"{service} has no canary: one version takes all its traffic ({weights})")
    canary, stable = found
    try:
        verdict = gate(config, service, canary, stable)
    except PrometheusError as error:
        return Check("no-evidence", f"no evidence on canary {canary}, nothing done: {error}")
    outcome = outcome_of(verdict)
    if outcome == "quiet":
        return Check(outcome, f"not enough traffic to judge canary {canary} (not a failure): {verdict.evidence()}",
                     verdict)  # fmt: skip
    return Check(outcome, verdict.summary(), verdict)


def rollback_weights(svc: ServiceSpec, service: str, canary: str, stable: list[str]) -> dict[str, int]:
    """The canary's share added to the stable version with the most traffic; the canary at 0 (still deployed)."""
    weights = dict(svc.default_weights())
    weights[stable[0]] += weights[canary]
    weights[canary] = 0
    return edit.assign_weights(svc, service, weights)


def write_rollback(path: Path, service: str, verdict: Verdict) -> str:
    """Write the guard's rollback into the stack file (checked as every step is); the sentence saying what."""
    data = read_stack_bytes(path)
    text = stack_text(data, str(path))
    canary = verdict.canary.version
    stable = [s.version for s in verdict.others]

    def compute(svc: ServiceSpec) -> dict[str, int]:
        return rollback_weights(svc, service, canary, stable)

    step = edit.step_weights(text, str(path), service, compute)
    try:
        path.write_bytes(encode_text(step.text, data))
    except OSError as error:
        raise MeshkitError(f"{path}: cannot write the rollback: {error.strerror or error}") from None
    after = step.after["services"][service]["weights"]
    return f"{service} rolled back in {path}: " + ", ".join(f"{v}={w}" for v, w in after.items())


@dataclass(frozen=True)
class GuardSettings:
    interval: float = 10.0
    failures: int = 3
    once: bool = False

    @property
    def needed(self) -> int:
        """Failed checks in a row that roll back: one with ``once``."""
        return 1 if self.once else self.failures


def guard_loop(
    check: Callable[[], Check],
    roll_back: Callable[[Verdict], int],
    say: Callable[[str], None],
    sleep: Callable[[float], None],
    settings: GuardSettings,
) -> int:
    """Check, every ``settings.interval`` seconds, until the canary fails ``settings.failures`` checks in a row
    (then ``roll_back(the last verdict)`` and return :data:`ROLLED_BACK`, or its refusal), there is no canary
    left, or (``once``) after one check. ``check`` and ``sleep`` are given: the loop itself reads no clock."""
    needed = settings.needed
    failed = 0
    while True:
        result = check()
        if result.outcome == "fail":
            failed += 1
        elif result.outcome == "pass":
            failed = 0
        count = f" [{failed}/{needed} failed in a row]" if result.outcome in ("fail", "pass") else ""
        say(f"{result.outcome}: {result.text}{count}")
        if result.outcome == "fail" and failed >= needed:
            assert result.verdict is not None
            status = roll_back(result.verdict)
            return ROLLED_BACK if status == 0 else REFUSED
        if result.outcome == "no-canary":
            return WATCHED
        if settings.once:
            return NO_EVIDENCE if result.outcome == "no-evidence" else WATCHED
        sleep(settings.interval)
