"""A small client for the live tier: read objects from the API server, record watch events in resource
version order, and read the audit log. Standard library only, with the cluster's admin certificate."""

from __future__ import annotations

import json
import ssl
import threading
import time
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
    ("security.istio.io/v1", "PeerAuthentication"): "peerauthentications",
    ("security.istio.io/v1", "AuthorizationPolicy"): "authorizationpolicies",
}
# ... and for what the tests create beside them.
RESOURCES = {**MANAGED, ("v1", "ResourceQuota"): "resourcequotas"}
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
        """Record every change to ``kinds`` in ``namespace`` while the block runs, in etcd's own order."""
        since = self.resource_version()
        recording = Recording(since=int(since))
        responses: list[Any] = []
        threads = [
            threading.Thread(target=self._watch, args=(namespace, kind, since, recording, responses), daemon=True)
            for kind in kinds
        ]
        for thread in threads:
            thread.start()
        try:
            yield recording
        finally:
            # The last writes reach a watch a moment after `up` returns: wait until each watch has seen the
            # newest revision of its kind.
            for kind in kinds:
                newest = max((int(o["metadata"]["resourceVersion"]) for o in self.items(*kind, namespace)), default=0)
                recording.wait_for(kind[1], newest)
            time.sleep(0.3)
            recording.stopped = True
            for response in responses:
                response.close()
            for thread in threads:
                thread.join(timeout=5)

    def _watch(self, namespace: str, kind: tuple[str, str], since: str, recording: Recording,
               responses: list[Any]) -> None:  # fmt: skip
        path = f"{collection_path(*kind, namespace)}?watch=1&resourceVersion={since}"
        request = urllib.request.Request(self.cluster.server + path)
        with urllib.request.urlopen(request, context=self._context(), timeout=600) as response:
            responses.append(response)
            try:
                for line in response:
                    event = json.loads(line)
                    recording.add(kind[1], event["type"], event["object"])
                    if recording.stopped:
                        return
            except (OSError, ValueError, AttributeError):
                return  # closed by the recording's end

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
    """Watch events from several watches, merged: a resourceVersion is the etcd revision, one order across
    every kind."""

    since: int
    """The revision the watches started after."""
    events_by_watch: list[Event] = field(default_factory=list)
    stopped: bool = False
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def add(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        with self._lock:
            revision = int(obj["metadata"]["resourceVersion"])
            self.events_by_watch.append(Event(revision, kind, event_type, obj))
            self._lock.notify_all()

    def wait_for(self, kind: str, revision: int, timeout: float = 10) -> None:
        """Until an event of ``kind`` at ``revision`` or later has arrived (or ``timeout`` seconds)."""
        with self._lock:
            self._lock.wait_for(
                lambda: any(e.kind == kind and e.resource_version >= revision for e in self.events_by_watch)
                or revision <= self.since,
                timeout=timeout,
            )

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return sorted(self.events_by_watch, key=lambda e: e.resource_version)

    def first(self, kind: str, name: str, condition: Any) -> Event | None:
        """The earliest event of object ``kind/name`` whose object satisfies ``condition``."""
        return next((e for e in self.events if e.kind == kind and e.name == name and condition(e)), None)
