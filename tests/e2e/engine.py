"""Drive the real Pulumi CLI on a throw-away copy of the project: fresh local backend, one stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..scenario_data import REPO, SCENARIOS

VENV_BIN = REPO / ".venv" / "bin"


def require_toolchain() -> None:
    """Fail (not skip) when the engine is missing: this tier is part of the test command."""
    missing = [
        b for b in ("pulumi", "pulumi-resource-kubernetes", "pulumi-language-python") if not (VENV_BIN / b).exists()
    ]
    if missing:
        raise AssertionError(f"{', '.join(missing)} not in .venv/bin: run `make bootstrap` (toolchain/bootstrap.sh)")


@dataclass
class Step:
    """One resource operation of a plan, by Pulumi resource name."""

    op: str
    type: str
    name: str


@dataclass
class PulumiProject:
    root: Path
    stack: str
    passphrase: str = "e2e"
    """Of the stack's secrets; a stack file that carries its ``encryptionsalt`` was made with a given one."""

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "PULUMI_HOME": str(self.root / ".pulumi-home"),
            "PULUMI_BACKEND_URL": f"file://{self.root / '.pulumi-state'}",
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "1",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        }

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["pulumi", *args, "--stack", self.stack, "--non-interactive"],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def make(self, target: str, *variables: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a target of the repository's Makefile in this project, as `make <target> STACK=<stack>` runs
        in a checkout (the toolchain is the repository's: `bootstrap` is taken as done)."""
        return subprocess.run(
            ["make", "-f", str(REPO / "Makefile"), "-o", "bootstrap", target, f"STACK={self.stack}", *variables],
            cwd=self.root, env=env or self.env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

    @property
    def stack_file(self) -> Path:
        return self.root / "stacks" / f"Pulumi.{self.stack}.yaml"

    def use_config(self, step: str) -> None:
        """Make the stack file the scenario fixture."""
        self.use_stack_text((SCENARIOS / f"{step}.yaml").read_text())

    def use_stack_text(self, text: str) -> None:
        """Replace the stack file's text, keeping the secrets salt Pulumi wrote at stack init."""
        salt = [line for line in self.stack_file.read_text().splitlines() if line.startswith("encryptionsalt:")]
        self.stack_file.write_text("\n".join([*salt, text]))

    def preview(self) -> list[Step]:
        """The engine's plan, as (operation, type, name) per resource; 'same' steps left out."""
        plan = json.loads(self.pulumi("preview", "--json").stdout)
        return sorted(
            (
                Step(s["op"], s["urn"].split("::")[-2].split("$")[-1], s["urn"].split("::")[-1])
                for s in plan.get("steps", [])
                if s["op"] != "same"
            ),
            key=lambda s: (s.op, s.name),
        )

    def up(self) -> list[dict[str, Any]]:
        """Run `pulumi up` and return the engine events it logged, in order."""
        # With --json, `up` streams the engine's events as one JSON object per line.
        output = self.pulumi("up", "--yes", "--skip-preview", "--json").stdout
        return [json.loads(line) for line in output.splitlines() if line.startswith("{")]

    def rendered(self) -> dict[str, dict[str, Any]]:
        """The manifests the provider rendered, by ``Kind/name``."""
        found = {}
        for path in sorted((self.root / "rendered" / self.stack).rglob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
        return found


def new_project(tmp: Path, stack: str) -> PulumiProject:
    """A copy of the program with its own backend and state; the virtualenv is the repository's."""
    require_toolchain()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO / name, tmp / name)
    (tmp / "stacks").mkdir()
    (tmp / ".venv").symlink_to(REPO / ".venv")
    (tmp / ".pulumi-state").mkdir()
    project = PulumiProject(tmp, stack)
    project.pulumi("stack", "init")
    return project
