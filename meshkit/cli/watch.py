"""``meshkit watch``: a terminal view of the traffic that flows, refreshed, per service and version (weight,
requests per second, success, latency), for watching a step. A thin layer over :mod:`meshkit.metrics.live`."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from meshkit.cli.common import StackArg, out, run
from meshkit.cli.guard import interval_seconds
from meshkit.config.stack import StackConfig
from meshkit.engine.sources import resolve_stack
from meshkit.mesh.checks import load_stack_file
from meshkit.metrics.gate import percentile_label
from meshkit.metrics.live import LIVE_WINDOW, LiveTraffic, live_traffic


def traffic_view(config: StackConfig, traffic: LiveTraffic) -> Group:
    """The table of every service's versions: declared weight and, when Prometheus answered, the traffic."""
    table = Table("Service", "Version", "Weight", "req/s", "Success", "Latency", box=None, pad_edge=False)
    for name, svc in config.services.items():
        weights = svc.default_weights()
        for version in svc.versions:
            live = traffic.versions.get(name, {}).get(version)
            if live is None or live.stats.requests <= 0:
                numbers = ("0.0" if live is not None else "—", "—", "—")
            else:
                rate, latency = live.stats.success_rate, live.stats.latency_ms
                numbers = (
                    f"{live.rps:.1f}",
                    f"{rate:.1f}%" if rate is not None else "—",
                    f"{percentile_label(live.percentile)} {latency:.0f} ms" if latency is not None else "—",
                )
            table.add_row(name, version, f"{weights.get(version, 0)}%", *numbers)
    moment = datetime.now().strftime("%H:%M:%S")
    heading = f"{moment}: requests over the last {traffic.window}"
    note = f"no live numbers: {traffic.problem}" if traffic.problem else ""
    return Group(Text(heading), table, *([Text(note)] if note else []))


def watch(
    stack: StackArg,
    interval: Annotated[str, typer.Option(help="How often to refresh, e.g. 2s.")] = "2s",
    window: Annotated[str, typer.Option(help="How far back each refresh reads, e.g. 1m.")] = LIVE_WINDOW,
    once: Annotated[bool, typer.Option(help="Print the view once and exit.")] = False,
) -> None:
    """Watch the traffic per service and version (weight, requests per second, success, latency) from the stack's
    Prometheus, refreshed every interval; the stack file is read again at each refresh. Ctrl-C to stop."""
    seconds = interval_seconds(interval)
    if interval_seconds(window) < 10:
        raise typer.BadParameter(f"--window {window!r} is shorter than 10s (a few scrapes): e.g. '1m'")
    _, path = resolve_stack(stack)

    def view() -> Group:
        config = load_stack_file(path)
        return traffic_view(config, live_traffic(config, window))

    def body() -> int:
        if once:
            out.print(view(), markup=False)
            return 0
        try:
            with Live(view(), console=out, auto_refresh=False) as screen:
                while True:
                    time.sleep(seconds)
                    screen.update(view(), refresh=True)
        except KeyboardInterrupt:
            return 0

    run(body)
