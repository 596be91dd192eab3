"""What a rollout step touches, so that the engine can be pointed at just that (`meshkit up`, `make step`).

A full ``pulumi up`` re-registers and re-checks every object of the stack: at 1000 services that is minutes
for a step that moves one weight. The deployment graph (:mod:`meshkit.mesh.order`) is pure, so meshkit knows,
for each *unit* of the stack (a namespace, a service, an ingress), everything the program registers for it:
its objects, and what each is created after. The program records a fingerprint of each unit in the stack
outputs (``fingerprints``); a step compares the stack file's fingerprints with the deployed ones, and the units
that differ are the step.

The engine is then run as ``pulumi up --target <their components> --target-dependents`` with the program
registering only what that update needs (:func:`plan_step`). Two engine rules make this safe, and the
registration set is built around them (Pulumi 3.259, ``resource/deploy/step_generator.go``):

* an old resource that is not targeted and not registered is carried over unchanged; but a *targeted* one
  that is not registered is deleted, and with ``--target-dependents`` everything that depends on a target
  (through ``parent``, ``dependsOn`` or a property) is targeted. So every dependent of a target is
  registered (see :func:`plan_step` for why the new program's dependents cover the deployed state's);
* a registered resource that is not targeted keeps its old state without a provider call. So what a
  registered component needs (a route's Deployments, an ingress's backends) can be registered cheaply.

Which component depends on which is the graph's edges, read at the level of components.

Everything else a step could change that is not one unit's — meshkit's own code, the stack-wide settings,
the cluster the stack deploys to — is in the ``settings`` fingerprint; when it differs, the step is the full
``up``. A service whose objects hold secret values (not in the stack file as meshkit reads it) is in every
step. No Pulumi runtime.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from meshkit.config.stack import StackConfig
from meshkit.mesh.order import UNIT_KIND, Component, DeploymentGraph, deployment_graph

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
FINGERPRINTS_OUTPUT = "fingerprints"
SCOPE_FILE_ENV = "MESHKIT_STEP_SCOPE"
"""Names a JSON file of the components the program registers; set only by `meshkit up` for its targeted update."""


def component_urn(component: Component, stack: str, project: str) -> str:
    # A component registered under the stack resource: the root's type is not part of the URN.
    return f"urn:pulumi:{stack}::{project}::{component.type}::{component.name}"


# --- fingerprints --------------------------------------------------------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


@cache
def code_digest() -> str:
    """meshkit's own code: a new meshkit may register the same config differently."""
    package = Path(__file__).resolve().parents[1]  # the whole meshkit package, not just this layer
    hasher = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        hasher.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()[:32]


def unit_fingerprints(graph: DeploymentGraph) -> dict[str, str | None]:
    """Per unit, a digest of what the program registers for it: each object's component, child name and
    manifest, and what it is created after (its ``depends_on``); the rest of a registration (timeouts, the
    cluster's awaits) follows from ``settings``. None for a unit whose objects hold secret values (they are
    not in the stack file as meshkit reads it), which every step re-checks."""
    return {
        unit: None
        if any(node.key.kind == "Secret" for node in nodes)
        else _digest(
            [
                [node.component.type, node.child, node.manifest]
                + [[first.component.type, first.component.name, first.child] for first in graph.needs(node.id)]
                for node in nodes
            ]
        )
        for unit, nodes in graph.units.items()
    }


def fingerprints(
    stack: StackConfig, cluster: Mapping[str, str | None], graph: DeploymentGraph | None = None
) -> dict[str, Any]:
    """The ``fingerprints`` stack output: ``settings`` (meshkit's code, the stack-wide settings and the
    cluster, by its ``kubernetes:`` config), ``units``, and the component types of each unit (a later step
    that removes the unit targets them). ``graph``: the stack's, when the caller has it already."""
    graph = deployment_graph(stack) if graph is None else graph
    settings = stack.model_dump(mode="json", exclude={"namespaces", "services", "ingresses"})
    components: dict[str, list[str]] = {}
    for component in sorted(graph.components):
        components.setdefault(component.unit, []).append(component.type)
    return {
        "settings": _digest([code_digest(), settings, dict(sorted(cluster.items()))]),
        "units": unit_fingerprints(graph),
        "components": components,
    }


# --- the step ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FullUp:
    """The step cannot be targeted: run the full ``up``, for this reason."""

    reason: str


@dataclass
class TargetedStep:
    changed_units: list[str]
    targets: list[str]
    """URNs for ``--target`` (with ``--target-dependents``): every component of a changed unit."""
    registered: set[Component] = field(default_factory=set)
    """What the program registers: the targets, everything the engine will target with them, and what
    those need to be built."""


def _closure(
    start: Iterable[Component], step: Callable[[Component], Iterable[Component]], declared: Collection[Component]
) -> set[Component]:
    found = {c for c in start if c in declared}
    queue = list(found)
    while queue:
        for following in step(queue.pop()):
            if following in declared and following not in found:
                found.add(following)
                queue.append(following)
    return found


def plan_step(
    stack: StackConfig,
    cluster: Mapping[str, str | None],
    deployed_outputs: Mapping[str, Any],
    stack_name: str,
    project: str,
    changed_in_cluster: Iterable[str] = (),
) -> FullUp | TargetedStep:
    """The targeted update that brings the last deployment (its stack outputs, ``pulumi stack output
    --json``) to ``stack``, or why only the full ``up`` can. ``changed_in_cluster``: units whose objects
    were changed since (by hand), which the update must put back (see :mod:`meshkit.engine.refresh_scope`).

    The deployed state's own dependencies need not be read: the last deployment registered them from the
    deployed config with this same code (else ``settings`` differs), and a unit's fingerprint digests its
    objects' dependencies, so a component whose dependencies change between the two is in a changed unit
    itself (tests/test_step_scope.py checks both against the engine's rule, old state included)."""
    if not deployed_outputs:
        return FullUp("the stack has no deployment yet")
    deployed = deployed_outputs.get(FINGERPRINTS_OUTPUT)
    if not isinstance(deployed, dict) or not isinstance(deployed.get("units"), dict):
        return FullUp("the last deployment recorded no fingerprints (a meshkit before targeted steps made it)")
    graph = deployment_graph(stack)
    wanted = fingerprints(stack, cluster, graph)
    if deployed.get("settings") != wanted["settings"]:
        return FullUp("meshkit itself, a stack-wide setting or the cluster changed since the last deployment")
    old_units, new_units = deployed["units"], wanted["units"]
    # A unit is changed when it comes, goes, differs, or holds secret values (None: in every step).
    changed = sorted(
        {
            unit
            for unit in set(old_units) | set(new_units)
            if unit not in old_units or old_units[unit] != new_units.get(unit) or new_units.get(unit) is None
        }
        | set(changed_in_cluster)
    )
    declared = graph.components
    old_components = deployed.get("components")
    old_components = old_components if isinstance(old_components, dict) else {}
    removed = {
        Component(kind, unit.split("/", 1)[1])
        for unit in changed
        for kind in old_components.get(unit, [])
        if isinstance(kind, str) and kind in UNIT_KIND
    }
    target_components = {c for c in declared if c.unit in changed} | removed
    targets = sorted(component_urn(component, stack_name, project) for component in target_components)
    # Everything the engine will target with them (a dependent the program did not register would be
    # deleted), and what those need to be built: a component is built with the components its objects are
    # created after (its arguments).
    engine_targeted = _closure(target_components, graph.component_dependents, declared)
    registered = _closure(engine_targeted, graph.component_needs, declared)
    return TargetedStep(changed, targets, registered)


def scope_file_text(registered: Iterable[Component], deployed_outputs: Mapping[str, Any]) -> str:
    """What the program of a targeted step reads: the components to register, and the outputs of the last
    deployment that the step was planned from (the program's rollout checks run against them)."""
    return json.dumps({"components": [[c.type, c.name] for c in sorted(registered)], "deployed": deployed_outputs})


@dataclass(frozen=True)
class StepScope:
    components: set[Component]
    deployed_outputs: dict[str, Any]


def read_scope_file(text: str) -> StepScope:
    document = json.loads(text)
    components = {Component(str(kind), str(name)) for kind, name in document["components"]}
    return StepScope(components, dict(document["deployed"]))
