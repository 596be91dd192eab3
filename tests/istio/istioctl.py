"""Running the pinned istioctl over rendered manifests, offline, and reading what it reports.

How istioctl is found: ``MESHKIT_ISTIOCTL`` (a path to an istioctl binary) if set, else the one
``toolchain/build-istioctl.sh`` built (asked with ``--cached``, which never starts a build). Missing is a
test failure that says how to build it, never a skip.

What this istioctl does that the flags below answer (each checked against this version):

* ``--use-kube=false``: files only, no cluster. In this mode istioctl drops Service, Namespace, Pod, Node
  and Secret objects read from files, so every analyzer that needs one of them is skipped (see
  :data:`SKIPPED_WITHOUT_A_CLUSTER`).
* ``--all-namespaces``: without it, messages about objects outside namespace ``default`` are dropped, and
  meshkit renders into its own namespaces.
* no ``--recursive``: the flag was removed; given, analyze prints a notice and exits 0 without analyzing.
  Directories are read recursively anyway.
* ``-o json``: the exit code is then always 0 (``--failure-threshold`` only acts on the default log
  output), so the messages are parsed from the JSON instead; a non-zero exit means istioctl itself failed.
* files it cannot parse are reported on stderr only ("Error(s) adding files"), also with exit 0.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..scenario_data import REPO

BUILD_SCRIPT = REPO / "toolchain" / "build-istioctl.sh"
ALLOWED_MESSAGES = Path(__file__).parent / "allowed_messages.yaml"
ENV_OVERRIDE = "MESHKIT_ISTIOCTL"

# Levels that fail the gate: what `--failure-threshold Warning` means for the default output.
FAILING_LEVELS = frozenset({"Error", "Warning"})

ANALYZE_FLAGS = ("--use-kube=false", "--all-namespaces", "--failure-threshold", "Warning", "-o", "json")

# The analyzers this istioctl skips when it reads files only (it prints them with --verbose): each needs a
# Service, Namespace, Pod or Secret, which file mode drops. The tier pins the list, so that an istioctl
# upgrade that changes what runs offline is noticed and reviewed. The ones that matter for meshkit's
# objects: service.PortNameAnalyzer (IST0118, port naming), virtualservice.DestinationHostAnalyzer
# (IST0101 for an unknown host, IST0112), destinationrule.SubsetSelectPodAnalyzer (IST0173),
# deployment.MultiServiceAnalyzer (IST0116, IST0137), injection.Analyzer (IST0102, IST0123),
# auth.AuthorizationPoliciesAnalyzer (IST0101 for an unknown namespace or service account).
SKIPPED_WITHOUT_A_CLUSTER = frozenset(
    {
        "annotations.K8sAnalyzer",
        "applicationUID.Analyzer",
        "auth.AuthorizationPoliciesAnalyzer",
        "conditions.ConditionAnalyzer",
        "deployment.MultiServiceAnalyzer",
        "destinationrule.SubsetSelectPodAnalyzer",
        "gateway.ConflictingGatewayAnalyzer",
        "gateway.IngressGatewayPortAnalyzer",
        "gateway.SecretAnalyzer",
        "injection.Analyzer",
        "injection.ImageAnalyzer",
        "injection.ImageAutoAnalyzer",
        "k8sgateway.SelectorAnalyzer",
        "meshnetworks.MeshNetworksAnalyzer",
        "service.PortNameAnalyzer",
        "services.MultiClusterServiceAnalyzer",
        "sidecar.SelectorAnalyzer",
        "telemetry.SelectorAnalyzer",
        "virtualservice.DestinationHostAnalyzer",
        "virtualservice.JWTClaimRouteAnalyzer",
        "webhook.Analyzer",
    }
)


@cache
def istioctl() -> Path:
    """The istioctl binary to use; fails the calling test (never skips) when there is none."""
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"{ENV_OVERRIDE}={override} is not an executable file", pytrace=False)
        return path
    result = subprocess.run([str(BUILD_SCRIPT), "--cached"], capture_output=True, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not (Path(lines[-1]) / "istioctl").is_file():
        pytest.fail(
            "istioctl is not built: run toolchain/build-istioctl.sh (it builds pilot-discovery too, for the live "
            "tier: about 15 minutes on 2 cores the first time, then cached), or set "
            f"{ENV_OVERRIDE} to an istioctl binary.\n{result.stderr.strip()}",
            pytrace=False,
        )
    return Path(lines[-1]) / "istioctl"


@dataclass(frozen=True)
class Analysis:
    """One `istioctl analyze` run over a directory of rendered manifests."""

    target: Path
    messages: list[dict[str, Any]]
    stderr: str
    analyzed_files: list[str]

    def codes(self) -> list[str]:
        return [m["code"] for m in self.messages]


def analyze(target: Path, *extra: str) -> Analysis:
    """``istioctl analyze`` over ``target`` (a directory, read recursively), files only, all namespaces."""
    result = subprocess.run(
        [str(istioctl()), "analyze", *ANALYZE_FLAGS, *extra, str(target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    where = f"istioctl analyze {target}"
    assert result.returncode == 0, f"{where} failed (exit {result.returncode}):\n{result.stderr}{result.stdout}"
    assert "Error(s) adding files" not in result.stderr, f"{where}: files it could not read:\n{result.stderr}"
    try:
        messages = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{where}: output is not the JSON list of messages:\n{result.stdout}", pytrace=False)
    assert isinstance(messages, list), f"{where}: output is not the JSON list of messages:\n{result.stdout}"
    # With no message, istioctl lists the files it read (stderr): proof that it analyzed, and what.
    analyzed = [line.strip()[2:] for line in result.stderr.splitlines() if line.startswith("  - ")]
    single = re.search(r"No validation issues found when analyzing (\S+)\.$", result.stderr, re.MULTILINE)
    if single:
        analyzed.append(single.group(1))
    return Analysis(target, messages, result.stderr, analyzed)


def skipped_analyzers(stderr: str) -> set[str]:
    """The analyzers `istioctl analyze --verbose` says it skipped."""
    block = re.search(r"^Skipped analyzers:\n((?:\t.*\n)*)", stderr, re.MULTILINE)
    assert block, f"no 'Skipped analyzers' in the --verbose output:\n{stderr}"
    return {line.strip() for line in block.group(1).splitlines()}


def validate(*files: Path) -> subprocess.CompletedProcess[str]:
    """``istioctl validate -f FILE`` for each file, in one run; it reports (and decides) per file."""
    command = [str(istioctl()), "validate"]
    for path in files:
        command += ["-f", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def format_message(message: dict[str, Any]) -> str:
    where = f"{message.get('origin', '')} {message.get('reference', '')}".strip()
    return f"{message['level']} [{message['code']}] ({where}) {message['message']}"


# --- the allow-list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowed:
    """An allow-list entry: a message that is an artifact of analyzing files without a cluster."""

    code: str
    origin: str  # a regular expression, matched against the whole "Kind namespace/name" of the message
    message: str  # a regular expression, searched for in the message text
    reason: str

    def matches(self, message: dict[str, Any]) -> bool:
        return (
            message["code"] == self.code
            and re.fullmatch(self.origin, message.get("origin", "")) is not None
            and re.search(self.message, message["message"]) is not None
        )


ENTRY_KEYS = {"code", "origin", "message", "reason"}


def allowed_messages(path: Path = ALLOWED_MESSAGES) -> list[Allowed]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("allowed"), list), f"{path}: needs a list 'allowed'"
    entries = []
    for i, entry in enumerate(data["allowed"]):
        where = f"{path}: allowed[{i}]"
        assert isinstance(entry, dict) and set(entry) == ENTRY_KEYS, f"{where}: needs exactly {sorted(ENTRY_KEYS)}"
        assert re.fullmatch(r"IST\d{4}", str(entry["code"])), f"{where}: code must be an IST code, e.g. IST0101"
        assert str(entry["reason"]).strip(), f"{where}: say why this message is an artifact of file-only analysis"
        for key in ("origin", "message"):
            re.compile(entry[key])
        entries.append(Allowed(**{key: str(entry[key]) for key in ENTRY_KEYS}))
    return entries


def failing(messages: list[dict[str, Any]], allowed: list[Allowed]) -> list[dict[str, Any]]:
    """The messages that fail the gate: Warning or Error, and not allow-listed."""
    return [m for m in messages if m["level"] in FAILING_LEVELS and not any(entry.matches(m) for entry in allowed)]
