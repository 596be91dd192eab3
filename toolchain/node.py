"""A real node for the local cluster: kubelet, containerd, runc and the CNI bridge on this machine, so that
pods run for real (Istio's init container writes iptables rules in the pod's network namespace, the
istio-proxy sidecar runs pilot-agent and Envoy as uid 1337 with certificates from istiod, readiness probes
answer) and requests flow through what meshkit deploys.

Everything it creates is its own and goes when the cluster stops:

* a Linux bridge ``mkbr<N>`` holding 10.244.<N>.1/24, the node's address, on a subnet no interface uses;
  pods get addresses of that /24 from the CNI ``host-local`` plugin, with no masquerading and no port
  mapping (no iptables rule on the host): pods reach the node, the node reaches pods, nothing else;
* containerd with its own root, state, socket and runc root in ``DIR/node``; kubelet with its own root,
  certificates, logs and the cgroup root ``/meshkit-<N>`` in every cgroup v1 hierarchy;
* the host settings kubelet and the bridge plugin change (sysctls) and the paths they create whatever their
  configuration says: recorded before the start and put back at the stop (:meth:`RealNode.clean_up`).

Pods have no cluster DNS (no CoreDNS): meshed pods resolve Service names through Istio's DNS proxy
(``ISTIO_META_DNS_CAPTURE``, set by istiod.py), as a mesh with DNS capture does. Needs root. Standard
library only, like the rest of toolchain/.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TOOLCHAIN = Path(__file__).resolve().parent
NODE_NAME = "meshkit-node"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# What kubelet and the bridge plugin set on the host whatever their configuration says (data-plane.md), and
# what the node raises itself (NODE_SYSCTLS): recorded at the start, put back at the stop.
SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "net.ipv4.ip_forward",
           "fs.inotify.max_user_instances")  # fmt: skip
# Every pilot-agent watches its certificates with inotify, all as one user (root): at Debian's default of 128
# instances, the 42nd meshed pod's sidecar failed to start ("couldn't initialize inotify: too many open
# files"). Kubernetes nodes are commonly given 8192.
NODE_SYSCTLS = {"fs.inotify.max_user_instances": 8192}
# Paths they create outside their configured directories; removed at the stop when they were not there.
HOST_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd", "/var/lib/cni",
              "/var/run/netns", "/opt/containerd", "/etc/cni")  # fmt: skip
COMPONENTS = ("containerd", "kubelet")


class NodeError(Exception):
    """The node could not be set up, started or cleaned up; the message says what to look at."""


def node_bin_dir(build: bool) -> Path:
    """containerd, runc and the CNI plugins (toolchain/build-node.sh), built if missing when ``build``."""
    script = TOOLCHAIN / "build-node.sh"
    result = subprocess.run([str(script), *([] if build else ["--cached"])], stdout=subprocess.PIPE,
                            stderr=None if build else subprocess.PIPE, text=True, check=False)  # fmt: skip
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise NodeError(f"toolchain/build-node.sh failed (exit {result.returncode}): {(result.stderr or '').strip()}")
    return Path(lines[-1])


def free_subnet() -> int:
    """N of a 10.244.N.0/24 that no interface of this machine has an address in."""
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    taken = {int(m.group(1)) for m in re.finditer(r"inet 10\.244\.(\d+)\.", used)}
    for n in range(200, 255):
        if n not in taken:
            return n
    raise NodeError("no free 10.244.N.0/24 between N=200 and 254 for the node's pods")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _run(*args: str) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class RealNode:
    """One real node's files and settings, under the cluster directory."""

    directory: Path
    """DIR/node: containerd's and kubelet's roots, configuration, certificates and sockets."""
    subnet: int

    @property
    def bridge(self) -> str:
        return f"mkbr{self.subnet}"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.244.{self.subnet}.0/24")

    @property
    def address(self) -> str:
        """The node's InternalIP, on the bridge: where pods reach the host (istiod) and kubelet serves."""
        return f"10.244.{self.subnet}.1"

    @property
    def cgroup_parent(self) -> str:
        return f"/meshkit-{self.subnet}"

    @property
    def socket(self) -> Path:
        return self.directory / "containerd.sock"

    @property
    def host_state_file(self) -> Path:
        return self.directory / "host-before.json"

    # --- host side ---------------------------------------------------------------------------------------

    def record_host(self) -> None:
        """What the node changes on the host, as it was: put back by :meth:`clean_up`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        before = {
            "sysctls": {name: _sysctl_path(name).read_text().strip() for name in SYSCTLS},
            "absent_paths": [p for p in HOST_PATHS if not os.path.lexists(p)],
        }
        self.host_state_file.write_text(json.dumps(before, indent=2) + "\n")

    def create_network(self) -> None:
        """The bridge with the node's address (the CNI bridge plugin adopts it), the cgroup roots, and the
        host limits a node of many pods needs (NODE_SYSCTLS, raised only)."""
        for name, value in NODE_SYSCTLS.items():
            if int(_sysctl_path(name).read_text()) < value:
                _sysctl_path(name).write_text(f"{value}\n")
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.address}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for hierarchy in self._hierarchies():
            if hierarchy.name != "unified":
                (hierarchy / self.cgroup_parent.lstrip("/")).mkdir(exist_ok=True)

    @staticmethod
    def _hierarchies() -> list[Path]:
        """The cgroup hierarchies kubelet checks and places pods in: every v1 one must hold the cgroup root
        before it starts; it makes its own in the v2 one beside them ("unified")."""
        return [p for p in sorted(CGROUP_ROOT.iterdir()) if p.is_dir()]

    # --- configuration -----------------------------------------------------------------------------------

    def write_config(self, bin_dir: Path, pause_image: str, service_cidr: str, kubelet_port: int, healthz_port: int,
                     ca: Path, serving_cert: Path, serving_key: Path) -> None:  # fmt: skip
        d = self.directory
        for sub in ("cni/net.d", "containerd/root", "containerd/state", "kubelet", "pod-logs", "volume-plugins"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "containerd.toml").write_text(self._containerd_config(bin_dir, pause_image))
        (d / "cni/net.d/10-meshkit.conflist").write_text(json.dumps(self._cni_config(service_cidr), indent=2) + "\n")
        # Pods without a sidecar get a resolver that answers nothing (the node); meshed pods' DNS queries are
        # answered by Istio's agent before they reach it.
        (d / "resolv.conf").write_text(f"nameserver {self.address}\n")
        (d / "kubelet.json").write_text(
            json.dumps(self._kubelet_config(kubelet_port, healthz_port, ca, serving_cert, serving_key), indent=2)
        )

    def _containerd_config(self, bin_dir: Path, pause_image: str) -> str:
        d = self.directory
        return f"""\
version = 4
root = "{d / "containerd/root"}"
state = "{d / "containerd/state"}"
# Nothing from the host's /etc/containerd: this containerd is the node's alone.
imports = []

[plugins.'io.containerd.server.v1.grpc']
  address = "{self.socket}"

[plugins.'io.containerd.server.v1.ttrpc']
  address = "{d / "containerd.ttrpc.sock"}"

[plugins.'io.containerd.server.v1.debug']
  address = ""

[plugins.'io.containerd.internal.v1.opt']
  path = "{d / "containerd/opt"}"

[plugins.'io.containerd.image-verifier.v1.bindir']
  bin_dir = "{d / "containerd/image-verifier"}"

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{pause_image}'

[plugins.'io.containerd.cri.v1.runtime']
  # This machine lacks CAP_SYS_RESOURCE: runc may only raise a container's oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '{bin_dir / "runc"}'
        Root = '{d / "containerd/runc"}'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{bin_dir}']
    conf_dir = '{d / "cni/net.d"}'

[plugins.'io.containerd.grpc.v1.cri']
  # kubectl exec and port-forward: a stream server on loopback only.
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
"""

    def _cni_config(self, service_cidr: str) -> dict[str, object]:
        return {
            "cniVersion": "1.0.0",
            "name": "meshkit",
            "plugins": [
                {
                    # Not the pods' gateway: the bridge plugin would then turn on the host's IP forwarding.
                    # Pods reach each other and the node on the bridge, and Service addresses through the
                    # node (where a sidecar intercepts them first); there is no default route: nothing
                    # beyond this machine is reachable, and no masquerade or port mapping touches its firewall.
                    "type": "bridge", "bridge": self.bridge, "isGateway": False, "hairpinMode": True,
                    "ipMasq": False,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": str(self.network)}]],
                             "routes": [{"dst": service_cidr, "gw": self.address}],
                             "dataDir": str(self.directory / "cni/ipam")},
                },
                {"type": "loopback"},
            ],
        }  # fmt: skip

    def _kubelet_config(self, port: int, healthz_port: int, ca: Path, cert: Path, key: Path) -> dict[str, object]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.address, "port": port, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": healthz_port,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(ca)}},
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(cert), "tlsPrivateKeyFile": str(key),
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            # This machine has cgroup v1 and no systemd: kubelet 1.36 refuses v1 unless told.
            "failCgroupV1": False, "cgroupDriver": "cgroupfs", "cgroupRoot": self.cgroup_parent,
            "failSwapOn": False, "makeIPTablesUtilChains": False, "protectKernelDefaults": False,
            "podLogsDir": str(self.directory / "pod-logs"),
            "volumePluginDir": str(self.directory / "volume-plugins"),
            "resolvConf": str(self.directory / "resolv.conf"),
            # The imported images are all there is: never collect them, never evict for a full disk.
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "serializeImagePulls": False,
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
            "shutdownGracePeriod": "0s",
        }  # fmt: skip

    # --- commands ----------------------------------------------------------------------------------------

    def containerd_command(self, bin_dir: Path) -> list[str]:
        return [str(bin_dir / "containerd"), "--config", str(self.directory / "containerd.toml")]

    def containerd_environment(self, bin_dir: Path) -> dict[str, str]:
        # The shim and runc are found on PATH.
        return {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}

    def kubelet_command(self, kube_bin: Path, kubeconfig: Path) -> list[str]:
        return [
            str(kube_bin / "kubelet"), "--config", str(self.directory / "kubelet.json"),
            "--kubeconfig", str(kubeconfig), "--root-dir", str(self.directory / "kubelet"),
            "--cert-dir", str(self.directory / "kubelet-certs"),
            "--hostname-override", NODE_NAME, "--node-ip", self.address,
            "--node-labels", "meshkit.dev/node=real", "--v", "1",
        ]  # fmt: skip

    def ctr(self, bin_dir: Path, *args: str, timeout: float = 300) -> str:
        result = subprocess.run([str(bin_dir / "ctr"), "--address", str(self.socket), "--namespace", "k8s.io", *args],
                                capture_output=True, text=True, check=False, timeout=timeout)  # fmt: skip
        if result.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def import_images(self, bin_dir: Path, layout: Path) -> None:
        self.ctr(bin_dir, "images", "import", "--local", str(layout))

    # --- stop ----------------------------------------------------------------------------------------------

    def kill_containers(self, bin_dir: Path) -> None:
        """Every process of the node's pods and their shims, killed (kubelet is already stopped)."""
        for pid in self._pod_processes() | self._shims(bin_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self._pod_processes() or self._shims(bin_dir)):
            time.sleep(0.05)

    def _cgroups(self) -> list[Path]:
        """Every cgroup under the node's cgroup root, in every hierarchy, children before their parents.
        Walked with os.walk, which skips what vanishes meanwhile (a pod's cgroup goes as its pod does)."""
        found = []
        for hierarchy in self._hierarchies():
            root = hierarchy / self.cgroup_parent.lstrip("/")
            found += [Path(top) for top, _, _ in os.walk(root, topdown=False)]
        return found

    def _pod_processes(self) -> set[int]:
        pids: set[int] = set()
        for cgroup in self._cgroups():
            with contextlib.suppress(OSError):
                pids |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
        return pids

    def _shims(self, bin_dir: Path) -> set[int]:
        shim = str(bin_dir / "containerd-shim-runc-v2")
        found = set()
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                argv = proc.joinpath("cmdline").read_bytes().split(b"\0")
                if argv[0].decode(errors="replace") == shim and str(self.socket).encode() in b" ".join(argv):
                    found.add(int(proc.name))
        return found

    def clean_up(self) -> list[str]:
        """After containerd and kubelet are stopped: the node's mounts, network, cgroups and host settings put
        back as they were before the start. Returns what could not be undone (empty when all is clean)."""
        problems = []
        for mount in self._mounts():
            result = subprocess.run(["umount", "--lazy", mount], capture_output=True, text=True, check=False)
            if result.returncode != 0 and mount in self._mounts():
                problems.append(f"umount {mount}: {result.stderr.strip()}")
        if Path(f"/sys/class/net/{self.bridge}").exists():
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
        # Children before parents: a cgroup directory is removed with rmdir once it has no children.
        for cgroup in self._cgroups():
            with contextlib.suppress(FileNotFoundError):
                try:
                    cgroup.rmdir()
                except OSError as err:
                    problems.append(f"cgroup {cgroup}: {err}")
        problems += self._restore_host()
        return problems

    def _mounts(self) -> list[str]:
        """Mount points under the node's directory, deepest first."""
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(str(self.directory) + "/"):
                mounts.append(point)
        return sorted(set(mounts), key=lambda p: -len(p))

    def _restore_host(self) -> list[str]:
        try:
            before = json.loads(self.host_state_file.read_text())
        except FileNotFoundError:
            return []
        problems = []
        for name, value in before["sysctls"].items():
            try:
                if _sysctl_path(name).read_text().strip() != value:
                    _sysctl_path(name).write_text(value + "\n")
            except OSError as err:
                problems.append(f"sysctl {name}={value}: {err}")
        for path in before["absent_paths"]:
            if os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)
                if os.path.lexists(path):
                    problems.append(f"{path} could not be removed")
        return problems
