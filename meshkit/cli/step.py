"""``meshkit step``: edit the stack file for the next rollout step, keeping its comments and layout.

A thin layer over :mod:`meshkit.rollout.edit`, which refuses unsafe steps, and the canary analysis's gate
(:mod:`meshkit.cli.analysis`); the change is shown as ``meshkit plan`` shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from meshkit.cli.analysis import analysis_gate
from meshkit.cli.common import StackArg, changes_table, out, read_or_refuse, run, write_file
from meshkit.config.engine_yaml import encode_text
from meshkit.config.service import ServiceSpec
from meshkit.config.stack_file import read_stack_bytes, stack_text
from meshkit.engine.sources import last_deployed_outputs, read_outputs_file, resolve_stack
from meshkit.rollout import edit
from meshkit.rollout.plan import plan_changes


def _parse_assignment(text: str) -> tuple[str, int]:
    version, sep, weight = text.partition("=")
    if not sep or not weight.strip().lstrip("-").isdigit():
        raise typer.BadParameter(f"{text!r} is not VERSION=WEIGHT (e.g. v2=30)")
    return version.strip(), int(weight)


def step(
    stack: StackArg,
    service: Annotated[str, typer.Argument(help="The service to step.")],
    weights: Annotated[list[str] | None, typer.Argument(help="New weights as VERSION=WEIGHT, e.g. v2=80.")] = None,
    promote: Annotated[bool, typer.Option(help="Move the newest version to its next traffic.steps value.")] = False,
    take_over: Annotated[str | None, typer.Option(help="Send all traffic to this version.")] = None,
    retire: Annotated[str | None, typer.Option(help="Remove this version (it must take no traffic).")] = None,
    add: Annotated[str | None, typer.Option(help="Add this version (a canary): needs --image.")] = None,
    image: Annotated[str | None, typer.Option(help="With --add: the new version's image, e.g. nginx:1.15.")] = None,
    replicas: Annotated[int | None, typer.Option(help="With --add: the new version's replicas.", min=1)] = None,
    weight: Annotated[int, typer.Option(help="With --add: the new version's first traffic share.")] = 0,
    rollback: Annotated[
        bool, typer.Option(help="Set the weights back to those before the last deployed weight change.")
    ] = False,
    deployed: Annotated[
        Path | None,
        typer.Option(help="With --rollback: saved stack outputs to read instead of the last deployment's."),
    ] = None,
    skip_analysis: Annotated[
        str | None,
        typer.Option(
            metavar="REASON",
            help="With --promote or --take-over: step without the canary analysis (traffic.analysis), saying why; "
            "the step's output says it was skipped.",
        ),
    ] = None,
) -> None:
    """Edit the stack file for the next rollout step, keeping its comments and layout; refuse unsafe steps.

    With --promote or --take-over on a service with traffic.analysis, the canary's requests are read from the
    stack's Prometheus first, and the step is refused (nothing written) unless they meet the analysis."""
    modes = [bool(weights), promote, take_over is not None, retire is not None, add is not None, rollback]
    if sum(modes) != 1:
        raise typer.BadParameter(
            "give exactly one of VERSION=WEIGHT..., --promote, --take-over, --retire, --add, --rollback"
        )
    if add is None and (image is not None or replicas is not None or weight):
        raise typer.BadParameter("--image, --replicas and --weight go with --add")
    if add is not None and image is None:
        raise typer.BadParameter("--add needs the new version's --image")
    if deployed is not None and not rollback:
        raise typer.BadParameter("--deployed goes with --rollback")
    if skip_analysis is not None and not (promote or take_over is not None):
        raise typer.BadParameter("--skip-analysis goes with --promote or --take-over")
    if skip_analysis is not None and not skip_analysis.strip():
        raise typer.BadParameter("--skip-analysis needs a reason, e.g. --skip-analysis 'no traffic at night'")
    assignments = dict(_parse_assignment(a) for a in weights or [])
    name, path = resolve_stack(stack)

    def body() -> int:
        source = str(path)
        data = read_or_refuse(lambda: read_stack_bytes(path), "the step was not written")
        text = read_or_refuse(lambda: stack_text(data, source), "the step was not written")
        if retire is not None:
            result = edit.retire_version(text, source, service, retire)
        elif add is not None:
            spec: dict[str, Any] = {"image": image} | ({"replicas": replicas} if replicas is not None else {})
            result = edit.add_version(text, source, service, add, spec, weight)
        elif rollback:
            # Read as `check --deployed` and `plan --base deployed` read them.
            summary = read_outputs_file(deployed) if deployed is not None else last_deployed_outputs(name)
            label = f"the outputs in {deployed}" if deployed is not None else f"the outputs of stack {name!r}"
            result = edit.rollback(text, source, service, summary, label)
        else:

            def compute(svc: ServiceSpec) -> dict[str, int]:
                if promote:
                    return edit.promote(svc, service)
                if take_over is not None:
                    return edit.take_over(svc, service, take_over)
                return edit.assign_weights(svc, service, assignments)

            result = edit.step_weights(text, source, service, compute)
        changes = plan_changes(result.before, result.after)
        if result.note:
            out.print(f"{path}: {result.note}", markup=False)
        if not changes:  # the file is left as it is, byte for byte
            out.print(f"{path}: no change, nothing written", markup=False)
            return 0
        if promote or take_over is not None:
            for line in analysis_gate(text, source, service, result.before, result.after, skip_analysis):
                out.print(f"{path}: {line}", markup=False)
        write_file(path, encode_text(result.text, data))  # in the file's own encoding: no other byte changes
        out.print(f"{path}: step written; review it with `meshkit plan`, then `pulumi up`", markup=False)
        out.print(changes_table(changes), markup=False)
        return 0

    run(body)
