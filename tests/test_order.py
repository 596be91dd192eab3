"""The deployment graph (meshkit.mesh.order): each order rule on small stacks, and the property the rules are
there for. For every step between consecutive scenario steps (and a few first deployments and removals), the
order the graph gives the engine never creates or updates an object before what it points at is in the state it
needs, and never deletes one while something still points at it; what no order can make safe, the rollout check
refuses. What points at what is read from the manifests themselves, not from the graph. No Pulumi."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from functools import cache
from typing import Any

import pytest

from meshkit.config.stack import StackConfig
from meshkit.mesh import order
from meshkit.mesh.manifest import Manifest
from meshkit.mesh.order import (
    CREATE_OR_UPDATE,
    DELETE,
    DENY_AFTER_ALLOW_LISTS,
    DENY_AFTER_MESH_SETUP,
    INGRESS_ROUTE_AFTER_GATEWAY,
    NAMESPACE_FIRST,
    ORDER_RULES,
    PODS_AFTER_ALLOW_LIST,
    PODS_AFTER_IDENTITY,
    PODS_AFTER_SECRETS,
    ROUTE_AFTER_BACKENDS,
    ROUTE_AFTER_PODS,
    ROUTE_AFTER_SUBSETS,
    ROUTE_AFTER_WAYPOINT,
    ROUTE_TARGETS_LEAVE_AFTER_ROUTES,
    SECRET_LEAVES_AFTER_PODS,
    DeploymentGraph,
    NodeId,
    ObjectKey,
    OrderRule,
    deployment_graph,
)
from meshkit.rollout.summary import check_rollout, deployment_outputs

from .scenario_data import SCENARIO_PAIRS, SCENARIO_STEPS, scenario_raw


def _service(**overrides: Any) -> dict[str, Any]:
    """Service nginx of namespace demo, v1 at 70% and v2 at 30%, with keys replaced."""
    service = {
        "namespace": "demo",
        "ports": [{"name": "http", "port": 8080, "targetPort": 80}],
        "versions": {"v1": {"image": "nginx:1.14"}, "v2": {"image": "nginx:1.15"}},
        "traffic": {"weights": {"v1": 70, "v2": 30}},
    }
    return {**service, **overrides}


def _graph(services: dict[str, Any] | None = None, **stack: Any) -> DeploymentGraph:
    raw = {"namespaces": {"demo": {"dataplane": "sidecar"}}, "services": services or {"nginx": _service()}, **stack}
    return deployment_graph(StackConfig.model_validate(raw))


def _ordered(graph: DeploymentGraph, rule: OrderRule) -> set[tuple[str, str]]:
    """(first, then) of every edge of ``rule``, by child name."""
    return {(edge.first.child, edge.then.child) for edge in graph.edges if edge.rule == rule}


AMBIENT = {"demo": {"dataplane": "ambient"}}
SHOP = {"shop": {"namespace": "demo", "routes": [{"service": "nginx"}]}}


# --- each rule ----------------------------------------------------------------------------------------------


def test_the_objects_of_a_declared_namespace_come_after_it_but_the_routes() -> None:
    graph = _graph()
    later = {node.child for node in graph.nodes if node.key.kind not in ("Namespace", "VirtualService")}
    assert _ordered(graph, NAMESPACE_FIRST) == {("demo-namespace", child) for child in later}


def test_a_namespace_the_stack_does_not_declare_orders_nothing() -> None:
    graph = _graph({"nginx": _service(namespace="shared")})
    assert not any(edge.then.component.name == "nginx" for edge in graph.edges if edge.rule == NAMESPACE_FIRST)


def test_pods_come_after_their_identity_allow_list_and_secrets() -> None:
    service = _service(
        allowFrom=[{"namespace": "istio-system"}],
        versions={"v1": {"image": "nginx:1.14", "env": {"TOKEN": {"secret": "token"}}}},
        traffic={},
    )
    graph = _graph({"nginx": service}, secrets={"token": "s3cret"})
    assert _ordered(graph, PODS_AFTER_IDENTITY) == {("nginx-serviceaccount", "nginx-v1-deployment")}
    assert _ordered(graph, PODS_AFTER_ALLOW_LIST) == {("nginx-authorizationpolicy", "nginx-v1-deployment")}
    assert _ordered(graph, PODS_AFTER_SECRETS) == {("nginx-secrets", "nginx-v1-deployment")}


def test_pods_without_allow_list_or_secrets_wait_for_their_identity_only() -> None:
    graph = _graph()
    assert {then for _, then in _ordered(graph, PODS_AFTER_IDENTITY)} == {"nginx-v1-deployment", "nginx-v2-deployment"}
    assert _ordered(graph, PODS_AFTER_ALLOW_LIST) == _ordered(graph, PODS_AFTER_SECRETS) == set()


def test_a_route_comes_after_the_subsets_and_the_pods_of_the_versions_it_sends_to_only() -> None:
    graph = _graph({"nginx": _service(traffic={"weights": {"v1": 100, "v2": 0}})})
    assert _ordered(graph, ROUTE_AFTER_SUBSETS) == {("nginx-destinationrule", "nginx-virtualservice")}
    assert _ordered(graph, ROUTE_AFTER_PODS) == {("nginx-v1-deployment", "nginx-virtualservice")}


@pytest.mark.parametrize(
    "traffic",
    [
        {"weights": {"v1": 100}, "routes": [{"match": {"headers": {"end-user": {"exact": "jason"}}}, "to": "v2"}]},
        {"weights": {"v1": 100}, "mirror": {"version": "v2", "percentage": 10}},
    ],
    ids=["request route", "mirror"],
)
def test_a_request_route_or_a_mirror_sends_to_its_version(traffic: dict[str, Any]) -> None:
    graph = _graph({"nginx": _service(traffic=traffic)})
    assert ("nginx-v2-deployment", "nginx-virtualservice") in _ordered(graph, ROUTE_AFTER_PODS)


def test_a_gateway_api_route_comes_after_its_backends_and_the_waypoint() -> None:
    graph = _graph({"nginx": _service(traffic={"api": "gateway", "weights": {"v1": 70, "v2": 30}})}, namespaces=AMBIENT)
    route = "nginx-httproute"
    assert _ordered(graph, ROUTE_AFTER_BACKENDS) == {("nginx-v1-service", route), ("nginx-v2-service", route)}
    assert _ordered(graph, ROUTE_AFTER_PODS) == {("nginx-v1-deployment", route), ("nginx-v2-deployment", route)}
    assert _ordered(graph, ROUTE_AFTER_WAYPOINT) == {("demo-waypoint", route)}
    assert _ordered(graph, ROUTE_AFTER_SUBSETS) == set()


def test_deny_by_default_comes_after_the_namespace_setup_and_its_own_allow_lists() -> None:
    services = {
        "nginx": _service(allowFrom=[{"service": "sleep"}]),
        "sleep": _service(versions={"v1": {"image": "curl:8"}}, traffic={}),
        "web": _service(namespace="other", allowFrom=[{"service": "sleep"}]),
    }
    namespaces = {"demo": {"dataplane": "ambient", "defaultDeny": True}, "other": {"dataplane": "sidecar"}}
    graph = _graph(services, namespaces=namespaces)
    deny = {"demo-allow-nothing", "demo-allow-waypoint", "demo-allow-nothing-waypoint"}
    assert _ordered(graph, DENY_AFTER_ALLOW_LISTS) == {("nginx-authorizationpolicy", policy) for policy in deny}
    setup = {"demo-peerauthentication", "demo-waypoint"}
    assert _ordered(graph, DENY_AFTER_MESH_SETUP) == {(first, policy) for first in setup for policy in deny}


def test_an_ingress_route_comes_after_its_gateway_and_what_the_service_routes_to() -> None:
    graph = _graph(ingresses=SHOP)
    routes = "shop-ingress-virtualservice"
    assert _ordered(graph, INGRESS_ROUTE_AFTER_GATEWAY) == {("shop-gateway", routes)}
    assert ("nginx-destinationrule", routes) in _ordered(graph, ROUTE_AFTER_SUBSETS)
    assert {("nginx-v1-deployment", routes), ("nginx-v2-deployment", routes)} <= _ordered(graph, ROUTE_AFTER_PODS)


def test_every_version_leaves_after_the_routes_that_may_use_it() -> None:
    graph = _graph({"nginx": _service(traffic={"weights": {"v1": 100, "v2": 0}})}, ingresses=SHOP)
    routes = {"nginx-virtualservice", "shop-ingress-virtualservice"}
    targets = {"nginx-destinationrule", "nginx-v1-deployment", "nginx-v2-deployment"}
    assert _ordered(graph, ROUTE_TARGETS_LEAVE_AFTER_ROUTES) == {(r, t) for r in routes for t in targets}


def test_a_secret_leaves_after_the_pods_that_name_it() -> None:
    versions = {v: {"image": "nginx:1.14", "env": {"TOKEN": {"secret": "token"}}} for v in ("v1", "v2")}
    graph = _graph({"nginx": _service(versions=versions)}, secrets={"token": "s3cret"})
    pods = {"nginx-v1-deployment", "nginx-v2-deployment"}
    assert _ordered(graph, SECRET_LEAVES_AFTER_PODS) == {(pod, "nginx-secrets") for pod in pods}


def test_the_rule_table_is_plain_text_a_page_can_print() -> None:
    assert len({rule.name for rule in ORDER_RULES}) == len(ORDER_RULES)
    for rule in ORDER_RULES:
        assert getattr(order, rule.name) is rule
        assert all(isinstance(value, str) and value for value in astuple(rule)), rule
        assert rule.when in (CREATE_OR_UPDATE, DELETE)


@pytest.mark.parametrize("step", SCENARIO_STEPS)
def test_each_object_is_one_node_and_the_order_has_no_cycle(step: str) -> None:
    graph = _scenario_graph(step)
    assert len({node.id for node in graph.nodes}) == len({node.key for node in graph.nodes}) == len(graph.nodes)
    done: set[NodeId] = set()
    waiting = [node.id for node in graph.nodes]
    while waiting:
        ready = [node for node in waiting if set(graph.needs(node)) <= done]
        assert ready, f"a cycle among {waiting}"
        done |= set(ready)
        waiting = [node for node in waiting if node not in done]


# --- what points at what, from the manifests ----------------------------------------------------------------

World = dict[ObjectKey, Manifest]


@dataclass(frozen=True)
class Reference:
    key: ObjectKey
    lasting: bool = True
    """Pointed at for as long as the object exists (a route's destinations, a pod's ServiceAccount), or only
    needed in place when it is applied (pods their allow-list, deny-by-default the allow-lists, a route the
    waypoint its namespace's label names)."""
    subset: str | None = None
    """The subset of a DestinationRule that a route sends to."""


OUTSIDE_THE_STACK = ("Namespace", "Secret")
"""What an object may point at without the stack declaring it: a namespace made elsewhere, a Secret of the
cluster's (``secretKeyRef``)."""


def _pods(world: World, namespace: str, labels: dict[str, str]) -> list[ObjectKey]:
    return [
        key
        for key, manifest in world.items()
        if key.kind == "Deployment"
        and key.namespace == namespace
        and labels.items() <= manifest["spec"]["template"]["metadata"]["labels"].items()
    ]


def _sends_to(world: World, namespace: str, host: str, subset: str | None = None) -> list[Reference]:
    """What a route's destination reaches: the subset of a DestinationRule or the Service, and their pods. A
    host is a Service's name in the route's namespace or its full name, ``<name>.<namespace>.svc.<domain>``."""
    name, _, domain = host.partition(".")
    namespace = domain.split(".")[0] if domain else namespace
    selector = world[ObjectKey("Service", namespace, name)]["spec"]["selector"]
    if subset is None:
        return [Reference(key) for key in (ObjectKey("Service", namespace, name), *_pods(world, namespace, selector))]
    rule_key, rule = next(
        (key, m)
        for key, m in world.items()
        if key.kind == "DestinationRule" and key.namespace == namespace and m["spec"]["host"] == name
    )
    (labels,) = [s["labels"] for s in rule["spec"]["subsets"] if s["name"] == subset]
    return [Reference(rule_key, subset=subset), *map(Reference, _pods(world, namespace, {**selector, **labels}))]


def _namespace_wide(policy: Manifest) -> bool:
    """A deny-by-default policy: it selects no service's pods or Services, but all (or the waypoint's)."""
    spec = policy["spec"]
    return "selector" not in spec and not any(ref["kind"] == "Service" for ref in spec.get("targetRefs", []))


def _allow_lists_of(world: World, namespace: str, pod_labels: dict[str, str]) -> list[ObjectKey]:
    def selects(policy: Manifest) -> bool:
        spec = policy["spec"]
        if "selector" in spec:
            return bool(spec["selector"]["matchLabels"].items() <= pod_labels.items())
        services = [world[ObjectKey("Service", namespace, ref["name"])] for ref in spec.get("targetRefs", [])]
        return any(service["spec"]["selector"].items() <= pod_labels.items() for service in services)

    return [
        key
        for key, policy in world.items()
        if key.kind == "AuthorizationPolicy" and key.namespace == namespace and not _namespace_wide(policy)
        if selects(policy)
    ]


def _waypoint(world: World, namespace: str) -> list[ObjectKey]:
    """The waypoint a namespace's label sends its services' traffic through."""
    labels = world.get(ObjectKey("Namespace", "", namespace), {}).get("metadata", {}).get("labels", {})
    name = labels.get("istio.io/use-waypoint")
    return [ObjectKey("Gateway", namespace, name)] if name else []


def _references(manifest: Manifest, world: World) -> list[Reference]:
    """What an object points at, read from its manifest (and from its namespace's label, for the waypoint)."""
    kind, spec = manifest["kind"], manifest.get("spec", {})
    namespace = manifest["metadata"].get("namespace", "")
    found = [Reference(ObjectKey("Namespace", "", namespace))] if namespace else []
    if kind == "Deployment":
        pod = spec["template"]
        found.append(Reference(ObjectKey("ServiceAccount", namespace, pod["spec"]["serviceAccountName"])))
        found += [
            Reference(ObjectKey("Secret", namespace, env["valueFrom"]["secretKeyRef"]["name"]))
            for container in pod["spec"]["containers"]
            for env in container.get("env", [])
            if "valueFrom" in env
        ]
        found += [Reference(key, False) for key in _allow_lists_of(world, namespace, pod["metadata"]["labels"])]
    elif kind == "VirtualService":
        destinations = [to["destination"] for rule in spec["http"] for to in rule.get("route", [])]
        destinations += [rule["mirror"] for rule in spec["http"] if "mirror" in rule]
        found += [ref for to in destinations for ref in _sends_to(world, namespace, to["host"], to.get("subset"))]
        if "gateways" in spec:
            found += [Reference(ObjectKey("Gateway", namespace, gateway)) for gateway in spec["gateways"]]
        else:
            found += [Reference(key, False) for key in _waypoint(world, namespace)]
    elif kind == "HTTPRoute":
        backends = [ref for rule in spec["rules"] for ref in rule.get("backendRefs", [])]
        backends += [f["requestMirror"]["backendRef"] for rule in spec["rules"] for f in rule.get("filters", [])]
        found += [ref for backend in backends for ref in _sends_to(world, namespace, backend["name"])]
        found += [Reference(key, False) for key in _waypoint(world, namespace)]
    elif kind == "AuthorizationPolicy" and _namespace_wide(manifest):
        found += [
            Reference(key, False)
            for key, policy in world.items()
            if key.kind == "AuthorizationPolicy" and key.namespace == namespace and not _namespace_wide(policy)
        ]
        found += [Reference(ObjectKey("Gateway", namespace, ref["name"])) for ref in spec.get("targetRefs", [])]
    return [ref for ref in found if ref.key in world or ref.key.kind not in OUTSIDE_THE_STACK]


# --- the property ---------------------------------------------------------------------------------------------

Operation = tuple[str, NodeId]
"""``("apply", node)`` (created or updated), ``("same", node)`` (unchanged) or ``("delete", node)``."""


def _operations(old: DeploymentGraph, new: DeploymentGraph) -> dict[Operation, set[Operation]]:
    """The operations of the step from ``old`` to ``new``, each with those it comes after by the graphs' edges
    alone: a create-or-update edge of the new graph orders the two objects' operations (an unchanged object too,
    as the engine does not register it before what it depends on); one of the old graph, between two objects
    that both leave, deletes the later one first; a delete-after edge of the old graph orders an object's
    deletion after the earlier object's operation."""
    before = {node.id: node for node in old.nodes}
    after = {node.id: node for node in new.nodes}
    operation: dict[NodeId, Operation] = {
        node: ("apply" if node not in before or before[node].manifest != now.manifest else "same", node)
        for node, now in after.items()
    }
    operation.update({node: ("delete", node) for node in before if node not in after})
    preceding: dict[Operation, set[Operation]] = {op: set() for op in operation.values()}
    for edge in new.edges:
        if edge.rule.when == CREATE_OR_UPDATE:
            preceding[operation[edge.then]].add(operation[edge.first])
    for edge in old.edges:
        if edge.then not in after and edge.rule.when == DELETE:
            preceding[operation[edge.then]].add(operation[edge.first])
        if edge.then not in after and edge.first not in after and edge.rule.when == CREATE_OR_UPDATE:
            preceding[operation[edge.first]].add(operation[edge.then])
    return preceding


@dataclass
class Step:
    """The operations of a step, and what each comes after through the graphs' edges (transitively)."""

    old: DeploymentGraph
    new: DeploymentGraph

    def __post_init__(self) -> None:
        self.preceding = _operations(self.old, self.new)
        self.operations = {op[1]: op for op in self.preceding}
        self.old_world = {node.key: node.manifest for node in self.old.nodes}
        self.new_world = {node.key: node.manifest for node in self.new.nodes}
        self.old_ids = {node.key: node.id for node in self.old.nodes}
        self.new_ids = {node.key: node.id for node in self.new.nodes}
        self.earlier = cache(self._earlier)

    def _earlier(self, op: Operation) -> frozenset[Operation]:
        return frozenset(p for first in self.preceding[op] for p in (first, *self.earlier(first)))

    def users(self, key: ObjectKey) -> Iterator[tuple[NodeId, Reference]]:
        """The objects of the old state that point at ``key`` for as long as they exist."""
        for node in self.old.nodes:
            for ref in _references(node.manifest, self.old_world):
                if ref.key == key and ref.lasting:
                    yield node.id, ref


def _unsafe(old: DeploymentGraph, new: DeploymentGraph) -> Iterator[str]:
    """Whatever the step from ``old`` to ``new`` could do in an unsafe order. The engine runs at once whatever
    the edges leave unordered, so an operation is safe only if what it relies on comes before it through the
    edges, whatever order the engine picks among the rest (the engine's own order, creates and updates first
    and then deletions, is one of those)."""
    step = Step(old, new)
    for node in new.nodes:
        applied = step.operations[node.id]
        if applied[0] != "apply":
            continue
        for ref in _references(node.manifest, step.new_world):
            needed = step.operations[step.new_ids[ref.key]]
            if needed[0] == "apply" and needed not in step.earlier(applied):
                yield f"{node.key} may be applied before {ref.key}, which it points at"
    for node in old.nodes:
        gone = step.operations[node.id]
        if gone[0] != "delete":
            continue
        for user, _ in step.users(node.key):
            if step.operations[user][0] == "same" or step.operations[user] not in step.earlier(gone):
                yield f"{node.key} may be deleted while {step.operations[user][1].child} still points at it"


def _subsets_taken_away(old: DeploymentGraph, new: DeploymentGraph) -> Iterator[str]:
    """A DestinationRule updated without a subset that a route of the old state still sends to, before that
    route is updated. No order can help: a route comes after its DestinationRule, for the subsets it gains."""
    step = Step(old, new)
    for node in new.nodes:
        updated = step.operations[node.id]
        if node.key.kind != "DestinationRule" or updated[0] != "apply" or node.key not in step.old_world:
            continue
        kept = {subset["name"] for subset in node.manifest["spec"]["subsets"]}
        for user, ref in step.users(node.key):
            if ref.subset not in kept and step.operations[user] not in step.earlier(updated):
                yield f"{node.key} may lose subset {ref.subset} while {user.child} still sends to it"


def _with_secret(raw: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    changed["secrets"] = {"apiToken": "s3cret"}
    changed["services"]["nginx"]["versions"]["v2"]["env"] = {"API_TOKEN": {"secret": "apiToken"}}
    return changed


def _deny_by_default(raw: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    for namespace in changed["namespaces"].values():
        namespace["defaultDeny"] = True
    return changed


# Beyond the scenarios: first deployments (everything created at once) and what no scenario step does.
MORE_STEPS = {
    "A3 with a secret, from nothing": ({}, _with_secret(scenario_raw("A3"))),
    "a secret dropped": (_with_secret(scenario_raw("A3")), scenario_raw("A3")),
    "B2 denying by default, from nothing": ({}, _deny_by_default(scenario_raw("B2"))),
    "C3 denying by default, from nothing": ({}, _deny_by_default(scenario_raw("C3"))),
    "C3 removed": (scenario_raw("C3"), {}),
}
STEPS = {
    **{f"{before}->{after}": (scenario_raw(before), scenario_raw(after)) for before, after in SCENARIO_PAIRS},
    **MORE_STEPS,
}


@cache
def _scenario_graph(step: str) -> DeploymentGraph:
    return deployment_graph(StackConfig.model_validate(scenario_raw(step)))


def _graphs(step: str) -> tuple[DeploymentGraph, DeploymentGraph]:
    before, after = STEPS[step]
    return deployment_graph(StackConfig.model_validate(before)), deployment_graph(StackConfig.model_validate(after))


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_step_never_applies_before_what_an_object_points_at_nor_deletes_what_is_pointed_at(step: str) -> None:
    assert list(_unsafe(*_graphs(step))) == []


@pytest.mark.parametrize("step", sorted(STEPS))
def test_what_no_order_makes_safe_the_rollout_check_refuses(step: str) -> None:
    """A version that leaves in the step that stops its traffic would lose its subset before the route stops
    sending to it: MK501 refuses that step (make-before-break across two steps)."""
    before, after = STEPS[step]
    deployed = deployment_outputs(StackConfig.model_validate(before), None)
    refused = {finding.code for finding in check_rollout(StackConfig.model_validate(after), deployed)}
    if list(_subsets_taken_away(*_graphs(step))):
        assert "MK501" in refused


@pytest.mark.parametrize("rule", ORDER_RULES, ids=lambda rule: rule.name)
def test_without_any_one_rule_some_step_is_unsafe(rule: OrderRule) -> None:
    def without(graph: DeploymentGraph) -> DeploymentGraph:
        return DeploymentGraph(graph.nodes, tuple(edge for edge in graph.edges if edge.rule != rule))

    assert any(next(_unsafe(*map(without, _graphs(step))), None) for step in STEPS), f"no step needs {rule.name}"
