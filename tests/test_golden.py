"""Golden files: the rendered YAML of every scenario step, compared with the committed file."""

from __future__ import annotations

import pytest

from meshkit.mesh.manifest import manifests_to_yaml
from meshkit.mesh.render import render_stack

from .goldens import assert_matches_golden
from .scenario_data import SCENARIO_STEPS, scenario


@pytest.mark.parametrize("step", SCENARIO_STEPS)
def test_rendered_manifests_match_golden(step: str) -> None:
    assert_matches_golden(f"{step}.yaml", manifests_to_yaml(render_stack(scenario(step))))
