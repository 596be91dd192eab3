"""Stale stack locks: removed only when their process is certainly gone, on this host."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.engine.stale_locks import backend_directory, remove_stale_locks, stack_locks

from .scenario_data import REPO


def _write_lock(backend: Path, pid: int, hostname: str | None = None, stack: str = "dev") -> Path:
    directory = backend / ".pulumi" / "locks" / "organization" / "meshkit" / stack
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"lock-{pid}.json"
    content = {"pid": pid, "username": "root", "hostname": hostname or socket.gethostname(),
               "timestamp": "2026-11-30T10:00:00Z"}  # fmt: skip
    path.write_text(json.dumps(content))
    return path


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def running_pulumi(tmp_path: Path) -> Iterator[int]:
    """A live process whose command name is a Pulumi one, as a running `pulumi up` is."""
    sleeper = tmp_path / "pulumi"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", sleeper)
    process = subprocess.Popen([str(sleeper), "60"])
    try:
        # Popen may return before the child has exec'd (its command name is still python's): wait for it.
        deadline = time.monotonic() + 10
        comm = Path(f"/proc/{process.pid}/comm")
        while comm.exists() and comm.read_text().strip() != "pulumi" and time.monotonic() < deadline:
            time.sleep(0.01)
        yield process.pid
    finally:
        process.kill()
        process.wait()


def test_a_dead_process_lock_is_removed(tmp_path: Path) -> None:
    lock = _write_lock(tmp_path, _dead_pid())
    removed, held = remove_stale_locks(tmp_path, "meshkit", "dev")
    assert [r.path for r in removed] == [lock] and held == []
    assert not lock.exists()


def test_a_running_pulumi_lock_is_kept(tmp_path: Path, running_pulumi: int) -> None:
    lock = _write_lock(tmp_path, running_pulumi)
    removed, held = remove_stale_locks(tmp_path, "meshkit", "dev")
    assert removed == [] and [h.path for h in held] == [lock]
    assert lock.exists()


def test_a_lock_from_another_host_is_kept_whatever_its_pid(tmp_path: Path) -> None:
    lock = _write_lock(tmp_path, _dead_pid(), hostname="elsewhere")
    removed, held = remove_stale_locks(tmp_path, "meshkit", "dev")
    assert removed == [] and len(held) == 1 and lock.exists()


def test_other_stacks_locks_are_not_touched(tmp_path: Path) -> None:
    other = _write_lock(tmp_path, _dead_pid(), stack="prod")
    assert remove_stale_locks(tmp_path, "meshkit", "dev") == ([], [])
    assert other.exists() and len(stack_locks(tmp_path, "meshkit", "prod")) == 1


def test_only_file_backends_have_locks_meshkit_reads() -> None:
    assert backend_directory("file:///var/state") == Path("/var/state")
    assert backend_directory("file://~/state") == Path("~/state").expanduser()
    assert backend_directory("https://api.pulumi.com") is None
    assert backend_directory("s3://bucket") is None


@pytest.fixture
def state_of_nothing_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's state, which `unlock` reads after a killed update (tests/test_interrupted.py): empty."""
    export = {"version": 3, "deployment": {"manifest": {}, "resources": []}}
    monkeypatch.setattr("meshkit.engine.interrupted.stack_state", lambda *args, **kwargs: export)


def test_a_zombie_pulumi_holds_no_lock(tmp_path: Path) -> None:
    # Killed with its parent (`make up` killed as a whole), the pulumi CLI stays a zombie until init reaps it.
    sleeper = tmp_path / "pulumi"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", sleeper)
    process = subprocess.Popen([str(sleeper), "60"])
    try:
        process.kill()
        stat = Path(f"/proc/{process.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rpartition(")")[2].split()[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        lock = _write_lock(tmp_path, process.pid)
        removed, held = remove_stale_locks(tmp_path, "meshkit", "dev")
        assert [r.path for r in removed] == [lock] and held == []
    finally:
        process.wait()


def test_unlock_command_reports_removed_and_refuses_held(
    tmp_path: Path, running_pulumi: int, monkeypatch: pytest.MonkeyPatch, state_of_nothing_rendered: None
) -> None:
    monkeypatch.chdir(REPO)
    dead = _dead_pid()
    _write_lock(tmp_path, dead)
    runner = CliRunner()
    removed = runner.invoke(app, ["unlock", "dev", "--backend", f"file://{tmp_path}"])
    assert removed.exit_code == 0, removed.output
    assert f"removed the stale lock of pid {dead}" in removed.output

    _write_lock(tmp_path, running_pulumi)
    held = runner.invoke(app, ["unlock", "dev", "--backend", f"file://{tmp_path}"])
    assert held.exit_code == 1
    assert f"pid {running_pulumi}" in held.output and "pulumi cancel --stack dev" in held.output

    # Next to a live update's lock, a killed one's stays too (the files it rendered are not looked at while
    # an update runs); the unlock after the live update ends removes both.
    dead = _write_lock(tmp_path, _dead_pid())
    both = runner.invoke(app, ["unlock", "dev", "--backend", f"file://{tmp_path}"])
    assert both.exit_code == 1 and dead.exists()


def _checkpoint_files(backend: Path) -> tuple[Path, Path, Path]:
    stacks = backend / ".pulumi" / "stacks" / "meshkit"
    stacks.mkdir(parents=True)
    checkpoint, attrs, backup_attrs = stacks / "dev.json", stacks / "dev.json.attrs", stacks / "dev.json.bak.attrs"
    checkpoint.write_text('{"version": 3, "checkpoint": {}}')
    attrs.write_text("")  # cut short by a kill: the backend then fails with `failed to load checkpoint: EOF`
    backup_attrs.write_text('{"user.cache_control": ""}')
    return checkpoint, attrs, backup_attrs


def test_unlock_removes_an_attribute_file_a_killed_update_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_of_nothing_rendered: None
) -> None:
    monkeypatch.chdir(REPO)
    checkpoint, attrs, backup_attrs = _checkpoint_files(tmp_path)
    _write_lock(tmp_path, _dead_pid())
    result = CliRunner().invoke(app, ["unlock", "dev", "--backend", f"file://{tmp_path}"])
    assert result.exit_code == 0, result.output
    assert f"removed {attrs}, cut short by a killed update" in result.output
    # Only the broken one goes; the checkpoint and a whole attribute file stay.
    assert not attrs.exists() and checkpoint.exists() and backup_attrs.exists()


def test_attribute_files_are_left_alone_while_an_update_may_run(
    tmp_path: Path, running_pulumi: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    _, attrs, _ = _checkpoint_files(tmp_path)
    _write_lock(tmp_path, running_pulumi)
    result = CliRunner().invoke(app, ["unlock", "dev", "--backend", f"file://{tmp_path}"])
    assert result.exit_code == 1
    assert attrs.exists()  # a running update may be writing it right now
