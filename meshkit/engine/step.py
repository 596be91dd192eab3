"""`meshkit up`: run a rollout step through the Pulumi CLI, targeted at what the step touches.

:mod:`meshkit.rollout.step_scope` decides what the step is; this module reads what it needs (the stack file, the
last update's result, the deployed outputs and, on a cluster, which objects were changed there since:
:mod:`meshkit.engine.refresh_scope`), refreshes those, has the API server dry-run what the step can change, and
runs ``pulumi up``: targeted, or the full one when the step cannot be targeted, saying why. Either way the
engine performs the update, with the program's checks and make-before-break order; the targeted one only
registers and checks fewer objects.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshkit.config.stack import StackConfig
from meshkit.config.stack_file import read_stack_file_keys, stack_file
from meshkit.engine.refresh_scope import FullRefresh, ObjectRef, changed_objects, component_of, deployed_objects
from meshkit.engine.sources import (
    cluster_config,
    last_update_succeeded,
    live_objects,
    project_name,
    project_root,
    server_dry_run,
    stack_cluster,
    stack_export,
    stack_outputs,
)
from meshkit.errors import MeshkitError
from meshkit.mesh.checks import analyze_stack
from meshkit.mesh.manifest import Manifest
from meshkit.mesh.order import Component
from meshkit.mesh.render import render_stack, unit_manifests
from meshkit.rollout.step_scope import (
    SCOPE_FILE_ENV,
    FullUp,
    TargetedStep,
    plan_step,
    scope_file_text,
)

PULUMI_MISSING = "the pulumi CLI is not on PATH (run `make bootstrap`, then use .venv/bin)"


@dataclass(frozen=True)
class EngineRun:
    """One Pulumi CLI command of a step."""

    argv: list[str]
    scope_text: str | None = None
    """The components the program registers (a targeted run), written to the file SCOPE_FILE_ENV names."""


@dataclass(frozen=True)
class DryRun:
    """The objects a step changes, for the API server to validate and admit without writing them."""

    cluster_flags: list[str]
    manifests: list[Manifest]


@dataclass(frozen=True)
class StepCommand:
    """What to run, in order (stopping at the first failure), and what the user is told about it."""

    runs: list[EngineRun | DryRun]
    explanation: list[str]


@dataclass(frozen=True)
class _Refresh:
    """What a step on a stack with a cluster refreshes first, and which components it found changed."""

    runs: list[EngineRun]
    explanation: list[str]
    changed: set[Component | None] | None
    """The components of the objects found changed (None for an object outside meshkit's components); None
    when that could not be told (every object is refreshed)."""
    namespaces: set[str] = field(default_factory=set)
    """The namespaces the cluster holds, of those the stack had."""


def step_command(path: Path, stack: str, full: bool = False) -> StepCommand:
    """What `meshkit up` runs for the stack file at ``path`` (of stack ``stack``): with ``full`` the update
    of every object (`make up`), else the update targeted at what changed (`make step`)."""
    root = project_root(path.resolve().parent)
    config, _ = analyze_stack(read_stack_file_keys(path), str(path))
    selection = ["--stack", stack, "--non-interactive"]
    if path.resolve() != stack_file(stack, root).resolve():
        selection += ["--config-file", str(path)]
    update = ["pulumi", "up", "--yes", *selection]
    cluster_flags = stack_cluster(path)
    if full and not cluster_flags:
        # A rendered stack's preview would check nothing the program has not.
        return StepCommand([EngineRun([*update, "--skip-preview"])], ["the full `up` (--full)"])
    # The reads are each a CLI's start and a round trip: side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        succeeded = pool.submit(last_update_succeeded, stack, root)
        outputs = pool.submit(stack_outputs, stack)
        refresh = (
            _refresh(stack, cluster_flags, selection, config.namespaces) if cluster_flags else _Refresh([], [], set())
        )
        plan = _plan(config, path, stack, root, refresh.changed, succeeded, outputs)
    if isinstance(plan, FullUp):
        explanation = [*refresh.explanation, f"the full `up`: {plan.reason}"]
        if not cluster_flags:
            return StepCommand([EngineRun([*update, "--skip-preview"])], explanation)
        if refresh.changed is None:
            # kubectl could not list the cluster: the engine's preview has the provider's dry runs refuse a bad
            # object before anything changes (a second run of the program).
            return StepCommand([*refresh.runs, EngineRun([*update, "--skip-preview=false"])], explanation)
        every_object = _dry_run(render_stack(config), cluster_flags, refresh.namespaces)
        return StepCommand([*refresh.runs, *every_object, EngineRun([*update, "--skip-preview"])], explanation)
    step, deployed = plan
    explanation = [*refresh.explanation, *_described(step)]
    # Only the objects of changed units can change, so only they need the API server's dry run; kubectl does it
    # in a fraction of the second run of the program that the engine's preview costs.
    changed: list[DryRun] = []
    if cluster_flags:
        units = unit_manifests(config)
        manifests = [manifest for unit in step.changed_units for manifest in units.get(unit, [])]
        changed = _dry_run(manifests, cluster_flags, refresh.namespaces)
    if full:
        explanation.append("then the full `up` (--full)")
        return StepCommand([*refresh.runs, *changed, EngineRun([*update, "--skip-preview"])], explanation)
    if not step.changed_units:
        return StepCommand([*refresh.runs], explanation)
    targets = ["--target-dependents", *(f"--target={urn}" for urn in step.targets)]
    scoped = EngineRun([*update, "--skip-preview", *targets], scope_file_text(step.registered, deployed))
    return StepCommand([*refresh.runs, *changed, scoped], explanation)


def _dry_run(manifests: list[Manifest], cluster_flags: list[str], namespaces: set[str]) -> list[DryRun]:
    """The dry run of ``manifests``, but not of Secrets (their values are not rendered), nor of objects in a
    namespace the cluster does not hold yet (the API server would refuse them for that alone; the provider's
    preview skips them too)."""
    checked = [
        manifest
        for manifest in manifests
        if manifest["kind"] != "Secret" and manifest["metadata"].get("namespace", "") in {"", *namespaces}
    ]
    return [DryRun(cluster_flags, checked)] if checked else []


def _plan(
    config: StackConfig,
    path: Path,
    stack: str,
    root: Path,
    changed: set[Component | None] | None,
    succeeded: Future[bool],
    outputs: Future[Any],
) -> FullUp | tuple[TargetedStep, dict[str, Any]]:
    """The targeted step from the last deployment, with the components of changed objects in it."""
    if changed is None:
        return FullUp("which objects changed in the cluster could not be told")
    if any(component is None for component in changed):
        return FullUp("an object outside meshkit's components changed in the cluster")
    # A failed update may have recorded fingerprints of objects it did not deploy (the engine saves the
    # program's outputs with the state it reached).
    if not succeeded.result():
        return FullUp("the stack's last update did not succeed (or there is none)")
    deployed = outputs.result()
    if not isinstance(deployed, dict):
        return FullUp("the stack's outputs are not meshkit's")
    units = {component.unit for component in changed if component is not None}
    plan = plan_step(config, cluster_config(path), deployed, stack, project_name(root), units)
    return plan if isinstance(plan, FullUp) else (plan, deployed)


def _described(step: TargetedStep) -> list[str]:
    if not step.changed_units:
        return ["nothing changed since the last deployment: nothing to do"]
    return [
        f"a targeted `up`: {len(step.changed_units)} changed ({', '.join(step.changed_units)})",
        f"the engine targets {len(step.targets)} component(s) and what depends on them; "
        f"the program registers {len(step.registered)} component(s)",
    ]


def _refresh(stack: str, cluster_flags: list[str], selection: list[str], namespaces: Iterable[str]) -> _Refresh:
    """Hand edits must be seen (and undone by the update), and creates a killed update left pending dropped:
    refresh what the cluster changed since the state recorded it (:mod:`meshkit.engine.refresh_scope`), or every
    object when that cannot be told. Not `up --refresh`: with --target, the engine's refresh does not load
    the provider the targeted objects were made with ("unknown provider"), so it is a command of its own."""
    refresh = ["pulumi", "refresh", "--yes", "--skip-preview", *selection]
    deployed = deployed_objects(stack_export(stack))
    if not isinstance(deployed, FullRefresh):
        try:
            # The stack's namespaces too: which exist says what the API server can dry-run.
            declared = [ObjectRef("v1", "Namespace", "", name) for name in namespaces]
            live = live_objects(cluster_flags, [*(obj.ref for obj in deployed), *declared])
        except MeshkitError as error:
            deployed = FullRefresh(str(error))
    if isinstance(deployed, FullRefresh):
        return _Refresh(
            [EngineRun([*refresh, "--clear-pending-creates"])], [f"refresh every object: {deployed.reason}"], None
        )
    existing = {ref.name for ref in live if ref.kind == "Namespace" and not ref.namespace}
    changed = changed_objects(deployed, live)
    if not changed:
        return _Refresh([], [], set(), existing)
    names = ", ".join(str(obj.ref) for obj in changed)
    return _Refresh(
        [EngineRun([*refresh, *(f"--target={obj.urn}" for obj in changed)])],
        [f"refresh {len(changed)} object(s) changed in the cluster since the last update: {names}"],
        {component_of(obj) for obj in changed},
        existing,
    )


def run_step(command: StepCommand, cwd: Path, say: Callable[[str], None]) -> int:
    """Run ``command`` in the project at ``cwd``, the engine's output going to the terminal; stops at the
    first command that fails."""
    for line in command.explanation:
        say(f"meshkit up: {line}")
    for run in command.runs:
        if isinstance(run, DryRun):
            accepted, report = server_dry_run(run.cluster_flags, run.manifests)
            if not accepted:
                say(f"meshkit up: the API server refuses the step (dry run); the cluster is unchanged:\n{report}")
                return 1
            say(f"meshkit up: the API server accepts the {len(run.manifests)} object(s) the step may change (dry run)")
            continue
        with tempfile.TemporaryDirectory(prefix="meshkit-step-") as tmp:
            env_update = {}
            if run.scope_text is not None:
                scope = Path(tmp) / "scope.json"
                scope.write_text(run.scope_text, encoding="utf-8")
                env_update[SCOPE_FILE_ENV] = str(scope)
            status = _run_pulumi(run.argv, cwd, _environment(env_update))
        if status != 0:
            return status
    return 0


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
