"""``meshkit guard``: watch a canary and roll it back when the analysis keeps failing it. A thin layer over
:mod:`meshkit.engine.guard` (the loop, the rollback edit) and :mod:`meshkit.engine.step` (performing it)."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Annotated

import typer

from meshkit.cli.common import StackArg, err, out, run
from meshkit.config.values import duration_seconds
from meshkit.engine import guard as engine
from meshkit.engine.sources import project_root, resolve_stack
from meshkit.engine.step import run_step, step_command
from meshkit.metrics.gate import Verdict


def interval_seconds(text: str) -> float:
    seconds = duration_seconds(text)
    if seconds <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration: write it like '10s', '500ms' or '1m'")
    return seconds


def _say(line: str) -> None:
    out.print(f"[{datetime.now().strftime('%H:%M:%S')}] guard: {line}", markup=False)
    sys.stdout.flush()


def guard(
    stack: StackArg,
    service: Annotated[str, typer.Argument(help="The service whose canary to watch.")],
    interval: Annotated[str, typer.Option(help="How often to judge the canary, e.g. 10s or 1m.")] = "10s",
    failures: Annotated[int, typer.Option(min=1, help="Roll back after this many failed checks in a row.")] = 3,
    once: Annotated[bool, typer.Option(help="Judge once (a failure rolls back, as with --failures 1).")] = False,
) -> None:
    """Watch a canary: judge it by traffic.analysis every interval; after --failures failed checks in a row, send
    its traffic to the stable version in the stack file and perform that step (`meshkit up`). Never moves traffic
    forward. Too few requests and Prometheus not answering are said at each check and are no failure.

    Exit codes: 0 stopped without rolling back (--once, or no canary left), 1 refused (bad input, the rollback
    step refused or its `up` failed), 2 usage, 3 rolled back, 4 --once without evidence, 130 Ctrl-C."""
    seconds = interval_seconds(interval)
    name, path = resolve_stack(stack)
    settings = engine.GuardSettings(seconds, failures, once)

    written: list[object] = []

    def roll_back(verdict: Verdict) -> int:
        _say(f"rolling back: canary {verdict.canary.version} failed {settings.needed} check(s) in a row: "
             f"{'; '.join(verdict.failures)}")  # fmt: skip
        _say(engine.write_rollback(path, service, verdict))
        written.append(path)
        status = run_step(step_command(path, name), project_root(path.resolve().parent), _say)
        if status != 0:
            _say(f"the rollback is written in {path} but `meshkit up` failed (exit {status}): run `meshkit up {stack}`")
            return status
        _say(f"rollback performed: {verdict.canary.version} takes no traffic. The change to {path} is not "
             f"committed: review and commit it (git diff {path})")  # fmt: skip
        return 0

    def watch() -> int:
        _say(f"watching {service} in {path} every {interval}, rolling back after {settings.needed} failed check(s) "
             "in a row (Ctrl-C to stop)")  # fmt: skip
        return engine.guard_loop(lambda: engine.check_canary(path, service), roll_back, _say, time.sleep, settings)

    def body() -> int:
        try:
            return watch()
        except KeyboardInterrupt:
            unfinished = f": the rollback is written in {path}, perhaps not performed: run `meshkit up {stack}`"
            err.print(f"guard: stopped (Ctrl-C){unfinished if written else ''}", markup=False)
            return engine.INTERRUPTED

    run(body)
