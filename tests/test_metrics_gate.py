"""The canary gate and the plan's evidence against a real Prometheus loaded with recorded series (no cluster):
``meshkit step --promote``/``--take-over`` refuses a failing, slow or unproven canary with its numbers and
writes nothing, lets a healthy one through, refuses when Prometheus does not answer, and can be overridden
only by saying why; ``meshkit plan`` shows the numbers. Both metrics setups (Envoy's statistics, Istio's
standard metrics)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.mesh.checks import parse_stack_file_text
from meshkit.rollout.summary import deployment_outputs

from .recorded_prometheus import Load, RecordedPrometheus, recorded_prometheus
from .scenario_data import scenario_raw, stack_file_text

runner = CliRunner()
HEALTHY = {"v1": Load(rps=10, latency_ms=4), "v2": Load(rps=2, latency_ms=8)}
# Request counts are Prometheus's extrapolation over the window (about 600 for v2, 3000 for v1).
# One request in ten answered 503 (one in each 5 s sample: the share is exact whatever the moment).
FAILING = {"v1": Load(rps=10, latency_ms=4), "v2": Load(rps=2, error_share=0.1, latency_ms=8)}
SLOW = {"v1": Load(rps=10, latency_ms=4), "v2": Load(rps=2, latency_ms=812)}
QUIET = {"v1": Load(rps=10, latency_ms=4), "v2": Load(rps=0.04, latency_ms=8)}  # 12 requests in 5 minutes


def stack_text(address: str, metrics: str = "envoy") -> str:
    """Scenario A3 (nginx v1/v2 at 70/30) with promotion steps and an analysis reading ``address``."""
    raw = scenario_raw("A3")
    raw["prometheus"] = {"address": address}
    raw["services"]["nginx"]["traffic"] |= {
        "steps": [30, 50, 100],
        "analysis": {"minSuccessRate": 99, "latencyPercentile": 99, "maxLatency": "500ms", "window": "5m",
                     "minRequests": 100, "metrics": metrics},
    }  # fmt: skip
    return "# reviewed\n" + stack_file_text(raw)


@pytest.fixture(params=["envoy", "istio"])
def setup(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _prometheus(tmp_path: Path, loads: dict[str, Load], setup: str) -> Iterator[RecordedPrometheus]:
    with recorded_prometheus(tmp_path / "prometheus", loads, setup) as server:
        yield server


def _stack(tmp_path: Path, address: str, setup: str) -> Path:
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(stack_text(address, setup))
    return path


def meshkit(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


def _promote_refused(tmp_path: Path, loads: dict[str, Load], setup: str, *expected: str) -> str:
    (tmp_path / "prometheus").mkdir()
    for server in _prometheus(tmp_path, loads, setup):
        path = _stack(tmp_path, server.address, setup)
        before = path.read_bytes()
        result = meshkit("step", str(path), "nginx", "--promote")
        assert result.exit_code == 1, result.output
        assert path.read_bytes() == before, "a refused step wrote the stack file"
        for text in expected:
            assert text in result.output, result.output
        assert "the step was not written" in result.output
        return str(result.output)
    raise AssertionError("unreachable")


def test_a_failing_canary_is_refused_with_its_numbers(tmp_path: Path, setup: str) -> None:
    output = _promote_refused(tmp_path, FAILING, setup, "MK905 services.nginx.traffic.analysis",
                              "canary v2 fails the analysis: success 90.0% < 99%")  # fmt: skip
    assert "--skip-analysis" in output
    numbers = r"v2: (59\d|60\d) requests, success 90.0%, p99 10 ms; v1: (29\d\d|30\d\d) requests, success 100.0%"
    assert re.search(numbers, output), output


def test_a_slow_canary_is_refused_on_latency(tmp_path: Path, setup: str) -> None:
    # Envoy's buckets put 812 ms between 500 and 1000: Prometheus interpolates p99 as 995 ms.
    _promote_refused(tmp_path, SLOW, setup, "canary v2 fails the analysis: p99 995 ms > 500 ms")


def test_a_canary_with_too_few_requests_is_refused(tmp_path: Path, setup: str) -> None:
    output = _promote_refused(tmp_path, QUIET, setup, "requests < 100: not enough traffic to judge")
    assert "let v2 serve at least 100 requests in the window" in output


def test_a_healthy_canary_is_promoted(tmp_path: Path, setup: str) -> None:
    (tmp_path / "prometheus").mkdir()
    for server in _prometheus(tmp_path, HEALTHY, setup):
        path = _stack(tmp_path, server.address, setup)
        result = meshkit("step", str(path), "nginx", "--promote")
        assert result.exit_code == 0, result.output
        assert "canary v2 passes the analysis" in result.output, result.output
        assert re.search(r"v2: (59\d|60\d) requests", result.output), result.output
        weights = parse_stack_file_text(path.read_text(), "stepped").services["nginx"].traffic.weights
        assert weights == {"v1": 50, "v2": 50}
        # --take-over is gated the same way.
        result = meshkit("step", str(path), "nginx", "--take-over", "v2")
        assert result.exit_code == 0 and "canary v2 passes the analysis" in result.output, result.output


def test_take_over_by_a_failing_canary_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prometheus").mkdir()
    for server in _prometheus(tmp_path, FAILING, "envoy"):
        path = _stack(tmp_path, server.address, "envoy")
        before = path.read_bytes()
        result = meshkit("step", str(path), "nginx", "--take-over", "v2")
        assert result.exit_code == 1 and "success 90.0% < 99%" in result.output, result.output
        assert path.read_bytes() == before


def test_prometheus_not_answering_is_a_refusal(tmp_path: Path) -> None:
    (tmp_path / "prometheus").mkdir()
    for server in _prometheus(tmp_path, HEALTHY, "envoy"):
        path = _stack(tmp_path, server.address, "envoy")
        server.stop()
        before = path.read_bytes()
        result = meshkit("step", str(path), "nginx", "--promote")
        assert result.exit_code == 1, result.output
        assert "MK906" in result.output and f"Prometheus at {server.address} did not answer" in result.output
        assert path.read_bytes() == before


def test_a_query_prometheus_refuses_is_a_refusal(tmp_path: Path) -> None:
    """A path prefix that is not Prometheus's API: an HTTP error, never a pass."""
    (tmp_path / "prometheus").mkdir()
    for server in _prometheus(tmp_path, HEALTHY, "envoy"):
        path = _stack(tmp_path, server.address + "/not-prometheus", "envoy")
        result = meshkit("step", str(path), "nginx", "--promote")
        assert result.exit_code == 1 and "MK906" in result.output and "refused" in result.output, result.output


def test_the_override_says_why_and_skips_the_numbers(tmp_path: Path) -> None:
    path = _stack(tmp_path, "http://127.0.0.1:9", "envoy")  # nothing listens: the gate would refuse
    result = meshkit("step", str(path), "nginx", "--promote", "--skip-analysis", "load test cluster, no users")
    assert result.exit_code == 0, result.output
    assert "ANALYSIS SKIPPED (--skip-analysis): 'load test cluster, no users'" in result.output
    assert "step written" in result.output
    blank = meshkit("step", str(path), "nginx", "--promote", "--skip-analysis", " ")
    assert blank.exit_code == 2 and "needs a reason" in blank.output
    wrong = meshkit("step", str(path), "nginx", "v2=60", "--skip-analysis", "x")
    assert wrong.exit_code == 2 and "--skip-analysis goes with --promote or --take-over" in wrong.output


def test_a_service_without_analysis_is_not_gated(tmp_path: Path) -> None:
    raw = scenario_raw("A3")
    raw["services"]["nginx"]["traffic"]["steps"] = [30, 50, 100]
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(stack_file_text(raw))
    result = meshkit("step", str(path), "nginx", "--promote")
    assert result.exit_code == 0 and "analysis" not in result.output, result.output


# --- the evidence in the plan -----------------------------------------------------------------------


def _base(tmp_path: Path, address: str, setup: str) -> Path:
    """The last deployment's outputs: A3 (70/30), as `pulumi stack output --json` would give them."""
    config = parse_stack_file_text(stack_text(address, setup), "deployed")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(deployment_outputs(config, None)))
    return outputs


def test_the_plan_shows_the_numbers_of_the_versions_it_moves(tmp_path: Path, setup: str) -> None:
    (tmp_path / "prometheus").mkdir()
    for server in _prometheus(tmp_path, FAILING, setup):
        path = _stack(tmp_path, server.address, setup)
        outputs = _base(tmp_path, server.address, setup)
        path.write_text(path.read_text().replace("v1: 70", "v1: 50").replace("v2: 30", "v2: 50"))
        text = meshkit("plan", str(path), "--base-file", str(outputs))
        assert text.exit_code == 0, text.output
        assert f"Evidence for nginx (traffic.analysis, {setup} metrics):" in text.output
        lines = [" ".join(line.split()) for line in text.output.splitlines()]
        assert any(re.fullmatch(r"nginx v1 70 → 50 (29\d\d|30\d\d) 100.0% 5 ms", line) for line in lines), lines
        assert any(re.fullmatch(r"nginx v2 30 → 50 (59\d|60\d) 90.0% 10 ms", line) for line in lines), lines
        assert "the analysis refuses v2 now (success 90.0% < 99%)" in text.output
        markdown = meshkit("plan", str(path), "--base-file", str(outputs), "--format", "markdown")
        assert markdown.exit_code == 0, markdown.output
        assert "| Service | Version | Weight | Requests (5m) | Success | p99 |" in markdown.output
        row = r"\| nginx \| v2 \| 30 → 50 \| (59\d|60\d) \| 90.0% \| 10 ms \|"
        assert re.search(row, markdown.output), markdown.output
        assert "- ⛔ nginx: the analysis refuses v2 now" in markdown.output


def test_the_plan_says_plainly_when_prometheus_does_not_answer(tmp_path: Path) -> None:
    path = _stack(tmp_path, "http://127.0.0.1:9", "envoy")
    outputs = _base(tmp_path, "http://127.0.0.1:9", "envoy")
    path.write_text(path.read_text().replace("v1: 70", "v1: 50").replace("v2: 30", "v2: 50"))
    result = meshkit("plan", str(path), "--base-file", str(outputs))
    assert result.exit_code == 0, result.output
    assert "nginx: no evidence: Prometheus at http://127.0.0.1:9 did not answer" in result.output
    markdown = meshkit("plan", str(path), "--base-file", str(outputs), "--format", "markdown")
    assert "- ⛔ nginx: no evidence: Prometheus at http://127.0.0.1:9 did not answer" in markdown.output


def test_the_plan_shows_no_evidence_when_no_weight_moves(tmp_path: Path) -> None:
    path = _stack(tmp_path, "http://127.0.0.1:9", "envoy")
    outputs = _base(tmp_path, "http://127.0.0.1:9", "envoy")
    result = meshkit("plan", str(path), "--base-file", str(outputs))
    assert result.exit_code == 0 and "Evidence" not in result.output, result.output
