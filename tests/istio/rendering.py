"""What the Istio tier analyzes: every stack file meshkit renders, as `meshkit render STACK -o DIR` writes it
(one file per object)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from meshkit.cli import app

from ..scenario_data import REPO, SCENARIO_STEPS, SCENARIOS

# The two environments' stack files, then each scenario step fixture.
TARGETS: dict[str, Path] = {
    **{f"stack-{env}": REPO / "stacks" / f"Pulumi.{env}.yaml" for env in ("dev", "prod")},
    **{f"scenario-{step}": SCENARIOS / f"{step}.yaml" for step in SCENARIO_STEPS},
}


def render(stack_file: Path, output: Path) -> Path:
    """`meshkit render STACK_FILE -o OUTPUT`, in process; returns OUTPUT."""
    result = CliRunner().invoke(app, ["render", str(stack_file), "-o", str(output)])
    assert result.exit_code == 0, f"meshkit render {stack_file} failed:\n{result.output}"
    return output
