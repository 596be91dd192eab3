"""The main job against a real API server: `make up` and `make step` on the local cluster, beside a
hand-written pulumi-kubernetes program deploying the same objects to the same cluster.

    .venv/bin/python -m bench.live --services 50
    .venv/bin/python -m bench.live --services 200 --cap 900

One local cluster (``toolchain/cluster.py``, pods simulated by kwok: what is measured is the engine, the
provider and the control plane, not containers starting) for each run. On it, two projects with their own
state, both with the generated stack of ``bench/stacks.py`` and the Makefile's engine settings:

* the hand-written program (``bench/handwritten_program/``, the same objects in namespaces of its own),
  run as its users run it: ``pulumi up --yes`` (the engine's preview, then the update). First;
* meshkit, run as the README says: ``make up`` and ``make step`` of this repository's Makefile.

Operations, one run each, in this order: the first ``up``; a no-op ``up``; the ``up`` of a one-service weight
change (svc-0000's canary 10% → 20%); for meshkit also ``make step`` of another one-service change (svc-0001)
and a no-op ``make step``. Each is checked against the engine's own count of what it changed (``pulumi stack
history``: every object created by the first, none by a no-op, exactly one updated by a weight change).
``--parallel`` and ``--throttled`` measure the settings this repository changed (the engine's parallelism,
the controller manager's client limits) by putting back the old ones. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import toolchain.cluster
from tests.e2e.engine import REPO, PulumiProject, new_project
from toolchain.cluster import LocalCluster, running_cluster, stack_file_for_cluster

from .engine_compare import new_handwritten_project
from .scale import STACK, expected_objects, last_update_changes, run_capped, shown
from .stacks import stack_config, stack_file_text, with_weight_change

MAKE = ("make", "-f", str(REPO / "Makefile"), "-o", "bootstrap")
HANDWRITTEN_UP = ("pulumi", "up", "--yes", "--stack", STACK, "--non-interactive")


def in_namespaces_of_its_own(config: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The same stack in namespaces ``<prefix><name>``: two programs on one cluster must not share objects."""
    renamed = json.loads(json.dumps(config))
    renamed["namespaces"] = {f"{prefix}{name}": spec for name, spec in config["namespaces"].items()}
    for service in renamed["services"].values():
        service["namespace"] = prefix + service["namespace"]
    return renamed


def _use(project: PulumiProject, cluster: LocalCluster, config: dict[str, Any]) -> None:
    project.use_stack_text(stack_file_for_cluster(stack_file_text(config), cluster.kubeconfig, "bench stack"))


def _expected(operation: str, objects: int) -> Callable[[dict[str, int] | None], bool]:
    """What the engine must report for ``operation`` (no update at all for a no-op `make step`)."""
    if operation == "first_up":
        return lambda changes: bool(changes) and changes.get("create", 0) >= objects
    if operation.startswith("noop"):
        return lambda changes: not changes or set(changes) <= {"same"}
    return lambda changes: bool(changes) and changes.get("update") == 1 and "create" not in changes


def measure_program(
    name: str,
    project: PulumiProject,
    cluster: LocalCluster,
    config: dict[str, Any],
    operations: list[tuple[str, list[str], dict[str, Any]]],
    env: dict[str, str],
    cap: float | None,
) -> dict[str, Any]:
    """Run ``operations`` (name, command, stack config) in ``project``, each checked, until one fails."""
    results: dict[str, Any] = {}
    objects = expected_objects(config)
    for operation, command, operation_config in operations:
        _use(project, cluster, operation_config)
        log = project.root / f"{operation}.log"
        before = last_update_changes(project, env) if operation.startswith("noop_step") else None
        outcome = run_capped(command, project.root, env, cap, log)
        changes = last_update_changes(project, env)
        if operation.startswith("noop_step") and changes == before:
            changes = None  # `make step` ran no update: the history's last entry is the previous one's
        results[operation] = {
            "command": shown(command), "status": outcome.status,
            "seconds": round(outcome.seconds, 2) if outcome.seconds is not None else None,
            "engine_changes": changes, "as_expected": outcome.status == "ok" and _expected(operation, objects)(changes),
            "output_tail": outcome.output_tail,
        }  # fmt: skip
        seconds = outcome.seconds or 0
        print(f"[bench.live] {name} {operation}: {outcome.status} {seconds:.1f} s {changes}", file=sys.stderr)
        if outcome.status != "ok":
            break
    return results


def measure(services: int, cap: float | None, parallel: str, throttled: bool) -> dict[str, Any]:
    config = stack_config(services)
    weight = with_weight_change(config, 0)
    stepped = with_weight_change(weight, 1)
    if throttled:  # the controllers' client limits as upstream sets them
        toolchain.cluster.CLIENT_THROUGHPUT = ()
        toolchain.cluster.CONTROLLER_THROUGHPUT = ()
    with tempfile.TemporaryDirectory(prefix="meshkit-bench-live-") as tmp:
        started = time.monotonic()
        with running_cluster(Path(tmp) / "cluster") as cluster:
            cluster_seconds = time.monotonic() - started
            kubectl_dir = str(cluster.state()["bin"])
            (Path(tmp) / "handwritten").mkdir()
            hand_project = new_handwritten_project(Path(tmp) / "handwritten", STACK)
            hand_env = {**hand_project.env, "PULUMI_SKIP_CHECKPOINTS": "true", "PULUMI_PARALLEL": parallel}
            hand_configs = [in_namespaces_of_its_own(c, "hand-") for c in (config, config, weight)]
            handwritten = measure_program(
                "handwritten", hand_project, cluster, hand_configs[0],
                [(op, [*HANDWRITTEN_UP], c) for op, c in zip(("first_up", "noop_up", "weight_up"), hand_configs,
                                                                strict=True)],
                hand_env, cap,
            )  # fmt: skip
            (Path(tmp) / "meshkit").mkdir()
            project = new_project(Path(tmp) / "meshkit", STACK)
            env = {**project.env, "PATH": f"{kubectl_dir}:{project.env['PATH']}", "PULUMI_PARALLEL": parallel}
            up, step = [*MAKE, "up", f"STACK={STACK}"], [*MAKE, "step", f"STACK={STACK}"]
            meshkit = measure_program(
                "meshkit", project, cluster, config,
                [("first_up", up, config), ("noop_up", up, config), ("weight_up", up, weight),
                 ("weight_step", step, stepped), ("noop_step", step, stepped)],
                env, cap,
            )  # fmt: skip
    return {
        "services": services, "objects": expected_objects(config), "parallel": int(parallel), "throttled": throttled,
        "cluster_start_s": round(cluster_seconds, 1), "meshkit": meshkit, "handwritten": handwritten,
    }  # fmt: skip


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--cap", type=float, default=None, help="kill an operation after this many seconds")
    parser.add_argument("--parallel", default="64", help="PULUMI_PARALLEL (the Makefile's 64; the engine's own: 8)")
    parser.add_argument("--throttled", action="store_true", help="the controller manager's upstream client limits")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)  # the cluster is stopped on the way out
    print(json.dumps(measure(args.services, args.cap, args.parallel, args.throttled), indent=1))


if __name__ == "__main__":
    main()
