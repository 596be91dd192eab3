"""Reviewed = applied: what the review of a rollout step was based on, and whether that still holds.

``meshkit plan`` shows a reviewer the intended change, and ``pulumi preview --save-plan`` saves the engine's
plan of it; but the plan is only what was reviewed while the stack file and the deployed state are still
those it was made from. ``make review`` records both next to the saved plan (``meshkit review record``):
the stack file's SHA-256 and a SHA-256 of every resource of the deployed state (``pulumi stack export``,
inputs and outputs, per URN; after a refresh for a stack that deploys to a cluster). ``make apply``
compares them with the current ones (``meshkit review verify``) and refuses, naming what moved, before
``pulumi up --plan`` runs.

What a digest leaves out, because it changes with nobody changing anything: the ciphertext of secrets
(re-encrypted, with a new nonce, whenever the state is written: a secret counts as ``[secret]``), and what
the API server and controllers keep rewriting in a Kubernetes object: ``status``, ``resourceVersion``,
``managedFields`` and ``generation`` (a change of the object's content shows in its other fields).

Pure: no Pulumi runtime; the only I/O is reading and writing the review directory.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshkit.errors import MeshkitError

RECORD_FORMAT = 1
RECORD_FILE = "record.json"
"""Digests of the stack file and of every deployed resource: what verification compares."""
STATE_FILE = "reviewed-state.json"
"""The deployed state the digests are of (secrets left out): what lets a refusal say which field moved."""
STACK_FILE_COPY = "reviewed-stack-file.yaml"
"""The reviewed stack file, byte for byte: what lets a refusal show the edit as a diff."""
UPDATE_PLAN = "update-plan.json"
"""The engine's saved plan (``pulumi preview --save-plan``) that ``pulumi up --plan`` applies."""

SECRET = "[secret]"
# How `pulumi stack export` marks a secret value: {SECRET_SIGNATURE: SECRET_KIND, "ciphertext": ...}.
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
SECRET_KIND = "1b47061264138c4ac30d75fd1eb44270"
VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation")
STACK_TYPE = "pulumi:pulumi:Stack"
MAX_FIELDS = 4
"""Changed fields named per object; the rest are counted."""
MAX_DIFF_LINES = 40


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """One byte sequence per JSON value: keys sorted, no whitespace, text as UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- the deployed state -----------------------------------------------------------------------------


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIGNATURE) == SECRET_KIND:
            return SECRET
        return {key: _without_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


def _is_kubernetes_object(resource_type: str) -> bool:
    return resource_type.startswith("kubernetes:")


def _stable_object(body: Any) -> Any:
    """A Kubernetes object without what the API server and controllers rewrite on their own."""
    if not isinstance(body, dict):
        return body
    body = {key: value for key, value in body.items() if key != "status"}
    if isinstance(body.get("metadata"), dict):
        body["metadata"] = {k: v for k, v in body["metadata"].items() if k not in VOLATILE_METADATA}
    return body


def normalized(resource: Mapping[str, Any]) -> dict[str, Any]:
    """What a resource's digest covers: its inputs and outputs, secrets as ``[secret]``, without the
    fields of a Kubernetes object that change with nobody changing it."""
    inputs = _without_secrets(resource.get("inputs") or {})
    outputs = _without_secrets(resource.get("outputs") or {})
    if _is_kubernetes_object(str(resource.get("type", ""))):
        outputs = _stable_object(outputs)
    return {"inputs": inputs, "outputs": outputs}


def urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def object_label(resource: Mapping[str, Any]) -> str:
    """How a person names the resource: ``VirtualService demo/nginx``, ``Namespace demo``, the stack's
    outputs, a provider or a meshkit component."""
    resource_type = str(resource.get("type", ""))
    name = urn_name(str(resource.get("urn", "")))
    if resource_type == STACK_TYPE:
        return f"the stack's outputs ({name})"
    if resource_type.startswith("pulumi:providers:"):
        return f"provider {resource_type.removeprefix('pulumi:providers:')} {name}"
    if _is_kubernetes_object(resource_type):
        for body in (resource.get("outputs"), resource.get("inputs")):
            if not isinstance(body, dict):
                continue
            metadata = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
            object_name, namespace = metadata.get("name"), metadata.get("namespace")
            if isinstance(object_name, str):
                kind = body.get("kind") if isinstance(body.get("kind"), str) else resource_type.rsplit(":", 1)[-1]
                return f"{kind} {namespace}/{object_name}" if isinstance(namespace, str) else f"{kind} {object_name}"
        return f"{resource_type.rsplit(':', 1)[-1]} {name}"
    if resource_type.startswith("meshkit:"):
        return f"meshkit component {resource_type.rsplit(':', 1)[-1]} {name}"
    return f"{resource_type} {name}"


@dataclass(frozen=True)
class Deployed:
    """One resource of the deployed state, as a review records it."""

    label: str
    digest: str
    state: dict[str, Any]


def not_an_export(source: str, reason: str) -> MeshkitError:
    return MeshkitError(f"{source}: not a `pulumi stack export` of a stack ({reason})")


def export_resources(export: Any, source: str) -> list[Any]:
    """The ``deployment.resources`` of a ``pulumi stack export`` document ([] for a stack never deployed)."""
    if not isinstance(export, dict) or not isinstance(export.get("deployment"), dict):
        raise not_an_export(source, "no `deployment` object")
    resources = export["deployment"].get("resources")
    resources = [] if resources is None else resources
    if not isinstance(resources, list):
        raise not_an_export(source, "`deployment.resources` is not a list")
    return resources


def deployed_resources(export: Any, source: str) -> dict[str, Deployed]:
    """Every resource of a ``pulumi stack export``, by URN (``URN (pending deletion)`` for the old copy
    of a replaced resource that a killed update left)."""

    def refused(reason: str) -> MeshkitError:
        return not_an_export(source, reason)

    resources = export_resources(export, source)
    found: dict[str, Deployed] = {}
    for resource in resources:
        if not isinstance(resource, dict) or not isinstance(resource.get("urn"), str):
            raise refused("a resource without a URN")
        key = resource["urn"] + (" (pending deletion)" if resource.get("delete") else "")
        state = normalized(resource)
        found[key] = Deployed(object_label(resource), sha256(canonical_json(state)), state)
    return found


def state_digest(digests: Mapping[str, str]) -> str:
    """One digest over every resource's, for a one-line summary."""
    return sha256("".join(f"{key} {digest}\n" for key, digest in sorted(digests.items())).encode("utf-8"))


# --- the record -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRecord:
    """What a review was based on."""

    stack: str
    stack_file: str
    stack_file_sha256: str
    resources: dict[str, tuple[str, str]]
    """URN → (object, digest)."""
    recorded_at: str

    def to_json(self) -> str:
        document = {
            "meshkitReview": RECORD_FORMAT,
            "stack": self.stack,
            "recordedAt": self.recorded_at,
            "stackFile": {"path": self.stack_file, "sha256": self.stack_file_sha256},
            "updatePlan": UPDATE_PLAN,
            "deployed": {
                "sha256": state_digest({key: digest for key, (_, digest) in self.resources.items()}),
                "resources": {
                    key: {"object": label, "sha256": digest} for key, (label, digest) in sorted(self.resources.items())
                },
            },
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> ReviewRecord:
        def refused(reason: str) -> MeshkitError:
            return MeshkitError(f"{source}: not a meshkit review record ({reason}); `make review` writes one")

        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise refused(f"not JSON: {error or 'nested too deeply'}") from None
        if not isinstance(document, dict) or document.get("meshkitReview") != RECORD_FORMAT:
            raise refused(f"`meshkitReview` is not {RECORD_FORMAT}")
        try:
            stack_file = document["stackFile"]
            resources = {
                str(key): (str(entry["object"]), str(entry["sha256"]))
                for key, entry in document["deployed"]["resources"].items()
            }
            return cls(
                stack=str(document["stack"]),
                stack_file=str(stack_file["path"]),
                stack_file_sha256=str(stack_file["sha256"]),
                resources=resources,
                recorded_at=str(document["recordedAt"]),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise refused(f"missing or malformed {error}") from None


def make_record(stack: str, stack_file: str, stack_file_data: bytes, deployed: Mapping[str, Deployed],
                recorded_at: str) -> ReviewRecord:  # fmt: skip
    resources = {key: (item.label, item.digest) for key, item in deployed.items()}
    return ReviewRecord(stack, stack_file, sha256(stack_file_data), resources, recorded_at)


def write_review(directory: Path, record: ReviewRecord, stack_file_data: bytes,
                 deployed: Mapping[str, Deployed]) -> None:  # fmt: skip
    """The record and what explains a refusal later; the saved update plan is the engine's to write."""
    states = {key: item.state for key, item in sorted(deployed.items())}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / RECORD_FILE).write_text(record.to_json(), encoding="utf-8")
        (directory / STATE_FILE).write_text(json.dumps(states, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (directory / STACK_FILE_COPY).write_bytes(stack_file_data)
    except OSError as error:
        raise MeshkitError(f"{directory}: cannot write the review there: {error.strerror or error}") from None


@dataclass(frozen=True)
class Review:
    """A review directory as read back: the record, and (when present) what explains a refusal."""

    directory: Path
    record: ReviewRecord
    stack_file_data: bytes | None = None
    states: dict[str, Any] = field(default_factory=dict)

    @property
    def update_plan(self) -> Path:
        return self.directory / UPDATE_PLAN


def read_review(directory: Path, stack: str, replan: str) -> Review:
    """The review in ``directory``; refused when there is none, it is incomplete, or it is another stack's."""
    record_path = directory / RECORD_FILE
    try:
        # utf-8-sig: a byte-order mark an editor added is read past, as in every other file meshkit reads.
        text = record_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MeshkitError(
            f"{directory}: no review there ({RECORD_FILE} missing), so nothing was deployed; make one with "
            f"`{replan}` and get its plan reviewed"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise MeshkitError(f"{record_path}: cannot read it: {error}") from None
    record = ReviewRecord.from_json(text, str(record_path))
    if record.stack != stack:
        raise MeshkitError(
            f"{directory}: the review of stack {record.stack}, not of {stack}, so nothing was deployed; "
            f"make one with `{replan}`"
        )
    if not (directory / UPDATE_PLAN).is_file():
        raise MeshkitError(
            f"{directory}: the review is incomplete ({UPDATE_PLAN}, the engine's saved plan, is missing: did "
            f"`pulumi preview --save-plan` fail?), so nothing was deployed; make it again with `{replan}`"
        )
    # The reviewed stack file's copy must be the one the record's digest names: a record whose digest was
    # replaced by that of an edited file would otherwise vouch for a file nobody reviewed.
    try:
        stack_file_data = (directory / STACK_FILE_COPY).read_bytes()
    except OSError:
        raise MeshkitError(
            f"{directory}: the review is incomplete ({STACK_FILE_COPY}, the reviewed stack file's copy, is "
            f"missing), so nothing was deployed; make it again with `{replan}`"
        ) from None
    if sha256(stack_file_data) != record.stack_file_sha256:
        raise MeshkitError(
            f"{directory}: {RECORD_FILE} names stack file sha256 {record.stack_file_sha256[:12]}…, but the reviewed "
            f"copy ({STACK_FILE_COPY}) is {sha256(stack_file_data)[:12]}…: the review was altered, so nothing was "
            f"deployed; make it again with `{replan}` and get its plan reviewed"
        )
    # The states only name the fields that moved; the digests decide.
    states = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        states = loaded if isinstance(loaded, dict) else {}
    return Review(directory, record, stack_file_data, states)


# --- what moved -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.path} {_show(self.before)} → {_show(self.after)}"


class _Missing:
    """A key one side of a comparison lacks."""

    def __repr__(self) -> str:
        return "(none)"


MISSING: Any = _Missing()


def _show(value: Any) -> str:
    if value is MISSING:
        return "(none)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def changed_fields(before: Any, after: Any, path: str = "") -> Iterator[FieldChange]:
    """Every leaf that differs, as a dotted path: ``spec.http[0].route[0].weight 70 → 50``. Lists of
    different lengths are one change."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            child = f"{path}.{key}" if path else str(key)
            yield from changed_fields(before.get(key, MISSING), after.get(key, MISSING), child)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from changed_fields(old, new, f"{path}[{index}]")
    elif before != after:
        yield FieldChange(path, before, after)


def _object_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    """The changed fields of a resource, as the object shows them (its outputs, without the copy of the
    inputs the provider keeps there); its inputs when only those changed."""

    def outputs(state: Mapping[str, Any]) -> Any:
        body = state.get("outputs")
        return {k: v for k, v in body.items() if k != "__inputs"} if isinstance(body, dict) else body

    found = list(changed_fields(outputs(before), outputs(after)))
    if not found:
        found = [
            FieldChange(f"inputs.{c.path}" if c.path else "inputs", c.before, c.after)
            for c in changed_fields(before.get("inputs"), after.get("inputs"))
        ]
    return found


@dataclass(frozen=True)
class Moved:
    """One resource whose deployed state is not the reviewed one."""

    key: str
    label: str
    how: str
    """``changed``, ``new`` (not in the reviewed state) or ``gone``."""
    fields: tuple[FieldChange, ...] = ()

    def __str__(self) -> str:
        if self.how == "new":
            return f"{self.label}: new, not in the reviewed state"
        if self.how == "gone":
            return f"{self.label}: gone from the deployed state"
        if not self.fields:
            return f"{self.label}: changed"
        shown = ", ".join(str(change) for change in self.fields[:MAX_FIELDS])
        more = len(self.fields) - MAX_FIELDS
        return f"{self.label}: changed: {shown}" + (f" and {more} more field(s)" if more > 0 else "")


def moved_resources(record: ReviewRecord, current: Mapping[str, Deployed],
                    reviewed_states: Mapping[str, Any] | None = None) -> list[Moved]:  # fmt: skip
    """Resources changed, created or deleted since the review; the stack's outputs last."""
    reviewed_states = reviewed_states or {}
    moved = []
    for key, (label, digest) in record.resources.items():
        now = current.get(key)
        if now is None:
            moved.append(Moved(key, label, "gone"))
        elif now.digest != digest:
            before = reviewed_states.get(key)
            # The saved state explains the change only if it is the one the digest was taken of.
            known = isinstance(before, dict) and sha256(canonical_json(before)) == digest
            fields = tuple(_object_fields(before, now.state)) if known and isinstance(before, dict) else ()
            moved.append(Moved(key, now.label, "changed", fields))
    moved += [Moved(key, item.label, "new") for key, item in current.items() if key not in record.resources]
    return sorted(moved, key=lambda m: (m.label.startswith("the stack's outputs"), m.label, m.key))


def stack_file_diff(reviewed: bytes | None, current: bytes, path: str) -> list[str]:
    """The edit since the review as a unified diff (empty when the reviewed copy is unknown or either
    side is not text)."""
    if reviewed is None:
        return []
    try:
        before, after = reviewed.decode("utf-8").splitlines(), current.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return []
    lines = list(difflib.unified_diff(before, after, f"{path} (reviewed)", f"{path} (now)", lineterm="", n=1))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more diff lines)"]
    return lines


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing a review with what holds now."""

    review: Review
    stack_file: str
    stack_file_sha256: str
    stack_file_diff: list[str]
    moved: list[Moved]
    resources: int

    @property
    def stack_file_changed(self) -> bool:
        return self.stack_file_sha256 != self.review.record.stack_file_sha256

    @property
    def holds(self) -> bool:
        return not self.stack_file_changed and not self.moved

    def summary(self) -> str:
        record = self.review.record
        return (
            f"{self.review.directory}: unchanged since the review ({record.recorded_at}): the stack file "
            f"{self.stack_file} (sha256 {self.stack_file_sha256[:12]}) and the {self.resources} resource(s) "
            f"deployed in stack {record.stack}; the saved plan is {self.review.update_plan}"
        )

    def refusal(self, replan: str) -> str:
        record = self.review.record
        lines = [f"{self.review.directory}: refused, nothing was deployed: what was reviewed no longer holds."]
        if self.stack_file_changed:
            lines.append(
                f"  the stack file {self.stack_file} changed since the review (reviewed sha256 "
                f"{record.stack_file_sha256[:12]}, now {self.stack_file_sha256[:12]})"
                + (":" if self.stack_file_diff else "")
            )
            lines += [f"    {line}" for line in self.stack_file_diff]
        if self.moved:
            lines.append(
                f"  the deployed state of stack {record.stack} moved since the review ({record.recorded_at}; another "
                f"deployment, or a hand edit in the cluster): {len(self.moved)} object(s):"
            )
            lines += [f"    {moved}" for moved in self.moved]
        lines.append(
            f"  The saved plan {self.review.update_plan} was made from what was reviewed; applying it now could "
            "do something nobody reviewed."
        )
        lines.append(f"  fix: re-plan with `{replan}` and get the new plan reviewed, then apply that review")
        return "\n".join(lines)


def verdict(review: Review, stack_file: str, stack_file_data: bytes, current: Mapping[str, Deployed]) -> Verdict:
    digest = sha256(stack_file_data)
    changed = digest != review.record.stack_file_sha256
    diff = stack_file_diff(review.stack_file_data, stack_file_data, stack_file) if changed else []
    moved = moved_resources(review.record, current, review.states)
    return Verdict(review, stack_file, digest, diff, moved, len(current))
