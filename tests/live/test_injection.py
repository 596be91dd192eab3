"""Istio's sidecar injector on the live control plane (istiod's, toolchain/istiod.py): the pods of a namespace
meshkit renders for the sidecar data plane get the proxy; those of an ambient namespace do not; and the
templates it injects are the pinned Istio module's.

The workloads are scenario A3's, rendered by meshkit (namespace, service accounts, Deployments) and created
directly: the injector acts on the pods the ReplicaSets create, whoever created the Deployment."""

from __future__ import annotations

import re
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshkit.config.stack import StackConfig
from meshkit.mesh.render import render_stack
from toolchain import istiod
from toolchain.cluster import LocalCluster

from ..scenario_data import REPO
from .deploy import scenario_in, unavailable_deployments
from .kube import Kube, collection_path, object_path

pytestmark = pytest.mark.live

WORKLOAD_KINDS = ("Namespace", "ServiceAccount", "Deployment")  # in creation order
# Injection templates (the injector's ConfigMap) and their files in Istio's istio-discovery chart.
TEMPLATE_FILES = {"sidecar": "injection-template.yaml", "gateway": "gateway-injection-template.yaml"}


def _stack(namespace: str, dataplane: str) -> StackConfig:
    raw = scenario_in("A3", namespace)
    raw["namespaces"][namespace]["dataplane"] = dataplane
    return StackConfig.model_validate(raw)


def _create_workloads(kube: Kube, stack: StackConfig) -> int:
    """Create the stack's namespace, service accounts and Deployments; the number of pods they ask for."""
    manifests = render_stack(stack)
    for kind in WORKLOAD_KINDS:
        for manifest in (m for m in manifests if m["kind"] == kind):
            namespace = manifest["metadata"].get("namespace")
            kube.request("POST", collection_path(manifest["apiVersion"], kind, namespace), manifest)
    return sum(m["spec"]["replicas"] for m in manifests if m["kind"] == "Deployment")


def _wait_for(what: str, found: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := found():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _pods(kube: Kube, namespace: str, count: int) -> list[dict[str, Any]]:
    """The pods of ``namespace`` once there are ``count``."""

    def found() -> list[dict[str, Any]] | None:
        pods = kube.items("v1", "Pod", namespace)
        return pods if len(pods) == count else None

    pods: list[dict[str, Any]] = _wait_for(f"{count} pods in namespace {namespace}", found)
    return pods


def _containers(pod: dict[str, Any]) -> tuple[list[str], list[str]]:
    spec = pod["spec"]
    return [c["name"] for c in spec.get("initContainers", [])], [c["name"] for c in spec["containers"]]


def test_pods_get_the_sidecar_in_a_sidecar_namespace_and_not_in_an_ambient_one(
    cluster: LocalCluster, kube: Kube
) -> None:
    stacks = {"injected": _stack("injected", "sidecar"), "ambient": _stack("ambient", "ambient")}
    # What meshkit renders, which is what the injector reads.
    labels = {name: next(m for m in render_stack(s) if m["kind"] == "Namespace")["metadata"]["labels"]
              for name, s in stacks.items()}  # fmt: skip
    assert labels["injected"].get("istio-injection") == "enabled"
    assert labels["ambient"].get("istio.io/dataplane-mode") == "ambient"
    assert not {"istio-injection", "istio.io/rev"} & set(labels["ambient"])
    try:
        replicas = {name: _create_workloads(kube, stack) for name, stack in stacks.items()}
        pods = {name: _pods(kube, name, count) for name, count in replicas.items()}

        for pod in pods["injected"]:
            init, containers = _containers(pod)
            where = f"pod injected/{pod['metadata']['name']}"
            # The proxy as a native sidecar (an init container that keeps running), after the one that
            # redirects the pod's traffic to it (no istio-cni here); the application's container unchanged.
            assert init == ["istio-init", "istio-proxy"], where
            assert pod["spec"]["initContainers"][1].get("restartPolicy") == "Always", where
            assert containers == [pod["metadata"]["labels"]["app"]], where
            assert "sidecar.istio.io/status" in pod["metadata"]["annotations"], where
        for pod in pods["ambient"]:
            init, containers = _containers(pod)
            where = f"pod ambient/{pod['metadata']['name']}"
            assert not {"istio-init", "istio-proxy"} & {*init, *containers}, where
            assert "sidecar.istio.io/status" not in (pod["metadata"].get("annotations") or {}), where
        # kwok runs the injected pods as any other: the Deployments become Available.
        _wait_for("Available Deployments", lambda: all(unavailable_deployments(kube, s) == [] for s in stacks.values()))
    finally:
        for name in stacks:
            if kube.get(object_path({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})):
                kube.request("DELETE", f"/api/v1/namespaces/{name}")


def test_the_injection_templates_are_those_of_the_pinned_istio_module(cluster: LocalCluster, kube: Kube) -> None:
    """What the injector reads (ConfigMap istio-sidecar-injector, rendered by the pinned istioctl from its
    embedded charts) holds, verbatim, the templates of the Istio module at the pinned version."""
    versions = dict(
        line.split("=", 1) for line in (REPO / "toolchain" / "versions.env").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )  # fmt: skip
    module_cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout
    archive = Path(module_cache.strip()) / "cache/download/istio.io/istio/@v" / f"{versions['ISTIO_PSEUDO']}.zip"
    assert archive.is_file(), f"{archive} is missing: run toolchain/build-istioctl.sh, which downloads it"
    found = kube.get(f"/api/v1/namespaces/{istiod.NAMESPACE}/configmaps/istio-sidecar-injector")
    assert found, "the injector's ConfigMap is not installed"
    templates = yaml.safe_load(found["data"]["config"])["templates"]
    files = f"istio.io/istio@{versions['ISTIO_PSEUDO']}/manifests/charts/istio-control/istio-discovery/files"
    with zipfile.ZipFile(archive) as module:
        for template, name in TEMPLATE_FILES.items():
            assert templates[template].strip() == module.read(f"{files}/{name}").decode().strip(), template
