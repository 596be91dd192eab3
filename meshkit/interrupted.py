"""What a killed ``pulumi up`` leaves in a render directory that no later update would remove.

With ``PULUMI_SKIP_CHECKPOINTS`` (the Makefile sets it) the file backend writes a stack's state once, at the
end of an update, so a ``pulumi up`` killed with SIGKILL leaves the state of the update before it. The next
``up`` redoes the step: in render mode (the Kubernetes provider's ``renderYamlToDirectory``) the provider
overwrites the files it writes again, and deleting a file that is already gone succeeds. What no update
can see is a file the killed one wrote for an object the next one no longer declares (the stack file
changed in between): no state ever held that object, so nothing deletes its file, and ``rendered/<stack>/``
would keep an object that nothing deploys.

So ``meshkit unlock``, once it finds the lock of a killed update, removes every rendered file whose object
no ``kubernetes:*`` resource of the stack's state is. Objects are matched by identity (API group, kind,
namespace, name), read from the file and from the resource's inputs in ``pulumi stack export``; the
provider's file naming is not re-derived. A file that cannot be read as Kubernetes objects is kept and
named, and nothing is removed when a resource's identity cannot be read from the state. A stack whose
provider deploys to a cluster has no render directory: nothing to do here.

Not handled: a stack whose state holds no provider yet (its first ``up`` was killed) names no render
directory, so nothing is removed; and a file of an object the state does hold, rewritten (or deleted) by the
killed update, stays so when the next ``up`` declares that object as the state has it (the engine sees no
change, and in render mode a refresh reads nothing back).

Standard library and PyYAML only; no Pulumi runtime (the state is read with the ``pulumi`` CLI).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from .errors import MeshkitError

PROVIDER_TYPE = "pulumi:providers:kubernetes"
RENDER_INPUT = "renderYamlToDirectory"
YAML_SUFFIXES = (".yaml", ".yml")
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ObjectId(NamedTuple):
    """A Kubernetes object's identity: the same object whichever version of its API group renders it."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


def object_id(manifest: Any) -> ObjectId | None:
    """The identity of a manifest (a rendered object, or a resource's inputs); None when it has none."""
    if not isinstance(manifest, dict):
        return None
    api_version, kind, metadata = manifest.get("apiVersion"), manifest.get("kind"), manifest.get("metadata")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not isinstance(metadata, dict):
        return None
    name, namespace = metadata.get("name"), metadata.get("namespace") or ""
    if not api_version or not kind or not isinstance(name, str) or not name or not isinstance(namespace, str):
        return None
    # "apps/v1" → "apps"; "v1" → "" (the core group).
    return ObjectId(api_version.rpartition("/")[0], kind, namespace, name)


@dataclass(frozen=True)
class StateObjects:
    """What a ``pulumi stack export`` says about rendered files."""

    render_directories: tuple[str, ...]
    """``renderYamlToDirectory`` of the stack's Kubernetes providers (relative to the project root); empty
    for a stack that deploys to a cluster (or has deployed nothing yet)."""
    objects: frozenset[ObjectId]
    """The identity of every ``kubernetes:*`` resource in the state."""
    unidentified: tuple[str, ...] = ()
    """URNs of ``kubernetes:*`` resources whose inputs show no identity (e.g. encrypted)."""


def state_objects(export: Any, source: str = "the stack's state") -> StateObjects:
    """Read a ``pulumi stack export`` document. Only ``deployment.resources`` count: an operation left
    pending by a killed update is no resource of the state, and no later update deletes its object."""

    def refused(reason: str) -> MeshkitError:
        return MeshkitError(f"{source}: not a `pulumi stack export` of a stack ({reason})")

    if not isinstance(export, dict) or not isinstance(export.get("deployment"), dict):
        raise refused("no `deployment` object")
    resources = export["deployment"].get("resources")
    resources = [] if resources is None else resources  # a stack never deployed
    if not isinstance(resources, list):
        raise refused("`deployment.resources` is not a list")
    directories: list[str] = []
    objects: set[ObjectId] = set()
    unidentified: list[str] = []
    for resource in resources:
        if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
            raise refused("a resource without a type")
        kind, inputs = resource["type"], resource.get("inputs")
        if kind == PROVIDER_TYPE:
            directory = inputs.get(RENDER_INPUT) if isinstance(inputs, dict) else None
            if isinstance(directory, str) and directory and directory not in directories:
                directories.append(directory)
        elif kind.startswith("kubernetes:") and resource.get("custom", True):
            identity = object_id(inputs)
            if identity is None:
                unidentified.append(str(resource.get("urn", kind)))
            else:
                objects.add(identity)
    return StateObjects(tuple(directories), frozenset(objects), tuple(unidentified))


@dataclass
class Orphans:
    """The files of a render directory that no resource of the state accounts for."""

    files: dict[Path, list[ObjectId]] = field(default_factory=dict)
    """Each orphaned file, with the objects it holds."""
    unreadable: dict[Path, str] = field(default_factory=dict)
    """Files that could not be read as Kubernetes objects, with why: kept."""
    blocked_by: tuple[str, ...] = ()
    """When not empty, nothing is orphaned: these resources' objects are unknown (URNs)."""


def _yaml_files(directory: Path) -> Iterator[Path]:
    """Every regular ``*.yaml``/``*.yml`` file below ``directory``, symbolic links not followed."""
    for parent, directories, files in os.walk(directory, followlinks=False):
        directories.sort()
        for name in sorted(files):
            path = Path(parent) / name
            if path.suffix in YAML_SUFFIXES and not path.is_symlink() and path.is_file():
                yield path


def file_objects(path: Path) -> list[ObjectId]:
    """The identities of the objects a rendered file holds; ValueError, saying why, when it holds none or
    something that is no Kubernetes object."""
    try:
        text = path.read_bytes().decode("utf-8")
        documents = [document for document in yaml.load_all(text, Loader=_LOADER) if document is not None]
    except OSError as error:
        raise ValueError(f"cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise ValueError(f"not YAML: {str(error).splitlines()[0]}") from None
    if not documents:
        raise ValueError("it holds no object")
    identities = [object_id(document) for document in documents]
    if any(identity is None for identity in identities):
        raise ValueError("not a Kubernetes object (no apiVersion, kind or metadata.name)")
    return [identity for identity in identities if identity is not None]


def orphaned_files(state: StateObjects, root: Path) -> Orphans:
    """The files in the state's render directories (relative to the project ``root``) that hold no object
    of the state. Nothing for a stack that deploys to a cluster."""
    if state.render_directories and state.unidentified:
        return Orphans(blocked_by=state.unidentified)
    found = Orphans()
    for relative in state.render_directories:
        directory = root / relative
        if not directory.is_dir():
            continue
        for path in _yaml_files(directory):
            try:
                identities = file_objects(path)
            except ValueError as error:
                found.unreadable[path] = str(error)
                continue
            if not any(identity in state.objects for identity in identities):
                found.files[path] = identities
    return found


def stack_state(stack: str, root: Path, backend_url: str | None = None, timeout: float = 300) -> Any:
    """``pulumi stack export --stack STACK``, run in the project ``root`` with the caller's environment
    (``PULUMI_BACKEND_URL``, ``PULUMI_CONFIG_PASSPHRASE``), ``backend_url`` overriding the backend."""
    env = {**os.environ, "PULUMI_BACKEND_URL": backend_url} if backend_url else None
    command = ["pulumi", "stack", "export", "--stack", stack]
    try:
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, check=False, timeout=timeout)
    except FileNotFoundError:
        raise MeshkitError(
            "the pulumi CLI is not on PATH (run `make bootstrap`, then use .venv/bin); it reads the state of "
            f"stack {stack!r}, to find what the killed update rendered"
        ) from None
    except subprocess.TimeoutExpired:
        raise MeshkitError(f"`{' '.join(command)}` did not answer within {timeout:g} s") from None
    except OSError as error:
        raise MeshkitError(f"cannot run `{' '.join(command)}`: {error.strerror or error}") from None
    if result.returncode != 0:
        message = (result.stderr or result.stdout).decode("utf-8", errors="replace").strip()
        raise MeshkitError(f"cannot read the state of stack {stack!r} (`{' '.join(command)}`): {message}")
    try:
        return json.loads(result.stdout)
    except (ValueError, RecursionError) as error:
        raise MeshkitError(f"`{' '.join(command)}` printed no JSON: {error}") from None
