"""No message shows Python's internals: a value of the wrong type at any position of a stack config (every key the
models accept, found by walking them) is reported in the stack file's words, as a finding, never as a pydantic
branch name (``function-after[…]``, ``literal[False]``), an exception's text (``'list' object has no attribute``,
``sys.set_int_max_str_digits``) or a traceback."""

from __future__ import annotations

import copy
import itertools
import re
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from meshkit.config.stack import StackConfig
from meshkit.config.validation import _unwrap
from meshkit.errors import ConfigError
from meshkit.mesh.checks import parse_stack_file_text, validate_stack

from .scenario_data import scenario_raw, stack_file_text

INTERNALS = re.compile(
    r"function-(after|before|wrap|plain)\[|literal\[|tagged-union\[|lax-or-strict\[|json-or-python\[|model-fields"
    r"|object has no attribute|set_int_max_str_digits|Exceeds the limit|Traceback|<class |NoneType|pydantic|\[type="
    r"|__\w+__|\bdict\[|\blist\[|typing\.|Union\[|Optional\[|validation error for"
)
# A key for each mapping whose keys are names (a service, a version, a header…).
NAMES = {
    "services": "nginx", "namespaces": "demo", "versions": "v1", "env": "A", "headers": "x-h", "cookie": "user",
    "labels": "team", "secrets": "s", "calls": "sleep", "ingresses": "web", "weights": "v1", "selector": "app",
}  # fmt: skip


def _container(annotation: Any) -> str:
    """``list`` or ``dict`` for a field that holds one (or may: Optional, a union), else ``""``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _container(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return next(filter(None, map(_container, typing.get_args(annotation))), "")
    return "list" if origin is list else "dict" if origin is dict else ""


def _positions(model: type[BaseModel], prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = (*prefix, key)
        yield path
        container = _container(field.annotation)
        if container:
            path = (*path, 0 if container == "list" else NAMES.get(key, "k"))
            yield path
        for nested in _unwrap(field.annotation):  # the models a field holds, in a list or dict too
            yield from _positions(nested, path)


POSITIONS = list(dict.fromkeys(_positions(StackConfig)))
WRONG = [[], {}, ["a", 1], {"a": 1}, {"a": {"b": []}}, 0, -1, 1.5, "x", "", True, None, 10**5000, "9" * 5000]


def _put(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """``document`` with ``value`` at ``path``, the containers on the way made as needed."""
    document = copy.deepcopy(document)
    node: Any = document
    for part, following in itertools.pairwise(path):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(node, list):
            node.extend({} for _ in range(int(part) + 1 - len(node)))
        elif not isinstance(node.get(part), dict | list):
            node[part] = empty
        if not isinstance(node[part], dict | list):
            node[part] = empty
        node = node[part]
    if isinstance(node, list):
        node.extend({} for _ in range(int(path[-1]) + 1 - len(node)))
    node[path[-1]] = value
    return document


def _messages(check: Any) -> str:
    """The text a user reads: the refusal, or nothing when the config is accepted."""
    try:
        check()
    except ConfigError as error:
        return str(error)
    return ""


def test_the_positions_cover_every_model() -> None:
    assert len(POSITIONS) > 150
    assert ("services", "nginx", "traffic", "routes", 0, "match", "headers", "x-h", "regex") in POSITIONS
    assert ("ingresses", "web", "routes", 0, "paths", 0, "exact") in POSITIONS


def _every_model_present() -> dict[str, Any]:
    """Scenario A3 with a value under each name of NAMES, so that a wrong value lands among valid neighbours."""
    raw = scenario_raw("A3")
    probe = {"httpGet": {"port": 80}}
    raw["services"]["nginx"]["versions"]["v1"].update(
        readinessProbe=probe, livenessProbe=probe, env={"A": "1"}, runAsUser=101, resources={"requests": {}}
    )
    raw["services"]["nginx"]["calls"] = {"sleep": {"timeout": "1s"}}
    raw["services"]["nginx"]["allowFrom"].append({"namespace": "istio-system"})
    raw["namespaces"]["demo"]["labels"] = {"team": "web"}
    raw["secrets"] = {"s": "x"}
    raw["ingresses"] = {"web": {"namespace": "demo", "routes": [{"service": "nginx"}]}}
    return raw


@pytest.mark.parametrize("base", ["every model", "C3"])
def test_a_wrong_value_anywhere_is_reported_without_python_internals(base: str) -> None:
    raw = _every_model_present() if base == "every model" else scenario_raw(base)
    validate_stack(raw)
    leaks = {}
    for path in POSITIONS:
        for value in WRONG:
            text = _messages(lambda path=path, value=value: validate_stack(_put(raw, path, value)))
            if INTERNALS.search(text):
                leaks[path] = next(line for line in text.splitlines() if INTERNALS.search(line))
    assert not leaks, leaks


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@settings(
    derandomize=True, database=None, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(path=st.sampled_from(POSITIONS), value=values, base=st.sampled_from(["A3", "B4", "C3"]))
def test_a_stack_file_with_any_value_anywhere_is_reported_without_python_internals(
    path: tuple[str | int, ...], value: Any, base: str
) -> None:
    text = stack_file_text(_put(scenario_raw(base), path, value))
    message = _messages(lambda: parse_stack_file_text(text, "stacks/Pulumi.fuzz.yaml"))
    assert not INTERNALS.search(message), message


def test_a_long_value_is_shown_by_its_start_and_its_length() -> None:
    # A number too long for any integer reaches the models as text (the engine cannot read it as a number).
    text = _messages(
        lambda: validate_stack(
            _put(scenario_raw("A3"), ("services", "nginx", "versions", "v1", "replicas"), "9" * 5000)
        )
    )
    assert "MK003 services.nginx.versions.v1.replicas" in text and "… (5000 characters)" in text
    assert len(text) < 500
