"""The canary analysis without Prometheus: the verdict from numbers, the PromQL of each metrics setup, the
stack vocabulary and its checks (the bad-config corpus holds the refused values, MK901-MK903)."""

from __future__ import annotations

import re

import pytest
import re2

from meshkit.config.stack import StackConfig
from meshkit.config.traffic import Analysis
from meshkit.metrics.evidence import gained, weight_moves
from meshkit.metrics.gate import judge, shown_rate
from meshkit.metrics.queries import envoy_cluster_pattern, version_queries
from meshkit.metrics.stats import VersionStats

from .scenario_data import scenario_raw

STRICT = Analysis(min_success_rate=99, latency_percentile=99, max_latency="500ms", window="5m", min_requests=100)


def _stats(version: str = "v2", requests: float = 1000, errors: float = 0, latency_ms: float | None = 12
           ) -> VersionStats:  # fmt: skip
    return VersionStats(version, requests, errors, latency_ms)


# --- the verdict ------------------------------------------------------------------------------------


def test_a_healthy_canary_passes_with_its_numbers() -> None:
    verdict = judge("nginx", STRICT, _stats(), {"v1": _stats("v1", 4000, 2, 8)})
    assert verdict.passed, verdict.failures
    assert "v2: 1000 requests, success 100.0%, p99 12 ms; v1: 4000 requests, success 99.95%, p99 8 ms" in (
        verdict.summary()
    )


def test_a_failing_canary_is_refused_with_its_success_rate() -> None:
    verdict = judge("nginx", STRICT, _stats(requests=1000, errors=29))
    assert verdict.failures == ("success 97.1% < 99%",)


def test_a_slow_canary_is_refused_with_its_latency() -> None:
    verdict = judge("nginx", STRICT, _stats(latency_ms=812.4))
    assert verdict.failures == ("p99 812 ms > 500 ms",)


def test_both_failures_are_given() -> None:
    verdict = judge("nginx", STRICT, _stats(errors=29, latency_ms=812))
    assert verdict.failures == ("success 97.1% < 99%", "p99 812 ms > 500 ms")


def test_too_few_requests_are_not_judged_on_their_rate() -> None:
    verdict = judge("nginx", STRICT, _stats(requests=12, errors=12, latency_ms=9000))
    assert verdict.failures == ("12 requests < 100: not enough traffic to judge",)


def test_no_requests_at_all_is_not_enough_traffic() -> None:
    verdict = judge("nginx", STRICT, _stats(requests=0, errors=0, latency_ms=None))
    assert verdict.failures == ("0 requests < 100: not enough traffic to judge",)
    assert "v2: no requests" in verdict.summary()


def test_requests_without_a_latency_histogram_are_no_pass() -> None:
    verdict = judge("nginx", STRICT, _stats(latency_ms=None))
    assert verdict.failures and verdict.failures[0].startswith("p99 unknown")


def test_the_thresholds_are_inclusive() -> None:
    assert judge("nginx", STRICT, _stats(requests=100, errors=1, latency_ms=500)).passed


def test_a_rate_just_under_the_floor_does_not_read_as_the_floor() -> None:
    assert shown_rate(98.96, 99) == "98.96"
    assert shown_rate(98.9996, 99) == "99.000"
    assert shown_rate(97.14, 99) == "97.1"
    assert judge("nginx", STRICT, _stats(requests=10000, errors=104)).failures == ("success 98.96% < 99%",)


def test_other_percentiles_are_named() -> None:
    analysis = Analysis(latency_percentile=99.9, max_latency="1s")
    assert judge("nginx", analysis, _stats(latency_ms=1200)).failures == ("p99.9 1200 ms > 1000 ms",)


# --- which version a step judges ---------------------------------------------------------------------


def _summary(**weights: int) -> dict[str, object]:
    return {"services": {"nginx": {"weights": weights}}}


def test_the_canary_is_the_version_whose_weight_goes_up() -> None:
    moves = weight_moves(_summary(v1=70, v2=30), _summary(v1=50, v2=50), "nginx")
    assert moves == {"v1": (70, 50), "v2": (30, 50)}
    assert gained(moves) == "v2"
    assert gained(weight_moves(_summary(v1=50, v2=50), _summary(v1=50, v2=50), "nginx")) is None
    assert gained(weight_moves(_summary(v1=100), _summary(v1=0, v2=100), "nginx")) == "v2"


# --- PromQL ------------------------------------------------------------------------------------------


def test_envoy_queries_sum_the_response_classes_of_the_version_subset() -> None:
    queries = version_queries("envoy", "demo", "nginx", "v2", 300, 99)
    selector = r'cluster_name=~"outbound\\|[0-9]+\\|v2\\|nginx\\.demo\\.svc\\..+"'
    counter = f"envoy_cluster_upstream_rq{{{selector},response_code_class"
    assert queries.requests == f'sum(increase({counter}!=""}}[300000ms]))'
    assert queries.errors == f'sum(increase({counter}="5xx"}}[300000ms]))'
    assert queries.latency == (
        f"histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{{{selector}}}[300000ms])))"
    )


def test_istio_queries_read_the_destination_workload() -> None:
    queries = version_queries("istio", "demo", "nginx", "v2", 90.5, 99.9)
    selector = ('reporter="destination",destination_workload_namespace="demo",destination_workload="nginx-v2",'
                'destination_version="v2"')  # fmt: skip
    assert queries.requests == f"sum(increase(istio_requests_total{{{selector}}}[90500ms]))"
    assert queries.errors == f'sum(increase(istio_requests_total{{{selector},response_code=~"5.."}}[90500ms]))'
    assert queries.latency == (
        f"histogram_quantile(0.999, sum by (le) (rate(istio_request_duration_milliseconds_bucket{{{selector}}}"
        "[90500ms])))"
    )


@pytest.mark.parametrize(
    ("cluster", "matches"),
    [
        ("outbound|8080|v2|nginx.demo.svc.cluster.local", True),
        ("outbound|9090|v2|nginx.demo.svc.example.internal", True),
        ("outbound|8080|v1|nginx.demo.svc.cluster.local", False),
        ("outbound|8080|v2|nginxx.demo.svc.cluster.local", False),
        ("outbound|8080|v2|nginx.demo2.svc.cluster.local", False),
        ("outbound|8080|v2-b|nginx.demo.svc.cluster.local", False),
        ("inbound|8080|v2|nginx.demo.svc.cluster.local", False),
        ("outbound|8080||nginx.demo.svc.cluster.local", False),
    ],
)
def test_the_envoy_cluster_pattern_selects_one_subset_of_one_host(cluster: str, matches: bool) -> None:
    # Prometheus matches label regexes with RE2, anchored at both ends.
    pattern = envoy_cluster_pattern("demo", "nginx", "v2")
    assert bool(re2.fullmatch(pattern, cluster)) is matches
    assert bool(re.fullmatch(pattern, cluster)) is matches


def test_a_gateway_api_service_is_read_from_the_version_service() -> None:
    pattern = envoy_cluster_pattern("demo", "nginx", "v2", api="gateway")
    assert re2.fullmatch(pattern, "outbound|8080||nginx-v2.demo.svc.cluster.local")
    assert not re2.fullmatch(pattern, "outbound|8080|v2|nginx.demo.svc.cluster.local")


# --- the vocabulary ------------------------------------------------------------------------------------


def test_the_analysis_defaults_and_camel_case_keys() -> None:
    raw = scenario_raw("A3")
    raw["prometheus"] = {"address": "http://127.0.0.1:9090"}
    raw["services"]["nginx"]["traffic"]["analysis"] = {"minSuccessRate": 99.5, "maxLatency": "250ms",
                                                       "metrics": "istio"}  # fmt: skip
    stack = StackConfig.model_validate(raw)
    analysis = stack.services["nginx"].traffic.analysis
    assert analysis is not None and stack.prometheus is not None
    assert (analysis.min_success_rate, analysis.max_latency_ms(), analysis.latency_percentile) == (99.5, 250, 99)
    assert (analysis.window_seconds(), analysis.min_requests, analysis.metrics) == (300, 100, "istio")
    assert stack.prometheus.address == "http://127.0.0.1:9090"
