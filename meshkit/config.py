"""Reading a stack's ``meshkit:`` config, from a stack file or from the Pulumi engine, into the models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .analysis import validate_stack
from .errors import ConfigError, Finding
from .gcpause import gc_paused
from .models import StackConfig

# libyaml's parser when PyYAML has it (its wheels do): ten times faster on a stack of 1000 services.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PROJECT = "meshkit"
"""The Pulumi project name, hence the namespace of every config key (``meshkit:services``)."""


def stack_file(stack: str, root: Path = Path(".")) -> Path:
    return root / "stacks" / f"Pulumi.{stack}.yaml"


def meshkit_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``meshkit:`` keys of a Pulumi config mapping, prefix stripped; other providers' keys dropped."""
    prefix = f"{PROJECT}:"
    return {key[len(prefix) :]: value for key, value in config.items() if key.startswith(prefix)}


def stack_file_keys(text: str, source: str) -> dict[str, Any]:
    """The ``meshkit:`` keys of a stack file's text (``Pulumi.<stack>.yaml``), not yet validated."""
    try:
        with gc_paused():
            document = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError as err:
        raise ConfigError(
            [Finding("(file)", "MK004", f"not valid YAML: {err}", "fix the YAML syntax")], source
        ) from None
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
    return meshkit_keys(document["config"])


def parse_stack_file_text(text: str, source: str) -> StackConfig:
    """Validate the text of a stack file."""
    return validate_stack(stack_file_keys(text, source), source)


def read_stack_file_keys(path: Path) -> dict[str, Any]:
    """The ``meshkit:`` keys of a stack file on disk, not yet validated."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [Finding("(file)", "MK004", "stack file not found", f"create {path} or check the stack name")], str(path)
        ) from None
    return stack_file_keys(text, str(path))


def load_stack_file(path: Path) -> StackConfig:
    return validate_stack(read_stack_file_keys(path), str(path))


ENGINE_SOURCE = "pulumi config (meshkit:*)"


def engine_config_keys(config: Mapping[str, str]) -> dict[str, Any]:
    """The ``meshkit:`` keys of the config the Pulumi engine hands the program, not yet validated.

    The engine passes structured values as JSON text and plain values as strings.
    """
    raw: dict[str, Any] = {}
    for key, text in meshkit_keys(config).items():
        try:
            raw[key] = json.loads(text)
        except json.JSONDecodeError:
            raw[key] = text
    return raw
