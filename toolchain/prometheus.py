"""The local cluster's Prometheus: Debian's (toolchain/system-packages.sh), on a free loopback port, scraping
every Envoy of the real node (each proxy's ``/stats/prometheus`` on port 15090 of its pod, which the
sidecar's iptables rules never intercept), for meshkit's canary analysis (meshkit/metrics).

Debian builds Prometheus without Kubernetes service discovery, so the targets come from a file
(``file_sd_configs``) that a small process of this module keeps equal to the proxied pods the API server
lists (``python -m toolchain.prometheus targets``, one request a second, the file rewritten whole when it
changes): every running pod with a container port named ``http-envoy-prom`` (Istio's injected sidecar and
its gateways declare 15090 so), labelled with its namespace, pod, ``app`` and ``version``. Prometheus reads
the file again when it changes. Both processes are components of the cluster, stopped by their PIDs.

Standard library only, like the rest of toolchain/.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

BINARY = "prometheus"
TARGETS = "prometheus-targets"
"""The component that refreshes the targets file (this module, run by Python: see :func:`runs_targets`)."""
MODULE = "toolchain.prometheus"
ENVOY_STATS_PORT = 15090
ENVOY_STATS_PORT_NAME = "http-envoy-prom"
# Seconds: how often each proxy is scraped. The gate's shortest window (10 s) holds several scrapes.
SCRAPE_INTERVAL = 2


def config_text(targets_file: Path) -> str:
    """Prometheus's configuration: one job, the proxies' Envoy statistics."""
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL}s", "scrape_timeout": f"{SCRAPE_INTERVAL}s"},
        "scrape_configs": [{
            "job_name": "envoy-stats",
            "metrics_path": "/stats/prometheus",
            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
        }],
    }  # fmt: skip
    return json.dumps(config, indent=2) + "\n"  # JSON is YAML


def command(directory: Path, port: int) -> list[str]:
    return [
        BINARY, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d", "--log.level=warn",
    ]  # fmt: skip


def targets_command(directory: Path, server: str, pki: Path) -> list[str]:
    return [
        sys.executable, "-m", MODULE, "targets", "--server", server, "--out", str(directory / "targets.json"),
        "--ca", str(pki / "ca.crt"), "--cert", str(pki / "admin.crt"), "--key", str(pki / "admin.key"),
    ]  # fmt: skip


def runs_targets(argv: list[str]) -> bool:
    """Whether a command line is the targets refresher's (its argv[0] is Python's, not the component's name)."""
    return MODULE in argv and "targets" in argv


def pod_targets(pods: dict[str, Any]) -> list[dict[str, Any]]:
    """The file_sd entries of a pod list (``/api/v1/pods``): the running pods with an Envoy statistics port."""
    entries = []
    for pod in pods.get("items", []):
        status, spec, meta = pod.get("status", {}), pod.get("spec", {}), pod.get("metadata", {})
        if status.get("phase") != "Running" or not status.get("podIP") or meta.get("deletionTimestamp"):
            continue
        containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
        ports = [p for c in containers for p in c.get("ports", []) if p.get("name") == ENVOY_STATS_PORT_NAME]
        if not ports:
            continue
        labels = meta.get("labels", {})
        entry_labels = {"namespace": meta["namespace"], "pod": meta["name"]}
        entry_labels |= {key: labels[key] for key in ("app", "version") if key in labels}
        port = ports[0].get("containerPort", ENVOY_STATS_PORT)
        entries.append({"targets": [f"{status['podIP']}:{port}"], "labels": entry_labels})
    return sorted(entries, key=lambda entry: entry["targets"])


def write_if_changed(path: Path, entries: list[dict[str, Any]]) -> bool:
    text = json.dumps(entries, indent=1) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)  # whole or not at all: Prometheus never reads half a file
    return True


def refresh_targets(server: str, out: Path, context: ssl.SSLContext, interval: float) -> None:
    """Keep ``out`` equal to the proxied pods, forever; an API server that does not answer keeps the file."""
    while True:
        try:
            with urllib.request.urlopen(f"{server}/api/v1/pods", timeout=10, context=context) as response:
                pods = json.load(response)
        except (OSError, ValueError) as err:
            print(f"[prometheus-targets] listing pods: {err}", file=sys.stderr, flush=True)
        else:
            write_if_changed(out, pod_targets(pods))
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["targets"])
    parser.add_argument("--server", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    context = ssl.create_default_context(cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    try:
        refresh_targets(args.server, args.out, context, args.interval)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
