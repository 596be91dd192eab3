"""Generated stacks for the benchmarks: N services × 3 versions, a canary split, one header route each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

NAMESPACES = 10


def stack_config(services: int) -> dict[str, Any]:
    """The ``meshkit:`` keys of a stack of ``services`` services, spread over 10 namespaces."""
    namespaces = {f"team-{i}": {} for i in range(min(NAMESPACES, services))}
    config: dict[str, Any] = {"namespaces": namespaces, "services": {}}
    for i in range(services):
        name = f"svc-{i:04d}"
        config["services"][name] = {
            "namespace": f"team-{i % NAMESPACES}",
            "ports": [{"name": "http", "port": 8080}],
            "versions": {
                v: {"image": f"registry.local/{name}:1.{n}", "replicas": 2} for n, v in enumerate(["v1", "v2", "v3"])
            },
            "traffic": {
                "weights": {"v1": 80, "v2": 10, "v3": 10},
                "timeout": "5s",
                "routes": [{"name": "testers", "match": {"headers": {"x-tester": {"exact": "yes"}}}, "to": "v3"}],
            },
        }
    return config


def with_weight_change(config: dict[str, Any], service_index: int = 0) -> dict[str, Any]:
    """The same stack with one service's canary moved from 10% to 20%."""
    changed = yaml.safe_load(yaml.safe_dump(config))
    weights = changed["services"][f"svc-{service_index:04d}"]["traffic"]["weights"]
    weights.update(v1=70, v2=20)
    return changed


def stack_file_text(config: dict[str, Any]) -> str:
    return yaml.safe_dump({"config": {f"meshkit:{k}": v for k, v in config.items()}}, sort_keys=False)


def write_stack_file(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(stack_file_text(config))
    return path
