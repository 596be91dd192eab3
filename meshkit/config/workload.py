"""What runs: a service's ports and each version's pods (image, replicas, probes, resources, env)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from meshkit.config.values import (
    INT32_MAX,
    PORT_PROTOCOLS,
    Capability,
    Count,
    DnsLabel,
    EnvName,
    Image,
    MeshModel,
    PortNumber,
    Quantity,
    invalid,
)


class ServicePort(MeshModel):
    """A Service port. Istio reads the protocol from ``name`` (``<protocol>[-<suffix>]``) or ``appProtocol``."""

    name: DnsLabel
    port: PortNumber
    target_port: PortNumber | None = None
    """Container port; defaults to ``port``."""
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None

    @model_validator(mode="after")
    def _istio_protocol_name(self) -> ServicePort:
        if self.app_protocol is None and not any(
            self.name == p or self.name.startswith(p + "-") for p in PORT_PROTOCOLS
        ):
            raise invalid(
                "MK201",
                f"port name {self.name!r} does not tell Istio the protocol, so L7 routing is lost",
                f"name it <protocol>[-<suffix>] with protocol one of {', '.join(PORT_PROTOCOLS)} "
                "(e.g. 'http' or 'http-web'), or set appProtocol",
                key="name",
            )
        return self

    @property
    def container_port(self) -> int:
        return self.target_port or self.port


class HttpGetAction(MeshModel):
    path: str = "/"
    port: PortNumber


class TcpSocketAction(MeshModel):
    port: PortNumber


class ExecAction(MeshModel):
    command: list[str] = Field(min_length=1)


class Probe(MeshModel):
    """A readiness or liveness probe: exactly one of ``httpGet``, ``tcpSocket``, ``exec``."""

    http_get: HttpGetAction | None = None
    tcp_socket: TcpSocketAction | None = None
    exec_action: ExecAction | None = Field(default=None, alias="exec")
    initial_delay_seconds: Count = Field(default=0, ge=0, le=INT32_MAX)
    period_seconds: Count = Field(default=10, ge=1, le=INT32_MAX)
    timeout_seconds: Count = Field(default=1, ge=1, le=INT32_MAX)
    failure_threshold: Count = Field(default=3, ge=1, le=INT32_MAX)

    @model_validator(mode="after")
    def _one_action(self) -> Probe:
        actions = [a for a in (self.http_get, self.tcp_socket, self.exec_action) if a is not None]
        if len(actions) != 1:
            raise invalid("MK003", "a probe needs exactly one action", "give one of httpGet, tcpSocket, exec")
        return self


class ResourceList(MeshModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class Resources(MeshModel):
    requests: ResourceList | None = None
    limits: ResourceList | None = None


class SecretKeyRef(MeshModel):
    """A key of a Kubernetes Secret that exists in the service's namespace (meshkit does not manage it)."""

    name: DnsLabel
    key: str = Field(min_length=1)


class EnvSource(MeshModel):
    """An environment value that is not written in the stack file: exactly one of the two."""

    secret: str | None = None
    """A name under ``meshkit:secrets`` (a Pulumi secret); meshkit puts it in a Kubernetes Secret."""
    secret_key_ref: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EnvSource:
        if (self.secret is None) == (self.secret_key_ref is None):
            raise invalid("MK003", "an env source needs exactly one kind", "give either 'secret' or 'secretKeyRef'")
        return self


# A plain value or a source; the discriminator picks one, so an error names that member only.
UNION_TAGS = frozenset({"plain-value", "value-source"})


EnvValue = Annotated[
    Annotated[str, Tag("plain-value")] | Annotated[EnvSource, Tag("value-source")],
    Discriminator(lambda v: "value-source" if isinstance(v, (dict, EnvSource)) else "plain-value"),
]


DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
"""Requests and limits of a container that declares none (each value can be overridden on its own)."""


class VersionSpec(MeshModel):
    """One version of a service: its own Deployment, labelled ``app=<service>``, ``version=<name>``.

    Hardened by default: no privilege escalation, every capability dropped but ``capabilities``, seccomp
    ``RuntimeDefault``, requests and limits always set.
    """

    image: Image
    """An image reference, checked against the grammar the container runtimes parse it with."""
    replicas: Count = Field(default=1, ge=0, le=1000)
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    resources: Resources | None = None
    """Merged over DEFAULT_RESOURCES, value by value."""
    capabilities: list[Capability] = Field(default_factory=list)
    """Linux capabilities the image needs; all others are dropped (official nginx: CHOWN, SETGID, SETUID,
    NET_BIND_SERVICE)."""
    run_as_non_root: bool = False
    """Refuse to start the container as root; set it for images that run as a user."""
    run_as_user: Count | None = Field(default=None, ge=0, le=INT32_MAX)
    read_only_root_filesystem: bool = False
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
