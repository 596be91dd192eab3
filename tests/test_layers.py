"""The package's layers: no import runs up them or in a circle, and the pure core never needs Pulumi.

The graph and its rules are in tests/import_graph.py, which also prints them as a report
(``.venv/bin/python -m tests.import_graph``). The last tests check the checker on a small package of its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .import_graph import (
    CIRCLE_RULE,
    CORE_RULE,
    FACADE_RULE,
    LAYER_RULE,
    PURE_CORE,
    REPO,
    Breach,
    Graph,
    When,
    circles,
    pulumi_in_the_core,
    pulumi_on_import,
    unplaced,
    upward_imports,
)


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph(REPO)


def _said(found: list[Breach]) -> str:
    return "\n".join(str(breach) for breach in found)


def test_every_module_belongs_to_a_layer(graph: Graph) -> None:
    assert not unplaced(graph), _said(unplaced(graph))


def test_no_module_imports_a_higher_layer(graph: Graph) -> None:
    assert not upward_imports(graph), _said(upward_imports(graph))


def test_no_modules_import_each_other_in_a_circle(graph: Graph) -> None:
    assert not circles(graph), _said(circles(graph))


def test_the_pure_core_never_imports_pulumi(graph: Graph) -> None:
    assert not pulumi_in_the_core(graph), _said(pulumi_in_the_core(graph))


def test_import_meshkit_reaches_no_pulumi(graph: Graph) -> None:
    assert not pulumi_on_import(graph), _said(pulumi_on_import(graph))


def test_importing_meshkit_and_the_pure_core_loads_no_pulumi(graph: Graph) -> None:
    """What the reading of the source promises, checked by Python itself in a fresh interpreter."""
    core = sorted(name for name in graph.modules if name.startswith(PURE_CORE))
    script = textwrap.dedent("""
        import importlib, sys
        for name in sys.argv[1:]:
            importlib.import_module(name)
        print(sorted({name.partition(".")[0] for name in sys.modules} & {"pulumi", "pulumi_kubernetes"}))
    """)
    modules = ["meshkit", "meshkit.mesh.render", "meshkit.rollout.plan", *core]
    result = subprocess.run(
        [sys.executable, "-c", script, *modules], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing the pure core loaded {result.stdout.strip()}; rule: {CORE_RULE}"


# --- the checker -------------------------------------------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> Graph:
    for name, text in {"meshkit/__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for directory in {path.parent for path in root.rglob("*.py")}:
        (directory / "__init__.py").touch()
    return Graph(root)


def test_an_upward_import_inside_a_function_is_named_with_its_file_and_rule(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "meshkit/mesh/render.py": """
            def render():
                from meshkit.engine.step import run_step
        """,
        "meshkit/engine/step.py": "",
    })  # fmt: skip
    (breach,) = upward_imports(graph)
    assert str(breach).startswith(
        "meshkit/mesh/render.py:3: `from meshkit.engine.step import run_step`: meshkit.mesh.render (layer 3, "
        "mesh) imports meshkit.engine.step (layer 7, engine) in a function; rule: " + LAYER_RULE
    )


def test_a_circle_is_named_with_each_import_on_it(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "meshkit/mesh/render.py": "from . import ingress\n",
        "meshkit/mesh/ingress.py": "if True:\n    from meshkit.mesh.gatewayapi import routes\n",
        "meshkit/mesh/gatewayapi.py": "import meshkit.mesh.render\nroutes = 1\n",
    })  # fmt: skip
    (breach,) = circles(graph)
    assert str(breach) == (
        "meshkit/mesh/gatewayapi.py:1: `import meshkit.mesh.render`: circle of 3 modules (meshkit.mesh.gatewayapi, "
        "meshkit.mesh.ingress, meshkit.mesh.render): meshkit.mesh.gatewayapi (meshkit/mesh/gatewayapi.py:1: `import "
        "meshkit.mesh.render`) → meshkit.mesh.render (meshkit/mesh/render.py:1: `from . import ingress`) → "
        "meshkit.mesh.ingress (meshkit/mesh/ingress.py:2: `from meshkit.mesh.gatewayapi import routes`) → "
        f"meshkit.mesh.gatewayapi; rule: {CIRCLE_RULE}"
    )


def test_pulumi_for_the_type_checker_in_the_core_is_pulumi_in_the_core(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "meshkit/config/stack.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pulumi.runtime\n",
    })  # fmt: skip
    (breach,) = pulumi_in_the_core(graph)
    assert breach.where is not None and breach.where.when is When.TYPE_CHECKING
    assert str(breach).endswith(f"meshkit.config.stack imports pulumi for the type checker; rule: {CORE_RULE}")


def test_import_meshkit_follows_what_runs_at_import_to_pulumi(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "meshkit/__init__.py": """
            from typing import TYPE_CHECKING
            from meshkit.mesh.render import render_stack
            if TYPE_CHECKING:
                from meshkit.pulumi.components import TrafficSplit
        """,
        "meshkit/mesh/render.py": "def render_stack():\n    import meshkit.pulumi.components\n",
        "meshkit/mesh/__init__.py": "from meshkit.pulumi import program\n",
        "meshkit/pulumi/components.py": "import pulumi\n",
        "meshkit/pulumi/program.py": "import pulumi_kubernetes as k8s\n",
    })  # fmt: skip
    (breach,) = pulumi_on_import(graph)
    # Not the deferred import nor the one for the type checker: the package meshkit.mesh's own __init__.
    assert str(breach) == (
        "meshkit/__init__.py:3: `from meshkit.mesh.render import render_stack`: loads pulumi_kubernetes at import: "
        "meshkit (meshkit/__init__.py:3: `from meshkit.mesh.render import render_stack`) → meshkit.mesh "
        "(meshkit/mesh/__init__.py:1: `from meshkit.pulumi import program`) → meshkit.pulumi.program "
        "(meshkit/pulumi/program.py:1: `import pulumi_kubernetes as k8s`) → pulumi_kubernetes; rule: " + FACADE_RULE
    )
