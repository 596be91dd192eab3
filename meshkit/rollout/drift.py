"""Drift: the traffic the cluster applies now against what the last deployment set (``meshkit plan --base
deployed`` on a stack that names a cluster). Someone who edits a VirtualService with kubectl changes who
gets which version without a review; the plan says so, next to the change under review, because the
next ``pulumi up`` will undo it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshkit.mesh.manifest import Manifest
from meshkit.rollout.plan import Change, Summary


def live_weights(virtual_service: Manifest) -> dict[str, int]:
    """Version → percent of a VirtualService's default route: its last HTTP rule without a match, which
    is where meshkit puts the service's weights."""
    rules = [rule for rule in virtual_service.get("spec", {}).get("http", []) if not rule.get("match")]
    if not rules:
        return {}
    return {d["destination"].get("subset", ""): int(d.get("weight", 100)) for d in rules[-1].get("route", [])}


def weight_drift(deployed: Summary, live: Mapping[str, Manifest]) -> list[Change]:
    """Per service of the deployed summary, each weight whose live value differs (``before`` is what the
    last deployment set, ``after`` what the cluster applies). ``live`` maps service names to the
    VirtualService objects read from the cluster; a missing one is drift too."""
    changes = []
    for name, service in (deployed.get("services") or {}).items():
        if service.get("api") == "gateway":
            continue  # routed by an HTTPRoute, which is not read back yet (the next `up` still undoes edits)
        expected = {v: int(w) for v, w in (service.get("weights") or {}).items() if int(w)}
        if name not in live:
            changes.append(Change(name, "VirtualService", "present", ""))
            continue
        found = live_weights(live[name])
        for version in [*expected, *(v for v in found if v not in expected)]:
            before, after = expected.get(version), found.get(version)
            if before != after:
                changes.append(Change(name, f"weight {version}", _text(before), _text(after)))
    return changes


def _text(weight: Any) -> str:
    return "" if weight is None else str(weight)
