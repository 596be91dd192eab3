"""Requests through the real node's data plane, and what its Envoy proxies say about themselves.

Clients are the stand-in workload (toolchain/standin/) run with `kubectl exec` inside a meshed pod, so
requests leave through that pod's own sidecar as an application's would; the ingress gateway is reached
from the host on the loopback port `make cluster` prints. Every wait polls an observable (a pod's
readiness, a proxy's route table, a counter), never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from toolchain.cluster import LocalCluster

T = TypeVar("T")
STANDIN = "/standin"
# Envoy's Prometheus endpoint on every proxy (Istio's bootstrap: 15090, never intercepted), reachable from the
# node on the pod's address.
PROXY_STATS_PORT = 15090
# |measured share - weight| within Z standard deviations of a binomial count: a correct split fails this once
# in about 150,000 runs (two-sided normal tail at 4.5 sigma).
Z = 4.5


class KubectlError(AssertionError):
    """A kubectl command failed (a test failure, unless a wait expects it while something settles)."""


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 120, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something other than None or False; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KubectlError, subprocess.SubprocessError, OSError, ValueError, KeyError) as err:
            last = err
        else:
            if last is not None and last is not False:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last seen: {last!r})")


def binomial_bound(n: int, weight: int) -> float:
    """The largest distance between a measured share and ``weight``% this suite accepts for n requests."""
    p = weight / 100
    return Z * math.sqrt(p * (1 - p) / n)


def within_split(counts: dict[str, int], weights: dict[str, int]) -> list[str]:
    """What is wrong with ``counts`` (answers per version) for ``weights``; empty when within bound."""
    n = sum(counts.values())
    problems = [f"{v} answered {c} times but has no weight" for v, c in counts.items() if not weights.get(v)]
    for version, weight in weights.items():
        share = counts.get(version, 0) / n if n else 0.0
        bound = binomial_bound(n, weight)
        if abs(share - weight / 100) > bound:
            problems.append(f"{version}: {share:.3f} of {n} answers, weight {weight}% (bound ±{bound:.3f})")
    return problems


@dataclass
class Load:
    """A client's continuous requests (`standin load` in a meshed pod), reported once a second."""

    process: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: threading.Thread | None = None

    def start_reading(self) -> None:
        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                with contextlib.suppress(ValueError):
                    self.lines.append(json.loads(line))

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    def intervals(self, start: float, end: float) -> list[dict[str, Any]]:
        """The reports of the intervals that ended between ``start`` and ``end`` (unix seconds)."""
        return [line for line in self.lines if not line.get("summary") and start <= line["t"] <= end + 1.5]

    def stop(self) -> dict[str, Any]:
        """Close the client's stdin (it stops and prints its summary) and return the summary."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)
        if self.reader:
            self.reader.join(timeout=10)
        summaries = [line for line in self.lines if line.get("summary")]
        assert summaries, "the load client printed no summary (its stderr: logs/load-client.log of the cluster)"
        return summaries[-1]


def total(intervals: list[dict[str, Any]], key: str) -> int:
    return sum(int(i.get(key, 0)) for i in intervals)


class Mesh:
    """The real node's cluster, as a user with kubectl and a browser sees it."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.kubectl_path = Path(str(cluster.state()["bin"])) / "kubectl"

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.kubectl_path), "--kubeconfig", str(self.cluster.kubeconfig), *args],
                                capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
        if check and result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", "pods", "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = json.loads(self.kubectl(*args).stdout)["items"]
        return items

    def ready_pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        return [
            p for p in self.pods(namespace, selector)
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]  # fmt: skip

    def pod_of(self, namespace: str, app: str, version: str = "v1") -> str:
        def ready() -> str | None:
            pods = self.ready_pods(namespace, f"app={app},version={version}")
            return pods[0]["metadata"]["name"] if pods else None

        return wait_for(f"a ready pod of {app} {version} in {namespace}", ready)

    # --- clients inside the mesh ---------------------------------------------------------------------

    def fetch(self, namespace: str, pod: str, url: str, *headers: str, timeout: float = 30) -> dict[str, Any]:
        """One request from ``pod``'s application container (through its sidecar, if it has one)."""
        args = [STANDIN, "fetch", "--url", url, "--timeout", f"{timeout}s"]
        for header in headers:
            args += ["--header", header]
        result = self.kubectl("exec", "-n", namespace, pod, "-c", pod_app_container(pod), "--", *args,
                              timeout=timeout + 30)  # fmt: skip
        answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return answer

    def load(self, namespace: str, pod: str, url: str, n: int, *headers: str, concurrency: int = 8) -> dict[str, Any]:
        """``n`` requests from ``pod``; the client's summary (counts by status and version, failures)."""
        args = [STANDIN, "load", "--url", url, "--n", str(n), "--concurrency", str(concurrency), "--interval", "60s"]
        for header in headers:
            args += ["--header", header]
        result = self.kubectl("exec", "-n", namespace, pod, "-c", pod_app_container(pod), "--", *args, timeout=600)
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        summary: dict[str, Any] = next(line for line in lines if line.get("summary"))
        return summary

    @contextlib.contextmanager
    def continuous_load(self, namespace: str, pod: str, url: str, qps: int = 40) -> Iterator[Load]:
        args = [STANDIN, "load", "--url", url, "--duration", "1h", "--qps", str(qps), "--concurrency", "4",
                "--interval", "1s", "--stop-on-eof"]  # fmt: skip
        command = [str(self.kubectl_path), "--kubeconfig", str(self.cluster.kubeconfig), "exec", "-i", "-n",
                   namespace, pod, "-c", pod_app_container(pod), "--", *args]  # fmt: skip
        # stderr to a file: a pipe nobody reads could fill and stall the client.
        with (
            open(self.cluster.directory / "logs" / "load-client.log", "a") as stderr,
            subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
            ) as process,
        ):
            load = Load(process)
            load.start_reading()
            try:
                wait_for("the load client's first report", lambda: bool(load.lines), timeout=60)
                yield load
            finally:
                if process.poll() is None:
                    with contextlib.suppress(Exception):
                        load.stop()
                    process.kill()

    # --- the proxies' own view ----------------------------------------------------------------------

    def route_weights(self, namespace: str, pod: str, host: str) -> dict[str, int]:
        """Weights per subset of the routes to Service ``host`` of ``namespace`` in ``pod``'s sidecar (a pod of
        that namespace), read from its Envoy (the admin port on the pod's loopback, fetched from the
        application container, which shares the network namespace)."""
        dump = self.fetch(namespace, pod, "http://127.0.0.1:15000/config_dump?resource=dynamic_route_configs")["body"]
        weights: dict[str, int] = {}
        for config in dump.get("configs", []):
            for vhost in config.get("route_config", {}).get("virtual_hosts", []):
                for route in vhost.get("routes", []):
                    action = route.get("route", {})
                    clusters = action.get("weighted_clusters", {}).get("clusters") or (
                        [{"name": action["cluster"], "weight": 100}] if "cluster" in action else []
                    )
                    for cluster in clusters:
                        direction, _, subset, fqdn = [*cluster["name"].split("|"), "", "", "", ""][:4]
                        if direction == "outbound" and fqdn == f"{host}.{namespace}.svc.cluster.local":
                            weights[subset] = int(cluster.get("weight", 100))
        return weights

    def proxy_stats(self, pod: dict[str, Any]) -> dict[str, float]:
        """Every counter and gauge of a proxy's Envoy (Prometheus text from port 15090), by name and labels."""
        url = f"http://{pod['status']['podIP']}:{PROXY_STATS_PORT}/stats/prometheus"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        stats = {}
        for line in text.splitlines():
            match = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) ([0-9.e+-]+|NaN)$", line)
            if match and match.group(2) != "NaN":
                stats[match.group(1).removesuffix("{}")] = float(match.group(2))
        return stats

    def meshed_pods(self) -> list[dict[str, Any]]:
        """Every running pod with an Envoy: sidecars (istio-proxy) and the ingress gateway."""
        pods = json.loads(self.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]

        def proxied(pod: dict[str, Any]) -> bool:
            containers = [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
            return any(c["name"] == "istio-proxy" for c in containers)

        running = [p for p in pods if p["status"].get("podIP") and p["status"].get("phase") == "Running"]
        return [p for p in running if proxied(p)]

    def rejected_updates(self) -> list[str]:
        """Every proxy's xDS updates that Envoy rejected (listener, cluster, route, secret), and proxies that
        accepted no listener or cluster update at all. A rejected update leaves the old configuration serving,
        so requests alone cannot show it; only these counters can (they never reset)."""
        problems = []
        for pod in self.meshed_pods():
            name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            stats = self.proxy_stats(pod)
            problems += [f"{name}: {key} = {value:.0f}" for key, value in stats.items()
                         if "update_rejected" in key and value > 0]  # fmt: skip
            for xds in ("envoy_listener_manager_lds_update_success", "envoy_cluster_manager_cds_update_success"):
                if stats.get(xds, 0) < 1:
                    problems.append(f"{name}: {xds} = {stats.get(xds, 0):.0f} (no update accepted)")
        return problems

    # --- the ingress gateway, from the host ------------------------------------------------------------

    def gateway(self, path: str, *headers: tuple[str, str], timeout: float = 30) -> tuple[int, Any, float]:
        """(status, body (JSON decoded when it is JSON), seconds) of one request through the gateway."""
        request = urllib.request.Request(self.cluster.gateway_url + path, headers=dict(headers))
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, data, kind = response.status, response.read(), response.headers.get("content-type", "")
        except urllib.error.HTTPError as err:
            status, data, kind = err.code, err.read(), err.headers.get("content-type", "")
        seconds = time.monotonic() - started
        text = data.decode(errors="replace")
        return status, (json.loads(text) if "json" in kind else text), seconds


def pod_app_container(pod: str) -> str:
    """The application container of a pod meshkit deployed: named after its service (the Deployment
    ``<service>-<version>``'s pods are ``<service>-<version>-<hash>-<id>``)."""
    return pod.rsplit("-", 3)[0]


def call(answer: dict[str, Any], service: str) -> dict[str, Any] | None:
    """The first call to ``service`` anywhere in a stand-in's answer (calls nest); None for an answer that is
    not a stand-in's (Envoy's own text, like "RBAC: access denied")."""
    if not isinstance(answer, dict):
        return None
    for made in answer.get("calls") or []:
        if made.get("service") == service:
            return made  # type: ignore[no-any-return]
        nested = call(made.get("answer") or {}, service)
        if nested is not None:
            return nested
    return None


# What a test's own stack asks of the node: two cores hold the tier's stacks only if each pod asks for little
# (meshkit's default of 100m per container fits about 18 pods, see docs/operations/tests.md).
SMALL = {"requests": {"cpu": "10m", "memory": "16Mi"}}


def small(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with every version's pods asking for :data:`SMALL` resources."""
    for service in raw["services"].values():
        for version in service["versions"].values():
            version["resources"] = SMALL
    return raw


@contextlib.contextmanager
def deployed(stack: Any) -> Iterator[None]:
    """``stack`` up for the length of the block, then destroyed, so that the tests after it find the node's
    capacity as it was (a stack left behind kept the next test's pods Pending)."""
    stack.up()
    try:
        yield
    finally:
        stack.destroy()
