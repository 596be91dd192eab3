"""Layer 1, the user's model: what a stack file declares (pydantic only, no Pulumi), and reading it.

The models are spread over one module per part of the config (namespace, workload, traffic, service,
ingress, stack); they are all importable from here. :mod:`meshkit.config.stack_file` reads a
``Pulumi.<env>.yaml`` the way the Pulumi engine does, and :mod:`meshkit.config.validation` turns pydantic's
errors into findings that name the config path, the bad value and the fix.
"""

from meshkit.config.ingress import IngressRoute, IngressSpec, IngressTls
from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import AllowRule, CallBudget, ServiceSpec
from meshkit.config.stack import PrometheusSpec, StackConfig
from meshkit.config.traffic import (
    Abort,
    Analysis,
    Delay,
    FaultRule,
    Mirror,
    RequestMatch,
    Retries,
    RouteRule,
    StringMatch,
    TrafficPolicy,
)
from meshkit.config.workload import (
    EnvSource,
    ExecAction,
    HttpGetAction,
    Probe,
    ResourceList,
    Resources,
    SecretKeyRef,
    ServicePort,
    TcpSocketAction,
    VersionSpec,
)

__all__ = [
    "Abort",
    "AllowRule",
    "Analysis",
    "CallBudget",
    "Delay",
    "EnvSource",
    "ExecAction",
    "FaultRule",
    "HttpGetAction",
    "IngressRoute",
    "IngressSpec",
    "IngressTls",
    "Mirror",
    "NamespaceSpec",
    "Probe",
    "PrometheusSpec",
    "RequestMatch",
    "ResourceList",
    "Resources",
    "Retries",
    "RouteRule",
    "SecretKeyRef",
    "ServicePort",
    "ServiceSpec",
    "StackConfig",
    "StringMatch",
    "TcpSocketAction",
    "TrafficPolicy",
    "VersionSpec",
]
