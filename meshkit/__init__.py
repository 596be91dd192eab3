"""meshkit: Istio rollouts as code.

The pure core (models, rendering, analysis) imports without Pulumi; the Pulumi components are loaded on
first use, so ``from meshkit import TrafficSplit`` works in any Pulumi program.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .analysis import check_stack, validate_stack
from .config import load_stack_file
from .errors import ConfigError, Finding, MeshkitError, Severity
from .models import (
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
from .render import render_stack

if TYPE_CHECKING:
    from .components import (
        HTTPRouteSplit,
        HTTPRouteSplitArgs,
        InjectedNamespace,
        TrafficSplit,
        TrafficSplitArgs,
        VersionedService,
        VersionedServiceArgs,
    )
    from .program import Mesh, build_mesh

_PULUMI_NAMES = {
    "InjectedNamespace": "components",
    "VersionedService": "components",
    "VersionedServiceArgs": "components",
    "TrafficSplit": "components",
    "TrafficSplitArgs": "components",
    "HTTPRouteSplit": "components",
    "HTTPRouteSplitArgs": "components",
    "Mesh": "program",
    "build_mesh": "program",
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
