"""The ``cookie`` match shorthand: the rendered regex, run through RE2 with full-match semantics as Envoy
does, finds the cookie wherever it stands in a real Cookie header, and nowhere else."""

from __future__ import annotations

from typing import Any

import pytest
import re2
from hypothesis import given
from hypothesis import strategies as st

from meshkit.config.traffic import RequestMatch, cookie_regex
from meshkit.errors import ConfigError
from meshkit.mesh.checks import validate_stack
from meshkit.mesh.render import render_stack

from .scenario_data import nginx_stack

SEED_REGEX = "^(.*?;)?(user=jason)(;.*)?$"
"""Istio's old Bookinfo samples' regex for ``user=jason``, which misses the cookie after ``"; "``."""


def _rendered_regex(match: dict[str, Any]) -> str:
    """The Cookie header regex of the VirtualService rule rendered for a route with ``match``."""
    stack = validate_stack(nginx_stack(traffic={"weights": {"v1": 100}, "routes": [{"match": match, "to": "v2"}]}))
    (service,) = [m for m in render_stack(stack) if m["kind"] == "VirtualService" and m["metadata"]["name"] == "nginx"]
    regex: str = service["spec"]["http"][0]["match"][0]["headers"]["cookie"]["regex"]
    return regex


def _envoy_matches(regex: str, header: str) -> bool:
    """Envoy's safe_regex header match: RE2, the whole value."""
    return re2.fullmatch(regex, header) is not None


JASON = _rendered_regex({"cookie": {"user": "jason"}})

# (Cookie header as a client sends it, whether the user=jason route takes it)
HEADERS = [
    ("user=jason", True),  # the only cookie
    ("user=jason; session=abc", True),  # first, browser separator "; "
    ("user=jason;session=abc", True),  # first, bare ";"
    ("session=abc; user=jason", True),  # last
    ("session=abc;user=jason", True),
    ("a=b; user=jason; c=d", True),  # in the middle
    ("a=b;user=jason;c=d", True),
    ("a=b;\tuser=jason", True),  # optional whitespace is SP or HTAB
    ("user=jason;", True),  # trailing separator
    ("user=bob; user=jason", True),  # the same name twice: one of them is jason
    ("user=jasonx", False),  # near misses: longer value
    ("a=b; user=jasonx; c=d", False),
    ("user=jaso", False),  # shorter value
    ("xuser=jason", False),  # longer name
    ("a=b; xuser=jason", False),
    ("notuser=jason", False),
    ("a=b;notuser=jason; c=d", False),
    ("User=jason", False),  # cookie names are case-sensitive
    ("user=", False),
    ("user", False),
    ("", False),
    ("session=user=jason", False),  # the pair inside another cookie's value
    ("session=abc", False),
]


@pytest.mark.parametrize(("header", "routed"), HEADERS, ids=[repr(h) for h, _ in HEADERS])
def test_cookie_shorthand_finds_the_cookie_anywhere_in_a_real_header(header: str, routed: bool) -> None:
    assert _envoy_matches(JASON, header) is routed


def test_the_seed_regex_misses_the_cookie_after_a_browser_separator() -> None:
    """Why the shorthand changed: the issue's report, against the regex it used to render."""
    assert _envoy_matches(SEED_REGEX, "user=jason") and _envoy_matches(SEED_REGEX, "a=b;user=jason")
    assert not _envoy_matches(SEED_REGEX, "session=abc; user=jason")
    assert not _envoy_matches(SEED_REGEX, "a=b; user=jason; c=d")


def test_the_seed_regex_is_still_expressible_as_a_header_regex() -> None:
    assert _rendered_regex({"headers": {"cookie": {"regex": SEED_REGEX}}}) == SEED_REGEX


def test_regex_metacharacters_in_the_cookie_are_literal() -> None:
    regex = _rendered_regex({"cookie": {"a.b": "x+y(1)$"}})
    assert _envoy_matches(regex, "c=d; a.b=x+y(1)$")
    assert not _envoy_matches(regex, "aXb=x+y(1)$")
    assert not _envoy_matches(regex, "a.b=xxy(1)$")
    assert not _envoy_matches(regex, "a.b=x+y1")


def test_every_character_a_cookie_may_hold_compiles_and_matches_itself() -> None:
    name = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"(),/:;<=>?@[\\]{}')  # RFC 7230 tchar
    value = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')  # RFC 6265 cookie-octet
    regex = cookie_regex(name, value)
    assert _envoy_matches(regex, f"a=b; {name}={value}; c=d")
    assert not _envoy_matches(regex, f"a=b; {name}={value}x")
    RequestMatch.model_validate({"cookie": {name: value}})


NAMES = st.sampled_from(["user", "xuser", "use", "users", "a"])
VALUES = st.sampled_from(["jason", "jasonx", "jaso", "b", "user=jason"])


@given(jar=st.lists(st.tuples(NAMES, VALUES), max_size=5), separator=st.sampled_from(["; ", ";", ";  "]))
def test_the_regex_matches_exactly_when_the_jar_holds_the_cookie(jar: list[tuple[str, str]], separator: str) -> None:
    header = separator.join(f"{name}={value}" for name, value in jar)
    assert _envoy_matches(JASON, header) is (("user", "jason") in jar)


# --- names and values that cannot be in a cookie ---------------------------------------------------------


def _problem(cookie: dict[str, str]) -> tuple[str, str]:
    route = {"match": {"cookie": cookie}, "to": "v2"}
    with pytest.raises(ConfigError) as info:
        validate_stack(nginx_stack(traffic={"weights": {"v1": 100}, "routes": [route]}))
    (finding,) = info.value.findings
    return finding.path, f"{finding.code} {finding.message} | {finding.fix}"


@pytest.mark.parametrize(
    ("cookie", "key", "shown"),
    [
        ({"user": "jason; admin=1"}, "user", "';'"),
        ({"user": "jason,bob"}, "user", "','"),
        ({"user": "ja son"}, "user", "' '"),
        ({"user": "jason\x07"}, "user", "U+0007"),
        ({"user": '"jason"'}, "user", "'\"'"),
        ({"user": "jasön"}, "user", "'ö'"),
        ({"user": ""}, "user", "empty cookie value"),
        ({"user=jason": "1"}, "user=jason", "'='"),
        ({"us;er": "jason"}, "us;er", "';'"),
        ({"us,er": "jason"}, "us,er", "','"),
        ({"the user": "jason"}, "the user", "' '"),
        ({"us\ter": "jason"}, "us\ter", "U+0009"),
        ({"": "jason"}, "", "empty cookie name"),
    ],
)
def test_names_and_values_that_cannot_be_in_a_cookie_are_refused(cookie: dict[str, str], key: str, shown: str) -> None:
    path, text = _problem(cookie)
    assert path == f"services.nginx.traffic.routes[0].match.cookie.{key}"
    assert text.startswith("MK207") and shown in text


def test_equals_signs_in_a_cookie_value_are_allowed() -> None:
    """RFC 6265 cookie-octets include '=': base64 values end with it."""
    regex = _rendered_regex({"cookie": {"token": "YWJj=="}})
    assert _envoy_matches(regex, "a=b; token=YWJj==")
