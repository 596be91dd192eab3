"""Targeted steps (meshkit.rollout.step_scope): the fingerprints see every change the program would register, and
the registration set holds everything the engine would target, so nothing is left stale or deleted.

The program runs under Pulumi's mocks for the configs before and after each step; the engine's targeting
rule (a resource depending on a target, through parent, dependsOn or a property, is itself targeted; a
targeted resource the program does not register is deleted) is applied to the registrations recorded."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import json_format

from meshkit.config.stack import StackConfig
from meshkit.mesh.order import UNIT_KIND, Component, deployment_graph
from meshkit.mesh.security import caller_principals
from meshkit.pulumi.program import build_mesh
from meshkit.rollout.step_scope import (
    FINGERPRINTS_OUTPUT,
    ROOT_STACK_TYPE,
    FullUp,
    StepScope,
    TargetedStep,
    fingerprints,
    plan_step,
    read_scope_file,
    scope_file_text,
)

from .pulumi_mocks import pulumi_mocks
from .scenario_data import SCENARIO_PAIRS, scenario_raw

STACK, PROJECT = "test", "meshkit"
ROOT_URN = f"urn:pulumi:{STACK}::{PROJECT}::{ROOT_STACK_TYPE}::{PROJECT}-{STACK}"
RENDER = {"context": None, "kubeconfig": None}
URN_IN_TEXT = re.compile(r"urn:pulumi:[^\"]+")


@dataclass
class Program:
    """What one run of the program registered: per URN its request (as JSON) and the URNs it names."""

    requests: dict[str, dict[str, Any]]
    names: dict[str, set[str]]
    """URN → the URNs it depends on (parent, dependsOn, property dependencies)."""
    parents: dict[str, str]

    def component_of(self, urn: str) -> Component:
        while self.parents[urn] != ROOT_URN:
            urn = self.parents[urn]
        kind, name = urn.split("::")[-2:]
        return Component(kind, name)


def _engine_urn(mock_urn: str) -> str:
    """A URN as the engine writes it, from the mocks' (other stack and project, the root type in the chain)."""
    if "::pulumi:pulumi:Stack::" in mock_urn:
        return ROOT_URN
    tail = mock_urn.split("::", 2)[2].replace(f"{ROOT_STACK_TYPE}$", "")
    return f"urn:pulumi:{STACK}::{PROJECT}::{tail}"


def run_program(raw: dict[str, Any], only: set[Component] | None = None) -> Program:
    stack = StackConfig.model_validate(raw)
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(stack, only=only))
    qualified: dict[str, str] = {ROOT_URN: ""}
    requests, names, parents = {}, {}, {}
    for registration in recorder.registrations:
        parent = _engine_urn(registration.parent) if registration.parent else ROOT_URN
        kind = f"{qualified[parent]}${registration.type}" if qualified[parent] else registration.type
        urn = f"urn:pulumi:{STACK}::{PROJECT}::{kind}::{registration.name}"
        qualified[urn] = kind
        # The URNs inside the request too, as the engine would see them.
        request = json.loads(
            URN_IN_TEXT.sub(lambda m: _engine_urn(m.group(0)), json_format.MessageToJson(registration.request))
        )
        for volatile in ("sourcePosition", "stackTrace"):
            request.pop(volatile, None)
        # The SDK sends dependencies in no particular order.
        request["dependencies"] = sorted(request.get("dependencies", []))
        for dependencies in request.get("propertyDependencies", {}).values():
            dependencies["urns"] = sorted(dependencies.get("urns", []))
        requests[urn], parents[urn] = request, parent
        property_urns = {u for deps in request.get("propertyDependencies", {}).values() for u in deps.get("urns", [])}
        names[urn] = {parent, *map(_engine_urn, [*registration.dependencies, *property_urns])} - {ROOT_URN}
    return Program(requests, names, parents)


def deployed_outputs(raw: dict[str, Any]) -> tuple[Program, dict[str, Any]]:
    """What deploying ``raw`` registered, and the fingerprints its stack outputs then hold."""
    program = run_program(raw)
    return program, {FINGERPRINTS_OUTPUT: fingerprints(StackConfig.model_validate(raw), RENDER)}


def engine_targeted(targets: Iterable[str], graphs: Iterable[Program]) -> set[str]:
    """The URNs the engine targets with `--target-dependents`: the targets, and transitively whatever names
    one of them (in the old state or in the new registrations)."""
    dependents: dict[str, set[str]] = {}
    for graph in graphs:
        for urn, named in graph.names.items():
            for other in named:
                dependents.setdefault(other, set()).add(urn)
    found, queue = set(targets), list(targets)
    while queue:
        for dependent in dependents.get(queue.pop(), ()):
            if dependent not in found:
                found.add(dependent)
                queue.append(dependent)
    return found


def changed_components(before: Program, after: Program) -> set[Component]:
    """The components whose registrations (any child's inputs, options or dependencies) differ."""
    urns = set(before.requests) | set(after.requests)
    return {
        (after if urn in after.requests else before).component_of(urn)
        for urn in urns
        if before.requests.get(urn) != after.requests.get(urn)
    }


def _with(raw: dict[str, Any], edit: Any) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    edit(changed)
    return changed


def _variants() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    b2 = scenario_raw("B2")
    b_namespace = next(iter(b2["namespaces"]))
    return {
        "deny by default switched on": (b2, _with(b2, lambda r: r["namespaces"][b_namespace].update(defaultDeny=True))),
        "a caller added to an allow-list": (
            _with(b2, lambda r: r["namespaces"][b_namespace].update(defaultDeny=True)),
            _with(
                b2,
                lambda r: (
                    r["namespaces"][b_namespace].update(defaultDeny=True),
                    r["services"]["details"].setdefault("allowFrom", []).append({"service": "reviews"}),
                ),
            ),
        ),
        "an allow-list added under deny by default": (
            _with(b2, lambda r: r["namespaces"][b_namespace].update(defaultDeny=True)),
            _with(
                b2,
                lambda r: (
                    r["namespaces"][b_namespace].update(defaultDeny=True),
                    r["services"]["productpage"].update(allowFrom=[{"namespace": "istio-system"}]),
                ),
            ),
        ),
        "a caller moved to another namespace": (
            b2,
            _with(
                b2,
                lambda r: (
                    r["namespaces"].update(front={"dataplane": "sidecar"}),
                    r["services"]["productpage"].update(namespace="front"),
                    r["ingresses"][next(iter(r["ingresses"]))].update(namespace="front"),
                ),
            ),
        ),
        "a route behind the ingress": (
            b2,
            _with(
                b2,
                lambda r: r["services"]["productpage"].update(
                    versions={**r["services"]["productpage"]["versions"], "v2": {"image": "example/productpage:2"}},
                    traffic={"weights": {"v1": 90, "v2": 10}},
                ),
            ),
        ),
        "an image behind the ingress": (
            b2,
            _with(b2, lambda r: r["services"]["productpage"]["versions"]["v1"].update(image="example/productpage:2")),
        ),
        "a namespace label": (b2, _with(b2, lambda r: r["namespaces"][b_namespace].update(dataplane="ambient"))),
        "a service renamed": (
            scenario_raw("A3"),
            _with(scenario_raw("A3"), lambda r: r["services"].update(web=r["services"].pop("nginx"))),
        ),
    }


VARIANTS = _variants()
ALL_PAIRS = {**{f"{a}->{b}": (scenario_raw(a), scenario_raw(b)) for a, b in SCENARIO_PAIRS}, **VARIANTS}


def _step(pair: str) -> tuple[Program, Program, TargetedStep]:
    """The programs before and after a step of ALL_PAIRS, and the targeted step between them."""
    before_raw, after_raw = ALL_PAIRS[pair]
    before, outputs = deployed_outputs(before_raw)
    plan = plan_step(StackConfig.model_validate(after_raw), RENDER, outputs, STACK, PROJECT)
    assert isinstance(plan, TargetedStep)
    return before, run_program(after_raw), plan


@pytest.mark.parametrize("pair", sorted(ALL_PAIRS))
def test_every_component_the_step_registers_differently_is_in_a_changed_unit(pair: str) -> None:
    before, after, plan = _step(pair)
    differing = {component.unit for component in changed_components(before, after)}
    assert differing <= set(plan.changed_units)


@pytest.mark.parametrize("pair", sorted(ALL_PAIRS))
def test_the_targeted_step_registers_everything_the_engine_targets_exactly_as_the_full_program(pair: str) -> None:
    before, after, plan = _step(pair)
    after_raw = ALL_PAIRS[pair][1]
    scoped = run_program(after_raw, only=plan.registered)
    # What the targeted program registers, it registers exactly as the full program does.
    assert {urn: after.requests[urn] for urn in scoped.requests} == scoped.requests
    # Everything the engine targets and the new config declares is registered (else it would be deleted);
    # what it targets and the config no longer declares is what the step removes.
    targeted = engine_targeted(plan.targets, [before, scoped])
    declared = deployment_graph(StackConfig.model_validate(after_raw)).components
    for urn in targeted:
        program = after if urn in after.requests else before
        if urn in after.requests:
            assert urn in scoped.requests, f"{urn} is targeted but not registered: the engine would delete it"
        else:
            assert program.component_of(urn) not in declared or program.component_of(urn).unit in plan.changed_units
    # Every object the full update would change is targeted, so the targeted update changes it too.
    changed = {
        urn for urn in set(before.requests) | set(after.requests) if before.requests.get(urn) != after.requests.get(urn)
    }
    assert changed <= targeted


def test_a_one_weight_step_targets_one_service_and_registers_little() -> None:
    raw = scenario_raw("B2")
    after = _with(raw, lambda r: r["services"]["reviews"]["traffic"].update(weights={"v1": 50, "v2": 50}))
    plan = plan_step(StackConfig.model_validate(after), RENDER, deployed_outputs(raw)[1], STACK, PROJECT)
    assert isinstance(plan, TargetedStep)
    assert plan.changed_units == ["service/reviews"]
    assert {urn.rsplit("::", 2)[-2:][1] for urn in plan.targets} == {"reviews"}
    assert len(plan.registered) < len(deployment_graph(StackConfig.model_validate(after)).components)


def test_nothing_changed_is_an_empty_step() -> None:
    raw = scenario_raw("B3")
    plan = plan_step(StackConfig.model_validate(raw), RENDER, deployed_outputs(raw)[1], STACK, PROJECT)
    assert isinstance(plan, TargetedStep) and plan.changed_units == [] and plan.targets == []


@pytest.mark.parametrize(
    "why",
    ["no deployment", "no fingerprints", "a stack-wide setting", "another cluster", "meshkit's code"],
)
def test_what_only_a_full_up_can_do(why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = scenario_raw("A3")
    stack = StackConfig.model_validate(raw)
    _, outputs = deployed_outputs(raw)
    cluster = RENDER
    if why == "no deployment":
        outputs = {}
    elif why == "no fingerprints":
        outputs = {"services": {}}
    elif why == "a stack-wide setting":
        stack = StackConfig.model_validate({**raw, "readyTimeout": "3m"})
    elif why == "another cluster":
        cluster = {"context": "kind-dev", "kubeconfig": None}
    else:
        monkeypatch.setattr("meshkit.rollout.step_scope.code_digest", lambda: "a newer meshkit")
    assert isinstance(plan_step(stack, cluster, outputs, STACK, PROJECT), FullUp)


def test_a_service_with_secrets_is_in_every_step() -> None:
    raw = scenario_raw("A3")
    raw["secrets"] = {"apiToken": "s3cret"}
    raw["services"]["nginx"]["versions"]["v2"]["env"] = {"API_TOKEN": {"secret": "apiToken"}}
    stack = StackConfig.model_validate(raw)
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(stack, secret_values={"apiToken": "s3cret"}))
    assert recorder.registrations  # the config is one the program deploys
    units = fingerprints(stack, RENDER)["units"]
    assert units["service/nginx"] is None
    plan = plan_step(stack, RENDER, {FINGERPRINTS_OUTPUT: fingerprints(stack, RENDER)}, STACK, PROJECT)
    assert isinstance(plan, TargetedStep) and plan.changed_units == ["service/nginx"]


def test_every_component_type_belongs_to_a_unit() -> None:
    from meshkit.pulumi import components

    kinds = [c for c in vars(components).values() if isinstance(c, type) and issubclass(c, components.MeshkitComponent)]
    registered = {c.pulumi_type for c in kinds if c is not components.MeshkitComponent}
    assert registered == set(UNIT_KIND)


def test_the_scope_file_round_trips() -> None:
    scope = {Component(next(iter(UNIT_KIND)), "reviews"), Component("meshkit:index:Ingress", "bookinfo")}
    outputs = {"services": {"reviews": {"weights": {"v1": 100}}}}
    assert read_scope_file(scope_file_text(scope, outputs)) == StepScope(scope, outputs)


def test_a_removed_service_is_targeted_by_the_components_it_had() -> None:
    raw = scenario_raw("A3")
    removed = _with(raw, lambda r: r["services"].pop("nginx"))
    plan = plan_step(StackConfig.model_validate(removed), RENDER, deployed_outputs(raw)[1], STACK, PROJECT)
    assert isinstance(plan, TargetedStep) and plan.changed_units == ["service/nginx"]
    assert plan.targets == [
        f"urn:pulumi:{STACK}::{PROJECT}::meshkit:index:TrafficSplit::nginx",
        f"urn:pulumi:{STACK}::{PROJECT}::meshkit:index:VersionedService::nginx",
    ]


def test_principals_are_part_of_a_callee_fingerprint() -> None:
    raw = scenario_raw("B2")
    moved = _with(raw, lambda r: r.update(trustDomain="example.org"))
    before, after = StackConfig.model_validate(raw), StackConfig.model_validate(moved)
    assert caller_principals(before) != caller_principals(after)
    assert fingerprints(before, RENDER)["settings"] != fingerprints(after, RENDER)["settings"]
