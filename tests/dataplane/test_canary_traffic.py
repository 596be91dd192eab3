"""Scenario A through real Envoy sidecars: the nginx canary, step by step, with a meshed client sending
requests the whole time.

After each traffic step the client's sidecar is waited on until its route table holds the stack file's
weights (read from its Envoy); then 1000 requests from that client must split within a binomial bound of
those weights. Across every step, from the moment the client exists to the end, a steady load must see no
failed request (status >= 500 or a connection error), counted per step.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ..live.deploy import in_namespace, new_live_stack
from ..scenario_data import scenario, scenario_raw
from .mesh import Mesh, total, wait_for, within_split

pytestmark = pytest.mark.dataplane

NAMESPACE = "demo"
URL = "http://nginx:8080/"
SPLIT_REQUESTS = 1000


def weights(step: str) -> dict[str, int]:
    traffic = scenario(step).services["nginx"].traffic
    return {version: weight for version, weight in traffic.weights.items() if weight > 0}


def test_every_step_of_the_canary_splits_as_declared_and_fails_no_request(mesh: Mesh, tmp_path: Path) -> None:
    stack = new_live_stack(tmp_path, mesh.cluster, "canary")
    for step in ("A0", "A1", "A2"):
        stack.use_step(step)
        stack.make("up")
    client = mesh.pod_of(NAMESPACE, "sleep")
    failed_per_step: dict[str, int] = {}
    requests_per_step: dict[str, int] = {}
    with mesh.continuous_load(NAMESPACE, client, URL) as load:
        for step in ("A3", "A4", "A5", "A6"):
            started = time.time()
            stack.use_step(step)
            # What a user runs for a rollout step: `make step`, the engine targeted at what the step changes.
            stepped = stack.make("step")
            assert "a targeted `up`" in stepped.stdout + stepped.stderr, stepped.stdout + stepped.stderr
            expected = weights(step)
            wait_for(f"{step}'s weights {expected} in the client's sidecar",
                     lambda expected=expected: mesh.route_weights(NAMESPACE, client, "nginx") == expected)  # fmt: skip
            split = mesh.load(NAMESPACE, client, URL, SPLIT_REQUESTS)
            assert split["failed"] == 0, f"{step}: {split['failed']} of {SPLIT_REQUESTS} requests failed: {split}"
            problems = within_split(split["by_version"], expected)
            assert not problems, f"{step}: the split is not the stack file's: {problems}"
            intervals = load.intervals(started, time.time())
            failed_per_step[step] = total(intervals, "failed")
            requests_per_step[step] = total(intervals, "sent")
        summary = load.stop()
    print(f"steady load: {requests_per_step} requests, {failed_per_step} failed per step; summary {summary}")
    assert summary["failed"] == 0, f"requests failed during the rollout: {failed_per_step}; {summary}"


def test_a_canary_that_never_becomes_ready_gets_no_request(mesh: Mesh, tmp_path: Path) -> None:
    """A3 with a v2 whose image the node does not have: its pods never become ready, the `up` fails on its
    ready timeout before the route is written, and the client never reaches v2 and sees no failure."""
    namespace = "never-ready"
    stack = new_live_stack(tmp_path, mesh.cluster, "never-ready")
    a2 = in_namespace(scenario_raw("A2"), namespace)
    stack.use(a2)
    stack.up()
    client = mesh.pod_of(namespace, "sleep")
    broken = in_namespace(scenario_raw("A3"), namespace)
    broken["services"]["nginx"]["versions"]["v2"]["image"] = "nginx:0.0.0-not-on-this-node"
    broken["readyTimeout"] = "20s"
    stack.use(broken)
    with mesh.continuous_load(namespace, client, f"http://nginx.{namespace}:8080/") as load:
        result = stack.up(check=False)
        assert result.returncode != 0, "the `up` of a canary that never becomes ready succeeded"
        summary = load.stop()
    assert summary["failed"] == 0, summary
    assert set(summary["by_version"]) == {"v1"}, summary
    assert mesh.route_weights(namespace, client, "nginx") == {"v1": 100}
