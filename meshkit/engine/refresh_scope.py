"""What a refresh must read before a rollout step on a cluster: the deployed objects someone changed since.

``pulumi refresh`` reads every object of the stack, one provider call each: at 50 services that was most
of a minute for a step that moves one weight. The state records each object as the API server returned it,
``resourceVersion`` included, and the API server gives an object a new ``resourceVersion`` on every write.
So one list per namespace tells which objects were written since the state recorded them; only those are
refreshed. The update after it then undoes what was changed by hand (drift), as after a full refresh,
because the refresh has put the changed values in the state.

An object a controller writes (a Deployment's status) has a new ``resourceVersion`` without being changed:
it is compared without what only the cluster writes. Whatever cannot be told this way (a killed update's
pending operations, an object whose recorded values are secret) is refreshed, or the whole stack is.
No Pulumi runtime, no cluster access: :mod:`meshkit.engine.sources` lists the objects, :mod:`meshkit.engine.step`
runs the refresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshkit.mesh.order import UNIT_KIND, Component

PROVIDER_TYPE_PREFIX = "pulumi:providers:"
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
"""The key Pulumi marks a secret value with in a state export."""
WRITTEN_BY_THE_CLUSTER = ("resourceVersion", "managedFields", "generation")
"""Metadata the API server rewrites on its own (``generation`` follows the spec, which is compared)."""


@dataclass(frozen=True)
class FullRefresh:
    """The changed objects cannot be told from a list: refresh every object, for this reason."""

    reason: str


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Where one object is in the cluster (``namespace`` is empty for a cluster-wide kind)."""

    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    @property
    def kubectl_type(self) -> str:
        """``Kind.version.group``, the type kubectl reads without guessing (core kinds: ``Kind.v1.``)."""
        group, _, version = self.api_version.rpartition("/")
        return f"{self.kind}.{version}.{group}"


@dataclass(frozen=True)
class DeployedObject:
    """A Kubernetes object of the stack's state: its URN, its component's URN, and what the state recorded."""

    urn: str
    component_urn: str
    ref: ObjectRef
    recorded: Mapping[str, Any]


def deployed_objects(export: Any) -> list[DeployedObject] | FullRefresh:
    """The Kubernetes objects of a ``pulumi stack export`` document."""
    deployment = export.get("deployment") if isinstance(export, dict) else None
    if not isinstance(deployment, dict):
        return FullRefresh("the state export has no deployment")
    if deployment.get("pending_operations"):
        return FullRefresh("an update was killed while it wrote objects (its creates are pending)")
    found = []
    for resource in deployment.get("resources") or []:
        kind = str(resource.get("type", ""))
        if not kind.startswith("kubernetes:") or not resource.get("custom", True):
            continue
        if resource.get("delete") or resource.get("pendingReplacement"):
            return FullRefresh(f"{resource.get('urn')} is left over from a replacement")
        outputs = resource.get("outputs") or {}
        metadata = outputs.get("metadata") or {}
        if not (outputs.get("apiVersion") and outputs.get("kind") and metadata.get("name")):
            return FullRefresh(f"the state does not record which object {resource.get('urn')} is")
        ref = ObjectRef(outputs["apiVersion"], outputs["kind"], metadata.get("namespace") or "", metadata["name"])
        found.append(DeployedObject(str(resource["urn"]), str(resource.get("parent") or ""), ref, outputs))
    return found


def _holds_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return SECRET_SIGNATURE in value or any(_holds_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secret(v) for v in value)
    return False


def _as_declared(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object without what the cluster writes on its own (status, write counters) and without the
    provider's bookkeeping keys (``__inputs``, …)."""
    kept = {k: v for k, v in obj.items() if k != "status" and not k.startswith("__")}
    kept["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in WRITTEN_BY_THE_CLUSTER}
    return kept


def changed_objects(
    deployed: Iterable[DeployedObject], live: Mapping[ObjectRef, Mapping[str, Any]]
) -> list[DeployedObject]:
    """The deployed objects the cluster no longer holds as the state recorded them: gone, or written since
    (a secret one whenever it was written: its recorded values cannot be compared)."""
    changed = []
    for obj in deployed:
        found = live.get(obj.ref)
        if found is None:
            changed.append(obj)
            continue
        if (found.get("metadata") or {}).get("resourceVersion") == (obj.recorded.get("metadata") or {}).get(
            "resourceVersion"
        ):
            continue
        if _holds_secret(obj.recorded) or _as_declared(found) != _as_declared(obj.recorded):
            changed.append(obj)
    return changed


def component_of(obj: DeployedObject) -> Component | None:
    """The meshkit component an object belongs to, from its parent's URN (``…::<type>::<name>``); None for
    an object that is not a meshkit component's child."""
    parts = obj.component_urn.split("::")
    if len(parts) < 4:
        return None
    component_type = parts[2].rsplit("$", 1)[-1]
    return Component(component_type, parts[3]) if component_type in UNIT_KIND else None
