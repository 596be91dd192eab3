"""The live tier: one local control plane (toolchain/cluster.py) for the whole test session, started on
first use and stopped by PID at the end, and Pulumi projects that deploy to it with `kubernetes:kubeconfig`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchain.cluster import LocalCluster, running_cluster

from .kube import Kube


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as local_cluster:
        yield local_cluster


@pytest.fixture
def kube(cluster: LocalCluster) -> Kube:
    return Kube(cluster)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return tmp_path
