"""Reading a stack's ``meshkit:`` config, from a stack file or from the Pulumi engine, into the models.

Both roads give the same values. The engine reads ``stacks/Pulumi.<stack>.yaml`` with Go's YAML 1.2 reader
and hands each config value to the program as text (JSON for a mapping or list), which
:func:`engine_config_keys` decodes. A stack file read here goes through the same steps
(:mod:`meshkit.config.engine_yaml`, then :func:`engine_value`), so ``on`` is a string and ``1_000`` a number for
``meshkit check`` exactly as for ``pulumi up``, and a key written twice stops both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshkit.config.engine_yaml import Problem, decode_text, read_yaml
from meshkit.config.validation import format_path
from meshkit.errors import ConfigError, Finding
from meshkit.gcpause import gc_paused

PROJECT = "meshkit"
"""The Pulumi project name, hence the namespace of every config key (``meshkit:services``)."""


def stack_file(stack: str, root: Path = Path(".")) -> Path:
    return root / "stacks" / f"Pulumi.{stack}.yaml"


def meshkit_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``meshkit:`` keys of a Pulumi config mapping, prefix stripped; other providers' keys dropped."""
    prefix = f"{PROJECT}:"
    return {key[len(prefix) :]: value for key, value in config.items() if key.startswith(prefix)}


def config_key(key: str, project: str = PROJECT) -> str | None:
    """A stack file's config key as the engine names it, or None when the engine refuses it.

    A key without a namespace belongs to the project (``services`` is ``meshkit:services``), and the old
    form ``meshkit:config:services`` still means ``meshkit:services``.
    """
    parts = key.split(":")
    if len(parts) == 1:
        return f"{project}:{key}"
    if len(parts) == 2:
        return key
    if len(parts) == 3 and parts[1] == "config":
        return f"{parts[0]}:{parts[2]}"
    return None


# --- what the engine hands the program --------------------------------------------------------------


def engine_text(value: Any) -> str:
    """A config value that is no mapping or list as the engine passes it to the program: as text."""
    if value is None:
        return ""  # the engine warns that a key without a value is an empty string
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return str(value)


def engine_value(text: str) -> Any:
    """One config value the engine passed: structured values come as JSON text, plain ones as strings."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or JSON Python will not read (too deep, too long)
        return text


def engine_config_keys(config: Mapping[str, str]) -> dict[str, Any]:
    """The ``meshkit:`` keys of the config the Pulumi engine hands the program, not yet validated."""
    return {key: engine_value(text) for key, text in meshkit_keys(config).items()}


ENGINE_SOURCE = "pulumi config (meshkit:*)"


# --- stack files -------------------------------------------------------------------------------------


def config_path(path: tuple[str | int, ...]) -> str:
    """A document path as a finding shows it: ``services.nginx.traffic`` below a ``meshkit:`` key."""
    if len(path) >= 2 and path[0] == "config" and isinstance(path[1], str):
        key = config_key(path[1])
        if key is not None and key.startswith(f"{PROJECT}:"):
            return format_path((key[len(PROJECT) + 1 :], *path[2:])) or f"{PROJECT}:"
        return format_path(path[1:])
    return format_path(path) or "(file)"


def _finding(problem: Problem) -> Finding:
    return Finding(config_path(problem.path), problem.code, problem.message, problem.fix)


def stack_text(data: bytes, source: str) -> str:
    """A stack file's bytes as text: UTF-8 (or UTF-16 with a byte-order mark), as the engine reads it."""
    try:
        return decode_text(data)
    except ValueError as err:
        raise ConfigError([Finding("(file)", "MK004", str(err), "save the file as UTF-8")], source) from None


def read_stack_bytes(path: Path) -> bytes:
    """The bytes of a stack file on disk; a missing or unreadable file is an MK004 naming it."""

    def refused(message: str, fix: str) -> ConfigError:
        return ConfigError([Finding("(file)", "MK004", message, fix)], str(path))

    try:
        if path.is_dir():
            raise refused("is a directory, not a stack file", "give a stack name, or the path of its stack file")
        if path.exists() and not path.is_file():
            raise refused("is not a regular file", "give the path of a stack file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise refused(
            "stack file not found: the file does not exist", f"create {path} or check the stack name"
        ) from None
    except OSError as err:
        raise refused(f"cannot be read: {err.strerror or err}", "check the path and its permissions") from None
    return data


def read_stack_text(path: Path) -> str:
    """The text of a stack file on disk; a missing, unreadable or non-text file is an MK004 naming it."""
    return stack_text(read_stack_bytes(path), str(path))


def stack_file_keys(text: str, source: str, *, declaration_order: bool = False) -> dict[str, Any]:
    """The ``meshkit:`` keys of a stack file's text (``Pulumi.<stack>.yaml``), not yet validated, as the
    program receives them from the engine.

    The engine's JSON puts every mapping's keys in name order; ``declaration_order=True`` keeps the file's
    order instead (``meshkit step --promote`` takes the last version declared as the newest).
    """
    with gc_paused():
        reading = read_yaml(text, carried_under="config", sort_keys=not declaration_order)
    if reading.problems:
        raise ConfigError([_finding(p) for p in reading.problems], source)
    document = reading.document
    if document is None:
        raise ConfigError(
            [Finding("(file)", "MK004", "the file is empty", "add a 'config:' mapping with meshkit: keys")], source
        )
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise ConfigError(
            [
                Finding(
                    "config",
                    "MK002",
                    "no 'config:' mapping at the top of the file",
                    "put the meshkit: keys under config:",
                )
            ],
            source,
        )
    config: dict[str, Any] = {}
    written_as: dict[str, str] = {}
    findings = []
    for key, value in document["config"].items():
        name = config_key(key)
        if name is None:
            findings.append(
                Finding(
                    key,
                    "MK006",
                    f"{key!r} is not a Pulumi config key: the engine stops (could not parse it as a configuration key)",
                    "write <namespace>:<name>, e.g. meshkit:services",
                )
            )
        elif name in written_as:
            findings.append(
                Finding(
                    config_path(("config", key)),
                    "MK005",
                    f"written as both {written_as[name]!r} and {key!r}, which name the same config key {name!r}",
                    "keep one of them",
                )
            )
        else:
            written_as[name] = key
            config[name] = value if isinstance(value, dict | list) else engine_value(engine_text(value))
    if findings:
        raise ConfigError(findings, source)
    return meshkit_keys(config)


def read_stack_file_keys(path: Path) -> dict[str, Any]:
    """The ``meshkit:`` keys of a stack file on disk, not yet validated."""
    return stack_file_keys(read_stack_text(path), str(path))
