"""``meshkit up``: the rollout step the stack file describes, through the engine, targeted at what changed
since the last deployment. A thin layer over :mod:`meshkit.engine.step`."""

from __future__ import annotations

from typing import Annotated

import typer

from meshkit.cli.common import StackArg, err, run
from meshkit.engine.sources import project_root, resolve_stack
from meshkit.engine.step import run_step, step_command


def up(
    stack: StackArg,
    full: Annotated[bool, typer.Option("--full", help="Run the full `pulumi up`, not a targeted one.")] = False,
) -> None:
    """Perform the rollout step the stack file describes, with the engine targeted at what changed since the
    last deployment (`make step`); the full `pulumi up` when that cannot be told. Exit code: pulumi's."""
    name, path = resolve_stack(stack)

    def body() -> int:
        command = step_command(path, name, full)
        return run_step(command, project_root(path.resolve().parent), lambda line: err.print(line, markup=False))

    run(body)
