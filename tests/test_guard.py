"""The guard's decision loop (meshkit.engine.guard) with given checks and no clock: consecutive failures roll
back, a pass starts the count again, too few requests and Prometheus errors are said but never counted, and
Prometheus not answering never rolls back; the rollback's weights; the canary it watches."""

from __future__ import annotations

from collections.abc import Iterator

from meshkit.config.service import ServiceSpec
from meshkit.config.traffic import Analysis
from meshkit.engine.guard import (
    INTERRUPTED,
    NO_EVIDENCE,
    REFUSED,
    ROLLED_BACK,
    WATCHED,
    Check,
    GuardSettings,
    canary_and_stable,
    guard_loop,
    outcome_of,
    rollback_weights,
)
from meshkit.metrics.gate import Verdict, judge
from meshkit.metrics.stats import VersionStats


def _service_spec(weights: dict[str, int]) -> ServiceSpec:
    return ServiceSpec.model_validate({
        "namespace": "demo", "ports": [{"name": "http", "port": 8080}],
        "versions": {v: {"image": "nginx:1.27"} for v in weights}, "traffic": {"weights": weights},
    })  # fmt: skip


ANALYSIS = Analysis(min_success_rate=99, min_requests=100)
STABLE = VersionStats("v1", 1000, 0, 5)


def verdict(requests: float = 500, errors: float = 0) -> Verdict:
    return judge("nginx", ANALYSIS, VersionStats("v2", requests, errors, 8), {"v1": STABLE})


def check(kind: str) -> Check:
    if kind == "no-evidence":
        return Check("no-evidence", "no evidence on canary v2, nothing done: Prometheus at x did not answer")
    if kind == "no-canary":
        return Check("no-canary", "nginx has no canary")
    found = {"pass": verdict(), "fail": verdict(errors=50), "quiet": verdict(requests=12)}[kind]
    assert outcome_of(found) == kind
    return Check(kind, found.summary(), found)  # type: ignore[arg-type]


class Run:
    """The loop over a script of checks; what it slept, said and rolled back."""

    def __init__(self, *kinds: str, failures: int = 3, once: bool = False, rollback_status: int = 0) -> None:
        self.script: Iterator[str] = iter(kinds)
        self.slept: list[float] = []
        self.said: list[str] = []
        self.rolled_back: list[Verdict] = []
        self.checks = 0

        def next_check() -> Check:
            self.checks += 1
            try:
                return check(next(self.script))
            except StopIteration:
                raise KeyboardInterrupt from None

        def roll_back(found: Verdict) -> int:
            self.rolled_back.append(found)
            return rollback_status

        try:
            self.status = guard_loop(next_check, roll_back, self.said.append, self.slept.append,
                                     GuardSettings(interval=7, failures=failures, once=once))  # fmt: skip
        except KeyboardInterrupt:
            self.status = INTERRUPTED


def test_consecutive_failures_roll_back_at_the_threshold() -> None:
    run = Run("fail", "fail", "fail", "pass")
    assert run.status == ROLLED_BACK
    assert run.checks == 3 and len(run.rolled_back) == 1
    assert run.slept == [7, 7]
    assert run.said[-1].startswith("fail: canary v2 fails the analysis: success 90.0% < 99%")
    assert run.said[-1].endswith("[3/3 failed in a row]")


def test_a_pass_starts_the_count_again() -> None:
    run = Run("fail", "fail", "pass", "fail", "fail")
    assert run.status == INTERRUPTED and run.rolled_back == []
    assert run.said[2].endswith("[0/3 failed in a row]")


def test_too_few_requests_are_no_failure_and_said() -> None:
    run = Run("fail", "quiet", "quiet", "fail")
    assert run.status == INTERRUPTED and run.rolled_back == []
    assert run.said[1].startswith("quiet: ") and "12 requests < 100: not enough traffic to judge" in run.said[1]
    # Nor do they reset: the third real failure rolls back.
    assert Run("fail", "quiet", "fail", "quiet", "fail").status == ROLLED_BACK


def test_prometheus_not_answering_never_rolls_back_and_is_said_each_time() -> None:
    run = Run(*["no-evidence"] * 10, failures=1)
    assert run.status == INTERRUPTED and run.rolled_back == []
    assert len(run.said) == 10 and all("did not answer" in line for line in run.said)
    # Neither counted nor a reset: two failures around it are two.
    assert Run("fail", "no-evidence", "fail").rolled_back == []
    assert Run("fail", "no-evidence", "fail", "no-evidence", "fail").status == ROLLED_BACK


def test_once_judges_one_check() -> None:
    assert Run("fail", once=True).status == ROLLED_BACK
    assert Run("pass", once=True).status == WATCHED
    assert Run("quiet", once=True).status == WATCHED
    assert Run("no-evidence", once=True).status == NO_EVIDENCE


def test_no_canary_left_stops_the_guard_and_a_failed_rollback_is_a_refusal() -> None:
    assert Run("pass", "no-canary").status == WATCHED
    assert Run("fail", failures=1, rollback_status=255).status == REFUSED


def test_the_rollback_sends_the_canary_share_to_the_stable_version_with_most_traffic() -> None:
    svc = _service_spec({"v1": 60, "v2": 10, "v3": 30})
    assert canary_and_stable(svc) == ("v3", ["v1", "v2"])
    assert rollback_weights(svc, "nginx", "v3", ["v1", "v2"]) == {"v1": 90, "v2": 10, "v3": 0}
    assert canary_and_stable(_service_spec({"v1": 100, "v2": 0})) is None
