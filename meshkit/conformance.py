"""Schema conformance: every rendered object against the Istio 1.30.3 CRD schemas (vendored) and the
Kubernetes schemas of the targeted Kubernetes version (from the ``kubernetes-validate`` package).

Needs the ``schemas`` extra (``pip install meshkit[schemas]``). CEL rules (``x-kubernetes-validations``)
are not evaluated here; the values they guard (durations, ranges) are checked by the models.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from .errors import MeshkitError
from .render import Manifest

ISTIO_VERSION = "1.30.3"
KUBERNETES_VERSION = "1.33.0"
"""The Kubernetes version targeted: the one whose client libraries pulumi-kubernetes 4.25 is built with."""


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


def schema_errors(manifest: Manifest) -> list[str]:
    """Every way ``manifest`` violates its schema, as ``path: message``; empty when it conforms."""
    try:
        import jsonschema
        import kubernetes_validate
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise MeshkitError(f"schema checks need the 'schemas' extra: pip install 'meshkit[schemas]' ({err})") from err

    key = (manifest["apiVersion"], manifest["kind"])
    if key in istio_schemas():
        validator = jsonschema.Draft7Validator(istio_schemas()[key])
        return sorted(
            f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(manifest)
        )
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{'.'.join(map(str, err.path)) or '(root)'}: {err.message}"]
    return []
