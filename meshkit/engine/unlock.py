"""``meshkit unlock``: after a killed ``pulumi up``, remove its stale locks and set right what it left behind.

``make up`` runs it first, so that the next ``up`` after an interrupted one completes the step. It acts only
when no update may still run (every lock of the stack provably stale, :mod:`~meshkit.engine.stale_locks`):
then it removes the checkpoint attribute files the killed update cut short, makes each render directory what
the stack's state records (:mod:`~meshkit.engine.interrupted` finds what to do), and removes the stale locks
last: while the killed update's lock is there no other update can start, so a repair that fails keeps it
(the evidence) and the next unlock tries again.

:func:`unlock_stack` yields each thing it does once it is done, and each thing it found and could not set
right, as data; the command line words them. Yielded as they happen, not returned at the end: when a later
step fails (the state cannot be read, a file cannot be written) the caller has still been told what is
already gone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from meshkit.engine import interrupted
from meshkit.engine.interrupted import (
    Duplicate,
    NotRestored,
    ObjectId,
    Unchecked,
    Write,
    render_repairs,
    state_objects,
)
from meshkit.engine.sources import as_seen_from, project_name, project_root
from meshkit.engine.stale_locks import (
    StackLock,
    backend_directory,
    is_stale,
    remove_stale_locks,
    stack_locks,
    truncated_attribute_files,
)
from meshkit.errors import MeshkitError


@dataclass(frozen=True)
class NotAFileBackend:
    """Nothing done: the backend is no ``file://`` one, and its locks are the service's business."""

    url: str


@dataclass(frozen=True)
class RemovedAttributeFile:
    """A checkpoint attribute file a killed update cut short (the checkpoint itself is whole)."""

    path: Path


@dataclass(frozen=True)
class KeptRenderedFiles:
    """Every rendered file kept: the state does not show which objects these resources (URNs) are, so the
    files a killed update wrote cannot be told apart."""

    unidentified: tuple[str, ...]


@dataclass(frozen=True)
class KeptUnreadableFile:
    """A rendered file kept: which object it holds cannot be told."""

    path: Path
    reason: str


@dataclass(frozen=True)
class RemovedOrphanFile:
    """A file a killed update rendered for objects no resource of the state is."""

    path: Path
    objects: tuple[ObjectId, ...]


@dataclass(frozen=True)
class RemovedDuplicateFile:
    """A file a killed update rendered for an object of the state under another ``apiVersion``."""

    duplicate: Duplicate


@dataclass(frozen=True)
class WroteFile:
    """A file written again from the state: a killed update had changed or deleted it."""

    write: Write


@dataclass(frozen=True)
class RemovedStaleLock:
    lock: StackLock


UnlockStep = (
    NotAFileBackend
    | RemovedAttributeFile
    | KeptRenderedFiles
    | KeptUnreadableFile
    | RemovedOrphanFile
    | RemovedDuplicateFile
    | WroteFile
    | NotRestored
    | Unchecked
    | RemovedStaleLock
)
"""What :func:`unlock_stack` did, or found and left (``NotRestored``, ``Unchecked``: what to do is the
user's)."""


class StackLockedError(MeshkitError):
    """An update that may still run holds the stack: nothing was changed, or nothing more."""

    def __init__(self, stack: str, locks: list[StackLock]) -> None:
        super().__init__(
            "\n".join(
                [f"stack {stack} is locked by an update that may still run:"]
                + [f"  {lock}" for lock in locks]
                + [f"wait for it to end; if you know it is gone, run `pulumi cancel --stack {stack}`"]
            )
        )
        self.locks = locks


def unlock_stack(stack: str, backend_url: str | None, cwd: Path) -> Iterator[UnlockStep]:
    """Unlock ``stack`` of the Pulumi project at or above ``cwd`` in the backend ``backend_url`` (default:
    ``$PULUMI_BACKEND_URL``, as the pulumi CLI reads it), yielding each step; :class:`StackLockedError` when a
    live update may hold it."""
    url = backend_url or os.environ.get("PULUMI_BACKEND_URL", "")
    directory = backend_directory(url)
    if directory is None:
        yield NotAFileBackend(url)
        return
    root = project_root(cwd)
    project = project_name(root)
    locks = stack_locks(directory, project, stack)
    stale = [lock for lock in locks if is_stale(lock)]
    held = [lock for lock in locks if lock not in stale]
    if held:
        # Stale locks stay too: once the live update ends, the next unlock cleans up after the killed one.
        raise StackLockedError(stack, held)
    # No update runs now: an attribute file a killed one cut short can go (see meshkit.engine.stale_locks).
    for path in truncated_attribute_files(directory, project, stack):
        path.unlink(missing_ok=True)
        yield RemovedAttributeFile(path)
    if stale:
        yield from _repair_interrupted_renders(stack, root, backend_url, cwd)
    removed, held = remove_stale_locks(directory, project, stack)
    for lock in removed:
        yield RemovedStaleLock(lock)
    if held:
        raise StackLockedError(stack, held)


def _repair_interrupted_renders(stack: str, root: Path, backend_url: str | None, cwd: Path) -> Iterator[UnlockStep]:
    """Make the render directories what the state records: a killed update may have written files for objects
    the next ``up`` no longer declares, and changed or deleted files of objects it declares as the state has
    them; no update would set those right (see meshkit.engine.interrupted)."""
    # Looked up at each call, not imported by name: tests stand in for the pulumi CLI there.
    export = interrupted.stack_state(stack, root, backend_url)
    repairs = render_repairs(state_objects(export, f"the state of stack {stack!r}"), root)
    orphans = repairs.orphans
    if orphans.blocked_by:
        yield KeptRenderedFiles(orphans.blocked_by)
    for path, reason in orphans.unreadable.items():
        yield KeptUnreadableFile(path, reason)
    for path, objects in orphans.files.items():
        path.unlink(missing_ok=True)
        yield RemovedOrphanFile(path, tuple(objects))
    for duplicate in repairs.duplicates:
        duplicate.path.unlink(missing_ok=True)
        yield RemovedDuplicateFile(duplicate)
    for change in repairs.writes:
        _write_rendered_file(change.path, change.text, cwd)
        yield WroteFile(change)
    yield from repairs.not_restored
    yield from repairs.unchecked


def _write_rendered_file(path: Path, text: str, cwd: Path) -> None:
    """As the provider writes a rendered file (directories 0700, files 0600, an existing file's mode kept),
    whole or not at all: a temporary file beside it (no .yaml name) renamed over it."""
    temporary = path.with_name(f".{path.name}.meshkit-{os.getpid()}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o600
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as output:
            output.write(text)
        os.chmod(temporary, mode)  # whatever the umask
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise MeshkitError(f"{as_seen_from(cwd, path)}: cannot write it: {error.strerror or error}") from None
