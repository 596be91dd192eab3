"""What a failed step means for traffic, and what to do: the message meshkit adds when the engine reports
that an object of a rollout failed (a Deployment that never became Available, an object the API server
refused). Pure: the Pulumi program calls it from an error hook (see :mod:`meshkit.pulumi.program`).

The engine's own error names the object and quotes the API server. What it cannot say is what the failure
did to traffic, and that is the first thing an operator needs during a rollout. meshkit can say it because
of how it orders every step: a VirtualService waits for the DestinationRule and for the Deployment of
each version it routes to, so when one of those fails, the routes in force are the ones before the step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The labels meshkit puts on every pod (meshkit.mesh.render): the service, and the version Istio subsets select.
APP_LABEL, VERSION_LABEL = "app", "version"


@dataclass(frozen=True)
class FailedObject:
    """The object whose create, update or delete failed, as the engine's error hook describes it."""

    kind: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    operation: str
    """``create``, ``update`` or ``delete``."""
    errors: Sequence[str]
    """The provider's errors, newest first."""

    @classmethod
    def from_hook(cls, resource_type: str, operation: str, inputs: Mapping[str, Any] | None,
                  errors: Sequence[str]) -> FailedObject:  # fmt: skip
        """From the Pulumi type token (``kubernetes:apps/v1:Deployment``) and the resource's inputs."""
        metadata = (inputs or {}).get("metadata") or {}
        kind = (inputs or {}).get("kind") or resource_type.rsplit(":", 1)[-1]
        return cls(
            kind=str(kind),
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name") or ""),
            labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
            operation=operation,
            errors=list(errors),
        )

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


def _first_line(errors: Sequence[str]) -> str:
    for error in errors:
        for line in error.splitlines():
            if line.strip():
                return line.strip().lstrip("* ").strip()
    return "no error text"


def explain_failure(failed: FailedObject) -> str:
    """One paragraph: what failed, what traffic does now, what to do."""
    ns = f"-n {failed.namespace} " if failed.namespace else ""
    what = f"meshkit: {failed.operation} of {failed.ref} failed: {_first_line(failed.errors)}."
    if failed.kind == "Deployment":
        service, version = failed.labels.get(APP_LABEL, failed.name), failed.labels.get(VERSION_LABEL, "")
        look = (
            f"`kubectl {ns}describe deployment {failed.name}` and "
            f"`kubectl {ns}get pods -l {APP_LABEL}={service},{VERSION_LABEL}={version}` show why"
        )
        if failed.operation == "create":
            traffic = (
                f"Traffic is unchanged: the route of {service} (its VirtualService, or its HTTPRoute) waits for "
                f"this Deployment, so this step did not route any request to version {version}."
            )
        elif failed.operation == "update":
            traffic = (
                f"The routes are unchanged by this step; Kubernetes keeps version {version}'s previous pods "
                "serving while the new ones are not ready."
            )
        else:
            traffic = f"No route sends requests to version {version} any more (meshkit checked that before the step)."
        todo = (
            f"What to do: {look}; fix the version under services.{service}.versions.{version} in the stack file "
            "(image, command, probes, resources) or revert the step, then run `pulumi up` again. "
            "Raise meshkit:readyTimeout if the pods only need longer to start."
        )
        return f"{what} {traffic} {todo}"
    if failed.kind in ("DestinationRule", "VirtualService", "HTTPRoute"):
        traffic = (
            "The routes in force are the ones before this step: no VirtualService was changed to use "
            "anything this step could not create."
            if failed.kind == "DestinationRule"
            else f"The {failed.kind} {failed.name} keeps the routes it had before this step."
        )
        return (
            f"{what} {traffic} What to do: run `meshkit check` on the stack, fix what the API server refused "
            "(quoted above), then run `pulumi up` again."
        )
    return (
        f"{what} Objects that depend on it (and so every route that would use it) were not changed. "
        f"What to do: `kubectl {ns}describe {failed.kind.lower()} {failed.name}` shows the API server's side; "
        "fix the cause, then run `pulumi up` again."
    )
