"""A real Prometheus (Debian's, from toolchain/system-packages.sh) loaded with recorded series: the series a
cluster's proxies would have exported, written as OpenMetrics, turned into TSDB blocks by ``promtool tsdb
create-blocks-from openmetrics`` and served by ``prometheus`` on a free loopback port, stopped by its PID.

The series end a few seconds before the test runs, so a gate reading "the last 5m" at the present moment
reads them, in either metrics setup: Envoy's per-cluster statistics as Istio's bootstrap tags them, or Istio's
standard metrics. Each version's load is steady: ``rps`` requests a second, ``error_share`` of them 5xx, each
taking ``latency_ms``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Envoy's default histogram buckets (milliseconds), as the local cluster's proxies export them.
BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
STEP_SECONDS = 5
RECORDED_SECONDS = 600


@dataclass(frozen=True)
class Load:
    rps: float
    error_share: float = 0.0
    latency_ms: float = 5.0


def _buckets(count: float, latency_ms: float) -> list[tuple[str, float]]:
    return [(str(le), count if latency_ms <= le else 0.0) for le in BUCKETS] + [("+Inf", count)]


def openmetrics(loads: dict[str, Load], setup: str, end: float, namespace: str = "demo",
                service: str = "nginx") -> str:  # fmt: skip
    """The recorded series of ``service``'s versions, one sample every 5 s over the 10 minutes up to ``end``.
    Two callers' proxies report each Envoy cluster (their counters sum), and in the ``envoy`` setup every
    request is also counted per response code on the same metric (which must not be counted twice)."""
    lines: list[str] = []
    start = int(end) - RECORDED_SECONDS
    for t in range(start, int(end) + 1, STEP_SECONDS):
        elapsed = t - start
        for version, load in loads.items():
            total = load.rps * elapsed
            errors = round(total * load.error_share)
            ok = round(total) - errors
            if setup == "envoy":
                cluster = f"outbound|8080|{version}|{service}.{namespace}.svc.cluster.local"
                for pod in ("sleep-v1-a", "gateway-b"):  # two callers, half the requests each
                    base = f'cluster_name="{cluster}",pod="{pod}"'
                    for label, value in (('response_code_class="2xx"', ok), ('response_code="200"', ok),
                                         ('response_code_class="5xx"', errors), ('response_code="503"', errors)):
                        lines.append(f"envoy_cluster_upstream_rq{{{base},{label}}} {value / 2} {t}")
                    for le, count in _buckets((ok + errors) / 2, load.latency_ms):
                        lines.append(f'envoy_cluster_upstream_rq_time_bucket{{{base},le="{le}"}} {count} {t}')
                # A cluster of another service whose name starts alike: never counted for this one.
                other = f"outbound|8080|{version}|{service}x.{namespace}.svc.cluster.local"
                lines.append(f'envoy_cluster_upstream_rq{{cluster_name="{other}",response_code_class="5xx"}} '
                             f"{total} {t}")  # fmt: skip
            else:
                base = (f'reporter="destination",destination_workload_namespace="{namespace}",'
                        f'destination_workload="{service}-{version}",destination_version="{version}",'
                        f'destination_service_name="{service}"')  # fmt: skip
                for code, value in (("200", ok), ("503", errors)):
                    lines.append(f'istio_requests_total{{{base},response_code="{code}"}} {value} {t}')
                # What the caller's proxy reports of the same requests: not read (reporter="destination").
                source = base.replace('reporter="destination"', 'reporter="source"')
                lines.append(f'istio_requests_total{{{source},response_code="200"}} {ok + errors} {t}')
                for le, count in _buckets(ok + errors, load.latency_ms):
                    lines.append(f'istio_request_duration_milliseconds_bucket{{{base},le="{le}"}} {count} {t}')
    return "\n".join(sorted(lines, key=_series_then_time)) + "\n# EOF\n"


def _series_then_time(line: str) -> tuple[str, int]:
    """promtool reads OpenMetrics whose samples of one series are in time order (it sorts the series)."""
    series, _, rest = line.rpartition("} ")
    return series, int(rest.split()[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prometheus_binaries() -> tuple[str, str]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        raise AssertionError("prometheus and promtool are not installed: run toolchain/system-packages.sh")
    return prometheus, promtool


def ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class RecordedPrometheus:
    """One Prometheus process on loopback over a TSDB directory; :meth:`stop` ends it (by its PID)."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    address: str = ""

    def load(self, text: str) -> None:
        _, promtool = prometheus_binaries()
        source = self.directory / "recorded.om"
        source.write_text(text)
        command = [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(self.directory / "data")]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"promtool refused the recorded series: {result.stderr[-2000:]}"

    def start(self) -> str:
        prometheus, _ = prometheus_binaries()
        (self.directory / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
        self.address = f"http://127.0.0.1:{_free_port()}"
        log = open(self.directory / "prometheus.log", "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [prometheus, f"--config.file={self.directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.directory / 'data'}", f"--web.listen-address={self.address[7:]}",
             "--storage.tsdb.retention.time=30d"],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while not ready(self.address):
            assert self.process.poll() is None, f"prometheus exited: {(self.directory / 'prometheus.log').read_text()}"
            assert time.monotonic() < deadline, "prometheus was not ready within 60 s"
            time.sleep(0.05)
        return self.address

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextlib.contextmanager
def recorded_prometheus(directory: Path, loads: dict[str, Load], setup: str = "envoy",
                        end: float | None = None) -> Iterator[RecordedPrometheus]:  # fmt: skip
    """A Prometheus serving ``loads``' series up to ``end`` (default: 5 s ago) for a ``with`` block."""
    server = RecordedPrometheus(directory)
    server.load(openmetrics(loads, setup, time.time() - 5 if end is None else end))
    try:
        server.start()
        yield server
    finally:
        server.stop()
