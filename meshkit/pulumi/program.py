"""The Pulumi program: stack config → models → components. ``__main__.py`` calls :func:`main`."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings
from pulumi.runtime.proto import resource_pb2, resource_pb2_grpc

from meshkit.config.stack import StackConfig
from meshkit.config.stack_file import ENGINE_SOURCE, PROJECT, engine_config_keys
from meshkit.errors import ConfigError, MeshkitError
from meshkit.mesh.checks import analyze_stack, errors_only
from meshkit.mesh.gatewayapi import resolved_namespace, waypoint_of
from meshkit.mesh.order import (
    DENY_AFTER_ALLOW_LISTS,
    ROUTE_AFTER_WAYPOINT,
    Component,
    DeploymentGraph,
    NodeId,
    deployment_graph,
)
from meshkit.mesh.security import caller_principals
from meshkit.pulumi.components import (
    DenyByDefault,
    DenyByDefaultArgs,
    HTTPRouteSplit,
    HTTPRouteSplitArgs,
    Ingress,
    IngressArgs,
    InjectedNamespace,
    MeshkitComponent,
    TrafficSplit,
    TrafficSplitArgs,
    VersionedService,
    VersionedServiceArgs,
)
from meshkit.pulumi.failures import FailedObject, explain_failure
from meshkit.rollout.step_scope import (
    FINGERPRINTS_OUTPUT,
    SCOPE_FILE_ENV,
    StepScope,
    fingerprints,
    read_scope_file,
)
from meshkit.rollout.summary import check_rollout, deployment_outputs, summary_from_outputs


def engine_config() -> dict[str, Any]:
    """All config the engine handed this program run, ``{"meshkit:services": "<json>", ...}``."""
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def render_directory(stack: str) -> str:
    # Relative, so that the provider's inputs (and so the state) do not change between checkouts.
    return f"rendered/{stack}"


def cluster_settings() -> dict[str, str | None]:
    """The cluster the stack deploys to, as the engine passes its ``kubernetes:`` config (None: render)."""
    k8s_config = pulumi.Config("kubernetes")
    return {"context": k8s_config.get("context"), "kubeconfig": k8s_config.get("kubeconfig")}


def step_scope() -> StepScope | None:
    """What to register when `meshkit up` runs a targeted step (None: the whole stack), and the outputs it
    was planned from. Only `meshkit up` sets the variable, for an engine it runs with ``--target``: in an
    untargeted update, not registering a component would delete it."""
    path = os.environ.get(SCOPE_FILE_ENV)
    if not path:
        return None
    try:
        return read_scope_file(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as error:
        raise pulumi.RunError(f"{SCOPE_FILE_ENV}={path}: not a step scope meshkit up wrote ({error})") from None


def kubernetes_provider(stack: str) -> k8s.Provider:
    """Deploy to the cluster the stack names (``kubernetes:context``/``kubeconfig``); otherwise render YAML."""
    cluster = cluster_settings()
    context, kubeconfig = cluster["context"], cluster["kubeconfig"]
    if context or kubeconfig:
        return k8s.Provider("k8s", context=context, kubeconfig=kubeconfig)
    return k8s.Provider("k8s", render_yaml_to_directory=render_directory(stack))


@dataclass
class Mesh:
    """The components one stack registered, by name."""

    namespaces: dict[str, InjectedNamespace] = field(default_factory=dict)
    services: dict[str, VersionedService] = field(default_factory=dict)
    traffic: dict[str, TrafficSplit | HTTPRouteSplit] = field(default_factory=dict)
    deny_by_default: dict[str, DenyByDefault] = field(default_factory=dict)
    ingresses: dict[str, Ingress] = field(default_factory=dict)
    graph: DeploymentGraph | None = None
    """The stack's deployment graph, which the components were registered from."""

    def resources(self, nodes: Iterable[NodeId]) -> list[pulumi.Resource]:
        """The registered objects of ``nodes``, of the components registered (a targeted step registers only
        some: those a registered component needs are among them, see :mod:`meshkit.rollout.step_scope`)."""
        registered: dict[str, Mapping[str, MeshkitComponent]] = {
            InjectedNamespace.pulumi_type: self.namespaces,
            VersionedService.pulumi_type: self.services,
            TrafficSplit.pulumi_type: self.traffic,
            HTTPRouteSplit.pulumi_type: self.traffic,
            DenyByDefault.pulumi_type: self.deny_by_default,
            Ingress.pulumi_type: self.ingresses,
        }
        found = []
        for node in nodes:
            component = registered[node.component.type].get(node.component.name)
            if component is not None:
                found.append(component.resource(node))
        return found


def secret_config() -> pulumi.Output[Any] | None:
    """The ``meshkit:secrets`` values, decrypted by the engine and kept secret (never logged or exported)."""
    return pulumi.Config(PROJECT).get_secret_object("secrets")


def build_mesh(
    stack: StackConfig,
    opts: pulumi.ResourceOptions | None = None,
    secret_values: pulumi.Input[Mapping[str, str]] | None = None,
    on_error: pulumi.ErrorHook | None = None,
    only: Collection[Component] | None = None,
    await_services: bool = True,
) -> Mesh:
    """Register every component of a validated stack config (or, for a targeted step, the components in
    ``only``: see :mod:`meshkit.rollout.step_scope`). Usable from any Pulumi program. ``await_services``: see
    :attr:`meshkit.pulumi.components.VersionedServiceArgs.await_services`."""
    # What a component cannot know from its own arguments (the waypoint of a route's namespace, the allow-lists
    # of a namespace) comes from the whole stack's graph.
    graph = deployment_graph(stack)
    mesh = Mesh(graph=graph)

    def wanted(kind: type[MeshkitComponent], name: str) -> bool:
        return only is None or Component(kind.pulumi_type, name) in only

    for name in stack.namespaces:
        if wanted(InjectedNamespace, name):
            mesh.namespaces[name] = InjectedNamespace(name, resolved_namespace(stack, name), opts)
    principals = caller_principals(stack)
    for name, svc in stack.services.items():
        namespace = mesh.namespaces.get(svc.namespace)
        route_kind: type[MeshkitComponent] = HTTPRouteSplit if svc.traffic.api == "gateway" else TrafficSplit
        if not wanted(VersionedService, name):
            continue
        args = VersionedServiceArgs(
            svc,
            namespace,
            principals,
            secret_values,
            stack.ready_timeout,
            on_error,
            waypoint=waypoint_of(stack, svc.namespace),
            await_services=await_services,
        )
        backend = VersionedService(name, args, opts)
        mesh.services[name] = backend
        if not wanted(route_kind, name):
            continue
        waypoint = mesh.resources(graph.targets(Component(route_kind.pulumi_type, name), ROUTE_AFTER_WAYPOINT))
        if svc.traffic.api == "gateway":
            route_args = HTTPRouteSplitArgs(svc, backend, extra_depends_on=waypoint, on_error=on_error)
            mesh.traffic[name] = HTTPRouteSplit(name, route_args, opts)
        else:
            split_args = TrafficSplitArgs(svc, backend, extra_depends_on=waypoint, on_error=on_error)
            mesh.traffic[name] = TrafficSplit(name, split_args, opts)
    for name, ingress in stack.ingresses.items():
        if not wanted(Ingress, name):
            continue
        backends = {route.service: mesh.services[route.service] for route in ingress.routes}
        mesh.ingresses[name] = Ingress(
            name, IngressArgs(ingress, backends, mesh.namespaces.get(ingress.namespace), on_error), opts
        )
    for name, ns_spec in stack.namespaces.items():
        if ns_spec.default_deny and wanted(DenyByDefault, name):
            deny = Component(DenyByDefault.pulumi_type, name)
            allow_policies = mesh.resources(graph.targets(deny, DENY_AFTER_ALLOW_LISTS))
            mesh.deny_by_default[name] = DenyByDefault(
                name, DenyByDefaultArgs(mesh.namespaces[name], allow_policies, stack.trust_domain), opts
            )
    return mesh


def explain_failures_hook() -> pulumi.ErrorHook | None:
    """An error hook that adds meshkit's account of a failed object (:mod:`meshkit.pulumi.failures`) to the
    engine's error: what traffic does now and what to do. None where the engine has no error hooks."""
    # The engine calls hooks back over gRPC; Pulumi's test mocks have no engine to do that.
    real_engine = isinstance(settings.SETTINGS.monitor, resource_pb2_grpc.ResourceMonitorStub)
    if not real_engine or not settings.monitor_supports_feature(resource_pb2.RESOURCE_MONITOR_FEATURE_ERROR_HOOKS):
        return None

    def explain(args: pulumi.ErrorHookArgs) -> bool:
        inputs = args.new_inputs or args.old_inputs
        pulumi.log.error(explain_failure(FailedObject.from_hook(args.type, args.failed_operation, inputs, args.errors)))
        # Never retry: waiting again does not make pods ready, nor the API server accept the same object.
        return False

    return pulumi.ErrorHook("meshkit-explain-failure", explain)


def main(read_deployed: Callable[[str], Mapping[str, Any]]) -> None:
    """The program. ``read_deployed(stack)``: the outputs of the stack's last deployment (the entry point
    passes :func:`meshkit.engine.sources.last_deployed_outputs`, which asks the engine)."""
    stack_name = pulumi.get_stack()
    try:
        scope = step_scope()
        # A targeted step was planned from these outputs: the checks run against the same ones.
        deployed = (
            read_deployed(stack_name)
            if scope is None
            else summary_from_outputs(scope.deployed_outputs, f"outputs of stack {stack_name!r} ({SCOPE_FILE_ENV})")
        )
        # Config errors are raised here; its warnings join the rollout findings.
        stack, warnings = analyze_stack(engine_config_keys(engine_config()), ENGINE_SOURCE, deployed)
        findings = warnings + check_rollout(stack, deployed)
        errors = errors_only(findings)
        if errors:
            raise ConfigError(errors, f"rollout step of stack {stack_name!r}")
    except MeshkitError as err:
        # RunError: the engine prints the message without a traceback and registers nothing more.
        raise pulumi.RunError(str(err)) from None
    for warning in findings:
        pulumi.log.warn(str(warning))
    provider = kubernetes_provider(stack_name)
    only = None if scope is None else scope.components
    # Rendered manifests carry nothing for Pulumi's awaits: there is nothing to wait for.
    on_cluster = any(cluster_settings().values())
    mesh = build_mesh(stack, pulumi.ResourceOptions(provider=provider), secret_config(), explain_failures_hook(),
                      only, await_services=not on_cluster)  # fmt: skip
    # What the next run reads back as `deployed`: the traffic in force, and the weights to roll back to.
    for key, value in deployment_outputs(stack, deployed).items():
        pulumi.export(key, value)
    # What the next targeted step compares the stack file with (meshkit.rollout.step_scope).
    pulumi.export(FINGERPRINTS_OUTPUT, fingerprints(stack, cluster_settings(), mesh.graph))
