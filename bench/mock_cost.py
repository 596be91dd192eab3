"""Program cost under Pulumi mocks: meshkit against the hand-written program, one process per measurement.

    .venv/bin/python -m bench.mock_cost --variant meshkit --services 400 --runs 5
    .venv/bin/python -m bench.mock_cost --check-identical --services 100

Prints one JSON object. Peak RSS is the process's own maximum (``ru_maxrss``), imports included; the
wall time is the median of ``--runs`` runs of the whole program (for meshkit: validation, analysis,
rendering and registration) until every registration has reached the mock engine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

from meshkit.mesh.checks import validate_stack
from meshkit.pulumi.program import build_mesh
from tests.pulumi_mocks import Recorder, pulumi_mocks

from . import handwritten
from .stacks import stack_config


def program(variant: str, config: dict[str, Any]) -> Callable[[], None]:
    if variant == "meshkit":
        return lambda: build_mesh(validate_stack(config)) and None
    return lambda: handwritten.register(config)


def run_once(variant: str, config: dict[str, Any]) -> tuple[float, Recorder]:
    with pulumi_mocks() as run:
        start = time.perf_counter()
        recorder = run(program(variant, config))
        return time.perf_counter() - start, recorder


def manifests(recorder: Recorder) -> list[str]:
    """What reached the engine, as comparable text: every Kubernetes object's inputs, sorted."""
    objects = [
        {k: v for k, v in r.inputs.items() if not k.startswith("__")}
        for r in recorder.registrations
        if not r.type.startswith("meshkit:")
    ]
    return sorted(json.dumps(o, sort_keys=True) for o in objects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=["meshkit", "handwritten"], default="meshkit")
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--check-identical", action="store_true")
    args = parser.parse_args()
    config = stack_config(args.services)
    if args.check_identical:
        ours, theirs = (manifests(run_once(v, config)[1]) for v in ("meshkit", "handwritten"))
        print(json.dumps({"services": args.services, "objects": len(ours), "identical": ours == theirs}))
        return
    times = []
    registrations = 0
    for _ in range(args.runs):
        seconds, recorder = run_once(args.variant, config)
        times.append(seconds)
        registrations = len(recorder.registrations)
    print(
        json.dumps(
            {
                "variant": args.variant,
                "services": args.services,
                "runs": args.runs,
                "median_s": statistics.median(times),
                "times_s": times,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "registrations": registrations,
            }
        )
    )


if __name__ == "__main__":
    main()
