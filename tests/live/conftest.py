"""The live tier: one local control plane (toolchain/cluster.py) for the whole test session, started on
first use and stopped by PID at the end, and Pulumi projects that deploy to it with `kubernetes:kubeconfig`."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchain.cluster import LocalCluster, running_cluster

from .kube import Kube


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # A CI job that is cancelled gets SIGTERM: turn it into an interrupt, so that the control plane below
    # is still stopped by PID instead of outliving the run.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with running_cluster(tmp_path_factory.mktemp("cluster")) as local_cluster:
            yield local_cluster
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def kube(cluster: LocalCluster) -> Kube:
    return Kube(cluster)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return tmp_path
