"""A later meshkit release that renames a component must not delete and recreate the live route under it.

The stack is deployed with today's component types; then the program runs as a release in which
``TrafficSplit`` is registered as ``meshkit:index:Routes``. With the old type in ``former_types`` the engine
matches every existing object (nothing to do); without it, the control, the engine would delete the
VirtualService and create it again, which is what the aliases exist to prevent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .engine import Step, new_project

pytestmark = pytest.mark.e2e

# The program as a later release would run it: the component renamed, optionally with its former type.
RENAMED_RELEASE = """
import os

from meshkit.engine.sources import last_deployed_outputs
from meshkit.pulumi.components import TrafficSplit
from meshkit.pulumi.program import main

release = os.environ.get("MESHKIT_TEST_RELEASE")
if release:
    TrafficSplit.pulumi_type = "meshkit:index:Routes"
    TrafficSplit.former_types = ("meshkit:index:TrafficSplit",) if release == "aliased" else ()
main(read_deployed=last_deployed_outputs)
"""


def test_renaming_a_component_keeps_its_route_when_the_former_type_is_an_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(tmp_path, "dev")
    (project.root / "__main__.py").write_text(RENAMED_RELEASE)
    project.use_config("A3")
    project.up()

    monkeypatch.setenv("MESHKIT_TEST_RELEASE", "unaliased")
    recreated = {(step.op, step.name) for step in project.preview()}
    assert {("create", "nginx-virtualservice"), ("delete", "nginx-virtualservice")} <= recreated

    monkeypatch.setenv("MESHKIT_TEST_RELEASE", "aliased")
    assert _changes(project.preview()) == []
    events = project.up()
    operations = {e["resOutputsEvent"]["metadata"]["op"] for e in events if "resOutputsEvent" in e}
    assert operations <= {"same"}, operations


def _changes(plan: list[Step]) -> list[Step]:
    return [step for step in plan if step.type != "pulumi:pulumi:Stack"]
