"""The live tier: one local control plane (toolchain/cluster.py) for the whole test session, istiod included
(toolchain/istiod.py: Istio's validating webhook and sidecar injector), started on first use and stopped by
PID at the end, and Pulumi projects that deploy to it with `kubernetes:kubeconfig`."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchain.cluster import LocalCluster, running_cluster
from toolchain.istiod import BINARY, IstiodError, istio_bin_dir

from . import istio
from .kube import Kube

# What the session's cluster reported about itself, for the summary at the end of the run.
REPORT: list[str] = []


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # istiod's binary is only looked for, never built here (15 minutes): missing, every live test fails
    # with the command that builds it.
    try:
        istio_bin = istio_bin_dir(build=False)
    except IstiodError as err:
        missing = str(err)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    # A CI job that is cancelled gets SIGTERM: turn it into an interrupt, so that the control plane below
    # is still stopped by PID instead of outliving the run.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with running_cluster(tmp_path_factory.mktemp("cluster"), istio_bin_dir=istio_bin) as local_cluster:
            state = local_cluster.state()
            REPORT.append(f"cluster started in {state['startup_seconds']} s (istiod: {state['istiod_seconds']} s)")
            yield local_cluster
            REPORT.append(_istiod_usage(local_cluster))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _istiod_usage(cluster: LocalCluster) -> str:
    """istiod's CPU time and memory since it started, from /proc (the cluster still runs)."""
    pid = cluster.running().get(BINARY)
    if pid is None:
        return "istiod: not running at the end of the session"
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    age = (float(Path("/proc/uptime").read_text().split()[0]) * ticks - int(fields[19])) / ticks
    memory = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (
        f"istiod: {cpu:.1f} s of CPU in {age:.0f} s ({100 * cpu / age:.1f}% of a core), "
        f"memory {memory['VmRSS'].strip()} (peak {memory['VmHWM'].strip()})"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if istio.ANALYZE_SECONDS:
        seconds = istio.ANALYZE_SECONDS
        REPORT.append(f"istioctl analyze of the live cluster: {len(seconds)} runs, {sum(seconds):.1f} s in all, "
                      f"{max(seconds):.2f} s at most")  # fmt: skip
    if REPORT:
        terminalreporter.write_sep("-", "live control plane")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture
def kube(cluster: LocalCluster) -> Kube:
    return Kube(cluster)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return tmp_path
