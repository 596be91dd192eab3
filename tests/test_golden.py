"""Golden files: the rendered YAML of every scenario step, compared with the committed file.

Regenerate on request only: ``MESHKIT_UPDATE_GOLDEN=1 make test``, then review the diff. CI never does.
"""

from __future__ import annotations

import os

import pytest

from meshkit.render import manifests_to_yaml, render_stack

from .scenario_data import SCENARIO_STEPS, TESTS, scenario

GOLDEN = TESTS / "golden"
UPDATE = os.environ.get("MESHKIT_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("step", SCENARIO_STEPS)
def test_rendered_manifests_match_golden(step: str) -> None:
    rendered = manifests_to_yaml(render_stack(scenario(step)))
    golden = GOLDEN / f"{step}.yaml"
    if UPDATE:
        assert not os.environ.get("CI"), "golden files are regenerated on request only, never in CI"
        golden.write_text(rendered)
    assert golden.exists(), f"no golden file for {step}: run MESHKIT_UPDATE_GOLDEN=1 pytest tests/test_golden.py"
    assert rendered == golden.read_text()
