"""The import graph of the meshkit package, read from its source with ``ast``, and the rules the layers keep.

tests/test_layers.py asserts the rules. ``.venv/bin/python -m tests.import_graph [ROOT]`` prints the layer
report of the tree at ROOT (default: this checkout): modules and lines per layer, the largest module, circles,
upward imports and Pulumi in the pure core; it exits 1 when a rule is broken.

Every ``import`` counts, wherever it stands: at module level, inside a function (a deferred import still
couples the two modules, and is the usual way of hiding a circle), and under ``if TYPE_CHECKING:`` (the
type checker needs the imported module). Only the check of what ``import meshkit`` loads follows the
module-level imports alone, as Python does.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "meshkit"
PULUMI_SDK = frozenset({"pulumi", "pulumi_kubernetes"})


@dataclass(frozen=True)
class Layer:
    names: tuple[str, ...]
    """Modules or packages (a package stands for every module below it; the root package only for its
    ``__init__``, so that a new top-level module belongs to no layer until it is given one)."""
    label: str
    role: str


LAYERS = (
    Layer(("meshkit.errors", "meshkit.gcpause"), "errors, gcpause", "the shared base"),
    Layer(("meshkit.config",), "config", "the user's model and the stack-file reading"),
    Layer(("meshkit.mesh",), "mesh", "pure rendering and checks"),
    Layer(("meshkit.rollout",), "rollout", "pure: a step between two deployments"),
    Layer(("meshkit.pulumi",), "pulumi", "the Pulumi shell: components and program"),
    Layer(("meshkit.metrics",), "metrics", "Prometheus queries for a canary gate"),
    Layer(("meshkit.engine",), "engine", "running pulumi and kubectl"),
    Layer(("meshkit.cli",), "cli", "the command line"),
    # Nothing inside the layers may import these: `from meshkit import X` in a layer would run the
    # whole public surface first, and the command line's entry point is only ever run.
    Layer(("meshkit", "meshkit.__main__"), "the entry points", "the public names and `python -m meshkit`"),
)
PULUMI_LAYER = next(rank for rank, layer in enumerate(LAYERS) if "meshkit.pulumi" in layer.names)
PURE_CORE = tuple(name for layer in LAYERS[:PULUMI_LAYER] for name in layer.names)

LAYER_RULE = f"a module imports only its own layer and those below it ({' < '.join(layer.label for layer in LAYERS)})"
PLACED_RULE = "every module of the package belongs to a layer (LAYERS in tests/import_graph.py)"
CIRCLE_RULE = "no module imports, through others or inside a function, a module that imports it back"
CORE_RULE = (
    f"the pure core ({', '.join(layer.label for layer in LAYERS[:PULUMI_LAYER])}) never imports "
    "pulumi or pulumi_kubernetes: it runs and is tested without the Pulumi runtime"
)
FACADE_RULE = (
    "`import meshkit` loads no Pulumi: the public names of meshkit.pulumi are imported on first use "
    "(meshkit.__getattr__)"
)


class When(StrEnum):
    """When an import runs."""

    EAGER = "at import"
    DEFERRED = "in a function"
    TYPE_CHECKING = "for the type checker"


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module."""
    file: str
    """Its file, relative to the root."""
    line: int
    statement: str
    target: str
    """A module of the package, or the top-level name of another package (``pulumi``)."""
    when: When

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: `{self.statement}`"


@dataclass(frozen=True)
class Breach:
    rule: str
    where: Import | None
    what: str

    def __str__(self) -> str:
        return f"{self.where or ''}{': ' if self.where else ''}{self.what}; rule: {self.rule}"


@dataclass(frozen=True)
class Module:
    name: str
    file: str
    lines: int


class Graph:
    """The modules of the package below ``root`` and every import they make."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: dict[str, Module] = {}
        trees: dict[str, ast.Module] = {}
        for path in sorted((root / PACKAGE).rglob("*.py")):
            relative = path.relative_to(root)
            parts = relative.with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            text = path.read_text(encoding="utf-8")
            self.modules[name] = Module(name, str(relative), len(text.splitlines()))
            trees[name] = ast.parse(text, str(relative))
        self.imports = [found for name, tree in trees.items() for found in self._imports(name, tree)]

    def _imports(self, source: str, tree: ast.Module) -> Iterator[Import]:
        module = self.modules[source]
        package = source if module.file.endswith("__init__.py") else source.rpartition(".")[0]
        for node, when in _import_nodes(tree.body, When.EAGER):
            statement = ast.unparse(node)
            if isinstance(node, ast.Import):
                targets = [self._target(alias.name) for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from meshkit.rollout import edit` imports the module meshkit.rollout.edit.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in self.modules else self._target(base)
                    for alias in node.names
                ]
            for target in dict.fromkeys(targets):
                yield Import(source, module.file, node.lineno, statement, target, when)

    def _target(self, dotted: str) -> str:
        """The module of the package ``dotted`` names (its longest known prefix), or its top-level package."""
        if dotted != PACKAGE and not dotted.startswith(PACKAGE + "."):
            return dotted.partition(".")[0]
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in self.modules:
                return ".".join(parts[:end])
        return dotted

    def internal(self) -> list[Import]:
        return [i for i in self.imports if i.target in self.modules and i.target != i.source]


def _import_nodes(body: Iterable[ast.stmt], when: When) -> Iterator[tuple[ast.Import | ast.ImportFrom, When]]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, when
            continue
        inner = when
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and when is When.EAGER:
            inner = When.DEFERRED
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.body, When.TYPE_CHECKING if when is When.EAGER else when)
            yield from _import_nodes(node.orelse, when)
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _import_nodes([child], inner)
            else:
                # Statements nested in handlers, match cases and comprehensions' bodies.
                yield from _import_nodes(_statements_in(child), inner)


def _statements_in(node: ast.AST) -> list[ast.stmt]:
    return [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def layer_of(module: str) -> int | None:
    """The rank of ``module``'s layer (0 the lowest), or None when it belongs to none."""
    best: tuple[int, int] | None = None  # (length of the matching name, rank): the longest name wins
    for rank, layer in enumerate(LAYERS):
        for name in layer.names:
            below = name != PACKAGE and module.startswith(name + ".")
            if (module == name or below) and (best is None or len(name) > best[0]):
                best = (len(name), rank)
    return best[1] if best else None


def _layer_label(rank: int) -> str:
    return f"layer {rank + 1}, {LAYERS[rank].label}"


def unplaced(graph: Graph) -> list[Breach]:
    return [
        Breach(PLACED_RULE, None, f"{module.file} ({module.name}) is in no layer")
        for module in graph.modules.values()
        if layer_of(module.name) is None
    ]


def upward_imports(graph: Graph) -> list[Breach]:
    found = []
    for imported in graph.internal():
        source, target = layer_of(imported.source), layer_of(imported.target)
        if source is not None and target is not None and target > source:
            found.append(Breach(
                LAYER_RULE,
                imported,
                f"{imported.source} ({_layer_label(source)}) imports {imported.target} ({_layer_label(target)}) "
                f"{imported.when}",
            ))  # fmt: skip
    return found


def strongly_connected(nodes: Iterable[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(edges.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return sorted(components)


def circles(graph: Graph) -> list[Breach]:
    edges: dict[str, set[str]] = {}
    for imported in graph.internal():
        edges.setdefault(imported.source, set()).add(imported.target)
    found = []
    for component in strongly_connected(graph.modules, edges):
        if len(component) > 1:
            path = _circle_through(component, graph.internal())
            found.append(Breach(
                CIRCLE_RULE,
                path[0],
                f"circle of {len(component)} modules ({', '.join(component)}): "
                + " → ".join(f"{step.source} ({step})" for step in path) + f" → {path[0].source}",
            ))  # fmt: skip
    return found


def _circle_through(component: Sequence[str], imports: list[Import]) -> list[Import]:
    """The shortest chain of imports from the component's first module back to it, inside the component."""
    members = set(component)
    by_source: dict[str, list[Import]] = {}
    for imported in imports:
        if imported.source in members and imported.target in members:
            by_source.setdefault(imported.source, []).append(imported)
    start = component[0]
    queue: deque[tuple[str, list[Import]]] = deque([(start, [])])
    seen = {start}
    while queue:
        node, path = queue.popleft()
        for step in by_source.get(node, []):
            if step.target == start:
                return [*path, step]
            if step.target not in seen:
                seen.add(step.target)
                queue.append((step.target, [*path, step]))
    raise AssertionError(f"no circle through {start}")  # a strongly connected component always has one


def pulumi_in_the_core(graph: Graph) -> list[Breach]:
    return [
        Breach(CORE_RULE, imported, f"{imported.source} imports {imported.target} {imported.when}")
        for imported in graph.imports
        if imported.target in PULUMI_SDK and _in_the_pure_core(imported.source)
    ]


def _in_the_pure_core(module: str) -> bool:
    rank = layer_of(module)
    return rank is not None and rank < PULUMI_LAYER


def pulumi_on_import(graph: Graph) -> list[Breach]:
    """What ``import meshkit`` loads, following the imports that run at import time (and the ``__init__`` of
    each package on the way, which Python runs first): a chain to the Pulumi SDK, if any."""
    eager: dict[str, list[Import]] = {}
    for imported in graph.imports:
        if imported.when is When.EAGER:
            eager.setdefault(imported.source, []).append(imported)
    chains: dict[str, list[Import]] = {PACKAGE: []}
    queue = deque([PACKAGE])
    while queue:
        node = queue.popleft()
        steps = list(eager.get(node, []))
        parent = node.rpartition(".")[0]
        if parent and parent not in chains and parent in graph.modules:
            chains[parent] = chains[node]
            queue.append(parent)
        for step in steps:
            if step.target in PULUMI_SDK:
                chain = [*chains[node], step]
                return [Breach(
                    FACADE_RULE,
                    chain[0],
                    "loads " + step.target + " at import: "
                    + " → ".join(f"{link.source} ({link})" for link in chain) + f" → {step.target}",
                )]  # fmt: skip
            if step.target in graph.modules and step.target not in chains:
                chains[step.target] = [*chains[node], step]
                queue.append(step.target)
    return []


def breaches(graph: Graph) -> list[Breach]:
    return (
        unplaced(graph) + upward_imports(graph) + circles(graph) + pulumi_in_the_core(graph) + pulumi_on_import(graph)
    )


def report(graph: Graph) -> str:
    lines = [f"meshkit import graph of {graph.root}", ""]
    rows = [("layer", "modules", "lines", "largest module")]
    for rank, layer in enumerate(LAYERS):
        members = [module for module in graph.modules.values() if layer_of(module.name) == rank]
        if not members:
            absent = ", ".join(name.replace(".", "/") + "/" for name in layer.names)
            rows.append((f"{rank + 1} {absent} (not present)", "0", "0", ""))
            continue
        largest = max(members, key=lambda module: module.lines)
        where = ", ".join(_where(name, graph) for name in layer.names if _where(name, graph))
        rows.append((f"{rank + 1} {where}", str(len(members)), str(sum(m.lines for m in members)),
                     f"{largest.file} ({largest.lines})"))  # fmt: skip
    outside = [module for module in graph.modules.values() if layer_of(module.name) is None]
    if outside:
        rows.append(("(in no layer)", str(len(outside)), str(sum(m.lines for m in outside)), ""))
    modules = list(graph.modules.values())
    rows.append(("total", str(len(modules)), str(sum(m.lines for m in modules)), ""))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}".rstrip())
    largest = max(modules, key=lambda module: module.lines)
    lines += ["", f"largest module: {largest.file} ({largest.lines} lines)"]
    for title, found in (
        ("modules in no layer", unplaced(graph)),
        ("upward imports", upward_imports(graph)),
        ("circles", circles(graph)),
        ("pulumi in the pure core", pulumi_in_the_core(graph)),
        ("pulumi on `import meshkit`", pulumi_on_import(graph)),
    ):
        lines.append(f"{title}: {len(found) or 'none'}")
        lines += [f"  {breach.where or ''}{': ' if breach.where else ''}{breach.what}" for breach in found]
    return "\n".join(lines) + "\n"


def _where(name: str, graph: Graph) -> str:
    """How a layer's module or package shows in the report: its path, when it exists."""
    module = graph.modules.get(name)
    if module is None:
        return ""
    return module.file.removesuffix("__init__.py") if name != PACKAGE else module.file


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    root = Path(arguments[0]) if arguments else REPO
    if not (root / PACKAGE / "__init__.py").is_file():
        print(f"{root}: no {PACKAGE}/__init__.py here; give the directory that holds the package", file=sys.stderr)
        return 2
    graph = Graph(root)
    sys.stdout.write(report(graph))
    return 1 if breaches(graph) else 0


if __name__ == "__main__":
    raise SystemExit(main())
