"""Schema conformance: every rendered object against the Istio 1.30.3 CRD schemas (vendored) and the
Kubernetes schemas of the targeted Kubernetes version (from the ``kubernetes-validate`` package).

``meshkit check`` and the Pulumi program run it before anything is sent: on a first deployment the
namespace is created in the same step as its objects, so the engine's server-side dry run cannot check
them (the namespace does not exist yet) and the API server would be the first to see a bad object,
halfway through the step. CEL rules (``x-kubernetes-validations``) are not evaluated here; the values they
guard (durations, ranges) are checked by the models.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import kubernetes_validate.utils as kubernetes_schemas
import yaml
from referencing import Registry, Resource

from .errors import Finding
from .render import Manifest

ISTIO_VERSION = "1.30.3"
KUBERNETES_VERSION = "1.36"
"""The Kubernetes release targeted: the one the live test tier runs (toolchain/versions.env)."""


@cache
def istio_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind)`` → the openAPIV3Schema of every served version of every Istio CRD."""
    text = resources.files("meshkit").joinpath(f"schemas/istio-{ISTIO_VERSION}/customresourcedefinitions.gen.yaml")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schemas = {}
    for crd in yaml.load_all(text.read_text(), Loader=loader):
        if not crd:
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


@cache
def _kubernetes_registry() -> Registry:
    # The shared definitions are one large file: load and index it once, not once per object.
    definitions = kubernetes_schemas.schema_contents(
        f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict/_definitions.json", KUBERNETES_VERSION
    )
    return Resource.from_contents(definitions) @ Registry()  # type: ignore[no-any-return]


@cache
def _validator(api_version: str, kind: str) -> Any:
    """A validator for one kind, built once (building one costs far more than using it)."""
    if (api_version, kind) in istio_schemas():
        return jsonschema.Draft7Validator(istio_schemas()[(api_version, kind)])
    # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 → rbac-v1, apps/v1 → apps-v1.
    group_version = api_version.replace("/", "-") if "/" in api_version else api_version
    group_version = group_version.split(".", 1)[0] + ("-" + api_version.rsplit("/", 1)[1] if "." in api_version else "")
    schema = kubernetes_schemas.schema_contents(
        f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict/{kind.lower()}-{group_version}.json",
        KUBERNETES_VERSION,
    )
    return jsonschema.Draft202012Validator(schema, registry=_kubernetes_registry())


def schema_errors(manifest: Manifest) -> list[str]:
    """Every way ``manifest`` violates its schema, as ``path: message``; empty when it conforms."""
    validator = _validator(manifest["apiVersion"], manifest["kind"])
    if validator.is_valid(manifest):
        return []
    return sorted(
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(manifest)
    )


def conformance_findings(manifests: Iterable[Manifest]) -> list[Finding]:
    """MK007 for every rendered object its schema would refuse: a defect of meshkit's rendering, or a value
    the models let through, found before the engine sends anything."""
    findings = []
    for manifest in manifests:
        metadata = manifest["metadata"]
        obj = f"{manifest['kind']} {metadata['name']}" + (f".{metadata['namespace']}" if "namespace" in metadata else "")
        for error in schema_errors(manifest):
            findings.append(
                Finding(
                    f"(rendered {manifest['kind']} {metadata['name']})",
                    "MK007",
                    f"the rendered object does not conform to its schema (Istio {ISTIO_VERSION} CRDs, Kubernetes "
                    f"{KUBERNETES_VERSION}): {error}",
                    "report this as a meshkit defect with the stack file; meanwhile change the value named",
                    obj=obj,
                )
            )
    return findings
