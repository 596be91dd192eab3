"""Golden files under tests/golden/: compared byte for byte, regenerated on request only.

``MESHKIT_UPDATE_GOLDEN=1 make test`` rewrites them; review the diff before committing. CI never does.
"""

from __future__ import annotations

import os

from .scenario_data import TESTS

GOLDEN = TESTS / "golden"


def assert_matches_golden(name: str, actual: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("MESHKIT_UPDATE_GOLDEN") == "1":
        assert not os.environ.get("CI"), "golden files are regenerated on request only, never in CI"
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}: run MESHKIT_UPDATE_GOLDEN=1 pytest, then review the diff"
    assert actual == golden.read_text(encoding="utf-8")
