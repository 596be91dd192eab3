"""MkDocs hook (mkdocs.yml ``hooks:``): the reference pages, generated from the code while the site builds.

Nothing generated is committed, so the reference cannot drift from the code:

* the config reference, from the models: every key as users write it (camelCase), its type, default, bounds or
  closed set, and the docstring under its field (plus a note from config_notes.yaml where the docstring is
  not the whole story);
* the error codes, from every ``MKnnn`` in meshkit/: the messages and fixes each is raised with and where,
  joined with what it means and an example (error_codes.yaml);
* the command line, from the Typer app: each command, its arguments and options with their help;
* the stack file's JSON Schema (the package's copy) and BENCHMARKS.md with its plots, as files of the site.

A page asks for a generated part with a marker line, ``<!-- generated: config-reference -->``. A marker
nobody knows, a code without an entry or an entry without a code stops the build.
"""

from __future__ import annotations

import ast
import difflib
import re
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
import typer.main
import yaml
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

import meshkit
from meshkit.cli import app
from meshkit.config import StackConfig
from meshkit.config.schema import SCHEMA_PATH, field_docs, plain_text
from meshkit.config.values import PORT_PROTOCOLS
from meshkit.mesh.order import ORDER_RULES

HERE = Path(__file__).parent
REPO = HERE.parent.parent
PACKAGE = Path(meshkit.__file__).parent
MARKER = re.compile(r"^<!-- generated: ([a-z-]+)((?: [A-Za-z0-9]+)*) -->$", re.MULTILINE)
SCENARIOS = REPO / "tests" / "scenarios"
CODE = re.compile(r"MK\d{3}")

# --- the config reference ----------------------------------------------------------------------------

# What a reader calls the value types of the models (their names in the models' modules). A type not listed
# here is described by what it is made of: "whole number, 0 to 100".
VALUE_TYPES = {
    "DnsLabel": "DNS-1123 label",
    "EnvName": "environment variable name",
    "Capability": "Linux capability",
    "Redacted": "secret",
    "Duration": "duration (`7s`, `250ms`, `1m30s`)",
    "Re2Pattern": "RE2 regex",
    "Quantity": "Kubernetes quantity (`100m`, `128Mi`)",
    "HeaderName": "lowercase header name",
    "Image": "image reference",
    "LabelKey": "label key",
    "LabelValue": "label value",
    "TrustDomain": "SPIFFE trust domain",
    "Host": "host",
    "ObjectName": "Kubernetes object name",
    "CookieName": "cookie name",
    "CookieValue": "cookie value",
    "Count": "whole number",
    "Weight": "whole number",
    "PortNumber": "port number",
    "Percent": "number",
    "Weights": "map of version → whole number, 0 to 100, summing to 100",
}
STACK_KEY_PREFIX = "meshkit:"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes escaped outside code spans (inside one, the table reads a
    pipe as text, and an escape would show)."""
    parts = " ".join(text.split()).split("`")
    return "`".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _models_in_order(root: type[BaseModel]) -> list[type[BaseModel]]:
    """``root`` and the models its keys hold, breadth first: the order a reader meets them."""
    order: list[type[BaseModel]] = [root]
    for model in order:
        for hint in typing.get_type_hints(model, include_extras=True).values():
            for found in _models_of(hint):
                if found not in order:
                    order.append(found)
    return order


def _models_of(hint: Any) -> Iterator[type[BaseModel]]:
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        yield hint
    for argument in get_args(hint):
        yield from _models_of(argument)


class ConfigReference:
    def __init__(self, root: type[BaseModel], notes: dict[str, str]) -> None:
        self.models = _models_in_order(root)
        self.root = root
        self.notes = notes
        modules = {sys.modules[model.__module__] for model in self.models}
        # The models' named value types (DnsLabel, Weight, ...), to call a key's type by its name.
        self.aliases = [
            (name, value)
            for module in modules
            for name, value in vars(module).items()
            if get_origin(value) is Annotated
        ]
        known = {f"{m.__name__}.{f}" for m in self.models for f in m.model_fields}
        unknown = sorted(set(notes) - known)
        if unknown:
            raise PluginError(f"docs/hooks/config_notes.yaml: no such key in the models: {', '.join(unknown)}")
        self.used_by: dict[type[BaseModel], list[str]] = {}
        for model in self.models:
            hints = typing.get_type_hints(model, include_extras=True)
            for name, field in model.model_fields.items():
                for found in dict.fromkeys(_models_of(hints[name])):
                    label = "Stack keys" if model is root else model.__name__
                    used = f"[{label}](#{_anchor(model)}) `{self.key(model, name, field)}`"
                    self.used_by.setdefault(found, []).append(used)

    def key(self, model: type[BaseModel], name: str, field: FieldInfo) -> str:
        key = field.alias or name
        return f"{STACK_KEY_PREFIX}{key}" if model is self.root else key

    def alias_name(self, hint: Any) -> str | None:
        for name, value in self.aliases:
            try:
                if value is hint or value == hint:
                    return name
            except TypeError:
                continue
        return None

    def type_text(self, hint: Any, with_bounds: bool = True) -> str:
        origin = get_origin(hint)
        if origin is Annotated:
            base, *metadata = get_args(hint)
            name = self.alias_name(hint)
            text = VALUE_TYPES.get(name or "") or self.type_text(base)
            bounds = _bounds(metadata) if with_bounds else ""
            return f"{text}, {bounds}" if bounds else text
        if origin is Literal:
            return " or ".join(f"`{yaml_text(value)}`" for value in get_args(hint))
        if origin in (typing.Union, __import__("types").UnionType):
            members = [a for a in get_args(hint) if a is not type(None)]
            return " or ".join(self.type_text(member) for member in members)
        if origin is dict:
            key, value = get_args(hint)
            return f"map of {self.type_text(key)} → {self.type_text(value)}"
        if origin is list:
            (item,) = get_args(hint)
            return f"list of {self.type_text(item)}"
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            return f"[{hint.__name__}](#{_anchor(hint)})"
        return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(hint, str(hint))

    def default_text(self, field: FieldInfo) -> str:
        if field.is_required():
            return "required"
        value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        if value is None or value is PydanticUndefined:
            return "—"
        if isinstance(value, BaseModel):
            return "`{}` (each key at its default)"
        return f"`{yaml_text(to_jsonable_python(value, by_alias=True, exclude_none=True))}`"

    def description(self, model: type[BaseModel], name: str) -> str:
        note = self.notes.get(f"{model.__name__}.{name}", "")
        note = note.replace("{port_protocols}", ", ".join(PORT_PROTOCOLS))
        return " ".join(p for p in (field_docs(model).get(name, ""), note) if p)

    def section(self, model: type[BaseModel]) -> str:
        hints = typing.get_type_hints(model, include_extras=True)
        title = "Stack keys" if model is self.root else model.__name__
        lines = [f"### {title} {{#{_anchor(model)}}}", ""]
        doc = model.__dict__.get("__doc__")
        if doc:
            lines += [plain_text(doc), ""]
        if model in self.used_by:
            lines += [f"Used by: {', '.join(self.used_by[model])}.", ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            type_text = self.type_text(hints[name], with_bounds=False)
            field_bounds = _bounds(field.metadata)
            if field_bounds:
                type_text += f", {field_bounds}"
            key = f"`{self.key(model, name, field)}`"
            cells = [key, type_text, self.default_text(field), self.description(model, name)]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        return "\n".join(self.section(model) for model in self.models)


def _bounds(metadata: list[Any]) -> str:
    """What the annotations allow, in words: ``0 to 100``, ``at least 1 entry``."""
    low = high = None
    min_length = max_length = None
    for item in metadata:
        if isinstance(item, FieldInfo):
            item_bounds = _bounds(item.metadata)
            if item_bounds:
                return item_bounds
        elif isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.MinLen):
            min_length = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            max_length = item.max_length
    words = []
    if low is not None and high is not None:
        words.append(f"{low} to {high}")
    elif low is not None:
        words.append(f"at least {low}")
    elif high is not None:
        words.append(f"at most {high}")
    if min_length:
        words.append(f"at least {min_length} {'entry' if min_length == 1 else 'entries'}")
    if max_length is not None:
        words.append(f"at most {max_length} {'entry' if max_length == 1 else 'entries'}")
    return ", ".join(words)


def yaml_text(value: Any) -> str:
    """A value as a stack file writes it: ``false``, ``10m``, ``{istio: ingressgateway}``."""
    return yaml.safe_dump(value, default_flow_style=True, width=1_000_000).strip().removesuffix("\n...").strip()


def config_reference() -> str:
    notes = yaml.safe_load((HERE / "config_notes.yaml").read_text(encoding="utf-8"))
    # In a block of its own, so that the stylesheet keeps a key on one line in these tables only.
    return f'<div class="config-keys" markdown>\n\n{ConfigReference(StackConfig, notes).markdown()}\n</div>\n'


# --- the error codes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raised:
    """One place a code is raised: the message and fix written there (``{name}`` where a value goes in)."""

    module: str
    message: str
    fix: str
    warning: bool


def _text(node: ast.expr) -> str | None:
    """A string literal or f-string as text, the values it formats shown as ``{name}`` (or ``{…}``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                inner = value.value
                if isinstance(inner, ast.Name):
                    parts.append(f"{{{inner.id}}}")
                elif isinstance(inner, ast.Attribute):
                    parts.append(f"{{{inner.attr}}}")
                else:
                    parts.append("{…}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return left + right if left is not None and right is not None else None
    return None


def scan_codes(root: Path) -> dict[str, list[Raised]]:
    """Every ``MKnnn`` string in the package's code, with the messages and fixes of the calls that raise it."""
    codes: dict[str, list[Raised]] = {}
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        named = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and CODE.fullmatch(node.value.value)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.fullmatch(node.value):
                codes.setdefault(node.value, [])
            if not isinstance(node, ast.Call):
                continue
            for i, argument in enumerate(node.args):
                code = None
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    code = argument.value if CODE.fullmatch(argument.value) else None
                elif isinstance(argument, ast.Name):
                    code = named.get(argument.id)
                if code is None:
                    continue
                # Finding(path, code, message, fix), invalid(code, message, fix); a reader's problem(code, where,
                # message, fix) has the place first.
                callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                after = node.args[i + (2 if callee.lower().endswith("problem") else 1) :]
                keywords = {k.arg: k.value for k in node.keywords if k.arg}
                message_node = keywords.get("message", after[0] if after else None)
                fix_node = keywords.get("fix", after[1] if len(after) > 1 else None)
                message = _text(message_node) if message_node is not None else None
                fix = _text(fix_node) if fix_node is not None else None
                warning = any(isinstance(n, ast.Attribute) and n.attr == "WARNING" for n in ast.walk(node))
                # A message composed before the call (a variable) cannot be shown; nor one that is only values.
                if message and re.search(r"[a-z]{3}", re.sub(r"\{[^}]*\}", "", message)):
                    raised = Raised(module, message, fix or "", warning)
                    if raised not in codes.setdefault(code, []):
                        codes[code].append(raised)
                break
    return codes


def _escaped(text: str) -> str:
    """A message as text on the page (its own backticks and stars shown, not read as Markdown)."""
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def error_codes() -> str:
    codes = scan_codes(PACKAGE)
    described = yaml.safe_load((HERE / "error_codes.yaml").read_text(encoding="utf-8"))
    missing = sorted(set(codes) - set(described))
    gone = sorted(set(described) - set(codes))
    if missing or gone:
        raise PluginError(
            "docs/hooks/error_codes.yaml is out of step with the code: "
            + "; ".join(
                part
                for part in (
                    f"codes without an entry: {', '.join(missing)}" if missing else "",
                    f"entries for codes the code no longer has: {', '.join(gone)}" if gone else "",
                )
                if part
            )
        )
    lines = ["| code | meaning |", "|---|---|"]
    lines += [f"| [{code}](#{code.lower()}) | {_cell(described[code]['meaning'])} |" for code in sorted(codes)]
    lines.append("")
    for code in sorted(codes):
        entry = described[code]
        lines += [f"### {code}", "", f"{entry['meaning'][0].upper()}{entry['meaning'][1:]}.", ""]
        lines += [f"Example: {entry['example']}", ""]
        if codes[code]:
            lines.append("Raised with:")
            lines.append("")
            for raised in codes[code]:
                severity = " (*warning*)" if raised.warning else ""
                fix = f" Fix: {_escaped(raised.fix)}" if raised.fix else ""
                lines.append(f"- {_escaped(raised.message)}{severity}.{fix} (`{raised.module}`)")
            lines.append("")
    return "\n".join(lines)


# --- the command line --------------------------------------------------------------------------------


def _commands(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():  # in the order the app declares them
        if not getattr(sub, "hidden", False):
            yield from _commands(sub, [*path, name])


def cli_reference() -> str:
    group = typer.main.get_command(app)
    context_type: Callable[..., Any] = type(group).context_class  # the Click of Typer's own (typer._click)
    lines = []
    for path, command in _commands(group, ["meshkit"]):
        context = context_type(command, info_name=path[-1])
        if len(path) == 1:
            lines += [plain_text(command.help or ""), ""]
            continue
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
        usage = " ".join([*path, "[OPTIONS]" if options else "", *(_argument_usage(a) for a in arguments)])
        subcommands = getattr(command, "commands", None)
        if subcommands:
            usage = " ".join([*path, "COMMAND [ARGS]..."])
        lines += [f"### {' '.join(path)}", "", plain_text(command.help or ""), ""]
        lines += ["```", " ".join(usage.split()), "```", ""]
        if subcommands:
            lines += ["Commands: " + ", ".join(f"[`{name}`](#{'-'.join([*path, name])})" for name in subcommands), ""]
            continue
        if arguments or options:
            lines += ["| argument or option | what it does |", "|---|---|"]
            for argument in arguments:
                required = "" if argument.required else " (optional)"
                lines.append(f"| `{_argument_usage(argument)}`{required} | {_cell(argument.help or '')} |")
            for option in options:
                record = option.get_help_record(context)
                if record:
                    lines.append(f"| `{record[0]}` | {_cell(record[1])} |")
            lines.append("")
    return "\n".join(lines)


def _argument_usage(argument: Any) -> str:
    name = (argument.name or "").upper()
    return f"[{name}]..." if argument.nargs == -1 else name


# --- the scenarios, for the tutorials ----------------------------------------------------------------


def _scenario_lines(step: str) -> list[str]:
    """A scenario step's stack file (tests/scenarios/<step>.yaml) without its title comment."""
    path = SCENARIOS / f"{step}.yaml"
    if not path.is_file():
        raise PluginError(f"{path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return lines


def scenario_file(step: str) -> str:
    """The whole stack file of a step, as the tests hold it."""
    return "\n".join(["```yaml", *_scenario_lines(step), "```"])


def scenario_diff(before: str, after: str) -> str:
    """The change to the stack file from one step to the next, from the files the tests run."""
    diff = difflib.unified_diff(_scenario_lines(before), _scenario_lines(after), lineterm="", n=2)
    return "\n".join(["```diff", *(line for line in diff if not line.startswith(("---", "+++"))), "```"])


# --- what is not supported yet -----------------------------------------------------------------------


def readme_section(title: str) -> str:
    """A section of README.md, whose list the site shows as it is (the README is where it is kept)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if found is None:
        raise PluginError(f"README.md has no section '## {title}'")
    return found.group(1).strip() + "\n"


# --- the hook ----------------------------------------------------------------------------------------

# --- the order rules -----------------------------------------------------------------------------------


def order_rules() -> str:
    """The table of the deployment graph's rules (meshkit.mesh.order.ORDER_RULES), the order every step follows."""
    lines = ["| rule | first | then | when | why |", "|---|---|---|---|---|"]
    for rule in ORDER_RULES:
        cells = (f"`{rule.name}`", rule.first, rule.then, rule.when, rule.reason)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


GENERATED: dict[str, Callable[..., str]] = {
    "scenario-file": scenario_file,
    "scenario-diff": scenario_diff,
    "config-reference": config_reference,
    "error-codes": error_codes,
    "cli-reference": cli_reference,
    "order-rules": order_rules,
    "not-supported": lambda: readme_section("Not supported yet"),
}
# Files of the repository the site serves as they are: the schema, and the benchmark report with its plots
# (BENCHMARKS.md stays where `make bench` writes it).
COPIED = {
    "reference/stack-file.schema.json": SCHEMA_PATH,
    "operations/benchmark-results.md": REPO / "BENCHMARKS.md",
    "operations/bench/mock_cost.png": REPO / "bench" / "mock_cost.png",
    "operations/bench/engine_scale.png": REPO / "bench" / "engine_scale.png",
}


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for uri, source in COPIED.items():
        if not source.is_file():
            raise PluginError(f"{source} is missing: the site serves it as {uri}")
        files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    def generated(match: re.Match[str]) -> str:
        name, arguments = match.group(1), match.group(2).split()
        if name not in GENERATED:
            raise PluginError(f"{page.file.src_uri}: no generator for the marker {match.group(0)}")
        try:
            return GENERATED[name](*arguments)
        except TypeError as err:
            raise PluginError(f"{page.file.src_uri}: {match.group(0)}: {err}") from err

    return MARKER.sub(generated, markdown)
