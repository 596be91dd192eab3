"""Value types shared by the config models: names, durations, images, quantities, patterns.

Each is an annotated type whose validator names the bad value and how to fix it (a code and a fix,
see :func:`invalid`), and :class:`MeshModel`, the base of every model: frozen, unknown keys refused,
camelCase or snake_case keys.
"""

from __future__ import annotations

import re
import urllib.parse
from decimal import Decimal
from typing import Annotated, Literal

import re2
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


def invalid(code: str, message: str, fix: str, key: str = "") -> PydanticCustomError:
    """A validation error that carries meshkit's finding code and a fix (see :mod:`meshkit.mesh.checks`).

    ``key`` names the offending key when a model-level check fails, so the reported config path ends
    at that key rather than at the model.
    """
    return PydanticCustomError(code, "{message}", {"message": message, "fix": fix, "key": key})


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


def program_too_large(what: str, size: int, key: str = "") -> PydanticCustomError:
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
        raise program_too_large(f"regex {shown(value)}", size)
    return value


def fits_a_request(header: str, value: str | None, key: str) -> None:
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


def _http_address(value: str) -> str:
    fix = "write the Prometheus HTTP API's base URL, e.g. 'http://127.0.0.1:9090' (no query or fragment)"
    parsed = urllib.parse.urlsplit(value)
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if parsed.scheme not in ("http", "https") or not parsed.hostname or port == -1:
        raise invalid("MK902", f"{value!r} is not an http:// or https:// address with a host", fix)
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise invalid("MK902", f"{value!r} holds a query, fragment or credentials", fix)
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


HttpAddress = Annotated[str, AfterValidator(_http_address)]
"""A service's base URL, ``http[s]://host[:port][/path]`` (Prometheus's)."""


MetricsSetup = Literal["envoy", "istio"]
"""Which request metrics a cluster's Prometheus holds (:class:`meshkit.config.traffic.Analysis`)."""


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
