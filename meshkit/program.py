"""The Pulumi program: stack config → models → components. ``__main__.py`` calls :func:`main`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings
from pulumi.runtime.proto import resource_pb2, resource_pb2_grpc

from .analysis import analyze_stack, errors_only
from .components import (
    DenyByDefault,
    DenyByDefaultArgs,
    HTTPRouteSplit,
    HTTPRouteSplitArgs,
    Ingress,
    IngressArgs,
    InjectedNamespace,
    TrafficSplit,
    TrafficSplitArgs,
    VersionedService,
    VersionedServiceArgs,
)
from .config import ENGINE_SOURCE, PROJECT, engine_config_keys
from .errors import ConfigError, MeshkitError
from .failures import FailedObject, explain_failure
from .gatewayapi import resolved_namespace, waypoint_of
from .models import StackConfig
from .render import caller_principals
from .rollout import check_rollout, deployment_outputs
from .sources import last_deployed_outputs


def engine_config() -> dict[str, Any]:
    """All config the engine handed this program run, ``{"meshkit:services": "<json>", ...}``."""
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def render_directory(stack: str) -> str:
    # Relative, so that the provider's inputs (and so the state) do not change between checkouts.
    return f"rendered/{stack}"


def kubernetes_provider(stack: str) -> k8s.Provider:
    """Deploy to the cluster the stack names (``kubernetes:context``/``kubeconfig``); otherwise render YAML."""
    k8s_config = pulumi.Config("kubernetes")
    context, kubeconfig = k8s_config.get("context"), k8s_config.get("kubeconfig")
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


def secret_config() -> pulumi.Output[Any] | None:
    """The ``meshkit:secrets`` values, decrypted by the engine and kept secret (never logged or exported)."""
    return pulumi.Config(PROJECT).get_secret_object("secrets")


def build_mesh(
    stack: StackConfig,
    opts: pulumi.ResourceOptions | None = None,
    secret_values: pulumi.Input[Mapping[str, str]] | None = None,
    on_error: pulumi.ErrorHook | None = None,
) -> Mesh:
    """Register every component of a validated stack config. Usable from any Pulumi program."""
    mesh = Mesh()
    for name in stack.namespaces:
        mesh.namespaces[name] = InjectedNamespace(name, resolved_namespace(stack, name), opts)
    principals = caller_principals(stack)
    for name, svc in stack.services.items():
        namespace = mesh.namespaces.get(svc.namespace)
        args = VersionedServiceArgs(
            svc,
            namespace,
            principals,
            secret_values,
            stack.ready_timeout,
            on_error,
            waypoint=waypoint_of(stack, svc.namespace),
        )
        backend = VersionedService(name, args, opts)
        mesh.services[name] = backend
        # In an ambient namespace, the route takes effect through the waypoint: it exists first.
        waypoint: list[pulumi.Resource] = (
            [namespace.waypoint] if namespace is not None and namespace.waypoint is not None else []
        )
        if svc.traffic.api == "gateway":
            route_args = HTTPRouteSplitArgs(svc, backend, extra_depends_on=waypoint, on_error=on_error)
            mesh.traffic[name] = HTTPRouteSplit(name, route_args, opts)
        else:
            split_args = TrafficSplitArgs(svc, backend, extra_depends_on=waypoint, on_error=on_error)
            mesh.traffic[name] = TrafficSplit(name, split_args, opts)
    for name, ingress in stack.ingresses.items():
        backends = {route.service: mesh.services[route.service] for route in ingress.routes}
        mesh.ingresses[name] = Ingress(
            name, IngressArgs(ingress, backends, mesh.namespaces.get(ingress.namespace), on_error), opts
        )
    for name, ns_spec in stack.namespaces.items():
        if ns_spec.default_deny:
            allow_policies: list[pulumi.Resource] = [
                policy
                for service, backend in mesh.services.items()
                if stack.services[service].namespace == name and (policy := backend.authorization_policy) is not None
            ]
            mesh.deny_by_default[name] = DenyByDefault(
                name, DenyByDefaultArgs(mesh.namespaces[name], allow_policies, stack.trust_domain), opts
            )
    return mesh


def explain_failures_hook() -> pulumi.ErrorHook | None:
    """An error hook that adds meshkit's account of a failed object (:mod:`meshkit.failures`) to the
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


def main(read_deployed: Callable[[str], Mapping[str, Any]] = last_deployed_outputs) -> None:
    stack_name = pulumi.get_stack()
    try:
        # Config errors are raised here; its warnings join the rollout findings.
        stack, warnings = analyze_stack(engine_config_keys(engine_config()), ENGINE_SOURCE)
        deployed = read_deployed(stack_name)
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
    build_mesh(stack, pulumi.ResourceOptions(provider=provider), secret_config(), explain_failures_hook())
    # What the next run reads back as `deployed`: the traffic in force, and the weights to roll back to.
    for key, value in deployment_outputs(stack, deployed).items():
        pulumi.export(key, value)
