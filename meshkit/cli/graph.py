"""``meshkit graph``: a picture of the stack's traffic (Mermaid, Graphviz's dot, or an image made by ``dot``).
A thin layer over :mod:`meshkit.rollout.draw`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from meshkit.cli.common import StackArg, run, write_file
from meshkit.engine.sources import resolve_stack
from meshkit.errors import MeshkitError
from meshkit.mesh.checks import load_stack_file
from meshkit.rollout.draw import to_dot, to_mermaid
from meshkit.rollout.summary import stack_summary


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"
    SVG = "svg"
    PNG = "png"


def graphviz(dot_text: str, image_format: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise MeshkitError(
            f"--format {image_format} needs Graphviz's `dot` on PATH (Debian: apt-get install graphviz); "
            "--format mermaid and --format dot need nothing"
        )
    result = subprocess.run([dot, f"-T{image_format}"], input=dot_text.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        raise MeshkitError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def graph(
    stack: StackArg,
    output_format: Annotated[GraphFormat, typer.Option("--format", help="mermaid, dot, svg or png.")] = (
        GraphFormat.MERMAID
    ),
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Picture the stack's traffic: services, versions, weights, header routes and faults as labelled edges."""
    _, path = resolve_stack(stack)

    def body() -> int:
        summary = stack_summary(load_stack_file(path))
        data: bytes
        if output_format is GraphFormat.MERMAID:
            data = to_mermaid(summary).encode()
        elif output_format is GraphFormat.DOT:
            data = to_dot(summary).encode()
        else:
            data = graphviz(to_dot(summary), output_format.value)
        if output is not None:
            write_file(output, data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return 0

    run(body)
