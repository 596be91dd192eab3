"""istiod, Istio's control plane (``pilot-discovery``), on the local control plane of toolchain/cluster.py: its
validating webhook, so that every Istio object written to the API server passes Istio's own admission, and
its sidecar injector, so that pods in injected namespaces get the sidecar (kwok runs no container: the pods
only carry it).

What a Helm install of Istio gives a Pod, this gives a process on loopback (no Pod, Service or kube-proxy):

* Binaries: ``pilot-discovery`` and ``istioctl`` from one pinned build of the Go module istio.io/istio
  (toolchain/build-istioctl.sh, version in toolchain/versions.env).
* Install objects: ``istioctl manifest generate`` of that same build, i.e. Istio's own charts
  (manifests/charts/ of the module at the pinned commit, embedded in istioctl) rendered by Istio's own
  renderer, profile ``default``, with the values Istio's charts have for a control plane outside the
  cluster: ``base.validationURL``/``base.validationCABundle`` and ``istiodRemote.injectionURL``/
  ``injectionCABundle``. The webhooks are then registered with ``url: https://127.0.0.1:<port>/...``, the
  CA bundle of this cluster's CA and ``failurePolicy: Fail`` (which Istio's chart pairs with a given CA
  bundle, "to stop patching it"). Applied: namespace istio-system, the ServiceAccounts and RBAC, the
  ConfigMaps ``istio`` (mesh config) and ``istio-sidecar-injector`` (the injection templates and values,
  read by istiod at start, as from a Helm install), ``istiod-default-validator`` (every Istio object),
  ``istio-validator-istio-system`` (objects labelled istio.io/rev=default), the ``istio-sidecar-injector``
  MutatingWebhookConfiguration, and the ingress gateway's Deployment and Service (``istio-ingressgateway``,
  selected by ``istio: ingressgateway`` as meshkit's Gateways select it; kwok runs its pod as it runs
  every other). Not applied: istiod's Deployment and Service (the process replaces them), autoscalers,
  and the chart's CRDs (the cluster keeps the Istio CRDs meshkit targets, meshkit/schemas/).
* Identity: a client certificate for ``system:serviceaccount:istio-system:istiod``, so the chart's RBAC is
  exactly what istiod may do. Serving certificate: signed by the cluster's CA for IP 127.0.0.1
  (``--tlsCertFile``/``--tlsKeyFile``/``--caCertFile``).
* Patching off: ``VALIDATION_WEBHOOK_CONFIG_NAME`` and ``INJECTION_WEBHOOK_CONFIG_NAME`` are empty, so istiod
  never rewrites the webhook configurations' caBundle or failurePolicy.
* Every port is a free loopback port; the working directory is empty, so istiod reads its mesh config and
  injection templates from those ConfigMaps (the defaults ./etc/istio/config/mesh and ./var/lib/istio/inject
  are relative paths).

Standard library and openssl only, like cluster.py, which it must not import (``python -m toolchain.cluster``
runs cluster.py as ``__main__``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOOLCHAIN = Path(__file__).resolve().parent
BUILD_SCRIPT = TOOLCHAIN / "build-istioctl.sh"
BUILD_COMMAND = "toolchain/build-istioctl.sh (make istio-toolchain)"
BINARY = "pilot-discovery"
NAMESPACE = "istio-system"
IDENTITY = f"system:serviceaccount:{NAMESPACE}:istiod"
PORTS = ("webhook", "http", "grpc", "secure-grpc", "monitoring", "ctrlz")
# The proxy image the injector names (<global.hub>/proxyv2:<global.tag>); the real node holds a local build
# of it (toolchain/images.py), the kwok node runs nothing.
PROXY_HUB = "meshkit.local/istio"
PROXY_TAG = "local"
PROXY_IMAGE = f"{PROXY_HUB}/proxyv2:{PROXY_TAG}"
# Envoy statistics the proxies keep (Istio's bootstrap keeps almost none): every xDS update's outcome, so
# that a rejected listener, cluster, route or secret shows; and the per-upstream-cluster request counters
# and latency, whose cluster names carry the subset (outbound|9080|v2|reviews.bookinfo.svc.cluster.local).
PROXY_STATS_INCLUSIONS = (
    r".*update_(rejected|success|attempt)$",
    r"cluster\.(outbound|inbound)\|.*\.upstream_rq(_[1-5]xx|_[1-5]\d\d|_completed|_time|_timeout|_total)?$",
    r"cluster\.(outbound|inbound)\|.*\.upstream_cx_connect_fail$",
)

# The kinds of `istioctl manifest generate` applied to the local cluster (see the module docstring).
INSTALLED_KINDS = frozenset(
    {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
# Of these kinds, only the ingress gateway's objects.
GATEWAY = "istio-ingressgateway"
GATEWAY_KINDS = frozenset({"Deployment", "Service"})
NOT_INSTALLED_KINDS = frozenset({"CustomResourceDefinition", "HorizontalPodAutoscaler", "PodDisruptionBudget"})
WEBHOOK_CONFIGURATIONS = {
    "ValidatingWebhookConfiguration": ("istiod-default-validator", "istio-validator-istio-system"),
    "MutatingWebhookConfiguration": ("istio-sidecar-injector",),
}

# The admission probes that end istiod's start: an object only istiod refuses (the CRD schema has no rule
# for a header regex), and a pod the injector must give a sidecar (dry runs: nothing is stored).
PROBE_VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "meshkit-admission-probe", "namespace": NAMESPACE},
    "spec": {
        "hosts": ["probe"],
        "http": [
            {
                "match": [{"headers": {"x-probe": {"regex": "(?=lookahead)"}}}],
                "route": [{"destination": {"host": "probe"}}],
            }
        ],
    },
}
PROBE_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "meshkit-injection-probe",
        "namespace": "default",
        "labels": {"sidecar.istio.io/inject": "true"},
    },
    "spec": {"containers": [{"name": "app", "image": "probe:1"}]},
}
VALIDATION_DENIED = 'admission webhook "validation.istio.io" denied the request'


class IstiodError(Exception):
    """istiod could not be built, configured or started; the message says what to do."""


def istio_bin_dir(build: bool) -> Path:
    """The bin directory holding pilot-discovery and istioctl: built if missing when ``build``, else only
    found (``--cached``), failing with the command that builds them."""
    result = subprocess.run(
        [str(BUILD_SCRIPT), *([] if build else ["--cached"])],
        stdout=subprocess.PIPE, stderr=None if build else subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not all((Path(lines[-1]) / b).is_file() for b in (BINARY, "istioctl")):
        if build:
            raise IstiodError(f"toolchain/build-istioctl.sh failed (exit {result.returncode}): see its output above")
        raise IstiodError(
            f"pilot-discovery and istioctl (Istio, toolchain/versions.env) are not built: run {BUILD_COMMAND}, "
            f"about 15 minutes on 2 cores the first time, then cached. {(result.stderr or '').strip()}"
        )
    return Path(lines[-1])


def istio_module_dir() -> Path:
    """The pinned istio.io/istio module in Go's module cache (its build downloaded it): Envoy's bootstrap
    template for the proxy image is read from there, never copied into the project."""
    versions = dict(
        line.split("=", 1) for line in (TOOLCHAIN / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )  # fmt: skip
    result = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=False)
    module = Path(result.stdout.strip()) / f"istio.io/istio@{versions['ISTIO_PSEUDO']}"
    if result.returncode != 0 or not module.is_dir():
        raise IstiodError(f"the Istio module is not in Go's module cache ({module}): run {BUILD_COMMAND}")
    return module


def split_documents(text: str) -> list[tuple[str, str, str]]:
    """(kind, name, text) of each document of a multi-document YAML stream as istioctl writes it (``---``
    lines between documents, ``kind:`` and ``metadata:`` at the start of a line, two spaces of indentation):
    enough to pick documents without a YAML parser."""
    documents = []
    for document in re.split(r"^---[ \t]*$", text, flags=re.MULTILINE):
        kind = re.search(r"^kind:[ \t]*(\S+)[ \t]*$", document, re.MULTILINE)
        metadata = re.search(r"^metadata:\n((?:[ \t].*\n?)*)", document, re.MULTILINE)
        name = re.search(r"^  name:[ \t]*(\S+)[ \t]*$", metadata.group(1), re.MULTILINE) if metadata else None
        if kind and name:
            documents.append((kind.group(1), name.group(1), document.strip("\n")))
    return documents


@dataclass(frozen=True)
class Istiod:
    """istiod's files and command line for one local cluster."""

    directory: Path
    """Its working directory, DIR/istiod, empty but for what this writes (see the module docstring)."""
    bin_dir: Path
    ports: dict[str, int]
    pod_address: str | None = None
    """With a real node: the node's address, where pods reach istiod's xDS and CA port (toolchain/node.py)."""

    @property
    def discovery_address(self) -> str:
        return f"{self.pod_address or '127.0.0.1'}:{self.ports['secure-grpc']}"

    @property
    def install_file(self) -> Path:
        return self.directory / "install.yaml"

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}/ready"

    def webhook_url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.ports['webhook']}{path}"

    def install_options(self, ca_cert: Path) -> dict[str, Any]:
        """The IstioOperator `istioctl manifest generate` renders: Istio's chart values for webhooks called by
        URL, with this cluster's CA as their CA bundle."""
        bundle = base64.b64encode(ca_cert.read_bytes()).decode()
        return {
            "apiVersion": "install.istio.io/v1alpha1",
            "kind": "IstioOperator",
            "spec": {
                "profile": "default",
                "meshConfig": {"defaultConfig": {
                    # No Service or DNS name for istiod here: proxies dial the node's address.
                    "discoveryAddress": self.discovery_address,
                    # No cluster DNS (no CoreDNS): the agent answers Service names from istiod's name table.
                    "proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"},
                    "proxyStatsMatcher": {"inclusionRegexps": list(PROXY_STATS_INCLUSIONS)},
                }},
                "values": {
                    # Renders istiod-default-validator: validation of objects without an istio.io/rev label.
                    "defaultRevision": "default",
                    "base": {"validationURL": self.webhook_url("/validate"), "validationCABundle": bundle},
                    "istiodRemote": {"injectionURL": self.webhook_url("/inject"), "injectionCABundle": bundle},
                    "global": {
                        "hub": PROXY_HUB, "tag": PROXY_TAG, "imagePullPolicy": "IfNotPresent",
                        "caAddress": self.discovery_address,
                        # Two cores hold the scenarios' pods only if a sidecar asks for a tenth of Istio's default.
                        "proxy": {"resources": {"requests": {"cpu": "10m", "memory": "40Mi"}}},
                    },
                    # Upstream Envoy has no istio.stats extension: with Istio's default (Prometheus metrics
                    # through that extension) every listener update is rejected (data-plane.md).
                    "telemetry": {"v2": {"prometheus": {"enabled": False}}},
                },
            },
        }  # fmt: skip

    def render(self, ca_cert: Path) -> subprocess.Popen[str]:
        """Start `istioctl manifest generate` (about 2 s, offline); :meth:`write_install` collects it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        options = self.directory / "istio-operator.json"
        options.write_text(json.dumps(self.install_options(ca_cert), indent=2) + "\n")
        return subprocess.Popen(
            [str(self.bin_dir / "istioctl"), "manifest", "generate", "-f", str(options)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.directory)},
        )  # fmt: skip

    def write_install(self, rendering: subprocess.Popen[str]) -> Path:
        """The objects of the rendering that the local cluster applies (INSTALLED_KINDS), with the namespace
        first; fails on a kind it does not know, so an Istio upgrade that adds one is looked at."""
        stdout, stderr = rendering.communicate(timeout=120)
        if rendering.returncode != 0:
            raise IstiodError(f"istioctl manifest generate failed ({rendering.returncode}): {stderr.strip()}")
        documents = split_documents(stdout)
        unknown = {kind for kind, _, _ in documents} - INSTALLED_KINDS - GATEWAY_KINDS - NOT_INSTALLED_KINDS
        if unknown:
            raise IstiodError(f"istioctl manifest generate rendered kinds istiod.py does not know: {sorted(unknown)}")
        expected = {*((k, n) for k, names in WEBHOOK_CONFIGURATIONS.items() for n in names),
                    *((k, GATEWAY) for k in GATEWAY_KINDS)}  # fmt: skip
        missing = expected - {(kind, name) for kind, name, _ in documents}
        if missing:
            raise IstiodError(f"istioctl manifest generate rendered no {sorted(missing)}")
        namespace = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        kept = [namespace]
        kept += [
            d for kind, name, d in documents if kind in INSTALLED_KINDS or (kind in GATEWAY_KINDS and name == GATEWAY)
        ]
        self.install_file.write_text("\n---\n".join(kept) + "\n")
        return self.install_file

    def command(self, kubeconfig: Path, cert: Path, key: Path, ca_cert: Path) -> list[str]:
        address = "127.0.0.1:{}".format
        return [
            str(self.bin_dir / BINARY), "discovery",
            "--kubeconfig", str(kubeconfig),
            "--httpsAddr", address(self.ports["webhook"]),  # the webhooks (a Helm install: 15017)
            "--httpAddr", address(self.ports["http"]),  # /ready and debug (8080)
            "--grpcAddr", address(self.ports["grpc"]),  # xDS, plaintext (15010)
            "--secureGRPCAddr", self.discovery_address,  # xDS and CA, TLS (15012); where pods reach it
            "--monitoringAddr", address(self.ports["monitoring"]),  # metrics (15014)
            "--ctrlz_address", "127.0.0.1", "--ctrlz_port", str(self.ports["ctrlz"]),
            "--tlsCertFile", str(cert), "--tlsKeyFile", str(key), "--caCertFile", str(ca_cert),
            "--domain", "cluster.local",
            # A Pod gets 10 s to drain its proxies; here there are none, and the cluster stops it by PID.
            "--shutdownDuration", "1s",
            "--log_output_level", "default:info",
        ]  # fmt: skip

    def environment(self, kubeconfig: Path) -> dict[str, str]:
        """istiod's whole environment (nothing inherited but PATH): what Istio's chart sets, and the two
        settings that make this install differ from a Helm one."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.directory),
            "KUBECONFIG": str(kubeconfig),
            "POD_NAME": "istiod-local",
            "POD_NAMESPACE": NAMESPACE,
            "SERVICE_ACCOUNT": "istiod",
            "REVISION": "default",
            "CLUSTER_ID": "Kubernetes",
            "PILOT_CERT_PROVIDER": "istiod",
            "PILOT_ENABLE_ANALYSIS": "false",
            # Never patch the webhook configurations: they carry this cluster's CA bundle and fail closed.
            "VALIDATION_WEBHOOK_CONFIG_NAME": "",
            "INJECTION_WEBHOOK_CONFIG_NAME": "",
            # What istiod chooses on a Kubernetes >= 1.33 node (the proxy as a native sidecar: an init container
            # with restartPolicy Always). Its auto-detection reads the node's kubeletVersion, which kwok's
            # node reports as "kwok", not a version, and would fall back to a plain container.
            "ENABLE_NATIVE_SIDECARS": "true",
            # The cluster serves the Gateway API kinds meshkit renders (HTTPRoute, Gateway) but not the whole
            # standard channel istiod's gateway controller waits for (GatewayClass, ReferenceGrant, ...); and
            # with no ztunnel or Envoy here, the waypoint Deployment it would create could carry nothing.
            "PILOT_ENABLE_GATEWAY_API": "false",
            # The proxies are upstream Envoy (toolchain/images.py), which lacks Istio's own extensions: with
            # these on, it rejects every cluster (istio.metadata_exchange) and listener (istio.alpn) update.
            "PILOT_ENABLE_METADATA_EXCHANGE": "false",
            "PILOT_ENABLE_ALPN_FILTER": "false",
        }


# --- the admission probes -----------------------------------------------------------------------------

Api = Callable[[str, str, dict[str, Any]], tuple[int, dict[str, Any]]]
"""(method, path, body) → (HTTP status, JSON body): a request to the API server as the cluster admin."""


def gateway_pod_exists(api: Callable[[str, str], tuple[int, dict[str, Any]]]) -> bool:
    status, body = api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=istio%3Dingressgateway")
    return status == 200 and bool(body.get("items"))


def validation_works(api: Api) -> bool:
    """An object only istiod refuses is refused, with istiod's message (a dry run)."""
    status, body = api("POST", f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/virtualservices?dryRun=All",
                       PROBE_VIRTUAL_SERVICE)  # fmt: skip
    return status >= 400 and VALIDATION_DENIED in str(body.get("message", ""))


def injection_works(api: Api) -> bool:
    """A pod that asks for the sidecar gets it (a dry run)."""
    status, body = api("POST", "/api/v1/namespaces/default/pods?dryRun=All", PROBE_POD)
    if status != 201:
        return False
    spec = body.get("spec") or {}
    return any(c["name"] == "istio-proxy" for c in [*spec.get("containers", []), *spec.get("initContainers", [])])
