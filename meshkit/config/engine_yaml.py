"""YAML as the Pulumi engine reads a stack file, so that ``meshkit check`` and ``pulumi up`` see one config.

The engine (Go, ``gopkg.in/yaml.v3``) reads YAML 1.2 core scalars with a few extensions of its own, then
hands each config value to the program as JSON. This module reproduces that reading on libyaml's event
stream (PyYAML's C parser, or its Python parser where the C one is missing), so it keeps libyaml's speed:

* ``on``, ``no``, ``y``, ``yes``, ``off`` are strings; only ``true``/``True``/``TRUE`` and the ``false``
  spellings are booleans; ``~``, ``null``, ``Null``, ``NULL`` and an empty value are null.
* Integers as Go's ``strconv.ParseInt(s, 0, 64)`` reads them once every ``_`` is removed: ``1_000`` is
  1000, ``0o17``, ``017`` and ``0x0F`` are 15, ``0b1111`` too; ``12:30`` is a string (no YAML 1.1
  base 60). Floats as ``1.5``, ``.5``, ``1e3``.
* A plain ``2001-12-14`` (or ``2001-12-14T21:59:43Z``) is a timestamp, which the engine passes on as Go
  prints it: ``2001-12-14 00:00:00 +0000 UTC``.
* Then JSON: every mapping's keys sorted, a float with an integral value becomes an integer (``1.0`` is
  ``1``), an integer beyond 64 bits becomes a float.
* Merge keys (``<<``, quoted or not) and anchors work as in the engine; only the first document counts.

What the engine refuses is reported as a :class:`Problem` with its line: a key written twice in one
mapping (``mapping key "weights" already defined at line 12``), a recursive or unknown alias, excessive
aliasing, nesting deeper than 10000 levels, a ``%YAML`` version other than 1.1, a tag that does not fit
its value (``!!int abc``), ``.inf``/``.nan`` in config (the engine cannot write them as JSON). Two more
are refused in config although the engine goes on, because what it passes on is not what was written: a
key that is not a string (the engine turns ``1:`` into ``"1"`` and ``~:`` into ``"<nil>"``), and a
timestamp with a UTC offset (its text depends on the time zone of the machine running ``pulumi``).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import codecs
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

Path = tuple[str | int, ...]

MAX_DEPTH = 10000
"""yaml.v3's limit on nesting (``exceeded max depth of 10000``)."""


@dataclass(frozen=True)
class Problem:
    """Something the engine refuses, or would read differently from meshkit, at a document path."""

    code: str
    path: Path
    message: str
    fix: str
    carried: bool = False
    """A problem only where the engine passes values on (the config subtree), harmless elsewhere."""


@dataclass
class Reading:
    """The first document of a YAML text as the engine reads it (None when there is none), and what the
    engine would refuse in it."""

    document: Any
    problems: list[Problem] = field(default_factory=list)


# --- scalars -----------------------------------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP, _BINARY, _MERGE = (
    _TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp", "binary", "merge")
)
_RESOLVED_TAGS = {_INT: "int", _FLOAT: "float", _BOOL: "bool", _NULL: "null", _TIMESTAMP: "timestamp"}

# yaml.v3's resolve table: the first character says what a plain scalar may be.
_HINT = {**dict.fromkeys("+-", "S"), **dict.fromkeys("0123456789", "D"), **dict.fromkeys("yYnNtTfFoO~", "M")}
_HINT["."] = "."
_NAMED: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
# Go's ParseInt(s, 0, 64) syntax, once underscores are gone; a lone leading 0 means octal.
_GO_INT = re.compile(r"([+-]?)(0[bB][01]+|0[oO][0-7]+|0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_GO_BASES = {"b": 2, "B": 2, "o": 8, "O": 8, "x": 16, "X": 16}
# A number written with a leading zero (010, 08, 0_7, -012): the engine reads octal where it can.
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
# The layouts yaml.v3 tries: "2006-1-2T15:4:5.999999999Z07:00" (T or t), "2006-1-2 15:4:5.999999999",
# "2006-1-2".
_DATE = r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
_TIME = r"([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,]([0-9]+))?"
_TS_ZONED = re.compile(_DATE + "[Tt]" + _TIME + r"(Z|[+-][0-9]{2}:[0-9]{2})")
_TS_LOCAL = re.compile(_DATE + " " + _TIME)
_TS_DATE = re.compile(_DATE)
_INT64 = 1 << 63
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _OffsetTime(str):
    """A timestamp with a UTC offset: the engine's text for it depends on its machine's time zone."""


def _go_time(groups: tuple[str | None, ...]) -> str | None:
    """Go's ``time.Time.String()`` of a parsed UTC timestamp, or None when ``time.Parse`` refuses it."""
    year, month, day = (int(g or 0) for g in groups[:3])
    hour, minute, second = (int(g or 0) for g in groups[3:6])
    if not 1 <= month <= 12:
        return None
    days = 29 if month == 2 and calendar.isleap(year) else _DAYS[month - 1]
    if not 1 <= day <= days or hour >= 24 or minute >= 60 or second >= 60:
        return None
    text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
    nanos = (groups[6] or "")[:9].ljust(9, "0")
    if nanos.strip("0"):
        text += "." + nanos.rstrip("0")
    return text + " +0000 UTC"


def _timestamp(text: str) -> str | None:
    """What the engine passes on for a plain scalar that yaml.v3 reads as a timestamp, or None."""
    if len(text) < 8 or text[4] != "-" or not text[:4].isascii() or not text[:4].isdigit():
        return None
    if match := _TS_DATE.fullmatch(text):
        return _go_time((*match.groups(), None, None, None, None))
    if match := _TS_LOCAL.fullmatch(text):
        return _go_time(match.groups())
    if match := _TS_ZONED.fullmatch(text):
        utc = _go_time(match.groups()[:7])
        zone = match.group(8)
        if utc is None or zone == "Z":
            return utc
        if int(zone[1:3]) > 24 or int(zone[4:6]) > 60:
            return None
        return _OffsetTime(text)
    return None


def json_number(value: float) -> int | float:
    """A number as the program reads it back from the engine's JSON: Go writes an integral float below
    1e21 without a decimal point (``1.0`` → ``1``), and an integer beyond 64 bits as a float."""
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return value
        value = float(value)
    if value.is_integer() and abs(value) < 1e21:
        return int(Decimal(repr(value)))  # Go's shortest digits, then zeros: 1.2345678901234568e+20
    return value


def _number(text: str) -> int | float | None:
    """yaml.v3's reading of a plain scalar starting with a digit or sign, as a number, or None (a string)."""
    plain = text.replace("_", "")
    if match := _GO_INT.fullmatch(plain):
        sign, digits = match.groups()
        if len(digits) > 2 and digits[1] in _GO_BASES:
            base, digits = _GO_BASES[digits[1]], digits[2:]
        else:
            base = 8 if len(digits) > 1 and digits[0] == "0" else 10
        digits = digits.lstrip("0") or "0"
        # 64 binary digits at most fit in 64 bits: longer is out of range (and Python's int() has a limit)
        number = int(digits, base) if len(digits) <= 64 else 1 << 64
        number = -number if sign == "-" else number
        if -_INT64 <= number < _INT64 or (not sign and number < 1 << 64):
            return number
        if not _YAML_FLOAT.fullmatch(plain):
            return None  # out of range for ParseInt and ParseUint, and not a float either: a string
    if _YAML_FLOAT.fullmatch(plain):
        number_f = float(plain)
        return number_f if math.isfinite(number_f) else None  # Go: ErrRange, so a string
    return None


def _resolve(text: str) -> tuple[str, Any]:
    """yaml.v3's resolution of a scalar's text: its kind (``str``, ``null``, ``bool``, ``int``, ``float``,
    ``timestamp``) and value, before the JSON that carries it to the program."""
    hint = _HINT.get(text[:1]) if text else "M"
    if hint is None:
        return "str", text
    if text in _NAMED:
        value = _NAMED[text]
        return ("null" if value is None else "bool" if isinstance(value, bool) else "float"), value
    if hint == "M":
        return "str", text
    if hint == ".":
        if _DOT_FLOAT.fullmatch(text) and math.isfinite(float(text)):
            return "float", float(text)
        return "str", text
    stamp = _timestamp(text)
    if stamp is not None:
        return "timestamp", stamp
    number = _number(text)
    if number is None:
        return "str", text
    return ("float" if isinstance(number, float) else "int"), number


def resolve_plain(text: str) -> Any:
    """A plain (unquoted, untagged) scalar as the program receives it from the engine."""
    kind, value = _resolve(text)
    return json_number(value) if kind in ("int", "float") and math.isfinite(value) else value


# --- the document ------------------------------------------------------------------------------------

_NO_KEY = object()
_MERGE_KEY = object()
_SKIP = object()


class _Frame:
    """A sequence or mapping being read. Its path is worked out only when a problem needs it."""

    __slots__ = ("anchor", "items", "key", "key_line", "keys", "line", "merges", "parent", "size", "slot", "top")

    def __init__(self, parent: _Frame | None, anchor: str | None, line: int, mapping: bool) -> None:
        self.parent = parent
        self.slot: str | int | None = None if parent is None else parent.next_slot()
        # the key at the top of the document this frame sits under (a stack file's "config")
        self.top: str | int | None = None
        if parent is not None:
            self.top = parent.top if parent.parent is not None else self.slot
        self.anchor = anchor
        self.line = line
        self.size = 1
        self.items: Any = {} if mapping else []
        self.key: Any = _NO_KEY  # a mapping's key waiting for its value
        self.key_line = 0
        self.keys: dict[str, int] | None = {} if mapping else None  # key → line of its first writing
        self.merges: list[tuple[Any, int]] = []

    @property
    def path(self) -> Path:
        parts: list[str | int] = []
        frame: _Frame | None = self
        while frame is not None and frame.parent is not None:
            assert frame.slot is not None
            parts.append(frame.slot)
            frame = frame.parent
        return tuple(reversed(parts))

    def next_slot(self) -> str | int:
        """Where the next value goes: an index, or the key waiting for it."""
        if self.keys is None:
            return len(self.items)
        key = self.key
        return "(key)" if key is _NO_KEY or key is _SKIP else "<<" if key is _MERGE_KEY else str(key)

    def next_top(self) -> str | int | None:
        return self.top if self.parent is not None else self.next_slot()


def _line(event: Any) -> int:
    """The 1-based line an event starts on."""
    return int(event.start_mark.line) + 1


def _alias_ratio(decoded: int) -> float:
    """yaml.v3's allowance of values expanded from aliases, against all values decoded."""
    if decoded <= 400_000:
        return 0.99
    if decoded >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (decoded - 400_000) / 3_600_000


class _Reader:
    def __init__(self, carried_under: str | None, sort_keys: bool) -> None:
        self.carried_under = carried_under
        self.sort_keys = sort_keys
        self.problems: list[Problem] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: list[tuple[str, list[Problem]]] = []
        self.anchor_problems: dict[str, list[Problem]] = {}
        self.decoded = 0
        self.aliased = 0
        self.excessive = False

    def problem(self, code: str, path: Path, message: str, fix: str, carried: bool = False) -> None:
        found = Problem(code, path, message, fix, carried)
        self.problems.append(found)
        for _, inside in self.open_anchors:
            inside.append(found)

    def carried(self, path: Path) -> bool:
        return bool(path) and path[0] == self.carried_under

    @staticmethod
    def where(frame: _Frame | None, is_key: bool) -> Path:
        """The path of the value (or key) read next in ``frame``."""
        if frame is None:
            return ()
        return frame.path if is_key else (*frame.path, frame.next_slot())

    # --- scalars ---

    def scalar(self, event: ScalarEvent, frame: _Frame | None, is_key: bool) -> Any:
        tag, text = event.tag, event.value
        if tag is None or tag == "!":
            # A plain scalar (yaml.v3 resolves one tagged "!" too); quoted and block scalars are strings.
            value = text if event.style else resolve_plain(text)
            if not event.style and not is_key and _LEADING_ZERO.match(text) and isinstance(value, int | float):
                self.leading_zero(text, value, self.where(frame, is_key), _line(event))
        elif tag == _STR:
            value = text
        elif tag in _RESOLVED_TAGS:
            kind, value = _resolve(text)
            wanted = _RESOLVED_TAGS[tag]
            if kind == wanted or (kind, wanted) == ("int", "float"):  # yaml.v3 lets !!float take an integer
                if kind in ("int", "float") and math.isfinite(value):
                    value = json_number(value)
            else:
                name = tag.removeprefix(_TAG)
                message = f"line {_line(event)}: cannot read {text!r} as a {name}"
                self.problem("MK004", self.where(frame, is_key), message, f"remove the !!{name} tag or fix the value")
                value = text
        elif tag == _BINARY:
            try:
                value = base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                message = f"line {_line(event)}: not base64 text"
                self.problem("MK004", self.where(frame, is_key), message, "write the value as a plain string")
                value = text
        else:
            value = text  # yaml.v3 ignores any other tag on a scalar
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(
                "MK006",
                self.where(frame, is_key),
                f"line {_line(event)}: {text} cannot be passed on: the Pulumi engine writes config as JSON, "
                "which has no infinity or NaN",
                "use a finite number, or quote it to make it a string",
                carried=True,
            )
            value = text
        elif isinstance(value, _OffsetTime):
            self.problem(
                "MK006",
                self.where(frame, is_key),
                f"line {_line(event)}: the timestamp {text} has a UTC offset; the Pulumi engine passes it on as "
                "text that depends on the time zone of the machine running it",
                f"quote it ('{text}') to keep it as written",
                carried=True,
            )
            value = str(value)
        return value

    def leading_zero(self, text: str, value: float, path: Path, line: int) -> None:
        """A number written with a leading zero: the engine (YAML 1.2, Go) reads 010 as octal 8 and 08 as 8, YAML
        1.1 readers 08 as text; the reader of the file cannot tell what was meant."""
        written = text.replace("_", "")
        decimal = int(written, 10) if written.lstrip("+-").isdigit() else value
        if decimal != value:
            read = f"the octal number {value}, not {decimal}"
            fix = f"write {decimal}, or {value} if you meant octal {text}"
        else:
            read = f"{value}, but YAML readers disagree on such numbers (octal to some, text to others)"
            fix = f"write {value}"
        self.problem(
            "MK006",
            path,
            f"line {line}: {text} has a leading zero, and the Pulumi engine reads it as {read}",
            f"{fix}; quote it ('{text}') if it is text",
            carried=True,
        )

    def alias(self, event: AliasEvent, frame: _Frame | None, is_key: bool) -> tuple[Any, int]:
        name = event.anchor
        if any(open_name == name for open_name, _ in self.open_anchors):
            message = f"line {_line(event)}: *{name} refers to a value that contains it"
            self.problem("MK004", self.where(frame, is_key), message, "remove the loop")
            return None, 1
        if name not in self.anchors:
            message = f"line {_line(event)}: *{name} refers to no anchor &{name} before it"
            self.problem("MK004", self.where(frame, is_key), message, f"define it (&{name}) before it is used")
            return None, 1
        value, size = self.anchors[name]
        self.decoded += size
        self.aliased += size
        if (
            not self.excessive
            and self.aliased > 100
            and self.decoded > 1000
            and self.aliased / self.decoded > _alias_ratio(self.decoded)
        ):
            self.excessive = True
            message = "excessive aliasing, which the Pulumi engine refuses"
            self.problem("MK004", self.where(frame, is_key), message, "write the values out")
        if frame is not None and not is_key and frame.next_top() == self.carried_under:
            # Anchored outside the config and used in it: what the engine cannot carry matters here.
            for found in self.anchor_problems.get(name, []):
                if found.carried and not self.carried(found.path):
                    self.problems.append(Problem(found.code, found.path, found.message, found.fix))
        return value, size

    # --- collections ---

    def add_key(self, frame: _Frame, key: Any, line: int) -> None:
        """A mapping's next key: checked, then waiting for its value."""
        frame.key_line = line
        if key == "<<":  # a merge, quoted or not: the engine decodes the file twice, quotes lost
            frame.key = _MERGE_KEY
            key_text = "<<"
        elif isinstance(key, str):
            frame.key = key_text = key
        else:
            shown = "null" if key is None else str(key).lower() if isinstance(key, bool) else repr(key)
            engine = "<nil>" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
            self.problem(
                "MK006",
                (*frame.path, shown),
                f"line {line}: the key {shown} is not a string; the Pulumi engine would read it as {engine!r}",
                f"quote it: '{engine if key is not None else ''}'",
                carried=True,
            )
            frame.key = _SKIP  # read its value, keep nothing
            return
        keys = frame.keys
        assert keys is not None
        if key_text in keys:
            self.problem(
                "MK005",
                (*frame.path, key_text),
                f"key {key_text!r} is written twice in one mapping, at lines {keys[key_text]} and {line}; the "
                f'Pulumi engine stops (mapping key "{key_text}" already defined)',
                "keep one of them (YAML does not let the last one win)",
            )
            frame.key = _SKIP
        else:
            keys[key_text] = line

    def add_value(self, frame: _Frame, value: Any, size: int) -> None:
        frame.size += size
        if frame.keys is None:
            frame.items.append(value)
            return
        if frame.key is _MERGE_KEY:
            frame.merges.append((value, frame.key_line))
        elif frame.key is not _SKIP:
            frame.items[frame.key] = value
        frame.key = _NO_KEY

    def finish(self, frame: _Frame) -> Any:
        items = frame.items
        if frame.keys is None:
            return items
        for merged, line in frame.merges:
            sources = [merged] if isinstance(merged, dict) else merged
            if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
                self.problem(
                    "MK004",
                    (*frame.path, "<<"),
                    f"line {line}: a merge (<<) takes a mapping or a list of mappings",
                    "merge an anchored mapping (<<: *name), or write the keys out",
                )
                continue
            for source in sources:
                for key, value in source.items():
                    items.setdefault(key, value)
        if self.sort_keys and len(items) > 1:
            return dict(sorted(items.items()))
        return items

    # --- the event loop ---

    def read(self, loader: Any) -> Any:
        frame: _Frame | None = None  # the innermost collection being read
        depth = 0
        document: Any = None
        started = False
        while True:
            event = loader.get_event()
            kind = type(event)
            is_key = frame is not None and frame.keys is not None and frame.key is _NO_KEY
            if kind is ScalarEvent:
                found = len(self.problems)
                value = self.scalar(event, frame, is_key)
                size = 1
                self.decoded += 1
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1)
                    self.anchor_problems[event.anchor] = self.problems[found:]
            elif kind is AliasEvent:
                value, size = self.alias(event, frame, is_key)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if is_key:
                    message = f"line {_line(event)}: a key that is a mapping or a list"
                    self.problem("MK006", self.where(frame, True), message, "use a string key", carried=True)
                if depth >= MAX_DEPTH:
                    message = f"line {_line(event)}: nested deeper than {MAX_DEPTH} levels, the engine's limit"
                    self.problem("MK004", self.where(frame, is_key)[:3], message, "flatten the structure")
                    return None
                frame = _Frame(frame, event.anchor, _line(event), kind is MappingStartEvent)
                depth += 1
                if event.anchor is not None:
                    self.open_anchors.append((event.anchor, []))
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                assert frame is not None
                done, frame = frame, frame.parent
                depth -= 1
                value = self.finish(done)
                size = done.size
                self.decoded += 1
                if done.anchor is not None:
                    name, inside = self.open_anchors.pop()
                    self.anchors[name] = (value, size)
                    self.anchor_problems[name] = inside
                is_key = frame is not None and frame.keys is not None and frame.key is _NO_KEY
                if is_key and frame is not None:
                    frame.key = _SKIP  # a mapping or list as a key, already reported
                    frame.key_line = done.line
                    continue
            elif kind is DocumentStartEvent:
                if started:
                    return document  # the engine reads the first document only
                started = True
                version = getattr(event, "version", None)
                if version is not None and tuple(version) != (1, 1):
                    self.problem(
                        "MK004",
                        (),
                        f"a %YAML {'.'.join(map(str, version))} directive: the Pulumi engine accepts only "
                        "%YAML 1.1 (found incompatible YAML document)",
                        "remove the %YAML line",
                    )
                continue
            elif kind is DocumentEndEvent or kind is StreamEndEvent:
                return document
            else:
                continue  # the stream's start
            if frame is None:
                document = value
            elif is_key:
                self.add_key(frame, value, _line(event))
            else:
                self.add_value(frame, value, size)


def event_loader(text: str) -> Any:
    """A YAML event parser over ``text``: libyaml's where PyYAML has it, else PyYAML's own."""
    return (getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader)(text)


# libyaml 0.2.6 (in PyYAML 6.0.4's wheels) stops at 1000 levels of nesting, counted while scanning ahead, so a
# file the engine reads (up to MAX_DEPTH) would be "not valid YAML" at (file). Its limit is process-wide: lifted
# for one read, as libyaml 0.2.5 had none, and put back after. The reader refuses past MAX_DEPTH itself.
_LIBYAML = getattr(yaml, "_yaml", None)
_NO_NESTING_LIMIT = 2**31 - 1  # a C int


@contextmanager
def _engine_nesting() -> Iterator[None]:
    get_limit = getattr(_LIBYAML, "_get_max_nest_level", None)
    set_limit = getattr(_LIBYAML, "_set_max_nest_level", None)
    if get_limit is None or set_limit is None:
        yield
        return
    before = get_limit()
    set_limit(_NO_NESTING_LIMIT)
    try:
        yield
    finally:
        set_limit(before)


def read_yaml(text: str, carried_under: str | None = "config", sort_keys: bool = True) -> Reading:
    """The first document of ``text`` as the Pulumi engine reads it, and the problems found.

    ``carried_under`` names the top-level key whose subtree the engine passes to the program (a stack
    file's ``config``); the :attr:`Problem.carried` checks apply there only. ``sort_keys=False`` keeps each
    mapping in file order (``meshkit step`` needs the declaration order of versions), which the engine
    does not.
    """
    reader = _Reader(carried_under, sort_keys)
    with _engine_nesting():
        loader = event_loader(text)
        try:
            document = reader.read(loader)
        except yaml.YAMLError as err:
            return Reading(None, [Problem("MK004", (), f"not valid YAML: {err}", "fix the YAML syntax")])
        finally:
            loader.dispose()
    problems = [p for p in reader.problems if not p.carried or reader.carried(p.path)]
    return Reading(document, problems)


def decode_text(data: bytes) -> str:
    """A file's bytes as text, the way libyaml and yaml.v3 decode it: UTF-16 by its byte-order mark,
    otherwise UTF-8 (a UTF-8 byte-order mark dropped). Raises :class:`ValueError` naming the line."""
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise ValueError(
            f"not {encoding.removesuffix('-sig').upper()} text: byte {data[err.start]:#04x} at line {line}, "
            f"column {column} ({err.reason})"
        ) from None


def encode_text(text: str, like: bytes) -> bytes:
    """``text`` in the encoding of a file's bytes ``like``, its byte-order mark kept: :func:`decode_text`
    undone, so that an edit of the text leaves every other byte of the file as it was."""
    for mark, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if like.startswith(mark):
            return mark + text.encode(encoding)
    return (codecs.BOM_UTF8 if like.startswith(codecs.BOM_UTF8) else b"") + text.encode("utf-8")
