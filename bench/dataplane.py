"""Step to traffic on the real node's data plane (scenario A): how long a one-weight rollout step takes to reach
the proxies, against the floor of one PATCH and istiod's push; failed requests per step under a steady load;
what a sidecar costs.

    .venv/bin/python -m bench.dataplane [--runs 3]
    .venv/bin/python -m bench.dataplane --services 50 [--runs 3]

Starts a local cluster with a real node (toolchain/cluster.py, as `make cluster`), deploys A0-A3 with
`make up`, then measures, each ``--runs`` times, for the one-weight step 70/30 → 20/80 and back:

* ``make_step``: from the start of `make step` (the targeted `up`, refresh included) until the client's
  sidecar holds the new weights (its Envoy's route table, polled every 50 ms: the first request on the new
  split), and until 1000 requests from the client split within the tests' binomial bound;
* ``make_up``: the same with `make up` (refresh, preview with the API server's dry runs, full update);
* ``floor``: a JSON merge PATCH of the VirtualService's weights with kubectl, until the sidecar holds them
  (what any tool that writes the route pays: the API server, istiod's debounce and push, Envoy's update).

Then A3 → A6 with `make step` under a steady 40 requests/s from the client's sidecar, failed requests counted
per step; and per sidecar, the istio-proxy container's memory (its cgroup's usage) and CPU time idle and
while serving that load. Prints one JSON object.

With ``--services N``: a generated stack of N services in one sidecar namespace (one pod each, stand-in
images made for the run), the client and ``svc-000`` with v1 and v2; the same three ways of moving
svc-000's weights (90/10 and 20/80), so that the proxies' update cost with N services shows against
scenario A's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.dataplane.mesh import SMALL, Mesh, total, wait_for, within_split
from tests.live.deploy import LiveStack, new_live_stack
from toolchain.cluster import LocalCluster, running_cluster
from toolchain.istiod import istio_bin_dir
from toolchain.node import node_bin_dir
from toolchain.standins import StandIn

NAMESPACE = "demo"
URL = "http://nginx:8080/"
WEIGHTS = {"A3": {"v1": 70, "v2": 30}, "A4": {"v1": 20, "v2": 80}}
# The generated stack (--services): svc-000's two splits, as the scenario's steps.
GENERATED_WEIGHTS = {"low": {"v1": 90, "v2": 10}, "high": {"v1": 20, "v2": 80}}


@dataclass
class Target:
    """What a run moves: the namespace, the routed service and its URL, and the stack file of each split."""

    namespace: str
    service: str
    url: str
    steps: dict[str, dict[str, int]]
    use: Callable[[str], None]


def _weights(mesh: Mesh, client: str, target: Target) -> dict[str, int]:
    return mesh.route_weights(target.namespace, client, target.service)


def measure_step(stack: LiveStack, mesh: Mesh, client: str, target: Target, how: str) -> dict[str, float]:
    """One step between the target's two splits with ``how`` (make_step, make_up or floor)."""
    current = next(name for name, weights in target.steps.items() if _weights(mesh, client, target) == weights)
    step = next(name for name in target.steps if name != current)
    weights = target.steps[step]
    target.use(step)
    started = time.monotonic()
    if how == "floor":
        patch = json.dumps({"spec": {"http": _http_with_weights(mesh, target, weights)}})
        mesh.kubectl("patch", "virtualservice", target.service, "-n", target.namespace, "--type", "merge", "-p", patch)
    else:
        stack.make("step" if how == "make_step" else "up")
    command_seconds = time.monotonic() - started
    wait_for(f"weights {weights}", lambda: _weights(mesh, client, target) == weights, interval=0.05)
    first = time.monotonic() - started
    split = mesh.load(target.namespace, client, target.url, 1000)
    assert split["failed"] == 0 and not within_split(split["by_version"], weights), split
    split_seconds = time.monotonic() - started
    if how == "floor":
        stack.make("up")  # the state and the cluster agree again (the patch is drift to the engine)
    return {"command_s": round(command_seconds, 2), "first_request_s": round(first, 2),
            "split_s": round(split_seconds, 2)}  # fmt: skip


def _http_with_weights(mesh: Mesh, target: Target, weights: dict[str, int]) -> list[dict[str, Any]]:
    stored = json.loads(
        mesh.kubectl("get", "virtualservice", target.service, "-n", target.namespace, "-o", "json").stdout
    )
    http: list[dict[str, Any]] = stored["spec"]["http"]
    for rule in http:
        for destination in rule.get("route", []):
            destination["weight"] = weights.get(destination["destination"].get("subset", ""), 0)
    return http


def measure(stack: LiveStack, mesh: Mesh, client: str, target: Target, runs: int) -> dict[str, list[dict[str, float]]]:
    steps: dict[str, list[dict[str, float]]] = {"make_step": [], "make_up": [], "floor": []}
    for _ in range(runs):
        for how in steps:
            steps[how].append(measure_step(stack, mesh, client, target, how))
    return steps


def medians(steps: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {how: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for how, runs in steps.items()}


def steady_load(stack: LiveStack, mesh: Mesh, client: str) -> dict[str, Any]:
    failed, sent = {}, {}
    with mesh.continuous_load(NAMESPACE, client, URL) as load:
        for step in ("A3", "A4", "A5", "A6"):
            started = time.time()
            stack.use_step(step)
            stack.make("step")
            time.sleep(2)  # a bench, not a test: two more seconds of load after each step
            intervals = load.intervals(started, time.time())
            failed[step], sent[step] = total(intervals, "failed"), total(intervals, "sent")
        summary = load.stop()
    return {"failed_per_step": failed, "requests_per_step": sent, "failed": summary["failed"]}


def sidecar_cost(mesh: Mesh, client: str) -> dict[str, Any]:
    """The istio-proxy containers' memory and CPU, from their cgroups: idle over 10 s, then serving 40
    requests/s from the client for 10 s (every proxy on the way: the client's and the server's)."""
    node = mesh.cluster.real_node
    assert node is not None

    def usage() -> dict[str, tuple[int, int]]:
        found = {}
        for pod in mesh.meshed_pods():
            for status in pod["status"].get("initContainerStatuses", []) + pod["status"].get("containerStatuses", []):
                if status["name"] == "istio-proxy" and status.get("containerID"):
                    found[pod["metadata"]["name"]] = _cgroup_usage(node.cgroup_parent, status["containerID"])
        return found

    before = usage()
    time.sleep(10)
    idle = usage()
    with mesh.continuous_load(NAMESPACE, client, URL):
        loaded_start = usage()
        time.sleep(10)
        loaded = usage()
    pods = sorted(set(before) & set(idle) & set(loaded_start) & set(loaded))
    return {
        "proxies": len(pods),
        "memory_mib": {p: round(loaded[p][0] / 2**20, 1) for p in pods},
        "idle_cpu_millicores": {p: round((idle[p][1] - before[p][1]) / 1e6 / 10, 1) for p in pods},
        "loaded_cpu_millicores": {p: round((loaded[p][1] - loaded_start[p][1]) / 1e6 / 10, 1) for p in pods},
    }


def _cgroup_usage(parent: str, container_id: str) -> tuple[int, int]:
    """(memory bytes, CPU nanoseconds) of one container, from the cgroup v1 memory and cpuacct hierarchies."""
    short = container_id.split("://", 1)[1]
    memory = next(Path("/sys/fs/cgroup/memory" + parent).rglob(short))
    cpu = next(Path("/sys/fs/cgroup/cpuacct" + parent).rglob(short))
    return int((memory / "memory.usage_in_bytes").read_text()), int((cpu / "cpuacct.usage").read_text())


def generated_config(services: int, weights: dict[str, int]) -> dict[str, Any]:
    """``services`` services of one pod each in one sidecar namespace; svc-000 also has v2, at ``weights``;
    the client ``sleep`` (scenario A's)."""
    config: dict[str, Any] = {"namespaces": {"scale": {"dataplane": "sidecar"}}, "services": {}}
    for i in range(services):
        name = f"svc-{i:03d}"
        versions = ("v1", "v2") if i == 0 else ("v1",)
        config["services"][name] = {
            "namespace": "scale",
            "allowFrom": [{"service": "sleep"}],
            "ports": [{"name": "http", "port": 8080}],
            # Two cores hold 50 pods only if each asks for a hundredth of a core (meshkit's default is 100m).
            "versions": {
                v: {"image": f"meshkit.local/standin/{name}:{v}", "replicas": 1, "resources": SMALL} for v in versions
            },
            **({"traffic": {"weights": weights}} if i == 0 else {}),
        }
    config["services"]["sleep"] = {
        "namespace": "scale",
        "ports": [{"name": "http", "port": 80}],
        "versions": {"v1": {"image": "curlimages/curl:8.11.1", "command": ["/bin/sleep", "3650d"], "resources": SMALL}},
    }
    return config


@contextlib.contextmanager
def real_cluster() -> Iterator[tuple[LocalCluster, Path]]:
    """A local cluster with a real node (the toolchain already built), and a directory for the run."""
    with (
        tempfile.TemporaryDirectory(prefix="meshkit-bench-dataplane-") as tmp,
        running_cluster(
            Path(tmp) / "cluster", istio_bin_dir=istio_bin_dir(build=False), node_bin=node_bin_dir(build=False)
        ) as cluster,
    ):
        yield cluster, Path(tmp)


def generated(services: int, runs: int) -> dict[str, Any]:
    with real_cluster() as (cluster, tmp):
        mesh = Mesh(cluster)
        cluster.add_standins({
                f"meshkit.local/standin/svc-{i:03d}:{v}": StandIn(f"svc-{i:03d}", 8080)
                for i in range(services) for v in ("v1", "v2")
            })  # fmt: skip
        (tmp / "project").mkdir()
        stack = new_live_stack(tmp / "project", cluster, "bench")
        target = Target("scale", "svc-000", "http://svc-000:8080/", GENERATED_WEIGHTS,
                            lambda step: stack.use(generated_config(services, GENERATED_WEIGHTS[step])))  # fmt: skip
        target.use("low")
        started = time.monotonic()
        stack.make("up")
        first_up = time.monotonic() - started
        client = mesh.pod_of("scale", "sleep")
        steps = measure(stack, mesh, client, target, runs)
        pods = len(mesh.meshed_pods())
        rejected = mesh.rejected_updates()
    return {
        "services": services, "runs": runs, "proxies": pods, "first_up_s": round(first_up, 1),
        "step_to_traffic": steps, "median": medians(steps), "rejected_updates": rejected,
    }  # fmt: skip


def scenario_a(runs: int) -> dict[str, Any]:
    started = time.monotonic()
    with real_cluster() as (cluster, tmp):
        cluster_seconds = time.monotonic() - started
        mesh = Mesh(cluster)
        (tmp / "project").mkdir()
        stack = new_live_stack(tmp / "project", cluster, "bench")
        for step in ("A0", "A1", "A2", "A3"):
            stack.use_step(step)
            stack.make("up")
        client = mesh.pod_of(NAMESPACE, "sleep")
        steps = measure(stack, mesh, client, Target(NAMESPACE, "nginx", URL, WEIGHTS, stack.use_step), runs)
        if mesh.route_weights(NAMESPACE, client, "nginx") != WEIGHTS["A3"]:
            stack.use_step("A3")
            stack.make("step")
        cost = sidecar_cost(mesh, client)
        load = steady_load(stack, mesh, client)
        rejected = mesh.rejected_updates()
    return {
        "scenario": "A", "runs": runs, "cluster_start_s": round(cluster_seconds, 1),
        "step_to_traffic": steps, "median": medians(steps), "steady_load": load, "sidecar": cost,
        "rejected_updates": rejected,
    }  # fmt: skip


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--services", type=int, default=0, help="a generated stack of N services, not scenario A")
    args = parser.parse_args()
    # A benchmark stopped with SIGTERM still stops its cluster and puts the host back (running_cluster's finally).
    signal.signal(signal.SIGTERM, _interrupted)
    print(json.dumps(generated(args.services, args.runs) if args.services else scenario_a(args.runs)))


if __name__ == "__main__":
    main()
