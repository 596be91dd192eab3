"""meshkit as a library: its wheel, installed into a clean virtualenv at the lowest versions it claims, runs
meshkit's unit tests there and drives examples/consumer (another team's Pulumi program, with its own older
Pulumi pins) through the real engine, canary step included.

The other end of the ranges, the pins of constraints.txt, is the project's own virtualenv: every other test.
"""

from __future__ import annotations

import json
import shutil
import venv
import zipfile
from pathlib import Path

import pytest

from ..scenario_data import REPO
from .engine import PulumiProject, Step, require_toolchain
from .wheel import build_wheel, run, run_unit_tests

pytestmark = pytest.mark.e2e

EXAMPLE = REPO / "examples" / "consumer"
VS = "kubernetes:networking.istio.io/v1:VirtualService"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def lowest_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A clean virtualenv: the example's own requirements, meshkit's wheel, every other package at the lowest
    version meshkit claims (constraints-lowest.txt)."""
    root = tmp_path_factory.mktemp("consumer-venv") / "venv"
    venv.create(root, with_pip=True)
    run([str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(REPO / "constraints-lowest.txt"), "-r", str(EXAMPLE / "requirements.txt"), str(wheel),
         "pytest", "hypothesis", "pytest-timeout"])  # fmt: skip
    return root


def test_the_wheel_carries_the_package_data_and_dependency_ranges(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
    assert "meshkit/py.typed" in names
    assert "meshkit/schemas/istio-1.30.3/customresourcedefinitions.gen.yaml" in names
    assert "meshkit/config/stack-file.schema.json" in names
    assert not any(n.startswith("tests/") for n in names)
    requires = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines() if line.startswith("Requires")]
    runtime = [r for r in requires if "extra ==" not in r]
    assert "pulumi<4,>=3.231.0" in runtime
    # A library's requirements are ranges: no exact pin reaches the programs that import meshkit.
    assert not [r for r in runtime if "==" in r], runtime


def test_the_lowest_versions_are_what_the_virtualenv_got(lowest_venv: Path) -> None:
    frozen = run([str(lowest_venv / "bin" / "python"), "-m", "pip", "freeze"])
    installed = dict(line.lower().replace("-", "_").split("==") for line in frozen.splitlines() if "==" in line)
    lowest = (installed["pulumi"], installed["pulumi_kubernetes"], installed["pydantic"])
    assert lowest == ("3.231.0", "4.18.0", "2.11.0")
    where = run([str(lowest_venv / "bin" / "python"), "-c", "import meshkit; print(meshkit.__file__)"], cwd=Path("/"))
    assert "site-packages" in where


def test_meshkit_unit_tests_pass_at_the_lowest_versions(lowest_venv: Path) -> None:
    run_unit_tests(lowest_venv / "bin" / "python")


def _project(tmp: Path, lowest_venv: Path) -> PulumiProject:
    require_toolchain()
    root = tmp / "checkout-team"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("venv", "rendered", "__pycache__"))
    (root / "venv").symlink_to(lowest_venv)
    (root / ".pulumi-state").mkdir()
    # The example's stack file carries the encryption salt of the empty passphrase (docs/operations/main-job.md).
    project = PulumiProject(root, "dev", passphrase="")
    project.pulumi("stack", "init")
    return project


def _config_map_dependencies(project: PulumiProject) -> list[str]:
    state = json.loads(project.pulumi("stack", "export").stdout)
    (config_map,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith("::checkout-routing")]
    return [urn.rsplit("::", 1)[-1] for urn in config_map.get("dependencies", [])]


def test_the_consumer_example_deploys_and_steps_a_canary_through_the_engine(tmp_path: Path, lowest_venv: Path) -> None:
    project = _project(tmp_path, lowest_venv)
    project.up()
    rendered = project.rendered()
    assert rendered["VirtualService/checkout"]["spec"]["http"][-1]["route"] == [
        {"destination": {"host": "checkout", "subset": "v1"}}
    ]
    # The team's own resource holds meshkit's outputs and was created after the route it names.
    assert rendered["ConfigMap/checkout-routing"]["data"] == {"virtualService": "checkout", "service": "checkout"}
    assert "checkout-virtualservice" in _config_map_dependencies(project)

    # The canary step: a change to the program's own config.
    stack_file = (stack_path := project.root / "Pulumi.dev.yaml").read_text()
    project.pulumi("config", "set", "canaryWeight", "30")
    # The reviewed change is one line of the stack file; nothing else in it was rewritten.
    assert stack_path.read_text() == stack_file.replace("canaryWeight: 0", 'canaryWeight: "30"')
    assert [s for s in project.preview() if s.type != "pulumi:pulumi:Stack"] == [
        Step("create", "kubernetes:apps/v1:Deployment", "checkout-v2-deployment"),
        Step("update", "kubernetes:networking.istio.io/v1:DestinationRule", "checkout-destinationrule"),
        Step("update", VS, "checkout-virtualservice"),
    ]
    project.up()
    route = project.rendered()["VirtualService/checkout"]["spec"]["http"][-1]["route"]
    assert {r["destination"]["subset"]: r["weight"] for r in route} == {"v1": 70, "v2": 30}
    assert project.preview() == []
