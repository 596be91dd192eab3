"""``meshkit render``: every manifest of the stack as YAML, exactly what the program registers, without the
engine. A thin layer over :func:`meshkit.mesh.render.render_stack`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from meshkit.cli.common import StackArg, out, run, write_file
from meshkit.engine.sources import resolve_stack
from meshkit.errors import MeshkitError
from meshkit.mesh.checks import load_stack_file
from meshkit.mesh.manifest import Manifest, manifests_to_yaml
from meshkit.mesh.render import render_stack


def manifest_file_name(manifest: Manifest) -> str:
    """``<kind>[.<group>]_[<namespace>_]<name>.yaml``, one file per object: no kind, group, namespace or name holds
    '_', so two objects never share a file (not even an Istio Gateway and a Gateway API Gateway of one name)."""
    meta = manifest["metadata"]
    group = manifest["apiVersion"].rpartition("/")[0]
    kind = manifest["kind"].lower() + (f".{group}" if group else "")
    return "_".join([kind, *([meta["namespace"]] if "namespace" in meta else []), meta["name"]]) + ".yaml"


def render(
    stack: StackArg,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write one file per object here.")] = None,
) -> None:
    """Print every manifest of the stack as YAML, exactly what the program registers, without the engine."""
    _, path = resolve_stack(stack)

    def body() -> int:
        manifests = render_stack(load_stack_file(path))
        if output is None:
            sys.stdout.write(manifests_to_yaml(manifests))
            return 0
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MeshkitError(f"{output}: cannot make the directory: {error.strerror or error}") from None
        files = {manifest_file_name(manifest): manifest for manifest in manifests}
        for name, manifest in files.items():
            write_file(output / name, manifests_to_yaml([manifest]).encode("utf-8"))
        out.print(f"{len(files)} manifests written to {output}", markup=False)
        return 0

    run(body)
