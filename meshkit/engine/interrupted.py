"""What a killed ``pulumi up`` leaves in a render directory that no later update would set right.

With ``PULUMI_SKIP_CHECKPOINTS`` (the Makefile sets it) the file backend writes a stack's state once, at the
end of an update, so a ``pulumi up`` killed with SIGKILL leaves the state of the update before it. The next
``up`` redoes the step: in render mode (the Kubernetes provider's ``renderYamlToDirectory``) the provider
overwrites the files it writes again, and deleting a file that is already gone succeeds. What no update
sees is what the killed one did to objects the next one does not change:

- a file it wrote for an object the next one no longer declares (the stack file changed in between): no
  state ever held that object, so nothing deletes its file;
- a file it rewrote (or deleted) for an object the state holds, when the next ``up`` declares that object as
  the state has it (the step was reverted): the engine sees no change, and in render mode a refresh reads
  nothing back. ``rendered/<stack>/`` would show the killed step, not what the state says is deployed.

So ``meshkit unlock``, once it finds the lock of a killed update, makes each render directory what the
state records (``render_repairs``):

- it removes every rendered file whose object no ``kubernetes:*`` resource of the stack's state is.
  Objects are matched by identity (API group, kind, namespace, name), read from the file and from the
  resource's inputs. A file that cannot be read as Kubernetes objects is kept and named, and nothing is
  removed when a resource's identity cannot be read from the state;
- it writes, from the state, the file of each object the state holds whose file is missing or whose parsed
  content is not the state's record of it. That record is the resource's ``outputs`` without the provider's
  bookkeeping (the top-level ``__inputs``, ``__initialApiVersion``, ``__fieldManager``), its
  ``x_kubernetes_*`` schema keys named back ``x-kubernetes-*``: in render mode the provider records exactly
  the object it rendered (checked against its files in tests/test_interrupted.py). The file is where the
  provider puts it (``render_path``); its YAML is formatted as the provider's (sorted keys, double quotes
  where a plain scalar would be read as another type, literal blocks for several lines), though not byte
  for byte: go-yaml orders keys with digits naturally (``a9`` before ``a10``);
- it removes a file the provider named for an object of the state under another ``apiVersion`` (a killed
  update that moved the object to another version of its API group), once the state's own file is right;
- an object whose record holds secret values cannot be written: the state holds them encrypted. Its file
  is checked outside those values; when that differs, or the file is missing, it is named, with what to do
  (``pulumi state delete --target-dependents`` and an ``up``: a ``pulumi up --replace`` would not do, as in
  render mode the provider creates the new object's file before it deletes the old one's, the same path).

Files other than the provider's own names are never rewritten, nothing is written through a symbolic link
or outside the render directory (an object's name that is no file name is refused), and a stack whose
provider deploys to a cluster has no render directory: nothing to do here. Not handled: a stack whose state
holds no provider yet (its first ``up`` was killed) names no render directory, so nothing is removed.

Standard library and PyYAML only; no Pulumi runtime (the state is read with the ``pulumi`` CLI).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import yaml

from meshkit.engine.reviewed import export_resources, not_an_export
from meshkit.errors import MeshkitError

PROVIDER_TYPE = "pulumi:providers:kubernetes"
RENDER_INPUT = "renderYamlToDirectory"
YAML_SUFFIXES = (".yaml", ".yml")
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
"""The key that marks a secret value in a Pulumi state; in a stack export its value is ``ciphertext``."""
CRD_DIRECTORY, MANIFEST_DIRECTORY = "0-crd", "1-manifest"
CRD_API_VERSIONS = frozenset({"apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1beta1"})
"""The group versions whose ``CustomResourceDefinition`` the provider renders into ``0-crd/`` (it asks for any
built-in group version; only this group has the kind)."""
_DASHED_KEYS = {
    f"x_kubernetes_{key}": f"x-kubernetes-{key.replace('_', '-')}"
    for key in ("embedded_resource", "int_or_string", "list_map_keys", "list_type", "map_type",
                "preserve_unknown_fields", "validations")
}  # fmt: skip
"""The provider records these schema keys underscored (``underscoreToDashMap`` in its provider.go)."""
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BASE_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """YAML as Kubernetes reads it: a timestamp or ``=`` is a string (PyYAML would make a date of one and
    refuse the other)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag.rpartition(":")[2] not in ("timestamp", "value")]
    for first, resolvers in _BASE_LOADER.yaml_implicit_resolvers.items()
}


class _Dumper(_BASE_DUMPER):  # type: ignore[misc]
    """YAML as the provider writes it (go-yaml through sigs.k8s.io/yaml): block style, keys sorted,
    sequences not indented in mappings, 80 columns."""


def _represent_str(dumper: Any, value: str) -> Any:
    # go-yaml: a literal block for several lines, double quotes for what a plain scalar would read as another
    # type; the emitter falls back from plain when it must (single quotes, as go-yaml's does).
    if "\n" in value:
        style: str | None = "|"
    elif dumper.resolve(yaml.ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        style = '"'
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


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


def render_path(manifest: Any) -> PurePosixPath | None:
    """Where the provider renders an object, relative to its render directory (``renderPathForResource`` in
    pulumi-kubernetes' provider.go): ``0-crd/`` for a CustomResourceDefinition, ``1-manifest/`` for anything
    else, named ``<apiVersion, "/" and ":" made "_">-<kind in lower case>-<namespace, or "default">-<name>.yaml``.
    None when the object has no identity, or when that name is no file name (a ``/`` or NUL in the kind,
    namespace or name: the provider would write elsewhere)."""
    identity = object_id(manifest)
    if identity is None:
        return None
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    sanitised = api_version.replace("/", "_").replace(":", "_")
    name = f"{sanitised}-{kind.lower()}-{identity.namespace or 'default'}-{identity.name}.yaml"
    if "/" in name or "\0" in name:
        return None
    crd = kind == "CustomResourceDefinition" and api_version in CRD_API_VERSIONS
    return PurePosixPath(CRD_DIRECTORY if crd else MANIFEST_DIRECTORY, name)


def _dashed(value: Any) -> Any:
    if isinstance(value, dict):
        return {_DASHED_KEYS.get(key, key): _dashed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dashed(item) for item in value]
    return value


def is_secret(value: Any) -> bool:
    """Whether a value of a state is a secret (in a stack export: its ciphertext)."""
    return isinstance(value, dict) and SECRET_SIGNATURE in value


def holds_secrets(value: Any) -> bool:
    """Whether a value of a state is, or holds, a secret."""
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(holds_secrets(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_secrets(item) for item in value)
    return False


def recorded_manifest(outputs: Any) -> dict[str, Any] | None:
    """The object a render-mode resource's ``outputs`` record: what the provider rendered, without its
    bookkeeping (top-level keys that start with ``__``), its schema keys named as in the file. None when the
    outputs are no mapping (e.g. all of them secret)."""
    if not isinstance(outputs, dict) or is_secret(outputs):
        return None
    return {key: _dashed(value) for key, value in outputs.items() if not str(key).startswith("__")}


@dataclass(frozen=True)
class Record:
    """What the state holds of one object of a render directory."""

    urn: str
    directory: str
    """The render directory of the resource's provider (relative to the project root)."""
    manifest: dict[str, Any] | None
    """The object as the provider rendered it (``recorded_manifest``); secret values stay marked."""

    @property
    def identity(self) -> ObjectId | None:
        return object_id(self.manifest)

    @property
    def path(self) -> PurePosixPath | None:
        """Its file, relative to ``directory``."""
        return render_path(self.manifest)

    @property
    def secret(self) -> bool:
        return holds_secrets(self.manifest)

    @property
    def api_version(self) -> str:
        return str((self.manifest or {}).get("apiVersion", ""))

    def __str__(self) -> str:
        return str(self.identity or self.urn)


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
    records: tuple[Record, ...] = ()
    """The object of each ``kubernetes:*`` resource a render-mode provider rendered, as the state records
    it; not those an update left to delete (``delete``) or to create again (``pendingReplacement``)."""


def state_objects(export: Any, source: str = "the stack's state") -> StateObjects:
    """Read a ``pulumi stack export`` document. Only ``deployment.resources`` count: an operation left
    pending by a killed update is no resource of the state, and no later update deletes its object."""

    def refused(reason: str) -> MeshkitError:
        return not_an_export(source, reason)

    resources = export_resources(export, source)
    if not all(isinstance(resource, dict) and isinstance(resource.get("type"), str) for resource in resources):
        raise refused("a resource without a type")
    directories: list[str] = []
    rendering: dict[str, str] = {}  # a provider reference ("<urn>::<id>") → its render directory
    objects: set[ObjectId] = set()
    unidentified: list[str] = []
    records: list[Record] = []
    for resource in resources:
        inputs = resource.get("inputs")
        if resource["type"] == PROVIDER_TYPE:
            directory = inputs.get(RENDER_INPUT) if isinstance(inputs, dict) else None
            if isinstance(directory, str) and directory:
                if directory not in directories:
                    directories.append(directory)
                rendering[f"{resource.get('urn')}::{resource.get('id')}"] = directory
    for resource in resources:
        kind, inputs = resource["type"], resource.get("inputs")
        if not kind.startswith("kubernetes:") or not resource.get("custom", True):
            continue
        identity = object_id(inputs)
        if identity is None:
            unidentified.append(str(resource.get("urn", kind)))
        else:
            objects.add(identity)
        directory = rendering.get(str(resource.get("provider")))
        if directory is not None and not resource.get("delete") and not resource.get("pendingReplacement"):
            records.append(
                Record(str(resource.get("urn", kind)), directory, recorded_manifest(resource.get("outputs")))
            )
    return StateObjects(tuple(directories), frozenset(objects), tuple(unidentified), tuple(records))


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


def file_documents(path: Path) -> list[Any]:
    """The documents of a rendered file, as Kubernetes reads YAML; ValueError, saying why, when it cannot
    be read or holds none."""
    try:
        text = path.read_bytes().decode("utf-8")
        documents = [document for document in yaml.load_all(text, Loader=_Loader) if document is not None]
    except OSError as error:
        raise ValueError(f"cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise ValueError(f"not YAML: {str(error).splitlines()[0]}") from None
    if not documents:
        raise ValueError("it holds no object")
    return documents


def _identities(documents: list[Any]) -> list[ObjectId]:
    identities = [object_id(document) for document in documents]
    if any(identity is None for identity in identities):
        raise ValueError("not a Kubernetes object (no apiVersion, kind or metadata.name)")
    return [identity for identity in identities if identity is not None]


def file_objects(path: Path) -> list[ObjectId]:
    """The identities of the objects a rendered file holds; ValueError, saying why, when it holds none or
    something that is no Kubernetes object."""
    return _identities(file_documents(path))


Scan = dict[str, dict[Path, list[Any] | str]]
"""Each render directory's YAML files: the documents of each, or why they cannot be read."""


def _scan(state: StateObjects, root: Path) -> Scan:
    found: Scan = {}
    for relative in state.render_directories:
        files = found.setdefault(relative, {})
        directory = root / relative
        if directory.is_dir():
            for path in _yaml_files(directory):
                try:
                    files[path] = file_documents(path)
                except ValueError as error:
                    files[path] = str(error)
    return found


def _orphans(state: StateObjects, scan: Scan) -> Orphans:
    if state.render_directories and state.unidentified:
        return Orphans(blocked_by=state.unidentified)
    found = Orphans()
    for files in scan.values():
        for path, documents in files.items():
            try:
                if isinstance(documents, str):
                    raise ValueError(documents)
                identities = _identities(documents)
            except ValueError as error:
                found.unreadable[path] = str(error)
                continue
            if not any(identity in state.objects for identity in identities):
                found.files[path] = identities
    return found


def orphaned_files(state: StateObjects, root: Path) -> Orphans:
    """The files in the state's render directories (relative to the project ``root``) that hold no object
    of the state. Nothing for a stack that deploys to a cluster."""
    return _orphans(state, _scan(state, root))


def matches(recorded: Any, found: Any) -> bool:
    """Whether a file's document is the state's record of it; a secret of the record matches any value
    there (the state holds it encrypted)."""
    if is_secret(recorded):
        return True
    if isinstance(recorded, dict):
        return (
            isinstance(found, dict)
            and recorded.keys() == found.keys()
            and all(matches(value, found[key]) for key, value in recorded.items())
        )
    if isinstance(recorded, list):
        return (
            isinstance(found, list)
            and len(recorded) == len(found)
            and all(matches(value, other) for value, other in zip(recorded, found, strict=True))
        )
    if isinstance(recorded, bool) or isinstance(found, bool):
        return recorded is found
    if isinstance(recorded, int | float) and isinstance(found, int | float):
        return recorded == found  # JSON has one kind of number
    return type(recorded) is type(found) and bool(recorded == found)


def manifest_yaml(manifest: dict[str, Any]) -> str:
    """An object's file, as the provider writes it (see the module's docstring for how close)."""
    text: str = yaml.dump(manifest, Dumper=_Dumper, default_flow_style=False, sort_keys=True, allow_unicode=True)
    return text


class Write(NamedTuple):
    """A file to write from the state."""

    path: Path
    text: str
    record: Record
    replaces: bool
    """A file is there (a killed update changed it), or none (a killed update deleted it)."""


class Duplicate(NamedTuple):
    """A file the provider wrote for an object of the state under another ``apiVersion``: to remove."""

    path: Path
    rendered_as: str
    """The ``apiVersion`` the file holds the object as."""
    record: Record
    canonical: Path
    """The state's file of the object."""


class NotRestored(NamedTuple):
    """An object of the state whose file is not what the state records, and cannot be written from it."""

    record: Record
    path: Path | None
    reason: str
    secret: bool = False
    """The record holds secret values (the reason then says what the killed update did to the file)."""


class Unchecked(NamedTuple):
    """A file that matches the state's record of its object outside that record's secret values."""

    record: Record
    path: Path


@dataclass
class Repairs:
    """What ``meshkit unlock`` does to the render directories after a killed update (``render_repairs``)."""

    orphans: Orphans = field(default_factory=Orphans)
    """Files to remove (no resource of the state is their object), and files kept unread."""
    writes: list[Write] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    not_restored: list[NotRestored] = field(default_factory=list)
    unchecked: list[Unchecked] = field(default_factory=list)


def _within(path: Path, directory: Path) -> bool:
    """``path`` is a file of ``directory``'s ``0-crd``/``1-manifest``, not reached through a symbolic link
    from there (nor itself one)."""
    parent = path.parent
    return (
        parent.parent == directory
        and parent.name in (CRD_DIRECTORY, MANIFEST_DIRECTORY)
        and not parent.is_symlink()
        and not path.is_symlink()
        and (not parent.exists() or parent.is_dir())
    )


def render_repairs(state: StateObjects, root: Path) -> Repairs:
    """What makes the state's render directories (relative to the project ``root``) exactly what the state
    records: which files to remove, which to write and with what, and what cannot be set right. Reads files
    only; nothing for a stack that deploys to a cluster."""
    scan = _scan(state, root)
    repairs = Repairs(orphans=_orphans(state, scan))
    targets: dict[Path, list[Record]] = {}
    for record in state.records:
        file = record.path
        if file is None:
            reason = (
                "the state shows no apiVersion, kind and name of it"
                if record.identity is None
                else "its name is no file name (the provider would write it outside its directory)"
            )
            repairs.not_restored.append(NotRestored(record, None, reason))
        else:
            targets.setdefault(root / record.directory / file, []).append(record)
    settled: dict[tuple[str, ObjectId], Record] = {}  # objects whose file is, or is written to be, their record
    for path, records in targets.items():
        if len(records) > 1:
            urns = ", ".join(record.urn for record in records)
            repairs.not_restored += [
                NotRestored(r, path, f"resources {urns} of the state render to it") for r in records
            ]
            continue
        (record,) = records
        assert record.manifest is not None and record.identity is not None  # it has a path
        if not _within(path, root / record.directory):
            repairs.not_restored.append(NotRestored(record, path, "it is a symbolic link, or under one"))
            continue
        documents = scan.get(record.directory, {}).get(path)
        if documents is None and path.exists():
            repairs.not_restored.append(NotRestored(record, path, "it is no regular file"))
            continue
        if isinstance(documents, list) and len(documents) == 1 and matches(record.manifest, documents[0]):
            if record.secret:
                repairs.unchecked.append(Unchecked(record, path))
        elif record.secret:
            did = "deleted it" if documents is None else "changed it"
            repairs.not_restored.append(NotRestored(record, path, did, secret=True))
            continue
        else:
            repairs.writes.append(Write(path, manifest_yaml(record.manifest), record, replaces=documents is not None))
        settled[(record.directory, record.identity)] = record
    for write in repairs.writes:  # written from the state: neither removed nor kept unread
        repairs.orphans.files.pop(write.path, None)
        repairs.orphans.unreadable.pop(write.path, None)
    if repairs.orphans.blocked_by:
        return repairs
    for relative, files in scan.items():
        for path, documents in files.items():
            if path in targets or isinstance(documents, str) or len(documents) != 1:
                continue
            identity, own = object_id(documents[0]), render_path(documents[0])
            held = settled.get((relative, identity)) if identity is not None else None
            if held is not None and own is not None and root / relative / own == path:
                canonical = root / relative / str(held.path)
                repairs.duplicates.append(Duplicate(path, documents[0]["apiVersion"], held, canonical))
    return repairs


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
