"""Every object rendered for every stack and scenario step conforms to the Istio and Kubernetes schemas."""

from __future__ import annotations

import copy
import decimal
import functools
import json
import operator
from pathlib import Path
from typing import Any

import pulumi
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.mesh import checks as analysis
from meshkit.mesh import conformance
from meshkit.mesh.checks import load_stack_file
from meshkit.mesh.conformance import jsonschema_errors, schema_errors
from meshkit.mesh.render import owned_manifests, render_stack
from meshkit.pulumi.program import main

from .pulumi_mocks import pulumi_mocks
from .scenario_data import REPO, SCENARIO_STEPS, SCENARIOS, scenario, scenario_raw

STACKS = sorted(p.name for p in (REPO / "stacks").glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("step", SCENARIO_STEPS)
def test_scenario_manifests_conform(step: str) -> None:
    for manifest in render_stack(scenario(step)):
        assert schema_errors(manifest) == [], manifest["metadata"]


@pytest.mark.parametrize("stack_file", STACKS)
def test_stack_manifests_conform(stack_file: str) -> None:
    for manifest in render_stack(load_stack_file(REPO / "stacks" / stack_file)):
        assert schema_errors(manifest) == [], manifest["metadata"]


def test_schema_checks_can_fail() -> None:
    virtual_service = next(
        m for m in render_stack(scenario("B4")) if m["metadata"]["name"] == "ratings" and m["kind"] == "VirtualService"
    )
    broken = copy.deepcopy(virtual_service)
    broken["spec"]["http"][0]["fault"]["abort"]["httpStatus"] = "500"
    assert any("httpStatus" in e for e in schema_errors(broken))
    deployment = copy.deepcopy(next(m for m in render_stack(scenario("A1")) if m["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    assert schema_errors(deployment)


# The fast path (a compiled validator that only proves objects valid) must refuse exactly what jsonschema
# refuses, with jsonschema's paths and messages.

SAMPLES = [m for step in SCENARIO_STEPS for m in render_stack(scenario(step))]


def test_fast_path_proves_every_rendered_object() -> None:
    # What keeps `meshkit check` fast: every kind meshkit renders passes the audit, and its valid objects
    # never reach jsonschema. A schema upgrade that brings an unaudited keyword fails here, not silently.
    for manifest in SAMPLES + [m for f in STACKS for m in render_stack(load_stack_file(REPO / "stacks" / f))]:
        fast = conformance._fast_validator(manifest["apiVersion"], manifest["kind"])
        assert fast is not None, manifest["kind"]
        assert conformance._plain_json(manifest) and fast.is_valid(manifest), manifest["metadata"]


def test_refusals_keep_jsonschema_paths_and_messages() -> None:
    virtual_service = next(
        m for m in render_stack(scenario("B4")) if m["metadata"]["name"] == "ratings" and m["kind"] == "VirtualService"
    )
    broken = copy.deepcopy(virtual_service)
    broken["spec"]["http"][0]["fault"]["abort"]["httpStatus"] = "500"
    assert schema_errors(broken) == ["spec.http.0.fault.abort.httpStatus: '500' is not of type 'integer'"]
    deployment = copy.deepcopy(next(m for m in render_stack(scenario("A1")) if m["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = 6
    assert schema_errors(deployment) == [
        "spec.replicas: 'two' is not of type 'integer', 'null'",
        "spec.template.spec.containers.0.ports.0.protocol: 6 is not of type 'string', 'null'",
    ]


def test_values_outside_json_are_refused_as_before() -> None:
    # The compiled validator takes a tuple for an array and a Decimal for an integer; jsonschema does not.
    deployment = next(m for m in render_stack(scenario("A1")) if m["kind"] == "Deployment")
    for path, value in [
        (("spec", "template", "spec", "containers", 0, "ports"), ({"containerPort": 80},)),
        (("spec", "replicas"), decimal.Decimal(2)),
    ]:
        broken = copy.deepcopy(deployment)
        functools.reduce(operator.getitem, path[:-1], broken)[path[-1]] = value
        assert schema_errors(broken) == jsonschema_errors(broken) != [], path


def test_audit_keeps_unaudited_keywords_on_jsonschema() -> None:
    def audited(schema: dict[str, Any]) -> bool:
        return conformance._audit({"properties": {"a": schema}}, {})

    assert audited({"type": ["string", "null"], "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63})
    assert not audited({"uniqueItems": True})
    assert not audited({"items": [{"type": "string"}]})
    assert not audited({"pattern": r"^\d+$"})
    assert not audited({"pattern": "^(?!istio-)"})
    assert audited({"enum": [301, 302]})  # integers: both validators compare them alike (302.0 in, True out)
    assert not audited({"enum": [1.5, True]})
    assert not audited({"$ref": "#/$defs/missing"})


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.sampled_from([0, -1, 100, 101, 65535, 65536, 4294967295, 4294967296, 2**70, 2.0, 2.5]),
    st.floats(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(
        ["", "500", "v1", "TCP", "UDP", "a\n", "UPPER", "x" * 70, "RuntimeDefault", "ALL", "\ud800", "a" * 64]
    ),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=2).map(tuple),
        st.dictionaries(st.sampled_from(["name", "host", "port", "value", "exact", "x"]) | st.text(max_size=4), inner),
    ),
    max_leaves=6,
)


def _locations(node: Any, skip_root_type: bool = True) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a manifest, apiVersion and kind aside (they choose the schema)."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if not (skip_root_type and key in ("apiVersion", "kind")):
            found.append((node, key))
        if isinstance(value, dict | list):
            found.extend(_locations(value, skip_root_type=False))
    return found


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_fast_path_refuses_exactly_what_jsonschema_refuses(data: st.DataObject) -> None:
    manifest = copy.deepcopy(data.draw(st.sampled_from(SAMPLES)))
    for _ in range(data.draw(st.integers(1, 3))):
        if not _locations(manifest):
            break
        container, key = data.draw(st.sampled_from(_locations(manifest)))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            container[key] = data.draw(_VALUES)
        elif action == "delete" and isinstance(container, dict):
            del container[key]
        elif isinstance(container, dict):
            container[data.draw(st.sampled_from(["extra", "name", "port", "weight", "subset"]))] = data.draw(_VALUES)
        else:
            container.append(data.draw(_VALUES))
    errors = jsonschema_errors(manifest)
    event("refused" if errors else "conforms")
    assert schema_errors(manifest) == errors


# --- MK007 where it matters: before anything is sent ---------------------------------------------------


def _render_with_a_defect(stack: Any) -> list[tuple[str, dict[str, Any]]]:
    """The real render, with one defect the models cannot catch: a weight the VirtualService schema refuses."""
    owned = owned_manifests(stack)
    for _, manifest in owned:
        if manifest["kind"] == "VirtualService" and manifest["metadata"]["name"] == "nginx":
            manifest["spec"]["http"][-1]["route"][0]["weight"] = "seventy"
    return owned


def test_check_refuses_a_rendered_object_its_schema_refuses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(analysis, "owned_manifests", _render_with_a_defect)
    stack_file = tmp_path / "Pulumi.a3.yaml"
    stack_file.write_text((SCENARIOS / "A3.yaml").read_text())
    result = CliRunner().invoke(app, ["check", str(stack_file), "--json"])
    assert result.exit_code == 1, result.output
    (finding,) = json.loads(result.output)["findings"]
    assert finding["code"] == "MK007" and finding["object"] == "VirtualService nginx.demo"
    assert "spec.http.0.route.0.weight: 'seventy' is not of type 'integer'" in finding["message"]


def test_program_refuses_a_rendered_object_its_schema_refuses_and_registers_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analysis, "owned_manifests", _render_with_a_defect)
    with pulumi_mocks(scenario_raw("A3")) as run, pytest.raises(pulumi.RunError) as info:
        run(lambda: main(read_deployed=lambda stack: {}))
    assert "MK007 (rendered VirtualService nginx)" in str(info.value)
    assert run.recorder.registrations == []
