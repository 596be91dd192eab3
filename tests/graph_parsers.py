"""The real parsers of what `meshkit graph` writes: Graphviz's `dot`, and Mermaid's own parser (its npm package
under Node.js, toolchain/mermaid/parse.mjs, installed by toolchain/install-mermaid.sh). Either missing is a
test failure that says how to install it, never a skip.

Both read a diagram into the same :class:`Diagram`, with each label as a reader sees it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from .scenario_data import REPO

INSTALL_SCRIPT = REPO / "toolchain" / "install-mermaid.sh"
PARSE_SCRIPT = REPO / "toolchain" / "mermaid" / "parse.mjs"


class ParseError(AssertionError):
    """The parser refused the diagram."""


@dataclass(frozen=True)
class Diagram:
    """Labels are as shown, their lines joined by newlines."""

    nodes: dict[str, str]
    """Label by node id."""
    clusters: dict[str, tuple[str, frozenset[str]]]
    """Label and the ids of the nodes in it, by subgraph id."""
    edges: list[tuple[str, str, str]]
    """Source id, target id, label."""


def _tool(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH: {install}", pytrace=False)
    return path


def parse_dot(text: str) -> Diagram:
    """``dot -Tjson``: Graphviz parses and lays out the graph; the text it draws is the label as shown."""
    dot = _tool("dot", "run toolchain/system-packages.sh (Debian: apt-get install graphviz)")
    result = subprocess.run([dot, "-Tjson"], input=text, capture_output=True, encoding="utf-8", check=False, timeout=60)
    if result.returncode != 0:
        raise ParseError(f"dot refused it: {result.stderr.strip()}\n{text}")
    graph = json.loads(result.stdout)
    objects = graph.get("objects") or []
    subgraphs, nodes = objects[: graph["_subgraph_cnt"]], objects[graph["_subgraph_cnt"] :]
    names = {node["_gvid"]: node["name"] for node in nodes}

    def shown(drawn: dict[str, Any]) -> str:
        return "\n".join(op["text"] for op in drawn.get("_ldraw_") or [] if op["op"] == "T")

    return Diagram(
        nodes={node["name"]: shown(node) for node in nodes},
        clusters={sub["name"]: (shown(sub), frozenset(names[n] for n in sub.get("nodes") or [])) for sub in subgraphs},
        edges=[(names[edge["tail"]], names[edge["head"]], shown(edge)) for edge in graph.get("edges") or []],
    )


class Mermaid:
    """One Node.js process running Mermaid's parser, for as many diagrams as the tests give it."""

    def __init__(self) -> None:
        node = _tool("node", "run toolchain/system-packages.sh (Debian: apt-get install nodejs npm)")
        found = subprocess.run([str(INSTALL_SCRIPT), "--cached"], capture_output=True, text=True, check=False)
        if found.returncode != 0:
            pytest.fail(f"Mermaid's parser is not installed: run {INSTALL_SCRIPT.relative_to(REPO)}", pytrace=False)
        installed = found.stdout.strip().splitlines()[-1]
        self._process = subprocess.Popen(
            [node, str(PARSE_SCRIPT), installed], stdin=subprocess.PIPE, stdout=subprocess.PIPE, encoding="utf-8"
        )

    def parse(self, text: str) -> Diagram:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(text) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"Mermaid's parser stopped (exit {self._process.wait()})")
        read = json.loads(line)
        if "error" in read:
            raise ParseError(f"Mermaid refused it: {read['error']}\n{text}")
        return Diagram(
            nodes={node["id"]: node["label"] for node in read["nodes"]},
            clusters={sub["id"]: (sub["label"], frozenset(sub["nodes"])) for sub in read["subgraphs"]},
            edges=[(edge["source"], edge["target"], edge["label"]) for edge in read["edges"]],
        )

    def close(self) -> None:
        self._process.communicate(timeout=30)
