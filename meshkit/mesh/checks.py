"""Checks of a whole stack config, before anything is rendered or deployed.

Two sources of findings share one format (:class:`meshkit.errors.Finding`):

* pydantic validation of the models, one value at a time (ranges, patterns, unknown keys), turned into
  findings by :func:`findings_from_validation_error`;
* cross-object checks over the validated models (:func:`check_stack`): references between services,
  versions, routes and namespaces, the mistakes ``istioctl analyze`` and Kiali report after the fact;
* schema conformance of every rendered object (:mod:`meshkit.mesh.conformance`, MK007), last.

Codes are meshkit's own and stable; docs/reference/errors.md, generated from the codes in the code, lists each
with an example. The upstream codes they echo are noted beside each check so a reader can look up the
Istio/Kiali meaning.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from meshkit.config.namespace import NamespaceSpec
from meshkit.config.service import ServiceSpec
from meshkit.config.stack import StackConfig
from meshkit.config.stack_file import read_stack_file_keys, stack_file_keys
from meshkit.config.traffic import FaultRule, RequestMatch
from meshkit.config.validation import format_path, parse_stack
from meshkit.config.values import duration_seconds, parse_image
from meshkit.config.workload import EnvSource
from meshkit.errors import ConfigError, Finding, Severity
from meshkit.gcpause import gc_paused
from meshkit.mesh.conformance import conformance_findings
from meshkit.mesh.gatewayapi import check_gateway_services, l7_rules
from meshkit.mesh.ingress import check_ingresses
from meshkit.mesh.manifest import Manifest, object_name
from meshkit.mesh.render import owned_manifests


def _vs(name: str, svc: ServiceSpec) -> str:
    """The object that holds a service's routes: its VirtualService, or its HTTPRoute (``traffic.api: gateway``)."""
    return f"{'HTTPRoute' if svc.traffic.api == 'gateway' else 'VirtualService'} {name}.{svc.namespace}"


def _undeclared_versions(
    name: str, svc: ServiceSpec, path: str, versions: Mapping[str, int] | list[str]
) -> Iterator[Finding]:
    declared = ", ".join(svc.versions)
    for version in versions:
        if version not in svc.versions:
            yield Finding(
                f"{path}.{version}" if isinstance(versions, Mapping) else path,
                "MK101",
                f"routes to version {version!r}, which service {name!r} does not declare",
                f"declare it under services.{name}.versions, or use one of: {declared}",
                obj=_vs(name, svc),
            )


def _check_service(stack: StackConfig, name: str, svc: ServiceSpec) -> Iterator[Finding]:
    base = f"services.{name}"
    if svc.namespace not in stack.namespaces:
        yield Finding(
            f"{base}.namespace",
            "MK102",
            f"namespace {svc.namespace!r} is not declared, so nothing guarantees sidecar injection there",
            f"add it under namespaces (declared: {', '.join(stack.namespaces) or 'none'})",
        )
    traffic = svc.traffic
    if len(svc.versions) > 1 and not traffic.weights:
        yield Finding(
            f"{base}.traffic.weights",
            "MK106",
            f"service has {len(svc.versions)} versions and no default weights",
            f"give the percent per version, e.g. weights: {{{', '.join(f'{v}: 0' for v in svc.versions)}}}",
            obj=_vs(name, svc),
        )
    yield from _undeclared_versions(name, svc, f"{base}.traffic.weights", traffic.weights)
    for i, route in enumerate(traffic.routes):
        route_path = f"{base}.traffic.routes[{i}]"
        if route.to is not None:
            yield from _undeclared_versions(name, svc, f"{route_path}.to", [route.to])
        yield from _undeclared_versions(name, svc, f"{route_path}.weights", route.weights)
    if traffic.mirror:
        yield from _undeclared_versions(name, svc, f"{base}.traffic.mirror.version", [traffic.mirror.version])
        yield from _check_mirror(name, svc)

    for version in sorted(svc.routed_versions() & set(svc.versions)):
        if svc.versions[version].replicas == 0:
            yield Finding(
                f"{base}.versions.{version}.replicas",
                "MK103",
                f"version {version!r} receives traffic but has 0 replicas: its requests would get 503",
                "scale it up, or route no traffic to it",
                obj=f"Deployment {name}-{version}.{svc.namespace}",
            )

    yield from _check_ports(name, svc)
    yield from _check_l7_port(name, svc)
    yield from _check_rule_order(name, svc)
    yield from _check_route_names(name, svc)

    if stack.production:
        for i, fault in enumerate(svc.faults):
            if fault.match is None and not fault.allow_unscoped:
                yield Finding(
                    f"{base}.faults[{i}].match",
                    "MK504",
                    "fault without a match in a production stack would hit every user",
                    "scope it with a match (e.g. a test user's header), or set allowUnscoped: true",
                    obj=_vs(name, svc),
                )


def _check_mirror(name: str, svc: ServiceSpec) -> Iterator[Finding]:
    """A mirror to the version the default route already sends everything to copies each request back to
    the same pods: no comparison is made, and every non-idempotent request runs twice."""
    mirror = svc.traffic.mirror
    if mirror is not None and svc.default_weights().get(mirror.version) == 100:
        others = [v for v in svc.versions if v != mirror.version]
        yield Finding(
            f"services.{name}.traffic.mirror.version",
            "MK109",
            f"mirrors to {mirror.version!r}, which already takes 100% of the default route: "
            "each mirrored request would run twice on the same version",
            f"mirror to a version that takes no traffic ({', '.join(others)})"
            if others
            else "declare the version to mirror to, or remove the mirror",
            obj=_vs(name, svc),
        )


def _check_route_names(name: str, svc: ServiceSpec) -> Iterator[Finding]:
    """Istio accepts two http rules with one name, but a reviewer, a log line or a metric can no longer
    tell them apart: a warning."""
    first_named: dict[str, int] = {}
    for i, route in enumerate(svc.traffic.routes):
        if route.name is None:
            continue
        if route.name in first_named:
            yield Finding(
                f"services.{name}.traffic.routes[{i}].name",
                "MK110",
                f"route name {route.name!r} is already used by routes[{first_named[route.name]}]",
                "give each route of a service its own name",
                Severity.WARNING,
                _vs(name, svc),
            )
        first_named.setdefault(route.name, i)


def _check_ports(name: str, svc: ServiceSpec) -> Iterator[Finding]:
    base = f"services.{name}"
    seen_numbers: dict[int, int] = {}
    seen_names: dict[str, int] = {}
    for i, port in enumerate(svc.ports):
        if port.port in seen_numbers:
            yield Finding(
                f"{base}.ports[{i}].port",
                "MK202",
                f"port {port.port} is already exposed by ports[{seen_numbers[port.port]}]",
                "expose each port number once per service",
                obj=f"Service {name}.{svc.namespace}",
            )
        if port.name in seen_names:
            yield Finding(
                f"{base}.ports[{i}].name",
                "MK202",
                f"port name {port.name!r} is already used by ports[{seen_names[port.name]}]",
                "give each port its own name",
                obj=f"Service {name}.{svc.namespace}",
            )
        seen_numbers.setdefault(port.port, i)
        seen_names.setdefault(port.name, i)
    numbers = [p.port for p in svc.ports]
    if svc.traffic.port is None and len(svc.ports) > 1:
        yield Finding(
            f"{base}.traffic.port",
            "MK108",
            f"service exposes {len(svc.ports)} ports and the routes do not pick one",
            f"set traffic.port to one of {', '.join(map(str, numbers))}",
            obj=_vs(name, svc),
        )
    elif svc.traffic.port is not None and svc.traffic.port not in numbers:
        yield Finding(
            f"{base}.traffic.port",
            "MK108",
            f"port {svc.traffic.port} is not a port of the service",
            f"use one of {', '.join(map(str, numbers))}",
            obj=_vs(name, svc),
        )


# The protocols whose traffic Istio routes with a VirtualService's `http` rules (and the Gateway API's
# HTTPRoute): a port of another protocol (tcp, tls, https, mongo, redis, …) is proxied as a byte stream, so
# weights, matches, faults, mirrors, timeouts and retries never apply to it.
HTTP_ROUTED_PROTOCOLS = frozenset({"http", "http2", "grpc", "grpc-web", "kubernetes.io/h2c", "kubernetes.io/ws"})


def _check_l7_port(name: str, svc: ServiceSpec) -> Iterator[Finding]:
    """L7 rules on the routed port of a protocol Istio does not route as HTTP are silently ignored (the
    canary takes traffic in proportion to its pods, a fault is never injected): refused."""
    routed = [p for p in svc.ports if svc.traffic.port in (None, p.port)]
    rules = l7_rules(svc)
    if len(routed) != 1 or not rules:
        return  # several ports and no traffic.port is MK108's
    i, port = svc.ports.index(routed[0]), routed[0]
    protocol = port.app_protocol or port.name.split("-", 1)[0]
    if protocol in HTTP_ROUTED_PROTOCOLS:
        return
    key = "appProtocol" if port.app_protocol else "name"
    yield Finding(
        f"services.{name}.ports[{i}].{key}",
        "MK211",
        f"port {port.port} speaks {protocol!r}, which Istio does not route as HTTP, so its proxies would apply none "
        "of the service's HTTP rules: " + "; ".join(f"{rule.what} ({rule.key}): {rule.lost}" for rule in rules),
        "if the port serves HTTP, name it http[-<suffix>] (or set appProtocol: http, http2 or grpc); otherwise "
        "keep one version and remove the HTTP rules",
        obj=f"Service {name}.{svc.namespace}",
    )


def _match_key(match: RequestMatch | None) -> str:
    return "*" if match is None else match.model_dump_json(exclude_defaults=True)


def _check_rule_order(name: str, svc: ServiceSpec) -> Iterator[Finding]:
    """A rule after another with the same match never sees a request (IST0130)."""
    base = f"services.{name}"
    matches: list[tuple[str, str, list[RequestMatch | None]]] = [
        ("routes", f"{base}.traffic.routes", [r.match for r in svc.traffic.routes]),
        ("faults", f"{base}.faults", [f.match for f in svc.faults]),
    ]
    for kind, prefix, rule_matches in matches:
        first_with: dict[str, int] = {}
        for i, match in enumerate(rule_matches):
            key = _match_key(match)
            if key in first_with:
                yield Finding(
                    f"{prefix}[{i}].match",
                    "MK105",
                    f"same match as {kind}[{first_with[key]}], so this rule is never reached",
                    f"merge it into {kind}[{first_with[key]}] or change its match",
                    obj=_vs(name, svc),
                )
            first_with.setdefault(key, i)


def _check_calls(stack: StackConfig) -> Iterator[Finding]:
    for name, svc in stack.services.items():
        for callee in svc.calls:
            if callee not in stack.services:
                yield Finding(
                    f"services.{name}.calls.{callee}",
                    "MK104",
                    f"calls service {callee!r}, which the stack does not declare",
                    f"declare it under services, or use one of: {', '.join(stack.services)}",
                )


def _rule_timeout(svc: ServiceSpec, fault: FaultRule) -> str | None:
    """The route timeout of the VirtualService rule that carries ``fault`` (see render.http_rules)."""
    route = next((r for r in svc.traffic.routes if fault.match is not None and r.match == fault.match), None)
    return (route.timeout if route else None) or svc.traffic.timeout


def _callers(stack: StackConfig, service: str) -> Iterator[tuple[str, str, float]]:
    """Every (caller, callee, budget seconds) on a call path that ends at ``service``, nearest first."""
    seen = {service}
    frontier = [service]
    while frontier:
        callee = frontier.pop(0)
        for name, svc in stack.services.items():
            if callee in svc.calls:
                yield name, callee, svc.calls[callee].seconds()
                if name not in seen:
                    seen.add(name)
                    frontier.append(name)


def _check_fault_budgets(stack: StackConfig) -> Iterator[Finding]:
    """A delay at least as long as a caller's timeout budget turns into an error page upstream (MK503).

    Bookinfo's B3 lesson: 7s on ratings is within reviews' 10s, but productpage gives reviews 3s plus
    one retry, so the page fails. A warning, since testing that failure may be the point.
    """
    for name, svc in stack.services.items():
        for i, fault in enumerate(svc.faults):
            if fault.delay is None or fault.delay.percentage == 0:
                continue
            delay = fault.delay.fixed_delay
            seconds = duration_seconds(delay)
            path = f"services.{name}.faults[{i}].delay.fixedDelay"
            timeout = _rule_timeout(svc, fault)
            if timeout is not None and seconds >= duration_seconds(timeout):
                yield Finding(
                    path,
                    "MK503",
                    f"delay {delay} is not shorter than the route's own timeout {timeout}: "
                    "every delayed request times out",
                    "shorten the delay or lengthen the timeout, unless the timeout is what you are testing",
                    Severity.WARNING,
                    _vs(name, svc),
                )
            for caller, callee, budget in _callers(stack, name):
                if seconds >= budget:
                    call = stack.services[caller].calls[callee]
                    yield Finding(
                        path,
                        "MK503",
                        f"delay {delay} exceeds what {caller} waits for {callee} "
                        f"({call.timeout} × (1 + {call.retries} retries) = {budget:g}s): the call fails upstream",
                        f"keep the delay under {budget:g}s, or raise services.{caller}.calls.{callee}, "
                        "unless that failure is what you are testing",
                        Severity.WARNING,
                        _vs(name, svc),
                    )


def _image_is_pinned(image: str) -> bool:
    """``name:tag`` (not ``latest``) or ``name@sha256:…``; a registry port (``host:5000/name``) is no tag."""
    _, tag, digest = parse_image(image)  # the models accept valid references only
    return digest is not None or (tag is not None and tag != "latest")


def _allowed(stack: StackConfig, callee: ServiceSpec, caller: str) -> bool:
    if callee.allow_from is None:
        return not stack.namespaces.get(callee.namespace, NamespaceSpec()).default_deny
    caller_namespace = stack.services[caller].namespace
    return any(rule.service == caller or rule.namespace == caller_namespace for rule in callee.allow_from)


# The user ID Istio's sidecar runs as; iptables redirection lets its traffic out unproxied (IST0144).
SIDECAR_UID = 1337


def _check_security(stack: StackConfig) -> Iterator[Finding]:
    # Callers come from the stack's namespaces, and from the ingress gateway pods' namespaces.
    known_namespaces = list(
        dict.fromkeys([*stack.namespaces, *(i.gateway_namespace for i in stack.ingresses.values())])
    )
    for name, svc in stack.services.items():
        base = f"services.{name}"
        policy = f"AuthorizationPolicy {name}.{svc.namespace}"
        for i, rule in enumerate(svc.allow_from or []):
            if rule.service is not None and rule.service not in stack.services:
                yield Finding(
                    f"{base}.allowFrom[{i}].service",
                    "MK601",
                    f"allows calls from service {rule.service!r}, which the stack does not declare",
                    f"name a service of the stack ({', '.join(stack.services)}), or allow its namespace",
                    obj=policy,
                )
            if rule.namespace is not None and rule.namespace not in known_namespaces:
                yield Finding(
                    f"{base}.allowFrom[{i}].namespace",
                    "MK602",
                    f"allows calls from namespace {rule.namespace!r}, which the stack does not declare",
                    f"declare it under namespaces, or use one of: {', '.join(known_namespaces) or 'none'}",
                    obj=policy,
                )
        namespace = stack.namespaces.get(svc.namespace)
        if svc.traffic.tls == "DISABLE" and namespace is not None and namespace.mtls == "STRICT":
            yield Finding(
                f"{base}.traffic.tls",
                "MK603",
                f"plaintext to {name!r} contradicts STRICT mTLS in namespace {svc.namespace!r}: every call would fail",
                f"remove tls: DISABLE, or set namespaces.{svc.namespace}.mtls: PERMISSIVE while clients migrate",
                obj=f"DestinationRule {name}.{svc.namespace}",
            )
        for version, spec in svc.versions.items():
            if not _image_is_pinned(spec.image):
                yield Finding(
                    f"{base}.versions.{version}.image",
                    "MK604",
                    f"image {spec.image!r} is not pinned: a restart may run different code",
                    "pin a tag other than 'latest' (nginx:1.15) or a digest (nginx@sha256:…)",
                    Severity.ERROR if stack.production else Severity.WARNING,
                    obj=f"Deployment {name}-{version}.{svc.namespace}",
                )
            dataplane = namespace.dataplane if namespace is not None else "sidecar"
            if spec.run_as_user == SIDECAR_UID and dataplane == "sidecar":
                yield Finding(
                    f"{base}.versions.{version}.runAsUser",
                    "MK607",
                    f"runs as user {SIDECAR_UID}, the sidecar's own: Istio's redirection exempts that user, "
                    "so the app's traffic would bypass the proxy (no mTLS, no routing)",
                    "run the app as another user",
                    obj=f"Deployment {name}-{version}.{svc.namespace}",
                )
            for env_name, value in spec.env.items():
                if isinstance(value, EnvSource) and value.secret is not None and value.secret not in stack.secrets:
                    yield Finding(
                        f"{base}.versions.{version}.env.{env_name}.secret",
                        "MK605",
                        f"uses secret {value.secret!r}, which meshkit:secrets does not hold",
                        f"pulumi config set --secret --path 'meshkit:secrets.{value.secret}' <value>",
                        obj=f"Deployment {name}-{version}.{svc.namespace}",
                    )
        for callee in svc.calls:
            if callee in stack.services and not _allowed(stack, stack.services[callee], name):
                yield Finding(
                    f"{base}.calls.{callee}",
                    "MK606",
                    f"{name} calls {callee}, whose allow-list does not let it: those calls get 403",
                    f"add {{service: {name}}} to services.{callee}.allowFrom, or drop the call",
                    Severity.WARNING,
                    obj=f"AuthorizationPolicy {callee}.{stack.services[callee].namespace}",
                )


def _check_analysis(stack: StackConfig) -> Iterator[Finding]:
    """A metric gate needs a Prometheus to read (meshkit.metrics); without one every gated step is refused."""
    if stack.prometheus is not None:
        return
    for name, svc in stack.services.items():
        if svc.traffic.analysis is not None:
            yield Finding(
                f"services.{name}.traffic.analysis",
                "MK901",
                "the canary analysis has no Prometheus to read: the stack names none",
                "add meshkit:prometheus: {address: http://HOST:PORT} (the Prometheus that scrapes the proxies), "
                "or remove traffic.analysis",
            )


def check_stack(stack: StackConfig, deployed: Mapping[str, Any] | None = None) -> list[Finding]:
    """Every cross-object finding of a validated stack config, errors and warnings, sorted by path; ``deployed``,
    the outputs of the last deployment when known, tells which ingress was there first (MK705)."""
    findings = [f for name, svc in stack.services.items() for f in _check_service(stack, name, svc)]
    findings += _check_calls(stack)
    findings += _check_fault_budgets(stack)
    findings += _check_security(stack)
    findings += _check_analysis(stack)
    findings += check_ingresses(stack, (deployed or {}).get("ingresses") or {})
    findings += check_gateway_services(stack)
    return sorted(findings)


def _object_key(manifest: Manifest) -> tuple[str, str, str, str]:
    meta = manifest["metadata"]
    group = manifest["apiVersion"].rpartition("/")[0]  # two versions of one group's kind are one object
    return group, manifest["kind"], meta.get("namespace", ""), meta["name"]


def duplicate_objects(owned: list[tuple[str, Manifest]]) -> Iterator[Finding]:
    """Two things of the stack that render one object (its group, kind, namespace and name), e.g. service ``a-b``
    version ``v1`` and service ``a`` version ``b-v1`` (Deployment ``a-b-v1``), or a service named ``allow-nothing``
    beside a deny-by-default namespace: the later write replaces the earlier, each owner's routes or policy then
    apply to the other's object (MK212)."""
    first_owner: dict[tuple[str, str, str, str], str] = {}
    for owner, manifest in owned:
        key = _object_key(manifest)
        if key in first_owner:
            other = first_owner[key]
            yield Finding(
                owner,
                "MK212",
                f"{object_name(manifest)} would be declared both by {other} and by this: one object, two owners "
                "(whichever is written last replaces the other)",
                # A namespace's own objects have names of meshkit's (allow-nothing, default, …).
                f"rename {owner}: {key[3]!r} is the name meshkit gives that object of {other}"
                if other.startswith("namespaces.")
                else f"rename {owner} or {other}: both make the name {key[3]!r}",
                obj=object_name(manifest),
            )
        first_owner.setdefault(key, owner)


# The largest object the API server can store: etcd refuses a request over 1.5 MiB (the default of its
# --max-request-bytes, https://etcd.io/docs/latest/dev-guide/limit/) with "etcdserver: request is too large", and
# each object is written in one request. The API server's own limit on a request body, 3 MiB (MaxRequestBodyBytes
# in k8s.io/apiserver), is the larger, so etcd's applies; what the server adds (managedFields) only adds to it.
API_SERVER_MAX_OBJECT_BYTES = 1536 * 1024


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _largest_part(manifest: Manifest) -> tuple[str, int]:
    """Where an object's bulk is: the child holding more than half of its parent, as deep as that goes."""
    path: tuple[str | int, ...] = ()
    node: Any = manifest
    size = _json_size(node)
    while isinstance(node, dict | list) and node:
        children = list(node.items() if isinstance(node, dict) else enumerate(node))
        key, child = max(children, key=lambda item: _json_size(item[1]))
        if _json_size(child) * 2 <= size:
            break
        path, node, size = (*path, key), child, _json_size(child)
    return format_path(path) or "(the whole object)", size


def oversized_objects(owned: list[tuple[str, Manifest]]) -> Iterator[Finding]:
    """Objects the API server cannot store (MK313): the step would stop midway, some objects written, not this."""
    for owner, manifest in owned:
        size = _json_size(manifest)
        if size > API_SERVER_MAX_OBJECT_BYTES:
            part, part_size = _largest_part(manifest)
            fix = f"make it smaller: its largest part is {part} ({part_size} bytes)"
            if owner.startswith("ingresses."):
                fix += "; the ingress repeats each rule of a service it exposes once per path"
            yield Finding(
                owner,
                "MK313",
                f"{object_name(manifest)} would be {size} bytes as JSON, over the {API_SERVER_MAX_OBJECT_BYTES} bytes "
                "(1.5 MiB) etcd stores in one object: the API server would refuse it, and the step would stop midway",
                fix,
                obj=object_name(manifest),
            )


def errors_only(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def analyze_stack(
    raw: Mapping[str, Any], source: str = "stack config", deployed: Mapping[str, Any] | None = None
) -> tuple[StackConfig, list[Finding]]:
    """Parse and check a stack config once: raise :class:`ConfigError` listing every error found, or
    return the stack with its warnings (``deployed``: see :func:`check_stack`)."""
    stack = parse_stack(raw, source)
    findings = check_stack(stack, deployed)
    errors = errors_only(findings)
    if errors:
        raise ConfigError(errors, source)
    # Last, the rendered objects: one object two things declare, and each object against its schema, what the API
    # server would refuse mid-step. Rendering makes some 100,000 dicts and lists on a stack of 1000 services, and
    # no garbage (see gc_paused).
    with gc_paused():
        owned = owned_manifests(stack)
        refused = [*duplicate_objects(owned), *oversized_objects(owned)]
        refused += conformance_findings(m for _, m in owned)
    if refused:
        raise ConfigError(refused, source)
    return stack, findings


def validate_stack(raw: Mapping[str, Any], source: str = "stack config") -> StackConfig:
    """Parse and check a stack config; raise :class:`ConfigError` listing every error found."""
    return analyze_stack(raw, source)[0]


def parse_stack_file_text(text: str, source: str, *, declaration_order: bool = False) -> StackConfig:
    """Read and check the text of a stack file."""
    return validate_stack(stack_file_keys(text, source, declaration_order=declaration_order), source)


def load_stack_file(path: Path) -> StackConfig:
    """Read and check a stack file on disk."""
    return validate_stack(read_stack_file_keys(path), str(path))
