"""The failures a rollout must survive, each against the live control plane: a canary that never becomes
ready, an object the API server refuses, an `up` killed mid-step, two `up`s at once, and drift."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from toolchain.cluster import LocalCluster

from ..e2e.engine import VENV_BIN
from ..scenario_data import scenario_raw
from .deploy import (
    DEPLOYMENT,
    DESTINATION_RULE,
    LiveStack,
    deployment_quota,
    extra_objects,
    in_namespace,
    new_live_stack,
    routed_subsets,
    scenario_in,
    stored_against_render,
    unavailable_deployments,
)
from .kube import Kube, collection_path

pytestmark = pytest.mark.live


def _virtual_service(kube: Kube, namespace: str, name: str = "nginx") -> dict[str, Any]:
    found = kube.get(f"{collection_path('networking.istio.io/v1', 'VirtualService', namespace)}/{name}")
    assert found is not None
    return found


def _traffic_is_safe(kube: Kube, namespace: str, service: str = "nginx") -> list[str]:
    """Every subset a route sends requests to exists in the DestinationRule and has an Available
    Deployment with every replica ready; the problems otherwise."""
    problems = []
    rule = kube.get(f"{collection_path(*DESTINATION_RULE, namespace)}/{service}") or {"spec": {}}
    subsets = {s["name"] for s in rule["spec"].get("subsets", [])}
    for subset in routed_subsets(_virtual_service(kube, namespace, service)):
        if subset not in subsets:
            problems.append(f"route to subset {subset} that the DestinationRule lacks")
        deployment = kube.get(f"{collection_path(*DEPLOYMENT, namespace)}/{service}-{subset}") or {}
        status = deployment.get("status") or {}
        if not deployment or status.get("availableReplicas", 0) < deployment["spec"]["replicas"]:
            problems.append(f"route to subset {subset} whose Deployment is missing or not ready: {status}")
    return problems


def _a3_with(namespace: str, **v2: Any) -> dict[str, Any]:
    raw = scenario_in("A3", namespace)
    raw["services"]["nginx"]["versions"]["v2"].update(v2)
    return raw


def _deployed(stack: LiveStack, kube: Kube) -> None:
    """The stack's last `up` is what landed: objects, readiness, nothing extra."""
    assert stack.config is not None
    assert stored_against_render(kube, stack.config) == []
    assert extra_objects(kube, stack.config) == []
    assert unavailable_deployments(kube, stack.config) == []


def test_canary_that_never_becomes_ready_gets_no_traffic(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    namespace = "never-ready"
    stack = new_live_stack(tmp_path, cluster)
    stack.use(scenario_in("A2", namespace))
    stack.up()

    # v2's readiness probe never passes (kwok plays a kubelet whose probe `false` always fails).
    broken = _a3_with(namespace, readinessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1})
    broken["readyTimeout"] = "15s"
    stack.use(broken)
    result = stack.up(check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"meshkit: create of Deployment {namespace}/nginx-v2 failed" in output
    assert "did not route any request to version v2" in output
    assert f"kubectl -n {namespace} describe deployment nginx-v2" in output
    assert routed_subsets(_virtual_service(kube, namespace)) == {"v1"}
    assert _traffic_is_safe(kube, namespace) == []

    # The fix is a reviewed change like any other: the next `up` completes the step.
    stack.use(scenario_in("A3", namespace))
    stack.up()
    _deployed(stack, kube)
    assert routed_subsets(_virtual_service(kube, namespace)) == {"v1", "v2"}
    stack.destroy()


def test_object_refused_by_the_api_server(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    namespace = "quota"
    stack = new_live_stack(tmp_path, cluster)
    stack.use(scenario_in("A2", namespace))
    stack.up()
    # A quota with room for the two Deployments there are: the API server refuses v2's.
    quota = deployment_quota(namespace, 2)
    kube.request("POST", collection_path("v1", "ResourceQuota", namespace), quota)

    stack.use(scenario_in("A3", namespace))
    result = stack.up(check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "exceeded quota" in output
    assert f"meshkit: create of Deployment {namespace}/nginx-v2 failed" in output
    assert routed_subsets(_virtual_service(kube, namespace)) == {"v1"}
    assert _traffic_is_safe(kube, namespace) == []

    kube.request(
        "PUT", f"{collection_path('v1', 'ResourceQuota', namespace)}/deployments", deployment_quota(namespace, 3)
    )
    stack.up()
    _deployed(stack, kube)
    assert routed_subsets(_virtual_service(kube, namespace)) == {"v1", "v2"}
    stack.destroy()


def _pulumi_in_background(stack: LiveStack, *args: str) -> subprocess.Popen[str]:
    project = stack.project
    return subprocess.Popen(
        ["pulumi", *args, "--stack", project.stack, "--non-interactive"],
        cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip


PROGRAM_PROCESSES = ("language_host.py", "pulumi-language-python-exec")


def _processes_in(directory: Path, commands: tuple[str, ...] = ("",)) -> list[int]:
    """PIDs of live processes working in ``directory`` whose command line contains one of ``commands``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cwd = (proc / "cwd").resolve()
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if proc.name.isdigit() and cwd.is_relative_to(directory) and command and any(c in command for c in commands):
            found.append(int(proc.name))
    return found


def _wait_for(what: str, condition: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_up_killed_mid_step_is_completed_by_the_next_up(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    namespace = "killed"
    stack = new_live_stack(tmp_path, cluster)
    raw = in_namespace(scenario_raw("B1"), namespace)
    stack.use(raw)
    up = _pulumi_in_background(stack, "up", "--yes", "--skip-preview")
    # Mid-step: the first Deployment exists; Services are still in their await, much else not yet created.
    _wait_for("the first Deployment", lambda: kube.items(*DEPLOYMENT, namespace))
    os.killpg(up.pid, signal.SIGKILL)
    up.communicate()
    # The engine's plugins run in process groups of their own: the language host must notice the engine is
    # gone and stop, with the program it runs. (Whatever else is left, e.g. the provider, which checks its
    # engine every five minutes, is cleaned up here so that it does not outlive the test.)
    _wait_for("the language host and program to exit", lambda: not _processes_in(tmp_path, PROGRAM_PROCESSES), 30)
    for pid in _processes_in(tmp_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert stack.config is not None
    assert unavailable_deployments(kube, stack.config) or stored_against_render(kube, stack.config), (
        "the kill came too late to interrupt anything"
    )
    # As `make up` runs it (PULUMI_SKIP_CHECKPOINTS), the engine writes the state at the end of an update
    # only: the killed one wrote none, though it created objects. Those are in the cluster and in no state;
    # the next `up` creates them again, which server-side apply makes an adoption.
    killed_state = json.loads(stack.project.pulumi("stack", "export").stdout)["deployment"]
    assert not killed_state.get("resources") and not killed_state.get("pending_operations")
    assert kube.items(*DEPLOYMENT, namespace)

    # The killed update's lock stays: `pulumi up` alone is refused, as Pulumi's file backend does.
    refused = stack.up(check=False)
    assert refused.returncode != 0 and "currently locked" in refused.stdout + refused.stderr
    unlocked = stack.unlock()
    assert unlocked.returncode == 0, unlocked.stderr
    assert f"pid {up.pid}" in unlocked.stderr and "its process is gone" in unlocked.stderr
    # A stack that deploys to a cluster renders no files: the unlock removed none.
    assert "written by a killed update" not in unlocked.stderr

    stack.up()
    _deployed(stack, kube)
    # Nothing lost from the state: one more `up` finds every object where the state says it is, and writes
    # nothing.
    offset = kube.audit_offset()
    stack.up()
    assert kube.audit_writes(offset) == []
    refresh = json.loads(stack.project.pulumi("refresh", "--preview-only", "--json").stdout)
    assert set(refresh["changeSummary"]) == {"same"}, refresh["changeSummary"]
    state = json.loads(stack.project.pulumi("stack", "export").stdout)
    managed = {r["urn"].rsplit("::", 1)[-1] for r in state["deployment"]["resources"]}
    assert {"reviews-v3-deployment", "ratings-virtualservice", f"{namespace}-namespace"} - managed == set()
    assert not state["deployment"].get("pending_operations")
    stack.destroy()


def test_second_concurrent_up_is_refused_by_the_lock(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    namespace = "locked"
    stack = new_live_stack(tmp_path, cluster)
    stack.use(in_namespace(scenario_raw("B1"), namespace))
    first = _pulumi_in_background(stack, "up", "--yes", "--skip-preview")
    locks = stack.project.root / ".pulumi-state" / ".pulumi" / "locks"
    _wait_for("the first up's lock", lambda: any(locks.rglob("*.json")))
    # `meshkit unlock` (what `make up` runs first) leaves a live update's lock alone ...
    unlocked = stack.unlock()
    assert unlocked.returncode == 1 and "may still run" in unlocked.stderr, unlocked.stderr
    # ... and the engine refuses a second update.
    second = stack.project.pulumi("up", "--yes", "--skip-preview", check=False)
    assert second.returncode != 0
    assert "currently locked" in second.stdout + second.stderr
    first_output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, first_output
    _deployed(stack, kube)
    stack.destroy()


def test_drift_is_shown_explained_and_undone(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    namespace = "drift"
    stack = new_live_stack(tmp_path, cluster)
    stack.use(scenario_in("A3", namespace))
    stack.up()

    # Someone moves the weights by hand.
    vs = _virtual_service(kube, namespace)
    default_route = vs["spec"]["http"][-1]["route"]
    patch = [{"op": "replace", "path": f"/spec/http/{len(vs['spec']['http']) - 1}/route/{i}/weight",
              "value": 50} for i in range(len(default_route))]  # fmt: skip
    kubectl = str(Path(cluster.state()["bin"]) / "kubectl")  # type: ignore[arg-type]
    subprocess.run(
        [kubectl, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "patch", "virtualservice", "nginx",
         "--type", "json", "-p", json.dumps(patch)], check=True, capture_output=True,
    )  # fmt: skip

    preview = stack.project.pulumi("preview", "--refresh", "--diff")
    assert "nginx-virtualservice" in preview.stdout and "weight" in preview.stdout
    # The reviewer's view: no change in the stack file, and the drift the next `up` will undo.
    env = {**stack.project.env, "PATH": f"{Path(kubectl).parent}:{stack.project.env['PATH']}"}
    plan = subprocess.run(
        [str(VENV_BIN / "meshkit"), "plan", str(stack.project.stack_file), "--base", "deployed"],
        cwd=stack.project.root, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert "no traffic changes" in plan.stdout
    assert "Drift: the cluster no longer applies what the last deployment set" in plan.stdout
    assert re.search(r"nginx\s+weight v1\s+70\s+→\s+50", plan.stdout), plan.stdout
    assert re.search(r"nginx\s+weight v2\s+30\s+→\s+50", plan.stdout), plan.stdout
    stack.up()
    assert {
        d["destination"]["subset"]: d["weight"] for d in _virtual_service(kube, namespace)["spec"]["http"][-1]["route"]
    } == {
        "v1": 70,
        "v2": 30,
    }
    stack.destroy()
