"""`make up` and `make step` on the live control plane, as a user runs them: what was changed by hand is
found without reading every object and put back; a step the API server would refuse writes nothing; a step
that changes nothing runs no update."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from toolchain.cluster import LocalCluster

from .deploy import (
    DEPLOYMENT,
    DESTINATION_RULE,
    deployment_quota,
    extra_objects,
    new_live_stack,
    scenario_in,
    stored_against_render,
    unavailable_deployments,
)
from .kube import Kube, collection_path

pytestmark = pytest.mark.live

VIRTUAL_SERVICE = ("networking.istio.io/v1", "VirtualService")


def _weights(kube: Kube, namespace: str) -> dict[str, int]:
    found = kube.get(f"{collection_path(*VIRTUAL_SERVICE, namespace)}/nginx")
    assert found is not None
    return {d["destination"]["subset"]: d.get("weight", 100) for d in found["spec"]["http"][-1]["route"]}


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_make_step_finds_and_puts_back_what_was_changed_by_hand(
    cluster: LocalCluster, kube: Kube, tmp_path: Path
) -> None:
    namespace = "hand-edits"
    stack = new_live_stack(tmp_path, cluster)
    stack.use(scenario_in("A3", namespace))
    stack.make("up")
    assert _weights(kube, namespace) == {"v1": 70, "v2": 30}

    # Someone moves the weights and deletes a Deployment by hand; the stack file does not change.
    vs_path = f"{collection_path(*VIRTUAL_SERVICE, namespace)}/nginx"
    rules = kube.get(vs_path)["spec"]["http"]  # type: ignore[index]
    patch = [{"op": "replace", "path": f"/spec/http/{len(rules) - 1}/route/{i}/weight", "value": 50}
             for i in range(len(rules[-1]["route"]))]  # fmt: skip
    kube.request("PATCH", vs_path, patch, content_type="application/json-patch+json")
    kube.request("DELETE", f"{collection_path(*DEPLOYMENT, namespace)}/nginx-v1")
    assert _weights(kube, namespace) == {"v1": 50, "v2": 50}

    stepped = _output(stack.make("step"))
    assert re.search(r"refresh 2 object\(s\) changed in the cluster since the last update: .*Deployment "
                     rf"{namespace}/nginx-v1", stepped), stepped  # fmt: skip
    assert f"VirtualService {namespace}/nginx" in stepped
    assert _weights(kube, namespace) == {"v1": 70, "v2": 30}
    assert stack.config is not None
    assert stored_against_render(kube, stack.config) == []
    assert unavailable_deployments(kube, stack.config) == []
    assert extra_objects(kube, stack.config) == []

    # Nothing changed since: no refresh, no dry run, no update.
    offset = kube.audit_offset()
    again = _output(stack.make("step"))
    assert "nothing changed since the last deployment: nothing to do" in again
    assert "refresh" not in again and "Updating" not in again
    assert kube.audit_writes(offset) == []
    stack.destroy()


def test_a_step_the_api_server_refuses_writes_nothing(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    namespace = "dry-run"
    stack = new_live_stack(tmp_path, cluster)
    stack.use(scenario_in("A2", namespace))
    stack.make("up")
    # A quota with room for the two Deployments there are: the API server would refuse v2's.
    quota = deployment_quota(namespace, 2)
    kube.request("POST", collection_path("v1", "ResourceQuota", namespace), quota)
    rule_before = kube.get(f"{collection_path(*DESTINATION_RULE, namespace)}/nginx")

    stack.use(scenario_in("A3", namespace))
    for target in ("step", "up"):
        offset = kube.audit_offset()
        refused = stack.make(target, check=False)
        output = _output(refused)
        assert refused.returncode != 0
        assert "the API server refuses the step (dry run); the cluster is unchanged" in output
        assert "exceeded quota" in output
        # Not even the DestinationRule's new subset, which make-before-break would write first.
        assert kube.audit_writes(offset) == [], json.dumps(kube.audit_writes(offset))[:2000]
        assert kube.get(f"{collection_path(*DESTINATION_RULE, namespace)}/nginx") == rule_before
        assert _weights(kube, namespace) == {"v1": 100}

    kube.request(
        "PUT", f"{collection_path('v1', 'ResourceQuota', namespace)}/deployments", deployment_quota(namespace, 3)
    )
    stack.make("step")
    assert _weights(kube, namespace) == {"v1": 70, "v2": 30}
    assert stack.config is not None
    assert unavailable_deployments(kube, stack.config) == []
    stack.destroy()
