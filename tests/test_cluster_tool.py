"""The local control plane's pure parts (toolchain/cluster.py): pointing a stack file at the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshkit.config.stack_file import stack_file_keys
from toolchain.cluster import ClusterError, stack_file_for_cluster

from .scenario_data import REPO

KUBECONFIG = Path("/tmp/cluster dir/kubeconfig")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_file_for_cluster_adds_the_kubeconfig_and_changes_nothing_else(stack: str) -> None:
    text = (REPO / "stacks" / f"Pulumi.{stack}.yaml").read_text()
    pointed = stack_file_for_cluster(text, KUBECONFIG, stack)
    added = [line for line in pointed.splitlines() if line not in text.splitlines()]
    assert added == ['  kubernetes:kubeconfig: "/tmp/cluster dir/kubeconfig"']
    assert yaml.safe_load(pointed)["config"]["kubernetes:kubeconfig"] == str(KUBECONFIG)
    assert stack_file_keys(pointed, stack) == stack_file_keys(text, stack)


def test_stack_file_for_cluster_refuses_a_file_that_names_a_cluster_already() -> None:
    with pytest.raises(ClusterError, match="already names a cluster"):
        stack_file_for_cluster("config:\n  kubernetes:context: prod\n", KUBECONFIG, "x")
    with pytest.raises(ClusterError, match="no top-level 'config:'"):
        stack_file_for_cluster("encryptionsalt: x\n", KUBECONFIG, "x")
