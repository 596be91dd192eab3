"""Reviewed = applied, through the real engine in render mode: `make review` on the pull request, then
`make apply` after the merge deploys exactly the reviewed plan, or nothing when the stack file or the
deployed state moved since the review."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from meshkit.engine.reviewed import Deployed, deployed_resources

from ..scenario_data import SCENARIOS
from .engine import PulumiProject, new_project

pytestmark = pytest.mark.e2e

STACK = "reviewed"
VS = "VirtualService demo/nginx"
STACK_OUTPUTS = f"the stack's outputs (meshkit-{STACK})"


def _deployed(project: PulumiProject) -> dict[str, Deployed]:
    return deployed_resources(json.loads(project.pulumi("stack", "export").stdout), "stack export")


def _reviewed_a3_to_a4(tmp_path: Path) -> PulumiProject:
    """A3 deployed, and the pull request's stack file (A4: v1 70 → 20, v2 30 → 80) reviewed."""
    project = new_project(tmp_path, STACK)
    project.use_config("A3")
    project.up()
    project.use_config("A4")
    review = project.make("review")
    assert review.returncode == 0, review.stdout + review.stderr
    return project


def _weights(rendered: dict[str, dict[str, Any]]) -> dict[str, int]:
    route = rendered["VirtualService/nginx"]["spec"]["http"][-1]["route"]
    return {d["destination"]["subset"]: d.get("weight", 100) for d in route}


def _refused_and_nothing_deployed(project: PulumiProject) -> str:
    """`make apply`, refused: exit code, no `pulumi up` run, state and rendered manifests untouched."""
    state, rendered = project.pulumi("stack", "export").stdout, project.rendered()
    applied = project.make("apply")
    assert applied.returncode != 0, applied.stdout
    assert "pulumi up" not in applied.stdout, "the refusal must come before the engine runs"
    assert project.pulumi("stack", "export").stdout == state
    assert project.rendered() == rendered
    assert "Traceback" not in applied.stderr
    return applied.stderr


def test_review_then_apply_deploys_exactly_the_reviewed_change(tmp_path: Path) -> None:
    project = _reviewed_a3_to_a4(tmp_path)
    directory = project.root / "review" / STACK
    assert {p.name for p in directory.iterdir()} == {
        "plan.txt", "plan.md", "preview.txt", "update-plan.json", "record.json", "reviewed-state.json",
        "reviewed-stack-file.yaml",
    }  # fmt: skip
    assert re.search(r"nginx\s+weight v1\s+70\s+→\s+20", (directory / "plan.txt").read_text())
    assert "| nginx | weight v1 | 70 | 20 |" in (directory / "plan.md").read_text()
    plan = json.loads((directory / "update-plan.json").read_text())
    planned = {
        urn.rsplit("::", 1)[-1]: p["steps"] for urn, p in plan["resourcePlans"].items() if p["steps"] != ["same"]
    }
    assert planned == {"nginx-virtualservice": ["update"]}
    record = json.loads((directory / "record.json").read_text())
    assert record["stackFile"]["path"] == f"stacks/Pulumi.{STACK}.yaml"
    assert len(record["deployed"]["resources"]) == len(_deployed(project))

    before, rendered_before = _deployed(project), project.rendered()
    applied = project.make("apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"review/{STACK}: unchanged since the review" in applied.stdout
    assert f"--plan review/{STACK}/update-plan.json" in applied.stdout
    # Exactly the reviewed change: the VirtualService (and the stack's outputs, which record it), nothing else.
    after = _deployed(project)
    assert set(after) == set(before)
    assert {after[k].label for k in after if after[k].digest != before[k].digest} == {VS, STACK_OUTPUTS}
    rendered = project.rendered()
    assert {k for k in rendered if rendered[k] != rendered_before[k]} == {"VirtualService/nginx"}
    assert _weights(rendered) == {"v1": 20, "v2": 80}
    assert project.preview() == [], "the stack file is deployed: nothing left to do"


def test_apply_after_another_merge_moved_the_deployed_state_is_refused(tmp_path: Path) -> None:
    project = _reviewed_a3_to_a4(tmp_path)
    # Another pull request, merged and applied first, moved the weights to 50/50.
    other = (SCENARIOS / "A3.yaml").read_text().replace("v1: 70\n", "v1: 50\n").replace("v2: 30\n", "v2: 50\n")
    project.use_stack_text(other)
    project.up()
    assert _weights(project.rendered()) == {"v1": 50, "v2": 50}
    # Then this one is merged: the stack file is the reviewed one, the state is not.
    project.use_config("A4")

    message = _refused_and_nothing_deployed(project)
    assert f"review/{STACK}: refused, nothing was deployed: what was reviewed no longer holds." in message
    assert f"the deployed state of stack {STACK} moved since the review" in message
    assert f"{VS}: changed: spec.http[0].route[0].weight 70 → 50, spec.http[0].route[1].weight 30 → 50" in message
    assert "the stack file" not in message
    assert f"fix: re-plan with `make review STACK={STACK}` and get the new plan reviewed" in message
    assert _weights(project.rendered()) == {"v1": 50, "v2": 50}

    # Re-planned, the change is reviewed again (from 50/50 now) and applies.
    assert project.make("review").returncode == 0
    assert re.search(r"nginx\s+weight v1\s+50\s+→\s+20", (project.root / "review" / STACK / "plan.txt").read_text())
    applied = project.make("apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert _weights(project.rendered()) == {"v1": 20, "v2": 80}


def test_apply_of_a_stack_file_edited_after_the_review_is_refused(tmp_path: Path) -> None:
    project = _reviewed_a3_to_a4(tmp_path)
    # A commit pushed after the review (or a merge that changed the file): 25/75 instead of the reviewed 20/80.
    project.stack_file.write_text(
        project.stack_file.read_text().replace("v1: 20\n", "v1: 25\n").replace("v2: 80\n", "v2: 75\n")
    )

    message = _refused_and_nothing_deployed(project)
    assert f"the stack file stacks/Pulumi.{STACK}.yaml changed since the review (reviewed sha256 " in message
    assert "    -          v1: 20\n    -          v2: 80\n    +          v1: 25\n    +          v2: 75\n" in message
    assert "moved since the review" not in message, "the deployed state is as reviewed"
    assert _weights(project.rendered()) == {"v1": 70, "v2": 30}
