"""The data-plane tier: one local cluster with a real node (toolchain/node.py) for the session, whose pods
run for real with Envoy sidecars, and the host checked to be left as it was found once it stops."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchain.cluster import LocalCluster, running_cluster
from toolchain.istiod import IstiodError, istio_bin_dir
from toolchain.node import HOST_PATHS, SYSCTLS, NodeError, node_bin_dir

from .mesh import Mesh

REPORT: list[str] = []


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def host_snapshot() -> dict[str, object]:
    """What a real node may change on this machine: links, network namespaces, mounts, cgroups, sysctls,
    paths, and the firewall ruleset."""

    def run(*args: str) -> str:
        return subprocess.run(list(args), capture_output=True, text=True, check=False).stdout

    cgroups = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/meshkit-*"))
    mounts = sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    return {
        "links": sorted(line.split(":")[1].strip().split("@")[0] for line in run("ip", "-o", "link").splitlines()),
        "netns": run("ip", "netns", "list"),
        "mounts": mounts,
        "cgroups": cgroups,
        "sysctls": {name: Path("/proc/sys", name.replace(".", "/")).read_text().strip() for name in SYSCTLS},
        "paths": {path: Path(path).exists() for path in HOST_PATHS},
        "ruleset": run("nft", "list", "ruleset"),
    }


@pytest.fixture(scope="session")
def mesh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # The binaries are looked for, never built here: missing, every test fails with the command that builds them.
    try:
        node_bin, istio_bin = node_bin_dir(build=False), istio_bin_dir(build=False)
    except (NodeError, IstiodError) as err:
        pytest.fail(f"{err} (make cluster-toolchain istio-toolchain)", pytrace=False)
    before = host_snapshot()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with running_cluster(tmp_path_factory.mktemp("mesh"), istio_bin_dir=istio_bin, node_bin=node_bin) as cluster:
            state = cluster.state()
            REPORT.append(f"cluster with a real node started in {state['startup_seconds']} s "
                          f"(istiod and the gateway: {state['istiod_seconds']} s)")  # fmt: skip
            yield cluster
    finally:
        signal.signal(signal.SIGTERM, previous)
    after = host_snapshot()
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not changed, f"the real node left the host changed: {json.dumps(changed, indent=1)[:4000]}"


@pytest.fixture(scope="session")
def mesh(mesh_cluster: LocalCluster) -> Mesh:
    return Mesh(mesh_cluster)


@pytest.fixture(autouse=True)
def no_rejected_updates(mesh: Mesh) -> Iterator[None]:
    """After every data-plane test, each proxy's own counters: a rejected listener, cluster, route or secret
    update leaves the old configuration serving, so the test's requests alone could not show it."""
    yield
    assert mesh.rejected_updates() == []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.write_sep("-", "data plane")
        for line in REPORT:
            terminalreporter.write_line(line)
