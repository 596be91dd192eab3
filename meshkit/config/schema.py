"""The JSON Schema of a stack file (``stacks/Pulumi.<stack>.yaml``), generated from the models.

Editors that use the YAML language server (VS Code's YAML extension, Neovim's yamlls, JetBrains IDEs) read
it from a comment at the top of a stack file, ``# yaml-language-server: $schema=<path or URL>``, and then
complete the ``meshkit:`` keys and mark an unknown key or a value of the wrong type as it is typed. The
schema knows the shape of a stack config (keys, types, closed sets, bounds); ``meshkit check`` stays the
full check (value syntax such as durations and image references, and every cross-object rule).

The models are the one definition: the schema is generated from them, committed beside this module so the
package ships it, and tests/test_stack_schema.py fails while the committed file differs from what the models
generate::

    python -m meshkit.config.schema --write     # `make schema`: regenerate the committed file
    python -m meshkit.config.schema --check     # exit 1, saying how to regenerate, when it is stale
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from meshkit.config.stack import StackConfig
from meshkit.config.stack_file import PROJECT

SCHEMA_PATH = Path(__file__).parent / "stack-file.schema.json"
"""Where the package keeps the generated schema."""
REGENERATE = "`make schema` (python -m meshkit.config.schema --write)"

# Other config keys meshkit reads: the cluster a stack deploys to (without them it renders manifests).
_KUBERNETES_KEYS = {
    "kubernetes:context": "The kubeconfig context of the cluster to deploy to. Without this key or "
    "`kubernetes:kubeconfig`, the stack renders every manifest into `rendered/<stack>/` instead.",
    "kubernetes:kubeconfig": "The kubeconfig of the cluster to deploy to: a path or its contents. Without this "
    "key or `kubernetes:context`, the stack renders every manifest into `rendered/<stack>/` instead.",
}
# A key of another Pulumi namespace (`kubernetes:namespace`, `aws:region`), also in the old
# `<namespace>:config:<name>` form: the engine passes it to its provider, meshkit ignores it.
_OTHER_NAMESPACE = rf"^(?!{PROJECT}:)[^:]+:(config:)?[^:]+$"
# What JSON Schema calls the bounds that pydantic leaves under their Python names when a bounded type is nested
# in another Annotated type (Percent, PortNumber, Weight).
_BOUND_KEYWORDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}
_ROLE = re.compile(r":(?:mod|class|func|data|attr|meth):`~?([^`]+)`")


def plain_text(docstring: str) -> str:
    """A docstring as Markdown for a reader of the schema or the docs: reST literals and roles as code spans,
    each paragraph on one line."""
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", inspect.cleandoc(docstring))
    text = text.replace("``", "`")
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


@cache
def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """The docstring written under each field of ``model`` (a string literal after the annotated name), by
    field name. Read from the source: the models do not ask pydantic to collect them."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):  # no source (a frozen app): the schema is then generated elsewhere
        return {}
    (node,) = ast.parse(source).body
    assert isinstance(node, ast.ClassDef)
    docs: dict[str, str] = {}
    for statement, following in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = plain_text(following.value.value)
    return docs


def _models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """``model`` and every model reachable from its fields, by class name (the keys of the schema's $defs)."""
    found: dict[str, type[BaseModel]] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ not in found:
                found[annotation.__name__] = annotation
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        for argument in getattr(annotation, "__args__", ()):
            visit(argument)

    visit(model)
    return found


def _bounds_as_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_bounds_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    numeric = node.get("type") in ("integer", "number")
    return {(_BOUND_KEYWORDS.get(k, k) if numeric else k): _bounds_as_json_schema(v) for k, v in node.items()}


def model_schema() -> dict[str, Any]:
    """StackConfig's JSON Schema, keys as users write them (camelCase), every key described by its docstring."""
    schema = _bounds_as_json_schema(StackConfig.model_json_schema(by_alias=True, mode="validation"))
    definitions = schema.setdefault("$defs", {})
    definitions["StackConfig"] = {key: value for key, value in schema.items() if key != "$defs"}
    for name, model in _models(StackConfig).items():
        definition = definitions[name]
        if "description" in definition:
            definition["description"] = plain_text(definition["description"])
        docs = field_docs(model)
        for field_name, field in model.model_fields.items():
            key = field.alias or field_name
            prop = definition["properties"][key]
            prop.pop("title", None)  # pydantic's title is the key again ("Maxstep"), noise in an editor
            if field_name in docs:
                prop["description"] = docs[field_name]
    return {"$defs": dict(sorted(definitions.items()))}


def _secret_value() -> dict[str, Any]:
    # How `pulumi config set --secret --path` writes a secret: {secure: <ciphertext>}; a plain value is allowed too
    # (meshkit never reads it: only the secret's name reaches the models).
    return {
        "anyOf": [
            {"type": "string"},
            {"type": "number"},
            {
                "type": "object",
                "properties": {"secure": {"type": "string", "description": "The value, encrypted by Pulumi."}},
                "required": ["secure"],
                "additionalProperties": False,
            },
        ]
    }


def stack_file_schema() -> dict[str, Any]:
    """The schema of a whole stack file: Pulumi's top-level keys, and under ``config`` the ``meshkit:`` keys with
    the models' schemas (also as the engine reads them unprefixed, ``services``, and in the old
    ``meshkit:config:services`` form), ``kubernetes:context``/``kubeconfig``, and any other namespace's keys."""
    definitions = model_schema()["$defs"]
    stack = definitions.pop("StackConfig")
    stack["properties"]["secrets"]["additionalProperties"] = _secret_value()
    config: dict[str, Any] = {}
    for key, schema in stack["properties"].items():
        config[f"{PROJECT}:{key}"] = schema
    for key in stack["properties"]:
        config[key] = {"$ref": f"#/properties/config/properties/{PROJECT}:{key}"}
        # The old form the engine still reads; marked so that editors offer the current one first.
        config[f"{PROJECT}:config:{key}"] = {**config[key], "deprecated": True}
    for key, description in _KUBERNETES_KEYS.items():
        config[key] = {"type": "string", "description": description}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "meshkit stack file",
        "description": "A Pulumi stack file of the meshkit project (stacks/Pulumi.<stack>.yaml): the meshkit: "
        "keys under config declare the stack's namespaces, services, versions and traffic. Generated from "
        "meshkit's models; `meshkit check` runs every check.",
        "type": "object",
        "required": ["config"],
        "properties": {
            "config": {
                "type": "object",
                "description": plain_text(stack.get("description", "")),
                "properties": config,
                "patternProperties": {_OTHER_NAMESPACE: {}},
                "additionalProperties": False,
            },
            "encryptionsalt": {
                "type": "string",
                "description": "The salt of the passphrase secrets provider (Pulumi writes it when the stack is "
                "created).",
            },
            "secretsprovider": {
                "type": "string",
                "description": "The secrets provider, when it is not the passphrase.",
            },
            "encryptedkey": {"type": "string", "description": "The data key of a cloud secrets provider."},
        },
        "$defs": definitions,
    }


def schema_text() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(stack_file_schema(), indent=2, ensure_ascii=False) + "\n"


def stale_reason(path: Path = SCHEMA_PATH) -> str:
    """Why the committed schema is not what the models generate, or ``""`` when it is."""
    try:
        committed = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{path} does not exist"
    except ValueError as err:
        return f"{path} is not JSON: {err}"
    if committed != stack_file_schema():
        return f"{path} is not what the models generate"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshkit.config.schema", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"write the schema to {SCHEMA_PATH.name} in the package")
    action.add_argument("--check", action="store_true", help="exit 1 when the committed schema is stale")
    args = parser.parse_args(argv)
    if args.write:
        SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {SCHEMA_PATH}")
    elif args.check:
        reason = stale_reason()
        if reason:
            print(f"{reason}; regenerate it: {REGENERATE}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
