"""`meshkit up` (a targeted step) leaves the same state as the full `pulumi up` of the same step.

Two projects walk the same scenario through the real engine: one with `pulumi up` at every step, the other
with `meshkit up`. After each step their states are compared resource by resource (inputs, outputs,
parent, dependencies, options), and so are the rendered objects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..scenario_data import A_STEPS, B_STEPS, C_STEPS, REPO
from .engine import PulumiProject, new_project

pytestmark = pytest.mark.e2e

# What differs between two deployments of the same objects: times, where the program ran, random IDs.
VOLATILE = {"created", "modified", "sourcePosition", "stackTrace", "initErrors"}


def normalized_state(project: PulumiProject) -> dict[str, Any]:
    export = json.loads(project.pulumi("stack", "export").stdout)
    state = {}
    for resource in export["deployment"]["resources"]:
        kept = {key: value for key, value in resource.items() if key not in VOLATILE}
        if "provider" in kept:
            kept["provider"] = kept["provider"].rsplit("::", 1)[0]  # the URN, without the provider's ID
        if kept["type"].startswith("pulumi:providers:"):
            kept.pop("id", None)
            kept.get("outputs", {}).pop("version", None)
        # A name the provider draws at random when it creates an object.
        kept.get("outputs", {}).pop("__fieldManager", None)
        kept["dependencies"] = sorted(kept.get("dependencies", []))
        kept["propertyDependencies"] = {k: sorted(v) for k, v in kept.get("propertyDependencies", {}).items()}
        state[resource["urn"]] = kept
    return state


def differences(state: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """``URN key: this != that`` for every field two normalized states disagree on."""
    found = []
    for urn in sorted(set(state) | set(other)):
        mine, theirs = state.get(urn, {}), other.get(urn, {})
        found += [
            f"{urn} {key}: {mine.get(key)!r} != {theirs.get(key)!r}"
            for key in sorted(set(mine) | set(theirs))
            if mine.get(key) != theirs.get(key)
        ]
    return found


def meshkit_up(project: PulumiProject) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "meshkit"), "up", project.stack],
        cwd=project.root, env=project.env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.parametrize("steps", [A_STEPS, B_STEPS, C_STEPS], ids=["A", "B", "C"])
def test_a_targeted_step_leaves_the_state_a_full_up_leaves(steps: list[str], tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "targeted").mkdir()
    full, targeted = new_project(tmp_path / "full", "dev"), new_project(tmp_path / "targeted", "dev")
    for project in (full, targeted):
        project.use_config(steps[0])
        project.up()
    for step in steps[1:]:
        full.use_config(step)
        full.up()
        targeted.use_config(step)
        said = meshkit_up(targeted).stderr
        assert "meshkit up: a targeted `up`" in said or "nothing changed" in said, said
        assert differences(normalized_state(targeted), normalized_state(full)) == [], f"states differ after {step}"
        assert targeted.rendered() == full.rendered(), f"rendered objects differ after {step}"


def test_a_step_meshkit_cannot_target_runs_the_full_up(tmp_path: Path) -> None:
    project = new_project(tmp_path, "dev")
    project.use_config("A3")
    # No deployment yet: the full `up`.
    said = meshkit_up(project).stderr
    assert "the full `up`: the stack's last update did not succeed (or there is none)" in said
    # A stack-wide setting: every Deployment's wait for readiness changes.
    text = project.stack_file.read_text().replace("config:\n", "config:\n  meshkit:readyTimeout: 3m\n", 1)
    project.stack_file.write_text(text)
    said = meshkit_up(project).stderr
    assert "the full `up`: meshkit itself, a stack-wide setting or the cluster changed" in said
    assert project.preview() == []
    # Nothing changed since: nothing to do, and the engine is not run.
    assert "nothing changed since the last deployment" in meshkit_up(project).stderr


def test_a_refused_step_deploys_nothing(tmp_path: Path) -> None:
    project = new_project(tmp_path, "dev")
    project.use_config("A3")
    project.up()
    before = normalized_state(project)
    text = project.stack_file.read_text().replace("v2: 30", "v2: 40")
    assert text != project.stack_file.read_text()
    project.stack_file.write_text(text)
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "meshkit"), "up", project.stack],
        cwd=project.root, env=project.env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "MK" in result.stderr and "nothing was deployed" in result.stderr
    assert "Traceback" not in result.stderr
    assert normalized_state(project) == before
