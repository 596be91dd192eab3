"""Pulumi components: a thin shell that registers what :mod:`meshkit.mesh.render` produces.

Each component takes ``(name, args, opts=None)`` like Pulumi's own, names its children ``f"{name}-…"``
with ``parent=self``, and expresses the ordering that keeps traffic safe as ``depends_on``:

* a VirtualService waits for the DestinationRule (which holds every subset) and for the Deployment of
  every version it routes to, so a route never points at a subset or pods that are not there yet; an
  HTTPRoute (``traffic.api: gateway``) likewise waits for the Service and the Deployment of every version
  it sends to, and in an ambient namespace for the waypoint that applies it;
* a version that leaves is first dropped from the routes (its weight must already be 0, see
  :mod:`meshkit.mesh.checks`); its Deployment is deleted by the engine only after the updates of the step,
  Pulumi's order for deletions of resources that left the program.

For programs that import them, the components behave as Pulumi users expect: each exposes the names of its
objects as ``Output``s (depending on the object, so a resource that uses one is created after it); the
caller's ``provider``, ``protect`` and ``transforms`` reach every child through ``parent``; and a component
type that is ever renamed keeps its old name in ``former_types``, which the engine reads as aliases, so an
upgrade of meshkit never deletes and recreates a live route (tests/e2e/test_component_aliases.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pulumi
import pulumi_kubernetes as k8s

from meshkit.config.ingress import IngressSpec
from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import ServiceSpec
from meshkit.errors import MeshkitError
from meshkit.mesh.gatewayapi import http_route_manifest, version_service_manifest, waypoint_manifest
from meshkit.mesh.ingress import gateway_manifest, ingress_virtual_service_manifest
from meshkit.mesh.istio import destination_rule_manifest, virtual_service_manifest
from meshkit.mesh.manifest import Manifest, deployment_name, version_service_name
from meshkit.mesh.order import (
    DENY_BY_DEFAULT,
    HTTP_ROUTE_SPLIT,
    INGRESS,
    NAMESPACE,
    TRAFFIC_SPLIT,
    VERSIONED_SERVICE,
)
from meshkit.mesh.security import (
    allow_nothing_manifest,
    authorization_policy_manifest,
    peer_authentication_manifest,
    waypoint_deny_manifests,
)
from meshkit.mesh.workloads import (
    deployment_manifest,
    namespace_manifest,
    secret_manifest,
    secret_names,
    service_account_manifest,
    service_manifest,
)


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


class InjectedNamespace(MeshkitComponent):
    """A Namespace whose pods join the mesh: exactly one data-plane label (sidecar, revision or ambient),
    and its mutual-TLS mode (a PeerAuthentication, STRICT unless the spec says PERMISSIVE). An ambient
    namespace whose spec names a ``waypoint`` also gets that waypoint (a Gateway of class ``istio-waypoint``)
    and the label that sends its services' traffic through it; ``build_mesh`` names it when the spec leaves it
    automatic (:func:`meshkit.mesh.gatewayapi.resolved_namespace`)."""

    pulumi_type = NAMESPACE

    def __init__(self, name: str, args: NamespaceSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        manifest = namespace_manifest(name, args)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=manifest["metadata"], opts=_child_opts(self)
        )
        self.peer_authentication = _custom_resource(
            f"{name}-peerauthentication", peer_authentication_manifest(name, args), _child_opts(self, [self.namespace])
        )
        self.waypoint_name: str | None = (
            args.waypoint if args.dataplane == "ambient" and isinstance(args.waypoint, str) else None
        )
        self.waypoint = (
            None
            if self.waypoint_name is None
            else _custom_resource(
                f"{name}-waypoint", waypoint_manifest(name, self.waypoint_name), _child_opts(self, [self.namespace])
            )
        )
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
        self.policy = _custom_resource(
            f"{name}-allow-nothing",
            allow_nothing_manifest(name),
            _child_opts(self, [args.namespace, *args.allow_policies]),
        )
        # Behind a waypoint: ztunnel admits the waypoint, which denies what no allow-list allows.
        waypoint = args.namespace.waypoint_name
        after_allow_lists = [args.namespace, *args.allow_policies]
        self.waypoint_policies = [
            _custom_resource(f"{name}-{manifest['metadata']['name']}", manifest, _child_opts(self, after_allow_lists))
            for manifest in (waypoint_deny_manifests(name, waypoint, args.trust_domain) if waypoint else [])
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
        # The Namespace object itself, not its component: waiting on a component means waiting on all its children.
        after_namespace: list[pulumi.Resource] = [args.namespace.namespace] if args.namespace is not None else []

        account = service_account_manifest(name, spec)
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-serviceaccount",
            metadata=account["metadata"],
            automount_service_account_token=account["automountServiceAccountToken"],
            opts=_child_opts(self, after_namespace),
        )
        # Pods start only once their identity, their allow-list and their secrets exist.
        pods_after: list[pulumi.Resource] = [*after_namespace, self.service_account]
        self.secret = self._secret(name, args, after_namespace)
        if self.secret is not None:
            pods_after.append(self.secret)
        callers = sorted({allow.service for allow in spec.allow_from or [] if allow.service} - set(args.principals))
        if callers:
            raise MeshkitError(
                f"service {name!r} allows calls from {', '.join(callers)}: pass their SPIFFE principals as "
                "principals (meshkit.mesh.security.caller_principals(stack) computes them from a stack config)"
            )
        policy = authorization_policy_manifest(name, spec, dict(args.principals), args.waypoint)
        self.authorization_policy = (
            None
            if policy is None
            else _custom_resource(f"{name}-authorizationpolicy", policy, _child_opts(self, after_namespace))
        )
        if self.authorization_policy is not None:
            pods_after.append(self.authorization_policy)

        service = service_manifest(name, spec)
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=_service_metadata(service["metadata"], args.await_services),
            spec=service["spec"],
            opts=_child_opts(self, after_namespace),
        )
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        timeouts = (
            pulumi.CustomTimeouts(create=args.ready_timeout, update=args.ready_timeout) if args.ready_timeout else None
        )
        unknown = sorted(set(args.autoscaled) - set(spec.versions))
        if unknown:
            raise MeshkitError(f"service {name!r}: autoscaled names versions it does not declare: {', '.join(unknown)}")
        for version in spec.versions:
            manifest = deployment_manifest(name, spec, version)
            opts = _child_opts(self, pods_after, args.on_error, timeouts)
            if version in args.autoscaled:
                opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["spec.replicas"]))
            self.deployments[version] = k8s.apps.v1.Deployment(
                f"{deployment_name(name, version)}-deployment",
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=opts,
            )
        # The Gateway API routes to one Service per version; a VirtualService to the DestinationRule's subsets.
        self.version_services: dict[str, k8s.core.v1.Service] = {}
        self.destination_rule: k8s.apiextensions.CustomResource | None = None
        self.destination_rule_name: pulumi.Output[str] | None = None
        outputs: dict[str, object] = {
            "serviceName": service["metadata"]["name"],
            "deploymentNames": {v: deployment_name(name, v) for v in self.deployments},
        }
        if spec.traffic.api == "gateway":
            for version in spec.versions:
                manifest = version_service_manifest(name, spec, version)
                self.version_services[version] = k8s.core.v1.Service(
                    f"{version_service_name(name, version)}-service",
                    metadata=_service_metadata(manifest["metadata"], args.await_services),
                    spec=manifest["spec"],
                    opts=_child_opts(self, after_namespace, args.on_error),
                )
            outputs["versionServiceNames"] = {v: version_service_name(name, v) for v in self.version_services}
        else:
            destination_rule = destination_rule_manifest(name, spec)
            self.destination_rule = _custom_resource(
                f"{name}-destinationrule", destination_rule, _child_opts(self, after_namespace, args.on_error)
            )
            self.destination_rule_name = _name_of(self.destination_rule, destination_rule["metadata"]["name"])
            outputs["destinationRuleName"] = destination_rule["metadata"]["name"]
        self.service_name: pulumi.Output[str] = _name_of(self.service, service["metadata"]["name"])
        self.service_account_name: pulumi.Output[str] = _name_of(self.service_account, account["metadata"]["name"])
        self.deployment_names: dict[str, pulumi.Output[str]] = {
            version: _name_of(deployment, deployment_name(name, version))
            for version, deployment in self.deployments.items()
        }
        self.version_service_names: dict[str, pulumi.Output[str]] = {
            version: _name_of(backend, version_service_name(name, version))
            for version, backend in self.version_services.items()
        }
        # The state records plain names: cheaper for the engine than awaiting every child (the Outputs above
        # are for the Python program that holds this component).
        self.register_outputs(outputs)

    def route_targets(self, versions: Collection[str]) -> list[pulumi.Resource]:
        """What a route to ``versions`` must wait for: their pods, and their subsets (the DestinationRule) or
        their Services (Gateway API)."""
        routed = sorted(set(versions) & set(self.deployments))
        targets: list[pulumi.Resource] = [self.destination_rule] if self.destination_rule is not None else []
        targets += [self.version_services[v] for v in routed if v in self.version_services]
        return targets + [self.deployments[v] for v in routed]

    def _secret(
        self, name: str, args: VersionedServiceArgs, after_namespace: list[pulumi.Resource]
    ) -> k8s.core.v1.Secret | None:
        manifest = secret_manifest(name, args.spec)
        if manifest is None:
            return None
        if args.secret_values is None:
            raise MeshkitError(f"service {name!r} uses meshkit secrets; pass their values as secret_values")
        names = secret_names(args.spec)
        values = pulumi.Output.secret(args.secret_values).apply(lambda all_values: {k: all_values[k] for k in names})
        return k8s.core.v1.Secret(
            f"{name}-secrets",
            metadata=manifest["metadata"],
            type=manifest["type"],
            string_data=values,
            opts=_child_opts(self, after_namespace),
        )


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
        routed = sorted(args.spec.routed_versions() & set(args.backend.deployments))
        # Make-before-break: the subsets and the pods of every routed version exist before the route.
        ready_first: list[pulumi.Resource] = [*args.backend.route_targets(routed), *args.extra_depends_on]
        virtual_service = virtual_service_manifest(name, args.spec)
        self.virtual_service = _custom_resource(
            f"{name}-virtualservice", virtual_service, _child_opts(self, ready_first, args.on_error)
        )
        self.routed_versions = routed
        self.virtual_service_name: pulumi.Output[str] = _name_of(
            self.virtual_service, virtual_service["metadata"]["name"]
        )
        self.register_outputs({"virtualServiceName": virtual_service["metadata"]["name"], "routedVersions": routed})


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
        routed = sorted(args.spec.routed_versions() & set(args.backend.deployments))
        # Make-before-break: the Service and the pods of every version the route sends to (or mirrors to)
        # exist before the route; a version at 0% is left out, so it can leave without waiting on the route.
        ready_first: list[pulumi.Resource] = [*args.backend.route_targets(routed), *args.extra_depends_on]
        http_route = http_route_manifest(name, args.spec)
        self.http_route = _custom_resource(
            f"{name}-httproute", http_route, _child_opts(self, ready_first, args.on_error)
        )
        self.routed_versions = routed
        self.http_route_name: pulumi.Output[str] = _name_of(self.http_route, http_route["metadata"]["name"])
        self.register_outputs({"httpRouteName": http_route["metadata"]["name"], "routedVersions": routed})


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
        after_namespace: list[pulumi.Resource] = [args.namespace.namespace] if args.namespace is not None else []
        self.gateway = _custom_resource(
            f"{name}-gateway", gateway_manifest(name, args.spec), _child_opts(self, after_namespace)
        )
        services = {service: backend.spec for service, backend in args.backends.items()}
        # Make-before-break, as for a service's own route: the Gateway, and the subsets and pods of every
        # version an exposed service routes to, exist before the route from outside points at them.
        ready_first: list[pulumi.Resource] = [self.gateway]
        for service in dict.fromkeys(route.service for route in args.spec.routes):
            backend = args.backends[service]
            ready_first += backend.route_targets(backend.spec.routed_versions())
        virtual_service = ingress_virtual_service_manifest(name, args.spec, services)
        self.virtual_service = _custom_resource(
            f"{name}-ingress-virtualservice", virtual_service, _child_opts(self, ready_first, args.on_error)
        )
        self.gateway_name: pulumi.Output[str] = _name_of(self.gateway, name)
        self.virtual_service_name: pulumi.Output[str] = _name_of(self.virtual_service, name)
        self.register_outputs({"gatewayName": name, "hosts": list(args.spec.hosts), "port": args.spec.listen_port})


def _custom_resource(
    resource_name: str, manifest: Manifest, opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """An Istio object; every one meshkit renders has a ``spec``."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )
