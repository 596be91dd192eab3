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

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .models import NamespaceSpec, ServiceSpec
from .render import (
    Manifest,
    deployment_manifest,
    deployment_name,
    destination_rule_manifest,
    namespace_manifest,
    service_manifest,
    virtual_service_manifest,
)

TYPE_PREFIX = "meshkit:index"


def _child_opts(parent: pulumi.Resource, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
    # A fresh options object per child: never copy the caller's opts into a child, which would replace parent.
    return pulumi.ResourceOptions(parent=parent, depends_on=depends_on or [])


class InjectedNamespace(pulumi.ComponentResource):
    """A Namespace whose pods join the mesh: exactly one data-plane label (sidecar, revision or ambient)."""

    def __init__(self, name: str, args: NamespaceSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:InjectedNamespace", name, None, opts)
        manifest = namespace_manifest(name, args)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=manifest["metadata"], opts=_child_opts(self)
        )
        self.namespace_name: pulumi.Output[str] = self.namespace.metadata.name
        self.register_outputs({"namespaceName": self.namespace_name})


@dataclass(frozen=True)
class VersionedServiceArgs:
    spec: ServiceSpec
    namespace: InjectedNamespace | None = None
    """The namespace component to wait for, when this program also creates the namespace."""


class VersionedService(pulumi.ComponentResource):
    """One Deployment per version, one Service selecting ``app`` only, one DestinationRule of subsets."""

    def __init__(self, name: str, args: VersionedServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:VersionedService", name, None, opts)
        spec = args.spec
        after_namespace: list[pulumi.Resource] = [args.namespace] if args.namespace is not None else []

        service = service_manifest(name, spec)
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=service["metadata"],
            spec=service["spec"],
            opts=_child_opts(self, after_namespace),
        )
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        for version in spec.versions:
            manifest = deployment_manifest(name, spec, version)
            self.deployments[version] = k8s.apps.v1.Deployment(
                f"{deployment_name(name, version)}-deployment",
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=_child_opts(self, after_namespace),
            )
        destination_rule = destination_rule_manifest(name, spec)
        self.destination_rule = _custom_resource(
            f"{name}-destinationrule", destination_rule, _child_opts(self, after_namespace)
        )
        self.register_outputs(
            {
                "serviceName": self.service.metadata.name,
                "deploymentNames": {v: d.metadata.name for v, d in self.deployments.items()},
                "destinationRuleName": destination_rule["metadata"]["name"],
            }
        )


@dataclass(frozen=True)
class TrafficSplitArgs:
    spec: ServiceSpec
    """The service whose routes, weights and faults (:class:`~meshkit.models.FaultRule`) to compose."""
    backend: VersionedService
    """The workloads and subsets the routes point at; the VirtualService waits for them."""
    extra_depends_on: list[pulumi.Resource] = field(default_factory=list)


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
            f"{name}-virtualservice", virtual_service, _child_opts(self, ready_first)
        )
        self.routed_versions = routed
        self.register_outputs({"virtualServiceName": virtual_service["metadata"]["name"], "routedVersions": routed})


def _custom_resource(
    resource_name: str, manifest: Manifest, opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )
