"""What a killed `pulumi up` left in a render directory: the files no resource of the state accounts for
(meshkit/interrupted.py), and `meshkit unlock` removing them once it finds the killed update's lock."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.errors import MeshkitError
from meshkit.interrupted import ObjectId, object_id, orphaned_files, stack_state, state_objects

from .scenario_data import REPO

STACK = "dev"
PROVIDER_URN = "urn:pulumi:dev::meshkit::pulumi:providers:kubernetes::k8s"


def _provider(**inputs: Any) -> dict[str, Any]:
    return {"urn": PROVIDER_URN, "custom": True, "id": "42", "type": "pulumi:providers:kubernetes",
            "inputs": {"version": "4.25.0", **inputs}}  # fmt: skip


def _manifest(api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app": name}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": {"replicas": 1}}


def _resource(manifest: dict[str, Any]) -> dict[str, Any]:
    """A `kubernetes:*` resource as `pulumi stack export` shows it (its inputs are the manifest)."""
    group_version = manifest["apiVersion"] if "/" in manifest["apiVersion"] else f"core/{manifest['apiVersion']}"
    name = manifest["metadata"]["name"]
    return {"urn": f"urn:pulumi:dev::meshkit::kubernetes:{group_version}:{manifest['kind']}::{name}",
            "custom": True, "type": f"kubernetes:{group_version}:{manifest['kind']}", "inputs": manifest,
            "outputs": {"__inputs": manifest, **manifest}, "provider": f"{PROVIDER_URN}::42"}  # fmt: skip


def _export(*resources: dict[str, Any], provider: dict[str, Any] | None = None, **deployment: Any) -> dict[str, Any]:
    stack = {"urn": "urn:pulumi:dev::meshkit::pulumi:pulumi:Stack::meshkit-dev", "custom": False,
             "type": "pulumi:pulumi:Stack"}  # fmt: skip
    chosen = _provider(renderYamlToDirectory="rendered/dev") if provider is None else provider
    return {"version": 3, "deployment": {"manifest": {}, "resources": [stack, chosen, *resources], **deployment}}


def _write(root: Path, relative: str, *manifests: dict[str, Any]) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(manifests))
    return path


DEPLOYMENT = _manifest("apps/v1", "Deployment", "nginx-v1", "demo")
SERVICE = _manifest("v1", "Service", "nginx", "demo")
NAMESPACE = _manifest("v1", "Namespace", "demo")
VIRTUAL_SERVICE = _manifest("networking.istio.io/v1", "VirtualService", "nginx", "demo")


def _orphans(export: dict[str, Any], root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in orphaned_files(state_objects(export), root).files)


def test_identity_is_group_kind_namespace_name() -> None:
    assert object_id(DEPLOYMENT) == ObjectId("apps", "Deployment", "demo", "nginx-v1")
    assert object_id(NAMESPACE) == ObjectId("", "Namespace", "", "demo")
    assert str(object_id(VIRTUAL_SERVICE)) == "VirtualService.networking.istio.io demo/nginx"
    assert str(object_id(NAMESPACE)) == "Namespace demo"
    for broken in (None, [], {"kind": "Service", "metadata": {"name": "x"}}, {"apiVersion": "v1", "kind": "Service"},
                   {"apiVersion": "v1", "kind": "Service", "metadata": {"name": ""}},
                   {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": 3}}):  # fmt: skip
        assert object_id(broken) is None, broken


def test_a_file_for_an_object_no_resource_is_is_an_orphan(tmp_path: Path) -> None:
    _write(tmp_path, "rendered/dev/1-manifest/apps_v1-deployment-demo-nginx-v1.yaml", DEPLOYMENT)
    orphan = _write(tmp_path, "rendered/dev/1-manifest/apps_v1-deployment-demo-nginx-v2.yaml",
                    _manifest("apps/v1", "Deployment", "nginx-v2", "demo"))  # fmt: skip
    found = orphaned_files(state_objects(_export(_resource(DEPLOYMENT))), tmp_path)
    assert found.files == {orphan: [ObjectId("apps", "Deployment", "demo", "nginx-v2")]}
    assert found.unreadable == {} and found.blocked_by == ()


def test_files_of_objects_in_the_state_are_kept_whatever_their_name_or_content(tmp_path: Path) -> None:
    # The last update rendered these; a killed one may since have rewritten them (new content, even another
    # version of the API group). They are not orphans: a resource of the state is each of these objects.
    _write(tmp_path, "rendered/dev/1-manifest/apps_v1-deployment-demo-nginx-v1.yaml", DEPLOYMENT)
    rewritten = {**SERVICE, "spec": {"ports": [{"port": 9090}]}}
    _write(tmp_path, "rendered/dev/1-manifest/any-name-at-all.yaml", rewritten)
    _write(tmp_path, "rendered/dev/1-manifest/networking.istio.io_v1beta1-virtualservice-demo-nginx.yaml",
           {**VIRTUAL_SERVICE, "apiVersion": "networking.istio.io/v1beta1"})  # fmt: skip
    export = _export(_resource(DEPLOYMENT), _resource(SERVICE), _resource(VIRTUAL_SERVICE))
    assert _orphans(export, tmp_path) == []


def test_the_same_name_of_another_kind_group_or_namespace_is_another_object(tmp_path: Path) -> None:
    export = _export(_resource(DEPLOYMENT), _resource(SERVICE))
    _write(tmp_path, "rendered/dev/a.yaml", _manifest("apps/v1", "StatefulSet", "nginx-v1", "demo"))
    _write(tmp_path, "rendered/dev/b.yaml", _manifest("extensions/v1beta1", "Deployment", "nginx-v1", "demo"))
    _write(tmp_path, "rendered/dev/c.yaml", _manifest("apps/v1", "Deployment", "nginx-v1", "other"))
    _write(tmp_path, "rendered/dev/d.yaml", _manifest("v1", "Service", "nginx", "demo"))
    assert _orphans(export, tmp_path) == ["rendered/dev/a.yaml", "rendered/dev/b.yaml", "rendered/dev/c.yaml"]


def test_namespaced_and_cluster_scoped_objects_of_one_name_are_told_apart(tmp_path: Path) -> None:
    # The provider names the file of a cluster-scoped object as if it were in `default`: the identity is
    # read from the file, so that does not matter.
    _write(tmp_path, "rendered/dev/1-manifest/v1-namespace-default-demo.yaml", NAMESPACE)
    _write(tmp_path, "rendered/dev/1-manifest/v1-namespace-default-team.yaml", _manifest("v1", "Namespace", "team"))
    _write(tmp_path, "rendered/dev/1-manifest/v1-serviceaccount-demo-demo.yaml",
           _manifest("v1", "ServiceAccount", "demo", "demo"))  # fmt: skip
    _write(
        tmp_path, "rendered/dev/1-manifest/v1-serviceaccount-default-sa.yaml", _manifest("v1", "ServiceAccount", "sa")
    )
    export = _export(_resource(NAMESPACE), _resource(_manifest("v1", "ServiceAccount", "sa", "default")))
    # `demo` the Namespace is in the state; the ServiceAccount `demo` in namespace demo is not; a namespaced
    # object written without its namespace is not the one in `default`.
    assert _orphans(export, tmp_path) == [
        "rendered/dev/1-manifest/v1-namespace-default-team.yaml",
        "rendered/dev/1-manifest/v1-serviceaccount-default-sa.yaml",
        "rendered/dev/1-manifest/v1-serviceaccount-demo-demo.yaml",
    ]


def test_files_that_hold_no_kubernetes_object_are_kept_and_named(tmp_path: Path) -> None:
    directory = tmp_path / "rendered" / "dev"
    directory.mkdir(parents=True)
    (directory / "broken.yaml").write_text("apiVersion: v1\nkind: [Service\n")  # cut short
    (directory / "empty.yaml").write_text("")
    (directory / "latin1.yaml").write_bytes(b"kind: Caf\xe9\n")
    (directory / "plain.yml").write_text("just: a mapping\n")
    (directory / "notes.txt").write_text("not rendered by the provider: ignored\n")
    (directory / "link.yaml").symlink_to(_write(tmp_path, "elsewhere/x.yaml", SERVICE))
    unreadable = directory / "unreadable.yaml"
    _write(tmp_path, "rendered/dev/unreadable.yaml", SERVICE)
    unreadable.chmod(0)
    try:
        if os.access(unreadable, os.R_OK):  # root reads it anyway
            unreadable.chmod(stat.S_IRUSR | stat.S_IWUSR)
            unreadable.unlink()
        found = orphaned_files(state_objects(_export()), tmp_path)
    finally:
        if unreadable.exists():
            unreadable.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert found.files == {} and found.blocked_by == ()
    reasons = {path.name: reason for path, reason in found.unreadable.items()}
    assert reasons.pop("broken.yaml").startswith("not YAML")
    assert reasons.pop("empty.yaml") == "it holds no object"
    assert reasons.pop("latin1.yaml") == "not UTF-8 text"
    assert reasons.pop("plain.yml") == "not a Kubernetes object (no apiVersion, kind or metadata.name)"
    assert reasons in ({}, {"unreadable.yaml": "cannot read it: Permission denied"})


def test_a_file_of_several_objects_is_kept_while_one_of_them_is_in_the_state(tmp_path: Path) -> None:
    _write(tmp_path, "rendered/dev/both.yaml", DEPLOYMENT, SERVICE)
    _write(tmp_path, "rendered/dev/neither.yaml", SERVICE, NAMESPACE)
    assert _orphans(_export(_resource(DEPLOYMENT)), tmp_path) == ["rendered/dev/neither.yaml"]


def test_a_stack_that_deploys_to_a_cluster_has_nothing_to_remove(tmp_path: Path) -> None:
    _write(tmp_path, "rendered/dev/1-manifest/v1-service-demo-nginx.yaml", SERVICE)
    export = _export(_resource(DEPLOYMENT), provider=_provider(kubeconfig="/home/me/.kube/config"))
    state = state_objects(export)
    assert state.render_directories == ()
    assert orphaned_files(state, tmp_path).files == {}


def test_only_the_state_s_render_directory_is_looked_at(tmp_path: Path) -> None:
    _write(tmp_path, "rendered/dev/x.yaml", SERVICE)
    _write(tmp_path, "rendered/prod/x.yaml", SERVICE)
    _write(tmp_path, "out/dev/x.yaml", SERVICE)
    assert _orphans(_export(provider=_provider(renderYamlToDirectory="out/dev")), tmp_path) == ["out/dev/x.yaml"]
    # A render directory that does not exist (nothing rendered yet) is nothing to do.
    assert _orphans(_export(provider=_provider(renderYamlToDirectory="gone/dev")), tmp_path) == []


def test_a_stack_never_deployed_has_no_provider_hence_nothing_to_remove(tmp_path: Path) -> None:
    _write(tmp_path, "rendered/dev/x.yaml", SERVICE)
    for deployment in ({"manifest": {}}, {"manifest": {}, "resources": None}, {"manifest": {}, "resources": []}):
        state = state_objects({"version": 3, "deployment": deployment})
        assert state.render_directories == () and orphaned_files(state, tmp_path).files == {}


def test_an_object_left_pending_by_a_killed_update_accounts_for_no_file(tmp_path: Path) -> None:
    # Pending operations are no resources of the state: no later update deletes what they created.
    _write(tmp_path, "rendered/dev/x.yaml", SERVICE)
    export = _export(pending_operations=[{"resource": _resource(SERVICE), "type": "creating"}])
    assert _orphans(export, tmp_path) == ["rendered/dev/x.yaml"]


def test_a_resource_whose_identity_the_state_hides_blocks_every_removal(tmp_path: Path) -> None:
    _write(tmp_path, "rendered/dev/x.yaml", SERVICE)
    hidden = _resource(DEPLOYMENT)
    hidden["inputs"] = {"4dabf18193072939515e22adbaa9c7fd": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "..."}
    found = orphaned_files(state_objects(_export(hidden)), tmp_path)
    assert found.files == {} and found.blocked_by == (hidden["urn"],)


def test_component_resources_of_the_kubernetes_package_are_no_objects(tmp_path: Path) -> None:
    chart = {"urn": "urn:pulumi:dev::meshkit::kubernetes:yaml/v2:ConfigGroup::g", "custom": False,
             "type": "kubernetes:yaml/v2:ConfigGroup", "inputs": {"files": ["x.yaml"]}}  # fmt: skip
    assert state_objects(_export(chart)).unidentified == ()


@pytest.mark.parametrize(
    ("export", "reason"),
    [
        ([], "no `deployment` object"),
        ({"deployment": None}, "no `deployment` object"),
        ({"deployment": {"resources": {}}}, "`deployment.resources` is not a list"),
        ({"deployment": {"resources": [{"urn": "x"}]}}, "a resource without a type"),
    ],
)
def test_a_document_that_is_no_stack_export_is_refused(export: Any, reason: str) -> None:
    with pytest.raises(MeshkitError, match=f"the state: not a `pulumi stack export` of a stack \\({reason}"):
        state_objects(export, "the state")


# --- reading the state with the pulumi CLI -----------------------------------------------------------


def _fake_pulumi(directory: Path, script: str) -> dict[str, str]:
    """An environment whose `pulumi` is ``script`` (a shell script body)."""
    directory.mkdir(exist_ok=True)
    pulumi = directory / "pulumi"
    pulumi.write_text(f"#!/bin/sh\n{script}\n")
    pulumi.chmod(0o755)
    return {"PATH": f"{directory}:{os.environ['PATH']}"}


def test_the_state_is_read_in_the_project_with_the_backend_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _fake_pulumi(tmp_path / "bin", 'printf \'{"args": "%s", "cwd": "%s", "backend": "%s"}\' "$*" "$PWD" '
                                          '"$PULUMI_BACKEND_URL"')  # fmt: skip
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("PULUMI_BACKEND_URL", "file:///from/the/environment")
    assert stack_state(STACK, tmp_path) == {"args": "stack export --stack dev", "cwd": str(tmp_path),
                                            "backend": "file:///from/the/environment"}  # fmt: skip
    assert stack_state(STACK, tmp_path, "file:///given")["backend"] == "file:///given"


def test_pulumi_missing_or_failing_is_a_meshkit_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(MeshkitError, match="the pulumi CLI is not on PATH"):
        stack_state(STACK, tmp_path)
    monkeypatch.setenv(
        "PATH", _fake_pulumi(tmp_path / "bin", "echo 'error: no stack named dev found' >&2; exit 255")["PATH"]
    )
    with pytest.raises(MeshkitError, match=r"cannot read the state of stack 'dev' .*: error: no stack named dev found"):
        stack_state(STACK, tmp_path)
    monkeypatch.setenv("PATH", _fake_pulumi(tmp_path / "bin", "echo not json")["PATH"])
    with pytest.raises(MeshkitError, match="printed no JSON"):
        stack_state(STACK, tmp_path)


# --- meshkit unlock ----------------------------------------------------------------------------------


def _dead_lock(backend: Path) -> Path:
    process = subprocess.Popen(["true"])
    process.wait()
    directory = backend / ".pulumi" / "locks" / "organization" / "meshkit" / STACK
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"lock-{process.pid}.json"
    path.write_text(json.dumps({"pid": process.pid, "username": "root", "hostname": socket.gethostname(),
                                "timestamp": "2026-11-30T10:00:00Z"}))  # fmt: skip
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    monkeypatch.chdir(root)
    return root


def _unlock(monkeypatch: pytest.MonkeyPatch, export: Any, backend: Path) -> Any:
    """`meshkit unlock dev` with the state `export` (what `pulumi stack export` would print)."""
    calls: list[tuple[str, Path, str | None]] = []

    def fake_state(stack: str, root: Path, backend_url: str | None = None, timeout: float = 300) -> Any:
        calls.append((stack, root, backend_url))
        if isinstance(export, Exception):
            raise export
        return export

    monkeypatch.setattr("meshkit.interrupted.stack_state", fake_state)
    result = CliRunner().invoke(app, ["unlock", STACK, "--backend", f"file://{backend}"])
    result.calls = calls
    return result


def test_unlock_removes_what_a_killed_update_rendered_for_objects_nothing_declares(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tmp_path / "state"
    lock = _dead_lock(backend)
    kept = _write(project, "rendered/dev/1-manifest/apps_v1-deployment-demo-nginx-v1.yaml", DEPLOYMENT)
    orphan = _write(project, "rendered/dev/1-manifest/v1-service-demo-nginx.yaml", SERVICE)
    result = _unlock(monkeypatch, _export(_resource(DEPLOYMENT)), backend)
    assert result.exit_code == 0, result.output
    assert result.calls == [(STACK, project, f"file://{backend}")]
    assert kept.exists() and not orphan.exists() and not lock.exists()
    assert (
        "meshkit: removed rendered/dev/1-manifest/v1-service-demo-nginx.yaml: written by a killed update for an "
        "object nothing declares (Service demo/nginx: in no resource of the state of stack dev;"
    ) in result.output
    assert "removed the stale lock" in result.output


def test_unlock_without_a_killed_update_does_not_read_the_state(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan = _write(project, "rendered/dev/1-manifest/v1-service-demo-nginx.yaml", SERVICE)
    result = _unlock(monkeypatch, _export(), tmp_path / "state")
    assert result.exit_code == 0 and result.calls == [] and orphan.exists()


def test_unlock_keeps_the_lock_when_the_state_cannot_be_read(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tmp_path / "state"
    lock = _dead_lock(backend)
    result = _unlock(monkeypatch, MeshkitError("cannot read the state of stack 'dev': boom"), backend)
    assert result.exit_code == 1
    assert result.output.strip() == "cannot read the state of stack 'dev': boom"  # no traceback
    assert lock.exists()  # the evidence stays: the next unlock tries again


def test_unlock_names_the_files_it_keeps(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = tmp_path / "state"
    _dead_lock(backend)
    (project / "rendered" / "dev").mkdir(parents=True)
    (project / "rendered" / "dev" / "cut.yaml").write_text("")
    result = _unlock(monkeypatch, _export(), backend)
    assert result.exit_code == 0, result.output
    assert "meshkit: kept rendered/dev/cut.yaml: cannot tell which object it holds (it holds no object)" in (
        result.output
    )
