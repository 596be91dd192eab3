"""Inputs that once crashed the command line (issue 12): each is now a coded error naming the file and,
where there is one, the config path; exit code 1, no traceback. ``check`` reports a stack file's problems
as findings of its report (stdout, or its JSON); the other commands print the error on stderr.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.mesh.checks import load_stack_file
from meshkit.rollout.summary import stack_summary

from .scenario_data import SCENARIOS

runner = CliRunner()

A3 = (SCENARIOS / "A3.yaml").read_text(encoding="utf-8")

BAD_STACKS: dict[str, tuple[bytes | None, str]] = {
    # name: (file content, or None for a directory; the finding expected)
    "not UTF-8": (
        "config:\n  meshkit:trustDomain: café\n".encode("latin-1"),
        "error MK004 (file): not UTF-8 text: byte 0xe9 at line 2, column 27",
    ),
    "a number as a config key": (b"config: {1: x}\n", "error MK006 1: line 1: the key 1 is not a string"),
    "a null config key": (b"config:\n  ~: x\n", "error MK006 null: line 2: the key null is not a string"),
    "a non-string key deeper": (
        A3.replace("v2: 30", "2: 30").encode(),
        "error MK006 services.nginx.traffic.weights.2: line 28: the key 2 is not a string",
    ),
    "a key written twice": (
        A3.replace("      traffic:\n", "      traffic:\n        weights: {v1: 50, v2: 50}\n").encode(),
        "error MK005 services.nginx.traffic.weights: key 'weights' is written twice in one mapping, at lines 26 and 27",
    ),
    "a directory": (None, "error MK004 (file): is a directory, not a stack file"),
}
COMMANDS = {
    "check": ["check", "{stack}"],
    "plan": ["plan", "{stack}", "--base-file", "{outputs}"],
    "step": ["step", "{stack}", "nginx", "v2=40"],
    "step-rollback": ["step", "{stack}", "nginx", "--rollback", "--deployed", "{outputs}"],
    "render": ["render", "{stack}"],
    "graph": ["graph", "{stack}"],
}


def _outputs(tmp_path: Path, outputs: Any = None) -> Path:
    path = tmp_path / "outputs.json"
    stack = tmp_path / "A3.yaml"
    stack.write_text(A3, encoding="utf-8")
    path.write_text(json.dumps(stack_summary(load_stack_file(stack)) if outputs is None else outputs))
    return path


def _invoke(command: list[str], **fields: Path) -> Any:
    result = runner.invoke(app, [part.format(**fields) for part in command])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("command", COMMANDS, ids=list(COMMANDS))
@pytest.mark.parametrize("bad", BAD_STACKS, ids=list(BAD_STACKS))
def test_a_bad_stack_file_is_a_coded_error_naming_the_file(tmp_path: Path, command: str, bad: str) -> None:
    content, expected = BAD_STACKS[bad]
    stack = tmp_path / "Pulumi.bad.yaml"
    if content is None:
        stack.mkdir()
    else:
        stack.write_bytes(content)
    result = _invoke(COMMANDS[command], stack=stack, outputs=_outputs(tmp_path))
    if command == "check":
        assert expected in result.stdout and str(stack) in result.stdout
    else:
        assert expected in result.stderr and result.stderr.startswith(f"{stack}: ")
    if content is not None and command.startswith("step"):
        assert stack.read_bytes() == content, "nothing written"


def test_check_json_reports_a_bad_file_as_a_finding(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_bytes(BAD_STACKS["a key written twice"][0] or b"")
    report = json.loads(_invoke(["check", "{stack}", "--json"], stack=stack).stdout)
    (finding,) = report["findings"]
    assert (finding["code"], finding["path"]) == ("MK005", "services.nginx.traffic.weights")
    assert "at lines 26 and 27" in finding["message"] and report["file"] == str(stack)


BAD_OUTPUTS: dict[str, tuple[Any, str]] = {
    # name: (JSON value, or bytes as written; config path of the MK008)
    "a list": ([{"services": {}}], "(file)"),
    "a service that is no object": ({"services": {"nginx": 1}}, "services.nginx"),
    "services that are a list": ({"services": ["nginx"]}, "services"),
    "a weight that is no number": (
        {"services": {"nginx": {"namespace": "demo", "weights": {"v1": "most"}}}},
        "services.nginx.weights.v1",
    ),
    "a version without its image": (
        {"services": {"nginx": {"namespace": "demo", "versions": {"v1": {"replicas": 2}}}}},
        "services.nginx.versions.v1.image",
    ),
    "previous weights that are a list": (
        {"services": {"nginx": {"namespace": "demo", "previousWeights": [70, 30]}}},
        "services.nginx.previousWeights",
    ),
    "a previous weight that is no number": (
        {"services": {"nginx": {"namespace": "demo", "previousWeights": {"v1": "most"}}}},
        "services.nginx.previousWeights.v1",
    ),
    "a route without a destination": (
        {"services": {"nginx": {"namespace": "demo", "routes": [{"match": {"uri": {"prefix": "/"}}}]}}},
        "services.nginx.routes[0]",
    ),
    "not JSON": (b"{services:", "(file)"),
    "not UTF-8": (b'{"services": {"caf\xe9": {}}}', "(file)"),
    "nested too deeply": (b"[" * 100_000 + b"]" * 100_000, "(file)"),
}


OUTPUTS_COMMANDS = [
    ["check", "{stack}", "--deployed", "{outputs}"],
    ["plan", "{stack}", "--base-file", "{outputs}"],
    ["step", "{stack}", "nginx", "--rollback", "--deployed", "{outputs}"],
]


@pytest.mark.parametrize("command", OUTPUTS_COMMANDS, ids=["check", "plan", "step-rollback"])
@pytest.mark.parametrize("bad", BAD_OUTPUTS, ids=list(BAD_OUTPUTS))
def test_saved_outputs_of_the_wrong_shape_are_an_mk008(tmp_path: Path, command: list[str], bad: str) -> None:
    value, path = BAD_OUTPUTS[bad]
    outputs = tmp_path / "outputs.json"
    outputs.write_bytes(value if isinstance(value, bytes) else json.dumps(value).encode())
    stack = tmp_path / "Pulumi.A3.yaml"
    stack.write_text(A3, encoding="utf-8")
    result = _invoke(command, stack=stack, outputs=outputs)
    assert result.stderr.startswith(f"{outputs}: ") and f"error MK008 {path}: " in result.stderr
    assert result.stdout == ""
    assert stack.read_text(encoding="utf-8") == A3, "nothing written"


@pytest.mark.parametrize("kind", ["missing", "a directory"])
def test_an_outputs_file_that_cannot_be_read_is_an_mk008(tmp_path: Path, kind: str) -> None:
    outputs = tmp_path / "outputs.json"
    if kind == "a directory":
        outputs.mkdir()
    stack = tmp_path / "Pulumi.A3.yaml"
    stack.write_text(A3, encoding="utf-8")
    result = _invoke(["check", "{stack}", "--deployed", "{outputs}"], stack=stack, outputs=outputs)
    assert "error MK008 (file): cannot read stack outputs" in result.stderr and str(outputs) in result.stderr


def test_outputs_read_back_are_the_summary_they_were_saved_from(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path)
    result = runner.invoke(app, ["plan", str(tmp_path / "A3.yaml"), "--base-file", str(outputs)])
    assert result.exit_code == 0 and "no traffic changes" in result.stdout, result.output


# --- writing -----------------------------------------------------------------------------------------


def test_render_into_a_path_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.A3.yaml"
    stack.write_text(A3, encoding="utf-8")
    (tmp_path / "out").write_text("a file")
    result = _invoke(["render", "{stack}", "-o", "{out}"], stack=stack, out=tmp_path / "out")
    assert result.stderr.startswith(f"{tmp_path / 'out'}: cannot make the directory")


def test_graph_into_a_directory_is_an_error(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.A3.yaml"
    stack.write_text(A3, encoding="utf-8")
    result = _invoke(["graph", "{stack}", "-o", "{out}"], stack=stack, out=tmp_path)
    assert result.stderr.startswith(f"{tmp_path}: cannot write it")


# --- step, read the engine's way ---------------------------------------------------------------------


def test_promote_takes_the_version_declared_last_not_the_last_by_name(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.web.yaml"
    text = A3.replace("        v1:\n", "        v9:\n").replace("        v2:\n", "        v10:\n")
    text = text.replace("v1: 70\n          v2: 30", "v9: 90\n          v10: 10\n        steps: [10, 50, 100]")
    stack.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["step", str(stack), "nginx", "--promote"])
    assert result.exit_code == 0, result.output
    assert "v9: 50\n          v10: 50" in stack.read_text(encoding="utf-8")


def test_step_edits_services_written_without_the_meshkit_prefix(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.bare.yaml"
    stack.write_text(A3.replace("  meshkit:services:", "  services:"), encoding="utf-8")
    result = runner.invoke(app, ["step", str(stack), "nginx", "v2=50"])
    assert result.exit_code == 0, result.output
    assert "v1: 50\n          v2: 50" in stack.read_text(encoding="utf-8")


def test_plan_against_a_revision_whose_file_is_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=tmp_path,
                       check=True, capture_output=True)  # fmt: skip

    shutil.copy(SCENARIOS / "A3.yaml", tmp_path / "Pulumi.dev.yaml")
    (tmp_path / "Pulumi.dev.yaml").write_bytes(b"config:\n  meshkit:trustDomain: caf\xe9\n")
    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "base")
    (tmp_path / "Pulumi.dev.yaml").write_text(A3, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = _invoke(["plan", "{stack}", "--base", "main"], stack=tmp_path / "Pulumi.dev.yaml")
    assert " at " in result.stderr.splitlines()[0] and "error MK004 (file): not UTF-8 text" in result.stderr


def test_plan_of_a_stack_file_in_a_missing_directory(tmp_path: Path) -> None:
    stack = tmp_path / "gone" / "Pulumi.dev.yaml"
    result = _invoke(["plan", "{stack}"], stack=stack)
    assert result.stderr.startswith(f"{stack}: ") and "error MK004 (file): stack file not found" in result.stderr


def test_plan_without_git_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(A3, encoding="utf-8")
    monkeypatch.setenv("PATH", str(tmp_path))
    result = _invoke(["plan", "{stack}"], stack=stack)
    assert result.stderr.startswith("git is not on PATH")
