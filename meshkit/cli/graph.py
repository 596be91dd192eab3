"""``meshkit graph``: a picture of the stack's traffic (Mermaid, Graphviz's dot, or an image made by ``dot``).
A thin layer over :mod:`meshkit.rollout.draw`; ``--live`` labels the edges with :mod:`meshkit.metrics.live`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from meshkit.cli.common import StackArg, err, run, write_file
from meshkit.config.stack import StackConfig
from meshkit.engine.sources import resolve_stack
from meshkit.errors import MeshkitError
from meshkit.mesh.checks import load_stack_file
from meshkit.metrics.live import LIVE_WINDOW, live_traffic
from meshkit.rollout.draw import LiveLabels, to_dot, to_mermaid
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


def live_labels(config: StackConfig, window: str = LIVE_WINDOW) -> LiveLabels:
    """The edges' live text for ``graph --live``; when Prometheus does not answer, said on stderr and none (the
    declared graph is drawn)."""
    traffic = live_traffic(config, window)
    if traffic.problem:
        err.print(f"graph --live: no live numbers, drawing the declared graph only: {traffic.problem}", markup=False)
    return traffic.labels()


def graph(
    stack: StackArg,
    output_format: Annotated[GraphFormat, typer.Option("--format", help="mermaid, dot, svg or png.")] = (
        GraphFormat.MERMAID
    ),
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file instead of stdout.")] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Label each edge with its requests/s, errors and latency (Prometheus).")
    ] = False,
) -> None:
    """Picture the stack's traffic: services, versions, weights, header routes and faults as labelled edges."""
    _, path = resolve_stack(stack)

    def body() -> int:
        config = load_stack_file(path)
        summary = stack_summary(config)
        labels = live_labels(config) if live else None
        data: bytes
        if output_format is GraphFormat.MERMAID:
            data = to_mermaid(summary, labels).encode()
        elif output_format is GraphFormat.DOT:
            data = to_dot(summary, labels).encode()
        else:
            data = graphviz(to_dot(summary, labels), output_format.value)
        if output is not None:
            write_file(output, data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return 0

    run(body)
