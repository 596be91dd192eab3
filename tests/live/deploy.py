"""Deploying stacks to the live control plane through the real Pulumi CLI, and reading back what landed."""

from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshkit.config.stack import StackConfig
from meshkit.mesh.checks import parse_stack_file_text
from meshkit.mesh.render import render_stack
from toolchain.cluster import LocalCluster, stack_file_for_cluster

from ..e2e.engine import VENV_BIN, PulumiProject, new_project
from ..scenario_data import SCENARIOS, scenario_raw, stack_file_text
from .kube import MANAGED, Kube, object_path

ISTIO_GROUPS = ("networking.istio.io/", "security.istio.io/")
# The API server labels every Namespace with its own name.
SERVER_SET_LABELS = {"kubernetes.io/metadata.name"}
DEPLOYMENT, DESTINATION_RULE, VIRTUAL_SERVICE, GATEWAY = (
    ("apps/v1", "Deployment"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "Gateway"),
)


def in_namespace(raw: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A stack config with its one namespace renamed, so that tests sharing the cluster do not meet."""
    raw = copy.deepcopy(raw)
    (old,) = raw["namespaces"]
    raw["namespaces"] = {namespace: raw["namespaces"][old]}
    for service in raw["services"].values():
        service["namespace"] = namespace
    for ingress in raw.get("ingresses", {}).values():
        ingress["namespace"] = namespace
    return raw


@dataclass
class LiveProject(PulumiProject):
    """A throw-away copy of the Pulumi project, run with the environment `make up` gives the engine."""

    @property
    def env(self) -> dict[str, str]:
        # The Makefile's: the file backend writes the state once, at the end of an update (a killed update
        # leaves the state of the one before), instead of after every resource operation.
        return {**super().env, "PULUMI_SKIP_CHECKPOINTS": "true"}


@dataclass
class LiveStack:
    """A throw-away copy of the Pulumi project whose stack deploys to the local cluster."""

    project: PulumiProject
    cluster: LocalCluster
    config: StackConfig | None = None

    def use(self, raw: dict[str, Any]) -> None:
        self.use_text(stack_file_text(raw))

    def use_step(self, step: str) -> None:
        self.use_text((SCENARIOS / f"{step}.yaml").read_text())

    def use_text(self, text: str) -> None:
        """The stack file a user would write: the reviewed meshkit keys plus `kubernetes:kubeconfig`."""
        self.project.use_stack_text(stack_file_for_cluster(text, self.cluster.kubeconfig, "test stack"))
        # Read as the program reads it, so that what landed is compared with what the engine was given.
        self.config = parse_stack_file_text(text, "test stack")

    def up(self, check: bool = True) -> Any:
        """The engine's own update of every object, as `make up` ran it before it refreshed only what changed
        (`make` is what users run, see :meth:`make`): a refresh first, so that hand edits are seen (and
        undone) and any creates a killed `up` left pending are dropped (the `up` creates, or adopts, them)."""
        refreshed = self.project.pulumi("refresh", "--yes", "--skip-preview", "--clear-pending-creates", check=check)
        if refreshed.returncode != 0:
            return refreshed
        return self.project.pulumi("up", "--yes", "--skip-preview", check=check)

    def make(self, target: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """What a user runs: `make up` or `make step` of the repository's Makefile, on this stack file, with
        the cluster's kubectl on PATH (as `make cluster` leaves it for `CLUSTER=local`)."""
        kubectl_dir = str(self.cluster.state()["bin"])
        result = self.project.make(
            target, env={**self.project.env, "PATH": f"{kubectl_dir}:{self.project.env['PATH']}"}
        )
        if check and result.returncode != 0:
            raise AssertionError(f"make {target} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def unlock(self) -> subprocess.CompletedProcess[str]:
        """What `make up` runs before `pulumi up`: remove the locks of updates that were killed."""
        return subprocess.run(
            [str(VENV_BIN / "meshkit"), "unlock", self.project.stack],
            cwd=self.project.root, env=self.project.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def destroy(self) -> None:
        self.project.pulumi("destroy", "--yes")


def new_live_stack(directory: Path, cluster: LocalCluster, stack: str = "live") -> LiveStack:
    project = new_project(directory, stack)
    return LiveStack(LiveProject(project.root, project.stack, project.passphrase), cluster)


def deployment_quota(namespace: str, deployments: int) -> dict[str, Any]:
    """A ResourceQuota allowing ``deployments`` Deployments in ``namespace``: the API server refuses one more."""
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "deployments", "namespace": namespace},
        "spec": {"hard": {"count/deployments.apps": str(deployments)}},
    }


def scenario_in(step: str, namespace: str) -> dict[str, Any]:
    return in_namespace(scenario_raw(step), namespace)


# --- what landed --------------------------------------------------------------------------------------


def differences(expected: Any, stored: Any, path: str = "") -> list[str]:
    """Where ``stored`` does not hold ``expected``: every rendered field must be there with its value;
    fields the API server adds (defaults, status) are allowed. Lists must match element by element."""
    if isinstance(expected, dict) and isinstance(stored, dict):
        found = []
        for key, value in expected.items():
            if key not in stored:
                found.append(f"{path}.{key}: missing")
            else:
                found += differences(value, stored[key], f"{path}.{key}")
        return found
    if isinstance(expected, list) and isinstance(stored, list):
        if len(expected) != len(stored):
            return [f"{path}: {len(expected)} items rendered, {len(stored)} stored"]
        return [
            d for i, (e, s) in enumerate(zip(expected, stored, strict=True)) for d in differences(e, s, f"{path}[{i}]")
        ]
    return [] if expected == stored else [f"{path}: rendered {expected!r}, stored {stored!r}"]


def stored_against_render(kube: Kube, stack: StackConfig) -> list[str]:
    """Every rendered object compared with the one the API server stores; empty when they agree.

    Istio objects must match spec for spec exactly (the API server adds nothing to a custom resource's
    spec); built-in kinds must hold every rendered field, beside the defaults the API server fills in.
    """
    problems = []
    for manifest in render_stack(stack):
        ref = f"{manifest['kind']} {manifest['metadata'].get('namespace', '')}/{manifest['metadata']['name']}"
        stored = kube.get(object_path(manifest))
        if stored is None:
            problems.append(f"{ref}: not in the API server")
            continue
        labels = manifest["metadata"].get("labels") or {}
        stored_labels = {
            k: v for k, v in (stored["metadata"].get("labels") or {}).items() if k not in SERVER_SET_LABELS
        }
        if labels != stored_labels:
            problems.append(f"{ref}: labels {stored['metadata'].get('labels')} stored, {labels} rendered")
        if manifest["apiVersion"].startswith(ISTIO_GROUPS):
            if manifest["spec"] != stored["spec"]:
                problems.append(f"{ref}: spec differs: rendered {manifest['spec']}, stored {stored['spec']}")
        elif manifest["kind"] == "Secret":
            # The value is rendered as a placeholder; the keys must be there.
            if set(manifest.get("stringData") or {}) != set(stored.get("data") or {}):
                problems.append(f"{ref}: keys {sorted(stored.get('data') or {})} stored")
        else:
            body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
            problems += [f"{ref}: {d}" for d in differences(body, stored)]
    return problems


def extra_objects(kube: Kube, stack: StackConfig) -> list[str]:
    """Objects of the kinds meshkit manages that are in the stack's namespaces but not in its render."""
    rendered = {(m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"]) for m in render_stack(stack)}
    found = []
    for namespace in stack.namespaces:
        for api_version, kind in MANAGED:
            if kind == "Namespace":
                continue
            for item in kube.items(api_version, kind, namespace):
                key = (kind, namespace, item["metadata"]["name"])
                # The controller manager gives every namespace a `default` ServiceAccount.
                if key not in rendered and key != ("ServiceAccount", namespace, "default"):
                    found.append(f"{kind} {namespace}/{key[2]}")
    return found


def unavailable_deployments(kube: Kube, stack: StackConfig) -> list[str]:
    """Deployments of the stack that are not Available with every replica ready."""
    problems = []
    for manifest in render_stack(stack):
        if manifest["kind"] != "Deployment":
            continue
        stored = kube.get(object_path(manifest)) or {}
        status = stored.get("status") or {}
        available = any(c["type"] == "Available" and c["status"] == "True" for c in status.get("conditions") or [])
        replicas = manifest["spec"]["replicas"]
        if not available or status.get("availableReplicas", 0) != replicas:
            problems.append(
                f"Deployment {manifest['metadata']['name']}: {status.get('availableReplicas', 0)}/{replicas}"
            )
    return problems


def routes(virtual_service: dict[str, Any]) -> list[tuple[str, int]]:
    """(subset, weight) of every destination of every rule of a VirtualService object."""
    return [
        (d["destination"].get("subset", ""), d.get("weight", 100))
        for rule in virtual_service["spec"].get("http", [])
        for d in rule.get("route", [])
    ]


def routed_subsets(virtual_service: dict[str, Any]) -> set[str]:
    return {subset for subset, weight in routes(virtual_service) if weight > 0}
