"""Istio's own analyzer over everything meshkit renders: both stacks and every scenario step, offline.

`istioctl analyze` reads each target's rendered directory and must report nothing at Warning or Error
level beyond the allow-list (allowed_messages.yaml); `istioctl validate` must accept every rendered file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .istioctl import (
    SKIPPED_WITHOUT_A_CLUSTER,
    Allowed,
    Analysis,
    allowed_messages,
    analyze,
    failing,
    format_message,
    skipped_analyzers,
    validate,
)
from .rendering import TARGETS


@pytest.mark.parametrize("target", list(TARGETS))
def test_istio_analyzer_reports_nothing(target: str, analyses: dict[str, Analysis], rendered: dict[str, Path]) -> None:
    analysis = analyses[target]
    bad = failing(analysis.messages, allowed_messages())
    assert not bad, f"istioctl analyze, {TARGETS[target]}:\n" + "\n".join(map(format_message, bad))
    if not analysis.messages:
        files = sorted(str(p) for p in rendered[target].rglob("*.yaml"))
        assert sorted(analysis.analyzed_files) == files, f"istioctl did not read every file:\n{analysis.stderr}"


def test_istio_validate_accepts_every_rendered_file(rendered: dict[str, Path]) -> None:
    files = sorted(p for directory in rendered.values() for p in directory.rglob("*.yaml"))
    result = validate(*files)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"istioctl validate refused:\n{output}"
    valid = set(re.findall(r'^"(.+)" is valid$', output, re.MULTILINE))
    not_valid = [str(p) for p in files if str(p) not in valid]
    assert not not_valid, "istioctl validate did not find these valid:\n" + "\n".join(not_valid) + f"\n{output}"
    # Anything else it says is a warning: "has warnings", or a Deployment without telemetry labels.
    other = [line for line in output.splitlines() if line and not re.fullmatch(r'".+" is valid', line)]
    assert not other, "istioctl validate:\n" + "\n".join(other)


def test_allow_list_entries_are_still_needed(analyses: dict[str, Analysis]) -> None:
    messages = [m for analysis in analyses.values() for m in analysis.messages]
    unused = [entry for entry in allowed_messages() if not any(entry.matches(m) for m in messages)]
    assert not unused, f"allow-list entries no message matches any more, delete them: {unused}"


def test_allow_list_entries_match_code_origin_and_message() -> None:
    entry = Allowed("IST0101", r"VirtualService demo/.*", r'"nginx\+v3"', "an example")
    message = {
        "code": "IST0101",
        "level": "Error",
        "origin": "VirtualService demo/nginx",
        "message": 'Referenced host+subset in destinationrule not found: "nginx+v3"',
    }
    assert entry.matches(message)
    assert failing([message], [entry]) == []
    assert failing([message], []) == [message]
    assert not entry.matches({**message, "code": "IST0102"})
    assert not entry.matches({**message, "origin": "VirtualService web/nginx"})
    assert not entry.matches({**message, "message": 'Referenced host+subset not found: "nginx+v2"'})
    # The gate is `--failure-threshold Warning`: Info messages do not fail it.
    assert failing([{**message, "level": "Warning"}], []) != []
    assert failing([{**message, "level": "Info"}], []) == []


def test_file_only_analysis_skips_exactly_the_known_analyzers(rendered: dict[str, Path]) -> None:
    """What the offline tier cannot see (see SKIPPED_WITHOUT_A_CLUSTER). An istioctl upgrade that changes
    this list changes the tier's coverage: review what it adds or removes, then update the list."""
    analysis = analyze(rendered["stack-prod"], "--verbose")
    assert skipped_analyzers(analysis.stderr) == SKIPPED_WITHOUT_A_CLUSTER
