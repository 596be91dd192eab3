"""The checkout team's own Pulumi program: meshkit's components in Python, next to a resource of its own.

A canary step is a change to this stack's config: ``pulumi config set canaryWeight 30`` then ``pulumi up``
sends 30% of the traffic to v2 (its Deployment and subset are created before the route moves).
"""

import pulumi
import pulumi_kubernetes as k8s

from meshkit import (
    ConfigError,
    InjectedNamespace,
    NamespaceSpec,
    ServicePort,
    ServiceSpec,
    Severity,
    StackConfig,
    TrafficPolicy,
    TrafficSplit,
    TrafficSplitArgs,
    VersionedService,
    VersionedServiceArgs,
    VersionSpec,
    check_stack,
)

STABLE = VersionSpec(image="nginx:1.27.3", replicas=2)
CANARY = VersionSpec(image="nginx:1.28.0")

canary_weight = pulumi.Config().get_int("canaryWeight") or 0
versions = {"v1": STABLE, "v2": CANARY} if canary_weight else {"v1": STABLE}
weights = {"v1": 100 - canary_weight, "v2": canary_weight} if canary_weight else {"v1": 100}
shop = NamespaceSpec()
checkout = ServiceSpec(
    namespace="shop",
    ports=[ServicePort(name="http", port=8080, target_port=80)],
    versions=versions,
    traffic=TrafficPolicy(weights=weights),
)

# The same cross-object checks `meshkit check` runs on a stack file; an error stops the program before
# anything is registered.
errors = [
    finding
    for finding in check_stack(StackConfig(namespaces={"shop": shop}, services={"checkout": checkout}))
    if finding.severity is Severity.ERROR
]
if errors:
    raise pulumi.RunError(str(ConfigError(errors, "the checkout program")))

# A cluster when the stack names one (kubernetes:kubeconfig), otherwise YAML rendered to rendered/<stack>/.
kubeconfig = pulumi.Config("kubernetes").get("kubeconfig")
provider = (
    k8s.Provider("k8s", kubeconfig=kubeconfig)
    if kubeconfig
    else k8s.Provider("k8s", render_yaml_to_directory=f"rendered/{pulumi.get_stack()}")
)
opts = pulumi.ResourceOptions(provider=provider)

namespace = InjectedNamespace("shop", shop, opts)
backend = VersionedService("checkout", VersionedServiceArgs(checkout, namespace=namespace), opts)
split = TrafficSplit("checkout", TrafficSplitArgs(checkout, backend), opts)

# A resource of this team's own that uses meshkit's outputs: it is created after the VirtualService.
k8s.core.v1.ConfigMap(
    "checkout-routing",
    metadata={"name": "checkout-routing", "namespace": namespace.namespace_name},
    data={"virtualService": split.virtual_service_name, "service": backend.service_name},
    opts=opts,
)

pulumi.export("virtualService", split.virtual_service_name)
pulumi.export("deployments", backend.deployment_names)
