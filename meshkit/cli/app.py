"""The ``meshkit`` command line: check, plan, step, render and graph a stack without the Pulumi engine.

Exit codes, the same for every command: 0 when the stack is fine (warnings allowed), 1 when meshkit
refuses it (config errors, an unsafe step), 2 for a usage error. Each command is a thin layer over a pure
module: :mod:`meshkit.mesh.checks`/:mod:`meshkit.rollout.summary` (check), :mod:`meshkit.rollout.plan`,
:mod:`meshkit.rollout.edit` (step), :mod:`meshkit.mesh.render` and :mod:`meshkit.rollout.draw`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from meshkit.config.engine_yaml import encode_text
from meshkit.config.service import ServiceSpec
from meshkit.config.stack_file import read_stack_bytes, read_stack_file_keys, stack_text
from meshkit.engine.reviewed import Deployed, deployed_resources, make_record, read_review, verdict, write_review
from meshkit.engine.sources import (
    last_deployed_outputs,
    live_virtual_services,
    merge_base,
    project_name,
    project_root,
    read_export,
    read_outputs_file,
    resolve_stack,
    stack_cluster,
    stack_export,
    text_at_revision,
)
from meshkit.engine.stale_locks import backend_directory, remove_stale_locks, truncated_attribute_files
from meshkit.engine.step import run_step, step_command
from meshkit.errors import ConfigError, Finding, MeshkitError, Severity
from meshkit.mesh.checks import analyze_stack, errors_only, load_stack_file, parse_stack_file_text
from meshkit.mesh.manifest import Manifest, manifests_to_yaml
from meshkit.mesh.render import render_stack
from meshkit.metrics.evidence import ServiceEvidence, gained, plan_evidence, weight_moves
from meshkit.metrics.gate import count_text, gate, percentile_label, shown_rate
from meshkit.metrics.prometheus import PrometheusError
from meshkit.rollout import edit
from meshkit.rollout.draw import to_dot, to_mermaid
from meshkit.rollout.drift import weight_drift
from meshkit.rollout.plan import Change, plan_changes
from meshkit.rollout.summary import check_rollout, stack_summary

app = typer.Typer(
    help="Istio rollouts as code: check, plan, step, render and graph the stacks in stacks/Pulumi.<stack>.yaml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, PR comments) gets wide tables instead of wrapped cells.
_WIDTH = None if sys.stdout.isatty() else 200
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)

REFUSED = 1
StackArg = Annotated[str, typer.Argument(help="Stack name (dev → stacks/Pulumi.dev.yaml) or a stack file path.")]


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as error:
        raise MeshkitError(f"{path}: cannot write it: {error.strerror or error}") from None


def _fail(error: MeshkitError) -> typer.Exit:
    err.print(str(error), markup=False)
    return typer.Exit(REFUSED)


def _read_or_refuse(read: Callable[[], Any], outcome: str) -> Any:
    """``read()`` a stack file; its problems (MK004: missing, unreadable) end with what this command did
    instead of the engine's "nothing was deployed"."""
    try:
        return read()
    except ConfigError as error:
        raise ConfigError(error.findings, error.source, outcome=outcome) from None


def _run(action: Callable[[], int | None]) -> None:
    """Run a command body; meshkit's own errors become a message on stderr and exit code 1."""
    try:
        code = action()
    except MeshkitError as error:
        raise _fail(error) from None
    if code:
        raise typer.Exit(code)


# --- check -------------------------------------------------------------------------------------------


def _check_base(path: Path, name: str, deployed: Path | None, use_base: bool) -> tuple[dict[str, Any], Any]:
    """What ``check`` runs the rollout checks against, described for the report, and its summary (None:
    no rollout checks). Saved outputs first; else the merge base with main, as ``plan`` finds it; outside
    git or without a main branch, nothing (not an error: a stack file need not live in a repository)."""
    if deployed is not None:
        # A bad outputs file is no finding about the stack: its error goes to stderr (MK008).
        label, summary = _base_summary(path, None, deployed, name)
        return {"kind": "deployed", "ref": str(deployed), "label": f"rollout checks against {label}"}, summary
    if not use_base:
        return {"kind": "none", "ref": None, "label": "no rollout checks (--no-base)"}, None
    try:
        ref = merge_base(path)
    except MeshkitError:
        label = "no rollout checks: no git merge base with a main branch found (give --deployed OUTPUTS.json)"
        return {"kind": "none", "ref": None, "label": label}, None
    try:
        label, summary = _base_summary(path, ref, None, name)
    except ConfigError:
        label = f"no rollout checks: the stack file at the merge base {ref[:12]} does not pass its checks"
        return {"kind": "none", "ref": ref, "label": label}, None
    return {
        "kind": "merge-base",
        "ref": ref,
        "label": f"rollout checks against the merge base with main, {label}",
    }, summary


@app.command()
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

    _run(body)


# --- plan --------------------------------------------------------------------------------------------


class PlanFormat(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"


def _base_summary(path: Path, base: str | None, base_file: Path | None, stack: str) -> tuple[str, dict[str, Any]]:
    """The plan's starting point and a label for it."""
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


def _changes_table(changes: list[Change], before: str = "Before", after: str = "After") -> Table:
    table = Table("Service", "Change", before, "", after, box=None, pad_edge=False)
    for change in changes:
        table.add_row(change.service, change.aspect, change.before or "(none)", "→", change.after or "(none)")
    return table


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


@app.command()
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
        keys = _read_or_refuse(lambda: read_stack_file_keys(path), "nothing was planned")
        base_label, before = _base_summary(path, base, base_file, name)
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
            out.print(_changes_table(changes) if changes else "  no traffic changes", markup=False)
            print_evidence(evidence)
            if drift:
                out.print(f"{DRIFT_NOTE}:", markup=False)
                out.print(_changes_table(drift, "Deployed", "In the cluster"), markup=False)
            for finding in findings:
                out.print(str(finding), markup=False)
        return REFUSED if errors_only(findings) else 0

    _run(body)


# --- step --------------------------------------------------------------------------------------------


def _parse_assignment(text: str) -> tuple[str, int]:
    version, sep, weight = text.partition("=")
    if not sep or not weight.strip().lstrip("-").isdigit():
        raise typer.BadParameter(f"{text!r} is not VERSION=WEIGHT (e.g. v2=30)")
    return version.strip(), int(weight)


@app.command()
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
        data = _read_or_refuse(lambda: read_stack_bytes(path), "the step was not written")
        text = _read_or_refuse(lambda: stack_text(data, source), "the step was not written")
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
        _write(path, encode_text(result.text, data))  # in the file's own encoding: no other byte changes
        out.print(f"{path}: step written; review it with `meshkit plan`, then `pulumi up`", markup=False)
        out.print(_changes_table(changes), markup=False)
        return 0

    _run(body)


# --- the canary analysis (meshkit.metrics): the gate of `step`, the evidence of `plan` ---------------


def analysis_gate(text: str, source: str, service: str, before: dict[str, Any], after: dict[str, Any],
                  skip_reason: str | None) -> list[str]:  # fmt: skip
    """The gate of a ``--promote``/``--take-over`` step: lines for its output when the version it moves traffic
    to passes the service's ``traffic.analysis`` (or the analysis is skipped, with a reason); a
    :class:`ConfigError` (MK905: the canary fails; MK906: no evidence) when not, and nothing is written."""
    config = parse_stack_file_text(text, source)
    analysis = config.services[service].traffic.analysis
    canary = gained(weight_moves(before, after, service))
    if analysis is None or canary is None:
        return [f"{service} has no traffic.analysis: --skip-analysis skipped nothing"] if skip_reason else []
    where = f"services.{service}.traffic.analysis"
    if skip_reason is not None:
        return [f"ANALYSIS SKIPPED (--skip-analysis): {skip_reason.strip()!r}; canary {canary}'s numbers were not "
                f"checked against {where}"]  # fmt: skip
    stable = [v for v, w in before["services"][service]["weights"].items() if w > 0 and v != canary]
    skip = "or, knowingly, step anyway with --skip-analysis REASON"
    try:
        verdict = gate(config, service, canary, stable)
    except PrometheusError as error:
        fix = f"start Prometheus or correct meshkit:prometheus.address, then step again; {skip}"
        finding = Finding(where, "MK906", f"no evidence on canary {canary}, so no step: {error}", fix)
        raise ConfigError([finding], source, outcome=edit.NOT_WRITTEN) from None
    if not verdict.passed:
        fix = (f"let {canary} serve at least {analysis.min_requests} requests in the window, then step again"
               if verdict.canary.requests < analysis.min_requests
               else f"fix {canary} (or roll back: meshkit step STACK {service} --rollback)")  # fmt: skip
        finding = Finding(where, "MK905", verdict.summary(), f"{fix}; {skip}")
        raise ConfigError([finding], source, outcome=edit.NOT_WRITTEN)
    return [f"{service}: {verdict.summary()}"]


def _evidence_rows(item: ServiceEvidence) -> list[tuple[str, ...]]:
    rows = []
    for version, (before, after) in item.weights.items():
        stats = item.stats.get(version)
        if stats is None or stats.requests <= 0:
            numbers: tuple[str, ...] = ("0", "—", "—")
        else:
            rate = stats.success_rate
            numbers = (
                count_text(stats.requests),
                f"{shown_rate(rate, item.analysis.min_success_rate)}%" if rate is not None else "—",
                f"{stats.latency_ms:.0f} ms" if stats.latency_ms is not None else "—",
            )
        rows.append((item.service, version, f"{before} → {after}", *numbers))
    return rows


def _evidence_notes(item: ServiceEvidence) -> list[str]:
    if item.problem:
        return [f"{item.service}: no evidence: {item.problem}"]
    if item.verdict is None:
        return []
    if item.verdict.passed:
        return [f"{item.service}: the analysis passes {item.verdict.canary.version} now"]
    reasons = "; ".join(item.verdict.failures)
    return [f"{item.service}: the analysis refuses {item.verdict.canary.version} now ({reasons}): `meshkit step "
            "--promote/--take-over` would not write this step without --skip-analysis"]  # fmt: skip


def _evidence_header(item: ServiceEvidence) -> list[str]:
    return ["Service", "Version", "Weight", f"Requests ({item.analysis.window})", "Success",
            percentile_label(item.analysis.latency_percentile)]  # fmt: skip


def print_evidence(evidence: list[ServiceEvidence]) -> None:
    """The text plan's evidence: per service, a table of the moved versions' numbers and the gate's word."""
    for item in evidence:
        out.print(f"Evidence for {item.service} (traffic.analysis, {item.analysis.metrics} metrics):", markup=False)
        if not item.problem:
            table = Table(*_evidence_header(item), box=None, pad_edge=False)
            for row in _evidence_rows(item):
                table.add_row(*row)
            out.print(table, markup=False)
        for note in _evidence_notes(item):
            out.print(f"  {note}", markup=False)


def evidence_markdown(evidence: list[ServiceEvidence]) -> list[str]:
    """The pull-request comment's evidence: the same tables and notes, in markdown."""
    lines = ["**Evidence** (live, from Prometheus; `traffic.analysis`)", ""]
    for item in evidence:
        if not item.problem:
            header = _evidence_header(item)
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in _evidence_rows(item)]
            lines.append("")
        lines += [f"- {'⛔ ' if item.problem or (item.verdict and not item.verdict.passed) else ''}{note}"
                  for note in _evidence_notes(item)]  # fmt: skip
    return lines


# --- render ------------------------------------------------------------------------------------------


def manifest_file_name(manifest: Manifest) -> str:
    """``<kind>[.<group>]_[<namespace>_]<name>.yaml``, one file per object: no kind, group, namespace or name holds
    '_', so two objects never share a file (not even an Istio Gateway and a Gateway API Gateway of one name)."""
    meta = manifest["metadata"]
    group = manifest["apiVersion"].rpartition("/")[0]
    kind = manifest["kind"].lower() + (f".{group}" if group else "")
    return "_".join([kind, *([meta["namespace"]] if "namespace" in meta else []), meta["name"]]) + ".yaml"


@app.command()
def render(
    stack: StackArg,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write one file per object here.")] = None,
) -> None:
    """Print every manifest of the stack as YAML, exactly what the program registers, without the engine."""
    _, path = resolve_stack(stack)

    def body() -> int:
        manifests = render_stack(load_stack_file(path))
        if output is None:
            sys.stdout.write(manifests_to_yaml(manifests))
            return 0
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MeshkitError(f"{output}: cannot make the directory: {error.strerror or error}") from None
        files = {manifest_file_name(manifest): manifest for manifest in manifests}
        for name, manifest in files.items():
            _write(output / name, manifests_to_yaml([manifest]).encode("utf-8"))
        out.print(f"{len(files)} manifests written to {output}", markup=False)
        return 0

    _run(body)


# --- graph -------------------------------------------------------------------------------------------


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"
    SVG = "svg"
    PNG = "png"


def graphviz(dot_text: str, image_format: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise MeshkitError(
            f"--format {image_format} needs Graphviz's `dot` on PATH (Debian: apt-get install graphviz); "
            "--format mermaid and --format dot need nothing"
        )
    result = subprocess.run([dot, f"-T{image_format}"], input=dot_text.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        raise MeshkitError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


@app.command()
def graph(
    stack: StackArg,
    output_format: Annotated[GraphFormat, typer.Option("--format", help="mermaid, dot, svg or png.")] = (
        GraphFormat.MERMAID
    ),
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file instead of stdout.")] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Label each edge with its requests/s, errors and latency (Prometheus).")
    ] = False,
) -> None:
    """Picture the stack's traffic: services, versions, weights, header routes and faults as labelled edges."""
    _, path = resolve_stack(stack)

    def body() -> int:
        config = load_stack_file(path)
        summary = stack_summary(config)
        labels = _watch.live_labels(config) if live else None
        data: bytes
        if output_format is GraphFormat.MERMAID:
            data = to_mermaid(summary, labels).encode()
        elif output_format is GraphFormat.DOT:
            data = to_dot(summary, labels).encode()
        else:
            data = graphviz(to_dot(summary, labels), output_format.value)
        if output is not None:
            _write(output, data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return 0

    _run(body)


# --- unlock ------------------------------------------------------------------------------------------


@app.command()
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
    from meshkit.engine.interrupted import render_repairs, stack_state, state_objects
    from meshkit.engine.stale_locks import StackLock, is_stale, stack_locks

    def shown(path: Path) -> str:
        cwd = Path.cwd().resolve()
        return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)

    def write(path: Path, text: str) -> None:
        """As the provider writes a rendered file (directories 0700, files 0600, an existing file's mode
        kept), whole or not at all: a temporary file beside it (no .yaml name) renamed over it."""
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
            raise MeshkitError(f"{shown(path)}: cannot write it: {error.strerror or error}") from None

    def redo_hint(urn: str) -> str:
        return (
            f"run `pulumi state delete --stack {stack} --target-dependents '{urn}'`, then `make up STACK={stack}`: "
            "that `up` renders it, and what depends on it, again from the stack file (`pulumi up --replace` "
            "would not: in render mode it deletes the file it has just written)"
        )

    def repair_interrupted_renders(root: Path) -> None:
        """Make the render directory what the state records: a killed update may have written files for
        objects the next `up` no longer declares, and changed or deleted files of objects it declares as the
        state has them; no update would set those right (see meshkit.engine.interrupted)."""
        state = state_objects(stack_state(stack, root, backend), f"the state of stack {stack!r}")
        repairs = render_repairs(state, root)
        orphans = repairs.orphans
        if orphans.blocked_by:
            err.print(
                f"meshkit: kept every rendered file of stack {stack}: the state does not show which object "
                f"{orphans.blocked_by[0]} is, so files a killed update wrote cannot be told apart",
                markup=False,
            )
        for path, reason in orphans.unreadable.items():
            err.print(
                f"meshkit: kept {shown(path)}: cannot tell which object it holds ({reason}); remove it by hand "
                f"if no resource of stack {stack} renders it",
                markup=False,
            )
        for path, objects in orphans.files.items():
            path.unlink(missing_ok=True)
            err.print(
                f"meshkit: removed {shown(path)}: written by a killed update for an object nothing declares "
                f"({', '.join(map(str, objects))}: in no resource of the state of stack {stack}; the next `up` "
                "writes it again if the stack file declares it)",
                markup=False,
            )
        for duplicate in repairs.duplicates:
            duplicate.path.unlink(missing_ok=True)
            err.print(
                f"meshkit: removed {shown(duplicate.path)}: a killed update had rendered {duplicate.record} there "
                f"as {duplicate.rendered_as}; the state of stack {stack} holds it as "
                f"{duplicate.record.api_version}, in {shown(duplicate.canonical)}",
                markup=False,
            )
        for change in repairs.writes:
            write(change.path, change.text)
            what = "rewrote" if change.replaces else "wrote"
            did = "changed" if change.replaces else "deleted"
            err.print(
                f"meshkit: {what} {shown(change.path)}: a killed update had {did} it; the state of stack {stack} "
                f"holds {change.record} as the update before rendered it, and an `up` that declares it so "
                "would not write it again",
                markup=False,
            )
        for missed in repairs.not_restored:
            where = shown(missed.path) if missed.path is not None else f"the file of {missed.record.urn}"
            if missed.secret:
                err.print(
                    f"meshkit: could not restore {where}: a killed update had {missed.reason}, and the state of "
                    f"stack {stack} holds the secret values of {missed.record} encrypted; "
                    + redo_hint(missed.record.urn),
                    markup=False,
                )
            else:
                err.print(f"meshkit: could not restore {where} ({missed.record}): {missed.reason}", markup=False)
        for unchecked in repairs.unchecked:
            err.print(
                f"meshkit: did not check the secret values in {shown(unchecked.path)}: the state of stack {stack} "
                f"holds those of {unchecked.record} encrypted (the rest is as it records); if the killed update "
                "changed them, " + redo_hint(unchecked.record.urn),
                markup=False,
            )

    def body() -> int:
        url = backend or os.environ.get("PULUMI_BACKEND_URL", "")
        directory = backend_directory(url)
        if directory is None:
            out.print(
                f"backend {url or '(none set)'} is not a file:// backend: its locks are not meshkit's", markup=False
            )
            return 0
        root = project_root(Path.cwd())
        project = project_name(root)
        locks = stack_locks(directory, project, stack)
        stale = [lock for lock in locks if is_stale(lock)]
        held = [lock for lock in locks if lock not in stale]

        def refuse(live: list[StackLock]) -> MeshkitError:
            return MeshkitError(
                "\n".join(
                    [f"stack {stack} is locked by an update that may still run:"]
                    + [f"  {lock}" for lock in live]
                    + ["wait for it to end; if you know it is gone, run `pulumi cancel --stack " + stack + "`"]
                )
            )

        if held:
            # Stale locks stay too: once the live update ends, the next unlock cleans up after the killed one.
            raise refuse(held)
        # No update runs now: an attribute file a killed one cut short can go (see meshkit.engine.stale_locks).
        for path in truncated_attribute_files(directory, project, stack):
            path.unlink(missing_ok=True)
            err.print(f"meshkit: removed {path}, cut short by a killed update (the checkpoint is whole)", markup=False)
        if stale:
            # While the killed update's lock is there, no other update can start: clean up first, and keep the
            # lock (the evidence) when that fails, so that the next unlock tries again.
            repair_interrupted_renders(root)
        removed, held = remove_stale_locks(directory, project, stack)
        for lock in removed:
            err.print(f"meshkit: removed the stale {lock}: its process is gone", markup=False)
        if held:
            raise refuse(held)
        return 0

    _run(body)


# --- up ----------------------------------------------------------------------------------------------


@app.command()
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

    _run(body)


# --- review ------------------------------------------------------------------------------------------

review_app = typer.Typer(
    help="Reviewed = applied: record what the review of a rollout step was based on (`make review`), and "
    "refuse to apply its saved plan once that no longer holds (`make apply`).",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")

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
    cwd = Path.cwd().resolve()
    target = project_root(cwd) / "review" / name
    return target.relative_to(cwd) if target.is_relative_to(cwd) else target


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

    _run(body)


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

    _run(body)


# --- guard and watch: meshkit/cli/guard.py, meshkit/cli/watch.py -----------------------------------------

from meshkit.cli import guard as _guard  # noqa: E402 (they use the consoles above)
from meshkit.cli import watch as _watch  # noqa: E402

app.command()(_guard.guard)
app.command()(_watch.watch)


def main() -> None:
    app()
