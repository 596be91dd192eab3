"""The guard and the live view on the real data plane: a stand-in canary failing a fifth of its requests
(``STANDIN_FAIL_PERCENT``) under a steady load; ``meshkit graph --live`` shows the 70/30 split the requests
measured; ``meshkit guard`` rolls the canary's traffic back to v1, performs it, and the requests stop failing.
How long that took and how many requests failed meanwhile are printed (``GUARD_REACTION {json}``), which
bench/guard_reaction.py runs and reports: numbers, not timed assertions."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from meshkit.config.stack import StackConfig
from meshkit.metrics.prometheus import Prometheus
from meshkit.metrics.stats import version_stats

from ..e2e.engine import VENV_BIN
from ..live.deploy import in_namespace, new_live_stack
from ..scenario_data import scenario_raw
from .mesh import Mesh, binomial_bound, deployed, small, total, wait_for

pytestmark = pytest.mark.dataplane

NAMESPACE = "guarded"
MIN_REQUESTS = 20
QPS = 25


def test_the_guard_rolls_a_failing_canary_back_and_graph_live_shows_the_split(mesh: Mesh, tmp_path: Path) -> None:
    raw = small(in_namespace(scenario_raw("A3"), NAMESPACE))
    raw["prometheus"] = {"address": mesh.cluster.prometheus_url}
    nginx = raw["services"]["nginx"]
    nginx["traffic"] |= {"analysis": {"minSuccessRate": 99, "maxLatency": "500ms", "window": "20s",
                                      "minRequests": MIN_REQUESTS}}  # fmt: skip
    nginx["versions"]["v2"]["env"] = {"STANDIN_FAIL_PERCENT": "20"}
    stack = new_live_stack(tmp_path, mesh.cluster, "guarded")
    stack.use(raw)
    with deployed(stack):
        client = mesh.pod_of(NAMESPACE, "sleep")
        config = StackConfig.model_validate(raw)
        svc = config.services["nginx"]
        assert svc.traffic.analysis is not None
        prometheus = Prometheus(mesh.cluster.prometheus_url)
        path = stack.project.stack_file

        def scraped() -> bool:
            stats = version_stats(prometheus, "nginx", svc, svc.traffic.analysis, ["v1", "v2"])  # type: ignore[arg-type]
            return stats["v2"].requests >= MIN_REQUESTS and stats["v1"].requests >= MIN_REQUESTS

        with mesh.continuous_load(NAMESPACE, client, f"http://nginx.{NAMESPACE}:8080/", qps=QPS) as load:
            wait_for("Prometheus to hold the client's requests", scraped, timeout=90)
            # The live view: each edge's requests per second over the last minute, as the requests measured them.
            drawn = subprocess.run([str(VENV_BIN / "meshkit"), "graph", str(path), "--live"], capture_output=True,
                                   text=True, timeout=60, check=False)  # fmt: skip
            assert drawn.returncode == 0 and "Traceback" not in drawn.stderr, drawn.stdout + drawn.stderr
            shown = {v: float(r) for r, v in re.findall(r'S_nginx -->\|"\d+% · (\d+\.\d) req/s[^"]*"\| S_nginx_V_(v\d)',
                                                        drawn.stdout)}  # fmt: skip
            last_minute = load.intervals(time.time() - 60, time.time())
            measured = {v: sum(int(i.get("by_version", {}).get(v, 0)) for i in last_minute) for v in ("v1", "v2")}
            n = sum(measured.values())
            share, measured_share = shown["v2"] / sum(shown.values()), measured["v2"] / n
            # What the graph shows is what the client counted, and both are the declared 70/30.
            assert abs(share - measured_share) <= binomial_bound(n, 30), (shown, measured, drawn.stdout)
            assert abs(share - 0.3) <= binomial_bound(n, 30), (shown, measured, drawn.stdout)
            print(f"graph --live: {shown} req/s, v2 {share:.3f}; the client: {measured}, v2 {measured_share:.3f}")

            started = time.time()
            command = [str(VENV_BIN / "meshkit"), "guard", str(path), "nginx", "--interval", "2s", "--failures", "2"]
            # The project's environment (its backend, passphrase and the pulumi CLI), as `make up` has it.
            guard = subprocess.run(command, cwd=stack.project.root, env=stack.project.env, capture_output=True,
                                   text=True, timeout=300, check=False)  # fmt: skip
            performed = time.time()
            assert guard.returncode == 3, guard.stdout + guard.stderr
            assert "Traceback" not in guard.stdout + guard.stderr
            assert re.search(
                r"rolling back: canary v2 failed 2 check\(s\) in a row: success \d+\.\d+% < 99%", guard.stdout
            )
            assert "rollback performed: v2 takes no traffic" in guard.stdout and "git diff" in guard.stdout
            assert re.search(r"v1:\s*100\b", path.read_text()) or "v1: 100" in path.read_text(), path.read_text()

            def clean_since() -> float | None:
                """The start of the run of 5 seconds without a failure or a request to v2, once there is one."""
                recent = load.intervals(performed, time.time())
                quiet = [i for i in recent if not i.get("failed") and not i.get("by_version", {}).get("v2")]
                return quiet[-5]["t"] if len(quiet) >= 5 and quiet[-5:] == recent[-5:] else None

            clean = wait_for("the requests to stop failing after the rollback", clean_since, timeout=60)
            failed = total(load.intervals(started, clean), "failed")
            sent = total(load.intervals(started, clean), "sent")
        print(guard.stdout)
        report = {"guard_to_rollback_performed_s": round(performed - started, 1),
                  "guard_to_no_failures_s": round(clean - started, 1), "failed_requests": failed, "sent_requests": sent,
                  "qps": QPS, "interval": "2s", "failures": 2, "window": "20s"}  # fmt: skip
        print("GUARD_REACTION " + json.dumps(report))
