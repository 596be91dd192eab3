"""``meshkit unlock``: remove the locks a killed ``pulumi up`` left, once it has set right what that update left
behind. The work is :func:`meshkit.engine.unlock.unlock_stack`'s; this module says what it did."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, assert_never

import typer

from meshkit.cli.common import err, out, run
from meshkit.engine.interrupted import NotRestored, Unchecked
from meshkit.engine.sources import as_seen_from
from meshkit.engine.unlock import (
    KeptRenderedFiles,
    KeptUnreadableFile,
    NotAFileBackend,
    RemovedAttributeFile,
    RemovedDuplicateFile,
    RemovedOrphanFile,
    RemovedStaleLock,
    UnlockStep,
    WroteFile,
    unlock_stack,
)


def unlock(
    stack: Annotated[str, typer.Argument(help="Stack name, as `pulumi --stack` takes it.")],
    backend: Annotated[
        str | None, typer.Option(help="Backend URL (default: $PULUMI_BACKEND_URL, as the pulumi CLI reads it).")
    ] = None,
) -> None:
    """Remove the locks a killed `pulumi up` left on a file backend; a live update's lock is kept.

    `make up` runs this first, so the next `up` after an interrupted one completes the step. For a stack that
    renders manifests, it first makes the render directory what the stack's state records (no later update
    would): it removes the files the killed update rendered for objects that no resource of the state is, and
    writes again, from the state, the files of objects the state holds that the killed update changed or
    deleted.
    """

    def body() -> int:
        cwd = Path.cwd()
        for step in unlock_stack(stack, backend, cwd):
            if isinstance(step, NotAFileBackend):
                out.print(_said(step, stack, cwd), markup=False)
            else:
                err.print(_said(step, stack, cwd), markup=False)
        return 0

    run(body)


def _said(step: UnlockStep, stack: str, cwd: Path) -> str:
    def shown(path: Path) -> str:
        return str(as_seen_from(cwd, path))

    match step:
        case NotAFileBackend(url):
            return f"backend {url or '(none set)'} is not a file:// backend: its locks are not meshkit's"
        case RemovedAttributeFile(path):
            return f"meshkit: removed {path}, cut short by a killed update (the checkpoint is whole)"
        case KeptRenderedFiles(unidentified):
            return (
                f"meshkit: kept every rendered file of stack {stack}: the state does not show which object "
                f"{unidentified[0]} is, so files a killed update wrote cannot be told apart"
            )
        case KeptUnreadableFile(path, reason):
            return (
                f"meshkit: kept {shown(path)}: cannot tell which object it holds ({reason}); remove it by hand "
                f"if no resource of stack {stack} renders it"
            )
        case RemovedOrphanFile(path, objects):
            return (
                f"meshkit: removed {shown(path)}: written by a killed update for an object nothing declares "
                f"({', '.join(map(str, objects))}: in no resource of the state of stack {stack}; the next `up` "
                "writes it again if the stack file declares it)"
            )
        case RemovedDuplicateFile(duplicate):
            return (
                f"meshkit: removed {shown(duplicate.path)}: a killed update had rendered {duplicate.record} there "
                f"as {duplicate.rendered_as}; the state of stack {stack} holds it as "
                f"{duplicate.record.api_version}, in {shown(duplicate.canonical)}"
            )
        case WroteFile(change):
            what = "rewrote" if change.replaces else "wrote"
            did = "changed" if change.replaces else "deleted"
            return (
                f"meshkit: {what} {shown(change.path)}: a killed update had {did} it; the state of stack {stack} "
                f"holds {change.record} as the update before rendered it, and an `up` that declares it so "
                "would not write it again"
            )
        case NotRestored(record, path, reason, secret):
            where = shown(path) if path is not None else f"the file of {record.urn}"
            if not secret:
                return f"meshkit: could not restore {where} ({record}): {reason}"
            return (
                f"meshkit: could not restore {where}: a killed update had {reason}, and the state of "
                f"stack {stack} holds the secret values of {record} encrypted; " + _redo_hint(stack, record.urn)
            )
        case Unchecked(record, path):
            return (
                f"meshkit: did not check the secret values in {shown(path)}: the state of stack {stack} "
                f"holds those of {record} encrypted (the rest is as it records); if the killed update "
                "changed them, " + _redo_hint(stack, record.urn)
            )
        case RemovedStaleLock(lock):
            return f"meshkit: removed the stale {lock}: its process is gone"
        case _:
            assert_never(step)


def _redo_hint(stack: str, urn: str) -> str:
    return (
        f"run `pulumi state delete --stack {stack} --target-dependents '{urn}'`, then `make up STACK={stack}`: "
        "that `up` renders it, and what depends on it, again from the stack file (`pulumi up --replace` "
        "would not: in render mode it deletes the file it has just written)"
    )
