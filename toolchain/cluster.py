"""A local Kubernetes control plane on loopback, for trying meshkit against a real API server and for the
live test tier: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (simulated nodes and
pods, so Deployments become Available without a kubelet or a container runtime), with Istio's CRDs and
istiod (toolchain/istiod.py: Istio's validating webhook and sidecar injector, registered with the API
server by URL).

    python -m toolchain.cluster up   [--dir DIR]   # start; prints the kubeconfig path (make cluster)
    python -m toolchain.cluster down [--dir DIR]   # stop by PID and delete DIR (make cluster-down)
    python -m toolchain.cluster status [--dir DIR]
    python -m toolchain.cluster stack-file STACK   # stacks/Pulumi.STACK.yaml pointed at this cluster

The binaries come from toolchain/build-cluster.sh and toolchain/build-istioctl.sh (built from Go modules,
cached). Every component listens on a random free loopback port, with certificates made for this cluster
alone, RBAC authorization and an audit log of every write (DIR/audit.log, at Metadata level: kube-apiserver
1.36 drops server-side-apply requests from a JSON audit log that records bodies). Nothing here needs the
meshkit package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from toolchain import images, istiod, prometheus, standins
from toolchain.node import NODE_NAME as REAL_NODE_NAME
from toolchain.node import NodeError, RealNode, free_subnet, node_bin_dir

TOOLCHAIN = Path(__file__).resolve().parent
REPO = TOOLCHAIN.parent
DEFAULT_DIR = REPO / ".cluster"
ISTIO_CRDS = REPO / "meshkit" / "schemas" / "istio-1.30.3" / "customresourcedefinitions.gen.yaml"
# HTTPRoute and Gateway, for the services meshkit routes with the Gateway API and ambient waypoints.
GATEWAY_API_CRDS = REPO / "meshkit" / "schemas" / "gateway-api-v1.6.1"
KWOK_STAGES = TOOLCHAIN / "kwok-stages.yaml"
NODE_NAME = "kwok-node-0"
# Where pods run: "kwok" (simulated, fast, for the object tiers) or "real" (toolchain/node.py: kubelet,
# containerd, runc and Envoy sidecars; requests flow).
NODE_KINDS = ("kwok", "real")
# The ingress gateway's Envoy listens on 8080 in its pod (Istio's chart: Service port 80 → 8080); the host
# reaches it on a free loopback port through socat.
GATEWAY_POD_PORT = 8080
SERVICE_CIDR = "10.96.0.0/16"
ADMIN_USER = "meshkit-admin"

# The controllers' client limits. Upstream's defaults (20 requests/s, 5 Deployments or ReplicaSets synced at a
# time) are sized for a node's share of a small cluster; creating 150 Deployments (300 pods, their ReplicaSets,
# endpoints and events) then queues for half a minute in the controller manager, not in what is measured (a
# managed cluster's control plane is scaled by its provider). One process on loopback takes far more.
CLIENT_THROUGHPUT = ("--kube-api-qps", "500", "--kube-api-burst", "1000")
CONTROLLER_THROUGHPUT = (*CLIENT_THROUGHPUT, "--concurrent-deployment-syncs", "50", "--concurrent-replicaset-syncs",
                         "50", "--concurrent-service-endpoint-syncs", "50")  # fmt: skip
# Start order (with a real node, containerd and kubelet instead of kwok, and socat for the gateway).
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", istiod.BINARY)
# With a real node, a Prometheus scraping its proxies (toolchain/prometheus.py) and the refresher of its targets.
REAL_NODE_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd",
                        "kubelet", istiod.BINARY, "socat", prometheus.BINARY, prometheus.TARGETS)  # fmt: skip
# Stop order, one group after the other: the API server's clients, then the API server, then etcd. Stopped all
# at once, the API server waits on etcd and istiod on the API server until they are killed (10 s); in this
# order each exits within a second. The node's pods are killed once kubelet has stopped (RealNode).
STOP_ORDER = (("socat", "kubelet", prometheus.BINARY, prometheus.TARGETS), (istiod.BINARY,),
              ("kwok", "kube-scheduler", "kube-controller-manager"), ("kube-apiserver",), ("etcd",),
              ("containerd",))  # fmt: skip
assert {name for names in STOP_ORDER for name in names} == {*COMPONENTS, *REAL_NODE_COMPONENTS}


class ClusterError(Exception):
    """The control plane could not be built, started or reached; the message says what to look at."""


class AlreadyRunningError(ClusterError):
    """A cluster runs in the directory: nothing was started, and the running one is left alone."""


def say(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def build_binaries() -> Path:
    """The bin directory of the pinned control plane, built (or found cached) by build-cluster.sh."""
    result = subprocess.run(
        [str(TOOLCHAIN / "build-cluster.sh")], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    if result.returncode != 0:
        raise ClusterError(
            f"toolchain/build-cluster.sh failed with exit code {result.returncode}: see its output above"
        )
    return Path(result.stdout.strip().splitlines()[-1])


def _build_node_binaries() -> Path:
    try:
        return node_bin_dir(build=True)
    except NodeError as err:
        raise ClusterError(str(err)) from None


def build_istio_binaries() -> Path:
    """The bin directory of the pinned pilot-discovery and istioctl, built (or found cached)."""
    try:
        return istiod.istio_bin_dir(build=True)
    except istiod.IstiodError as err:
        raise ClusterError(str(err)) from None


@dataclass(frozen=True)
class Pki:
    """Certificates made with openssl for one cluster: a CA, the API server's serving certificate, one
    client certificate per component and for the admin, and the service-account signing key pair."""

    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    def _openssl(self, *args: str, stdin: str | None = None) -> None:
        result = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ClusterError(f"openssl {args[0]} failed: {result.stderr.strip()}")

    def _key(self, name: str) -> Path:
        key = self.path(f"{name}.key")
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
        return key

    def _signed(self, name: str, subject: str, extensions: str) -> None:
        key = self._key(name)
        csr = self.path(f"{name}.csr")
        self._openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        ext_file = self.path(f"{name}.ext")
        ext_file.write_text(extensions)
        self._openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.path("ca.crt")), "-CAkey", str(self.path("ca.key")),
            "-CAcreateserial", "-days", "30", "-extfile", str(ext_file), "-out", str(self.path(f"{name}.crt")),
        )  # fmt: skip
        csr.unlink()
        ext_file.unlink()

    def create(self, node_address: str | None = None) -> None:
        """With ``node_address``, also the real node's certificates, and istiod's serving certificate valid
        for that address too (pods dial istiod there)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ca_key = self._key("ca")
        self._openssl(
            "req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=meshkit-local-ca", "-days", "30",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", str(self.path("ca.crt")),
        )  # fmt: skip
        self._signed(
            "apiserver",
            "/CN=kube-apiserver",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,"
            "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n",
        )
        # istiod's webhooks are called by URL on loopback (istiod.py); the Service name for completeness.
        self._signed(
            "istiod-serving",
            "/CN=istiod.istio-system.svc",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:istiod.istio-system.svc"
            + (f",IP:{node_address}\n" if node_address else "\n"),
        )
        client = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
        for name, subject in CLIENTS.items():
            self._signed(name, subject, client)
        self._signed("apiserver-kubelet-client", APISERVER_KUBELET_CLIENT, client)
        if node_address:
            self._signed("node", NODE_CLIENT, client)
            self._signed(
                "kubelet-serving",
                f"/CN={REAL_NODE_NAME}",
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                f"extendedKeyUsage=serverAuth\nsubjectAltName=IP:{node_address},DNS:{REAL_NODE_NAME}\n",
            )
        self._openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(self.path("sa.key"))
        )
        self._openssl("pkey", "-in", str(self.path("sa.key")), "-pubout", "-out", str(self.path("sa.pub")))


# Client identities. The admin (and kwok, which plays every kubelet) are cluster admins through the
# system:masters group; the controller manager and scheduler get their bootstrap RBAC roles by user name;
# istiod is its ServiceAccount's user name, so that the RBAC of Istio's chart (istiod.py) is what it may do.
CLIENTS = {
    "admin": f"/O=system:masters/CN={ADMIN_USER}",
    "controller-manager": "/CN=system:kube-controller-manager",
    "scheduler": "/CN=system:kube-scheduler",
    "kwok": "/O=system:masters/CN=kwok",
    "istiod": f"/O=system:serviceaccounts/O=system:serviceaccounts:{istiod.NAMESPACE}/CN={istiod.IDENTITY}",
}

# The real node's identities: kubelet as a node (RBAC's system:node role, bound to the group at the start),
# and the API server as kubelet's client (kubectl exec, logs), a cluster admin.
NODE_CLIENT = f"/O=system:nodes/CN=system:node:{REAL_NODE_NAME}"
APISERVER_KUBELET_CLIENT = "/O=system:masters/CN=kube-apiserver-kubelet-client"
NODE_ROLE_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "meshkit:nodes"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}],
}

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  # Reads are the bulk of the traffic and say nothing about what changed.
  - level: None
    verbs: [get, list, watch]
  - level: None
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  - level: Metadata
"""


@dataclass(frozen=True)
class LocalCluster:
    """One control plane's files: certificates, kubeconfigs, data, logs and the PIDs of its processes."""

    directory: Path

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.directory / "audit.log"

    @property
    def state_file(self) -> Path:
        return self.directory / "cluster.json"

    @property
    def pki(self) -> Pki:
        return Pki(self.directory / "pki")

    def state(self) -> dict[str, object]:
        try:
            state: dict[str, object] = json.loads(self.state_file.read_text())
            return state
        except FileNotFoundError:
            return {}

    @property
    def server(self) -> str:
        return str(self.state()["server"])

    # --- processes ----------------------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        pids = self.state().get("pids") or {}
        assert isinstance(pids, dict)
        return {name: int(pid) for name, pid in pids.items()}

    def running(self) -> dict[str, int]:
        """The components whose recorded PID is alive and still runs that component's binary."""
        return {name: pid for name, pid in self.pids().items() if _runs(pid, name)}

    def _start(self, name: str, args: list[str], pids: dict[str, int], env: dict[str, str] | None = None,
               cwd: Path | None = None) -> None:  # fmt: skip
        """Start one component; ``env`` replaces the environment (default: this process's)."""
        log = self.directory / "logs" / f"{name}.log"
        # Started through a shell that exits at once: the component is nobody's child, outlives the command
        # that started it, and is stopped by its PID. Its own session: Ctrl-C in that shell does not reach it.
        launched = subprocess.run(
            ["sh", "-c", '"$@" >>"$MESHKIT_LOG" 2>&1 </dev/null & echo $!', "sh", *args],
            env={**(os.environ if env is None else env), "MESHKIT_LOG": str(log)}, cwd=cwd, capture_output=True,
            text=True, check=True, start_new_session=True,
        )  # fmt: skip
        pids[name] = int(launched.stdout)
        self._write_state(pids=pids)

    def _write_state(self, **values: object) -> None:
        state = {**self.state(), **values}
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    @property
    def real_node(self) -> RealNode | None:
        subnet = self.state().get("node_subnet")
        return None if subnet is None else RealNode(self.directory / "node", int(str(subnet)))

    @property
    def prometheus_url(self) -> str:
        """The cluster's Prometheus on loopback (a real node only): what ``meshkit:prometheus.address`` names."""
        return f"http://127.0.0.1:{self.state()['prometheus_port']}"

    @property
    def gateway_url(self) -> str:
        """The ingress gateway on loopback (a real node only)."""
        return f"http://127.0.0.1:{self.state()['gateway_port']}"

    def stop(self, delete: bool = True) -> list[str]:
        """Stop every component by its recorded PID, in STOP_ORDER (TERM, then KILL after 10 s); with a real
        node, kill its pods once kubelet is gone and put the host back as it was (RealNode.clean_up); then
        delete the directory unless told to keep it (its logs explain a failed start). Returns what could not
        be cleaned up."""
        node = self.real_node
        problems = []
        for names in STOP_ORDER:
            if node is not None and "containerd" in names:
                try:
                    node.kill_containers(Path(str(self.state()["node_bin"])))
                except OSError as err:  # the clean-up below still runs: it undoes what it can
                    problems.append(f"killing the node's containers: {err}")
            self._terminate(names, timeout=10)
        problems += node.clean_up() if node is not None else []
        for problem in problems:
            say(f"could not clean up: {problem}")
        if delete and self.directory.exists():
            shutil.rmtree(self.directory, ignore_errors=True)
        return problems

    def _terminate(self, names: tuple[str, ...], timeout: float) -> None:
        running = {name: pid for name, pid in self.running().items() if name in names}
        for pid in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and set(self.running()) & set(running):
            time.sleep(0.05)
        for name, pid in self.running().items():
            if name in running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    # --- start --------------------------------------------------------------------------------------

    def start(self, bin_dir: Path, istio_bin_dir: Path, timeout: float = 180, node_bin: Path | None = None) -> None:
        """Start a new control plane in ``directory`` (which must not hold a running one) and wait until it
        serves: API server ready, Istio CRDs established, the node Ready and schedulable, and istiod's
        webhooks answering the API server (a refused object, an injected pod). With ``node_bin`` (containerd,
        runc, CNI plugins) the node is real (toolchain/node.py) and the ingress gateway serves on loopback;
        otherwise kwok simulates it."""
        if self.running():
            raise AlreadyRunningError(
                f"a cluster is already running in {self.directory}: stop it first (make cluster-down)"
            )
        if self.directory.exists():
            shutil.rmtree(self.directory)
        (self.directory / "logs").mkdir(parents=True)
        started = time.monotonic()
        node = RealNode(self.directory / "node", free_subnet()) if node_bin else None
        self.pki.create(node.address if node else None)
        ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler")}
        server = f"https://127.0.0.1:{ports['apiserver']}"
        istio = istiod.Istiod(self.directory / "istiod", istio_bin_dir, {name: free_port() for name in istiod.PORTS},
                              pod_address=node.address if node else None)  # fmt: skip
        self._write_state(server=server, ports=ports, istiod_ports=istio.ports, bin=str(bin_dir),
                          istio_bin=str(istio_bin_dir), pids={})  # fmt: skip
        if node and node_bin:
            self._write_state(node_subnet=node.subnet, node_bin=str(node_bin))
            self._prepare_node(node, node_bin, istio_bin_dir)
        # The matching kubectl and istioctl, for `make ... CLUSTER=local` (which puts DIR/bin on PATH) and users.
        (self.directory / "bin").mkdir()
        (self.directory / "bin" / "kubectl").symlink_to(bin_dir / "kubectl")
        (self.directory / "bin" / "istioctl").symlink_to(istio_bin_dir / "istioctl")
        # Istio's install objects are rendered by istioctl (about 2 s) while the control plane starts.
        rendering = istio.render(self.pki.path("ca.crt"))
        try:
            self._start_kubernetes(bin_dir, ports, server, started + timeout, real_node=node is not None)
            if node and node_bin:
                self._start_node(node, node_bin, bin_dir, started + timeout)
            istio_started = time.monotonic()
            install = self._istio_install(istio, rendering)
        finally:
            if rendering.poll() is None:
                rendering.kill()
        self.kubectl(bin_dir, "apply", "--server-side", "-f", str(install))
        self._start(
            istiod.BINARY,
            istio.command(self.directory / "istiod.kubeconfig", self.pki.path("istiod-serving.crt"),
                          self.pki.path("istiod-serving.key"), self.pki.path("ca.crt")),
            self.pids(), env=istio.environment(self.directory / "istiod.kubeconfig"), cwd=istio.directory,
        )  # fmt: skip
        deadline = started + timeout
        _wait("istiod /ready", deadline, self, lambda: _http_ok(istio.ready_url))
        _wait("istiod's validating webhook to refuse an invalid object", deadline, self,
              lambda: istiod.validation_works(self._api))  # fmt: skip
        _wait("istiod's injector to add the sidecar", deadline, self, lambda: istiod.injection_works(self._api))
        if node:
            _wait(
                "the ingress gateway's Envoy to be ready", deadline, self, lambda: self._gateway_address() is not None
            )
            self._forward_gateway()
            self._start_prometheus(deadline)
        else:
            # Its readiness follows 3 s later (kwok); what selects it (a Gateway's selector) needs the pod only.
            _wait("the ingress gateway's pod", deadline, self, lambda: istiod.gateway_pod_exists(self._api))
        now = time.monotonic()
        self._write_state(startup_seconds=round(now - started, 1), istiod_seconds=round(now - istio_started, 1))

    def _istio_install(self, istio: istiod.Istiod, rendering: subprocess.Popen[str]) -> Path:
        try:
            return istio.write_install(rendering)
        except (istiod.IstiodError, subprocess.TimeoutExpired) as err:
            raise ClusterError(str(err)) from None

    # --- the real node ------------------------------------------------------------------------------------

    def _prepare_node(self, node: RealNode, node_bin: Path, istio_bin_dir: Path) -> None:
        """Before the control plane: the bridge (istiod listens on it), the node's configuration, its images."""
        try:
            layout = images.build_all(istio_bin_dir / "pilot-agent", istiod.istio_module_dir())
            node.record_host()
            node.create_network()
            ports = {"kubelet": free_port(), "kubelet-healthz": free_port()}
            node.write_config(node_bin, images.PAUSE_IMAGE, SERVICE_CIDR, ports["kubelet"], ports["kubelet-healthz"],
                              self.pki.path("ca.crt"), self.pki.path("kubelet-serving.crt"),
                              self.pki.path("kubelet-serving.key"))  # fmt: skip
        except (NodeError, images.ImageError, istiod.IstiodError) as err:
            raise ClusterError(str(err)) from None
        self._write_state(node_images=str(layout), node_ports=ports)

    def _start_node(self, node: RealNode, node_bin: Path, bin_dir: Path, deadline: float) -> None:
        self._start("containerd", node.containerd_command(node_bin), self.pids(),
                    env=node.containerd_environment(node_bin))  # fmt: skip
        _wait("containerd's socket", deadline, self, lambda: node.socket.is_socket())
        try:
            node.import_images(node_bin, Path(str(self.state()["node_images"])))
        except NodeError as err:
            raise ClusterError(str(err)) from None
        self.kubectl(bin_dir, "apply", "--server-side", "-f", "-", stdin=json.dumps(NODE_ROLE_BINDING))
        self._write_kubeconfig(self.directory / "node.kubeconfig", "node", self.server)
        self._start("kubelet", node.kubelet_command(bin_dir, self.directory / "node.kubeconfig"), self.pids())
        _wait(
            f"node {REAL_NODE_NAME} to be Ready",
            deadline,
            self,
            lambda: self._node_schedulable(bin_dir, REAL_NODE_NAME),
        )

    def add_standins(self, roles: dict[str, standins.StandIn]) -> None:
        """Stand-ins for more image names on the real node (a generated stack's, for a benchmark)."""
        node = self.real_node
        if node is None:
            raise ClusterError("stand-in images need a real node (make cluster NODE=real)")
        layout = images.write_layout(images.standin_images(images.standin_binary(), roles),
                                     self.directory / "node" / f"standins-{len(roles)}.tar")  # fmt: skip
        try:
            node.import_images(Path(str(self.state()["node_bin"])), layout)
        except NodeError as err:
            raise ClusterError(str(err)) from None

    def _gateway_address(self) -> str | None:
        """The ingress gateway pod's address once it is Ready (its Envoy has a listener), else None."""
        status, body = self._api(
            "GET", f"/api/v1/namespaces/{istiod.NAMESPACE}/pods?labelSelector=istio%3Dingressgateway"
        )
        for pod in body.get("items", []) if status == 200 else []:
            conditions = pod.get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return str(pod["status"]["podIP"])
        return None

    def _forward_gateway(self) -> None:
        """socat from a free loopback port to the gateway's Envoy: the cluster's front door on this machine."""
        address, port = self._gateway_address(), free_port()
        self._start("socat", ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                              f"TCP:{address}:{GATEWAY_POD_PORT}"], self.pids())  # fmt: skip
        self._write_state(gateway_port=port)

    def _start_prometheus(self, deadline: float) -> None:
        """Prometheus on a free loopback port, scraping every proxy (toolchain/prometheus.py); ready once it
        has scraped the ingress gateway's Envoy (the one proxy a new cluster has)."""
        directory, port = self.directory / "prometheus", free_port()
        directory.mkdir()
        (directory / "targets.json").write_text("[]\n")
        (directory / "prometheus.yml").write_text(prometheus.config_text(directory / "targets.json"))
        self._write_state(prometheus_port=port)
        self._start(prometheus.TARGETS, prometheus.targets_command(directory, self.server, self.pki.directory),
                    self.pids(), cwd=REPO)  # fmt: skip
        self._start(prometheus.BINARY, prometheus.command(directory, port), self.pids())
        _wait("Prometheus to scrape the ingress gateway's Envoy", deadline, self,
              lambda: self._prometheus_scraped(istiod.NAMESPACE))  # fmt: skip

    def _prometheus_scraped(self, namespace: str) -> bool:
        """Whether Prometheus has a target of ``namespace`` up (scraped at least once, successfully)."""
        try:
            with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/targets?state=active", timeout=2) as answer:
                targets = json.load(answer)["data"]["activeTargets"]
        except (OSError, ValueError, KeyError):
            return False
        return any(t["labels"].get("namespace") == namespace and t["health"] == "up" for t in targets)

    def _start_kubernetes(self, bin_dir: Path, ports: dict[str, int], server: str, deadline: float,
                          real_node: bool) -> None:  # fmt: skip
        for name in CLIENTS:
            self._write_kubeconfig(self.directory / f"{name}.kubeconfig", name, server)
        shutil.copy(self.directory / "admin.kubeconfig", self.kubeconfig)
        (self.directory / "audit-policy.yaml").write_text(AUDIT_POLICY)

        pids: dict[str, int] = {}
        self._start("etcd", self._etcd_args(bin_dir, ports), pids)
        _wait(
            f"etcd on port {ports['etcd']}",
            deadline,
            self,
            lambda: _http_ok(f"http://127.0.0.1:{ports['etcd']}/health"),
        )
        self._start("kube-apiserver", self._apiserver_args(bin_dir, ports), pids)
        _wait("kube-apiserver /readyz", deadline, self, lambda: self._api_ok("/readyz"))
        self._start("kube-controller-manager", self._controller_manager_args(bin_dir, ports), pids)
        self._start("kube-scheduler", self._scheduler_args(bin_dir, ports), pids)
        if not real_node:
            self._start("kwok", self._kwok_args(bin_dir), pids)

        self.kubectl(bin_dir, "apply", "--server-side", "-f", str(ISTIO_CRDS))
        for crd in sorted(GATEWAY_API_CRDS.glob("*.yaml")):
            self.kubectl(bin_dir, "apply", "--server-side", "-f", str(crd))
        self.kubectl(bin_dir, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        if not real_node:
            self.kubectl(bin_dir, "apply", "--server-side", "-f", "-", stdin=json.dumps(_node_manifest()))
            _wait("the simulated node to be Ready without taints", deadline, self,
                  lambda: self._node_schedulable(bin_dir, NODE_NAME))  # fmt: skip
        _wait("the default ServiceAccount", deadline, self,
              lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"))  # fmt: skip

    def kubectl(self, bin_dir: Path, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _admin_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.path("ca.crt")))
        context.load_cert_chain(self.pki.path("admin.crt"), self.pki.path("admin.key"))
        return context

    def _api_ok(self, path: str) -> bool:
        return _http_ok(self.server + path, self._admin_context())

    def _api(self, method: str, path: str, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
        """A JSON request as the admin: (HTTP status, JSON body), an error status included."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._admin_context()) as response:
                status, text = int(response.status), response.read()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read()
        except (OSError, urllib.error.URLError) as err:
            raise ClusterError(f"{method} {path}: {err}") from None
        try:
            return status, json.loads(text or b"{}")
        except ValueError:
            return status, {"message": text.decode(errors="replace")}

    def _node_schedulable(self, bin_dir: Path, name: str) -> bool:
        node = json.loads(self.kubectl(bin_dir, "get", "node", name, "-o", "json"))
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
        return ready and not node["spec"].get("taints")

    def _write_kubeconfig(self, path: Path, client: str, server: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "meshkit-local", "cluster": {
                "server": server, "certificate-authority": str(self.pki.path("ca.crt"))}}],
            "users": [{"name": client, "user": {
                "client-certificate": str(self.pki.path(f"{client}.crt")),
                "client-key": str(self.pki.path(f"{client}.key"))}}],
            "contexts": [{"name": "meshkit-local", "context": {"cluster": "meshkit-local", "user": client}}],
            "current-context": "meshkit-local",
        }  # fmt: skip
        path.write_text(json.dumps(config, indent=2) + "\n")

    def _etcd_args(self, bin_dir: Path, ports: dict[str, int]) -> list[str]:
        client, peer = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd-peer']}"
        return [
            str(bin_dir / "etcd"), "--name", "meshkit", "--data-dir", str(self.directory / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"meshkit={peer}", "--log-level", "warn",
            # A throw-away cluster: durability buys nothing and fsync costs seconds per test.
            "--unsafe-no-fsync",
        ]  # fmt: skip

    def _apiserver_args(self, bin_dir: Path, ports: dict[str, int]) -> list[str]:
        pki = self.pki
        return [
            str(bin_dir / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{ports['etcd']}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(ports["apiserver"]),
            "--tls-cert-file", str(pki.path("apiserver.crt")), "--tls-private-key-file", str(pki.path("apiserver.key")),
            "--client-ca-file", str(pki.path("ca.crt")),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pki.path("sa.pub")),
            "--service-account-signing-key-file", str(pki.path("sa.key")),
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--authorization-mode", "RBAC",
            "--audit-policy-file", str(self.directory / "audit-policy.yaml"),
            "--audit-log-path", str(self.audit_log), "--audit-log-format", "json",
            "--cert-dir", str(self.directory / "apiserver-certs"),
            # kubectl exec and logs on the real node: the API server calls kubelet on the node's address.
            "--kubelet-client-certificate", str(pki.path("apiserver-kubelet-client.crt")),
            "--kubelet-client-key", str(pki.path("apiserver-kubelet-client.key")),
            "--kubelet-certificate-authority", str(pki.path("ca.crt")),
            "--kubelet-preferred-address-types", "InternalIP,Hostname",
        ]  # fmt: skip

    def _controller_manager_args(self, bin_dir: Path, ports: dict[str, int]) -> list[str]:
        kubeconfig = str(self.directory / "controller-manager.kubeconfig")
        return [
            str(bin_dir / "kube-controller-manager"),
            "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig,
            "--bind-address", "127.0.0.1", "--secure-port", str(ports["controller-manager"]),
            "--cert-dir", str(self.directory / "controller-manager-certs"),
            "--leader-elect=false", "--use-service-account-credentials",
            "--service-account-private-key-file", str(self.pki.path("sa.key")),
            "--root-ca-file", str(self.pki.path("ca.crt")),
            "--service-cluster-ip-range", SERVICE_CIDR,
            *CONTROLLER_THROUGHPUT,
        ]  # fmt: skip

    def _scheduler_args(self, bin_dir: Path, ports: dict[str, int]) -> list[str]:
        kubeconfig = str(self.directory / "scheduler.kubeconfig")
        return [
            str(bin_dir / "kube-scheduler"),
            "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig,
            "--bind-address", "127.0.0.1", "--secure-port", str(ports["scheduler"]),
            "--cert-dir", str(self.directory / "scheduler-certs"), "--leader-elect=false",
            *CLIENT_THROUGHPUT,
        ]  # fmt: skip

    def _kwok_args(self, bin_dir: Path) -> list[str]:
        return [
            str(bin_dir / "kwok"), "--kubeconfig", str(self.directory / "kwok.kubeconfig"),
            "--config", str(KWOK_STAGES),
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
            # kwok renews the node's Lease, so the node-lifecycle controller keeps it Ready.
            "--node-lease-duration-seconds", "40",
        ]  # fmt: skip


def istiod_port(state: dict[str, object]) -> object:
    ports = state.get("istiod_ports") or {}
    assert isinstance(ports, dict)
    return ports.get("webhook")


def _node_manifest() -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "type": "kwok"},
        },
    }


def _runs(pid: int, binary: str) -> bool:
    """Whether ``pid`` is alive and runs ``binary``: a PID left in a state file may have been reused."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    if binary == prometheus.TARGETS:
        return prometheus.runs_targets(argv)
    return Path(argv[0]).name == binary


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _wait(what: str, deadline: float, cluster: LocalCluster, ready: object) -> None:
    assert callable(ready)
    while time.monotonic() < deadline:
        for name, pid in cluster.pids().items():
            if not _runs(pid, name):
                log = cluster.directory / "logs" / f"{name}.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise ClusterError(f"{name} exited while waiting for {what}; the end of {log}:\n{tail}")
        with contextlib.suppress(ClusterError):
            if ready():
                return
        time.sleep(0.2)
    raise ClusterError(f"timed out waiting for {what}; the logs are in {cluster.directory / 'logs'}")


@contextlib.contextmanager
def running_cluster(
    directory: Path, bin_dir: Path | None = None, istio_bin_dir: Path | None = None, node_bin: Path | None = None
) -> Iterator[LocalCluster]:
    """A control plane for the duration of a ``with`` block, stopped by PID at the end whatever happens.
    The binaries are built (or found cached) unless given; with ``node_bin`` the node is real."""
    cluster = LocalCluster(directory)
    try:
        cluster.start(bin_dir or build_binaries(), istio_bin_dir or build_istio_binaries(), node_bin=node_bin,
                      timeout=300 if node_bin else 180)  # fmt: skip
        yield cluster
    finally:
        cluster.stop()


def stack_file_for_cluster(text: str, kubeconfig: Path, source: str, prometheus_url: str | None = None) -> str:
    """A stack file's text with ``kubernetes:kubeconfig`` set to this cluster, every other line untouched
    (so meshkit's keys read exactly as in the reviewed file); with ``prometheus_url`` (a real node's), also
    ``meshkit:prometheus`` pointed at the cluster's Prometheus when the file names none."""
    lines = text.splitlines()
    try:
        config_line = next(i for i, line in enumerate(lines) if line.rstrip() == "config:")
    except StopIteration:
        raise ClusterError(f"{source}: no top-level 'config:' line to add the cluster's kubeconfig under") from None
    if any(line.lstrip().startswith(("kubernetes:kubeconfig:", "kubernetes:context:")) for line in lines):
        raise ClusterError(f"{source} already names a cluster (kubernetes:kubeconfig or kubernetes:context)")
    body = [line for line in lines[config_line + 1 :] if line.strip() and not line.lstrip().startswith("#")]
    indent = body[0][: len(body[0]) - len(body[0].lstrip())] if body else "  "
    lines.insert(config_line + 1, f"{indent}kubernetes:kubeconfig: {json.dumps(str(kubeconfig))}")
    if prometheus_url and not any(line.lstrip().startswith("meshkit:prometheus:") for line in lines):
        lines.insert(config_line + 2, f"{indent}meshkit:prometheus: {json.dumps({'address': prometheus_url})}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "stack-file"])
    parser.add_argument("stack", nargs="?", help="with stack-file: the stack whose file to point at this cluster")
    parser.add_argument("--node", choices=NODE_KINDS, default="kwok",
                        help="with up: pods run for real (real: kubelet, containerd, Envoy; needs root) or are "
                        "simulated (kwok, the default)")  # fmt: skip
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("MESHKIT_CLUSTER_DIR", DEFAULT_DIR)),
                        help="where the cluster keeps its files (default: .cluster in the project)")  # fmt: skip
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.dir.resolve())
    try:
        if args.action == "up":
            if cluster.running():
                raise AlreadyRunningError(
                    f"a cluster is already running in {cluster.directory}: `make cluster-down` first"
                )
            if args.node == "real" and os.geteuid() != 0:
                raise ClusterError("a real node needs root (network namespaces, mounts, cgroups): run as root, "
                                   "or use --node kwok (pods simulated)")  # fmt: skip
            bin_dir = build_binaries()
            istio_bin_dir = build_istio_binaries()
            node_bin = _build_node_binaries() if args.node == "real" else None
            say(f"starting the control plane in {cluster.directory}")
            cluster.start(bin_dir, istio_bin_dir, node_bin=node_bin, timeout=300 if node_bin else 180)
            state = cluster.state()
            node = REAL_NODE_NAME if node_bin else NODE_NAME
            say(
                f"ready in {state['startup_seconds']} s: {cluster.server}, Istio CRDs installed, node {node}, "
                f"istiod (its webhooks on port {istiod_port(state)}, started in {state['istiod_seconds']} s)"
            )
            if node_bin:
                say(f"ingress gateway (istio-ingressgateway's Envoy): {cluster.gateway_url}/")
                say(f"Prometheus, scraping every proxy: {cluster.prometheus_url} (meshkit:prometheus.address)")
            say(f"kubeconfig: {cluster.kubeconfig}; audit log: {cluster.audit_log}; stop: make cluster-down")
            print(cluster.kubeconfig)
        elif args.action == "stack-file":
            # `make up STACK=dev CLUSTER=local`: stacks/Pulumi.dev.yaml, pointed at this cluster.
            if not args.stack:
                parser.error("stack-file needs a stack name")
            if not cluster.running():
                raise ClusterError(f"no cluster is running in {cluster.directory}: start one with `make cluster`")
            source = REPO / "stacks" / f"Pulumi.{args.stack}.yaml"
            if not source.is_file():
                raise ClusterError(f"{source} does not exist: STACK must name a file in stacks/")
            target = cluster.directory / source.name
            prometheus_url = cluster.prometheus_url if "prometheus_port" in cluster.state() else None
            target.write_text(stack_file_for_cluster(source.read_text(), cluster.kubeconfig, str(source),
                                                     prometheus_url))  # fmt: skip
            print(target)
        elif args.action == "down":
            stopped = cluster.running()
            cluster.stop()
            say(f"stopped {', '.join(stopped) or 'nothing (no cluster was running)'}")
        else:
            running = cluster.running()
            components = REAL_NODE_COMPONENTS if cluster.real_node else COMPONENTS
            for name in components:
                print(f"{name:24} {'running, pid ' + str(running[name]) if name in running else 'stopped'}")
            if cluster.real_node and "socat" in running:
                print(f"{'ingress gateway':24} {cluster.gateway_url}/")
            if cluster.real_node and prometheus.BINARY in running:
                print(f"{'prometheus':24} {cluster.prometheus_url} (meshkit:prometheus.address)")
            return 0 if len(running) == len(components) else 1
    except AlreadyRunningError as err:
        say(f"error: {err}")
        return 1
    except ClusterError as err:
        say(f"error: {err}")
        if args.action == "up":
            cluster.stop(delete=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
