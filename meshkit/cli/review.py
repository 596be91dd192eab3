"""``meshkit review record`` and ``meshkit review verify``: reviewed = applied (``make review``, ``make apply``).
A thin layer over :mod:`meshkit.engine.reviewed`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from meshkit.cli.common import StackArg, out, run
from meshkit.engine.reviewed import Deployed, deployed_resources, make_record, read_review, verdict, write_review
from meshkit.engine.sources import as_seen_from, project_root, read_export, resolve_stack, stack_export
from meshkit.errors import MeshkitError

review_app = typer.Typer(
    help="Reviewed = applied: record what the review of a rollout step was based on (`make review`), and "
    "refuse to apply its saved plan once that no longer holds (`make apply`).",
    no_args_is_help=True,
)

ReviewDirOption = Annotated[
    Path | None, typer.Option("--dir", help="The review directory (default: review/<stack> in the project).")
]
SavedStateOption = Annotated[
    Path | None,
    typer.Option("--state", help="A saved `pulumi stack export` to read instead of the stack's current state."),
]


def _review_dir(name: str, directory: Path | None) -> Path:
    if directory is not None:
        return directory
    cwd = Path.cwd()
    return as_seen_from(cwd, project_root(cwd.resolve()) / "review" / name)


def _stack_file_bytes(path: Path) -> bytes:
    """The stack file as the engine reads it, byte for byte (what its digest is of)."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise MeshkitError(f"{path}: cannot read the stack file: {error.strerror or error}") from None


def _deployed_now(name: str, state: Path | None) -> dict[str, Deployed]:
    if state is None:
        return deployed_resources(stack_export(name), f"the state of stack {name!r}")
    try:
        data = state.read_bytes()
    except OSError as error:
        raise MeshkitError(f"{state}: cannot read the saved state: {error.strerror or error}") from None
    return deployed_resources(read_export(data, str(state)), str(state))


@review_app.command("record")
def review_record(stack: StackArg, directory: ReviewDirOption = None, state: SavedStateOption = None) -> None:
    """Record what a review is based on: the stack file's SHA-256 and every deployed resource's.

    `make review` runs it after `pulumi refresh` (for a stack with a cluster) and before `pulumi preview
    --save-plan` writes the engine's plan into the same directory.
    """
    name, path = resolve_stack(stack)

    def body() -> int:
        target = _review_dir(name, directory)
        data = _stack_file_bytes(path)
        deployed = _deployed_now(name, state)
        record = make_record(name, str(path), data, deployed, datetime.now(UTC).isoformat(timespec="seconds"))
        write_review(target, record, data, deployed)
        out.print(
            f"{target}: recorded {path} (sha256 {record.stack_file_sha256[:12]}) and the {len(deployed)} "
            f"resource(s) deployed in stack {name}",
            markup=False,
        )
        return 0

    run(body)


@review_app.command("verify")
def review_verify(
    stack: StackArg,
    directory: ReviewDirOption = None,
    state: SavedStateOption = None,
    replan: Annotated[
        str | None,
        typer.Option(help="The command that makes a new review, for the message (default: make review STACK=<stack>)."),
    ] = None,
) -> None:
    """Exit 0 if the stack file and the deployed state are still those the review recorded; else exit 1,
    naming what moved. `make apply` runs it before `pulumi up --plan`, and deploys nothing on exit 1."""
    name, path = resolve_stack(stack)

    def body() -> int:
        command = replan or f"make review STACK={name}"
        review = read_review(_review_dir(name, directory), name, command)
        result = verdict(review, str(path), _stack_file_bytes(path), _deployed_now(name, state))
        if not result.holds:
            raise MeshkitError(result.refusal(command))
        out.print(result.summary(), markup=False)
        return 0

    run(body)
