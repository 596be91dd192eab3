"""The canary analysis on the command line (:mod:`meshkit.metrics`): the gate of ``meshkit step --promote``
and ``--take-over``, and the evidence ``meshkit plan`` shows for the versions a change moves."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from meshkit.cli.common import out
from meshkit.errors import ConfigError, Finding
from meshkit.mesh.checks import parse_stack_file_text
from meshkit.metrics.evidence import ServiceEvidence, gained, weight_moves
from meshkit.metrics.gate import count_text, gate, percentile_label, shown_rate
from meshkit.metrics.prometheus import PrometheusError
from meshkit.rollout import edit


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
