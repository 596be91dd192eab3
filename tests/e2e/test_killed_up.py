"""End-to-end: `make up` killed with SIGKILL mid-way, then `make up` again, through the real Pulumi CLI and
Kubernetes provider in render mode and the repository's Makefile (which sets PULUMI_SKIP_CHECKPOINTS: the
state is written once, at the end of an update, so the killed one leaves the state of the update before).

After the second `make up`, the stack must be exactly what its file declares: the state's `kubernetes:*`
resources are the objects of meshkit's pure render, `rendered/<stack>/` holds those objects with that
content and nothing else, and `pulumi preview` has nothing to do. That holds too when the stack file is
reverted after the kill: `meshkit unlock` (which `make up` runs first) removes what the killed step rendered
for objects nothing declares, and writes again from the state the files it changed or deleted. The stacks are
generated ones (bench/stacks.py): enough objects that an `up` takes long enough to be killed in the middle.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.stacks import stack_config, stack_file_text
from meshkit.engine.interrupted import ObjectId, object_id, recorded_manifest
from meshkit.mesh.checks import load_stack_file
from meshkit.mesh.render import render_stack

from ..scenario_data import REPO
from .engine import PulumiProject, new_project

pytestmark = pytest.mark.e2e

SERVICES = 60  # 7 objects each, and 2 per namespace (10): 440 objects, a first `make up` of about 20 s
KILL_AT = 0.5
"""The share of the update's file writes done when the `make up` is killed (aimed at: writes in flight
land after it)."""


def _make_env(project: PulumiProject) -> dict[str, str]:
    # The Makefile's own default (true), whatever the environment running the tests says.
    return {k: v for k, v in project.env.items() if k != "PULUMI_SKIP_CHECKPOINTS"}


def _make_up(project: PulumiProject) -> subprocess.CompletedProcess[str]:
    result = project.make("up", env=_make_env(project))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "Traceback" not in result.stderr
    return result


def _render_dir(project: PulumiProject) -> Path:
    return project.root / "rendered" / project.stack


def _files(project: PulumiProject) -> dict[Path, int]:
    """Every rendered file, with its modification time (ns)."""
    found = {}
    for parent, _, names in os.walk(_render_dir(project)):
        for name in names:
            path = Path(parent) / name
            with contextlib.suppress(FileNotFoundError):
                found[path] = path.stat().st_mtime_ns
    return found


def _processes_in(directory: Path) -> list[int]:
    """PIDs of live processes working in ``directory`` (as tests/live/test_failures.py finds them)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cwd = (proc / "cwd").resolve()
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if proc.name.isdigit() and cwd.is_relative_to(directory) and command:  # zombies have no command line
            found.append(int(proc.name))
    return found


def _wait_for(what: str, condition: Callable[[], Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _state(project: PulumiProject) -> dict[str, Any]:
    export: dict[str, Any] = json.loads(project.pulumi("stack", "export").stdout)["deployment"]
    return export


def _locks(project: PulumiProject) -> list[Path]:
    return sorted((project.root / ".pulumi-state" / ".pulumi" / "locks").rglob("*.json"))


def _killed_mid_way(
    project: PulumiProject, progress: Callable[[], float], kill_at: float = KILL_AT, most: float = 0.85
) -> float:
    """Start `make up` in the background (as `PulumiProject.make` runs it), SIGKILL its process group once
    ``progress()`` reaches ``kill_at``, kill what the engine left running, and return ``progress()`` then
    (at most ``most``: the kill must have interrupted the writes being counted)."""
    state_before = _state(project).get("resources")
    log = project.root / "killed-up.log"
    with log.open("w") as output:
        make = subprocess.Popen(
            ["make", "-f", str(REPO / "Makefile"), "-o", "bootstrap", "up", f"STACK={project.stack}"],
            cwd=project.root, env=_make_env(project), stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while (done := progress()) < kill_at:
                assert make.poll() is None, f"the up ended ({make.returncode}) before the kill:\n{log.read_text()}"
                assert time.monotonic() < deadline, "the up made no progress"
                time.sleep(0.01)
        finally:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    assert make.returncode == -signal.SIGKILL
    # The engine's plugins run in process groups of their own, and would finish what they were doing (the
    # language host stops once it notices the engine is gone; the provider checks every five minutes).
    for pid in _processes_in(project.root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_for("every process of the killed up to end", lambda: not _processes_in(project.root))
    done = progress()
    assert min(0.15, kill_at) <= done <= most, f"the kill interrupted nothing: {done:.0%} of the writes were done"
    # The killed update wrote no state (only its lock, which the next `make up` removes).
    assert len(_locks(project)) == 1
    assert _state(project).get("resources") == state_before
    print(f"killed at {done:.0%} of the update's file writes")
    return done


def _converged(project: PulumiProject) -> None:
    """The stack is exactly what its file declares, in the state and in `rendered/<stack>/`, and the engine
    has nothing left to do."""
    expected = {object_id(m): m for m in render_stack(load_stack_file(project.stack_file))}
    state = _state(project)
    assert not state.get("pending_operations")
    in_state = [object_id(r["inputs"]) for r in state["resources"] if r["type"].startswith("kubernetes:")]
    assert len(in_state) == len(set(in_state)) and set(in_state) == set(expected)
    rendered: dict[ObjectId | None, Any] = {}
    for path in _files(project):
        (document,) = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert object_id(document) not in rendered, f"{path}: a second file of {object_id(document)}"
        rendered[object_id(document)] = document
    assert sorted(map(str, set(rendered) - set(expected))) == [], "rendered objects nothing declares"
    assert sorted(map(str, set(expected) - set(rendered))) == [], "declared objects not rendered"
    for identity, manifest in expected.items():
        assert rendered[identity] == manifest, identity
    assert project.preview() == []


def _services(first: int, count: int) -> dict[str, Any]:
    """``count`` services of a generated stack, from the ``first``."""
    services = stack_config(first + count)["services"]
    return {name: services[name] for name in list(services)[first:]}


def test_a_first_up_killed_mid_way_is_completed_by_the_next_up(tmp_path: Path) -> None:
    project = new_project(tmp_path, "killed-first")
    project.use_stack_text(stack_file_text(stack_config(SERVICES)))
    total = len(render_stack(load_stack_file(project.stack_file)))
    _killed_mid_way(project, lambda: len(_files(project)) / total)
    up = _make_up(project)
    assert "removed the stale lock" in up.stderr
    _converged(project)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> PulumiProject:
    """A stack of SERVICES generated services, deployed once; each test steps a copy of it."""
    project = new_project(tmp_path_factory.mktemp("deployed"), "killed-step")
    project.use_stack_text(stack_file_text(stack_config(SERVICES)))
    # `pulumi up` without `make up`'s preview (10 s saved), with its environment.
    up = subprocess.run(
        ["pulumi", "up", "--yes", "--skip-preview", "--stack", project.stack, "--non-interactive"],
        cwd=project.root, env={**project.env, "PULUMI_SKIP_CHECKPOINTS": "true"}, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr
    return project


def _copy(project: PulumiProject, tmp_path: Path) -> PulumiProject:
    """The project, its state backend and its rendered files, elsewhere (the state holds no absolute path)."""
    root = tmp_path / "project"
    shutil.copytree(project.root, root, symlinks=True)
    return PulumiProject(root, project.stack, project.passphrase)


def test_a_large_step_killed_mid_way_is_completed_by_the_next_up(deployed: PulumiProject, tmp_path: Path) -> None:
    project = _copy(deployed, tmp_path)
    config = stack_config(SERVICES)
    # The step: every service's v3 gets a new image, 10 services go, 10 come.
    step = json.loads(json.dumps(config))
    for name in list(step["services"])[:10]:
        del step["services"][name]
    for name, service in step["services"].items():
        service["versions"]["v3"]["image"] = f"registry.local/{name}:2.0"
    step["services"].update(_services(SERVICES, 10))
    project.use_stack_text(stack_file_text(step))
    before = _files(project)
    # Creates and updates come first (deletes after them): 50 Deployments rewritten, 70 files written.
    writes = (SERVICES - 10) + 10 * 7
    _killed_mid_way(project, lambda: sum(before.get(p) != t for p, t in _files(project).items()) / writes)
    _make_up(project)
    _converged(project)


def test_what_a_killed_step_rendered_for_objects_the_next_up_no_longer_declares_is_removed(
    deployed: PulumiProject, tmp_path: Path
) -> None:
    project = _copy(deployed, tmp_path)
    config = stack_config(SERVICES)
    before_step = project.stack_file.read_text()
    # A step that adds 20 services is killed, and then reverted: what it rendered is declared by nothing.
    step = json.loads(json.dumps(config))
    added = _services(SERVICES, 20)
    step["services"].update(added)
    project.use_stack_text(stack_file_text(step))
    existing = set(_files(project))
    _killed_mid_way(project, lambda: len(set(_files(project)) - existing) / (len(added) * 7))
    written = set(_files(project)) - existing
    project.stack_file.write_text(before_step)
    up = _make_up(project)
    _converged(project)
    assert not any(path.exists() for path in written)
    # `meshkit unlock` (run by `make up` first) removed them, and said so, file by file.
    removed = [line for line in up.stderr.splitlines() if "written by a killed update" in line]
    assert len(removed) == len(written), up.stderr
    assert all(str(path.relative_to(project.root)) in up.stderr for path in written)


def test_what_a_killed_step_changed_or_deleted_is_written_again_when_the_step_is_reverted(
    deployed: PulumiProject, tmp_path: Path
) -> None:
    project = _copy(deployed, tmp_path)
    config = stack_config(SERVICES)
    before_step = project.stack_file.read_text()
    # The step: every v3 gets a new image (50 Deployments updated), 10 services go (70 objects deleted). The
    # engine deletes after it updates: killed once the deletes have begun, both are on disk. Deleting a file
    # is quick, so the kill may land after the last one: what matters is that it lands before the state is
    # written (checked by _killed_mid_way).
    step = json.loads(json.dumps(config))
    for name in list(step["services"])[:10]:
        del step["services"][name]
    for name, service in step["services"].items():
        service["versions"]["v3"]["image"] = f"registry.local/{name}:2.0"
    project.use_stack_text(stack_file_text(step))
    before = _files(project)
    _killed_mid_way(project, lambda: len(set(before) - set(_files(project))) / (10 * 7), kill_at=1 / 70, most=1.0)
    after = _files(project)
    changed = {path for path, mtime in after.items() if before.get(path, mtime) != mtime}
    deleted = set(before) - set(after)
    assert changed and deleted and not set(after) - set(before)
    assert all(path.name.endswith("-v3.yaml") and ":2.0" in path.read_text() for path in changed)
    # Reverted: the stack file declares what the state holds, so the engine has nothing to do.
    project.stack_file.write_text(before_step)
    up = _make_up(project)
    _converged(project)
    # The state records each object as meshkit renders it (what `meshkit unlock` wrote the files from).
    expected = {object_id(m): m for m in render_stack(load_stack_file(project.stack_file))}
    for resource in _state(project)["resources"]:
        if resource["type"].startswith("kubernetes:"):
            assert recorded_manifest(resource["outputs"]) == expected[object_id(resource["inputs"])], resource["urn"]
    # `meshkit unlock` said so, file by file.
    for what, paths in (("rewrote", changed), ("wrote", deleted)):
        lines = [line for line in up.stderr.splitlines() if line.startswith(f"meshkit: {what} ")]
        assert len(lines) == len(paths), up.stderr
        assert {line.split()[2].rstrip(":") for line in lines} == {str(p.relative_to(project.root)) for p in paths}
    assert "could not restore" not in up.stderr and "meshkit: removed rendered" not in up.stderr
