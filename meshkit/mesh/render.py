"""A whole stack's manifests, as the deployment graph (:mod:`meshkit.mesh.order`) holds them.

Deterministic: the same models give the same dicts, in the same order, every time; nothing reads the
clock, the environment or Pulumi. The Pulumi components (:mod:`meshkit.pulumi.components`) register exactly these
dicts, and ``meshkit render`` prints them, so what a reviewer sees is what gets deployed.
"""

from __future__ import annotations

from meshkit.config.stack import StackConfig
from meshkit.mesh.manifest import Manifest, manifest_key
from meshkit.mesh.order import deployment_graph


def owned_manifests(stack: StackConfig) -> list[tuple[str, Manifest]]:
    """Every manifest of a stack, unsorted, each with the config path of what declares it (``namespaces.demo``,
    ``services.nginx``, ``services.nginx.versions.v2``, ``ingresses.shop``): whom a finding about it names."""
    return [(node.owner, node.manifest) for node in deployment_graph(stack).nodes]


def unit_manifests(stack: StackConfig) -> dict[str, list[Manifest]]:
    """Every manifest of a stack by the unit it belongs to (``namespace/<name>``, ``service/<name>``,
    ``ingress/<name>``): what a targeted step deploys together (see :mod:`meshkit.rollout.step_scope`)."""
    return {unit: [node.manifest for node in nodes] for unit, nodes in deployment_graph(stack).units.items()}


def render_stack(stack: StackConfig) -> list[Manifest]:
    """Every manifest of a stack, sorted by kind, namespace and name."""
    return sorted((node.manifest for node in deployment_graph(stack).nodes), key=manifest_key)
