"""Test data: scenario fixtures (tests/scenarios/*.yaml) and a small builder for config variants."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import yaml

from meshkit.config.stack import StackConfig
from meshkit.config.stack_file import stack_file_keys

TESTS = Path(__file__).parent
REPO = TESTS.parent
SCENARIOS = TESTS / "scenarios"
SCENARIO_STEPS = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
A_STEPS = [s for s in SCENARIO_STEPS if s.startswith("A")]
B_STEPS = [s for s in SCENARIO_STEPS if s.startswith("B")]
C_STEPS = [s for s in SCENARIO_STEPS if s.startswith("C")]
SCENARIO_PAIRS = [
    pair
    for steps in (A_STEPS, B_STEPS, C_STEPS)
    for pair in [*itertools.pairwise(steps), *((b, a) for a, b in itertools.pairwise(steps))]
]
"""Every step from one scenario step to the next, and back (a rollback)."""


def scenario_raw(step: str) -> dict[str, Any]:
    """The ``meshkit:`` keys of a scenario step, prefix stripped, as plain data (read as the engine reads
    the stack file)."""
    path = SCENARIOS / f"{step}.yaml"
    return stack_file_keys(path.read_text(encoding="utf-8"), str(path))


def stack_file_text(raw: dict[str, Any]) -> str:
    """A stack file's text for ``meshkit:`` keys given as plain data (prefix stripped)."""
    return yaml.safe_dump({"config": {f"meshkit:{key}": value for key, value in raw.items()}}, sort_keys=False)


def scenario(step: str) -> StackConfig:
    return StackConfig.model_validate(scenario_raw(step))


def nginx_stack(**service_overrides: Any) -> dict[str, Any]:
    """Scenario A3 (nginx v1/v2 at 70/30) as raw config, with keys of services.nginx replaced."""
    raw = copy.deepcopy(scenario_raw("A3"))
    raw["services"]["nginx"].update(copy.deepcopy(service_overrides))
    return raw


def case_config(case: dict[str, Any]) -> dict[str, Any]:
    """A bad-config case's stack config (tests/bad_configs.yaml): its ``base`` scenario step (A3 unless
    named) with the ``set`` dotted paths set, then the ``unset`` ones deleted."""
    raw = copy.deepcopy(scenario_raw(case.get("base", "A3")))
    for path, value in (case.get("set") or {}).items():
        *parents, key = path.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[key] = value
    for path in case.get("unset") or []:
        *parents, key = path.split(".")
        node = raw
        for part in parents:
            node = node[part]
        del node[key]
    return raw
