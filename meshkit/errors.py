"""The one small error hierarchy meshkit raises, and the finding type every check reports with."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in a stack config, located by its dotted config path.

    ``obj`` names the Kubernetes/Istio object concerned as ``Kind name.namespace`` (Flagger's habit), so a
    finding can be matched with what ``kubectl`` or ``istioctl analyze`` would show.
    """

    path: str
    code: str
    message: str
    fix: str = ""
    severity: Severity = Severity.ERROR
    obj: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return f"{self.severity.value} {self.code} {text}" + (f" [{self.obj}]" if self.obj else "")


class MeshkitError(Exception):
    """Base class of every error meshkit raises on purpose."""


class ConfigError(MeshkitError):
    """A stack config that must not be deployed; lists every problem found, not just the first."""

    def __init__(
        self, findings: list[Finding], source: str = "stack config", outcome: str = "nothing was deployed"
    ) -> None:
        self.findings = sorted(findings)
        self.source = source
        lines = [f"{source}: {len(self.findings)} problem(s), {outcome}:"]
        lines += [f"  {f}" for f in self.findings]
        super().__init__("\n".join(lines))


class ToolchainError(MeshkitError):
    """The Pulumi CLI, language host or provider is missing or unusable."""
