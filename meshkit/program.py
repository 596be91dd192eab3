"""The Pulumi program: stack config → models → components. ``__main__.py`` calls :func:`main`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import config as runtime_config

from .analysis import errors_only
from .components import (
    InjectedNamespace,
    TrafficSplit,
    TrafficSplitArgs,
    VersionedService,
    VersionedServiceArgs,
)
from .config import from_engine_config
from .errors import ConfigError, MeshkitError
from .models import ServiceSpec, StackConfig
from .rollout import check_rollout


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


def service_summary(svc: ServiceSpec) -> dict[str, Any]:
    """What a stack output reports per service: the versions, weights, routes and faults in force."""
    return {
        "namespace": svc.namespace,
        "versions": {v: {"image": s.image, "replicas": s.replicas} for v, s in svc.versions.items()},
        "weights": svc.default_weights(),
        "routes": [r.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True) for r in svc.traffic.routes],
        "faults": [f.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True) for f in svc.faults],
    }


@dataclass
class Mesh:
    """The components one stack registered, by name."""

    namespaces: dict[str, InjectedNamespace] = field(default_factory=dict)
    services: dict[str, VersionedService] = field(default_factory=dict)
    traffic: dict[str, TrafficSplit] = field(default_factory=dict)


def build_mesh(stack: StackConfig, opts: pulumi.ResourceOptions | None = None) -> Mesh:
    """Register every component of a validated stack config. Usable from any Pulumi program."""
    mesh = Mesh()
    for name, ns_spec in stack.namespaces.items():
        mesh.namespaces[name] = InjectedNamespace(name, ns_spec, opts)
    for name, svc in stack.services.items():
        backend = VersionedService(name, VersionedServiceArgs(svc, mesh.namespaces.get(svc.namespace)), opts)
        mesh.services[name] = backend
        mesh.traffic[name] = TrafficSplit(name, TrafficSplitArgs(svc, backend), opts)
    return mesh


def last_deployed_outputs(stack: str) -> dict[str, Any]:
    """The outputs of the stack's last deployment (``{}`` before the first), read with the CLI that runs
    this program, so that the same backend and credentials apply."""
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--stack", stack],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise MeshkitError(
            f"cannot read what stack {stack!r} last deployed, so the rollout checks cannot run: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    outputs: dict[str, Any] = json.loads(result.stdout or "{}")
    return outputs


def main(read_deployed: Callable[[str], Mapping[str, Any]] = last_deployed_outputs) -> None:
    stack_name = pulumi.get_stack()
    try:
        stack = from_engine_config(engine_config())
        findings = check_rollout(stack, read_deployed(stack_name))
        errors = errors_only(findings)
        if errors:
            raise ConfigError(errors, f"rollout step of stack {stack_name!r}")
    except MeshkitError as err:
        # RunError: the engine prints the message without a traceback and registers nothing more.
        raise pulumi.RunError(str(err)) from None
    for warning in findings:
        pulumi.log.warn(str(warning))
    provider = kubernetes_provider(stack_name)
    build_mesh(stack, pulumi.ResourceOptions(provider=provider))
    pulumi.export("services", {name: service_summary(svc) for name, svc in stack.services.items()})
    pulumi.export("production", stack.production)
