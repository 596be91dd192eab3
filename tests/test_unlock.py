"""meshkit/engine/unlock.py: what `meshkit unlock` does after a killed update, as data, each step once done.

The words the command prints for each step are tested through the command line in tests/test_interrupted.py
and tests/test_stale_locks.py; the states and files here are theirs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshkit.engine.interrupted import ObjectId
from meshkit.engine.unlock import (
    NotAFileBackend,
    RemovedOrphanFile,
    RemovedStaleLock,
    StackLockedError,
    WroteFile,
    unlock_stack,
)

from .scenario_data import REPO
from .test_interrupted import (
    CAPTURED_DEPLOYMENT,
    DEPLOYMENT_FILE,
    SERVICE,
    SERVICE_FILE,
    STACK,
    _captured,
    _dead_lock,
    _export,
    _write,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    return root


def _state(monkeypatch: pytest.MonkeyPatch, export: Any) -> None:
    monkeypatch.setattr("meshkit.engine.interrupted.stack_state", lambda *args, **kwargs: export)


def test_another_backend_is_left_alone(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    assert list(unlock_stack(STACK, "s3://bucket", project)) == [NotAFileBackend("s3://bucket")]
    assert list(unlock_stack(STACK, None, project)) == [NotAFileBackend("")]


def test_after_a_killed_update_each_repair_comes_before_the_lock_goes(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tmp_path / "state"
    lock = _dead_lock(backend)
    orphan = _write(project, SERVICE_FILE, SERVICE)
    _state(monkeypatch, _export(_captured(CAPTURED_DEPLOYMENT)))
    steps = list(unlock_stack(STACK, f"file://{backend}", project))
    assert [type(step) for step in steps] == [RemovedOrphanFile, WroteFile, RemovedStaleLock]
    removed, wrote, unlocked = steps
    assert removed == RemovedOrphanFile(orphan, (ObjectId("", "Service", "demo", "nginx"),))
    assert isinstance(wrote, WroteFile) and wrote.write.path == project / DEPLOYMENT_FILE
    assert not wrote.write.replaces and (project / DEPLOYMENT_FILE).is_file()
    assert isinstance(unlocked, RemovedStaleLock) and unlocked.lock.path == lock and not lock.exists()


def test_a_lock_of_another_host_stops_it_before_anything_is_done(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tmp_path / "state"
    stale = _dead_lock(backend)
    held = stale.with_name("lock-1.json")
    held.write_text(json.dumps({"pid": 1, "hostname": "elsewhere", "timestamp": "2026-11-30T10:00:00Z"}))
    orphan = _write(project, SERVICE_FILE, SERVICE)
    _state(monkeypatch, _export())
    with pytest.raises(StackLockedError, match="stack dev is locked by an update that may still run") as raised:
        list(unlock_stack(STACK, f"file://{backend}", project))
    assert [lock.path for lock in raised.value.locks] == [held]
    assert stale.exists() and held.exists() and orphan.exists()
