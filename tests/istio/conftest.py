"""The rendered targets of the Istio tier (rendering.TARGETS), each rendered once per session and analyzed
once, in parallel."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .istioctl import Analysis, analyze, istioctl
from .rendering import TARGETS, render


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("istio-rendered")
    return {name: render(path, root / name) for name, path in TARGETS.items()}


@pytest.fixture(scope="session")
def analyses(rendered: dict[str, Path]) -> dict[str, Analysis]:
    """One `istioctl analyze` per target (a directory each: the steps of a scenario share object names, so
    they cannot be analyzed together), run in parallel."""
    istioctl()  # fail here, once, when there is no istioctl
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(rendered, pool.map(analyze, rendered.values()), strict=True))
