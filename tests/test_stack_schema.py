"""The JSON Schema of the stack file (meshkit/config/schema.py): in step with the models, and true to the stack
files meshkit reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from meshkit.config.engine_yaml import read_yaml
from meshkit.config.schema import REGENERATE, SCHEMA_PATH, schema_text, stack_file_schema, stale_reason
from meshkit.config.stack_file import stack_file_keys

from .scenario_data import REPO, SCENARIOS

STACK_FILES = sorted(
    [*(REPO / "stacks").glob("Pulumi.*.yaml"), *SCENARIOS.glob("*.yaml"), *(REPO / "examples").rglob("Pulumi.*.yaml")]
)
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _document(text: str) -> Any:
    """A stack file as the engine reads it (YAML 1.2: ``on`` is a string), which is what an editor's schema sees."""
    return read_yaml(text).document


def _errors(validator: jsonschema.Draft202012Validator, text: str) -> list[tuple[str, str]]:
    return sorted(("/".join(map(str, e.absolute_path)), e.message) for e in validator.iter_errors(_document(text)))


def test_the_committed_schema_is_what_the_models_generate() -> None:
    reason = stale_reason()
    assert not reason, f"{reason}: regenerate it with {REGENERATE} and commit it"
    # Byte for byte too, so that a regenerated file never shows a diff of its own.
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), f"regenerate it with {REGENERATE}"


def test_the_schema_knows_every_meshkit_key_with_its_camel_case_spelling() -> None:
    config = stack_file_schema()["properties"]["config"]["properties"]
    keys = ("services", "namespaces", "ingresses", "readyTimeout", "trustDomain", "maxStep", "secrets", "production")
    assert {f"meshkit:{key}" for key in keys} <= set(config)
    traffic = stack_file_schema()["$defs"]["TrafficPolicy"]["properties"]
    assert "maxStep" in traffic and "max_step" not in traffic
    assert traffic["weights"]["additionalProperties"] == {"minimum": 0, "maximum": 100, "type": "integer"}
    assert traffic["weights"]["description"].startswith("Version → percent for the default route")


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_stack_file_of_the_project_validates(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    assert _errors(validator, path.read_text(encoding="utf-8")) == []


def test_the_stacks_name_the_schema_for_editors() -> None:
    for path in sorted((REPO / "stacks").glob("Pulumi.*.yaml")):
        text = path.read_text(encoding="utf-8")
        (target,) = MODELINE.findall(text)
        # The checkout's copy (meshkit may be imported from an installed wheel here).
        assert (path.parent / target).resolve() == (REPO / "meshkit" / "config" / SCHEMA_PATH.name).resolve(), path
        # A comment: meshkit reads the file as before.
        assert stack_file_keys(text, str(path)) == stack_file_keys(MODELINE.sub("", text), str(path))


A_SECRET = "config:\n  meshkit:secrets:\n    dbPassword:\n      secure: v1:abc\n"
WEB = "config:\n  meshkit:services:\n    web:\n      namespace: demo\n"


def _web(**keys: str) -> str:
    """A stack file of one service ``web``, its ports and versions valid unless ``keys`` says otherwise."""
    keys = {"ports": "[{name: http, port: 80}]", "versions": "{v1: {image: 'a:1'}}", **keys}
    return WEB + "".join(f"      {key}: {value}\n" for key, value in keys.items())


SERVICE = "config/meshkit:services/web"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("config:\n  meshkit:servics: {}\n", [("config", "'meshkit:servics' does not match")],
                     id="typo in a meshkit key"),
        pytest.param("config:\n  servics: {}\n", [("config", "'servics' does not match")],
                     id="typo in an unprefixed key"),
        pytest.param(_web(replica="3"), [(SERVICE, "Additional properties are not allowed ('replica' was unexpected)")],
                     id="typo in a service key"),
        pytest.param(_web(versions="{v1: {image: 'a:1', replicas: two}}"),
                     [(f"{SERVICE}/versions/v1/replicas", "'two' is not of type 'integer'")], id="replicas as a word"),
        pytest.param(
            _web(ports="[{name: http, port: 70000}]", traffic="{weights: [v1], api: grpc}"),
            [
                (f"{SERVICE}/ports/0/port", "70000 is greater than the maximum of 65535"),
                (f"{SERVICE}/traffic/api", "'grpc' is not one of ['istio', 'gateway']"),
                (f"{SERVICE}/traffic/weights", "['v1'] is not of type 'object'"),
            ],
            id="a port out of range, an unknown api, weights as a list",
        ),
        pytest.param("config:\n  meshkit:production: yes please\n",
                     [("config/meshkit:production", "'yes please' is not of type 'boolean'")], id="production as text"),
        pytest.param("meshkit:services: {}\n", [("", "'config' is a required property")], id="no config mapping"),
    ],
)  # fmt: skip
def test_a_bad_stack_file_is_refused_where_it_is_wrong(
    validator: jsonschema.Draft202012Validator, text: str, expected: list[tuple[str, str]]
) -> None:
    errors = _errors(validator, text)
    assert [path for path, _ in errors] == [path for path, _ in expected], errors
    for (_, message), (_, start) in zip(errors, expected, strict=True):
        assert message.startswith(start), errors


@pytest.mark.parametrize(
    "text",
    [
        A_SECRET,  # as `pulumi config set --secret --path` writes it
        "encryptionsalt: v1:x\nconfig:\n  kubernetes:context: kind\n  aws:region: eu-west-1\n  services: {}\n",
        "config:\n  meshkit:config:services: {}\n  meshkit:namespaces: {demo: {dataplane: ambient, waypoint: false}}\n",
    ],
    ids=["a Pulumi secret", "other namespaces' keys and Pulumi's own", "the old form and a waypoint turned off"],
)
def test_what_pulumi_and_meshkit_accept_passes(validator: jsonschema.Draft202012Validator, text: str) -> None:
    assert _errors(validator, text) == []
