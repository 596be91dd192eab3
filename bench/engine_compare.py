"""meshkit against a hand-written pulumi-kubernetes program for the same objects, through the real engine.

    .venv/bin/python -m bench.engine_compare --services 1000

Two fresh temporary projects, each with its own state backend, the same stack file and the same stack
name: meshkit's program (``tests/e2e/engine.py``) and ``bench/handwritten.py`` run as a Pulumi program
(``bench/handwritten_program/``), both rendering YAML to ``rendered/<stack>/`` through an explicit
render-mode provider. Both run with ``PULUMI_SKIP_CHECKPOINTS=true``, as the Makefile sets it, and the
command ``make up`` runs for a rendered stack (``pulumi up --yes --skip-preview``). One run of each operation, the two
programs taking turns: the first ``up``, a no-op ``up``, the ``up`` of a one-service weight change.

Reported: the seconds of each, the ratio meshkit / hand-written, what each operation changed (rendered
files, and the engine's count from the stack's history), and whether the two rendered directories hold
the same objects (parsed, compared by apiVersion, kind, namespace and name, then by content) after the
first ``up`` and after the weight change. ``--cap SECONDS`` kills an operation that runs longer; the
operations after it are skipped. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.engine import PulumiProject, new_project, require_toolchain

from .scale import (
    STACK,
    UP,
    changed_files,
    engine_command,
    engine_env,
    expected_objects,
    last_update_changes,
    rendered_files,
    run_capped,
    shown,
    state_bytes,
)
from .stacks import stack_config, stack_file_text, with_weight_change

REPO = Path(__file__).resolve().parent.parent
PROGRAM = REPO / "bench" / "handwritten_program"
PROGRAMS = ("meshkit", "handwritten")
OPERATIONS = {"first_up": "first `up`", "noop_up": "no-op `up`", "weight_up": "one-weight `up`"}


def new_handwritten_project(root: Path, stack: str) -> PulumiProject:
    """The hand-written program in a project of its own, laid out as ``new_project`` lays out meshkit's."""
    require_toolchain()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROGRAM / name, root / name)
    (root / "bench").mkdir()
    (root / "bench" / "__init__.py").write_text("")
    shutil.copy(REPO / "bench" / "handwritten.py", root / "bench" / "handwritten.py")
    (root / "stacks").mkdir()
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / ".pulumi-state").mkdir()
    project = PulumiProject(root, stack)
    project.pulumi("stack", "init")
    return project


ObjectKey = tuple[str, str, str, str]


def rendered_objects(project: PulumiProject) -> dict[ObjectKey, Any]:
    """Every object in the project's render directory, by (apiVersion, kind, namespace, name)."""
    found: dict[ObjectKey, Any] = {}
    for path in sorted((project.root / "rendered" / project.stack).rglob("*.yaml")):
        for document in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not document:
                continue
            metadata = document.get("metadata", {})
            key = (
                str(document.get("apiVersion")),
                str(document.get("kind")),
                str(metadata.get("namespace", "")),
                str(metadata.get("name")),
            )
            found[key] = document
    return found


def differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where two parsed objects differ, as ``path: meshkit … / hand-written …`` lines."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = []
        for key in sorted(ours.keys() | theirs.keys(), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in theirs:
                found.append(f"{where}: only meshkit has it ({json.dumps(ours[key], sort_keys=True)})")
            elif key not in ours:
                found.append(
                    f"{where}: only the hand-written program has it ({json.dumps(theirs[key], sort_keys=True)})"
                )
            else:
                found += differences(ours[key], theirs[key], where)
        return found
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [
            line
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for line in differences(a, b, f"{path}[{i}]")
        ]
    if ours != theirs:
        return [
            f"{path}: meshkit {json.dumps(ours, sort_keys=True)}, hand-written {json.dumps(theirs, sort_keys=True)}"
        ]
    return []


def compare_rendered(ours: PulumiProject, theirs: PulumiProject) -> dict[str, Any]:
    """Whether two render directories hold the same objects, and a few of those that differ if not."""
    mine, other = rendered_objects(ours), rendered_objects(theirs)
    shown_key = "/".join
    different = sorted(key for key in mine.keys() & other.keys() if mine[key] != other[key])
    return {
        "identical": mine == other,
        "objects": {"meshkit": len(mine), "handwritten": len(other)},
        "only_meshkit": [shown_key(k) for k in sorted(mine.keys() - other.keys())[:5]],
        "only_handwritten": [shown_key(k) for k in sorted(other.keys() - mine.keys())[:5]],
        "different": [shown_key(k) for k in different[:5]],
        "different_count": len(different),
        # How the objects differ: the distinct differences over every object that differs, a few of each.
        "differences": sorted({line for key in different for line in differences(mine[key], other[key])})[:5],
    }


def perform(
    project: PulumiProject,
    name: str,
    config: dict[str, Any],
    expected: int | None,
    env: dict[str, str],
    cap: float | None,
    log: Path,
) -> dict[str, Any]:
    project.use_stack_text(stack_file_text(config))
    command = engine_command(*UP)
    before = rendered_files(project)
    outcome = run_capped(command, project.root, env, cap, log)
    after = rendered_files(project)
    changed = changed_files(before, after)
    row: dict[str, Any] = {
        "label": OPERATIONS[name],
        "command": shown(command),
        "status": outcome.status,
        "seconds": outcome.seconds,
        "rendered_objects": len(after),
        "rendered_changed": len(changed),
    }
    if outcome.status == "ok":
        row["changes_as_expected"] = len(changed) == (len(after) if expected is None else expected)
        row["engine_changes"] = last_update_changes(project, env)
        row["state_bytes"] = state_bytes(project)
    elif outcome.status == "failed":
        row["returncode"] = outcome.returncode
        row["output_tail"] = outcome.output_tail
    else:
        row["cap_s"] = cap
    return row


def measure(services: int, cap: float | None) -> dict[str, Any]:
    base = stack_config(services)
    changed = with_weight_change(base, 0)
    operations: list[tuple[str, dict[str, Any], int | None]] = [
        ("first_up", base, None),
        ("noop_up", base, 0),
        ("weight_up", changed, 1),
    ]
    result: dict[str, Any] = {
        "services": services,
        "objects": expected_objects(base),
        "env": {"PULUMI_SKIP_CHECKPOINTS": "true"},
        "cap_s": cap,
        "operations": {program: {} for program in PROGRAMS},
        "ratio": {},
        "identical": {},
    }
    with tempfile.TemporaryDirectory(prefix="meshkit-compare-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        for directory in ("meshkit", "handwritten", "logs"):
            (work / directory).mkdir()
        projects = {
            "meshkit": new_project(work / "meshkit", STACK),
            "handwritten": new_handwritten_project(work / "handwritten", STACK),
        }
        stopped_by = ""
        for name, config, expected in operations:
            for program, project in projects.items():
                if stopped_by:
                    row = {"label": OPERATIONS[name], "status": "skipped", "reason": stopped_by}
                else:
                    env = engine_env(project, skip_checkpoints=True)
                    row = perform(project, name, config, expected, env, cap, work / "logs" / f"{program}-{name}.log")
                    if row["status"] == "exceeded_cap":
                        stopped_by = f"{program} {name} exceeded the {cap:g} s cap"
                    elif row["status"] == "failed":
                        stopped_by = f"{program} {name} failed"
                result["operations"][program][name] = row
            ours, theirs = (result["operations"][p][name].get("seconds") for p in PROGRAMS)
            result["ratio"][name] = ours / theirs if ours and theirs else None
            if name in ("first_up", "weight_up") and not stopped_by:
                result["identical"][name] = compare_rendered(projects["meshkit"], projects["handwritten"])
    # True or False once both comparisons ran; None when an operation stopped them (unless one already differed).
    checks = [check["identical"] for check in result["identical"].values()]
    result["rendered_identical"] = False if False in checks else (True if len(checks) == 2 else None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--cap", type=float, default=None, help="kill an operation after this many seconds")
    args = parser.parse_args()
    print(json.dumps(measure(args.services, args.cap)))


if __name__ == "__main__":
    main()
