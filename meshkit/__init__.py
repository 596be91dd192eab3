"""meshkit: Istio rollouts as code.

The package is layered, each layer importing only those below it: :mod:`meshkit.config` (the user's model),
:mod:`meshkit.mesh` (rendering and checks), :mod:`meshkit.rollout` (a step between two deployments),
:mod:`meshkit.pulumi` (the components and the program), :mod:`meshkit.engine` (running the engine) and
:mod:`meshkit.cli`. The pure core imports without Pulumi; the Pulumi components are loaded on first use, so
``from meshkit import TrafficSplit`` works in any Pulumi program.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshkit.config import (
    Abort,
    Delay,
    FaultRule,
    Mirror,
    NamespaceSpec,
    RequestMatch,
    Retries,
    RouteRule,
    ServicePort,
    ServiceSpec,
    StackConfig,
    StringMatch,
    TrafficPolicy,
    VersionSpec,
)
from meshkit.errors import ConfigError, Finding, MeshkitError, Severity
from meshkit.mesh.checks import check_stack, load_stack_file, validate_stack
from meshkit.mesh.render import render_stack

if TYPE_CHECKING:
    from meshkit.pulumi.components import (
        HTTPRouteSplit,
        HTTPRouteSplitArgs,
        InjectedNamespace,
        TrafficSplit,
        TrafficSplitArgs,
        VersionedService,
        VersionedServiceArgs,
    )
    from meshkit.pulumi.program import Mesh, build_mesh

_PULUMI_NAMES = {
    "InjectedNamespace": "pulumi.components",
    "VersionedService": "pulumi.components",
    "VersionedServiceArgs": "pulumi.components",
    "TrafficSplit": "pulumi.components",
    "TrafficSplitArgs": "pulumi.components",
    "HTTPRouteSplit": "pulumi.components",
    "HTTPRouteSplitArgs": "pulumi.components",
    "Mesh": "pulumi.program",
    "build_mesh": "pulumi.program",
}

__all__ = [
    "Abort",
    "ConfigError",
    "Delay",
    "FaultRule",
    "Finding",
    "HTTPRouteSplit",
    "HTTPRouteSplitArgs",
    "InjectedNamespace",
    "Mesh",
    "MeshkitError",
    "Mirror",
    "NamespaceSpec",
    "RequestMatch",
    "Retries",
    "RouteRule",
    "ServicePort",
    "ServiceSpec",
    "Severity",
    "StackConfig",
    "StringMatch",
    "TrafficPolicy",
    "TrafficSplit",
    "TrafficSplitArgs",
    "VersionSpec",
    "VersionedService",
    "VersionedServiceArgs",
    "build_mesh",
    "check_stack",
    "load_stack_file",
    "render_stack",
    "validate_stack",
]


def __getattr__(name: str) -> Any:
    module = _PULUMI_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'meshkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
