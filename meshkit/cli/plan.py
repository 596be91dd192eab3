"""``meshkit plan``: what traffic a stack change moves, per service, against a base (a git revision, saved
outputs or the last deployment), what meshkit would refuse, and drift (what the cluster applies now).

A thin layer over :func:`meshkit.rollout.plan.plan_changes`, :func:`meshkit.rollout.drift.weight_drift`,
:mod:`meshkit.rollout.draw` (the pictures of a pull-request comment) and :mod:`meshkit.metrics.evidence` (the
live numbers of the versions a change moves, for a service with ``traffic.analysis``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from meshkit.cli.analysis import evidence_markdown, print_evidence
from meshkit.cli.common import REFUSED, StackArg, changes_table, out, read_or_refuse, run
from meshkit.config.stack_file import read_stack_file_keys
from meshkit.engine.sources import (
    last_deployed_outputs,
    live_virtual_services,
    merge_base,
    read_outputs_file,
    resolve_stack,
    stack_cluster,
    text_at_revision,
)
from meshkit.errors import Finding, Severity
from meshkit.mesh.checks import analyze_stack, errors_only, parse_stack_file_text
from meshkit.metrics.evidence import ServiceEvidence, plan_evidence
from meshkit.rollout.draw import to_mermaid
from meshkit.rollout.drift import weight_drift
from meshkit.rollout.plan import Change, plan_changes
from meshkit.rollout.summary import check_rollout, stack_summary


class PlanFormat(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"


def base_summary(path: Path, base: str | None, base_file: Path | None, stack: str) -> tuple[str, dict[str, Any]]:
    """What a stack change is compared with, and a label for it (``plan``; ``check`` runs its rollout checks
    against it)."""
    if base_file is not None:
        return f"outputs in {base_file}", read_outputs_file(base_file)
    if base == "deployed":
        return f"last deployment of {stack}", last_deployed_outputs(stack)
    ref = base or merge_base(path)
    text = text_at_revision(path, ref)
    if text is None:
        return f"{ref[:12]} (no stack file there)", {"services": {}}
    return ref[:12], stack_summary(parse_stack_file_text(text, f"{path} at {ref[:12]}"))


def _drift(path: Path, deployed: dict[str, Any]) -> list[Change]:
    """What the cluster the stack names applies now, against the last deployment (nothing to compare for a
    stack that renders manifests)."""
    flags = stack_cluster(path)
    if not flags:
        return []
    namespaces = sorted({service["namespace"] for service in (deployed.get("services") or {}).values()})
    return weight_drift(deployed, live_virtual_services(flags, namespaces))


DRIFT_NOTE = "Drift: the cluster no longer applies what the last deployment set; `pulumi up` restores the stack file"


def _markdown_table(changes: list[Change], before: str = "Before", after: str = "After") -> list[str]:
    lines = [f"| Service | Change | {before} | {after} |", "|---|---|---|---|"]
    cells = [(c.service, c.aspect, c.before or "—", c.after or "—") for c in changes]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in cells]


def plan_markdown(stack: str, base_label: str, changes: list[Change], findings: list[Finding],
                  before: dict[str, Any], after: dict[str, Any], drift: list[Change] | None = None,
                  evidence: list[ServiceEvidence] | None = None) -> str:  # fmt: skip
    """A pull-request comment: the changes, the live evidence on the versions they move, what meshkit would
    refuse, the traffic before and after."""
    lines = [f"### meshkit plan: stack `{stack}` against {base_label}", ""]
    lines += _markdown_table(changes) if changes else ["No traffic changes."]
    if evidence:
        lines += ["", *evidence_markdown(evidence)]
    if drift:
        lines += ["", f"**{DRIFT_NOTE}.**", "", *_markdown_table(drift, "Deployed", "In the cluster")]
    errors = errors_only(findings)
    if findings:
        lines += ["", "**Refused: `pulumi up` would stop.**" if errors else "**Warnings**", ""]
        lines += [f"- {'⛔' if f.severity is Severity.ERROR else '⚠️'} `{f.code}` `{f.path}`: {f.message}. "
                  f"Fix: {f.fix}" for f in findings]  # fmt: skip
    for title, summary in (("before", before), ("after", after)):
        lines += ["", f"<details{' open' if title == 'after' else ''}><summary>Traffic {title}</summary>", ""]
        lines += ["```mermaid", to_mermaid(summary).rstrip(), "```", "", "</details>"]
    return "\n".join(lines) + "\n"


def plan(
    stack: StackArg,
    base: Annotated[
        str | None,
        typer.Option(help="Git revision to compare with (default: the merge base with main), or `deployed`."),
    ] = None,
    base_file: Annotated[
        Path | None, typer.Option(help="Compare with saved stack outputs (`pulumi stack output --json > FILE`).")
    ] = None,
    output_format: Annotated[PlanFormat, typer.Option("--format", help="text, or markdown for a PR comment.")] = (
        PlanFormat.TEXT
    ),
) -> None:
    """Show what traffic a stack change moves, per service, and what meshkit would refuse."""
    name, path = resolve_stack(stack)

    def body() -> int:
        # The stack file first: a missing one is MK004, whatever the base.
        keys = read_or_refuse(lambda: read_stack_file_keys(path), "nothing was planned")
        base_label, before = base_summary(path, base, base_file, name)
        config, warnings = analyze_stack(keys, str(path))
        after = stack_summary(config)
        changes = plan_changes(before, after)
        findings = sorted(warnings + check_rollout(config, before))
        drift = _drift(path, before) if base == "deployed" else []
        evidence = plan_evidence(config, before, after)
        if output_format is PlanFormat.MARKDOWN:
            markdown = plan_markdown(name, base_label, changes, findings, before, after, drift, evidence)
            out.print(markdown, markup=False, end="")
        else:
            out.print(f"Plan for stack {name} ({path}) against {base_label}:", markup=False)
            out.print(changes_table(changes) if changes else "  no traffic changes", markup=False)
            print_evidence(evidence)
            if drift:
                out.print(f"{DRIFT_NOTE}:", markup=False)
                out.print(changes_table(drift, "Deployed", "In the cluster"), markup=False)
            for finding in findings:
                out.print(str(finding), markup=False)
        return REFUSED if errors_only(findings) else 0

    run(body)
