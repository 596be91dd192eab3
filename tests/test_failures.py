"""meshkit's account of a failed object: what traffic does now, and what to do (meshkit.pulumi.failures)."""

from __future__ import annotations

from meshkit.pulumi.failures import FailedObject, explain_failure

DEPLOYMENT_INPUTS = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "nginx-v2", "namespace": "demo", "labels": {"app": "nginx", "version": "v2"}},
}
TIMEOUT = (
    "resource demo/nginx-v2 was not successfully created by the Kubernetes API server: 'nginx-v2' timed out\n"
    "* Minimum number of live Pods was not attained"
)


def test_a_new_version_that_fails_gets_no_traffic_and_the_message_says_what_to_do() -> None:
    failed = FailedObject.from_hook("kubernetes:apps/v1:Deployment", "create", DEPLOYMENT_INPUTS, [TIMEOUT])
    message = explain_failure(failed)
    assert message.startswith("meshkit: create of Deployment demo/nginx-v2 failed: resource demo/nginx-v2 was not")
    assert "did not route any request to version v2" in message
    assert "`kubectl -n demo describe deployment nginx-v2`" in message
    assert "`kubectl -n demo get pods -l app=nginx,version=v2`" in message
    assert "services.nginx.versions.v2" in message and "revert the step" in message


def test_an_updated_version_keeps_its_old_pods_serving() -> None:
    failed = FailedObject.from_hook("kubernetes:apps/v1:Deployment", "update", DEPLOYMENT_INPUTS, [TIMEOUT])
    message = explain_failure(failed)
    assert "keeps version v2's previous pods serving" in message
    assert "did not route" not in message


def test_a_refused_virtual_service_keeps_the_routes_it_had() -> None:
    inputs = {"kind": "VirtualService", "metadata": {"name": "nginx", "namespace": "demo"}}
    failed = FailedObject.from_hook(
        "kubernetes:networking.istio.io/v1:VirtualService", "update", inputs, ["", "  * admission webhook denied"]
    )
    message = explain_failure(failed)
    assert message.startswith("meshkit: update of VirtualService demo/nginx failed: admission webhook denied.")
    assert "keeps the routes it had before this step" in message


def test_a_kind_without_inputs_is_named_from_its_type() -> None:
    failed = FailedObject.from_hook("kubernetes:core/v1:Namespace", "delete", None, [])
    assert failed.ref == "Namespace " and failed.kind == "Namespace"
    assert "no error text" in explain_failure(failed)
