"""pydantic's validation errors, turned into findings that name the config path, the bad value and the fix."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from meshkit.config.stack import StackConfig
from meshkit.config.values import shown
from meshkit.config.workload import UNION_TAGS
from meshkit.errors import ConfigError, Finding

# Error codes for pydantic's own range errors, chosen by the key that failed; any other error of these keys
# (a list where a map of weights belongs, "100%" for a percentage) is a type error, MK003.
_RANGE_CODES = {
    "weights": "MK302",
    "percentage": "MK305",
    "httpStatus": "MK306",
    **dict.fromkeys(("minSuccessRate", "latencyPercentile", "minRequests"), "MK903"),
}


_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


# How to write a value of the expected type, for pydantic's type errors.
_TYPE_FIXES = {
    "int_type": "write a whole number, unquoted",
    "int_parsing": "write a whole number, unquoted",
    "int_from_float": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a plain number, without a unit or '%'",
    "dict_type": "write a map of key: value pairs",
    "list_type": "write a list, [a, b]",
    "string_type": "write a string (quote it if YAML would read a number or a boolean)",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
}


_BOUNDS = (("ge", "at least"), ("gt", "above"), ("le", "at most"), ("lt", "below"))


def format_path(loc: tuple[str | int, ...]) -> str:
    """``('services', 'nginx', 'ports', 0, 'name')`` → ``services.nginx.ports[0].name``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation may hold, looking through Optional, list and dict values."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _unwrap(arg)]
    if origin in (list, dict):
        return _unwrap(typing.get_args(annotation)[-1])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _keys_at(loc: tuple[str | int, ...]) -> list[str]:
    """The keys a config accepts at ``loc`` (which names a mapping), to suggest the intended one."""
    models: list[Any] = [StackConfig]
    for part in loc:
        if isinstance(part, int):
            continue
        nested: list[Any] = []
        for model in models:
            for name, field in model.model_fields.items():
                if part in (name, field.alias):
                    nested += _unwrap(field.annotation)
        # A part that is no field name is a key of a dict of models (a service or version name):
        # _unwrap already stepped into the dict's values, so stay on that level.
        if nested:
            models = nested
    return sorted({field.alias or name for model in models for name, field in model.model_fields.items()})


# pydantic names the branch of a union a value failed (``function-after[_dns_label(), str]``,
# ``literal[False]``, ``str``) in the error's location: not a key of the stack file, never shown.
_UNION_BRANCH = re.compile(r"^([a-z][a-z0-9-]*\[.*\]|str|int|float|bool|none)$")


# pydantic writes Python's constants in its messages; the stack file is YAML.
_YAML_WORD = {"True": "true", "False": "false", "None": "null"}


_YAML_WORDS = re.compile(r"\b(True|False|None)\b")


def _is_union_branch(part: object) -> bool:
    return isinstance(part, str) and (part in UNION_TAGS or bool(_UNION_BRANCH.match(part)))


def findings_from_validation_error(error: ValidationError, prefix: tuple[str, ...] = ()) -> list[Finding]:
    """One finding per error; a value that fails every branch of a union (``waypoint: Bad_Name``: a DNS
    label or false) is reported once, by meshkit's own check when a branch has one."""
    findings: list[Finding] = []
    union_finding: dict[str, int] = {}  # path → index in findings of the one finding of its union
    for item in error.errors():
        finding = _finding(item, prefix)
        if not any(_is_union_branch(part) for part in item["loc"]):
            findings.append(finding)
            continue
        i = union_finding.setdefault(finding.path, len(findings))
        if i == len(findings):
            findings.append(finding)
        elif findings[i].code == "MK003" and finding.code != "MK003":
            findings[i] = finding  # meshkit's own message says more than a type error
        elif findings[i].code == finding.code == "MK003" and finding.message not in findings[i].message:
            first = findings[i]
            findings[i] = Finding(first.path, "MK003", f"{first.message}; or {finding.message}", first.fix)
    return findings


def _finding(item: Any, prefix: tuple[str, ...]) -> Finding:
    loc = prefix + tuple(part for part in item["loc"] if not _is_union_branch(part))
    kind = item["type"]
    ctx = item.get("ctx") or {}
    path = format_path(loc)
    if kind.startswith("MK"):
        path = format_path((*loc, ctx["key"])) if ctx.get("key") else path
        return Finding(path, kind, str(ctx.get("message", item["msg"])), str(ctx.get("fix", "")))
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _keys_at(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return Finding(path, "MK001", f"unknown key {key!r}", f"{hint}valid keys here: {', '.join(known)}")
    if kind == "missing":
        return Finding(path, "MK002", "required key is missing", f"add '{loc[-1]}'")
    last = next((str(p) for p in reversed(loc) if isinstance(p, str) and p in _RANGE_CODES), "")
    code = _RANGE_CODES.get(last, "MK003") if kind in _RANGE_ERRORS else "MK003"
    value = item.get("input")
    got = f", got {shown(value)}" if not isinstance(value, (dict, list)) else ""
    bounds = [f"{word} {ctx[key]}" for key, word in _BOUNDS if key in ctx]
    fix = (
        f"use a value {' and '.join(bounds)}"
        if bounds
        else _TYPE_FIXES.get(kind, "see the config reference, docs/reference/config.md")
    )
    message = f"{item['msg'][0].lower()}{item['msg'][1:]}{got}"
    return Finding(path, code, _YAML_WORDS.sub(lambda m: _YAML_WORD[m.group(0)], message), fix)


def parse_stack(raw: Mapping[str, Any], source: str = "stack config") -> StackConfig:
    """The models of a stack config, one value at a time; raise :class:`ConfigError` listing every bad key.
    The checks across objects come after (:func:`meshkit.mesh.checks.validate_stack`)."""
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(findings_from_validation_error(err), source) from None
