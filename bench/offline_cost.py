"""The offline commands on a large stack: ``meshkit check``, ``plan`` and ``render`` as a CI job runs them.

    .venv/bin/python -m bench.offline_cost --services 1000 --runs 5

Each command runs as its own process (interpreter start and imports included, as in CI), median of
``--runs``; ``check_in_process_s`` is the same check without the process start. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from meshkit.config.stack_file import read_stack_file_keys
from meshkit.mesh.checks import analyze_stack, load_stack_file
from meshkit.rollout.summary import stack_summary

from .stacks import stack_config, with_weight_change, write_stack_file


def _median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(services: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        stack_file = write_stack_file(Path(tmp) / "Pulumi.bench.yaml", with_weight_change(stack_config(services)))
        outputs = Path(tmp) / "outputs.json"
        outputs.write_text(
            json.dumps(
                stack_summary(load_stack_file(write_stack_file(Path(tmp) / "base.yaml", stack_config(services))))
            )
        )
        meshkit = [sys.executable, "-m", "meshkit"]
        in_process = []
        for _ in range(runs):
            start = time.perf_counter()
            analyze_stack(read_stack_file_keys(stack_file), str(stack_file))
            in_process.append(time.perf_counter() - start)
        return {
            "services": services,
            "runs": runs,
            "check_s": _median_seconds([*meshkit, "check", str(stack_file)], runs),
            "check_in_process_s": statistics.median(in_process),
            "plan_s": _median_seconds([*meshkit, "plan", str(stack_file), "--base-file", str(outputs)], runs),
            "render_s": _median_seconds([*meshkit, "render", str(stack_file), "-o", str(Path(tmp) / "out")], runs),
            "startup_s": _median_seconds([*meshkit, "--help"], runs),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.services, args.runs)))


if __name__ == "__main__":
    main()
