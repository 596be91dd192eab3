"""Run every benchmark and write BENCHMARKS.md, bench/results.json and bench/mock_cost.png.

    make bench          # or: .venv/bin/python -m bench.run [--quick]

Each measurement runs in its own process (``python -m bench.<script> …``), the command printed beside
its row so that any number can be reproduced alone. ``--quick`` runs smaller sizes, to try the scripts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PYTHON = ".venv/bin/python"


def run(module: str, *args: str) -> tuple[str, dict[str, Any]]:
    command = [PYTHON, "-m", f"bench.{module}", *args]
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return " ".join(command), json.loads(result.stdout.strip().splitlines()[-1])


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line
    )
    pulumi = subprocess.run([".venv/bin/pulumi", "version"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{memory_kib / 1024 / 1024:.0f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "pulumi": pulumi,
        "commit": commit.strip(),
    }


def plot(mock_rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for variant, style in (("meshkit", "o-"), ("handwritten", "s--")):
        rows = [r for r in mock_rows if r["variant"] == variant]
        sizes = [r["services"] for r in rows]
        time_axis.plot(sizes, [r["median_s"] for r in rows], style, label=variant)
        memory_axis.plot(sizes, [r["peak_rss_mib"] for r in rows], style, label=variant)
    time_axis.set(xlabel="services (× 3 versions)", ylabel="wall time, s (median)", title="Program under mocks")
    memory_axis.set(xlabel="services (× 3 versions)", ylabel="peak RSS, MiB", title="Memory")
    for axis in (time_axis, memory_axis):
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="rewrite BENCHMARKS.md from bench/results.json")
    args = parser.parse_args()
    if args.report_only:
        (REPO / "BENCHMARKS.md").write_text(report(json.loads((BENCH / "results.json").read_text())))
        return
    mock_sizes = [10, 50] if args.quick else [10, 100, 400, 1000]
    engine_sizes = [10] if args.quick else [50, 200]
    offline_size = 100 if args.quick else 1000

    results: dict[str, Any] = {"machine": machine(), "mock": [], "identical": [], "engine": [], "offline": None}
    for size in mock_sizes:
        runs = "5" if size <= 100 else "3"
        for variant in ("meshkit", "handwritten"):
            command, row = run("mock_cost", "--variant", variant, "--services", str(size), "--runs", runs)
            results["mock"].append({**row, "command": command})
        command, row = run("mock_cost", "--check-identical", "--services", str(size))
        results["identical"].append({**row, "command": command})
    for size in engine_sizes:
        command, row = run("engine_cost", "--services", str(size), "--runs", "3")
        results["engine"].append({**row, "command": command})
    command, row = run("offline_cost", "--services", str(offline_size), "--runs", "5")
    results["offline"] = {**row, "command": command}

    (BENCH / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results["mock"], BENCH / "mock_cost.png")
    (REPO / "BENCHMARKS.md").write_text(report(results))
    print("wrote BENCHMARKS.md, bench/results.json, bench/mock_cost.png")


def _row(*cells: object) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {m['date']} on {m['cpu']}, {m['memory']}, {m['os']}; Python {m['python']}, Pulumi {m['pulumi']},",
        f"meshkit at {m['commit']}. Regenerate everything with `make bench`; each row's command reproduces it alone.",
        "Generated stacks: N services × 3 versions (80/10/10 split, one header route, a timeout), 10 namespaces.",
        "",
        "## 1. Program cost under Pulumi mocks: meshkit against hand-written pulumi-kubernetes",
        "",
        "![time and memory against N](bench/mock_cost.png)",
        "",
        _row(
            "N",
            "meshkit s",
            "hand-written s",
            "time ratio",
            "meshkit MiB",
            "hand-written MiB",
            "RSS ratio",
            "registrations",
            "command",
        ),
        _row(*["---"] * 9),
    ]
    by_size: dict[int, dict[str, Any]] = {}
    for row in results["mock"]:
        by_size.setdefault(row["services"], {})[row["variant"]] = row
    for size, pair in sorted(by_size.items()):
        ours, theirs = pair["meshkit"], pair["handwritten"]
        lines.append(
            _row(
                size,
                f"{ours['median_s']:.2f}",
                f"{theirs['median_s']:.2f}",
                f"{ours['median_s'] / theirs['median_s']:.2f}×",
                f"{ours['peak_rss_mib']:.0f}",
                f"{theirs['peak_rss_mib']:.0f}",
                f"{ours['peak_rss_mib'] / theirs['peak_rss_mib']:.2f}×",
                f"{ours['registrations']} / {theirs['registrations']}",
                f"`{ours['command']}` (and `--variant handwritten`)",
            )
        )
    lines += ["", "Same manifests registered by both programs:", ""]
    lines += [
        f"- N = {r['services']}: {r['objects']} objects, identical: **{r['identical']}** (`{r['command']}`)"
        for r in results["identical"]
    ]
    lines += [
        "",
        "## 2. Real engine, render mode: one weight change against a no-op `up`",
        "",
        _row(
            "N",
            "objects",
            "first `up` s",
            "`preview` s",
            "`up` s",
            "no-op `up` s",
            "up / no-op",
            "resources changed per step",
            "command",
        ),
        _row(*["---"] * 9),
    ]
    for r in results["engine"]:
        med = r["median_s"]
        lines.append(
            _row(
                r["services"],
                r["rendered_objects"],
                f"{r['first_up_s']:.1f}",
                f"{med['preview']:.1f}",
                f"{med['up']:.1f}",
                f"{med['noop_up']:.1f}",
                f"{r['up_over_noop']:.2f}×",
                r["changed_resources_per_step"],
                f"`{r['command']}`",
            )
        )
    o = results["offline"]
    lines += [
        "",
        f"## 3. Offline commands on N = {o['services']}",
        "",
        "| command | median s |",
        "|---|---|",
        f"| `meshkit check` (process, interpreter start included) | {o['check_s']:.2f} |",
        f"| the same check in-process (YAML load + validation + analysis) | {o['check_in_process_s']:.2f} |",
        f"| `meshkit plan --base-file` | {o['plan_s']:.2f} |",
        f"| `meshkit render -o DIR` | {o['render_s']:.2f} |",
        f"| `meshkit --help` (interpreter start and imports alone) | {o['startup_s']:.2f} |",
        "",
        f"Command: `{o['command']}`",
        "",
    ]
    return "\n".join(lines) + "\n" + (BENCH / "FINDINGS.md").read_text()


if __name__ == "__main__":
    sys.exit(main())
