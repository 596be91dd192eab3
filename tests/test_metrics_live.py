"""``meshkit graph --live``, ``meshkit watch --once`` and ``meshkit guard --once`` against a real Prometheus loaded
with recorded series (tests/recorded_prometheus.py): each edge's requests per second, error share and latency;
Prometheus not answering is said plainly, the declared graph still drawn, and the guard does nothing."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from .e2e.engine import VENV_BIN
from .recorded_prometheus import Load, recorded_prometheus
from .test_metrics_gate import meshkit, stack_text

# v1 10 requests a second, v2 2, one in ten of them a 503 (tests/recorded_prometheus.py).
LOADS = {"v1": Load(rps=10, latency_ms=4), "v2": Load(rps=2, error_share=0.1, latency_ms=8)}
DOWN = "http://127.0.0.1:9"  # the discard port: nothing listens


def _stack(tmp_path: Path, address: str) -> Path:
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(stack_text(address))
    return path


def test_graph_live_labels_each_edge_with_its_traffic(tmp_path: Path) -> None:
    with recorded_prometheus(tmp_path, LOADS) as server:
        path = _stack(tmp_path, server.address)
        mermaid = meshkit("graph", str(path), "--live")
        dot = meshkit("graph", str(path), "--live", "--format", "dot")
        watched = meshkit("watch", str(path), "--once")
    assert mermaid.exit_code == 0, mermaid.output
    # Requests per second over the last minute, Prometheus's rate(): within a tenth of the recorded
    # load (the last samples are 5 s old: the rate over the minute reads a little less).
    v1 = re.search(r'S_nginx -->\|"70% · (\d+\.\d) req/s, 0\.0% errors, p99 (\d+) ms"\| S_nginx_V_v1', mermaid.output)
    v2 = re.search(r'S_nginx -->\|"30% · (\d+\.\d) req/s, 10\.0% errors, p99 (\d+) ms"\| S_nginx_V_v2', mermaid.output)
    assert v1 and v2, mermaid.output
    assert abs(float(v1[1]) - 10) <= 1 and abs(float(v2[1]) - 2) <= 0.2, mermaid.output
    assert int(v1[2]) <= 5 and 5 <= int(v2[2]) <= 10, mermaid.output
    assert re.search(r'S_nginx -> S_nginx_V_v2 \[label="30% · \d+\.\d req/s, 10\.0% errors, p99 \d+ ms"\]', dot.output)
    assert re.search(r"nginx\s+v2\s+30%\s+\d+\.\d\s+90\.0%\s+p99 \d+ ms", watched.output), watched.output


def test_without_prometheus_the_declared_graph_is_drawn_and_said(tmp_path: Path) -> None:
    path = _stack(tmp_path, DOWN)
    drawn = meshkit("graph", str(path), "--live")
    assert drawn.exit_code == 0, drawn.output
    assert "graph --live: no live numbers, drawing the declared graph only: Prometheus at http://127.0.0.1:9 did " \
           "not answer" in drawn.output  # fmt: skip
    assert 'S_nginx -->|"70%"| S_nginx_V_v1' in drawn.output
    watched = meshkit("watch", str(path), "--once")
    assert watched.exit_code == 0, watched.output
    assert "no live numbers: Prometheus at http://127.0.0.1:9 did not answer" in watched.output


def test_the_guard_without_evidence_says_so_and_writes_nothing(tmp_path: Path) -> None:
    path = _stack(tmp_path, DOWN)
    before = path.read_bytes()
    result = meshkit("guard", str(path), "nginx", "--once")
    assert result.exit_code == 4, result.output
    said = "no-evidence: no evidence on canary v2, nothing done: Prometheus at http://127.0.0.1:9 did not answer"
    assert said in result.output
    assert path.read_bytes() == before


def test_the_guard_passes_a_healthy_canary_and_says_too_few_requests_is_no_failure(tmp_path: Path) -> None:
    loads = {"v1": Load(rps=10, latency_ms=4), "v2": Load(rps=2, latency_ms=8)}
    with recorded_prometheus(tmp_path, loads) as server:
        path = _stack(tmp_path, server.address)
        healthy = meshkit("guard", str(path), "nginx", "--once")
    assert healthy.exit_code == 0, healthy.output
    assert "pass: canary v2 passes the analysis" in healthy.output
    quiet_dir = tmp_path / "quiet"
    quiet_dir.mkdir()
    quiet = {"v1": Load(rps=10, latency_ms=4), "v2": Load(rps=0.04, error_share=0.5, latency_ms=8)}
    with recorded_prometheus(quiet_dir, quiet) as server:
        path = _stack(quiet_dir, server.address)
        before = path.read_bytes()
        result = meshkit("guard", str(path), "nginx", "--once")
    assert result.exit_code == 0, result.output
    assert re.search(r"quiet: not enough traffic to judge canary v2 \(not a failure\): v2: \d+ requests", result.output)
    assert path.read_bytes() == before


def test_ctrl_c_stops_the_guard_cleanly(tmp_path: Path) -> None:
    path = _stack(tmp_path, DOWN)
    # A child started from here gets SIGINT's default handling (a background shell may have it ignored).
    with subprocess.Popen([str(VENV_BIN / "meshkit"), "guard", str(path), "nginx", "--interval", "1s"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as guard:  # fmt: skip
        assert guard.stdout is not None
        assert "watching nginx" in guard.stdout.readline()
        guard.send_signal(signal.SIGINT)
        out, err = guard.communicate(timeout=30)
    assert guard.returncode == 130, out + err
    assert err == "guard: stopped (Ctrl-C)\n" and "Traceback" not in out
