"""A small client for the live tier: read objects from the API server, record watch events in resource
version order, and read the audit log. Standard library only, with the cluster's admin certificate."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.cluster import ADMIN_USER, LocalCluster

# (apiVersion, kind) → the resource's plural, for every kind meshkit renders.
MANAGED = {
    ("v1", "Namespace"): "namespaces",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Secret"): "secrets",
    ("apps/v1", "Deployment"): "deployments",
    ("networking.istio.io/v1", "DestinationRule"): "destinationrules",
    ("networking.istio.io/v1", "VirtualService"): "virtualservices",
    ("networking.istio.io/v1", "Gateway"): "gateways",
    ("security.istio.io/v1", "PeerAuthentication"): "peerauthentications",
    ("security.istio.io/v1", "AuthorizationPolicy"): "authorizationpolicies",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    ("gateway.networking.k8s.io/v1", "Gateway"): "gateways",
}
# ... and for what the tests create or read beside them.
RESOURCES = {**MANAGED, ("v1", "ResourceQuota"): "resourcequotas", ("v1", "Pod"): "pods"}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def collection_path(api_version: str, kind: str, namespace: str | None = None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace and kind != "Namespace" else ""
    return f"{prefix}{scope}/{RESOURCES[(api_version, kind)]}"


def object_path(manifest: dict[str, Any]) -> str:
    metadata = manifest["metadata"]
    base = collection_path(manifest["apiVersion"], manifest["kind"], metadata.get("namespace"))
    return f"{base}/{metadata['name']}"


@dataclass
class Kube:
    cluster: LocalCluster

    def _context(self) -> ssl.SSLContext:
        pki = self.cluster.pki
        context = ssl.create_default_context(cafile=str(pki.path("ca.crt")))
        context.load_cert_chain(pki.path("admin.crt"), pki.path("admin.key"))
        return context

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                timeout: float = 30) -> Any:  # fmt: skip
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.cluster.server + path, data=data, method=method)
        request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, context=self._context(), timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None when the API server has none."""
        try:
            found: dict[str, Any] = self.request("GET", path)
            return found
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def items(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        listed = self.request("GET", collection_path(api_version, kind, namespace))
        items: list[dict[str, Any]] = listed["items"]
        return items

    def resource_version(self) -> str:
        """The current etcd revision, as a list returns it: a point to start watches from."""
        return str(self.request("GET", "/api/v1/namespaces?limit=1")["metadata"]["resourceVersion"])

    @contextmanager
    def watching(self, namespace: str, *kinds: tuple[str, str]) -> Iterator[Recording]:
        """Record every change to ``kinds`` in ``namespace`` while the block runs, in etcd's own order.

        The changes are read afterwards, by watches that start from the revision before the block: the API
        server replays every event since then from its watch cache, and ends each watch after a second.
        No watch runs during the block, so nothing has to be interrupted when it ends.
        """
        recording = Recording(since=int(self.resource_version()))
        yield recording
        for kind in kinds:
            for event in self._replay(namespace, kind, recording.since):
                recording.add(kind[1], event["type"], event["object"])

    def _replay(self, namespace: str, kind: tuple[str, str], since: int) -> Iterator[dict[str, Any]]:
        path = f"{collection_path(*kind, namespace)}?watch=1&resourceVersion={since}&timeoutSeconds=1"
        request = urllib.request.Request(self.cluster.server + path)
        with urllib.request.urlopen(request, context=self._context(), timeout=30) as response:
            for line in response:
                event = json.loads(line)
                if event["type"] == "ERROR":
                    # 410 Gone: the watch cache no longer reaches back to `since`.
                    raise AssertionError(f"watching {kind[1]} since revision {since}: {event['object']}")
                yield event

    def audit_writes(self, since_offset: int) -> list[dict[str, Any]]:
        """Writes meshkit's engine made (as the admin user) since a byte offset of the audit log; dry runs
        (what `preview` sends) are not writes."""
        writes = []
        with self.cluster.audit_log.open("rb") as log:
            log.seek(since_offset)
            for line in log:
                event = json.loads(line)
                if (event["user"]["username"] == ADMIN_USER and event["verb"] in WRITE_VERBS
                        and "dryRun" not in event["requestURI"]):  # fmt: skip
                    writes.append(event)
        return writes

    def audit_offset(self) -> int:
        path: Path = self.cluster.audit_log
        return path.stat().st_size if path.exists() else 0


@dataclass
class Event:
    resource_version: int
    kind: str
    type: str
    object: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.object["metadata"]["name"])


@dataclass
class Recording:
    """Watch events of several kinds, merged: a resourceVersion is the etcd revision, one order across
    every kind."""

    since: int
    """The revision the watches started after."""
    recorded: list[Event] = field(default_factory=list)

    def add(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        self.recorded.append(Event(int(obj["metadata"]["resourceVersion"]), kind, event_type, obj))

    @property
    def events(self) -> list[Event]:
        return sorted(self.recorded, key=lambda e: e.resource_version)

    def first(self, kind: str, name: str, condition: Any) -> Event | None:
        """The earliest event of object ``kind/name`` whose object satisfies ``condition``."""
        return next((e for e in self.events if e.kind == kind and e.name == name and condition(e)), None)
