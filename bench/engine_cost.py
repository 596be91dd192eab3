"""The real engine in render mode: a one-service weight change against a no-op ``up`` of the same stack.

    .venv/bin/python -m bench.engine_cost --services 50 --runs 3

Uses the project's toolchain (``make bootstrap``) in an isolated temporary project and state backend.
For each run: ``preview`` of the change, ``up`` of the change, a no-op ``up``, then the change is
reverted with another ``up`` (not timed) so the next run starts from the same state. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.engine import PulumiProject, new_project

from .stacks import stack_config, stack_file_text, with_weight_change


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def measure(services: int, runs: int) -> dict[str, Any]:
    base = stack_config(services)
    changed = with_weight_change(base)
    with tempfile.TemporaryDirectory() as tmp:
        project: PulumiProject = new_project(Path(tmp), "bench")

        def use(config: dict[str, Any]) -> None:
            project.use_stack_text(stack_file_text(config))

        use(base)
        first_up, _ = _timed(project.up)
        timings: dict[str, list[float]] = {"preview": [], "up": [], "noop_up": []}
        changed_resources: list[int] = []
        for _ in range(runs):
            use(changed)
            seconds, plan = _timed(project.preview)
            timings["preview"].append(seconds)
            changed_resources.append(len(plan))  # preview() leaves out unchanged resources
            timings["up"].append(_timed(project.up)[0])
            timings["noop_up"].append(_timed(project.up)[0])
            use(base)
            project.up()
        resources = sum(1 for _ in (project.root / "rendered" / project.stack).rglob("*.yaml"))
    medians = {key: statistics.median(values) for key, values in timings.items()}
    return {
        "services": services,
        "rendered_objects": resources,
        "runs": runs,
        "first_up_s": first_up,
        "median_s": medians,
        "times_s": timings,
        "changed_resources_per_step": sorted(set(changed_resources)),
        "up_over_noop": medians["up"] / medians["noop_up"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.services, args.runs)))


if __name__ == "__main__":
    main()
