"""Schema conformance: every rendered object against the Istio 1.30.3 and Gateway API v1.6.1 CRD schemas
(vendored) and the Kubernetes schemas of the targeted Kubernetes version (from the ``kubernetes-validate``
package). A custom resource's schema is found by API group and kind: Istio and the Gateway API both have a
kind ``Gateway`` (an ingress's and a waypoint).

``meshkit check`` and the Pulumi program run it before anything is sent: on a first deployment the
namespace is created in the same step as its objects, so the engine's server-side dry run cannot check
them (the namespace does not exist yet) and the API server would be the first to see a bad object,
halfway through the step. CEL rules (``x-kubernetes-validations``) are not evaluated here; the values they
guard (durations, ranges) are checked by the models.

The ``jsonschema`` library decides, and writes every message. A compiled validator (``jsonschema_rs``,
tens of times faster per object) first tries to prove an object valid, and is trusted only where the two
cannot differ:

* on schemas that use nothing but the keywords listed in ``_audit`` (checked when a kind's validator is
  built; a kind whose schema uses anything else is left to ``jsonschema`` alone), with ``pattern``s whose
  syntax means the same in Python's ``re`` and the Rust engine (where ``$`` is, if anything, stricter);
* on objects made only of JSON values (``_plain_json``): the compiled validator takes a tuple for an
  array and a ``Decimal`` for an integer, and lets infinity and NaN past ``maximum``, where ``jsonschema``
  refuses them.

An object it does not accept goes to ``jsonschema``, whose errors are the result, so a refusal is
reported with the same path and message as before, and a false refusal costs time only.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urldefrag, urljoin

import yaml

from meshkit.errors import Finding
from meshkit.gcpause import gc_paused
from meshkit.mesh.manifest import Manifest, object_name

if TYPE_CHECKING:
    import jsonschema_rs

ISTIO_VERSION = "1.30.3"
GATEWAY_API_VERSION = "v1.6.1"
_CRD_FILES = (
    f"schemas/istio-{ISTIO_VERSION}/customresourcedefinitions.gen.yaml",
    f"schemas/gateway-api-{GATEWAY_API_VERSION}/gateway.networking.k8s.io_httproutes.yaml",
    f"schemas/gateway-api-{GATEWAY_API_VERSION}/gateway.networking.k8s.io_gateways.yaml",
)
KUBERNETES_VERSION = "1.36"
"""The Kubernetes release targeted: the one the live test tier runs (toolchain/versions.env)."""

KUBERNETES_DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
"""The ``$id`` of kubernetes-validate's shared definitions, which every Kubernetes schema refers into."""


@cache
def _crd_texts() -> dict[tuple[str, str], str]:
    """(API group, kind) → the text of its CustomResourceDefinition in the vendored files, unparsed: parsing
    all of them takes several times as long as parsing the few a stack renders."""
    crds = {}
    for name in _CRD_FILES:
        text = resources.files("meshkit").joinpath(name).read_text()
        for document in re.split(r"(?m)^---[ \t]*$", text):
            kind = re.search(r"(?m)^    kind: (\S+)[ \t]*$", document)  # spec.names.kind
            group = re.search(r"(?m)^  group: (\S+)[ \t]*$", document)  # spec.group
            if kind and group:
                crds[(group[1], kind[1])] = document
    return crds


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The openAPIV3Schema of ``kind`` at ``api_version`` in the vendored CRDs (Istio, Gateway API); None when
    neither has that group and kind, or does not serve that version."""
    group, _, version = api_version.rpartition("/")
    text = _crd_texts().get((group, kind))
    if text is None:
        return None
    with gc_paused():
        crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if (crd["spec"]["group"], crd["spec"]["names"]["kind"]) != (group, kind):
        raise ValueError(f"the vendored CRD found for {group}/{kind} defines {crd['spec']['names']['kind']}")
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
            return schema
    return None


def _kubernetes_schema_file(name: str) -> Any:
    # Read from the package's files without importing it: its import pulls in jsonschema, which only the
    # objects the fast path does not accept need.
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("kubernetes-validate is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    return json.loads((package / f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict/{name}").read_text())


@cache
def _kubernetes_definitions() -> dict[str, Any]:
    # The shared definitions are one large file: load it once, not once per kind.
    definitions: dict[str, Any] = _kubernetes_schema_file("_definitions.json")
    return definitions


@cache
def _schema(api_version: str, kind: str) -> dict[str, Any]:
    custom = crd_schema(api_version, kind)
    if custom is not None:
        return custom
    # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 → rbac-v1, apps/v1 → apps-v1.
    group_version = api_version.replace("/", "-") if "/" in api_version else api_version
    group_version = group_version.split(".", 1)[0] + ("-" + api_version.rsplit("/", 1)[1] if "." in api_version else "")
    schema: dict[str, Any] = _kubernetes_schema_file(f"{kind.lower()}-{group_version}.json")
    return schema


def _is_custom(api_version: str, kind: str) -> bool:
    return crd_schema(api_version, kind) is not None


@cache
def _kubernetes_registry() -> Any:
    from referencing import Registry, Resource

    # Index the shared definitions once, not once per kind.
    return Resource.from_contents(_kubernetes_definitions()) @ Registry()


@cache
def _validator(api_version: str, kind: str) -> Any:
    """The ``jsonschema`` validator for one kind, built once (building one costs far more than using it).
    Imported here: a stack whose objects the fast path all accepts never needs it."""
    import jsonschema

    if _is_custom(api_version, kind):
        return jsonschema.Draft7Validator(_schema(api_version, kind))
    return jsonschema.Draft202012Validator(_schema(api_version, kind), registry=_kubernetes_registry())


# The keywords whose meaning the two validators share on JSON values (both follow the JSON Schema
# test suite on these; neither asserts `format` here). Anything else keeps a kind on jsonschema alone.
_JSON_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
_COUNTS = frozenset({"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"})
# `default` too: neither validator fills in or asserts defaults (the Gateway API CRDs have many).
_ANNOTATIONS = frozenset({"description", "title", "format", "nullable", "default"})
# Literals (letters, digits and the URL punctuation the Gateway API's patterns list), ASCII classes, anchors,
# groups without (?…), alternation, quantifiers, escaped punctuation and \xHH escapes: the same language in
# Python's re and in the Rust engine, except that its `$` matches at the very end only. Never `&&`, `--`,
# `~~` or `[[`, which are set operations or a nested class inside a Rust class and literals in Python.
_PORTABLE_PATTERN = re.compile(
    r"(?:[A-Za-z0-9_^$|()\[\]*+?{},.\-!#%&'~;=:@/`]|\\[.\-*/+?()\[\]{}|^$]|\\x[0-9a-fA-F]{2})*"
)
_SET_OPERATIONS = ("&&", "--", "~~", "[[")


def _audit(schema: dict[str, Any], documents: dict[str, dict[str, Any]]) -> bool:
    """Whether ``schema`` and everything it refers to use only the keywords on which ``jsonschema`` and
    ``jsonschema_rs`` agree. ``documents`` maps ``$id`` → document, for ``$ref`` resolution."""
    seen: set[int] = set()

    def resolve(base: str, ref: str) -> tuple[str, Any] | None:
        uri, fragment = urldefrag(urljoin(base, ref))
        if uri not in documents or (fragment and not fragment.startswith("/")):
            return None
        node: Any = documents[uri]
        for part in fragment.split("/")[1:]:
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return uri, node

    def ok(node: Any, base: str, root: bool = False) -> bool:
        if isinstance(node, bool) or id(node) in seen:  # a schema met before is audited once (and may recur)
            return True
        if not isinstance(node, dict):
            return False
        seen.add(id(node))
        for key, value in node.items():
            if key in _ANNOTATIONS or key.startswith("x-kubernetes-") or (root and key in {"$schema", "$id", "$defs"}):
                continue
            if key == "$ref":
                target = resolve(base, value) if isinstance(value, str) else None
                good = target is not None and ok(target[1], target[0])
            elif key == "type":
                types = value if isinstance(value, list) else [value]
                good = all(t in _JSON_TYPES for t in types)
            elif key == "enum":  # strings, and integers (both compare 302.0 equal to 302, and True to neither)
                good = isinstance(value, list) and all(v is None or isinstance(v, str) or type(v) is int for v in value)
            elif key == "required":
                good = isinstance(value, list) and all(isinstance(v, str) for v in value)
            elif key in _COUNTS:
                good = type(value) is int
            elif key in ("minimum", "maximum"):
                good = type(value) in (int, float)
            elif key == "pattern":
                good = (
                    isinstance(value, str)
                    and "(?" not in value
                    and not any(operation in value for operation in _SET_OPERATIONS)
                    and _PORTABLE_PATTERN.fullmatch(value) is not None
                )
            elif key == "properties":
                good = isinstance(value, dict) and all(ok(sub, base) for sub in value.values())
            elif key in ("additionalProperties", "items", "not"):  # `items` as one schema: no tuple form
                good = ok(value, base)
            elif key in ("allOf", "anyOf", "oneOf"):
                good = isinstance(value, list) and all(ok(sub, base) for sub in value)
            else:
                good = False
            if not good:
                return False
        return True

    return ok(schema, schema.get("$id", ""), root=True)


@cache
def _fast_validator(api_version: str, kind: str) -> jsonschema_rs.Validator | None:
    """The compiled validator for one kind, or None where it is not trusted (see the module docstring)."""
    import jsonschema_rs

    schema = _schema(api_version, kind)
    try:
        if _is_custom(api_version, kind):
            if not _audit(schema, {"": schema}):
                return None
            return jsonschema_rs.Draft7Validator(schema, validate_formats=False, offline=True)
        definitions = _kubernetes_definitions()
        if not _audit(schema, {schema.get("$id", ""): schema, KUBERNETES_DEFINITIONS: definitions}):
            return None
        registry = _kubernetes_rs_registry()
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=False, registry=registry, offline=True)
    except ValueError:  # a schema the compiled validator cannot build: jsonschema alone decides
        return None


@cache
def _kubernetes_rs_registry() -> jsonschema_rs.Registry:
    import jsonschema_rs

    return jsonschema_rs.Registry([(KUBERNETES_DEFINITIONS, _kubernetes_definitions())])


_PLAIN_SCALARS: tuple[type, ...] = (str, int, bool, type(None))


def _plain_json(value: Any) -> bool:
    """Whether ``value`` is made of dicts, lists, strings, ints, bools, None and finite floats only (exact
    types), the values on which the two validators agree."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind not in _PLAIN_SCALARS:
            return False
    return True


def schema_errors(manifest: Manifest) -> list[str]:
    """Every way ``manifest`` violates its schema, as ``path: message``; empty when it conforms."""
    fast = _fast_validator(manifest["apiVersion"], manifest["kind"])
    if fast is not None and _plain_json(manifest):
        try:
            if fast.is_valid(manifest):
                return []
        except ValueError:  # a value it cannot read (a non-string key, a lone surrogate): jsonschema decides
            pass
    return jsonschema_errors(manifest)


def jsonschema_errors(manifest: Manifest) -> list[str]:
    """:func:`schema_errors` by ``jsonschema`` alone, without the fast path: what the fast path must agree with."""
    validator = _validator(manifest["apiVersion"], manifest["kind"])
    return sorted(
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(manifest)
    )


def conformance_findings(manifests: Iterable[Manifest]) -> list[Finding]:
    """MK007 for every rendered object its schema would refuse: a defect of meshkit's rendering, or a value
    the models let through, found before the engine sends anything."""
    findings = []
    for manifest in manifests:
        metadata = manifest["metadata"]
        for error in schema_errors(manifest):
            findings.append(
                Finding(
                    f"(rendered {manifest['kind']} {metadata['name']})",
                    "MK007",
                    f"the rendered object does not conform to its schema (Istio {ISTIO_VERSION} and Gateway API "
                    f"{GATEWAY_API_VERSION} CRDs, Kubernetes {KUBERNETES_VERSION}): {error}",
                    "report this as a meshkit defect with the stack file; meanwhile change the value named",
                    obj=object_name(manifest),
                )
            )
    return findings
