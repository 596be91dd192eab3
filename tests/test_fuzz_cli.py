"""Fuzzing the command line: whatever a stack file or a saved outputs file holds, every command ends with
exit code 0 or 1 and a message of meshkit's own, never with an uncaught exception (a traceback is a defect).

The inputs are the committed stacks and the scenario fixtures, mutated two ways: structurally (values
replaced by values of another type, keys dropped, renamed or made non-strings, the document's shape
changed) and as bytes (bytes inserted, deleted or replaced, lines written twice, the file cut short).
The seed is fixed and the budget too, so the test is repeatable and stays in the fast tier.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.config.engine_yaml import read_yaml
from meshkit.mesh.checks import load_stack_file
from meshkit.rollout.summary import deployment_outputs, stack_summary

from .scenario_data import REPO, SCENARIOS

SEED_FILES = sorted((REPO / "stacks").glob("Pulumi.*.yaml")) + sorted(SCENARIOS.glob("*.yaml"))
SEED_BYTES = [path.read_bytes() for path in SEED_FILES]
SEED_DOCUMENTS = [read_yaml(data.decode(), sort_keys=False).document for data in SEED_BYTES]
SEED_OUTPUTS = [stack_summary(load_stack_file(path)) for path in SEED_FILES] + [
    # with previousWeights: each canary step deployed over the one before
    deployment_outputs(
        load_stack_file(SCENARIOS / f"{after}.yaml"), stack_summary(load_stack_file(SCENARIOS / f"{before}.yaml"))
    )
    for before, after in [("A2", "A3"), ("A3", "A4"), ("A4", "A5"), ("A5", "A6"), ("B4", "B5")]
]

# How many inputs a run tries: 1000 take about 12 s. MESHKIT_FUZZ_EXAMPLES=10000 for a longer hunt.
EXAMPLES = int(os.environ.get("MESHKIT_FUZZ_EXAMPLES", "1000"))

runner = CliRunner()

# --- values and keys --------------------------------------------------------------------------------

KEYS = [
    "config", "meshkit:services", "meshkit:namespaces", "meshkit:secrets", "meshkit:production", "services",
    "namespace", "ports", "versions", "traffic", "weights", "routes", "faults", "match", "headers", "cookie",
    "uri", "exact", "prefix", "regex", "image", "replicas", "env", "secret", "secretKeyRef", "name", "port",
    "targetPort", "to", "timeout", "retries", "attempts", "perTryTimeout", "mirror", "version", "percentage",
    "delay", "abort", "fixedDelay", "httpStatus", "allowFrom", "service", "calls", "labels", "dataplane",
    "steps", "maxStep", "tls", "v1", "v2", "v3", "nginx", "sleep", "reviews", "demo", "bookinfo", "<<",
]  # fmt: skip
SCALARS: list[Any] = [
    None, True, False, 0, -1, 1, 30, 70, 100, 101, 65536, 2**63, 2**64, 1.0, 1.5, float("inf"), float("nan"),
    "", " ", "on", "no", "y", "yes", "off", "0o17", "1_000", "0x1F", "1:20", "2001-12-14", "2001-12-14T21:59:43+01:00",
    ".inf", "~", "null", "true", "v1", "v2", "v9", "v10", "nginx", "demo", "http", "http-web", "8080", "7s", "0s",
    "nginx:1.15", "nginx:latest", "(?=x)", "^(.*?;)?(user=jason)(;.*)?$", "5xx", "STRICT", "DISABLE", "sidecar",
    "é", "日本", "\x00", "\x85", "a\nb", "{", "*a", "&a", "[secret]", "x" * 300, "-" * 70, "Nginx", "v_1",
]  # fmt: skip
scalars = st.sampled_from(SCALARS) | st.text(max_size=12) | st.integers(-(2**70), 2**70) | st.floats()
keys = st.sampled_from(KEYS) | st.sampled_from([None, 0, 1, True, 1.5]) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)


def _locations(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value of the document, containers first."""
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        yield from _locations(child, (*path, key))


def _pick(draw: st.DrawFn, document: Any) -> tuple[Any, ...]:
    """A path to a value of ``document`` (wrapped in ``{"root": ...}``): a depth first, then a value at that
    depth, so that the few keys near the top are changed as often as the many leaves."""
    paths = list(_locations(document))[1:]
    depth = draw(st.sampled_from(sorted({len(p) for p in paths})))
    return draw(st.sampled_from([p for p in paths if len(p) == depth]))


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


STRUCTURAL_EDITS = ["replace", "replace", "delete", "add", "rename", "copy"]


@st.composite
def mutated_documents(draw: st.DrawFn, seeds: list[Any], operations: list[str], changes: st.SearchStrategy[int]) -> Any:
    """A seed document with a few structural changes, each one of ``operations``."""
    document: Any = {"root": copy.deepcopy(draw(st.sampled_from(seeds)))}
    for _ in range(draw(changes)):
        path = _pick(draw, document)
        parent, last = _parent(document, path), path[-1]
        operation = draw(st.sampled_from(operations))
        if operation == "replace":
            parent[last] = draw(values)
        elif operation == "delete":
            del parent[last]
        elif operation == "add" and isinstance(parent[last], dict):
            parent[last][draw(keys)] = draw(values)
        elif operation == "add" and isinstance(parent[last], list):
            parent[last].insert(draw(st.integers(0, len(parent[last]))), draw(values))
        elif operation == "rename" and isinstance(parent, dict):
            parent[draw(keys)] = parent.pop(last)
        elif operation == "copy":  # the same value in a second place: a service or version written twice
            target = draw(
                st.sampled_from([p for p in _locations(document) if isinstance(_parent(document, (*p, 0)), dict)])
            )
            _parent(document, (*target, 0))[draw(keys)] = copy.deepcopy(parent[last])
        if "root" not in document:
            document["root"] = None
    return document["root"]


def _dump(document: Any) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False).encode("utf-8")


TOKENS = [
    b"\xff", b"\x00", b"\xe9", b"\xc3\xa9", b"\xef\xbb\xbf", b"\xff\xfe", b"\t", b":", b": ", b"\n", b"\n  ",
    b"- ", b"&a ", b"*a", b"<<: *a\n", b"!!int ", b"!!binary ", b"!foo ", b"{", b"}", b"[", b"]", b"'", b'"', b"#",
    b"%YAML 1.2\n---\n", b"---\n", b"...\n", b"~", b"on", b"y", b"1_000", b"0o17", b".inf", b"2001-12-14", b"? ",
    b"|", b">", b"\\", b"\\u", b"1: x\n", b"~: x\n", b"config:\n", b"weights: {v1: 50}\n",
]  # fmt: skip


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    """A seed file's bytes with a few edits."""
    data = bytearray(draw(st.sampled_from(SEED_BYTES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["insert", "delete", "replace", "line twice", "cut"]))
        if operation == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=4))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif operation == "replace":
            data[at : at + 1] = draw(st.sampled_from(TOKENS))
        elif operation == "line twice":  # a key written twice, with its value
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            line = bytes(data[start : (len(data) if end < 0 else end + 1)])
            data[start:start] = line if line.endswith(b"\n") else line + b"\n"
        else:
            del data[at:]
    return bytes(data)


def _json(value: Any) -> bytes:
    try:
        return json.dumps(value).encode()
    except (TypeError, ValueError):  # keys JSON cannot hold
        return b"{"


# A third unchanged, so that the outputs file is read (a refused stack file stops a command before).
stack_files = (
    st.sampled_from(SEED_BYTES)
    | mutated_documents(SEED_DOCUMENTS, STRUCTURAL_EDITS, st.integers(1, 4)).map(_dump)
    | mutated_bytes()
)
# Saved stack outputs with a few values replaced or dropped.
outputs_files = (
    mutated_documents(SEED_OUTPUTS, ["replace", "delete"], st.integers(0, 3)).map(_json)
    | values.map(_json)
    | st.binary(max_size=16)
)


SERVICES = ["nginx", "reviews", "ratings", "sleep", "nope"]
COMMANDS = [
    ["check", "{stack}"],
    ["check", "{stack}", "--json"],
    ["check", "{stack}", "--deployed", "{outputs}"],
    ["plan", "{stack}", "--base-file", "{outputs}"],
    ["plan", "{stack}", "--base-file", "{outputs}", "--format", "markdown"],
    ["step", "{stack}", "{service}", "v2=40"],
    ["step", "{stack}", "{service}", "--promote"],
    ["step", "{stack}", "{service}", "--take-over", "v1"],
    ["step", "{stack}", "{service}", "--retire", "v1"],
    ["step", "{stack}", "{service}", "--rollback", "--deployed", "{outputs}"],
    ["render", "{stack}"],
    ["render", "{stack}", "-o", "{out}"],
    ["graph", "{stack}"],
    ["graph", "{stack}", "--format", "dot"],
]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="meshkit-fuzz-") as directory:
        yield Path(directory)


@settings(
    derandomize=True,
    database=None,
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(
    stack=stack_files,
    outputs=outputs_files,
    command=st.sampled_from(COMMANDS),
    service=st.sampled_from(SERVICES),
)
def test_no_input_makes_a_command_crash(
    workdir: Path, stack: bytes, outputs: bytes, command: list[str], service: str
) -> None:
    stack_path = workdir / "Pulumi.fuzz.yaml"
    stack_path.write_bytes(stack)
    outputs_path = workdir / "outputs.json"
    outputs_path.write_bytes(outputs)
    fields = {"stack": str(stack_path), "outputs": str(outputs_path), "service": service, "out": str(workdir / "out")}
    args = [part.format(**fields) for part in command]
    result = runner.invoke(app, args)
    event(f"{command[0]} exit {result.exit_code}")
    if result.exit_code == 1:
        event("refused: " + (re.findall(r"MK\d{3}", result.output) or ["no code"])[0])
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, f"meshkit {' '.join(args)} raised {result.exception!r} on:\n{stack!r}\n{outputs!r}"
    assert result.exit_code in (0, 1), (args, result.exit_code, result.output)
    if result.exit_code == 1:
        assert result.output.strip(), f"meshkit {' '.join(args)} refused without a word"
