"""What a step on a cluster refreshes (meshkit.engine.refresh_scope): the objects written since the state recorded
them, compared without what only the cluster writes; every object when that cannot be told."""

from __future__ import annotations

import copy
from typing import Any

from meshkit.engine.refresh_scope import FullRefresh, ObjectRef, changed_objects, component_of, deployed_objects
from meshkit.mesh.order import Component

PARENT = "urn:pulumi:prod::meshkit::meshkit:index:TrafficSplit::nginx"
VS_URN = (
    "urn:pulumi:prod::meshkit::meshkit:index:TrafficSplit$kubernetes:networking.istio.io/v1:VirtualService"
    "::nginx-virtualservice"
)


def _virtual_service(resource_version: str = "41", weight: int = 70) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "nginx",
            "namespace": "shop",
            "resourceVersion": resource_version,
            "generation": 1,
            "managedFields": [{"manager": "pulumi-kubernetes"}],
        },
        "spec": {"hosts": ["nginx"], "http": [{"route": [{"destination": {"subset": "v1"}, "weight": weight}]}]},
    }


def _export(*resources: dict[str, Any], pending: list[Any] | None = None) -> dict[str, Any]:
    deployment: dict[str, Any] = {"resources": [
        {"urn": "urn:pulumi:prod::meshkit::pulumi:pulumi:Stack::meshkit-prod", "type": "pulumi:pulumi:Stack",
         "custom": False},
        {"urn": "urn:pulumi:prod::meshkit::pulumi:providers:kubernetes::k8s", "type": "pulumi:providers:kubernetes",
         "custom": True, "outputs": {}},
        *resources,
    ]}  # fmt: skip
    if pending is not None:
        deployment["pending_operations"] = pending
    return {"version": 3, "deployment": deployment}


def _resource(outputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "urn": VS_URN,
        "type": "kubernetes:networking.istio.io/v1:VirtualService",
        "custom": True,
        "parent": PARENT,
        "outputs": {"__inputs": {"spec": outputs["spec"]}, "__fieldManager": "pulumi-kubernetes-x", **outputs},
        **extra,
    }


REF = ObjectRef("networking.istio.io/v1", "VirtualService", "shop", "nginx")


def _deployed(outputs: dict[str, Any]) -> list[Any]:
    found = deployed_objects(_export(_resource(outputs)))
    assert not isinstance(found, FullRefresh)
    return found


def test_the_kubernetes_objects_of_the_state_are_read_with_where_they_are() -> None:
    (deployed,) = _deployed(_virtual_service())
    assert deployed.urn == VS_URN and deployed.ref == REF
    assert component_of(deployed) == Component("meshkit:index:TrafficSplit", "nginx")
    assert REF.kubectl_type == "VirtualService.v1.networking.istio.io"
    assert ObjectRef("v1", "Namespace", "", "shop").kubectl_type == "Namespace.v1."


def test_an_object_not_written_since_the_state_recorded_it_is_not_refreshed() -> None:
    deployed = _deployed(_virtual_service())
    assert changed_objects(deployed, {REF: _virtual_service()}) == []


def test_an_object_written_by_hand_is_refreshed() -> None:
    deployed = _deployed(_virtual_service())
    assert changed_objects(deployed, {REF: _virtual_service("57", weight=50)}) == deployed


def test_an_object_deleted_by_hand_is_refreshed() -> None:
    deployed = _deployed(_virtual_service())
    assert changed_objects(deployed, {}) == deployed


def test_what_only_the_cluster_writes_is_not_a_change() -> None:
    deployed = _deployed(_virtual_service())
    live = _virtual_service("99")
    live["status"] = {"validationMessages": []}
    live["metadata"]["managedFields"].append({"manager": "pilot-discovery"})
    assert changed_objects(deployed, {REF: live}) == []
    # A label someone adds is theirs to keep (server-side apply), but the state must see it: refreshed.
    live["metadata"]["labels"] = {"owner": "someone"}
    assert changed_objects(deployed, {REF: live}) == deployed


def test_an_object_with_secret_values_is_refreshed_whenever_it_was_written() -> None:
    secret_outputs = _virtual_service()
    secret_outputs["spec"] = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "x"}
    deployed = _deployed(secret_outputs)
    live = copy.deepcopy(secret_outputs)
    assert changed_objects(deployed, {REF: live}) == []
    live["metadata"]["resourceVersion"] = "42"
    assert changed_objects(deployed, {REF: live}) == deployed


def test_a_killed_update_or_a_replacement_left_over_means_refreshing_everything() -> None:
    assert isinstance(deployed_objects(_export(_resource(_virtual_service()), pending=[{"type": "creating"}])),
                      FullRefresh)  # fmt: skip
    assert isinstance(deployed_objects(_export(_resource(_virtual_service(), delete=True))), FullRefresh)
    assert isinstance(deployed_objects({"deployment": None}), FullRefresh)
    unnamed = _virtual_service()
    del unnamed["metadata"]["name"]
    assert isinstance(deployed_objects(_export(_resource(unnamed))), FullRefresh)


def test_an_object_outside_meshkits_components_has_no_unit() -> None:
    found = deployed_objects(_export(_resource(_virtual_service(), parent="urn:pulumi:prod::meshkit::my:Thing::x")))
    assert not isinstance(found, FullRefresh)
    (deployed,) = found
    assert component_of(deployed) is None
