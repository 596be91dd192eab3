"""``meshkit check``: every check ``pulumi preview`` runs, offline, and the rollout checks against a base.

A thin layer over :func:`meshkit.mesh.checks.analyze_stack` and :func:`meshkit.rollout.summary.check_rollout`;
the base is the one ``meshkit plan`` compares with (:func:`meshkit.cli.plan.base_summary`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from meshkit.cli.common import REFUSED, StackArg, out, run
from meshkit.cli.plan import base_summary
from meshkit.config.stack_file import read_stack_file_keys
from meshkit.engine.sources import merge_base, resolve_stack
from meshkit.errors import ConfigError, MeshkitError
from meshkit.mesh.checks import analyze_stack, errors_only
from meshkit.rollout.summary import check_rollout


def _check_base(path: Path, name: str, deployed: Path | None, use_base: bool) -> tuple[dict[str, Any], Any]:
    """What ``check`` runs the rollout checks against, described for the report, and its summary (None:
    no rollout checks). Saved outputs first; else the merge base with main, as ``plan`` finds it; outside
    git or without a main branch, nothing (not an error: a stack file need not live in a repository)."""
    if deployed is not None:
        # A bad outputs file is no finding about the stack: its error goes to stderr (MK008).
        label, summary = base_summary(path, None, deployed, name)
        return {"kind": "deployed", "ref": str(deployed), "label": f"rollout checks against {label}"}, summary
    if not use_base:
        return {"kind": "none", "ref": None, "label": "no rollout checks (--no-base)"}, None
    try:
        ref = merge_base(path)
    except MeshkitError:
        label = "no rollout checks: no git merge base with a main branch found (give --deployed OUTPUTS.json)"
        return {"kind": "none", "ref": None, "label": label}, None
    try:
        label, summary = base_summary(path, ref, None, name)
    except ConfigError:
        label = f"no rollout checks: the stack file at the merge base {ref[:12]} does not pass its checks"
        return {"kind": "none", "ref": ref, "label": label}, None
    return {
        "kind": "merge-base",
        "ref": ref,
        "label": f"rollout checks against the merge base with main, {label}",
    }, summary


def check(
    stack: StackArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 on warnings too.")] = False,
    deployed: Annotated[
        Path | None,
        typer.Option(help="Stack outputs (`pulumi stack output --json > FILE`) to run the rollout checks against."),
    ] = None,
    no_base: Annotated[
        bool,
        typer.Option(
            "--no-base", help="Skip the rollout checks against the merge base with main (run by default in git)."
        ),
    ] = False,
) -> None:
    """Run every check `pulumi preview` runs, offline: exit 0 if deployable, 1 if refused."""
    name, path = resolve_stack(stack)

    def body() -> int:
        base, previous = _check_base(path, name, deployed, not no_base)
        try:
            config, findings = analyze_stack(read_stack_file_keys(path), str(path), previous)
            if previous is not None:
                findings += check_rollout(config, previous)
        except ConfigError as error:
            findings = error.findings
        errors = len(errors_only(findings))
        warnings = len(findings) - errors
        if as_json:
            report = {
                "stack": name,
                "file": str(path),
                "base": base,
                "errors": errors,
                "warnings": warnings,
                "findings": [
                    {"severity": f.severity.value, "code": f.code, "path": f.path, "object": f.obj,
                     "message": f.message, "fix": f.fix}
                    for f in sorted(findings)
                ],
            }  # fmt: skip
            out.print_json(json.dumps(report))
        else:
            for finding in sorted(findings):
                out.print(str(finding), markup=False)
            out.print(f"{path}: {base['label']}", markup=False)
            out.print(f"{path}: {errors} error(s), {warnings} warning(s)", markup=False)
        return REFUSED if errors or (strict and warnings) else 0

    run(body)
