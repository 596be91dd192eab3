"""What a user declares in a stack config: namespaces, services, versions, traffic, routes and faults.

Pure pydantic, no Pulumi. Every model is frozen and forbids unknown keys, so a typo in a stack file is an
error rather than a silently ignored setting. Keys are accepted in the camelCase that Istio and Kubernetes
users write (``targetPort``, ``perTryTimeout``) as well as in snake_case.

Checks that need one value only (a range, a pattern) live here; checks that relate several objects (a
route naming a version that is not declared) live in :mod:`meshkit.analysis`.
"""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from typing import Annotated, Literal

import re2
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


def invalid(code: str, message: str, fix: str, key: str = "") -> PydanticCustomError:
    """A validation error that carries meshkit's finding code and a fix (see :mod:`meshkit.analysis`).

    ``key`` names the offending key when a model-level check fails, so the reported config path ends
    at that key rather than at the model.
    """
    return PydanticCustomError(code, "{message}", {"message": message, "fix": fix, "key": key})


# --- value types -------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Istio validates durations with CEL's duration(), which takes Go's syntax ("7s", "250ms", "1m30s").
_DURATION = re.compile(r"^(\d+(\.\d+)?(h|m|s|ms|us|ns))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_DURATION_UNIT_NANOSECONDS = {
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "ns": 1,
}
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_RE2_QUIET = re2.Options()
_RE2_QUIET.log_errors = False  # report through our own error, not RE2's stderr log
_HEADER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# A cookie's name is an HTTP token (RFC 6265 4.1.1 → RFC 7230 3.2.6); its value, cookie-octets: printable ASCII
# without space, DQUOTE, ',', ';' and backslash. '=' may appear in a value (base64 padding), not in a name.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+")
# Kubernetes label syntax (apimachinery IsQualifiedName, IsValidLabelValue): a name part, optionally after a
# DNS-subdomain prefix and '/'.
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A SPIFFE trust domain name: lowercase letters, digits, '.', '-' and '_' (SPIFFE-ID spec, 2.1).
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")

# The image reference grammar of github.com/distribution/reference (regexp.go), which kubelet and the container
# runtimes parse images with: [host[:port]/]path[:tag][@digest], path components lowercase. Written with ASCII
# classes where Go's \w is ASCII-only.
_IMAGE_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IMAGE_HOST = rf"(?:{_IMAGE_DOMAIN_COMPONENT}(?:\.{_IMAGE_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_IMAGE_HOST}/)?{_IMAGE_PATH_COMPONENT}(?:/{_IMAGE_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)
_IMAGE_NAME_MAX = 255  # distribution/reference NameTotalLengthMax
# Digest algorithms go-digest (hence containerd and CRI-O) accepts, with the length of their lowercase hex.
_IMAGE_DIGESTS = {"sha256": 64, "sha384": 96, "sha512": 128}

REDACTED = "[secret]"
"""What meshkit shows instead of a secret's value, everywhere."""

LINUX_CAPABILITIES = frozenset(
    [
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "AUDIT_WRITE",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "IPC_LOCK",
        "IPC_OWNER",
        "KILL",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "MKNOD",
        "NET_ADMIN",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_RAW",
        "PERFMON",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_CHROOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "SYSLOG",
        "WAKE_ALARM",
    ]
)

# Service port name prefixes Istio reads the protocol from (<protocol>[-<suffix>]).
PORT_PROTOCOLS = ("grpc", "grpc-web", "http", "http2", "https", "mongo", "mysql", "redis", "tcp", "tls", "udp")

# Envoy retry policies accepted in retryOn, besides plain HTTP status codes.
RETRY_ON_POLICIES = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise invalid(
            "MK203",
            f"{value!r} is not a valid DNS-1123 label",
            "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        )
    return value


def duration_nanoseconds(value: str) -> Decimal:
    """Nanoseconds, exactly, in an Istio duration such as ``7s``, ``1.5ms`` or ``1m30s``."""
    return sum(
        (Decimal(number) * _DURATION_UNIT_NANOSECONDS[unit] for number, unit in _DURATION_PART.findall(value)),
        Decimal(0),
    )


def duration_seconds(value: str) -> float:
    """Seconds in an Istio duration such as ``7s``, ``250ms`` or ``1m30s``."""
    return float(duration_nanoseconds(value) / 1_000_000_000)


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise invalid("MK303", f"{value!r} is not an Istio duration", "write it like '7s', '250ms' or '1m30s'")
    nanoseconds = duration_nanoseconds(value)
    if nanoseconds < 1_000_000:
        raise invalid("MK303", f"{value!r} is shorter than Istio's minimum of 1ms", "use at least '1ms'")
    # istiod's webhook refuses what its CRD schema admits: a duration that is not whole milliseconds.
    if nanoseconds % 1_000_000:
        raise invalid(
            "MK303",
            f"{value!r} is not a whole number of milliseconds, which Istio refuses",
            "round it to milliseconds, e.g. '2ms' or '1500ms' rather than '1500us' or '1.5ms'",
        )
    return value


def percent_text(value: float) -> str:
    """A percentage as it was written: ``12.5``, ``0.00001``, ``33.333333``, ``100`` (not ``1e-05`` or
    ``33.3333``, as ``:g`` would write them): the shortest decimal that reads back as the same number."""
    number = float(value)
    return str(int(number)) if number.is_integer() else format(Decimal(repr(number)), "f")


def shown(value: object, limit: int = 60) -> str:
    """A value as a message quotes it: whole when short, else its start and its length."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit number"  # repr() refuses an integer of over 4300 digits
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    if isinstance(value, float) and not value.is_integer() and 1e-9 <= abs(value) < 1e16:
        return percent_text(value)  # as written: -0.00001, not -1e-05
    return repr(value)


# Envoy answers 431 to a request whose headers add up to more than its max_request_headers_kb, 60 KiB unless
# configured (DEFAULT_MAX_REQUEST_HEADERS_KB; Istio keeps it), counting each header's name and value, the path
# too (:path): a match on a value longer than that never sees a request.
ENVOY_MAX_REQUEST_HEADERS_BYTES = 60 * 1024
# istiod sets re2.max_program_size.error_level to 32768 in every proxy's bootstrap: Envoy refuses a regex whose
# RE2 program is larger, and with it the whole route configuration (the proxy keeps serving the routes before).
ISTIO_RE2_MAX_PROGRAM_SIZE = 32768


def _re2_program_size(value: str) -> int:
    return int(re2.compile(value, _RE2_QUIET).programsize)


def _program_too_large(what: str, size: int, key: str = "") -> PydanticCustomError:
    return invalid(
        "MK312",
        f"{what} compiles to an RE2 program of size {size}, over the {ISTIO_RE2_MAX_PROGRAM_SIZE} that Istio's "
        "proxies accept: Envoy would refuse the whole route configuration and keep the routes it had",
        "match less: a shorter pattern, a prefix, or fewer alternatives",
        key,
    )


def _re2_pattern(value: str) -> str:
    # Envoy matches with RE2, which refuses some things Python's re accepts (look-around, back-references).
    try:
        size = _re2_program_size(value)
    except re2.error as err:
        reason = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
        raise invalid(
            "MK304",
            f"{shown(value)} is not a valid RE2 regex ({reason})",
            "Envoy matches with RE2, which has no look-around or back-references; rewrite the pattern",
        ) from None
    if size > ISTIO_RE2_MAX_PROGRAM_SIZE:
        raise _program_too_large(f"regex {shown(value)}", size)
    return value


def _fits_a_request(header: str, value: str | None, key: str) -> None:
    """Refuse a match on a value no request can carry to a proxy (ENVOY_MAX_REQUEST_HEADERS_BYTES)."""
    size = len(header) + len((value or "").encode())
    if size > ENVOY_MAX_REQUEST_HEADERS_BYTES:
        raise invalid(
            "MK312",
            f"{'the path' if header == ':path' else f'header {header!r}'} would take {size} bytes with "
            f"{shown(value or '')}, over the {ENVOY_MAX_REQUEST_HEADERS_BYTES} bytes (60 KiB) Envoy accepts for all "
            "of a request's headers: it answers 431 before any route, so this never matches",
            "match a shorter value, such as its prefix",
            key,
        )


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise invalid("MK307", f"{value!r} is not a Kubernetes quantity", "write it like '100m', '0.5' or '128Mi'")
    return value


def _header_name(value: str) -> str:
    if not _HEADER_NAME.match(value):
        raise invalid(
            "MK205",
            f"header name {value!r} is not lowercase letters, digits and '-'",
            "write header names in lowercase: Istio matches on lowercased names",
        )
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise invalid(
            "MK206",
            f"{value!r} is not a valid environment variable name",
            "use letters, digits, '_', '-' and '.', not starting with a digit",
        )
    return value


def _capability(value: str) -> str:
    if not value:
        raise invalid(
            "MK310",
            "empty capability name",
            "remove the empty entry, or name a capability such as NET_BIND_SERVICE",
        )
    if value not in LINUX_CAPABILITIES:
        raise invalid(
            "MK310",
            f"{value!r} is not a Linux capability",
            "use a name such as NET_BIND_SERVICE, CHOWN, SETUID or SETGID, without the CAP_ prefix",
        )
    return value


def _not_a_boolean(value: object) -> object:
    # YAML reads true/false (and, in YAML 1.1, yes/no/on/off) as booleans, which pydantic would take as 1/0.
    if isinstance(value, bool):
        raise invalid(
            "MK003",
            f"expected a number, got {str(value).lower()} (a boolean)",
            "write the number itself; YAML reads true/false, yes/no and on/off as booleans",
        )
    return value


def _shown_character(char: str) -> str:
    return repr(char) if char.isprintable() else f"U+{ord(char):04X}"


def _cookie_part(kind: str, pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        if not value:
            raise invalid(
                "MK207",
                f"empty cookie {kind}",
                "give the cookie's name"
                if kind == "name"
                else "give the value; to match a cookie whose value is empty, write a regex under headers.cookie",
            )
        bad = sorted({c for c in value if not pattern.fullmatch(c)})
        if bad:
            raise invalid(
                "MK207",
                f"cookie {kind} {value!r} contains {', '.join(map(_shown_character, bad))}, "
                f"which cannot appear in a cookie {kind}",
                f"a cookie {kind} is {allowed}",
            )
        return value

    return AfterValidator(check)


def parse_image(image: str) -> tuple[str, str | None, str | None]:
    """``(name, tag, digest)`` of a valid image reference (see :data:`_IMAGE_REFERENCE`); ValueError otherwise,
    saying what is wrong."""
    found = _IMAGE_REFERENCE.fullmatch(image)
    if found is None or len(found["name"]) > _IMAGE_NAME_MAX:
        raise ValueError(_image_problem(image))
    digest = found["digest"]
    if digest is not None and _digest_problem(digest):
        raise ValueError(_digest_problem(digest))
    return found["name"], found["tag"], digest


def _digest_problem(digest: str) -> str:
    algorithm, _, hex_digits = digest.partition(":")
    length = _IMAGE_DIGESTS.get(algorithm)
    if length is None or len(hex_digits) != length or not re.fullmatch(r"[0-9a-f]+", hex_digits):
        return f"has digest {digest!r}, not sha256:<64 lowercase hex digits> (or sha384:<96>, sha512:<128>)"
    return ""


def _image_problem(image: str) -> str:
    """Why an image reference does not follow the grammar, as precisely as a quick look can tell."""
    reference, at, digest = image.partition("@")
    # A ':' after the last '/' starts the tag; before it, it is a registry port.
    name, colon, tag = reference.rpartition(":") if ":" in reference.rsplit("/", 1)[-1] else (reference, "", "")
    host, slash, path = name.partition("/")
    if not slash or not ("." in host or ":" in host or host == "localhost"):
        path = name  # like distribution/reference: a first component without '.' or ':' is part of the path
    if not image:
        return "is empty"
    if any(c.isspace() or not c.isprintable() for c in image):
        return "contains a space or control character"
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        return "has an empty path component"
    if colon and not tag:
        return "has an empty tag"
    if colon and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
        return f"has tag {tag!r}, not 1 to 128 letters, digits, '_', '.' or '-' starting with a letter, digit or '_'"
    if at and not digest:
        return "has an empty digest"
    if at and _digest_problem(digest):
        return _digest_problem(digest)
    if path != path.lower():
        return f"has upper case in its repository path {path!r}"
    if len(name) > _IMAGE_NAME_MAX:
        return f"has a name longer than {_IMAGE_NAME_MAX} characters"
    return "does not follow the image reference grammar"


def _image(value: str) -> str:
    try:
        parse_image(value)
    except ValueError as err:
        raise invalid(
            "MK311",
            f"image {value!r} {err}",
            "write [registry[:port]/]path[:tag][@sha256:<64 hex digits>] with a lowercase path, "
            "e.g. nginx:1.15 or registry.example.com:5000/team/app:1.2",
        ) from None
    return value


def _label_key(value: str) -> str:
    prefix, slash, name = value.rpartition("/")
    problem = ""
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        problem = f"prefix {prefix!r} is not a lowercase DNS subdomain"
    elif len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        problem = f"name {name!r} is not a label name" if slash else "not a label name"
    if problem:
        raise invalid(
            "MK208",
            f"label key {value!r} would be refused by Kubernetes ({problem})",
            "write [prefix/]name (team, example.com/team): the name at most 63 letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit; the prefix a lowercase DNS subdomain",
        )
    return value


def _label_value(value: str) -> str:
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        raise invalid(
            "MK208",
            f"label value {value!r} would be refused by Kubernetes",
            "use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit "
            "(or an empty value)",
        )
    return value


def _trust_domain(value: str) -> str:
    if not _TRUST_DOMAIN.fullmatch(value):
        raise invalid(
            "MK209",
            f"{value!r} is not a SPIFFE trust domain",
            "use lowercase letters, digits, '.', '-' and '_' only, without spiffe:// or a path, e.g. cluster.local",
        )
    return value


_HOST_NAME = re.compile(r"^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$")


def _host(value: str) -> str:
    fix = "write a lowercase DNS name (bookinfo.example.com), a wildcard for its subdomains (*.example.com), or *"
    if len(value) > 253 or not _HOST_NAME.fullmatch(value):
        raise invalid("MK210", f"{value!r} is not a host an Istio Gateway can serve", fix)
    if value == "*":
        return value
    # What istiod's validation refuses beyond the pattern (a Gateway or a VirtualService bound to it).
    labels = value.removeprefix("*.").split(".")
    too_long = [label for label in labels if len(label) > 63]
    if too_long:
        raise invalid("MK210", f"{value!r}: the label {too_long[0][:20]!r}… is longer than 63 characters", fix)
    if len(labels) < 2:
        raise invalid("MK210", f"{value!r} is a short name, which istiod refuses for a gateway's host", fix)
    if labels[-1].isdigit():
        raise invalid("MK210", f"{value!r}: its top-level label {labels[-1]!r} is all digits (istiod refuses it)", fix)
    return value


def _object_name(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise invalid(
            "MK210",
            f"{value!r} is not a Kubernetes object name",
            "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        )
    return value


def _redacted(value: object) -> str:
    # A secret's value never enters the models, so no message, log or output can show it.
    if isinstance(value, (str, int, float)) or (isinstance(value, dict) and set(value) == {"secure"}):
        return REDACTED
    raise invalid("MK003", "a secret must be a string", "set it with: pulumi config set --secret --path <key> <value>")


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Capability = Annotated[str, AfterValidator(_capability)]
Redacted = Annotated[str, BeforeValidator(_redacted)]
Duration = Annotated[str, AfterValidator(_duration)]
Re2Pattern = Annotated[str, AfterValidator(_re2_pattern)]
Quantity = Annotated[str, AfterValidator(_quantity)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
Image = Annotated[str, AfterValidator(_image)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
TrustDomain = Annotated[str, AfterValidator(_trust_domain)]
Host = Annotated[str, AfterValidator(_host)]
ObjectName = Annotated[str, AfterValidator(_object_name)]
CookieName = Annotated[
    str, _cookie_part("name", _COOKIE_NAME, "letters, digits and !#$%&'*+-.^_`|~ (no space, '=', ';' or ',')")
]
CookieValue = Annotated[
    str, _cookie_part("value", _COOKIE_VALUE, "printable ASCII without space, '\"', ',', ';' or backslash")
]
Count = Annotated[int, BeforeValidator(_not_a_boolean), Strict()]
"""A whole number written as one: ``true``, ``2.0`` or ``"2"`` are refused, not taken as 1 or 2."""
Percent = Annotated[float, BeforeValidator(_not_a_boolean), Field(ge=0, le=100)]
"""Not strict: ``pulumi config set --path`` stores a number that is not an integer (``5.5``) as a string."""
Weight = Annotated[Count, Field(ge=0, le=100)]
PortNumber = Annotated[Count, Field(ge=1, le=65535)]
INT32_MAX = 2**31 - 1
"""The largest value of Kubernetes' int32 fields (a probe's seconds), and of a user ID it accepts."""


class MeshModel(BaseModel):
    """Base of every config model: frozen, unknown keys refused, camelCase or snake_case keys."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        strict=False,
    )


def check_weights(weights: dict[str, int]) -> dict[str, int]:
    """Weights of one route: they must add up to 100, as Istio requires of a weighted route."""
    total = sum(weights.values())
    if weights and total != 100:
        shown = ", ".join(f"{version}={weight}" for version, weight in weights.items())
        raise invalid("MK301", f"must sum to 100, got {total} ({shown})", "make the weights add up to 100")
    return weights


Weights = Annotated[dict[DnsLabel, Weight], AfterValidator(check_weights)]
"""Version → percent of one route."""


# --- namespaces --------------------------------------------------------------------------------------


# The namespace labels meshkit derives from `dataplane`, `revision` and `waypoint`: one set by hand would
# be overwritten, or name a waypoint the stack does not deploy (every request to the namespace then fails).
MESH_LABELS = ("istio-injection", "istio.io/rev", "istio.io/dataplane-mode", "istio.io/use-waypoint",
               "istio.io/use-waypoint-namespace")  # fmt: skip


class NamespaceSpec(MeshModel):
    """A namespace whose pods join the mesh."""

    dataplane: Literal["sidecar", "ambient"] = "sidecar"
    """``sidecar``: Envoy injected into each pod; ``ambient``: ztunnel/waypoint, no sidecar."""
    revision: DnsLabel | None = None
    """Istio control-plane revision for sidecar injection (``istio.io/rev=<revision>``)."""
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    """Extra labels; the data-plane labels are meshkit's to set."""
    mtls: Literal["STRICT", "PERMISSIVE"] = "STRICT"
    """Mutual TLS between workloads (PeerAuthentication). PERMISSIVE also accepts plaintext, for migrating
    clients that are not in the mesh yet."""
    default_deny: bool = False
    """Deny every request that no service's ``allowFrom`` allows (Istio's namespace-wide allow-nothing)."""
    waypoint: DnsLabel | Literal[False] | None = None
    """Ambient only: the waypoint proxy that applies the namespace's L7 routing and policies (a Gateway API
    ``Gateway`` of class ``istio-waypoint`` by this name, and the label ``istio.io/use-waypoint``). Omitted:
    automatic, ``waypoint`` when the namespace holds a service of the stack; ``false``: none, and L7 rules
    there are refused (MK804)."""

    @model_validator(mode="after")
    def _one_injection_label(self) -> NamespaceSpec:
        owned = set(MESH_LABELS) & set(self.labels)
        if owned:
            raise invalid(
                "MK401",
                f"labels must not set {', '.join(sorted(owned))}: meshkit sets it from the namespace's settings",
                "choose the data plane with 'dataplane', 'revision' and 'waypoint', so that exactly one injection "
                "label is set and a waypoint label names a waypoint the stack deploys",
            )
        if self.revision and self.dataplane == "ambient":
            raise invalid(
                "MK401",
                "'revision' applies to sidecar injection only, and ambient was chosen",
                "remove 'revision' or use dataplane: sidecar",
            )
        if self.waypoint is not None and self.dataplane != "ambient":
            raise invalid(
                "MK401",
                "'waypoint' applies to the ambient data plane only, and sidecar was chosen",
                "remove 'waypoint' (sidecars apply L7 rules themselves) or use dataplane: ambient",
                "waypoint",
            )
        if isinstance(self.waypoint, str) and not self.waypoint[0].isalpha():
            raise invalid(
                "MK203",
                f"waypoint name {self.waypoint!r} does not start with a letter, and istiod names the waypoint's "
                "Service after it",
                "start the name with a letter, e.g. waypoint",
                "waypoint",
            )
        if self.waypoint == "none":
            raise invalid(
                "MK803",
                "waypoint name 'none' is reserved: istio.io/use-waypoint=none means no waypoint",
                "name the waypoint otherwise (e.g. waypoint), or write waypoint: false for none",
                "waypoint",
            )
        return self


# --- workloads ---------------------------------------------------------------------------------------


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


# --- routing -----------------------------------------------------------------------------------------


class StringMatch(MeshModel):
    """Exactly one of ``exact``, ``prefix``, ``regex`` (RE2)."""

    exact: str | None = None
    prefix: str | None = None
    regex: Re2Pattern | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StringMatch:
        if sum(v is not None for v in (self.exact, self.prefix, self.regex)) != 1:
            raise invalid("MK003", "a string match needs exactly one kind", "give one of exact, prefix, regex")
        return self

    def fits_a_request(self, header: str, key: str) -> None:
        """Refuse an exact or prefix value no request can carry in ``header`` (a regex's RE2 program is bounded,
        which bounds what it can require)."""
        kind = "exact" if self.exact is not None else "prefix"
        _fits_a_request(header, self.exact if self.exact is not None else self.prefix, f"{key}.{kind}")


def _re2_literal(text: str) -> str:
    """``text`` as an RE2 literal: only RE2's metacharacters escaped, so the rendered regex stays readable."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def cookie_regex(name: str, value: str) -> str:
    r"""The Cookie header regex that matches one cookie wherever it stands, e.g. for ``user=jason``
    ``^(.*?;[ \t]*)?(user=jason)([ \t]*;.*)?$``.

    Browsers separate cookies with ``"; "`` (RFC 6265 5.4), some clients with ``";"``; Envoy joins the
    cookie headers of an HTTP/2 request with ``"; "``. The name can only start the header or follow a ``;``
    and optional whitespace, and the value can only end it or precede one, so ``xuser=jason`` and
    ``user=jasonx`` do not match. (Istio's old Bookinfo sample, ``^(.*?;)?(user=jason)(;.*)?$``, misses the
    cookie after ``"; "``; it can still be written under ``headers: {cookie: {regex: …}}``.)
    """
    return rf"^(.*?;[ \t]*)?({_re2_literal(name)}={_re2_literal(value)})([ \t]*;.*)?$"


class RequestMatch(MeshModel):
    """Conditions on a request; all must hold. ``cookie: {user: jason}`` is shorthand for the cookie regex."""

    headers: dict[HeaderName, StringMatch] = Field(default_factory=dict)
    cookie: dict[CookieName, CookieValue] = Field(default_factory=dict, max_length=1)
    uri: StringMatch | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> RequestMatch:
        if not (self.headers or self.cookie or self.uri):
            raise invalid("MK003", "a match needs at least one condition", "give headers, cookie or uri")
        if self.cookie and "cookie" in self.headers:
            raise invalid("MK003", "the cookie is matched twice", "use either the 'cookie' shorthand or headers.cookie")
        return self

    @model_validator(mode="after")
    def _fits_a_proxy(self) -> RequestMatch:
        for header, match in self.headers.items():
            match.fits_a_request(header, f"headers.{header}")
        if self.uri is not None:
            self.uri.fits_a_request(":path", "uri")
        for name, value in self.cookie.items():
            size = _re2_program_size(cookie_regex(name, value))
            if size > ISTIO_RE2_MAX_PROGRAM_SIZE:
                what = f"the Cookie regex of this {len(value)}-character value"
                raise _program_too_large(what, size, f"cookie.{name}")
        return self

    def header_matches(self) -> dict[str, StringMatch]:
        """All header conditions, the cookie shorthand expanded."""
        merged = dict(self.headers)
        for name, value in self.cookie.items():
            merged["cookie"] = StringMatch(regex=cookie_regex(name, value))
        return dict(sorted(merged.items()))


class Retries(MeshModel):
    attempts: Count = Field(ge=0, le=100)
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    """Comma-separated Envoy retry policies (``5xx,connect-failure``) or HTTP status codes."""

    @field_validator("retry_on")
    @classmethod
    def _known_policies(cls, value: str | None) -> str | None:
        if value is None:
            return value
        unknown = [p for p in value.split(",") if p.strip() not in RETRY_ON_POLICIES and not p.strip().isdigit()]
        if unknown:
            raise invalid(
                "MK308",
                f"unknown retry policy {', '.join(map(repr, unknown))}",
                f"use a comma-separated list of {', '.join(sorted(RETRY_ON_POLICIES))} or HTTP status codes",
            )
        return value


class Mirror(MeshModel):
    """Copy a share of requests to a version, fire-and-forget (responses are dropped)."""

    version: DnsLabel
    percentage: Percent = 100


class RouteRule(MeshModel):
    """A request-content route: requests matching ``match`` go to ``to`` (one version) or ``weights``."""

    name: DnsLabel | None = None
    match: RequestMatch
    to: DnsLabel | None = None
    weights: Weights = Field(default_factory=dict)
    timeout: Duration | None = None
    retries: Retries | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> RouteRule:
        if (self.to is None) == (not self.weights):
            raise invalid("MK003", "a route needs one destination", "give either 'to' (a version) or 'weights'", "to")
        return self

    def destinations(self) -> dict[str, int]:
        return {self.to: 100} if self.to else dict(self.weights)


class Delay(MeshModel):
    fixed_delay: Duration
    percentage: Percent = 100


class Abort(MeshModel):
    http_status: Count = Field(ge=200, le=599)
    percentage: Percent = 100


class FaultRule(MeshModel):
    """Delay and/or abort requests to a service, for requests matching ``match`` (all requests if omitted).

    Composed into the service's single VirtualService: a fault whose match equals a route's match is
    added to that route; any other scoped fault becomes its own rule ahead of the routes, sending traffic
    where the default route does; an unscoped fault is added to every rule.
    """

    name: DnsLabel | None = None
    match: RequestMatch | None = None
    delay: Delay | None = None
    abort: Abort | None = None
    allow_unscoped: bool = False
    """Allow a fault without ``match`` in a production stack, where it would hit every user."""

    @model_validator(mode="after")
    def _something_to_inject(self) -> FaultRule:
        if self.delay is None and self.abort is None:
            raise invalid("MK003", "a fault injects nothing", "give a delay, an abort, or both")
        return self


class TrafficPolicy(MeshModel):
    """Where a service's requests go: the weighted default route plus request-content routes."""

    api: Literal["istio", "gateway"] = "istio"
    """How the routes are written: ``istio``, a VirtualService over a DestinationRule's subsets; ``gateway``, a
    Kubernetes Gateway API HTTPRoute whose parent is the Service (GAMMA), with one Service per version as its
    backends (see :mod:`meshkit.gatewayapi`). What the Gateway API cannot express is refused (MK801)."""
    tls: Literal["ISTIO_MUTUAL", "DISABLE"] = "ISTIO_MUTUAL"
    """TLS from callers' sidecars to this service (DestinationRule); DISABLE contradicts STRICT mTLS."""
    weights: Weights = Field(default_factory=dict)
    """Version → percent for the default route; declared versions left out get 0. May be omitted
    when the service has one version."""
    timeout: Duration | None = None
    retries: Retries | None = None
    mirror: Mirror | None = None
    port: PortNumber | None = None
    """Service port the routes apply to; needed when the service exposes more than one port."""
    max_step: Weight | None = None
    """Largest change of any version's weight in one step, against the last deployed state."""
    routes: list[RouteRule] = Field(default_factory=list)
    """Request-content routes, tried in order before the default route."""
    steps: list[Weight] = Field(default_factory=list)
    """The canary's weights, step by step, for ``meshkit step --promote`` (e.g. ``[10, 30, 50, 100]``)."""

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[int]) -> list[int]:
        if steps and (steps[-1] != 100 or any(a >= b for a, b in itertools.pairwise(steps))):
            raise invalid(
                "MK309",
                f"steps {steps} must increase and end at 100",
                "list the canary's weights in increasing order, e.g. [10, 30, 50, 100]",
            )
        return steps


class AllowRule(MeshModel):
    """Callers allowed to reach a service: one stack service or one declared namespace, optionally only
    for some methods and paths."""

    service: DnsLabel | None = None
    namespace: DnsLabel | None = None
    methods: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_caller(self) -> AllowRule:
        if (self.service is None) == (self.namespace is None):
            raise invalid("MK003", "an allow rule names one caller", "give either 'service' or 'namespace'")
        return self

    @model_validator(mode="after")
    def _fits_a_proxy(self) -> AllowRule:
        for i, path in enumerate(self.paths):
            _fits_a_request(":path", path.strip("*"), f"paths[{i}]")
        return self


class CallBudget(MeshModel):
    """How long a service's own client code waits on a call to another service, which Istio cannot see
    (Bookinfo's productpage gives reviews 3s and one retry)."""

    timeout: Duration
    retries: Count = Field(default=0, ge=0, le=100)

    def seconds(self) -> float:
        """The whole budget: timeout × (1 + retries)."""
        return duration_seconds(self.timeout) * (1 + self.retries)


class ServiceSpec(MeshModel):
    """A service with one or more versions, one Service, one DestinationRule and one VirtualService."""

    namespace: DnsLabel
    ports: list[ServicePort] = Field(min_length=1)
    versions: dict[DnsLabel, VersionSpec] = Field(min_length=1)
    traffic: TrafficPolicy = Field(default_factory=TrafficPolicy)
    faults: list[FaultRule] = Field(default_factory=list)
    allow_from: list[AllowRule] | None = None
    """Who may call this service (an AuthorizationPolicy); omitted: anyone, unless the namespace denies
    by default; ``[]``: no one."""
    calls: dict[DnsLabel, CallBudget] = Field(default_factory=dict)
    """Services this one calls, with its client's timeout budget; a fault delay downstream that exceeds
    the budget is reported (MK503)."""

    def default_weights(self) -> dict[str, int]:
        """Percent per declared version for the default route (a lone version takes all traffic)."""
        if not self.traffic.weights and len(self.versions) == 1:
            return {next(iter(self.versions)): 100}
        return {version: self.traffic.weights.get(version, 0) for version in self.versions}

    def routed_versions(self) -> set[str]:
        """Versions that any route, default or request-content, sends traffic to."""
        routed = {v for v, w in self.default_weights().items() if w > 0}
        for route in self.traffic.routes:
            routed |= {v for v, w in route.destinations().items() if w > 0}
        if self.traffic.mirror:
            routed.add(self.traffic.mirror.version)
        return routed


# --- traffic from outside ----------------------------------------------------------------------------


class IngressTls(MeshModel):
    """HTTPS at the gateway, with the certificate and key of a Secret in the gateway pods' namespace."""

    credential_name: ObjectName


class IngressRoute(MeshModel):
    """Requests to ``paths`` go to ``service``, with that service's own weights, request routes and faults."""

    service: DnsLabel
    paths: list[StringMatch] = Field(default_factory=lambda: [StringMatch(prefix="/")], min_length=1)
    """URI matches (any one of them); the default sends every path."""
    port: PortNumber | None = None
    """The service port to send to; needed when the service has several."""

    @model_validator(mode="after")
    def _fits_a_proxy(self) -> IngressRoute:
        for i, path in enumerate(self.paths):
            path.fits_a_request(":path", f"paths[{i}]")
        return self


class IngressSpec(MeshModel):
    """A named entry point from outside the mesh: an Istio Gateway on the ingress gateway pods, and the
    routes bound to it."""

    namespace: DnsLabel
    """Where the Gateway and its VirtualService live (a namespace of this stack)."""
    hosts: list[Host] = Field(default_factory=lambda: ["*"], min_length=1)
    port: PortNumber | None = None
    """The gateway pods' port; defaults to 8080 for HTTP and 8443 with ``tls`` (the ports of Istio's
    ingress gateway container, behind its Service's 80 and 443)."""
    tls: IngressTls | None = None
    selector: dict[LabelKey, LabelValue] = Field(default_factory=lambda: {"istio": "ingressgateway"}, min_length=1)
    """Labels of the ingress gateway pods that serve this entry point."""
    gateway_namespace: DnsLabel = "istio-system"
    """Where those pods run: their identity is what an exposed service's ``allowFrom`` must admit."""
    routes: list[IngressRoute] = Field(min_length=1)

    @property
    def listen_port(self) -> int:
        return self.port or (8443 if self.tls else 8080)


class StackConfig(MeshModel):
    """Everything under the ``meshkit:`` keys of one stack file."""

    production: bool = False
    """Marks a production environment: stricter rollout rules apply."""
    max_step: Weight | None = None
    """Default ``maxStep`` of every service of the stack."""
    trust_domain: TrustDomain = "cluster.local"
    """The mesh's trust domain, the first part of every SPIFFE principal."""
    ready_timeout: Duration = "10m"
    """How long ``pulumi up`` waits for a created or updated Deployment to become Available before the step
    fails (the routes to that version are then left as they were)."""
    secrets: dict[EnvName, Redacted] = Field(default_factory=dict)
    """Pulumi secrets for ``env`` (``pulumi config set --secret --path meshkit:secrets.<name> <value>``);
    only their names reach the models."""
    namespaces: dict[DnsLabel, NamespaceSpec] = Field(default_factory=dict)
    services: dict[DnsLabel, ServiceSpec] = Field(default_factory=dict)
    ingresses: dict[DnsLabel, IngressSpec] = Field(default_factory=dict)
    """Entry points from outside the mesh, by name (the Gateway's and its VirtualService's name)."""
