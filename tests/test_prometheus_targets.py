"""The local cluster's Prometheus (toolchain/prometheus.py) without running it: which pods it scrapes, its
configuration, and the proxies' statistics the canary queries need (toolchain/istiod.py)."""

from __future__ import annotations

import json
from pathlib import Path

import re2

from toolchain.cluster import stack_file_for_cluster
from toolchain.istiod import PROXY_STATS_INCLUSIONS
from toolchain.prometheus import config_text, pod_targets, runs_targets, targets_command, write_if_changed


def _pod(name: str, ip: str | None = "10.244.200.7", phase: str = "Running", sidecar: bool = True,
         native: bool = True) -> dict[str, object]:  # fmt: skip
    proxy = {"name": "istio-proxy", "ports": [{"name": "http-envoy-prom", "containerPort": 15090}]}
    app = {"name": "nginx", "ports": [{"containerPort": 80}]}
    spec = {
        "initContainers": [proxy] if sidecar and native else [],
        "containers": [app, *([proxy] if sidecar and not native else [])],
    }
    return {
        "metadata": {"namespace": "demo", "name": name, "labels": {"app": "nginx", "version": "v2", "x": "y"}},
        "spec": spec,
        "status": {"phase": phase, **({"podIP": ip} if ip else {})},
    }


def test_every_running_proxied_pod_is_a_target_on_its_envoy_port() -> None:
    pods = {"items": [_pod("b"), _pod("a", ip="10.244.200.3", native=False), _pod("plain", sidecar=False),
                      _pod("pending", ip=None, phase="Pending"), _pod("done", phase="Succeeded")]}  # fmt: skip
    labels = {"namespace": "demo", "app": "nginx", "version": "v2"}
    assert pod_targets(pods) == [
        {"targets": ["10.244.200.3:15090"], "labels": {**labels, "pod": "a"}},
        {"targets": ["10.244.200.7:15090"], "labels": {**labels, "pod": "b"}},
    ]


def test_the_targets_file_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    assert write_if_changed(path, [{"targets": ["10.0.0.1:15090"], "labels": {}}])
    assert not write_if_changed(path, [{"targets": ["10.0.0.1:15090"], "labels": {}}])
    assert json.loads(path.read_text())[0]["targets"] == ["10.0.0.1:15090"]


def test_the_configuration_scrapes_the_envoy_statistics_of_the_targets_file(tmp_path: Path) -> None:
    config = json.loads(config_text(tmp_path / "targets.json"))
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/stats/prometheus"
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path / "targets.json")]
    assert runs_targets(targets_command(tmp_path, "https://127.0.0.1:6443", tmp_path))


def test_the_proxies_keep_the_statistics_the_canary_queries_read() -> None:
    # Envoy matches proxyStatsMatcher's inclusionRegexps (safe_regex: RE2) against the whole stat name.
    cluster = "cluster.outbound|8080|v2|nginx.demo.svc.cluster.local"
    kept = [f"{cluster}.upstream_rq_2xx", f"{cluster}.upstream_rq_5xx", f"{cluster}.upstream_rq_503",
            f"{cluster}.upstream_rq_time", f"{cluster}.upstream_rq_completed"]  # fmt: skip
    for name in kept:
        assert any(re2.fullmatch(pattern, name) for pattern in PROXY_STATS_INCLUSIONS), name


def test_a_stack_file_for_the_cluster_names_its_prometheus_unless_it_names_one(tmp_path: Path) -> None:
    text = "config:\n  meshkit:services: {}\n"
    pointed = stack_file_for_cluster(text, tmp_path / "kubeconfig", "s", "http://127.0.0.1:41000")
    assert '  meshkit:prometheus: {"address": "http://127.0.0.1:41000"}\n' in pointed
    own = "config:\n  meshkit:prometheus: {address: http://prom:9090}\n"
    assert "41000" not in stack_file_for_cluster(own, tmp_path / "kubeconfig", "s", "http://127.0.0.1:41000")
    assert "prometheus" not in stack_file_for_cluster(text, tmp_path / "kubeconfig", "s")
