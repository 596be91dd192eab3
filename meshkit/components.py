"""Pulumi components: a thin shell that registers what :mod:`meshkit.render` produces.

Each component takes ``(name, args, opts=None)`` like Pulumi's own, names its children ``f"{name}-…"``
with ``parent=self``, and expresses the ordering that keeps traffic safe as ``depends_on``:

* a VirtualService waits for the DestinationRule (which holds every subset) and for the Deployment of
  every version it routes to, so a route never points at a subset or pods that are not there yet;
* a version that leaves is first dropped from the routes (its weight must already be 0, see
  :mod:`meshkit.analysis`); its Deployment is deleted by the engine only after the updates of the step,
  Pulumi's order for deletions of resources that left the program.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .errors import MeshkitError
from .models import NamespaceSpec, ServiceSpec
from .render import (
    Manifest,
    allow_nothing_manifest,
    authorization_policy_manifest,
    deployment_manifest,
    deployment_name,
    destination_rule_manifest,
    namespace_manifest,
    peer_authentication_manifest,
    secret_manifest,
    secret_names,
    service_account_manifest,
    service_manifest,
    virtual_service_manifest,
)

TYPE_PREFIX = "meshkit:index"


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


class InjectedNamespace(pulumi.ComponentResource):
    """A Namespace whose pods join the mesh: exactly one data-plane label (sidecar, revision or ambient),
    and its mutual-TLS mode (a PeerAuthentication, STRICT unless the spec says PERMISSIVE)."""

    def __init__(self, name: str, args: NamespaceSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:InjectedNamespace", name, None, opts)
        manifest = namespace_manifest(name, args)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=manifest["metadata"], opts=_child_opts(self)
        )
        self.peer_authentication = _custom_resource(
            f"{name}-peerauthentication", peer_authentication_manifest(name, args), _child_opts(self, [self.namespace])
        )
        self.namespace_name: pulumi.Output[str] = self.namespace.metadata.name
        # Plain values known from the manifests: cheaper for the engine than awaiting the children's outputs.
        self.register_outputs({"namespaceName": name, "mtls": args.mtls})


@dataclass(frozen=True)
class DenyByDefaultArgs:
    namespace: InjectedNamespace
    allow_policies: list[pulumi.Resource] = field(default_factory=list)
    """The namespace's ALLOW policies: they take effect before the namespace-wide deny does."""


class DenyByDefault(pulumi.ComponentResource):
    """Istio's allow-nothing policy for a namespace, applied only after every allow-list in it exists, so
    that switching it on never cuts off a caller that a service allows."""

    def __init__(self, name: str, args: DenyByDefaultArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:DenyByDefault", name, None, opts)
        self.policy = _custom_resource(
            f"{name}-allow-nothing",
            allow_nothing_manifest(name),
            _child_opts(self, [args.namespace, *args.allow_policies]),
        )
        self.register_outputs({})


@dataclass(frozen=True)
class VersionedServiceArgs:
    spec: ServiceSpec
    namespace: InjectedNamespace | None = None
    """The namespace component to wait for, when this program also creates the namespace."""
    principals: Mapping[str, str] = field(default_factory=dict)
    """SPIFFE principal per service named in ``allowFrom`` (see :func:`meshkit.render.caller_principals`)."""
    secret_values: pulumi.Input[Mapping[str, str]] | None = None
    """The values of the ``meshkit:secrets`` the env uses, as a Pulumi secret."""
    ready_timeout: str | None = None
    """How long the engine waits for each Deployment to become Available (a duration such as ``5m``)."""
    on_error: pulumi.ErrorHook | None = None
    """Called by the engine when a Deployment or the DestinationRule fails (see :mod:`meshkit.failures`)."""


class VersionedService(pulumi.ComponentResource):
    """One Deployment per version, one Service selecting ``app`` only, one DestinationRule of subsets;
    its own ServiceAccount, its callers' allow-list (AuthorizationPolicy) and the Secret its env uses."""

    def __init__(self, name: str, args: VersionedServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:VersionedService", name, None, opts)
        spec = args.spec
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
        policy = authorization_policy_manifest(name, spec, dict(args.principals))
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
            metadata=service["metadata"],
            spec=service["spec"],
            opts=_child_opts(self, after_namespace),
        )
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        timeouts = (
            pulumi.CustomTimeouts(create=args.ready_timeout, update=args.ready_timeout) if args.ready_timeout else None
        )
        for version in spec.versions:
            manifest = deployment_manifest(name, spec, version)
            self.deployments[version] = k8s.apps.v1.Deployment(
                f"{deployment_name(name, version)}-deployment",
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=_child_opts(self, pods_after, args.on_error, timeouts),
            )
        destination_rule = destination_rule_manifest(name, spec)
        self.destination_rule = _custom_resource(
            f"{name}-destinationrule", destination_rule, _child_opts(self, after_namespace, args.on_error)
        )
        self.register_outputs(
            {
                "serviceName": service["metadata"]["name"],
                "deploymentNames": {v: deployment_name(name, v) for v in self.deployments},
                "destinationRuleName": destination_rule["metadata"]["name"],
            }
        )

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
    """The service whose routes, weights and faults (:class:`~meshkit.models.FaultRule`) to compose."""
    backend: VersionedService
    """The workloads and subsets the routes point at; the VirtualService waits for them."""
    extra_depends_on: list[pulumi.Resource] = field(default_factory=list)
    on_error: pulumi.ErrorHook | None = None
    """Called by the engine when the VirtualService fails (see :mod:`meshkit.failures`)."""


class TrafficSplit(pulumi.ComponentResource):
    """The single VirtualService of a service: fault rules, request-content routes, weighted default."""

    def __init__(self, name: str, args: TrafficSplitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:TrafficSplit", name, None, opts)
        routed = sorted(args.spec.routed_versions() & set(args.backend.deployments))
        # Make-before-break: the subsets and the pods of every routed version exist before the route.
        ready_first: list[pulumi.Resource] = [
            args.backend.destination_rule,
            *(args.backend.deployments[v] for v in routed),
            *args.extra_depends_on,
        ]
        virtual_service = virtual_service_manifest(name, args.spec)
        self.virtual_service = _custom_resource(
            f"{name}-virtualservice", virtual_service, _child_opts(self, ready_first, args.on_error)
        )
        self.routed_versions = routed
        self.register_outputs({"virtualServiceName": virtual_service["metadata"]["name"], "routedVersions": routed})


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
