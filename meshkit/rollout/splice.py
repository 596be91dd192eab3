"""Minimal edits of a YAML text, made where its parser recorded each value, for ``meshkit step``.

A round-trip YAML library writes the whole document out again, and so rewrites lines nobody meant to
change (a flow list of mappings, the indentation of a block list, a document marker). Here the text is
parsed once into nodes that remember where they are written, and each change is a splice of the original
text: every character outside the changed values stays as it was.

Which node a path names follows the Pulumi engine's reading (:mod:`meshkit.config.engine_yaml`): a mapping's own
keys first, then its merges (``<<``) in order, the first one that has a key winning. A node that more than
one path reaches (through an alias or a merge) is *shared*: :meth:`Document.sharing` says so before a
change to it would change the other paths too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
)

from meshkit.config.engine_yaml import event_loader, resolve_plain

Path = tuple[str | int, ...]


class SpliceError(Exception):
    """A change that cannot be written by editing the changed values' own text: the message says why, and
    ``fix`` what to do instead."""

    def __init__(self, reason: str, fix: str = "make this change by hand") -> None:
        super().__init__(reason)
        self.fix = fix


@dataclass(eq=False)
class Node:
    """A scalar, mapping or sequence, and where it is written: from its anchor or tag, if any, to the end
    of its last item (a block collection) or of its closing bracket."""

    kind: Literal["scalar", "mapping", "sequence"]
    start: int
    anchor: str | None
    flow: bool = False
    end: int = 0
    text: str = ""
    """A scalar's value as the parser reads it (quotes and escapes resolved)."""
    style: str | None = None
    """A scalar's style: None for plain, ``'``, ``"``, ``|`` or ``>``."""
    tagged: bool = False
    entries: list[tuple[Slot, Slot]] = field(default_factory=list)
    """A mapping's keys and values as written, merges (``<<``) included."""
    items: list[Slot] = field(default_factory=list)
    """A sequence's items."""


@dataclass(frozen=True)
class Slot:
    """One place a node is written: the node itself, or an alias (``*name``) of it."""

    node: Node
    start: int
    end: int


@dataclass(frozen=True)
class Edge:
    """A path step to a node: ``parent[key]``, written at ``slot`` in ``parent`` or in ``merged``, the
    mapping a merge (``<<``) of ``parent`` takes it from."""

    parent: Node
    key: str | int
    slot: Slot
    merged: Node | None = None


@dataclass(frozen=True)
class Sharing:
    """A node on a path that other paths reach too."""

    path: Path
    """The path of the shared node, on the way to the value to change."""
    others: list[Path]
    """The other paths that reach it (a few, when there are many)."""
    how: Literal["alias", "merge", "anchor"]
    """How the path reaches it: ``alias`` (``*name``), ``merge`` (``<<: *name``), or ``anchor``: it is
    written there, and the others reach it through an alias or a merge."""
    anchor: str | None
    """The anchor the sharing goes through."""


def _key(node: Node) -> str | None:
    """A key as the engine reads it; None for one that is not a string (the config checks refuse those)."""
    if node.kind != "scalar":
        return None
    value = resolve_plain(node.text) if node.style is None and not node.tagged else node.text
    return value if isinstance(value, str) else None


_PROPERTIES = re.compile(r"(?:(?:&[^\s,\[\]{}]+|!<[^>]*>|![^\s,\[\]{}]*)(?:\s|#[^\n]*)*)*")
"""An anchor and a tag (``!!int``, ``!<tag:yaml.org,2002:int>``) before a value, and the space after them."""
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@+-]*(?::[A-Za-z0-9._/@+-]+)*")
"""Strings written unquoted: no space, no indicator; a colon only inside (``nginx:1.15``)."""


def scalar_text(value: Any, flow: bool) -> str:
    """A value written as YAML that the engine reads back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    # Inside a flow collection, older YAML readers stop a plain scalar at a colon.
    if _PLAIN.fullmatch(text) and resolve_plain(text) == text and not (flow and ":" in text):
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def flow_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{scalar_text(k, True)}: {flow_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow_text(v) for v in value) + "]"
    return scalar_text(value, True)


def _block_lines(key: str, value: Any, indent: str, unit: str, flow: bool) -> Iterator[str]:
    """``key: value`` as lines at ``indent``; a non-empty mapping in block style unless ``flow``."""
    if isinstance(value, Mapping) and value and not flow:
        yield f"{indent}{scalar_text(key, False)}:"
        for k, v in value.items():
            yield from _block_lines(k, v, indent + unit, unit, False)
    else:
        shown = flow_text(value) if flow or isinstance(value, Mapping | list) else scalar_text(value, False)
        yield f"{indent}{scalar_text(key, False)}: {shown}"


class Document:
    """The first document of a YAML text, with where each node is written, and the splices made to it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newline = "\r\n" if "\r\n" in text[: text.find("\n") + 1] else "\n"
        self.root = self._parse()
        self._members: dict[int, dict[str, tuple[Slot, Node | None]]] = {}
        self._incoming: dict[int, list[Edge]] | None = None
        self._splices: list[tuple[int, int, int, str]] = []

    # --- reading ---

    def _parse(self) -> Slot:
        """The root of the first document; raises ``yaml.YAMLError`` for text that is not YAML."""
        loader = event_loader(self.text)
        anchors: dict[str, Node] = {}
        open_: list[tuple[Node, list[Slot]]] = []  # the collections being read, with their items so far
        root: Slot | None = None
        try:
            while True:
                event = loader.get_event()
                start, end = event.start_mark.index, event.end_mark.index
                if isinstance(event, CollectionStartEvent):
                    mapping = isinstance(event, MappingStartEvent)
                    node = Node("mapping" if mapping else "sequence", start, event.anchor, flow=bool(event.flow_style))
                    if event.anchor is not None:
                        anchors[event.anchor] = node
                    open_.append((node, []))
                    continue
                if isinstance(event, MappingEndEvent | SequenceEndEvent):
                    node, slots = open_.pop()
                    # A block collection ends with its last item; the parser's mark is where the next
                    # token starts, past comments and blank lines.
                    node.end = end if node.flow or not slots else slots[-1].end
                    if node.kind == "mapping":
                        node.entries = list(zip(slots[::2], slots[1::2], strict=True))
                    else:
                        node.items = slots
                    slot = Slot(node, node.start, node.end)
                elif isinstance(event, ScalarEvent):
                    node = Node("scalar", start, event.anchor, end=end, text=event.value, style=event.style or None)
                    node.tagged = event.tag not in (None, "!")
                    if event.anchor is not None:
                        anchors[event.anchor] = node
                    slot = Slot(node, start, end)
                elif isinstance(event, AliasEvent):
                    # The config checks have found an anchor for every alias.
                    slot = Slot(anchors[str(event.anchor)], start, end)
                elif isinstance(event, DocumentEndEvent) or (isinstance(event, DocumentStartEvent) and root):
                    break  # the engine reads the first document only
                else:
                    continue
                if open_:
                    open_[-1][1].append(slot)
                else:
                    root = slot
        finally:
            loader.dispose()
        if root is None:
            raise SpliceError("the file holds no document")
        return root

    def members(self, node: Node) -> dict[str, tuple[Slot, Node | None]]:
        """A mapping's keys as the engine reads them: each value's slot, and the mapping a merge took it
        from (None for a key the mapping writes itself)."""
        found = self._members.get(id(node))
        if found is None:
            found = {}
            merges = []
            for key_slot, value in node.entries:
                key = _key(key_slot.node)
                if key == "<<":
                    merges.append(value.node)
                elif key is not None:
                    found[key] = (value, None)
            for merge in merges:
                sources = [merge] if merge.kind == "mapping" else [s.node for s in merge.items]
                for source in sources:
                    if source.kind == "mapping":
                        for key, (value, _) in self.members(source).items():
                            found.setdefault(key, (value, source))
            self._members[id(node)] = found
        return found

    def _children(self, node: Node) -> Iterator[Edge]:
        if node.kind == "mapping":
            for key, (slot, merged) in self.members(node).items():
                yield Edge(node, key, slot, merged)
        elif node.kind == "sequence":
            for index, slot in enumerate(node.items):
                yield Edge(node, index, slot)

    def chain(self, path: Path) -> list[Node]:
        """The nodes from the root to the value at ``path``, as far as the path is written."""
        nodes = [self.root.node]
        for step in path:
            edge = next((e for e in self._children(nodes[-1]) if e.key == step), None)
            if edge is None:
                break
            nodes.append(edge.slot.node)
        return nodes

    def incoming(self, node: Node) -> list[Edge]:
        """Every path step to ``node`` from the nodes the root reaches (merge sources themselves are not
        reached: only their keys are, from each mapping that merges them)."""
        if self._incoming is None:
            incoming: dict[int, list[Edge]] = {}
            seen = {id(self.root.node)}
            todo = [self.root.node]
            while todo:
                parent = todo.pop()
                for edge in self._children(parent):
                    child = edge.slot.node
                    incoming.setdefault(id(child), []).append(edge)
                    if id(child) not in seen:
                        seen.add(id(child))
                        todo.append(child)
            self._incoming = incoming
        return self._incoming.get(id(node), [])

    def paths(self, node: Node, limit: int = 6) -> list[Path]:
        """Up to ``limit`` paths from the root to ``node``."""
        found: list[Path] = []
        todo: list[tuple[Node, Path]] = [(node, ())]
        while todo and len(found) < limit:
            at, suffix = todo.pop()
            if at is self.root.node:
                found.append(suffix)
                continue
            todo += [(edge.parent, (edge.key, *suffix)) for edge in reversed(self.incoming(at))]
        return found

    def sharing(self, path: Path) -> Sharing | None:
        """The first node on ``path`` (from the root) that another path reaches too, if any: a change
        below it would change the value at the other paths as well."""
        nodes = self.chain(path)
        for depth, node in enumerate(nodes[1:], 1):
            edges = self.incoming(node)
            if len(edges) < 2:
                continue
            mine = next(e for e in edges if e.parent is nodes[depth - 1] and e.key == path[depth - 1])
            others = [p for p in self.paths(node) if p != path[:depth]]
            if mine.merged is not None:
                return Sharing(path[:depth], others, "merge", mine.merged.anchor)
            if mine.slot.start != node.start:
                return Sharing(path[:depth], others, "alias", node.anchor)
            merged = (e.merged.anchor for e in edges if e.merged is not None and e.merged.anchor)
            return Sharing(path[:depth], others, "anchor", node.anchor or next(merged, None))
        return None

    # --- positions ---

    def _line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    def _next_line(self, pos: int) -> int:
        """Where the line after the one holding ``pos`` starts (the text's end, when that is the last)."""
        if pos > 0 and self.text[pos - 1] == "\n":
            return pos  # a block scalar ends with its line break
        end = self.text.find("\n", pos)
        return len(self.text) if end < 0 else end + 1

    def _column(self, pos: int) -> int:
        return pos - self._line_start(pos)

    def _own_line(self, pos: int) -> bool:
        """Whether only spaces stand before ``pos`` on its line (not a list's ``- ``)."""
        return not self.text[self._line_start(pos) : pos].strip()

    # --- changes ---

    def _splice(self, start: int, end: int, new: str) -> None:
        # Kept in the order made: two insertions at one place come out in that order.
        self._splices.append((start, end, len(self._splices), new))

    def replace(self, node: Node, value: Any, flow: bool) -> None:
        """Write ``value`` (a scalar) in place of the scalar ``node``, keeping its anchor and tag."""
        written = self.text[node.start : node.end]
        if node.kind != "scalar" or node.style not in (None, "'", '"') or "\n" in written:
            raise SpliceError("it is not written as a one-line scalar", "write it on one line, then run the step again")
        properties = _PROPERTIES.match(written)  # a scalar's own text starts with neither & nor !
        self._splice(node.start + (properties.end() if properties else 0), node.end, scalar_text(value, flow))

    def add(self, nodes: list[Node], key: str, value: Any, first: bool = False) -> None:
        """Add ``key: value`` to the mapping ``nodes[-1]`` (``nodes``: its chain from the root), last or,
        with ``first``, before its first key; a mapping value takes the style of the mapping's last value."""
        mapping = nodes[-1]
        if mapping.kind != "mapping":
            raise SpliceError("it is not a mapping")
        entries = mapping.entries
        if mapping.flow:
            pair = f"{scalar_text(key, True)}: {flow_text(value)}"
            if not entries:
                self._splice(bracket := self.text.index("{", mapping.start) + 1, bracket, pair)
            elif first:
                self._splice(entries[0][0].start, entries[0][0].start, pair + ", ")
            else:
                self._splice(entries[-1][1].end, entries[-1][1].end, ", " + pair)
            return
        first_key = entries[0][0].start
        indent = self._column(first_key)
        last_key, last_value = entries[-1]
        last = last_value.node
        flow = last.kind != "scalar" and last.flow
        # Nested keys indented as the last key's own are, else as this mapping's are below its parent's.
        if last.kind == "mapping" and not flow and last_value.start == last.start:
            step = self._column(last.entries[0][0].start) - self._column(last_key.start)
        else:
            parent = nodes[-2] if len(nodes) > 1 else None
            outer = self._column(parent.entries[0][0].start) if parent and parent.kind == "mapping" else -1
            step = indent - outer if parent and not parent.flow and 0 <= outer < indent else 2
        lines = list(_block_lines(key, value, " " * indent, " " * max(step, 1), flow))
        new = "".join(line + self.newline for line in lines)
        if first and self._own_line(first_key):
            self._splice(self._line_start(first_key), self._line_start(first_key), new)
            return
        at = self._next_line(entries[-1][1].end)
        if at == len(self.text) and not self.text.endswith("\n"):
            new = self.newline + new[: -len(self.newline)]
        self._splice(at, at, new)

    def delete(self, mapping: Node, key: str) -> None:
        """Remove ``key`` and its value, as the mapping writes them, from ``mapping``."""
        entries = mapping.entries
        index = next((i for i, (k, _) in enumerate(entries) if _key(k.node) == key), None)
        if index is None:
            raise SpliceError(
                "it comes from a merge (<<), not from the mapping itself",
                "write the merged keys out in the mapping itself, then run the step again",
            )
        if len(entries) == 1:
            raise SpliceError("it is the only key of its mapping")
        key_slot, value = entries[index]
        if mapping.flow:
            if index + 1 < len(entries):
                self._splice(key_slot.start, entries[index + 1][0].start, "")
            else:
                self._splice(entries[index - 1][1].end, value.end, "")
        elif self._own_line(key_slot.start):
            self._splice(self._line_start(key_slot.start), self._next_line(value.end), "")
        else:
            raise SpliceError("it is written on the line of a list item (- )", "put it on a line of its own")

    def result(self) -> str:
        """The text with every change made."""
        out, at = [], 0
        for start, end, _, new in sorted(self._splices):
            if start < at:
                raise SpliceError("two changes overlap")
            out += [self.text[at:start], new]
            at = end
        return "".join(out) + self.text[at:]
