"""`meshkit up`'s commands and process environment: a step scope never leaks into an untargeted update; on a
stack with a cluster, only the objects written since the last update are refreshed (in a command of its
own), only the changed units' objects are dry-run by the API server, and a refused dry run stops the step
before the engine writes anything.

The Pulumi and kubectl reads are replaced here by what they return; the live tier runs them for real
(tests/live/test_steps.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshkit.engine import step as engine_step
from meshkit.engine.refresh_scope import ObjectRef
from meshkit.engine.sources import cluster_config
from meshkit.engine.step import DryRun, EngineRun, _environment, run_step, step_command
from meshkit.errors import MeshkitError
from meshkit.mesh.checks import parse_stack_file_text
from meshkit.mesh.istio import virtual_service_manifest
from meshkit.rollout.step_scope import FINGERPRINTS_OUTPUT, SCOPE_FILE_ENV, fingerprints

from .scenario_data import SCENARIOS

COMPONENT = "urn:pulumi:prod::meshkit::meshkit:index:TrafficSplit::nginx"
VS_URN = f"{COMPONENT[: -len('::nginx')]}$kubernetes:networking.istio.io/v1:VirtualService::nginx-virtualservice"
VS_REF = ObjectRef("networking.istio.io/v1", "VirtualService", "demo", "nginx")
NAMESPACE_REF = ObjectRef("v1", "Namespace", "", "demo")


def test_a_scope_in_the_callers_environment_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCOPE_FILE_ENV, "/tmp/left-over.json")
    assert SCOPE_FILE_ENV not in _environment({})
    assert _environment({SCOPE_FILE_ENV: "/tmp/this-step.json"})[SCOPE_FILE_ENV] == "/tmp/this-step.json"


def test_the_engine_collects_garbage_less_often_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    assert _environment({})["GOGC"] == "400"
    monkeypatch.setenv("GOGC", "100")
    assert _environment({})["GOGC"] == "100"


def _stack_file(tmp_path: Path, with_cluster: bool, step: str = "A3") -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: meshkit\nruntime: python\n")
    (tmp_path / "stacks").mkdir(exist_ok=True)
    text = (SCENARIOS / f"{step}.yaml").read_text()
    if with_cluster:
        text = text.replace("config:\n", "config:\n  kubernetes:kubeconfig: /tmp/kubeconfig\n", 1)
    path = tmp_path / "stacks" / "Pulumi.prod.yaml"
    path.write_text(text)
    return path


def _virtual_service(step: str, resource_version: str) -> dict[str, Any]:
    config = parse_stack_file_text((SCENARIOS / f"{step}.yaml").read_text(), step)
    manifest = virtual_service_manifest("nginx", config.services["nginx"])
    manifest["metadata"]["resourceVersion"] = resource_version
    return manifest


class Cluster:
    """What the Pulumi CLI and kubectl would answer: the last deployment (of scenario step ``deployed``),
    its state (the VirtualService as recorded), and the cluster's objects now."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: Path, deployed: str) -> None:
        config = parse_stack_file_text((SCENARIOS / f"{deployed}.yaml").read_text(), deployed)
        self.outputs = {FINGERPRINTS_OUTPUT: fingerprints(config, cluster_config(path))}
        self.recorded = _virtual_service(deployed, "41")
        self.live: dict[ObjectRef, Any] = {VS_REF: self.recorded, NAMESPACE_REF: {"metadata": {"name": "demo"}}}
        self.listing_fails: str | None = None
        monkeypatch.setattr(engine_step, "stack_export", self.export)
        monkeypatch.setattr(engine_step, "live_objects", self.objects)
        self.succeeded = True
        monkeypatch.setattr(engine_step, "last_update_succeeded", lambda stack, root: self.succeeded)
        monkeypatch.setattr(engine_step, "stack_outputs", lambda stack: self.outputs)

    def export(self, stack: str) -> dict[str, Any]:
        resource = {"urn": VS_URN, "type": "kubernetes:networking.istio.io/v1:VirtualService", "custom": True,
                    "parent": COMPONENT, "outputs": self.recorded}  # fmt: skip
        return {"deployment": {"resources": [resource]}}

    def objects(self, flags: list[str], refs: list[ObjectRef]) -> dict[ObjectRef, Any]:
        if self.listing_fails:
            raise MeshkitError(self.listing_fails)
        assert VS_REF in refs and NAMESPACE_REF in refs and flags == ["--kubeconfig", "/tmp/kubeconfig"]
        return self.live


def _argvs(runs: list[EngineRun | DryRun]) -> list[list[str]]:
    return [run.argv if isinstance(run, EngineRun) else ["dry-run"] for run in runs]


def test_a_step_that_changes_nothing_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _stack_file(tmp_path, with_cluster=True)
    Cluster(monkeypatch, path, deployed="A3")
    command = step_command(path, "prod")
    assert command.runs == []
    assert command.explanation == ["nothing changed since the last deployment: nothing to do"]


def test_make_up_with_nothing_changed_is_one_update_without_refresh_or_preview(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _stack_file(tmp_path, with_cluster=True)
    Cluster(monkeypatch, path, deployed="A3")
    (update,) = step_command(path, "prod", full=True).runs
    assert isinstance(update, EngineRun) and update.scope_text is None
    assert update.argv[:3] == ["pulumi", "up", "--yes"] and "--skip-preview" in update.argv
    assert not any(arg.startswith("--target") for arg in update.argv)


def test_a_step_dry_runs_the_changed_units_objects_then_updates_them_targeted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _stack_file(tmp_path, with_cluster=True)
    Cluster(monkeypatch, path, deployed="A2")
    dry_run, update = step_command(path, "prod").runs
    assert isinstance(dry_run, DryRun) and dry_run.cluster_flags == ["--kubeconfig", "/tmp/kubeconfig"]
    objects = {(m["kind"], m["metadata"]["name"]) for m in dry_run.manifests}
    assert ("Deployment", "nginx-v2") in objects and ("VirtualService", "nginx") in objects
    assert {name for _, name in objects} <= {"nginx", "nginx-v1", "nginx-v2"}  # only the changed unit's
    assert isinstance(update, EngineRun) and update.scope_text is not None
    assert "--skip-preview" in update.argv and f"--target={COMPONENT}" in update.argv


def test_an_object_edited_by_hand_is_refreshed_alone_and_its_unit_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _stack_file(tmp_path, with_cluster=True)
    cluster = Cluster(monkeypatch, path, deployed="A3")
    edited = _virtual_service("A3", "57")
    edited["spec"]["http"][-1]["route"][0]["weight"] = 50
    cluster.live[VS_REF] = edited
    command = step_command(path, "prod")
    refresh, dry_run, update = command.runs
    assert isinstance(refresh, EngineRun) and refresh.argv[:2] == ["pulumi", "refresh"]
    assert [arg for arg in refresh.argv if arg.startswith("--target")] == [f"--target={VS_URN}"]
    assert isinstance(dry_run, DryRun) and isinstance(update, EngineRun) and f"--target={COMPONENT}" in update.argv
    assert "refresh 1 object(s) changed in the cluster since the last update: VirtualService demo/nginx" in (
        command.explanation
    )


def test_a_deleted_object_is_refreshed_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _stack_file(tmp_path, with_cluster=True)
    cluster = Cluster(monkeypatch, path, deployed="A3")
    del cluster.live[VS_REF]
    refresh, _, update = step_command(path, "prod").runs
    assert isinstance(refresh, EngineRun) and f"--target={VS_URN}" in refresh.argv
    assert isinstance(update, EngineRun) and f"--target={COMPONENT}" in update.argv


def test_when_the_changed_objects_cannot_be_told_every_object_is_refreshed_and_previewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _stack_file(tmp_path, with_cluster=True)
    cluster = Cluster(monkeypatch, path, deployed="A2")
    cluster.listing_fails = "kubectl is not on PATH"
    command = step_command(path, "prod")
    assert _argvs(command.runs) == [
        ["pulumi", "refresh", "--yes", "--skip-preview", "--stack", "prod", "--non-interactive",
         "--clear-pending-creates"],
        ["pulumi", "up", "--yes", "--stack", "prod", "--non-interactive", "--skip-preview=false"],
    ]  # fmt: skip
    assert "refresh every object: kubectl is not on PATH" in command.explanation


def test_a_full_up_the_fingerprints_cannot_scope_dry_runs_every_object_in_namespaces_that_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _stack_file(tmp_path, with_cluster=True)
    cluster = Cluster(monkeypatch, path, deployed="A3")
    cluster.succeeded = False
    dry_run, update = step_command(path, "prod").runs
    assert isinstance(dry_run, DryRun) and isinstance(update, EngineRun)
    kinds = {m["kind"] for m in dry_run.manifests}
    assert {"Namespace", "Deployment", "Service", "DestinationRule", "VirtualService"} <= kinds
    assert "--skip-preview" in update.argv and not any(a.startswith("--target") for a in update.argv)
    # A first deployment: the namespace is not there yet, so only what is outside it can be dry-run.
    del cluster.live[NAMESPACE_REF]
    dry_run, _ = step_command(path, "prod").runs
    assert isinstance(dry_run, DryRun) and {m["kind"] for m in dry_run.manifests} == {"Namespace"}


def test_a_refused_dry_run_stops_the_step_before_the_engine_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_runs: list[list[str]] = []
    monkeypatch.setattr(engine_step, "server_dry_run", lambda flags, manifests: (False, 'exceeded quota: "pods"'))
    monkeypatch.setattr(engine_step, "_run_pulumi", lambda argv, cwd, env: engine_runs.append(argv) or 0)
    said: list[str] = []
    command = engine_step.StepCommand(
        [EngineRun(["pulumi", "refresh"]), DryRun([], [{"kind": "Deployment"}]), EngineRun(["pulumi", "up"])], []
    )
    assert run_step(command, tmp_path, said.append) == 1
    assert engine_runs == [["pulumi", "refresh"]]
    assert said == [
        'meshkit up: the API server refuses the step (dry run); the cluster is unchanged:\nexceeded quota: "pods"'
    ]


def test_a_rendered_stack_reads_no_cluster_and_previews_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_step, "stack_export", lambda stack: pytest.fail("a rendered stack has no objects"))
    (update,) = step_command(_stack_file(tmp_path, with_cluster=False), "prod", full=True).runs
    assert isinstance(update, EngineRun) and "--skip-preview" in update.argv
