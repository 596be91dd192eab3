"""What every command shares: where it prints, its exit codes, the stack argument, and how a command body
runs.

Exit codes, the same for every command: 0 when the stack is fine (warnings allowed), 1 when meshkit refuses
it (config errors, an unsafe step), 2 for a usage error (Typer's own).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from meshkit.errors import ConfigError, MeshkitError
from meshkit.rollout.plan import Change

# Piped output (CI logs, PR comments) gets wide tables instead of wrapped cells.
_WIDTH = None if sys.stdout.isatty() else 200
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)

REFUSED = 1
StackArg = Annotated[str, typer.Argument(help="Stack name (dev → stacks/Pulumi.dev.yaml) or a stack file path.")]


def run(action: Callable[[], int | None]) -> None:
    """Run a command body; meshkit's own errors become a message on stderr and exit code 1."""
    try:
        code = action()
    except MeshkitError as error:
        err.print(str(error), markup=False)
        raise typer.Exit(REFUSED) from None
    if code:
        raise typer.Exit(code)


def write_file(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as error:
        raise MeshkitError(f"{path}: cannot write it: {error.strerror or error}") from None


def read_or_refuse(read: Callable[[], Any], outcome: str) -> Any:
    """``read()`` a stack file; its problems (MK004: missing, unreadable) end with what this command did
    instead of the engine's "nothing was deployed"."""
    try:
        return read()
    except ConfigError as error:
        raise ConfigError(error.findings, error.source, outcome=outcome) from None


def changes_table(changes: list[Change], before: str = "Before", after: str = "After") -> Table:
    """What a step or a plan changes, a row per service and aspect (``plan``, ``step``)."""
    table = Table("Service", "Change", before, "", after, box=None, pad_edge=False)
    for change in changes:
        table.add_row(change.service, change.aspect, change.before or "(none)", "→", change.after or "(none)")
    return table
