"""Istio's own verdict on the live control plane: `istioctl analyze` against its API server, and admission by
istiod's webhooks (toolchain/istiod.py). The istioctl is the one built with istiod (toolchain/versions.env),
linked into the cluster's bin directory."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from toolchain.cluster import LocalCluster

from ..istio.istioctl import Allowed, allowed_messages, failing, format_message

# Messages of `istioctl analyze` against the live cluster that the live tier accepts; same format as
# tests/istio/allowed_messages.yaml.
ALLOWED_LIVE_MESSAGES = Path(__file__).parent / "allowed_istio_messages.yaml"

# What one `istioctl analyze` of the live cluster took, per call: the time the tier spends on it.
ANALYZE_SECONDS: list[float] = []


def istioctl(cluster: LocalCluster) -> Path:
    return cluster.directory / "bin" / "istioctl"


def analyze_cluster(cluster: LocalCluster) -> list[dict[str, Any]]:
    """``istioctl analyze -A --failure-threshold Warning`` against the cluster's API server: every message.

    With ``-o json`` istioctl exits 0 whatever it finds (the threshold acts on its default output only), so
    the messages are read from the JSON and the threshold applied by :func:`findings`.
    """
    started = time.monotonic()
    result = subprocess.run(
        [str(istioctl(cluster)), "analyze", "--kubeconfig", str(cluster.kubeconfig), "--all-namespaces",
         "--failure-threshold", "Warning", "-o", "json"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    ANALYZE_SECONDS.append(time.monotonic() - started)
    assert result.returncode == 0, f"istioctl analyze failed (exit {result.returncode}):\n{result.stderr}"
    messages = json.loads(result.stdout)
    assert isinstance(messages, list), result.stdout
    return messages


def live_allowed_messages() -> list[Allowed]:
    return allowed_messages(ALLOWED_LIVE_MESSAGES)


def findings(cluster: LocalCluster) -> list[str]:
    """What fails the gate (Warning or Error, not allow-listed), formatted; empty when Istio finds nothing."""
    return [format_message(m) for m in failing(analyze_cluster(cluster), live_allowed_messages())]
