"""Pulumi components: a thin shell that registers what :mod:`meshkit.mesh.render` produces.

Each component takes ``(name, args, opts=None)`` like Pulumi's own, names its children ``f"{name}-…"``
with ``parent=self``, and registers the objects of its part of the deployment graph (:mod:`meshkit.mesh.order`),
each with ``depends_on`` the objects the graph's order rules put before it: its own children, or those of the
components it is given (the namespace, the backend of a route, an ingress's backends). So a route waits for the
subsets, Services and pods of every version it sends to, pods for their identity, allow-list and secrets, and so
on, as :data:`meshkit.mesh.order.ORDER_RULES` say and why. What only the whole stack knows (a namespace's
allow-lists, the waypoint of a route's namespace) the caller passes: :func:`meshkit.pulumi.program.build_mesh`
takes it from the stack's graph. Each component keeps its part of the graph as ``objects``.

For programs that import them, the components behave as Pulumi users expect: each exposes the names of its
objects as ``Output``s (depending on the object, so a resource that uses one is created after it); the
caller's ``provider``, ``protect`` and ``transforms`` reach every child through ``parent``; and a component
type that is ever renamed keeps its old name in ``former_types``, which the engine reads as aliases, so an
upgrade of meshkit never deletes and recreates a live route (tests/e2e/test_component_aliases.py).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pulumi
import pulumi_kubernetes as k8s

from meshkit.config.ingress import IngressSpec
from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import ServiceSpec
from meshkit.errors import MeshkitError
from meshkit.mesh.order import (
    DENY_BY_DEFAULT,
    HTTP_ROUTE_SPLIT,
    INGRESS,
    NAMESPACE,
    TRAFFIC_SPLIT,
    VERSIONED_SERVICE,
    ComponentObjects,
    Node,
    NodeId,
    RouteObjects,
    deny_by_default_objects,
    ingress_objects,
    namespace_objects,
    route_objects,
    route_targets,
    service_objects,
)
from meshkit.mesh.workloads import secret_names

Registered = TypeVar("Registered", bound=pulumi.Resource)


def _child_opts(
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource] | None = None,
    on_error: pulumi.ErrorHook | None = None,
    custom_timeouts: pulumi.CustomTimeouts | None = None,
) -> pulumi.ResourceOptions:
    # A fresh options object per child: never copy the caller's opts into a child, which would replace parent.
    return pulumi.ResourceOptions(
        parent=parent,
        depends_on=depends_on or [],
        hooks=pulumi.ResourceHookBinding(on_error=[on_error]) if on_error is not None else None,
        custom_timeouts=custom_timeouts,
    )


def _service_metadata(metadata: Mapping[str, Any], awaited: bool) -> Mapping[str, Any]:
    """A Service's metadata, with the provider's await turned off unless ``awaited`` (see
    :attr:`VersionedServiceArgs.await_services`: those 10 s per Service were most of a first `up`)."""
    if awaited:
        return metadata
    return {**metadata, "annotations": {**(metadata.get("annotations") or {}), "pulumi.com/skipAwait": "true"}}


def _name_of(resource: pulumi.Resource, name: str) -> pulumi.Output[str]:
    """An object's name as an Output that depends on the object: known at preview (meshkit sets every name),
    and whoever uses it waits for the object to exist."""
    return resource.urn.apply(lambda _: name)


class MeshkitComponent(pulumi.ComponentResource):
    """What every meshkit component shares: its Pulumi type, and the types it was registered under by earlier
    meshkit releases. Renaming a component means moving its old type into ``former_types``; the engine then
    matches the existing resource and its children instead of deleting and recreating them."""

    pulumi_type: ClassVar[str]
    former_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None) -> None:
        aliases = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=former) for former in self.former_types])
        super().__init__(self.pulumi_type, name, None, pulumi.ResourceOptions.merge(opts, aliases))
        self._registered: dict[NodeId, pulumi.Resource] = {}

    def resource(self, node: NodeId) -> pulumi.Resource:
        """The child this component registered for ``node`` of the deployment graph."""
        return self._registered[node]

    def _add(self, node: Node, resource: Registered) -> Registered:
        self._registered[node.id] = resource
        return resource

    def _opts(
        self,
        objects: ComponentObjects,
        node: Node,
        linked: Sequence[MeshkitComponent] = (),
        extra: Sequence[pulumi.Resource] = (),
        on_error: pulumi.ErrorHook | None = None,
        custom_timeouts: pulumi.CustomTimeouts | None = None,
    ) -> pulumi.ResourceOptions:
        """The options of ``node``'s child: ``depends_on`` what the graph puts before it, found among this
        component's children or those of the ``linked`` components it was given, plus ``extra``."""
        registered = ChainMap(self._registered, *(component._registered for component in linked))
        depends_on = [registered[first] for first in objects.needs(node)]
        return _child_opts(self, [*depends_on, *extra], on_error, custom_timeouts)

    def _custom(
        self,
        objects: ComponentObjects,
        node: Node,
        linked: Sequence[MeshkitComponent] = (),
        extra: Sequence[pulumi.Resource] = (),
        on_error: pulumi.ErrorHook | None = None,
    ) -> k8s.apiextensions.CustomResource:
        """An Istio or Gateway API object; every one meshkit renders has a ``spec``."""
        manifest = node.manifest
        resource = k8s.apiextensions.CustomResource(
            node.child,
            api_version=manifest["apiVersion"],
            kind=manifest["kind"],
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=self._opts(objects, node, linked, extra, on_error),
        )
        return self._add(node, resource)


class InjectedNamespace(MeshkitComponent):
    """A Namespace whose pods join the mesh: exactly one data-plane label (sidecar, revision or ambient),
    and its mutual-TLS mode (a PeerAuthentication, STRICT unless the spec says PERMISSIVE). An ambient
    namespace whose spec names a ``waypoint`` also gets that waypoint (a Gateway of class ``istio-waypoint``)
    and the label that sends its services' traffic through it; ``build_mesh`` names it when the spec leaves it
    automatic (:func:`meshkit.mesh.gatewayapi.resolved_namespace`)."""

    pulumi_type = NAMESPACE

    def __init__(self, name: str, args: NamespaceSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        objects = self.objects = namespace_objects(name, args)
        self.namespace = self._add(
            objects.namespace,
            k8s.core.v1.Namespace(
                objects.namespace.child,
                metadata=objects.namespace.manifest["metadata"],
                opts=self._opts(objects, objects.namespace),
            ),
        )
        self.peer_authentication = self._custom(objects, objects.peer_authentication)
        self.waypoint_name: str | None = None if objects.waypoint is None else objects.waypoint.key.name
        self.waypoint = None if objects.waypoint is None else self._custom(objects, objects.waypoint)
        self.namespace_name: pulumi.Output[str] = _name_of(self.namespace, name)
        # Plain values known from the manifests: cheaper for the engine than awaiting the children's outputs.
        outputs: dict[str, str] = {"namespaceName": name, "mtls": args.mtls}
        if self.waypoint_name is not None:
            outputs["waypoint"] = self.waypoint_name
        self.register_outputs(outputs)


@dataclass(frozen=True)
class DenyByDefaultArgs:
    namespace: InjectedNamespace
    allow_policies: list[pulumi.Resource] = field(default_factory=list)
    """The namespace's ALLOW policies: they take effect before the namespace-wide deny does."""
    trust_domain: str = "cluster.local"
    """Of the waypoint's identity, when the namespace has one (see
    :func:`meshkit.mesh.security.waypoint_deny_manifests`)."""


class DenyByDefault(MeshkitComponent):
    """Istio's allow-nothing policy for a namespace, applied only after every allow-list in it exists, so
    that switching it on never cuts off a caller that a service allows."""

    pulumi_type = DENY_BY_DEFAULT

    def __init__(self, name: str, args: DenyByDefaultArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        objects = self.objects = deny_by_default_objects(name, args.namespace.objects, args.trust_domain)
        # The allow-lists are other units' objects: the caller passes them (DENY_AFTER_ALLOW_LISTS).
        self.policy = self._custom(objects, objects.allow_nothing, [args.namespace], args.allow_policies)
        self.waypoint_policies = [
            self._custom(objects, node, [args.namespace], args.allow_policies) for node in objects.waypoint_policies
        ]
        self.register_outputs({})


@dataclass(frozen=True)
class VersionedServiceArgs:
    spec: ServiceSpec
    namespace: InjectedNamespace | None = None
    """The namespace component to wait for, when this program also creates the namespace."""
    principals: Mapping[str, str] = field(default_factory=dict)
    """SPIFFE principal per service named in ``allowFrom`` (see :func:`meshkit.mesh.security.caller_principals`)."""
    secret_values: pulumi.Input[Mapping[str, str]] | None = None
    """The values of the ``meshkit:secrets`` the env uses, as a Pulumi secret."""
    ready_timeout: str | None = None
    """How long the engine waits for each Deployment to become Available (a duration such as ``5m``)."""
    on_error: pulumi.ErrorHook | None = None
    """Called by the engine when a Deployment or the DestinationRule fails (see :mod:`meshkit.pulumi.failures`)."""
    autoscaled: Collection[str] = ()
    """Versions whose replica count a HorizontalPodAutoscaler owns: the engine ignores changes to their
    ``spec.replicas`` (the spec's count is only the first one), so an ``up`` never undoes a scale-out."""
    waypoint: str | None = None
    """The waypoint of the service's ambient namespace, if it has one: the allow-list is attached to the
    service's Services for the waypoint to enforce (see :func:`meshkit.mesh.security.authorization_policy_manifest`)."""
    await_services: bool = True
    """Whether the provider holds each Service until its endpoints have been quiet for 10 s (its default).
    Nothing needs that wait: a route waits for its versions' Deployments to be available, so their pods are
    ready and in the endpoints. meshkit's program turns it off when it deploys to a cluster."""


class VersionedService(MeshkitComponent):
    """One Deployment per version, one Service selecting ``app`` only, and what the routes point at: one
    DestinationRule of subsets (``traffic.api: istio``) or one Service per version (``gateway``); its own
    ServiceAccount, its callers' allow-list (AuthorizationPolicy) and the Secret its env uses."""

    pulumi_type = VERSIONED_SERVICE

    def __init__(self, name: str, args: VersionedServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        spec = self.spec = args.spec
        callers = sorted({allow.service for allow in spec.allow_from or [] if allow.service} - set(args.principals))
        if callers:
            raise MeshkitError(
                f"service {name!r} allows calls from {', '.join(callers)}: pass their SPIFFE principals as "
                "principals (meshkit.mesh.security.caller_principals(stack) computes them from a stack config)"
            )
        unknown = sorted(set(args.autoscaled) - set(spec.versions))
        if unknown:
            raise MeshkitError(f"service {name!r}: autoscaled names versions it does not declare: {', '.join(unknown)}")
        namespace = args.namespace.objects if args.namespace is not None else None
        objects = self.objects = service_objects(name, spec, args.principals, args.waypoint, namespace)
        linked = [args.namespace] if args.namespace is not None else []

        account = objects.service_account
        self.service_account = self._add(
            account,
            k8s.core.v1.ServiceAccount(
                account.child,
                metadata=account.manifest["metadata"],
                automount_service_account_token=account.manifest["automountServiceAccountToken"],
                opts=self._opts(objects, account, linked),
            ),
        )
        self.secret = self._secret(name, args, linked)
        self.authorization_policy = (
            None
            if objects.authorization_policy is None
            else self._custom(objects, objects.authorization_policy, linked)
        )
        self.service = self._service(objects.service, args, linked)
        timeouts = (
            pulumi.CustomTimeouts(create=args.ready_timeout, update=args.ready_timeout) if args.ready_timeout else None
        )
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        for version, node in objects.deployments.items():
            opts = self._opts(objects, node, linked, on_error=args.on_error, custom_timeouts=timeouts)
            if version in args.autoscaled:
                opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["spec.replicas"]))
            manifest = node.manifest
            self.deployments[version] = self._add(
                node,
                k8s.apps.v1.Deployment(node.child, metadata=manifest["metadata"], spec=manifest["spec"], opts=opts),
            )
        # The Gateway API routes to one Service per version; a VirtualService to the DestinationRule's subsets.
        self.version_services: dict[str, k8s.core.v1.Service] = {
            version: self._service(node, args, linked, args.on_error)
            for version, node in objects.version_services.items()
        }
        self.destination_rule: k8s.apiextensions.CustomResource | None = None
        self.destination_rule_name: pulumi.Output[str] | None = None
        outputs: dict[str, object] = {
            "serviceName": objects.service.key.name,
            "deploymentNames": {v: node.key.name for v, node in objects.deployments.items()},
        }
        if objects.version_services:
            outputs["versionServiceNames"] = {v: node.key.name for v, node in objects.version_services.items()}
        if objects.destination_rule is not None:
            self.destination_rule = self._custom(objects, objects.destination_rule, linked, on_error=args.on_error)
            self.destination_rule_name = _name_of(self.destination_rule, objects.destination_rule.key.name)
            outputs["destinationRuleName"] = objects.destination_rule.key.name
        self.service_name: pulumi.Output[str] = _name_of(self.service, objects.service.key.name)
        self.service_account_name: pulumi.Output[str] = _name_of(self.service_account, account.key.name)
        self.deployment_names: dict[str, pulumi.Output[str]] = {
            version: _name_of(self.deployments[version], node.key.name) for version, node in objects.deployments.items()
        }
        self.version_service_names: dict[str, pulumi.Output[str]] = {
            version: _name_of(self.version_services[version], node.key.name)
            for version, node in objects.version_services.items()
        }
        # The state records plain names: cheaper for the engine than awaiting every child (the Outputs above
        # are for the Python program that holds this component).
        self.register_outputs(outputs)

    def route_targets(self, versions: Collection[str]) -> list[pulumi.Resource]:
        """What a route to ``versions`` must wait for: their pods, and their subsets (the DestinationRule) or
        their Services (Gateway API)."""
        return [self.resource(node.id) for node, _ in route_targets(self.objects, versions)]

    def _service(
        self,
        node: Node,
        args: VersionedServiceArgs,
        linked: Sequence[MeshkitComponent],
        on_error: pulumi.ErrorHook | None = None,
    ) -> k8s.core.v1.Service:
        manifest = node.manifest
        service = k8s.core.v1.Service(
            node.child,
            metadata=_service_metadata(manifest["metadata"], args.await_services),
            spec=manifest["spec"],
            opts=self._opts(self.objects, node, linked, on_error=on_error),
        )
        return self._add(node, service)

    def _secret(
        self, name: str, args: VersionedServiceArgs, linked: Sequence[MeshkitComponent]
    ) -> k8s.core.v1.Secret | None:
        node = self.objects.secret
        if node is None:
            return None
        if args.secret_values is None:
            raise MeshkitError(f"service {name!r} uses meshkit secrets; pass their values as secret_values")
        names = secret_names(args.spec)
        values = pulumi.Output.secret(args.secret_values).apply(lambda all_values: {k: all_values[k] for k in names})
        secret = k8s.core.v1.Secret(
            node.child,
            metadata=node.manifest["metadata"],
            type=node.manifest["type"],
            string_data=values,
            opts=self._opts(self.objects, node, linked),
        )
        return self._add(node, secret)


@dataclass(frozen=True)
class TrafficSplitArgs:
    spec: ServiceSpec
    """The service whose routes, weights and faults (:class:`~meshkit.config.traffic.FaultRule`) to compose."""
    backend: VersionedService
    """The workloads and subsets the routes point at; the VirtualService waits for them."""
    extra_depends_on: list[pulumi.Resource] = field(default_factory=list)
    on_error: pulumi.ErrorHook | None = None
    """Called by the engine when the VirtualService fails (see :mod:`meshkit.pulumi.failures`)."""


class TrafficSplit(MeshkitComponent):
    """The single VirtualService of a service: fault rules, request-content routes, weighted default."""

    pulumi_type = TRAFFIC_SPLIT

    def __init__(self, name: str, args: TrafficSplitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.spec.traffic.api != "istio" or args.backend.destination_rule is None:
            raise MeshkitError(
                f"service {name!r} is routed by the Gateway API (traffic.api: gateway): use HTTPRouteSplit"
            )
        super().__init__(name, opts)
        # Make-before-break: the subsets and the pods of every routed version exist before the route.
        self.objects, self.virtual_service = _registered_route(self, name, args)
        self.routed_versions = self.objects.routed_versions
        self.virtual_service_name: pulumi.Output[str] = _name_of(self.virtual_service, name)
        self.register_outputs({"virtualServiceName": name, "routedVersions": self.routed_versions})


@dataclass(frozen=True)
class HTTPRouteSplitArgs:
    spec: ServiceSpec
    """A service with ``traffic.api: gateway``: its weights, request routes, timeouts and mirror."""
    backend: VersionedService
    """The workloads and version Services the route points at; the HTTPRoute waits for them."""
    extra_depends_on: list[pulumi.Resource] = field(default_factory=list)
    """E.g. the waypoint of the service's ambient namespace, which applies the route."""
    on_error: pulumi.ErrorHook | None = None
    """Called by the engine when the HTTPRoute fails (see :mod:`meshkit.pulumi.failures`)."""


class HTTPRouteSplit(MeshkitComponent):
    """The single HTTPRoute of a service routed by the Gateway API (GAMMA: its parent is the Service), with
    one backend per version's Service (see :mod:`meshkit.mesh.gatewayapi`)."""

    pulumi_type = HTTP_ROUTE_SPLIT

    def __init__(self, name: str, args: HTTPRouteSplitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.spec.traffic.api != "gateway" or not args.backend.version_services:
            raise MeshkitError(f"service {name!r} is routed by a VirtualService (traffic.api: istio): use TrafficSplit")
        super().__init__(name, opts)
        # Make-before-break: the Service and the pods of every version the route sends to (or mirrors to)
        # exist before the route; a version at 0% is left out, so it can leave without waiting on the route.
        self.objects, self.http_route = _registered_route(self, name, args)
        self.routed_versions = self.objects.routed_versions
        self.http_route_name: pulumi.Output[str] = _name_of(self.http_route, name)
        self.register_outputs({"httpRouteName": name, "routedVersions": self.routed_versions})


def _registered_route(
    component: MeshkitComponent, name: str, args: TrafficSplitArgs | HTTPRouteSplitArgs
) -> tuple[RouteObjects, k8s.apiextensions.CustomResource]:
    """A service's route, registered after what it sends to of its backend and what the caller adds."""
    objects = route_objects(name, args.spec, args.backend.objects)
    route = component._custom(objects, objects.route, [args.backend], args.extra_depends_on, on_error=args.on_error)
    return objects, route


@dataclass(frozen=True)
class IngressArgs:
    spec: IngressSpec
    backends: Mapping[str, VersionedService]
    """The component of every service the ingress routes to, by service name."""
    namespace: InjectedNamespace | None = None
    """The namespace component to wait for, when this program also creates the namespace."""
    on_error: pulumi.ErrorHook | None = None


class Ingress(MeshkitComponent):
    """An entry point from outside the mesh: an Istio Gateway, and the VirtualService bound to it that
    applies each exposed service's own routing (see :mod:`meshkit.mesh.ingress`)."""

    pulumi_type = INGRESS

    def __init__(self, name: str, args: IngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        missing = sorted({route.service for route in args.spec.routes} - set(args.backends))
        if missing:
            raise MeshkitError(f"ingress {name!r} routes to {', '.join(missing)}: pass their components as backends")
        # Make-before-break, as for a service's own route: the Gateway, and the subsets and pods of every
        # version an exposed service routes to, exist before the route from outside points at them.
        objects = self.objects = ingress_objects(
            name,
            args.spec,
            {service: backend.spec for service, backend in args.backends.items()},
            {service: backend.objects for service, backend in args.backends.items()},
            args.namespace.objects if args.namespace is not None else None,
        )
        linked = [*([args.namespace] if args.namespace is not None else []), *args.backends.values()]
        self.gateway = self._custom(objects, objects.gateway, linked)
        self.virtual_service = self._custom(objects, objects.virtual_service, linked, on_error=args.on_error)
        self.gateway_name: pulumi.Output[str] = _name_of(self.gateway, name)
        self.virtual_service_name: pulumi.Output[str] = _name_of(self.virtual_service, name)
        self.register_outputs({"gatewayName": name, "hosts": list(args.spec.hosts), "port": args.spec.listen_port})
