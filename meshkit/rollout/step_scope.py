"""What a rollout step touches, so that the engine can be pointed at just that (`meshkit up`, `make step`).

A full ``pulumi up`` re-registers and re-checks every object of the stack: at 1000 services that is minutes
for a step that moves one weight. The render is pure, so meshkit knows, for each *unit* of the stack (a
namespace, a service, an ingress), everything its objects are made from. The program records a fingerprint
of each unit in the stack outputs (``fingerprints``); a step compares the stack file's fingerprints with the
deployed ones, and the units that differ are the step.

The engine is then run as ``pulumi up --target <their components> --target-dependents`` with the program
registering only what that update needs (:func:`plan_step`). Two engine rules make this safe, and the
registration set is built around them (Pulumi 3.259, ``resource/deploy/step_generator.go``):

* an old resource that is not targeted and not registered is carried over unchanged; but a *targeted* one
  that is not registered is deleted, and with ``--target-dependents`` everything that depends on a target
  (through ``parent``, ``dependsOn`` or a property) is targeted. So every dependent of a target is
  registered (see :func:`plan_step` for why the new program's dependents cover the deployed state's);
* a registered resource that is not targeted keeps its old state without a provider call. So what a
  registered component needs (a route's Deployments, an ingress's backends) can be registered cheaply.

Everything else a step could change that is not one unit's — meshkit's own code, the stack-wide settings,
the cluster the stack deploys to — is in the ``settings`` fingerprint; when it differs, the step is the full
``up``. A service whose objects hold secret values (not in the stack file as meshkit reads it) is in every
step. No Pulumi runtime.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from meshkit.config.stack import StackConfig
from meshkit.mesh.gatewayapi import resolved_namespace, waypoint_of
from meshkit.mesh.order import (
    DENY_BY_DEFAULT,
    HTTP_ROUTE_SPLIT,
    INGRESS,
    NAMESPACE,
    TRAFFIC_SPLIT,
    UNIT_KIND,
    VERSIONED_SERVICE,
    Component,
)
from meshkit.mesh.security import authorization_policy_manifest, caller_principals
from meshkit.mesh.workloads import secret_names

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
FINGERPRINTS_OUTPUT = "fingerprints"
SCOPE_FILE_ENV = "MESHKIT_STEP_SCOPE"
"""Names a JSON file of the components the program registers; set only by `meshkit up` for its targeted update."""


def component_urn(component: Component, stack: str, project: str) -> str:
    # A component registered under the stack resource: the root's type is not part of the URN.
    return f"urn:pulumi:{stack}::{project}::{component.type}::{component.name}"


def declared_components(stack: StackConfig) -> set[Component]:
    """Every component the program registers for ``stack`` (see :func:`meshkit.pulumi.program.build_mesh`)."""
    found = set()
    for name, spec in stack.namespaces.items():
        found.add(Component(NAMESPACE, name))
        if spec.default_deny:
            found.add(Component(DENY_BY_DEFAULT, name))
    for name, svc in stack.services.items():
        found.add(Component(VERSIONED_SERVICE, name))
        found.add(Component(HTTP_ROUTE_SPLIT if svc.traffic.api == "gateway" else TRAFFIC_SPLIT, name))
    found.update(Component(INGRESS, name) for name in stack.ingresses)
    return found


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


def _allow_listed(stack: StackConfig) -> set[str]:
    """The services with an allow-list (AuthorizationPolicy): their namespace's deny-by-default waits for it."""
    principals = caller_principals(stack)
    return {
        name
        for name, svc in stack.services.items()
        if authorization_policy_manifest(name, svc, principals, waypoint_of(stack, svc.namespace)) is not None
    }


def _namespace_dump(stack: StackConfig, name: str) -> Any:
    return resolved_namespace(stack, name).model_dump(mode="json") if name in stack.namespaces else None


def unit_fingerprints(stack: StackConfig) -> dict[str, str | None]:
    """Per unit, a digest of everything its components are built from; None for a unit whose objects hold
    secret values (they are not in the stack file as meshkit reads it), which every step re-checks."""
    principals = caller_principals(stack)
    allow_listed_services = _allow_listed(stack)
    units: dict[str, str | None] = {}
    for name, spec in stack.namespaces.items():
        allow_listed = sorted(s for s in allow_listed_services if stack.services[s].namespace == name)
        units[f"namespace/{name}"] = _digest(
            [_namespace_dump(stack, name), allow_listed if spec.default_deny else None]
        )
    for name, svc in stack.services.items():
        callers = {allow.service for allow in svc.allow_from or [] if allow.service}
        units[f"service/{name}"] = (
            None
            if secret_names(svc)
            else _digest(
                [
                    svc.model_dump(mode="json"),
                    _namespace_dump(stack, svc.namespace),
                    {caller: principals.get(caller) for caller in sorted(callers)},
                    waypoint_of(stack, svc.namespace),
                ]
            )
        )
    for name, ingress in stack.ingresses.items():
        routed = sorted({route.service for route in ingress.routes})
        units[f"ingress/{name}"] = _digest(
            [
                ingress.model_dump(mode="json"),
                {s: stack.services[s].model_dump(mode="json") if s in stack.services else None for s in routed},
                _namespace_dump(stack, ingress.namespace),
            ]
        )
    return units


def fingerprints(stack: StackConfig, cluster: Mapping[str, str | None]) -> dict[str, Any]:
    """The ``fingerprints`` stack output: ``settings`` (meshkit's code, the stack-wide settings and the
    cluster, by its ``kubernetes:`` config), ``units``, and the component types of each unit (a later step
    that removes the unit targets them)."""
    settings = stack.model_dump(mode="json", exclude={"namespaces", "services", "ingresses"})
    components: dict[str, list[str]] = {}
    for component in sorted(declared_components(stack)):
        components.setdefault(component.unit, []).append(component.type)
    return {
        "settings": _digest([code_digest(), settings, dict(sorted(cluster.items()))]),
        "units": unit_fingerprints(stack),
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


def _declared_dependents(stack: StackConfig, component: Component) -> set[Component]:
    """What the program makes depend on ``component``'s objects (see :mod:`meshkit.pulumi.components`)."""
    name = component.name
    if component.type == NAMESPACE:
        found = {Component(DENY_BY_DEFAULT, name)}
        for service, svc in stack.services.items():
            if svc.namespace == name:
                found |= {Component(VERSIONED_SERVICE, service), Component(TRAFFIC_SPLIT, service)}
                found.add(Component(HTTP_ROUTE_SPLIT, service))
        found |= {Component(INGRESS, i) for i, ingress in stack.ingresses.items() if ingress.namespace == name}
        return found
    if component.type == VERSIONED_SERVICE:
        found = {Component(TRAFFIC_SPLIT, name), Component(HTTP_ROUTE_SPLIT, name)}
        found |= {
            Component(INGRESS, i) for i, ing in stack.ingresses.items() if any(r.service == name for r in ing.routes)
        }
        if name in stack.services:
            found.add(Component(DENY_BY_DEFAULT, stack.services[name].namespace))
        return found
    return set()


def _declared_needs(stack: StackConfig, component: Component) -> set[Component]:
    """What the program must have built to build ``component`` (its arguments' components)."""
    name = component.name
    if component.type in (VERSIONED_SERVICE, TRAFFIC_SPLIT, HTTP_ROUTE_SPLIT):
        namespace = stack.services[name].namespace
        return {Component(VERSIONED_SERVICE, name), Component(NAMESPACE, namespace)}
    if component.type == INGRESS:
        ingress = stack.ingresses[name]
        return {Component(VERSIONED_SERVICE, r.service) for r in ingress.routes} | {
            Component(NAMESPACE, ingress.namespace)
        }
    if component.type == DENY_BY_DEFAULT:
        in_namespace = {s for s in _allow_listed(stack) if stack.services[s].namespace == name}
        allow_lists = {Component(VERSIONED_SERVICE, s) for s in in_namespace}
        return allow_lists | {Component(NAMESPACE, name)}
    return set()


def _closure(start: Iterable[Component], step: Any, declared: set[Component]) -> set[Component]:
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
    deployed config with this same code (else ``settings`` differs), so a component whose dependencies
    change between the two registers differently, and its unit is changed itself (tests/test_step_scope.py
    checks both against the engine's rule, old state included)."""
    if not deployed_outputs:
        return FullUp("the stack has no deployment yet")
    deployed = deployed_outputs.get(FINGERPRINTS_OUTPUT)
    if not isinstance(deployed, dict) or not isinstance(deployed.get("units"), dict):
        return FullUp("the last deployment recorded no fingerprints (a meshkit before targeted steps made it)")
    wanted = fingerprints(stack, cluster)
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
    declared = declared_components(stack)
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
    # deleted), and what those need to be built.
    engine_targeted = _closure(target_components, lambda c: _declared_dependents(stack, c), declared)
    registered = _closure(engine_targeted, lambda c: _declared_needs(stack, c), declared)
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
