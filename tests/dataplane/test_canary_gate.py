"""The canary gate on the real data plane: the cluster's Prometheus scrapes every proxy's Envoy statistics,
and ``meshkit step --promote`` reads them.

One stack, four services called by one meshed client: ``nginx``, whose v2 answers one request in five with a
500 (the stand-in's ``STANDIN_FAIL_PERCENT``, set through the version's ``env``); ``slow``, whose v2 answers
after 700 ms (``STANDIN_DELAY``); ``idle``, which gets no request; and ``web``, whose v2 is healthy. After
requests through the client's sidecar, and once Prometheus has scraped them (waited on), the failing, the slow
and the idle canaries' promotions are refused with their numbers, and so is any promotion when Prometheus does
not answer, each with the file left as it was; the healthy one's is written; ``meshkit plan`` shows the live
numbers of the versions the change moves.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meshkit.config.stack import StackConfig
from meshkit.metrics.prometheus import Prometheus
from meshkit.metrics.stats import version_stats

from ..e2e.engine import VENV_BIN
from ..live.deploy import in_namespace, new_live_stack
from ..scenario_data import scenario_raw
from .mesh import Mesh, deployed, small, wait_for

pytestmark = pytest.mark.dataplane

NAMESPACE = "gated"
MIN_REQUESTS = 50


def gated_stack(prometheus: str) -> dict[str, Any]:
    """A3 (nginx v1/v2 at 70/30, a sleep client) in its own namespace, nginx v2 failing a fifth of its requests,
    a second service ``web`` alike with a healthy v2; both with promotion steps and an analysis."""
    raw = small(in_namespace(scenario_raw("A3"), NAMESPACE))
    raw["prometheus"] = {"address": prometheus}
    nginx = raw["services"]["nginx"]
    analysis = {"minSuccessRate": 99, "maxLatency": "500ms", "window": "2m", "minRequests": MIN_REQUESTS}
    nginx["traffic"] |= {"steps": [30, 60, 100], "analysis": analysis}
    web = json.loads(json.dumps(nginx))
    nginx["versions"]["v2"]["env"] = {"STANDIN_FAIL_PERCENT": "20"}
    for version in web["versions"].values():
        # The stand-in plays nginx for these images; it answers as the service it is told it is.
        version |= {"replicas": 1, "env": {"STANDIN_SERVICE": "web"}}
    raw["services"]["web"] = web
    slow = json.loads(json.dumps(web))
    idle = json.loads(json.dumps(web))
    for name, service in (("slow", slow), ("idle", idle)):
        for version in service["versions"].values():
            version["env"] = {"STANDIN_SERVICE": name}
        raw["services"][name] = service
    slow["versions"]["v2"]["env"]["STANDIN_DELAY"] = "700ms"
    return raw


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def meshkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "meshkit"), *args], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def test_the_gate_reads_the_proxies_and_refuses_a_failing_canary(mesh: Mesh, tmp_path: Path) -> None:
    raw = gated_stack(mesh.cluster.prometheus_url)
    stack = new_live_stack(tmp_path, mesh.cluster, "gated")
    stack.use(raw)
    with deployed(stack):
        client = mesh.pod_of(NAMESPACE, "sleep")
        config = StackConfig.model_validate(raw)
        prometheus = Prometheus(mesh.cluster.prometheus_url)

        def scraped() -> bool:
            for service in ("nginx", "web", "slow"):
                svc = config.services[service]
                assert svc.traffic.analysis is not None
                stats = version_stats(prometheus, service, svc, svc.traffic.analysis, ["v2"])["v2"]
                if stats.requests < MIN_REQUESTS + 10 or stats.latency_ms is None:
                    return False
            return True

        # A steady load, as a canary gets: the counters rise across scrapes (a burst between two scrapes would be
        # the first sample of new series, which increase() cannot count; see meshkit.metrics.queries).
        with (
            mesh.continuous_load(NAMESPACE, client, f"http://nginx.{NAMESPACE}:8080/", qps=25) as nginx_load,
            mesh.continuous_load(NAMESPACE, client, f"http://web.{NAMESPACE}:8080/", qps=25) as web_load,
            # Four requests in flight at most: 10 per second leave room for v2's 700 ms.
            mesh.continuous_load(NAMESPACE, client, f"http://slow.{NAMESPACE}:8080/", qps=10) as slow_load,
        ):
            # What the gate will read: wait until Prometheus holds enough of the client's requests (never a sleep).
            wait_for("Prometheus to hold the client's requests to both canaries", scraped, timeout=90)
            nginx_summary, web_summary, slow_summary = nginx_load.stop(), web_load.stop(), slow_load.stop()
        print(f"nginx: {nginx_summary}\nweb: {web_summary}")
        assert nginx_summary["by_version"].get("v2", 0) >= MIN_REQUESTS, nginx_summary
        assert web_summary["failed"] == 0, web_summary
        assert slow_summary["failed"] == 0, slow_summary

        path = stack.project.stack_file
        before = path.read_bytes()
        refused = meshkit("step", str(path), "nginx", "--promote")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert path.read_bytes() == before, "a refused step wrote the stack file"
        assert re.search(r"MK905 services\.nginx\.traffic\.analysis: canary v2 fails the analysis: success "
                         r"(\d+\.\d)% < 99%; v2: \d+ requests", refused.stderr), refused.stderr  # fmt: skip
        assert "Traceback" not in refused.stdout + refused.stderr
        print(f"refused: {refused.stderr.strip()}")

        slow = meshkit("step", str(path), "slow", "--promote")
        assert slow.returncode == 1, slow.stdout + slow.stderr
        latency = r"MK905 services\.slow\.traffic\.analysis: canary v2 fails the analysis: p99 (\d+) ms > 500 ms"
        assert re.search(latency, slow.stderr), slow.stderr
        idle = meshkit("step", str(path), "idle", "--promote")
        assert idle.returncode == 1, idle.stdout + idle.stderr
        assert re.search(r"MK905 services\.idle\.traffic\.analysis: .*\b0 requests < 50: not enough traffic to judge",
                         idle.stderr), idle.stderr  # fmt: skip
        # Prometheus not answering: the same stack file naming a loopback port nothing listens on.
        unanswered = tmp_path / path.name
        unanswered.write_text(
            path.read_text().replace(mesh.cluster.prometheus_url, f"http://127.0.0.1:{closed_port()}")
        )
        down = meshkit("step", str(unanswered), "web", "--promote")
        assert down.returncode == 1, down.stdout + down.stderr
        assert "MK906 services.web.traffic.analysis: no evidence on canary v2, so no step" in down.stderr, down.stderr
        assert path.read_bytes() == before and unanswered.read_text() != path.read_text()
        for result in (slow, idle, down):
            assert "Traceback" not in result.stdout + result.stderr
            print(f"refused: {result.stderr.strip()}")

        allowed = meshkit("step", str(path), "web", "--promote")
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert re.search(r"canary v2 passes the analysis .*: v2: \d+ requests, success 100\.0%, p99 \d+ ms",
                         allowed.stdout), allowed.stdout  # fmt: skip
        print(f"allowed: {allowed.stdout.strip()}")

        outputs = tmp_path / "outputs.json"
        outputs.write_text(stack.project.pulumi("stack", "output", "--json").stdout)
        plan = meshkit("plan", str(path), "--base-file", str(outputs))
        assert plan.returncode == 0, plan.stdout + plan.stderr
        lines = [" ".join(line.split()) for line in plan.stdout.splitlines()]
        assert "Evidence for web (traffic.analysis, envoy metrics):" in plan.stdout, plan.stdout
        assert any(re.fullmatch(r"web v2 30 → 60 \d+ 100\.0% \d+ ms", line) for line in lines), plan.stdout
        assert any(re.fullmatch(r"web v1 70 → 40 \d+ 100\.0% \d+ ms", line) for line in lines), plan.stdout
        assert "web: the analysis passes v2 now" in plan.stdout
        print(plan.stdout)
