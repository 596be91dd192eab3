"""Differential: the same stack files through ``meshkit check``'s reader and through the real Pulumi engine.

The engine reads a stack file with Go's YAML 1.2 reader and hands the program each config value as text;
meshkit's reader (meshkit/config/engine_yaml.py, meshkit/config/stack_file.py) must arrive at the same
values, so that what ``check`` accepts is what ``up`` deploys. Four views of that:

* a probe program records the ``meshkit:`` config exactly as the program receives it, for a file holding
  every scalar of tests/test_engine_yaml.py's table, and the structures around them, and for the numbers
  written with a leading zero that ``check`` refuses, saying what the engine reads;
* the real program deploys (render mode) a stack full of YAML 1.1 traps: the manifests the provider writes
  and the stack outputs equal what ``meshkit render`` and the summary make of the same file;
* a key written twice: the engine stops, and ``check`` names the same two lines;
* traps where meshkit wants another type: the program and ``check`` refuse with the same codes and paths.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from meshkit.config.stack_file import stack_file_keys
from meshkit.errors import ConfigError
from meshkit.mesh.checks import load_stack_file
from meshkit.mesh.render import render_stack
from meshkit.rollout.step_scope import FINGERPRINTS_OUTPUT, fingerprints
from meshkit.rollout.summary import stack_summary

from ..scenario_data import SCENARIOS
from ..test_engine_yaml import ENGINE_SCALARS, LEADING_ZERO_SCALARS
from .engine import PulumiProject, new_project

pytestmark = pytest.mark.e2e

PROBE = '''"""Probe: the meshkit: config as the program receives it from the engine, for the test to compare."""
from meshkit.config.stack_file import engine_config_keys
from meshkit.pulumi.program import engine_config

# The top-level keys come in Go's map order, which varies from run to run and means nothing.
with open("probe.txt", "w", encoding="utf-8") as out:
    out.write(repr(dict(sorted(engine_config_keys(engine_config()).items()))))
'''


def _check_reading(project: PulumiProject) -> dict[str, object]:
    """The ``meshkit:`` keys of the project's stack file (the engine's salt line included), as ``check``
    reads them."""
    return stack_file_keys(project.stack_file.read_text(encoding="utf-8"), str(project.stack_file))


def _probe(tmp_path: Path, stack_text: str) -> tuple[PulumiProject, str]:
    """The probe program's project with ``stack_text`` as its stack file, and the config it received."""
    project = new_project(tmp_path, "probe")
    (tmp_path / "__main__.py").write_text(PROBE, encoding="utf-8")
    project.use_stack_text(stack_text)
    project.pulumi("preview")
    return project, (tmp_path / "probe.txt").read_text(encoding="utf-8")


def _scalars(table: list[tuple[str, object]], indent: str) -> str:
    return "".join(f"{indent}s{i}: {text}\n" for i, (text, _) in enumerate(table))


def test_every_scalar_reaches_the_program_as_check_reads_it(tmp_path: Path) -> None:
    project, received = _probe(
        tmp_path,
        "config:\n"
        "  meshkit:top-string: on\n  meshkit:top-quoted: '25'\n  meshkit:top-null:\n  meshkit:top-float: 1.0\n"
        "  meshkit:top-octal: 0o17\n  meshkit:top-json: '[1, {\"a\": 2}]'\n  meshkit:top-date: 2001-12-14\n"
        "  services: {bare: key}\n  meshkit:config:compat: form\n"
        "  meshkit:o:\n"
        "    scalars:\n"
        + _scalars(ENGINE_SCALARS, "      ")
        + "    keys: {on: 1, y: 2, 2001-12-14: 3, '1': 4, zeta: 5, alpha: 6, Beta: 7, é: 8}\n"
        "    list: [on, no, 0o17, 1_000, 1:20, ~, [y, n], {off: yes}]\n"
        "    tags: {a: ! 12, b: !!str 12, c: !!float 1, d: !foo bar, e: !!binary aGVsbG8=, f: ! '12'}\n"
        "    base: &base {x: 1, y: 1}\n"
        "    other: &other {y: 2, z: 2}\n"
        "    merged: {<<: [*base, *other], x: 0}\n"
        "    quoted-merge: {'<<': {q: 1, r: 1}, q: 2}\n"
        "    block: |\n      0o17\n"
        "---\n"
        "config:\n  meshkit:second-document: ignored\n",
    )
    # repr: the same values, of the same types, every mapping below the top in the same order
    assert received == repr(dict(sorted(_check_reading(project).items())))


def test_a_number_with_a_leading_zero_reaches_the_program_as_checks_refusal_says(tmp_path: Path) -> None:
    _, received = _probe(tmp_path, "config:\n  meshkit:o:\n" + _scalars(LEADING_ZERO_SCALARS, "    "))
    expected = {f"s{i}": value for i, (_, value) in enumerate(LEADING_ZERO_SCALARS)}
    assert received == repr({"o": dict(sorted(expected.items()))})


TRAPS = """\
# YAML 1.1 booleans, octals, base 60 and dates where meshkit takes strings or numbers: the engine reads them
# as YAML 1.2, and so must `meshkit check`. The versions are declared out of name order.
config:
  meshkit:trustDomain: on
  meshkit:namespaces:
    demo:
      labels: {team: on, tier: y, canary: yes, legacy: no, off: n}
  meshkit:services:
    nginx:
      namespace: demo
      allowFrom:
        - service: sleep
      ports:
        - name: http
          port: 8_080
          targetPort: 0o120
      versions:
        y:
          image: nginx:1.15
          replicas: 0o2
          env: {FLAG: on, MODE: off, SHORT: n, WINDOW: 1:20, SINCE: 2001-12-14, COUNT: "0o17"}
        on:
          image: nginx:1.14
        no:
          image: nginx:1.16
          args: [on, no, y, 1:20]
      traffic:
        weights: {y: 10, on: 60, no: 30}
        routes:
          - name: testers
            match:
              headers: {x-tester: {exact: yes}}
            to: y
    sleep:
      namespace: demo
      ports: [{name: http, port: 80}]
      versions:
        v1: {image: "curlimages/curl:8.11.1", command: [/bin/sleep, 3650d]}
"""


def test_a_stack_of_yaml_1_1_traps_deploys_exactly_what_check_reads(tmp_path: Path) -> None:
    project = new_project(tmp_path, "traps")
    project.use_stack_text(TRAPS)
    stack = load_stack_file(project.stack_file)  # check's reading; it raises if check would refuse
    project.up()
    expected = {f"{m['kind']}/{m['metadata']['name']}": m for m in render_stack(stack)}
    rendered = project.rendered()
    assert sorted(rendered) == sorted(expected)
    for name, manifest in expected.items():
        assert rendered[name] == manifest, name
    # what a YAML 1.1 reading would have changed, or the file's order of versions
    assert rendered["Namespace/demo"]["metadata"]["labels"]["team"] == "on"
    assert [s["name"] for s in rendered["DestinationRule/nginx"]["spec"]["subsets"]] == ["no", "on", "y"]
    env = {
        e["name"]: e["value"]
        for e in rendered["Deployment/nginx-y"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (env["WINDOW"], env["SINCE"]) == ("1:20", "2001-12-14 00:00:00 +0000 UTC")
    outputs = json.loads(project.pulumi("stack", "output", "--json").stdout)
    # The summary, and the fingerprints `meshkit up` compares with the stack file's: the engine's reading
    # and check's agree on every unit.
    render_mode = {"context": None, "kubeconfig": None}
    assert outputs == json.loads(
        json.dumps({**stack_summary(stack), FINGERPRINTS_OUTPUT: fingerprints(stack, render_mode)})
    )


def test_a_key_written_twice_stops_both_at_the_same_lines(tmp_path: Path) -> None:
    project = new_project(tmp_path, "twice")
    text = (SCENARIOS / "A3.yaml").read_text(encoding="utf-8")
    project.use_stack_text(text.replace("      traffic:\n", "      traffic:\n        weights: {v1: 50, v2: 50}\n"))
    preview = project.pulumi("preview", check=False)
    assert preview.returncode != 0
    engine = re.search(
        r'line (\d+): mapping key "weights" already defined at line (\d+)', preview.stdout + preview.stderr
    )
    assert engine, preview.stdout + preview.stderr
    second, first = engine.groups()
    with pytest.raises(
        ConfigError, match=rf"MK005 services\.nginx\.traffic\.weights: .* at lines {first} and {second};"
    ):
        _check_reading(project)


TYPE_TRAPS = """\
config:
  meshkit:maxStep: 1_0
  meshkit:trustDomain: 0o17
  meshkit:namespaces:
    demo:
      labels: {release: 1_000, built: 2001-12-14}
  meshkit:services:
    nginx:
      namespace: demo
      ports: [{name: http, port: 80}]
      versions:
        v1:
          image: nginx:1.15
          replicas: on
          env: {MODE: 0o17, SIZE: 1.0}
"""


def test_type_traps_are_refused_alike_by_the_program_and_check(tmp_path: Path) -> None:
    project = new_project(tmp_path, "types")
    project.use_stack_text(TYPE_TRAPS)
    preview = project.pulumi("preview", check=False)
    assert preview.returncode != 0
    engine = set(re.findall(r"error (MK\d{3}) (\S+): ", preview.stdout + preview.stderr))
    with pytest.raises(ConfigError) as info:
        load_stack_file(project.stack_file)
    check = {(f.code, f.path) for f in info.value.findings}
    assert engine == check
    assert ("MK003", "services.nginx.versions.v1.replicas") in check  # `on`: a string for both, not True


def test_a_config_larger_than_one_environment_string_reaches_the_program(tmp_path: Path) -> None:
    """Linux refuses to start a process with an environment string over 128 KiB; a stack of some 400 services
    has that much config. The language host hands it over in a file (toolchain/language_host.py), and the
    program's own calls of the pulumi CLI (the deployed outputs) start without it."""
    project = new_project(tmp_path, "dev")
    padding = "x" * (200 * 1024)
    text = (SCENARIOS / "A3.yaml").read_text(encoding="utf-8")
    project.use_stack_text(text.replace("config:\n", f"config:\n  notes:padding: {padding}\n", 1))
    project.up()
    rendered = project.rendered()
    assert rendered == {
        f"{m['kind']}/{m['metadata']['name']}": m for m in render_stack(load_stack_file(project.stack_file))
    }
    # The second run reads the first one's outputs with `pulumi stack output`, from inside the program.
    assert project.preview() == []
