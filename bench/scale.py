"""The real engine at scale, in render mode: `up` before and after the file backend stopped checkpointing.

    .venv/bin/python -m bench.scale --services 1000 --variant after
    .venv/bin/python -m bench.scale --services 1000 --variant before --cap 900

In a fresh temporary project (``tests/e2e/engine.py``: its own state backend, the repository's toolchain)
with the generated stack of ``bench/stacks.py``, one run of each operation, in this order:

1. ``first_up``: the first ``up``, which creates every object;
2. ``noop_up``: ``up`` again, nothing changed;
3. ``weight_up``: ``up`` of a one-service weight change (svc-0000's canary 10% → 20%);
4. ``meshkit_up`` (variant ``after`` only): ``meshkit up STACK_FILE``, the targeted ``up``, of another
   one-service weight change (svc-0001's canary), on top of the third.

Each ``up`` is the command ``make up`` runs for a rendered stack. Variant ``before`` is how it ran before
the scaling work: the engine's defaults (``PULUMI_SKIP_CHECKPOINTS`` unset: the file backend rewrites the
whole state after every resource operation) and ``pulumi up --yes --skip-preview=false`` (a preview, then
the update). ``after`` is how it runs now: ``PULUMI_SKIP_CHECKPOINTS=true`` (the state is written once per
update) and ``pulumi up --yes --skip-preview`` (a rendered stack's preview checks nothing the program has
not, see the Makefile).

Each operation is checked: the rendered files it changed (added, rewritten or removed) are counted against
what it should change (every object, none, exactly one), and the engine's own count of resource changes
is read back from the stack's history (``pulumi stack history``). With ``--cap SECONDS``, an operation
still running after that long is killed (with everything it started) and reported as exceeding the cap;
the later operations are then reported as skipped. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshkit.mesh.checks import validate_stack
from meshkit.mesh.render import render_stack
from tests.e2e.engine import VENV_BIN, PulumiProject, new_project

from .stacks import stack_config, stack_file_text, with_weight_change

STACK = "bench"
# `make up`'s command for a rendered stack (Makefile), less the stack options every command gets (see
# `engine_command`): since the state is written once per update, without the preview phase; before, with it.
UP = ("up", "--yes", "--skip-preview")
UP_BEFORE = ("up", "--yes", "--skip-preview=false")
VARIANTS = ("before", "after")
OPERATIONS = {
    "first_up": "first `up`",
    "noop_up": "no-op `up`",
    "weight_up": "one-weight `up`",
    "meshkit_up": "one-weight `meshkit up`",
}
MESHKIT = VENV_BIN / "meshkit"
OUTPUT_TAIL = 3000
"""Characters of a failed command's output kept in the report."""


# --- Running a command, with a cap --------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str
    """``ok``, ``failed`` (non-zero exit) or ``exceeded_cap`` (killed)."""
    seconds: float | None
    returncode: int | None
    output_tail: str


def _children(pid: int) -> list[int]:
    """The direct children of ``pid``, from /proc (every thread's list)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, parents first."""
    order, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        if current in order:
            continue
        order.append(current)
        queue += _children(current)
    return order


def _signal(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` and every process it started, plugins included: Pulumi starts each plugin (language
    host, program, provider) in a process group of its own, so the group of ``process`` is not enough. The
    tree is stopped first, so that nothing starts another process while it is being collected."""
    stopped: list[int] = []
    while True:
        tree = [pid for pid in _descendants(process.pid) if pid not in stopped]
        if not tree:
            break
        _signal(tree, signal.SIGSTOP)
        stopped += tree
    _signal(stopped, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # anything of its own group that had left the tree
    process.wait()


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace")
    return text[-OUTPUT_TAIL:]


def run_capped(command: Sequence[str], cwd: Path, env: dict[str, str], cap: float | None, log: Path) -> Outcome:
    """Run ``command`` to completion, or kill it after ``cap`` seconds; its output goes to ``log`` (a file,
    not a pipe: a pipe nobody reads would block a command as talkative as `pulumi up` on 7000 objects)."""
    with log.open("wb") as output:
        start = time.perf_counter()
        process = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            returncode = process.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            kill_tree(process)
            return Outcome("exceeded_cap", None, None, _tail(log))
        except BaseException:  # interrupted: leave nothing running
            kill_tree(process)
            raise
        seconds = time.perf_counter() - start
    return Outcome("ok" if returncode == 0 else "failed", seconds, returncode, "" if returncode == 0 else _tail(log))


# --- The project and what an operation did -----------------------------------------------------------------


def engine_env(project: PulumiProject, skip_checkpoints: bool) -> dict[str, str]:
    """The project's environment, with ``PULUMI_SKIP_CHECKPOINTS`` set as the variant says, whatever the
    caller's environment holds (``make bench`` exports the Makefile's ``true``)."""
    env = dict(project.env)
    env.pop("PULUMI_SKIP_CHECKPOINTS", None)
    if skip_checkpoints:
        env["PULUMI_SKIP_CHECKPOINTS"] = "true"
    return env


def engine_command(*args: str) -> list[str]:
    return [str(VENV_BIN / "pulumi"), *args, "--stack", STACK, "--non-interactive"]


def shown(command: Sequence[str]) -> str:
    """A command as a reader types it in the project's directory."""
    return " ".join(Path(part).name if part.startswith(str(VENV_BIN)) else part for part in command)


def rendered_files(project: PulumiProject) -> dict[str, str]:
    """Every file the provider rendered, by path, with a digest of its content."""
    root = project.root / "rendered" / project.stack
    if not root.is_dir():
        return {}
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The files added, rewritten or removed between two :func:`rendered_files`."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def state_file(project: PulumiProject) -> Path | None:
    """The stack's checkpoint in the project's file backend (plain or compressed)."""
    stacks = project.root / ".pulumi-state" / ".pulumi" / "stacks"
    for suffix in ("", ".gz", ".zst"):
        for path in sorted(stacks.rglob(f"{project.stack}.json{suffix}")):
            return path
    return None


def state_bytes(project: PulumiProject) -> int | None:
    path = state_file(project)
    return path.stat().st_size if path is not None else None


def last_update_changes(project: PulumiProject, env: dict[str, str]) -> dict[str, int] | None:
    """The engine's count of resource operations in the stack's last update, by kind (``same``,
    ``create``, ``update``…), from ``pulumi stack history``; None when it cannot be read."""
    result = subprocess.run(
        engine_command("stack", "history", "--output", "json", "--page-size", "1"),
        cwd=project.root, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    try:
        entries = json.loads(result.stdout)
        changes = entries[0].get("resourceChanges") or {}
        return {str(kind): int(count) for kind, count in sorted(changes.items())}
    except (ValueError, IndexError, KeyError, TypeError, AttributeError):
        return None


def expected_objects(config: dict[str, Any]) -> int:
    """The number of objects meshkit renders for ``config`` (meshkit's renderer, without the engine)."""
    return len(render_stack(validate_stack(config)))


def meshkit_up_available() -> tuple[bool, str]:
    """Whether this checkout's ``meshkit`` has the ``up`` command, and if not, why."""
    try:
        result = subprocess.run(
            [str(MESHKIT), "up", "--help"], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"`meshkit up --help` did not run: {error}"
    if result.returncode != 0:
        # Without the frame typer draws around its errors.
        text = "".join(c for c in result.stderr or result.stdout if not "\u2500" <= c <= "\u257f")
        message = " ".join(text.split())[-300:]
        return False, f"`meshkit up --help` exited {result.returncode}: {message}"
    return True, ""


@dataclass
class Operation:
    name: str
    config: dict[str, Any]
    command: list[str]
    expected_changes: int | None
    """Rendered files the operation must change: None for "every object"."""


def perform(
    project: PulumiProject, operation: Operation, env: dict[str, str], cap: float | None, logs: Path
) -> dict[str, Any]:
    """Write the operation's stack file, run it (timed, capped) and check what it changed."""
    project.use_stack_text(stack_file_text(operation.config))
    files_before = rendered_files(project)
    outcome = run_capped(operation.command, project.root, env, cap, logs / f"{operation.name}.log")
    files_after = rendered_files(project)
    changed = changed_files(files_before, files_after)
    row: dict[str, Any] = {
        "label": OPERATIONS[operation.name],
        "command": shown(operation.command),
        "status": outcome.status,
        "seconds": outcome.seconds,
        "rendered_objects": len(files_after),
        "rendered_changed": len(changed),
        "rendered_changed_files": changed[:5],
    }
    if operation.name == "meshkit_up":
        # What `meshkit up` said it would run: a targeted `up` (at what), or the full one and why.
        said = (logs / f"{operation.name}.log").read_text(errors="replace").splitlines()
        row["meshkit_said"] = [line.strip() for line in said if line.startswith("meshkit up:")][:5]
    if outcome.status == "exceeded_cap":
        row["cap_s"] = cap
        return row
    if outcome.status == "failed":
        row["returncode"] = outcome.returncode
        row["output_tail"] = outcome.output_tail
        return row
    expected = len(files_after) if operation.expected_changes is None else operation.expected_changes
    row["expected_changed"] = expected
    row["changes_as_expected"] = len(changed) == expected
    row["engine_changes"] = last_update_changes(project, env)
    row["state_bytes"] = state_bytes(project)
    return row


def measure(services: int, variant: str, cap: float | None, keep: Path | None = None) -> dict[str, Any]:
    if services < 2:
        raise SystemExit("--services must be at least 2 (two services get one weight change each)")
    base = stack_config(services)
    first_change = with_weight_change(base, 0)
    second_change = with_weight_change(first_change, 1)
    skip_checkpoints = variant == "after"
    result: dict[str, Any] = {
        "services": services,
        "variant": variant,
        "skip_checkpoints": skip_checkpoints,
        "env": {"PULUMI_SKIP_CHECKPOINTS": "true"} if skip_checkpoints else {},
        "cap_s": cap,
        "objects": expected_objects(base),
        "operations": {},
    }
    with tempfile.TemporaryDirectory(prefix="meshkit-scale-", ignore_cleanup_errors=True) as tmp:
        work = keep.resolve() if keep is not None else Path(tmp)
        (work / "project").mkdir(parents=True)
        (work / "logs").mkdir()
        project = new_project(work / "project", STACK)
        env = engine_env(project, skip_checkpoints)
        up = engine_command(*(UP if variant == "after" else UP_BEFORE))
        meshkit_up = [str(MESHKIT), "up", str(project.stack_file.relative_to(project.root))]
        operations = [
            Operation("first_up", base, up, None),
            Operation("noop_up", base, up, 0),
            Operation("weight_up", first_change, up, 1),
        ]
        if variant == "after":
            operations.append(Operation("meshkit_up", second_change, meshkit_up, 1))
        stopped_by = ""
        for operation in operations:
            if stopped_by:
                result["operations"][operation.name] = {
                    "label": OPERATIONS[operation.name],
                    "command": shown(operation.command),
                    "status": "skipped",
                    "reason": stopped_by,
                }
                continue
            if operation.name == "meshkit_up":
                available, why = meshkit_up_available()
                if not available:
                    result["operations"][operation.name] = {
                        "label": OPERATIONS[operation.name],
                        "command": shown(operation.command),
                        "status": "unavailable",
                        "reason": why,
                    }
                    continue
            row = perform(project, operation, env, cap, work / "logs")
            result["operations"][operation.name] = row
            if row["status"] == "exceeded_cap":
                stopped_by = f"{operation.name} exceeded the {cap:g} s cap"
            elif row["status"] == "failed":
                stopped_by = f"{operation.name} failed"
        first = result["operations"]["first_up"]
        result["first_up_s_per_object"] = first["seconds"] / result["objects"] if first["seconds"] else None
        result["state_bytes"] = state_bytes(project)
        if keep is not None:
            result["kept"] = str(work)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--variant", choices=VARIANTS, default="after")
    parser.add_argument("--cap", type=float, default=None, help="kill an operation after this many seconds")
    parser.add_argument("--keep", type=Path, default=None, help="work in this (new) directory and keep it")
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {args.keep}: already exists")
    print(json.dumps(measure(args.services, args.variant, args.cap, args.keep)))


if __name__ == "__main__":
    main()
