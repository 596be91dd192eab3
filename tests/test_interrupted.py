"""What a killed `pulumi up` left in a render directory (meshkit/engine/interrupted.py): the files no resource of
the state accounts for, and the files of objects the state holds that the killed update changed or deleted;
`meshkit unlock` setting them right once it finds the killed update's lock."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.engine.interrupted import (
    ObjectId,
    file_documents,
    manifest_yaml,
    matches,
    object_id,
    orphaned_files,
    recorded_manifest,
    render_path,
    render_repairs,
    stack_state,
    state_objects,
)
from meshkit.errors import MeshkitError

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


# --- what the state records of a rendered object, and where the provider writes it -------------------

# Captured from the real provider (pulumi-kubernetes 4.25.0, render mode): a `pulumi stack export`'s outputs of
# some resources (`__inputs`, the same object, left out) and the files the provider wrote for them.
CAPTURED_DEPLOYMENT = json.loads("""{"__fieldManager": "pulumi-kubernetes-0c42a259", "__initialApiVersion": "apps/v1",
"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"labels": {"app": "nginx", "version": "v1"},
"name": "nginx-v1", "namespace": "demo"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "nginx",
"version": "v1"}}, "template": {"metadata": {"labels": {"app": "nginx", "version": "v1"}}, "spec":
{"automountServiceAccountToken": false, "containers": [{"image": "nginx:1.14", "name": "nginx", "ports":
[{"containerPort": 80, "protocol": "TCP"}], "resources": {"limits": {"cpu": "1", "memory": "512Mi"}, "requests":
{"cpu": "100m", "memory": "128Mi"}}, "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add":
["CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"], "drop": ["ALL"]}, "privileged": false, "readOnlyRootFilesystem":
false, "seccompProfile": {"type": "RuntimeDefault"}}}], "serviceAccountName": "nginx"}}}}""")
CAPTURED_DEPLOYMENT_FILE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  labels:
    app: nginx
    version: v1
  name: nginx-v1
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels:
      app: nginx
      version: v1
  template:
    metadata:
      labels:
        app: nginx
        version: v1
    spec:
      automountServiceAccountToken: false
      containers:
      - image: nginx:1.14
        name: nginx
        ports:
        - containerPort: 80
          protocol: TCP
        resources:
          limits:
            cpu: "1"
            memory: 512Mi
          requests:
            cpu: 100m
            memory: 128Mi
        securityContext:
          allowPrivilegeEscalation: false
          capabilities:
            add:
            - CHOWN
            - NET_BIND_SERVICE
            - SETGID
            - SETUID
            drop:
            - ALL
          privileged: false
          readOnlyRootFilesystem: false
          seccompProfile:
            type: RuntimeDefault
      serviceAccountName: nginx
"""
# The provider records x-kubernetes-* schema keys underscored.
CAPTURED_CRD = json.loads("""{"__fieldManager": "pulumi-kubernetes-910b7d40", "__initialApiVersion":
"apiextensions.k8s.io/v1", "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata":
{"name": "widgets.example.com"}, "spec": {"group": "example.com", "names": {"kind": "Widget", "listKind":
"WidgetList", "plural": "widgets", "singular": "widget"}, "scope": "Namespaced", "versions": [{"name": "v1",
"schema": {"openAPIV3Schema": {"properties": {"spec": {"description": "line one\\nline two", "type": "object",
"x_kubernetes_int_or_string": true}}, "type": "object", "x_kubernetes_preserve_unknown_fields": true}}, "served":
true, "storage": true}]}}""")
CAPTURED_CRD_FILE = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names:
    kind: Widget
    listKind: WidgetList
    plural: widgets
    singular: widget
  scope: Namespaced
  versions:
  - name: v1
    schema:
      openAPIV3Schema:
        properties:
          spec:
            description: |-
              line one
              line two
            type: object
            x-kubernetes-int-or-string: true
        type: object
        x-kubernetes-preserve-unknown-fields: true
    served: true
    storage: true
"""
CAPTURED_WIDGET = json.loads("""{"__fieldManager": "pulumi-kubernetes-84e7df8e", "__initialApiVersion":
"example.com/v1", "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "team"},
"spec": {"a10": 1, "a9": 2, "f": 0.5, "on": "yes", "size": "1:20", "when": "2024-01-01"}}""")
CAPTURED_WIDGET_FILE = """\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  namespace: team
spec:
  a9: 2
  a10: 1
  f: 0.5
  "on": "yes"
  size: "1:20"
  when: "2024-01-01"
"""
# A Secret's values are secret outputs: a stack export holds their ciphertext. The provider writes them out.
CAPTURED_SECRET = json.loads("""{"__fieldManager": "pulumi-kubernetes-e55a1b0d", "__initialApiVersion": "v1",
"apiVersion": "v1", "data": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext":
"v1:VFBE47Hsa/vjbjy1:a46CiZKDgFEpvibXa844OE7tHruU6RSSG9yHBeXu/bANCh+9YPIe8CA="}, "kind": "Secret", "metadata":
{"labels": {"app": "nginx"}, "name": "nginx-secrets", "namespace": "demo"}, "type": "Opaque"}""")
CAPTURED_SECRET_FILE = """\
apiVersion: v1
data:
  dbPassword: czNjcjN0
kind: Secret
metadata:
  labels:
    app: nginx
  name: nginx-secrets
  namespace: demo
type: Opaque
"""
CAPTURED_SECRET_URN = "urn:pulumi:dev::meshkit::meshkit:index:VersionedService$kubernetes:core/v1:Secret::nginx-secrets"

# (apiVersion, kind, metadata.namespace, metadata.name) → the file the provider rendered the object in.
PROVIDER_FILE_NAMES = [
    ("v1", "Namespace", None, "demo", "1-manifest/v1-namespace-default-demo.yaml"),
    ("v1", "ConfigMap", None, "settings", "1-manifest/v1-configmap-default-settings.yaml"),
    ("v1", "Secret", "demo", "nginx-secrets", "1-manifest/v1-secret-demo-nginx-secrets.yaml"),
    ("apps/v1", "Deployment", "demo", "nginx-v1", "1-manifest/apps_v1-deployment-demo-nginx-v1.yaml"),
    ("networking.istio.io/v1", "VirtualService", "demo", "shop",
     "1-manifest/networking.istio.io_v1-virtualservice-demo-shop.yaml"),
    ("security.istio.io/v1", "PeerAuthentication", "demo", "default",
     "1-manifest/security.istio.io_v1-peerauthentication-demo-default.yaml"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", None, "system:meshkit-reader",
     "1-manifest/rbac.authorization.k8s.io_v1-clusterrole-default-system:meshkit-reader.yaml"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "widgets.example.com",
     "0-crd/apiextensions.k8s.io_v1-customresourcedefinition-default-widgets.example.com.yaml"),
    ("example.com/v1", "Widget", "team", "w1", "1-manifest/example.com_v1-widget-team-w1.yaml"),
]  # fmt: skip


def _captured(outputs: dict[str, Any], urn: str | None = None) -> dict[str, Any]:
    """A resource of a stack export whose outputs are ``outputs`` (its inputs: the same object)."""
    manifest = {key: value for key, value in outputs.items() if not key.startswith("__")}
    resource = _resource(manifest)
    resource["outputs"] = {**outputs, "__inputs": manifest}
    if urn is not None:
        resource["urn"] = urn
    return resource


@pytest.mark.parametrize(("api_version", "kind", "namespace", "name", "file"), PROVIDER_FILE_NAMES)
def test_files_are_named_as_the_provider_names_them(
    api_version: str, kind: str, namespace: str | None, name: str, file: str
) -> None:
    assert render_path(_manifest(api_version, kind, name, namespace)) == PurePosixPath(file)


def test_an_object_whose_name_is_no_file_name_has_no_file() -> None:
    for namespace, name in (("demo", "../../../../etc/cron.d/x"), ("a/b", "x"), ("demo", "a\0b"), ("demo", "")):
        assert render_path(_manifest("v1", "ConfigMap", name, namespace)) is None, name
    # A CustomResourceDefinition kind outside the built-in group is a custom resource like any other.
    assert render_path(_manifest("example.com/v1", "CustomResourceDefinition", "x")) == PurePosixPath(
        "1-manifest/example.com_v1-customresourcedefinition-default-x.yaml"
    )


@pytest.mark.parametrize(
    ("outputs", "file"),
    [
        (CAPTURED_DEPLOYMENT, CAPTURED_DEPLOYMENT_FILE),
        (CAPTURED_CRD, CAPTURED_CRD_FILE),
        (CAPTURED_WIDGET, CAPTURED_WIDGET_FILE),
    ],
)
def test_the_state_records_what_the_provider_rendered(tmp_path: Path, outputs: dict[str, Any], file: str) -> None:
    record = recorded_manifest({**outputs, "__inputs": {"apiVersion": "v1"}})
    assert record is not None and not any(key.startswith("__") for key in record)
    path = tmp_path / "x.yaml"
    path.write_text(file)
    (document,) = file_documents(path)
    assert document == record and matches(record, document)
    # What meshkit writes reads as the same object; byte for byte the provider's, but for go-yaml's key order
    # (a9 before a10).
    path.write_text(manifest_yaml(record))
    assert file_documents(path) == [record]
    if outputs is not CAPTURED_WIDGET:
        assert manifest_yaml(record) == file
    else:
        assert manifest_yaml(record) == file.replace("  a9: 2\n  a10: 1\n", "  a10: 1\n  a9: 2\n")


def test_only_the_provider_s_own_keys_are_bookkeeping() -> None:
    spec = {"__kept": 1, "items": [{"x_kubernetes_list_type": "map"}]}
    outputs = {"__inputs": {}, "__fieldManager": "x", "apiVersion": "example.com/v1", "kind": "Widget",
               "metadata": {"name": "w"}, "spec": spec}  # fmt: skip
    assert recorded_manifest(outputs) == {
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"__kept": 1, "items": [{"x-kubernetes-list-type": "map"}]},
    }  # fmt: skip
    assert recorded_manifest(None) is None
    assert recorded_manifest({"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}) is None


def test_a_file_matches_its_record_only_value_for_value() -> None:
    assert matches({"a": [1, "1", True, 0.5]}, {"a": [1.0, "1", True, 0.5]})
    for other in ({"a": [True, "1", True, 0.5]}, {"a": [1, 1, True, 0.5]}, {"a": [1, "1", 1, 0.5]},
                  {"a": [1, "1", True]}, {"a": [1, "1", True, 0.5], "b": None},
                  {"a": (1, "1", True, 0.5)}):  # fmt: skip
        assert not matches({"a": [1, "1", True, 0.5]}, other), other
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:..."}
    assert matches({"data": secret, "kind": "Secret"}, {"data": {"k": "dg=="}, "kind": "Secret"})
    assert not matches({"data": secret, "kind": "Secret"}, {"kind": "Secret"})


def _repairs(root: Path, *resources: dict[str, Any], **deployment: Any) -> Any:
    return render_repairs(state_objects(_export(*resources, **deployment)), root)


def _relative(root: Path, paths: Any) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in paths)


DEPLOYMENT_FILE = "rendered/dev/1-manifest/apps_v1-deployment-demo-nginx-v1.yaml"
SERVICE_FILE = "rendered/dev/1-manifest/v1-service-demo-nginx.yaml"
SECRET_FILE = "rendered/dev/1-manifest/v1-secret-demo-nginx-secrets.yaml"


def test_a_file_a_killed_update_changed_is_written_again_from_the_state(tmp_path: Path) -> None:
    (tmp_path / DEPLOYMENT_FILE).parent.mkdir(parents=True)
    (tmp_path / DEPLOYMENT_FILE).write_text(CAPTURED_DEPLOYMENT_FILE.replace("nginx:1.14", "nginx:2.0"))
    _write(tmp_path, SERVICE_FILE, SERVICE)
    repairs = _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT), _resource(SERVICE))
    (write,) = repairs.writes
    assert write.path == tmp_path / DEPLOYMENT_FILE and write.replaces
    assert write.text == CAPTURED_DEPLOYMENT_FILE  # the state's record, as the provider wrote it
    assert str(write.record) == "Deployment.apps demo/nginx-v1"
    assert repairs.orphans.files == {} and repairs.duplicates == [] and repairs.not_restored == []
    # Any difference counts: a key more, a value's type, a second document, a file that no longer parses.
    for changed in (
        CAPTURED_DEPLOYMENT_FILE + "status: {}\n",
        CAPTURED_DEPLOYMENT_FILE.replace("replicas: 2", 'replicas: "2"'),
        CAPTURED_DEPLOYMENT_FILE + "---\n" + yaml.safe_dump(SERVICE),
        CAPTURED_DEPLOYMENT_FILE[:100],
        "",
    ):
        (tmp_path / DEPLOYMENT_FILE).write_text(changed)
        repairs = _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT), _resource(SERVICE))
        assert [(w.path, w.text) for w in repairs.writes] == [(tmp_path / DEPLOYMENT_FILE, CAPTURED_DEPLOYMENT_FILE)]
        assert repairs.orphans.unreadable == {}  # rewritten, not kept unread
    # As the provider wrote it, in any layout: nothing to do.
    (tmp_path / DEPLOYMENT_FILE).write_text(yaml.safe_dump(recorded_manifest(CAPTURED_DEPLOYMENT), indent=4))
    assert _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT), _resource(SERVICE)).writes == []


def test_a_file_a_killed_update_deleted_is_written_again_from_the_state(tmp_path: Path) -> None:
    _write(tmp_path, SERVICE_FILE, SERVICE)
    crd = _captured(CAPTURED_CRD)
    repairs = _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT), _resource(SERVICE), crd)
    assert [(str(w.path.relative_to(tmp_path)), w.text, w.replaces) for w in repairs.writes] == [
        (DEPLOYMENT_FILE, CAPTURED_DEPLOYMENT_FILE, False),
        ("rendered/dev/0-crd/apiextensions.k8s.io_v1-customresourcedefinition-default-widgets.example.com.yaml",
         CAPTURED_CRD_FILE, False),
    ]  # fmt: skip
    # A render directory that is gone altogether is written whole: it is what the state records.
    (tmp_path / SERVICE_FILE).unlink()
    assert len(_repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT), _resource(SERVICE), crd).writes) == 3


def test_a_file_at_an_object_s_name_holding_another_is_rewritten_not_removed(tmp_path: Path) -> None:
    _write(tmp_path, DEPLOYMENT_FILE, _manifest("apps/v1", "Deployment", "other", "demo"))
    repairs = _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT))
    assert repairs.orphans.files == {}
    assert [(w.path, w.replaces) for w in repairs.writes] == [(tmp_path / DEPLOYMENT_FILE, True)]


def test_what_resources_are_not_rendered_from(tmp_path: Path) -> None:
    # A stack that deploys to a cluster; an object the state keeps only to delete it; one left to create again.
    cluster = _provider(kubeconfig="/home/me/.kube/config")
    assert _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT), provider=cluster).writes == []
    assert state_objects(_export(_captured(CAPTURED_DEPLOYMENT), provider=cluster)).records == ()
    for flag in ("delete", "pendingReplacement"):
        assert _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT) | {flag: True}).writes == []
    # A resource of another provider (a component's own, say) renders where that provider does.
    other = _provider(renderYamlToDirectory="out/dev") | {"urn": PROVIDER_URN.replace("::k8s", "::other"), "id": "7"}
    resource = _captured(CAPTURED_DEPLOYMENT) | {"provider": f"{other['urn']}::7"}
    (write,) = _repairs(tmp_path, other, resource).writes
    assert write.path == tmp_path / "out/dev/1-manifest/apps_v1-deployment-demo-nginx-v1.yaml"


def test_a_secret_s_file_is_never_written_from_its_ciphertext(tmp_path: Path) -> None:
    secret = _captured(CAPTURED_SECRET, CAPTURED_SECRET_URN)
    # The file as the last update rendered it: the state's record holds, outside the secret values (which
    # are not checked: they are encrypted).
    (tmp_path / SECRET_FILE).parent.mkdir(parents=True)
    (tmp_path / SECRET_FILE).write_text(CAPTURED_SECRET_FILE)
    repairs = _repairs(tmp_path, secret)
    assert repairs.writes == [] and repairs.not_restored == []
    assert [(u.path, u.record.urn) for u in repairs.unchecked] == [(tmp_path / SECRET_FILE, CAPTURED_SECRET_URN)]
    # Changed outside its secret values, or deleted: named, not written.
    (tmp_path / SECRET_FILE).write_text(CAPTURED_SECRET_FILE.replace("app: nginx", "app: other"))
    repairs = _repairs(tmp_path, secret)
    assert repairs.writes == [] and repairs.unchecked == []
    assert [(m.path, m.reason, m.secret) for m in repairs.not_restored] == [
        (tmp_path / SECRET_FILE, "changed it", True)
    ]
    (tmp_path / SECRET_FILE).unlink()
    repairs = _repairs(tmp_path, secret)
    assert repairs.writes == [] and [(m.reason, m.record.urn) for m in repairs.not_restored] == [
        ("deleted it", CAPTURED_SECRET_URN)
    ]
    # A secret anywhere in an object counts (here the whole of a ConfigMap's data).
    config_map = _captured({**_manifest("v1", "ConfigMap", "c", "demo"), "data": CAPTURED_SECRET["data"]})
    assert _repairs(tmp_path, config_map).writes == []


def test_nothing_is_written_outside_the_render_directory(tmp_path: Path) -> None:
    for name in ("../../../../../escaped", "a/../../../escaped"):
        bad = _captured(_manifest("v1", "ConfigMap", name, "demo"))
        repairs = _repairs(tmp_path, bad)
        assert repairs.writes == []
        assert [(m.path, m.reason) for m in repairs.not_restored] == [
            (None, "its name is no file name (the provider would write it outside its directory)")
        ]
    # Nor through a symbolic link: the manifests directory or the file itself.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "rendered" / "dev").mkdir(parents=True)
    (tmp_path / "rendered" / "dev" / "1-manifest").symlink_to(elsewhere)
    repairs = _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT))
    assert repairs.writes == [] and [m.reason for m in repairs.not_restored] == ["it is a symbolic link, or under one"]
    (tmp_path / "rendered" / "dev" / "1-manifest").unlink()
    _write(tmp_path, "elsewhere/target.yaml", SERVICE)
    (tmp_path / "rendered" / "dev" / "1-manifest").mkdir()
    (tmp_path / DEPLOYMENT_FILE).symlink_to(elsewhere / "target.yaml")
    repairs = _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT))
    assert repairs.writes == [] and [m.reason for m in repairs.not_restored] == ["it is a symbolic link, or under one"]
    # A directory where the file should be is no file to replace.
    (tmp_path / DEPLOYMENT_FILE).unlink()
    (tmp_path / DEPLOYMENT_FILE).mkdir()
    repairs = _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT))
    assert repairs.writes == [] and [m.reason for m in repairs.not_restored] == ["it is no regular file"]


def test_two_resources_rendering_one_file_are_named_not_written(tmp_path: Path) -> None:
    twin = _captured(CAPTURED_DEPLOYMENT, urn="urn:pulumi:dev::meshkit::kubernetes:apps/v1:Deployment::twin")
    repairs = _repairs(tmp_path, _captured(CAPTURED_DEPLOYMENT), twin)
    assert repairs.writes == [] and len(repairs.not_restored) == 2
    assert all(
        m.reason.startswith("resources urn:") and m.reason.endswith("render to it") for m in repairs.not_restored
    )


def test_a_file_the_provider_named_for_another_version_of_an_object_goes(tmp_path: Path) -> None:
    # The state holds the VirtualService as networking.istio.io/v1; a killed update rendered it as v1beta1.
    _write(tmp_path, "rendered/dev/1-manifest/networking.istio.io_v1-virtualservice-demo-nginx.yaml", VIRTUAL_SERVICE)
    beta = {**VIRTUAL_SERVICE, "apiVersion": "networking.istio.io/v1beta1", "spec": {"hosts": ["x"]}}
    old = _write(tmp_path, "rendered/dev/1-manifest/networking.istio.io_v1beta1-virtualservice-demo-nginx.yaml", beta)
    handmade = _write(tmp_path, "rendered/dev/patches/nginx.yaml", beta)  # not the provider's name: kept
    repairs = _repairs(tmp_path, _resource(VIRTUAL_SERVICE))
    assert [(d.path, d.rendered_as, d.record.api_version) for d in repairs.duplicates] == [
        (old, "networking.istio.io/v1beta1", "networking.istio.io/v1")
    ]
    assert handmade not in {d.path for d in repairs.duplicates} and repairs.writes == []
    # Only once the state's own file is right (or written): a Secret's that differs keeps the other.
    secret = {**recorded_manifest(CAPTURED_SECRET), "apiVersion": "v1"}
    _write(tmp_path, "rendered/dev/1-manifest/v1beta9-secret-demo-nginx-secrets.yaml",
           {**secret, "apiVersion": "v1beta9", "data": {"dbPassword": "czNjcjN0"}})  # fmt: skip
    repairs = _repairs(tmp_path, _captured(CAPTURED_SECRET))
    assert [m.reason for m in repairs.not_restored] == ["deleted it"] and repairs.duplicates == []


def test_no_file_is_removed_while_a_resource_s_identity_is_hidden(tmp_path: Path) -> None:
    _write(tmp_path, "rendered/dev/1-manifest/networking.istio.io_v1beta1-virtualservice-demo-nginx.yaml",
           {**VIRTUAL_SERVICE, "apiVersion": "networking.istio.io/v1beta1"})  # fmt: skip
    hidden = _resource(DEPLOYMENT)
    hidden["inputs"] = {"4dabf18193072939515e22adbaa9c7fd": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "..."}
    repairs = _repairs(tmp_path, _resource(VIRTUAL_SERVICE), hidden)
    assert repairs.orphans.blocked_by == (hidden["urn"],) and repairs.duplicates == []
    # Writing from the state goes on: it removes nothing.
    assert _relative(tmp_path, [w.path for w in repairs.writes]) == [
        "rendered/dev/1-manifest/apps_v1-deployment-demo-nginx-v1.yaml",
        "rendered/dev/1-manifest/networking.istio.io_v1-virtualservice-demo-nginx.yaml",
    ]


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

    monkeypatch.setattr("meshkit.engine.interrupted.stack_state", fake_state)
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


def test_unlock_writes_again_what_a_killed_update_changed_or_deleted(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tmp_path / "state"
    lock = _dead_lock(backend)
    changed = project / DEPLOYMENT_FILE
    changed.parent.mkdir(parents=True)
    changed.write_text(CAPTURED_DEPLOYMENT_FILE.replace("nginx:1.14", "nginx:2.0"))
    changed.chmod(0o640)
    kept = _write(project, SERVICE_FILE, SERVICE)
    kept_text = kept.read_text()
    crd_file = (
        project / "rendered/dev/0-crd/apiextensions.k8s.io_v1-customresourcedefinition-default-widgets.example.com.yaml"
    )
    export = _export(_captured(CAPTURED_DEPLOYMENT), _resource(SERVICE), _captured(CAPTURED_CRD))
    result = _unlock(monkeypatch, export, backend)
    assert result.exit_code == 0, result.output
    assert changed.read_text() == CAPTURED_DEPLOYMENT_FILE and stat.S_IMODE(changed.stat().st_mode) == 0o640
    assert crd_file.read_text() == CAPTURED_CRD_FILE
    assert stat.S_IMODE(crd_file.stat().st_mode) == 0o600 and stat.S_IMODE(crd_file.parent.stat().st_mode) == 0o700
    assert kept.read_text() == kept_text and not lock.exists()
    assert sorted(p.name for p in (project / "rendered").rglob("*")) == sorted(
        ["dev", "0-crd", "1-manifest", changed.name, kept.name, crd_file.name]
    )  # no temporary file left
    assert (
        f"meshkit: rewrote {DEPLOYMENT_FILE}: a killed update had changed it; the state of stack dev holds "
        "Deployment.apps demo/nginx-v1 as the update before rendered it, and an `up` that declares it so would not "
        "write it again"
    ) in result.output
    assert (
        f"meshkit: wrote {crd_file.relative_to(project)}: a killed update had deleted it; the state of stack dev "
        "holds CustomResourceDefinition.apiextensions.k8s.io widgets.example.com as the update before rendered it"
    ) in " ".join(result.output.split())
    assert result.output.count("meshkit: rewrote") == 1 and result.output.count("meshkit: wrote") == 1


def test_unlock_names_a_secret_it_cannot_write_and_what_to_do(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tmp_path / "state"
    lock = _dead_lock(backend)
    export = _export(_captured(CAPTURED_SECRET, CAPTURED_SECRET_URN))
    result = _unlock(monkeypatch, export, backend)
    assert result.exit_code == 0, result.output
    assert not (project / SECRET_FILE).exists() and not lock.exists()  # nothing written, the update may go on
    said = " ".join(result.output.split())
    assert (
        f"meshkit: could not restore {SECRET_FILE}: a killed update had deleted it, and the state of stack dev holds "
        "the secret values of Secret demo/nginx-secrets encrypted; run `pulumi state delete --stack dev "
        f"--target-dependents '{CAPTURED_SECRET_URN}'`, then `make up STACK=dev`"
    ) in said
    assert "ciphertext" not in said and "v1:VFBE47" not in said
    # Its file as the state records it, outside the secret values: said to be unchecked, left as it is.
    _dead_lock(backend)
    (project / SECRET_FILE).parent.mkdir(parents=True, exist_ok=True)
    (project / SECRET_FILE).write_text(CAPTURED_SECRET_FILE.replace("czNjcjN0", "bjN3"))
    result = _unlock(monkeypatch, export, backend)
    assert result.exit_code == 0, result.output
    assert (project / SECRET_FILE).read_text() == CAPTURED_SECRET_FILE.replace("czNjcjN0", "bjN3")
    assert (
        f"meshkit: did not check the secret values in {SECRET_FILE}: the state of stack dev holds those of Secret "
        "demo/nginx-secrets encrypted (the rest is as it records); if the killed update changed them, run `pulumi "
        "state delete"
    ) in " ".join(result.output.split())


def test_unlock_removes_a_file_the_provider_named_for_another_version_of_an_object(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tmp_path / "state"
    _dead_lock(backend)
    current = _write(project, "rendered/dev/1-manifest/networking.istio.io_v1-virtualservice-demo-nginx.yaml",
                     VIRTUAL_SERVICE)  # fmt: skip
    old = _write(project, "rendered/dev/1-manifest/networking.istio.io_v1beta1-virtualservice-demo-nginx.yaml",
                 {**VIRTUAL_SERVICE, "apiVersion": "networking.istio.io/v1beta1"})  # fmt: skip
    result = _unlock(monkeypatch, _export(_resource(VIRTUAL_SERVICE)), backend)
    assert result.exit_code == 0, result.output
    assert current.exists() and not old.exists()
    assert (
        f"meshkit: removed {old.relative_to(project)}: a killed update had rendered VirtualService.networking.istio.io "
        "demo/nginx there as networking.istio.io/v1beta1; the state of stack dev holds it as networking.istio.io/v1, "
        f"in {current.relative_to(project)}"
    ) in " ".join(result.output.split())


def test_unlock_keeps_the_lock_when_a_file_cannot_be_written(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tmp_path / "state"
    lock = _dead_lock(backend)
    (project / DEPLOYMENT_FILE).parent.mkdir(parents=True)
    monkeypatch.setattr("os.replace", lambda *_: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    result = _unlock(monkeypatch, _export(_captured(CAPTURED_DEPLOYMENT)), backend)
    assert result.exit_code == 1
    assert result.output.strip().endswith(f"{DEPLOYMENT_FILE}: cannot write it: Permission denied")
    assert lock.exists() and list((project / DEPLOYMENT_FILE).parent.iterdir()) == []  # the next unlock tries again
