"""`meshkit up`: run a rollout step through the Pulumi CLI, targeted at what the step touches.

:mod:`meshkit.step_scope` decides what the step is; this module reads what it needs (the stack file, the
last update's result, the deployed outputs) and runs ``pulumi up``: targeted, or the full one when the step
cannot be targeted, saying why. Either way the engine performs the update, with the program's checks and
make-before-break order; the targeted one only registers and checks fewer objects.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analysis import analyze_stack
from .config import read_stack_file_keys, stack_file
from .errors import MeshkitError
from .sources import (
    cluster_config,
    last_update_succeeded,
    project_name,
    project_root,
    stack_cluster,
    stack_outputs,
)
from .step_scope import SCOPE_FILE_ENV, FullUp, TargetedStep, plan_step, scope_file_text

PULUMI_MISSING = "the pulumi CLI is not on PATH (run `make bootstrap`, then use .venv/bin)"


@dataclass(frozen=True)
class StepCommand:
    """The ``pulumi up`` to run, and what the user is told about it."""

    argv: list[str]
    explanation: list[str]
    scope_text: str | None = None
    """The components the program registers (a targeted step), written to the file SCOPE_FILE_ENV names."""
    refresh_argv: list[str] | None = None
    """A ``pulumi refresh`` to run first (a targeted step on a stack with a cluster)."""


def step_command(path: Path, stack: str, full: bool = False) -> StepCommand:
    """What `meshkit up` runs for the stack file at ``path`` (of stack ``stack``)."""
    root = project_root(path.resolve().parent)
    config, _ = analyze_stack(read_stack_file_keys(path), str(path))
    common = ["--yes", "--stack", stack, "--non-interactive"]
    if path.resolve() != stack_file(stack, root).resolve():
        common += ["--config-file", str(path)]
    argv = ["pulumi", "up", *common]
    with_cluster = stack_cluster(path)
    if with_cluster:
        # As `make up`: the provider's dry runs against the API server refuse a bad object before anything
        # changes.
        argv.append("--skip-preview=false")
    else:
        argv.append("--skip-preview")  # a rendered stack's preview checks nothing the program has not
    # As `make up`: hand edits are seen (and undone), creates a killed update left pending are dropped. Not
    # `up --refresh`: with --target, the engine's refresh does not load the provider the targeted objects
    # were made with ("unknown provider"), so the refresh is a command of its own, before the update.
    refresh = ["pulumi", "refresh", *common, "--skip-preview", "--clear-pending-creates"] if with_cluster else None
    if full:
        return StepCommand(argv, ["the full `up` (--full)"], refresh_argv=refresh)
    # A failed update may have recorded fingerprints of objects it did not deploy (the engine saves the
    # program's outputs with the state it reached).
    if not last_update_succeeded(stack, root):
        return StepCommand(argv, ["the full `up`: the stack's last update did not succeed (or there is none)"],
                           refresh_argv=refresh)  # fmt: skip
    deployed = stack_outputs(stack)
    if not isinstance(deployed, dict):
        return StepCommand(argv, ["the full `up`: the stack's outputs are not meshkit's"], refresh_argv=refresh)
    plan = plan_step(config, cluster_config(path), deployed, stack, project_name(root))
    if isinstance(plan, FullUp):
        return StepCommand(argv, [f"the full `up`: {plan.reason}"], refresh_argv=refresh)
    return _targeted(argv, plan, deployed, refresh)


def _targeted(argv: list[str], plan: TargetedStep, deployed: dict[str, Any], refresh: list[str] | None) -> StepCommand:
    if not plan.changed_units:
        return StepCommand([], ["nothing changed since the last deployment: nothing to do"])
    explanation = [
        f"a targeted `up`: {len(plan.changed_units)} changed ({', '.join(plan.changed_units)})",
        f"the engine targets {len(plan.targets)} component(s) and what depends on them; "
        f"the program registers {len(plan.registered)} component(s)",
    ]
    targets = [f"--target={urn}" for urn in plan.targets]
    scope = scope_file_text(plan.registered, deployed)
    return StepCommand([*argv, "--target-dependents", *targets], explanation, scope, refresh)


def run_step(command: StepCommand, cwd: Path, say: Callable[[str], None]) -> int:
    """Run ``command`` in the project at ``cwd``, the engine's output going to the terminal."""
    for line in command.explanation:
        say(f"meshkit up: {line}")
    if not command.argv:
        return 0
    if command.refresh_argv:
        refreshed = _run_pulumi(command.refresh_argv, cwd, _environment({}))
        if refreshed != 0:
            return refreshed
    with tempfile.TemporaryDirectory(prefix="meshkit-step-") as tmp:
        env_update = {}
        if command.scope_text is not None:
            scope = Path(tmp) / "scope.json"
            scope.write_text(command.scope_text, encoding="utf-8")
            env_update[SCOPE_FILE_ENV] = str(scope)
        return _run_pulumi(command.argv, cwd, _environment(env_update))


def _run_pulumi(argv: list[str], cwd: Path, env: dict[str, str]) -> int:
    try:
        return subprocess.run(argv, cwd=cwd, env=env, check=False).returncode
    except FileNotFoundError:
        raise MeshkitError(PULUMI_MISSING) from None


def _environment(update: dict[str, str]) -> dict[str, str]:
    # A scope left in the caller's environment must never reach an untargeted update.
    environment = {key: value for key, value in os.environ.items() if key != SCOPE_FILE_ENV}
    # A targeted update still loads, copies and writes back every resource of the state: at 1000 services
    # the engine spends a third of its time collecting garbage. Less often: 10% faster, for 0.7 GiB more
    # memory at that size (BENCHMARKS.md). A GOGC of the caller's own wins.
    environment.setdefault("GOGC", "400")
    return {**environment, **update}
