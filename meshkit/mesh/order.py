"""The deployment graph: every object a stack deploys, the unit it belongs to, and the order that keeps its
traffic safe, as data.

Like kapp's change rules, the order is a table of named rules (:data:`ORDER_RULES`), each with the reason a
reader sees, and :func:`deployment_graph` turns a stack config into one :class:`DeploymentGraph` before
anything is applied: a :class:`Node` per object (its key, the unit it belongs to, the component that registers
it and under which child name, its manifest) and an :class:`Edge` per pair of objects a rule orders. A rule
says one of two things:

* **create or update after**: the later object is created or updated only once the earlier one is. The
  components (:mod:`meshkit.pulumi.components`) register these edges as ``depends_on``, which the engine also
  reads the other way when both objects leave: the later one is deleted first.
* **delete after**: the later object, when it leaves the stack, is deleted only once the earlier one has been
  created or updated (or deleted). The engine deletes what left the program after all the updates of a step,
  so nothing registers these; they state what meshkit relies on, for tests/test_order.py to check.

Everything that needs the stack's structure reads this graph: the rendered stack (:mod:`meshkit.mesh.render`),
the units, fingerprints and registration set of a targeted step (:mod:`meshkit.rollout.step_scope`), the
program and its components. The components are public API and take a :class:`~meshkit.config.service.ServiceSpec`,
not a stack, so each component's objects have a builder of their own (:func:`namespace_objects`,
:func:`deny_by_default_objects`, :func:`service_objects`, :func:`route_objects`, :func:`ingress_objects`);
:func:`deployment_graph` assembles them with what only the whole stack knows (a namespace's allow-lists and
waypoint, the ingresses exposing a service). No Pulumi.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from meshkit.config.ingress import IngressSpec
from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import ServiceSpec
from meshkit.config.stack import StackConfig
from meshkit.gcpause import gc_paused
from meshkit.mesh.gatewayapi import (
    http_route_manifest,
    resolved_namespace,
    version_service_manifest,
    waypoint_manifest,
    waypoint_of,
)
from meshkit.mesh.ingress import gateway_manifest, ingress_virtual_service_manifest
from meshkit.mesh.istio import destination_rule_manifest, virtual_service_manifest
from meshkit.mesh.manifest import Manifest, deployment_name, version_service_name
from meshkit.mesh.security import (
    allow_nothing_manifest,
    authorization_policy_manifest,
    caller_principals,
    peer_authentication_manifest,
    waypoint_deny_manifests,
)
from meshkit.mesh.workloads import (
    deployment_manifest,
    namespace_manifest,
    secret_manifest,
    service_account_manifest,
    service_manifest,
)

# --- the components that register the objects ------------------------------------------------------------

TYPE_PREFIX = "meshkit:index"
NAMESPACE = f"{TYPE_PREFIX}:InjectedNamespace"
DENY_BY_DEFAULT = f"{TYPE_PREFIX}:DenyByDefault"
VERSIONED_SERVICE = f"{TYPE_PREFIX}:VersionedService"
TRAFFIC_SPLIT = f"{TYPE_PREFIX}:TrafficSplit"
HTTP_ROUTE_SPLIT = f"{TYPE_PREFIX}:HTTPRouteSplit"
INGRESS = f"{TYPE_PREFIX}:Ingress"
UNIT_KIND = {
    NAMESPACE: "namespace",
    DENY_BY_DEFAULT: "namespace",
    VERSIONED_SERVICE: "service",
    TRAFFIC_SPLIT: "service",
    HTTP_ROUTE_SPLIT: "service",
    INGRESS: "ingress",
}
"""Each component type meshkit registers, and the kind of unit it belongs to (its name is the unit's)."""


class Component(NamedTuple):
    """A top-level meshkit component, as the program registers it: Pulumi type and name."""

    type: str
    name: str

    @property
    def unit(self) -> str:
        """``namespace/<name>``, ``service/<name>`` or ``ingress/<name>``: what a targeted step deploys together."""
        return f"{UNIT_KIND[self.type]}/{self.name}"


# --- the rules -------------------------------------------------------------------------------------------

CREATE_OR_UPDATE = "create or update"
DELETE = "delete"


@dataclass(frozen=True)
class OrderRule:
    """One rule of :data:`ORDER_RULES`, in words (a documentation page prints the table)."""

    name: str
    first: str
    """What comes first."""
    then: str
    """What comes after it."""
    when: str
    """:data:`CREATE_OR_UPDATE`: ``then`` is created or updated after ``first`` is. :data:`DELETE`: ``then``,
    when it leaves the stack, is deleted after ``first`` is created, updated or deleted."""
    reason: str


NAMESPACE_FIRST = OrderRule(
    "NAMESPACE_FIRST",
    "a Namespace the stack declares",
    "the objects in it, but the routes (they wait for what they send to, which waits for the Namespace)",
    CREATE_OR_UPDATE,
    "The API server refuses an object in a namespace that does not exist yet.",
)
PODS_AFTER_IDENTITY = OrderRule(
    "PODS_AFTER_IDENTITY",
    "a service's ServiceAccount",
    "its Deployments",
    CREATE_OR_UPDATE,
    "A pod's ServiceAccount is its identity, the principal its callees allow: a pod naming one that does not "
    "exist yet is refused.",
)
PODS_AFTER_ALLOW_LIST = OrderRule(
    "PODS_AFTER_ALLOW_LIST",
    "a service's allow-list (AuthorizationPolicy, from allowFrom)",
    "its Deployments",
    CREATE_OR_UPDATE,
    "Pods start only once their allow-list is in force, so no caller it refuses ever reaches them.",
)
PODS_AFTER_SECRETS = OrderRule(
    "PODS_AFTER_SECRETS",
    "the Secret of a service's meshkit secrets",
    "its Deployments",
    CREATE_OR_UPDATE,
    "A container whose env names a Secret that does not exist yet does not start.",
)
ROUTE_AFTER_SUBSETS = OrderRule(
    "ROUTE_AFTER_SUBSETS",
    "a service's DestinationRule (a subset per version)",
    "its VirtualService, and the VirtualService of every ingress exposing it",
    CREATE_OR_UPDATE,
    "Istio fails the requests a route sends to a subset it does not know yet (503).",
)
ROUTE_AFTER_BACKENDS = OrderRule(
    "ROUTE_AFTER_BACKENDS",
    "the Service of each version a route sends to (traffic.api: gateway)",
    "the service's HTTPRoute, and the VirtualService of every ingress exposing it",
    CREATE_OR_UPDATE,
    "A route's share to a backend Service that does not exist yet fails (500).",
)
ROUTE_AFTER_PODS = OrderRule(
    "ROUTE_AFTER_PODS",
    "the Deployment of each version a route sends to (a weight above 0, a request route's target, the mirror)",
    "the service's route, and the VirtualService of every ingress exposing it",
    CREATE_OR_UPDATE,
    "Make-before-break: a version's pods are available before any request is sent to them. A version at 0% is "
    "left out, so that it can leave without waiting on the route.",
)
ROUTE_AFTER_WAYPOINT = OrderRule(
    "ROUTE_AFTER_WAYPOINT",
    "the waypoint of an ambient namespace",
    "the route of each service in it",
    CREATE_OR_UPDATE,
    "In an ambient namespace the waypoint applies the routes: it exists before a route relies on it.",
)
INGRESS_ROUTE_AFTER_GATEWAY = OrderRule(
    "INGRESS_ROUTE_AFTER_GATEWAY",
    "an ingress's Gateway",
    "its VirtualService",
    CREATE_OR_UPDATE,
    "The ingress's routes are bound to its Gateway, which Istio needs to apply them.",
)
DENY_AFTER_ALLOW_LISTS = OrderRule(
    "DENY_AFTER_ALLOW_LISTS",
    "the allow-list of every service in a namespace",
    "the namespace's deny-by-default policies",
    CREATE_OR_UPDATE,
    "Switching deny-by-default on never cuts off a caller that a service allows: the allow-lists are in force first.",
)
DENY_AFTER_MESH_SETUP = OrderRule(
    "DENY_AFTER_MESH_SETUP",
    "a namespace's PeerAuthentication and waypoint",
    "its deny-by-default policies",
    CREATE_OR_UPDATE,
    "Deny-by-default is switched on once the namespace's mutual TLS, which carries the callers' identities, and "
    "its waypoint, which one of the policies is attached to, are in place.",
)
ROUTE_TARGETS_LEAVE_AFTER_ROUTES = OrderRule(
    "ROUTE_TARGETS_LEAVE_AFTER_ROUTES",
    "a service's route, and the VirtualService of every ingress exposing it",
    "a version's Deployment and Service, and the DestinationRule",
    DELETE,
    "A version leaves only after the routes stop sending to it: the update of a route that drops it comes before "
    "its deletion (the engine deletes what left the program after the step's updates).",
)
SECRET_LEAVES_AFTER_PODS = OrderRule(
    "SECRET_LEAVES_AFTER_PODS",
    "a service's Deployments",
    "its Secret",
    DELETE,
    "Pods that still name the Secret could not restart without it: it goes after they are updated.",
)

ORDER_RULES = (
    NAMESPACE_FIRST,
    PODS_AFTER_IDENTITY,
    PODS_AFTER_ALLOW_LIST,
    PODS_AFTER_SECRETS,
    ROUTE_AFTER_SUBSETS,
    ROUTE_AFTER_BACKENDS,
    ROUTE_AFTER_PODS,
    ROUTE_AFTER_WAYPOINT,
    INGRESS_ROUTE_AFTER_GATEWAY,
    DENY_AFTER_ALLOW_LISTS,
    DENY_AFTER_MESH_SETUP,
    ROUTE_TARGETS_LEAVE_AFTER_ROUTES,
    SECRET_LEAVES_AFTER_PODS,
)
"""Every rule of the deployment graph, in the order a reader meets them."""


# --- the graph -------------------------------------------------------------------------------------------


class ObjectKey(NamedTuple):
    kind: str
    namespace: str
    """Empty for an object of the whole cluster (a Namespace)."""
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f".{self.namespace}" if self.namespace else "")


class NodeId(NamedTuple):
    """An object as the engine knows it: the component that registers it, and its child name there."""

    component: Component
    child: str


@dataclass(frozen=True)
class Node:
    id: NodeId
    owner: str
    """The config path that declares the object (``services.nginx.versions.v2``): whom a finding about it names."""
    manifest: Manifest = field(repr=False)

    @property
    def key(self) -> ObjectKey:
        meta = self.manifest["metadata"]
        return ObjectKey(self.manifest["kind"], meta.get("namespace", ""), meta["name"])

    @property
    def component(self) -> Component:
        return self.id.component

    @property
    def child(self) -> str:
        return self.id.child

    @property
    def unit(self) -> str:
        return self.id.component.unit


class Edge(NamedTuple):
    """``then`` comes after ``first``, as ``rule`` says and why."""

    first: NodeId
    then: NodeId
    rule: OrderRule


def _after(first: Iterable[Node | NodeId | None], then: Node, rule: OrderRule) -> list[Edge]:
    return [Edge(f.id if isinstance(f, Node) else f, then.id, rule) for f in first if f is not None]


@dataclass(frozen=True, kw_only=True)
class ComponentObjects(ABC):
    """What one component registers: its objects, and the create-or-update edges to them (whose earlier
    object may be another component's)."""

    edges: tuple[Edge, ...]

    @property
    @abstractmethod
    def nodes(self) -> list[Node]:
        """In the order the component registers them."""

    def needs(self, node: Node) -> list[NodeId]:
        """What ``node`` is created or updated after: what its component registers it with as ``depends_on``."""
        return [edge.first for edge in self.edges if edge.then == node.id]


@dataclass(frozen=True, kw_only=True)
class NamespaceObjects(ComponentObjects):
    namespace: Node
    peer_authentication: Node
    waypoint: Node | None

    @property
    def nodes(self) -> list[Node]:
        return [node for node in (self.namespace, self.peer_authentication, self.waypoint) if node is not None]


@dataclass(frozen=True, kw_only=True)
class DenyByDefaultObjects(ComponentObjects):
    allow_nothing: Node
    waypoint_policies: tuple[Node, ...]

    @property
    def nodes(self) -> list[Node]:
        return [self.allow_nothing, *self.waypoint_policies]


@dataclass(frozen=True, kw_only=True)
class ServiceObjects(ComponentObjects):
    """A service's workloads and what its routes point at (its :class:`RouteObjects` are the route itself)."""

    service_account: Node
    secret: Node | None
    authorization_policy: Node | None
    service: Node
    deployments: Mapping[str, Node]
    version_services: Mapping[str, Node]
    """Per version, its own Service: the routes' backends when the Gateway API routes the service."""
    destination_rule: Node | None
    """The subsets of a service routed by a VirtualService."""

    @property
    def nodes(self) -> list[Node]:
        return [
            node
            for node in (
                self.service_account,
                self.secret,
                self.authorization_policy,
                self.service,
                *self.deployments.values(),
                *self.version_services.values(),
                self.destination_rule,
            )
            if node is not None
        ]


@dataclass(frozen=True, kw_only=True)
class RouteObjects(ComponentObjects):
    route: Node
    """The service's VirtualService (``traffic.api: istio``) or HTTPRoute (``gateway``)."""
    routed_versions: list[str]

    @property
    def nodes(self) -> list[Node]:
        return [self.route]


@dataclass(frozen=True, kw_only=True)
class IngressObjects(ComponentObjects):
    gateway: Node
    virtual_service: Node

    @property
    def nodes(self) -> list[Node]:
        return [self.gateway, self.virtual_service]


def namespace_objects(name: str, spec: NamespaceSpec) -> NamespaceObjects:
    """A namespace's own objects (the :class:`InjectedNamespace` component); ``spec.waypoint`` must be
    resolved (a name or false, see :func:`meshkit.mesh.gatewayapi.resolved_namespace`)."""
    component, owner = Component(NAMESPACE, name), f"namespaces.{name}"
    namespace = Node(NodeId(component, f"{name}-namespace"), owner, namespace_manifest(name, spec))
    peer = Node(NodeId(component, f"{name}-peerauthentication"), owner, peer_authentication_manifest(name, spec))
    waypoint_name = spec.waypoint if spec.dataplane == "ambient" and isinstance(spec.waypoint, str) else None
    waypoint = (
        None
        if waypoint_name is None
        else Node(NodeId(component, f"{name}-waypoint"), owner, waypoint_manifest(name, waypoint_name))
    )
    edges = [edge for later in (peer, waypoint) if later for edge in _after([namespace], later, NAMESPACE_FIRST)]
    return NamespaceObjects(namespace=namespace, peer_authentication=peer, waypoint=waypoint, edges=tuple(edges))


def deny_by_default_objects(
    name: str, namespace: NamespaceObjects, trust_domain: str, allow_lists: Sequence[NodeId] = ()
) -> DenyByDefaultObjects:
    """Namespace ``name``'s deny-by-default (the :class:`DenyByDefault` component), after the namespace's own
    objects and its ``allow_lists``: the AuthorizationPolicy of each service in it that has one (only the whole
    stack knows them)."""
    component, owner = Component(DENY_BY_DEFAULT, name), f"namespaces.{name}"
    allow_nothing = Node(NodeId(component, f"{name}-allow-nothing"), owner, allow_nothing_manifest(name))
    # Behind a waypoint: ztunnel admits the waypoint, which denies what no allow-list allows.
    waypoint = namespace.waypoint
    policies = tuple(
        Node(NodeId(component, f"{name}-{manifest['metadata']['name']}"), owner, manifest)
        for manifest in (waypoint_deny_manifests(name, waypoint.key.name, trust_domain) if waypoint else [])
    )
    edges = [
        edge
        for node in (allow_nothing, *policies)
        for edge in (
            _after([namespace.namespace], node, NAMESPACE_FIRST)
            + _after([namespace.peer_authentication, waypoint], node, DENY_AFTER_MESH_SETUP)
            + _after(allow_lists, node, DENY_AFTER_ALLOW_LISTS)
        )
    ]
    return DenyByDefaultObjects(allow_nothing=allow_nothing, waypoint_policies=policies, edges=tuple(edges))


def service_objects(
    name: str,
    spec: ServiceSpec,
    principals: Mapping[str, str],
    waypoint: str | None = None,
    namespace: NamespaceObjects | None = None,
) -> ServiceObjects:
    """A service's workloads and route targets (the :class:`VersionedService` component). ``principals``: the
    SPIFFE principal of each caller its ``allowFrom`` names; ``waypoint``: its ambient namespace's, if any (the
    allow-list is attached to it); ``namespace``: the namespace's objects, when the stack declares it."""
    component, owner = Component(VERSIONED_SERVICE, name), f"services.{name}"

    def node(child: str, manifest: Manifest, version: str | None = None) -> Node:
        return Node(NodeId(component, child), owner + (f".versions.{version}" if version else ""), manifest)

    account = node(f"{name}-serviceaccount", service_account_manifest(name, spec))
    secret = secret_manifest(name, spec)
    secret_node = None if secret is None else node(f"{name}-secrets", secret)
    policy = authorization_policy_manifest(name, spec, dict(principals), waypoint)
    policy_node = None if policy is None else node(f"{name}-authorizationpolicy", policy)
    service = node(f"{name}-service", service_manifest(name, spec))
    deployments = {
        v: node(f"{deployment_name(name, v)}-deployment", deployment_manifest(name, spec, v), v) for v in spec.versions
    }
    # The Gateway API routes to one Service per version; a VirtualService to the DestinationRule's subsets.
    gateway = spec.traffic.api == "gateway"
    version_services = {
        v: node(f"{version_service_name(name, v)}-service", version_service_manifest(name, spec, v), v)
        for v in (spec.versions if gateway else ())
    }
    destination_rule = None if gateway else node(f"{name}-destinationrule", destination_rule_manifest(name, spec))
    objects = [account, secret_node, policy_node, service, *deployments.values(), *version_services.values()]
    edges = [
        edge
        for later in (*objects, destination_rule)
        if later is not None
        for edge in _after([namespace.namespace if namespace else None], later, NAMESPACE_FIRST)
    ]
    for deployment in deployments.values():
        edges += _after([account], deployment, PODS_AFTER_IDENTITY)
        edges += _after([secret_node], deployment, PODS_AFTER_SECRETS)
        edges += _after([policy_node], deployment, PODS_AFTER_ALLOW_LIST)
    return ServiceObjects(
        service_account=account,
        secret=secret_node,
        authorization_policy=policy_node,
        service=service,
        deployments=deployments,
        version_services=version_services,
        destination_rule=destination_rule,
        edges=tuple(edges),
    )


def route_targets(backend: ServiceObjects, versions: Collection[str]) -> list[tuple[Node, OrderRule]]:
    """What a route to ``versions`` of a service comes after, and by which rule: its subsets (the
    DestinationRule) or the versions' Services (Gateway API), and the versions' pods."""
    routed = sorted(set(versions) & set(backend.deployments))
    targets = [] if backend.destination_rule is None else [(backend.destination_rule, ROUTE_AFTER_SUBSETS)]
    targets += [(backend.version_services[v], ROUTE_AFTER_BACKENDS) for v in routed if v in backend.version_services]
    return targets + [(backend.deployments[v], ROUTE_AFTER_PODS) for v in routed]


def route_objects(name: str, spec: ServiceSpec, backend: ServiceObjects, waypoint: Node | None = None) -> RouteObjects:
    """A service's route (the :class:`TrafficSplit` or :class:`HTTPRouteSplit` component), after what it
    sends to in ``backend`` and the ``waypoint`` of its ambient namespace, when the stack declares it."""
    if spec.traffic.api == "gateway":
        route_id, manifest = NodeId(Component(HTTP_ROUTE_SPLIT, name), f"{name}-httproute"), http_route_manifest
    else:
        route_id, manifest = NodeId(Component(TRAFFIC_SPLIT, name), f"{name}-virtualservice"), virtual_service_manifest
    route = Node(route_id, f"services.{name}", manifest(name, spec))
    # A version at 0% is not waited for: it can leave without the route changing.
    routed = sorted(spec.routed_versions() & set(backend.deployments))
    edges = [edge for target, rule in route_targets(backend, routed) for edge in _after([target], route, rule)]
    edges += _after([waypoint], route, ROUTE_AFTER_WAYPOINT)
    return RouteObjects(route=route, routed_versions=routed, edges=tuple(edges))


def ingress_objects(
    name: str,
    spec: IngressSpec,
    services: Mapping[str, ServiceSpec],
    backends: Mapping[str, ServiceObjects],
    namespace: NamespaceObjects | None = None,
) -> IngressObjects:
    """An ingress's Gateway and the routes bound to it (the :class:`Ingress` component), after the subsets
    and pods of every version an exposed service routes to (``backends``: their objects, by service)."""
    component, owner = Component(INGRESS, name), f"ingresses.{name}"
    gateway = Node(NodeId(component, f"{name}-gateway"), owner, gateway_manifest(name, spec))
    bound = ingress_virtual_service_manifest(name, spec, services)
    routes = Node(NodeId(component, f"{name}-ingress-virtualservice"), owner, bound)
    edges = _after([namespace.namespace if namespace else None], gateway, NAMESPACE_FIRST)
    edges += _after([gateway], routes, INGRESS_ROUTE_AFTER_GATEWAY)
    for service in dict.fromkeys(route.service for route in spec.routes):
        for target, rule in route_targets(backends[service], services[service].routed_versions()):
            edges += _after([target], routes, rule)
    return IngressObjects(gateway=gateway, virtual_service=routes, edges=tuple(edges))


@dataclass(frozen=True)
class DeploymentGraph:
    nodes: tuple[Node, ...]
    """Every object, by namespace, service and ingress as the stack declares them."""
    edges: tuple[Edge, ...]

    @cached_property
    def _needs(self) -> dict[NodeId, list[NodeId]]:
        needs: dict[NodeId, list[NodeId]] = {node.id: [] for node in self.nodes}
        for edge in self.edges:
            if edge.rule.when == CREATE_OR_UPDATE:
                needs[edge.then].append(edge.first)
        return needs

    def needs(self, node: NodeId) -> list[NodeId]:
        """What ``node`` is created or updated after (its ``depends_on``)."""
        return self._needs[node]

    @cached_property
    def units(self) -> dict[str, list[Node]]:
        """Every object by the unit it belongs to (``namespace/<name>``, ``service/<name>``, ``ingress/<name>``)."""
        units: dict[str, list[Node]] = {}
        for node in self.nodes:
            units.setdefault(node.unit, []).append(node)
        return units

    @cached_property
    def components(self) -> frozenset[Component]:
        """Every component the program registers."""
        return frozenset(node.component for node in self.nodes)

    @cached_property
    def _component_needs(self) -> dict[Component, set[Component]]:
        needs: dict[Component, set[Component]] = {component: set() for component in self.components}
        for node in self.nodes:
            needs[node.component].update(first.component for first in self.needs(node.id))
        return needs

    def component_needs(self, component: Component) -> set[Component]:
        """The other components whose objects ``component``'s objects are created after."""
        return self._component_needs.get(component, set()) - {component}

    @cached_property
    def _component_dependents(self) -> dict[Component, set[Component]]:
        dependents: dict[Component, set[Component]] = {component: set() for component in self.components}
        for component, needs in self._component_needs.items():
            for first in needs:
                dependents[first].add(component)
        return dependents

    def component_dependents(self, component: Component) -> set[Component]:
        """The other components with an object created after one of ``component``'s."""
        return self._component_dependents.get(component, set()) - {component}

    @cached_property
    def _edges_to(self) -> dict[Component, list[Edge]]:
        edges: dict[Component, list[Edge]] = {}
        for edge in self.edges:
            edges.setdefault(edge.then.component, []).append(edge)
        return edges

    def targets(self, component: Component, rule: OrderRule) -> list[NodeId]:
        """What ``component``'s objects come after by ``rule``, each once."""
        return list(dict.fromkeys(edge.first for edge in self._edges_to.get(component, []) if edge.rule == rule))


def _leaving_after_routes(service: ServiceObjects, users: Sequence[Node]) -> list[Edge]:
    """The delete-after edges of a service: any version (at 0% too) may leave in a later step, after the
    routes that used it (``users``) have been updated; its Secret after the pods that named it."""
    targets = [service.destination_rule, *service.version_services.values(), *service.deployments.values()]
    edges = [edge for target in targets if target for edge in _after(users, target, ROUTE_TARGETS_LEAVE_AFTER_ROUTES)]
    if service.secret is not None:
        edges += _after(service.deployments.values(), service.secret, SECRET_LEAVES_AFTER_PODS)
    return edges


def deployment_graph(stack: StackConfig) -> DeploymentGraph:
    """Every object of a validated stack config, and the order that keeps its traffic safe."""
    # Some 100,000 new dicts, lists and nodes on a stack of 1000 services, and no garbage (see gc_paused).
    with gc_paused():
        return _deployment_graph(stack)


def _deployment_graph(stack: StackConfig) -> DeploymentGraph:
    namespaces = {name: namespace_objects(name, resolved_namespace(stack, name)) for name in stack.namespaces}
    principals = caller_principals(stack)
    services: dict[str, ServiceObjects] = {}
    routes: dict[str, RouteObjects] = {}
    for name, svc in stack.services.items():
        namespace = namespaces.get(svc.namespace)
        services[name] = service_objects(name, svc, principals, waypoint_of(stack, svc.namespace), namespace)
        routes[name] = route_objects(name, svc, services[name], namespace.waypoint if namespace else None)
    deny = {
        name: deny_by_default_objects(
            name,
            namespaces[name],
            stack.trust_domain,
            [
                policy.id
                for service, svc in stack.services.items()
                if svc.namespace == name and (policy := services[service].authorization_policy) is not None
            ],
        )
        for name, spec in stack.namespaces.items()
        if spec.default_deny
    }
    ingresses = {
        name: ingress_objects(name, spec, stack.services, services, namespaces.get(spec.namespace))
        for name, spec in stack.ingresses.items()
    }
    nodes: list[Node] = []
    for name, objects in namespaces.items():
        nodes += objects.nodes + (deny[name].nodes if name in deny else [])
    for name, service in services.items():
        routing = (
            [*service.version_services.values()] if service.destination_rule is None else [service.destination_rule]
        )
        nodes += [service.service_account, service.service, *service.deployments.values(), *routing]
        nodes += [routes[name].route, *(n for n in (service.secret, service.authorization_policy) if n is not None)]
    for ingress in ingresses.values():
        nodes += ingress.nodes
    pieces: list[ComponentObjects] = [*namespaces.values(), *deny.values(), *services.values(), *routes.values()]
    edges = [edge for piece in [*pieces, *ingresses.values()] for edge in piece.edges]
    for name, service in services.items():
        exposing = [
            ingresses[ingress].virtual_service
            for ingress, spec in stack.ingresses.items()
            if any(route.service == name for route in spec.routes)
        ]
        edges += _leaving_after_routes(service, [routes[name].route, *exposing])
    return DeploymentGraph(tuple(nodes), tuple(edges))
