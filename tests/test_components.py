"""Components under Pulumi mocks: what is registered, under which names, in which order."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from meshkit.config.stack import StackConfig
from meshkit.mesh.order import deployment_graph
from meshkit.mesh.render import render_stack
from meshkit.mesh.security import caller_principals
from meshkit.pulumi.components import TrafficSplit, TrafficSplitArgs, VersionedService, VersionedServiceArgs
from meshkit.pulumi.program import build_mesh, main

from .pulumi_mocks import Recorder, pulumi_mocks
from .scenario_data import SCENARIO_STEPS, nginx_stack, scenario, scenario_raw

ISTIO = "kubernetes:networking.istio.io/v1"


SKIP_AWAIT = "pulumi.com/skipAwait"


def _registered_manifest(reg: Any) -> dict[str, Any]:
    """A registration's inputs in manifest form (without the provider's bookkeeping keys, and without the
    annotation that tells the provider not to wait: an instruction to Pulumi, not part of the object meshkit
    means to deploy)."""
    inputs = {k: v for k, v in reg.inputs.items() if not k.startswith("__")}
    annotations = {k: v for k, v in (inputs["metadata"].get("annotations") or {}).items() if k != SKIP_AWAIT}
    inputs["metadata"] = {k: v for k, v in inputs["metadata"].items() if k != "annotations"}
    if annotations:
        inputs["metadata"]["annotations"] = annotations
    return dict(sorted(inputs.items()))


@pytest.mark.parametrize("await_services", [True, False])
def test_on_a_cluster_only_services_are_not_awaited(await_services: bool) -> None:
    # The provider holds a Service until its endpoints are quiet for 10 s; what a route must wait for is its
    # Deployments' availability, which stays awaited. Rendered manifests carry no annotation for Pulumi.
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(scenario("C4"), await_services=await_services))
    not_awaited = {
        r.name
        for r in recorder.registrations
        if (r.inputs.get("metadata") or {}).get("annotations", {}).get(SKIP_AWAIT) == "true"
    }
    services = {r.name for r in recorder.registrations if r.type == "kubernetes:core/v1:Service"}
    assert len(services) > 2
    assert not_awaited == (set() if await_services else services)


@pytest.mark.parametrize("step", SCENARIO_STEPS)
def test_registered_objects_are_exactly_the_rendered_manifests(step: str) -> None:
    stack = scenario(step)
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(stack))
    registered = sorted(
        (_registered_manifest(r) for r in recorder.registrations if not r.type.startswith("meshkit:")),
        key=lambda m: (m["kind"], m["metadata"]["name"]),
    )
    rendered = sorted(
        (dict(sorted(m.items())) for m in render_stack(stack)), key=lambda m: (m["kind"], m["metadata"]["name"])
    )
    assert registered == rendered


def test_component_types_and_child_names() -> None:
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(scenario("A3")))
    types = {(r.type, r.name) for r in recorder.registrations}
    assert {
        ("meshkit:index:InjectedNamespace", "demo"),
        ("meshkit:index:VersionedService", "nginx"),
        ("meshkit:index:TrafficSplit", "nginx"),
        ("kubernetes:core/v1:Namespace", "demo-namespace"),
        ("kubernetes:core/v1:Service", "nginx-service"),
        ("kubernetes:apps/v1:Deployment", "nginx-v1-deployment"),
        ("kubernetes:apps/v1:Deployment", "nginx-v2-deployment"),
        (f"{ISTIO}:DestinationRule", "nginx-destinationrule"),
        (f"{ISTIO}:VirtualService", "nginx-virtualservice"),
    } <= types
    assert recorder.by_name("nginx-virtualservice").parent.endswith("meshkit:index:TrafficSplit::nginx")
    assert recorder.by_name("nginx-v2-deployment").parent.endswith("meshkit:index:VersionedService::nginx")


def _dependencies(recorder: Recorder, name: str) -> set[str]:
    return recorder.names_of(recorder.by_name(name).dependencies)


def test_route_waits_for_its_subsets_and_the_pods_it_routes_to() -> None:
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(scenario("A3")))
    assert _dependencies(recorder, "nginx-virtualservice") == {
        "nginx-destinationrule",
        "nginx-v1-deployment",
        "nginx-v2-deployment",
    }


def test_route_does_not_wait_for_a_version_at_zero_percent() -> None:
    # A5: v1 is still deployed, at 0%. The route no longer depends on it, so retiring v1 (A6) can delete
    # the Deployment without touching the route, and the engine deletes it after the step's updates.
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(scenario("A5")))
    assert _dependencies(recorder, "nginx-virtualservice") == {"nginx-destinationrule", "nginx-v2-deployment"}


DENYING_BY_DEFAULT = {**scenario_raw("C3"), "namespaces": {"demo": {"dataplane": "ambient", "defaultDeny": True}}}
WITH_A_SECRET = {
    **nginx_stack(versions={"v1": {"image": "nginx:1.14", "env": {"TOKEN": {"secret": "token"}}}}, traffic={}),
    "secrets": {"token": "s3cret"},
}


@pytest.mark.parametrize(
    "raw",
    [*(scenario_raw(step) for step in SCENARIO_STEPS), DENYING_BY_DEFAULT, WITH_A_SECRET],
    ids=[*SCENARIO_STEPS, "C3 denying by default", "A3 with a secret"],
)
def test_each_object_is_registered_after_what_the_deployment_graph_puts_before_it(raw: dict[str, Any]) -> None:
    stack = StackConfig.model_validate(raw)
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(stack, secret_values=stack.secrets))
    graph = deployment_graph(stack)
    registered = {r.name for r in recorder.registrations if r.type.startswith("kubernetes:") and r.name != "k8s"}
    assert registered == {node.child for node in graph.nodes}
    for node in graph.nodes:
        assert _dependencies(recorder, node.child) == {first.child for first in graph.needs(node.id)}, node.child


def test_workloads_wait_for_their_namespace() -> None:
    with pulumi_mocks() as run:
        recorder = run(lambda: build_mesh(scenario("A3")))
    for name in ("nginx-service", "nginx-v1-deployment", "nginx-destinationrule"):
        assert "demo-namespace" in _dependencies(recorder, name), name


def test_program_reads_stack_config_and_exports_the_traffic_in_force() -> None:
    outputs: dict[str, Any] = {}
    with pulumi_mocks(scenario_raw("A3")) as run:
        original_export = pulumi.export
        pulumi.export = lambda key, value: outputs.__setitem__(key, value)  # type: ignore[assignment]
        try:
            recorder = run(lambda: main(read_deployed=lambda stack: {}))
        finally:
            pulumi.export = original_export
    assert outputs["services"]["nginx"]["weights"] == {"v1": 70, "v2": 30}
    assert outputs["services"]["nginx"]["versions"]["v2"] == {"image": "nginx:1.15", "replicas": 1}
    provider = recorder.by_name("k8s")
    assert provider.inputs["renderYamlToDirectory"] == "rendered/test"


def test_invalid_config_registers_nothing() -> None:
    bad = nginx_stack(traffic={"weights": {"v1": 70, "v2": 20}})
    with pulumi_mocks(bad) as run, pytest.raises(pulumi.RunError) as info:
        run(lambda: main(read_deployed=lambda stack: {}))
    assert "services.nginx.traffic.weights: must sum to 100, got 90 (v1=70, v2=20)" in str(info.value)
    assert "nothing was deployed" in str(info.value)
    assert run.recorder.registrations == []


def test_warnings_go_to_the_pulumi_log_and_do_not_stop_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    with pulumi_mocks(scenario_raw("B3")) as run:
        recorder = run(lambda: main(read_deployed=lambda stack: {}))
    (warning,) = warnings
    assert warning.startswith("warning MK503 services.ratings.faults[0].delay.fixedDelay: delay 7s exceeds")
    assert recorder.by_name("ratings-virtualservice")


def _nginx_components(opts: pulumi.ResourceOptions | None = None, **service_args: Any) -> tuple[Any, Any]:
    stack = scenario("A3")
    principals = caller_principals(stack)
    backend = VersionedService(
        "nginx", VersionedServiceArgs(stack.services["nginx"], principals=principals, **service_args), opts
    )
    split = TrafficSplit("nginx", TrafficSplitArgs(stack.services["nginx"], backend), opts)
    return backend, split


def test_component_outputs_are_names_that_wait_for_their_objects() -> None:
    def program() -> None:
        backend, split = _nginx_components()
        names = pulumi.Output.all(
            vs=split.virtual_service_name,
            service=backend.service_name,
            dr=backend.destination_rule_name,
            v2=backend.deployment_names["v2"],
            account=backend.service_account_name,
        )
        k8s.core.v1.ConfigMap("routes", data=names)

    with pulumi_mocks() as run:
        recorder = run(program)
    config_map = recorder.by_name("routes")
    assert config_map.inputs["data"] == {
        "vs": "nginx",
        "service": "nginx",
        "dr": "nginx",
        "v2": "nginx-v2",
        "account": "nginx",
    }
    # Whoever uses a name is created after the object that carries it.
    assert {
        "nginx-virtualservice",
        "nginx-service",
        "nginx-destinationrule",
        "nginx-v2-deployment",
        "nginx-serviceaccount",
    } <= _dependencies(recorder, "routes")


def test_the_callers_provider_protect_and_transforms_reach_every_child() -> None:
    def add_label(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ != "kubernetes:apps/v1:Deployment":
            return None
        metadata = {**args.props["metadata"], "labels": {**args.props["metadata"]["labels"], "team": "payments"}}
        return pulumi.ResourceTransformationResult({**args.props, "metadata": metadata}, args.opts)

    def program() -> None:
        provider = k8s.Provider("payments-cluster", render_yaml_to_directory="out")
        opts = pulumi.ResourceOptions(provider=provider, protect=True, transformations=[add_label])
        _nginx_components(opts)

    with pulumi_mocks() as run:
        recorder = run(program)
    children = [r for r in recorder.registrations if r.type.startswith("kubernetes:") and r.name != "payments-cluster"]
    assert len(children) == 7
    for child in children:
        assert child.request.protect, child.name
        assert "::payments-cluster::" in child.request.provider, child.name
    for version in ("v1", "v2"):
        assert recorder.by_name(f"nginx-{version}-deployment").inputs["metadata"]["labels"]["team"] == "payments"


def test_autoscaled_versions_leave_replicas_to_the_autoscaler() -> None:
    with pulumi_mocks() as run:
        recorder = run(lambda: _nginx_components(autoscaled=["v2"]))
    assert list(recorder.by_name("nginx-v2-deployment").request.ignoreChanges) == ["spec.replicas"]
    assert list(recorder.by_name("nginx-v1-deployment").request.ignoreChanges) == []


def test_autoscaled_must_name_declared_versions() -> None:
    with pulumi_mocks() as run, pytest.raises(Exception, match=r"autoscaled names versions it does not declare: v9"):
        run(lambda: _nginx_components(autoscaled=["v9"]))


def test_a_renamed_component_carries_its_former_type_as_an_alias() -> None:
    class RenamedSplit(TrafficSplit):
        pulumi_type = "meshkit:index:Routes"
        former_types = ("meshkit:index:TrafficSplit",)

    def program() -> None:
        stack = scenario("A3")
        backend = VersionedService("nginx", VersionedServiceArgs(stack.services["nginx"], principals={"sleep": "x"}))
        RenamedSplit("nginx", TrafficSplitArgs(stack.services["nginx"], backend))

    with pulumi_mocks() as run:
        recorder = run(program)
    (component,) = [r for r in recorder.registrations if r.type == "meshkit:index:Routes"]
    assert [alias.spec.type for alias in component.request.aliases] == ["meshkit:index:TrafficSplit"]


def test_a_service_with_callers_needs_their_principals() -> None:
    stack = scenario("A3")
    needs_principals = r"allows calls from sleep: pass their SPIFFE principals"
    with pulumi_mocks() as run, pytest.raises(Exception, match=needs_principals):
        run(lambda: VersionedService("nginx", VersionedServiceArgs(stack.services["nginx"])))
