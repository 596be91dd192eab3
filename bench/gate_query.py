"""How long the canary gate takes to read its evidence: ``meshkit.metrics.gate`` (one instant query per
number: requests, 5xx and the latency percentile, for the canary and the stable version) against a real
Prometheus on loopback holding 10 minutes of recorded series, and the whole ``meshkit step --promote``
(interpreter start, reading the stack file, the gate, the refusal), for each metrics setup.

    .venv/bin/python -m bench.gate_query [--repeat 50]     # prints one JSON object
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

from meshkit.mesh.checks import parse_stack_file_text
from meshkit.metrics.gate import gate
from tests.recorded_prometheus import recorded_prometheus
from tests.test_metrics_gate import FAILING, stack_text

REPO = Path(__file__).resolve().parent.parent


def measure(setup: str, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, recorded_prometheus(Path(tmp), FAILING, setup) as server:
        config = parse_stack_file_text(stack_text(server.address, setup), "bench")
        gate(config, "nginx", "v2", ["v1"])  # warm: Prometheus's first query loads the block's index
        seconds = []
        for _ in range(repeat):
            started = time.perf_counter()
            verdict = gate(config, "nginx", "v2", ["v1"])
            seconds.append(time.perf_counter() - started)
        assert not verdict.passed
        path = Path(tmp) / "Pulumi.bench.yaml"
        path.write_text(stack_text(server.address, setup))
        command = [str(REPO / ".venv" / "bin" / "meshkit"), "step", str(path), "nginx", "--promote"]
        cli = []
        for _ in range(5):
            started = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            cli.append(time.perf_counter() - started)
            assert result.returncode == 1 and "MK905" in result.stderr, result.stderr
    return {
        "setup": setup,
        "queries_per_gate": 6,
        "gate_ms_median": round(statistics.median(seconds) * 1000, 1),
        "gate_ms_max": round(max(seconds) * 1000, 1),
        "step_promote_refused_s_median": round(statistics.median(cli), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    json.dump({"gate": [measure(setup, args.repeat) for setup in ("envoy", "istio")],
               "load": {version: vars(load) for version, load in FAILING.items()}}, sys.stdout, indent=1)  # fmt: skip
    print()


if __name__ == "__main__":
    main()
