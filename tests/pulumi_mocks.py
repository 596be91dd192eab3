"""Run Pulumi code under the SDK's mocks and record every registration: type, name, inputs, dependencies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks, rpc, settings


@dataclass
class Registration:
    type: str
    name: str
    inputs: dict[str, Any]
    dependencies: list[str]
    parent: str
    secret_inputs: list[str] = field(default_factory=list)
    """Top-level inputs the SDK sent to the engine as secrets (encrypted in the state)."""
    request: Any = None
    """The whole RegisterResource request (protect, ignoreChanges, provider, aliases, ...)."""


@dataclass
class Recorder(mocks.Mocks):
    registrations: list[Registration] = field(default_factory=list)

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", args.inputs

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def by_name(self, name: str) -> Registration:
        (found,) = [r for r in self.registrations if r.name == name]
        return found

    def names_of(self, urns: list[str]) -> set[str]:
        return {urn.rsplit("::", 1)[-1] for urn in urns}


class _RecordingMonitor(mocks.MockMonitor):
    """The SDK's mock monitor, plus the dependencies and parent of each request, which mocks do not show."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.recorder = recorder

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = mocks.rpc.deserialize_properties(request.object)
            wire = json_format.MessageToDict(request.object)
            secret = sorted(key for key, value in wire.items() if rpc._special_secret_sig in json.dumps(value))
            self.recorder.registrations.append(
                Registration(
                    request.type, request.name, inputs, list(request.dependencies), request.parent, secret, request
                )
            )
        return response


@contextmanager
def pulumi_mocks(
    config: dict[str, Any] | None = None, secret_keys: list[str] | None = None
) -> Iterator[Callable[[Callable[[], Any]], Recorder]]:
    """Install mocks for the duration of a test and restore the runtime settings afterwards.

    Yields ``run(fn)``: runs ``fn`` as a Pulumi program, waits for every registration, returns the recorder.
    """
    recorder = Recorder()
    engine_config = {f"meshkit:{k}": json.dumps(v) for k, v in (config or {}).items()}
    runtime_config.set_all_config(engine_config, secret_keys or [])
    mocks.set_mocks(recorder, project="meshkit", stack="test", preview=False, monitor=_RecordingMonitor(recorder))

    def run(fn: Callable[[], Any]) -> Recorder:
        mocks.test(fn)()
        return recorder

    run.recorder = recorder  # type: ignore[attr-defined]  # for tests whose program raises
    try:
        yield run
    finally:
        runtime_config.set_all_config({}, [])
        settings.reset_options()
        settings.ROOT.set(None)
        pulumi.runtime.settings.SETTINGS.outputs.clear()
