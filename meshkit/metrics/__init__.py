"""Layer 5, metrics: what the proxies measured, read from the stack's Prometheus, and the canary gate.

* :mod:`meshkit.metrics.queries`: PromQL for one version of a service, in each metrics setup a cluster may
  have (Envoy's own per-cluster statistics, or Istio's standard metrics);
* :mod:`meshkit.metrics.prometheus`: a small client of Prometheus's HTTP API (instant queries), which only
  ever asks the stack's configured address;
* :mod:`meshkit.metrics.stats`: per-version requests, success rate and latency over a window;
* :mod:`meshkit.metrics.gate`: the verdict on a canary from those numbers (pure), and the gate that
  queries them for ``meshkit step --promote``/``--take-over``.

Imports only point down (config, mesh, rollout); nothing here needs Pulumi.
"""

from meshkit.metrics.gate import Verdict, gate, judge
from meshkit.metrics.prometheus import Prometheus, PrometheusError
from meshkit.metrics.queries import VersionQueries, version_queries
from meshkit.metrics.stats import VersionStats, version_stats

__all__ = [
    "Prometheus",
    "PrometheusError",
    "Verdict",
    "VersionQueries",
    "VersionStats",
    "gate",
    "judge",
    "version_queries",
    "version_stats",
]
