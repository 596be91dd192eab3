"""PromQL for one version of a service: its requests, its 5xx answers and a latency percentile over a window,
in each metrics setup (``traffic.analysis.metrics``).

``envoy``: Envoy's own statistics of the upstream clusters of every caller's proxy, as Istio's bootstrap tags
them: ``envoy_cluster_upstream_rq{cluster_name, response_code_class}`` (the same metric also carries one
series per ``response_code``: only the class series are summed, or every request would count twice) and the
histogram ``envoy_cluster_upstream_rq_time_bucket`` (milliseconds). An Istio cluster name carries the subset,
``outbound|8080|v2|nginx.demo.svc.cluster.local``; a service routed with the Gateway API sends each version to
a Service of its own, ``outbound|8080||nginx-v2.demo.svc.cluster.local``. These are the caller's view: a
connection the canary refuses or resets counts as a 5xx (Envoy answers 503), which the canary itself never
sees. The proxies must keep these statistics (Istio's ``proxyStatsMatcher``: ``upstream_rq_`` per cluster).

``istio``: Istio's standard metrics, as the canary's own proxy reports them (``reporter="destination"``, as
Flagger reads them): ``istio_requests_total{destination_workload_namespace, destination_workload,
destination_version, response_code}`` and ``istio_request_duration_milliseconds_bucket``; the workload is the
version's Deployment, ``<service>-<version>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal

from meshkit.config.traffic import Analysis
from meshkit.config.values import MetricsSetup, percent_text
from meshkit.mesh.manifest import deployment_name, version_service_name


def promql_string(value: str) -> str:
    """A PromQL string literal (double-quoted, Go's escapes: JSON's are a subset PromQL reads)."""
    return json.dumps(value)


def seconds_range(seconds: float) -> str:
    """A PromQL range duration in whole milliseconds (``300000ms``): PromQL takes no fractions, ``1.5m``."""
    return f"{round(seconds * 1000)}ms"


def envoy_cluster_pattern(namespace: str, service: str, version: str, api: str = "istio") -> str:
    """The RE2 pattern of the upstream clusters, on any port and in any cluster domain, that send requests to
    ``version``: its subset of the service's host, or (``api: gateway``) the version's own Service."""
    host, subset = (version_service_name(service, version), "") if api == "gateway" else (service, version)
    return rf"outbound\|[0-9]+\|{re.escape(subset)}\|{re.escape(host)}\.{re.escape(namespace)}\.svc\..+"


@dataclass(frozen=True)
class VersionQueries:
    """Three instant queries for one version over one window."""

    requests: str
    """Requests answered (any status) in the window."""
    errors: str
    """Of those, answered with a 5xx (a reset or refused connection included, in the ``envoy`` setup)."""
    latency: str
    """The analysis' latency percentile of their duration, in milliseconds (NaN without requests)."""


def _quantile(percentile: float) -> str:
    """The quantile of a percentile as written (99.9 → ``0.999``), computed in decimal: no float residue."""
    return format(Decimal(percent_text(percentile)) / 100, "f")


def version_queries(
    setup: MetricsSetup, namespace: str, service: str, version: str, window_seconds: float,
    percentile: float, api: str = "istio",
) -> VersionQueries:  # fmt: skip
    window = seconds_range(window_seconds)
    quantile = _quantile(percentile)
    if setup == "envoy":
        selector = f"cluster_name=~{promql_string(envoy_cluster_pattern(namespace, service, version, api))}"
        return VersionQueries(
            requests=f'sum(increase(envoy_cluster_upstream_rq{{{selector},response_code_class!=""}}[{window}]))',
            errors=f'sum(increase(envoy_cluster_upstream_rq{{{selector},response_code_class="5xx"}}[{window}]))',
            latency=f"histogram_quantile({quantile}, sum by (le) "
            f"(rate(envoy_cluster_upstream_rq_time_bucket{{{selector}}}[{window}])))",
        )
    selector = ",".join([
        'reporter="destination"',
        f"destination_workload_namespace={promql_string(namespace)}",
        f"destination_workload={promql_string(deployment_name(service, version))}",
        f"destination_version={promql_string(version)}",
    ])  # fmt: skip
    return VersionQueries(
        requests=f"sum(increase(istio_requests_total{{{selector}}}[{window}]))",
        errors=f'sum(increase(istio_requests_total{{{selector},response_code=~"5.."}}[{window}]))',
        latency=f"histogram_quantile({quantile}, sum by (le) "
        f"(rate(istio_request_duration_milliseconds_bucket{{{selector}}}[{window}])))",
    )


def analysis_queries(analysis: Analysis, namespace: str, service: str, version: str, api: str) -> VersionQueries:
    """:func:`version_queries` with a service's ``traffic.analysis``."""
    return version_queries(analysis.metrics, namespace, service, version, analysis.window_seconds(),
                           analysis.latency_percentile, api)  # fmt: skip
