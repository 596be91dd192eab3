"""Reading a stack file as the Pulumi engine reads it (meshkit/config/engine_yaml.py, meshkit/config/stack_file.py).

ENGINE_SCALARS is what the engine (Pulumi 3.259.0, Go's yaml.v3) handed the program for each plain scalar
written as a value inside a config mapping; tests/e2e/test_engine_reading.py checks the same table against
the real engine, so a change of engine that changes the reading is caught there.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import yaml

from meshkit.config.engine_yaml import MAX_DEPTH, decode_text, read_yaml
from meshkit.config.stack_file import engine_config_keys, engine_text, stack_file_keys
from meshkit.errors import ConfigError

ENGINE_SCALARS: list[tuple[str, Any]] = [
    # YAML 1.1 booleans are strings; only the true/false spellings of the core schema are booleans.
    ("on", "on"), ("off", "off"), ("no", "no"), ("y", "y"), ("Y", "Y"), ("yes", "yes"), ("n", "n"), ("NO", "NO"),
    ("true", True), ("True", True), ("TRUE", True), ("false", False), ("tRue", "tRue"),
    ("~", None), ("null", None), ("NULL", None), ("nULL", "nULL"), ("", None), ("NaN", "NaN"),
    # Integers as Go's ParseInt(s, 0, 64) reads them once every underscore is removed.
    ("0o17", 15), ("0O17", 15), ("-0o17", -15), ("0x1F", 31), ("+0x10", 16),
    ("0b101", 5), ("1_000", 1000), ("1__0", 10), ("1_", 1), ("_1", "_1"), ("+12", 12), ("-0", 0),
    ("0x", "0x"), ("0b2", "0b2"), ("0o8", "0o8"), ("1:20", "1:20"), ("12:30:00", "12:30:00"),
    ("9223372036854775807", 9223372036854775807), ("-9223372036854775808", -9223372036854775808),
    # Beyond 64 bits a float, which Go's JSON writes with its shortest digits.
    ("9223372036854775808", 9223372036854776000), ("123456789012345678901", 123456789012345680000),
    ("9999999999999999999999", 1e22), ("1e999", "1e999"),
    # Floats; one with an integral value reaches the program as an integer.
    ("1.0", 1), ("1.50", 1.5), ("1e3", 1000), ("12e03", 12000), ("1.e2", 100), (".5", 0.5), ("+.5", 0.5),
    (".5e-3", 0.0005), ("1_0.5", 10.5), ("0.1", 0.1), ("1e-7", 1e-07), ("1e20", 10**20),
    ("1e21", 1e21), ("1.5e+300", 1.5e300), ("123456789.123456789", 123456789.12345679), ("5e", "5e"),
    ("._5", "._5"), (".e", ".e"),
    # Timestamps, as Go prints them.
    ("2001-12-14", "2001-12-14 00:00:00 +0000 UTC"), ("2001-1-2", "2001-01-02 00:00:00 +0000 UTC"),
    ("2004-02-29", "2004-02-29 00:00:00 +0000 UTC"), ("2001-02-30", "2001-02-30"),
    ("2001-12-14T21:59:43Z", "2001-12-14 21:59:43 +0000 UTC"),
    ("2001-12-14t21:59:43.10Z", "2001-12-14 21:59:43.1 +0000 UTC"),
    ("2001-12-14 21:59:43.10", "2001-12-14 21:59:43.1 +0000 UTC"),
    ("2001-12-14T21:59:43.1234567891Z", "2001-12-14 21:59:43.123456789 +0000 UTC"),
    ("2001-12-14T21:59:43", "2001-12-14T21:59:43"), ("2001-12-14T24:00:00Z", "2001-12-14T24:00:00Z"),
    # Strings that look like something else in YAML 1.1.
    ("nginx:1.15", "nginx:1.15"), ("=", "="), ("<<x", "<<x"), ("v1", "v1"), ("1.15.2", "1.15.2"),
]  # fmt: skip


# Numbers written with a leading zero, as the engine reads them (a lone leading 0 means octal where it can), which
# `check` refuses, saying so (MK006): YAML readers disagree on them, and 010 is not ten to the engine.
LEADING_ZERO_SCALARS: list[tuple[str, Any]] = [
    ("017", 15), ("0777", 511), ("010", 8), ("-010", -8), ("0_10", 8), ("00", 0), ("07", 7), ("08", 8),
    ("09.5", 9.5), ("012.5", 12.5),
]  # fmt: skip


def _keys(text: str, **options: Any) -> dict[str, Any]:
    return stack_file_keys(text, "stacks/Pulumi.t.yaml", **options)


def _refused(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        _keys(text)
    assert info.value.source == "stacks/Pulumi.t.yaml"
    return [(f.code, f.path, f.message) for f in info.value.findings]


def _same(actual: Any, expected: Any) -> bool:
    """Equal, and of the same type (1 is not 1.0 nor True)."""
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize(("text", "expected"), ENGINE_SCALARS, ids=[t or "(empty)" for t, _ in ENGINE_SCALARS])
def test_plain_scalars_read_as_the_engine_passes_them(text: str, expected: Any) -> None:
    value = _keys(f"config:\n  meshkit:o:\n    v: {text}\n")["o"]["v"]
    assert _same(value, expected), (value, expected)


@pytest.mark.parametrize(("text", "expected"), LEADING_ZERO_SCALARS)
def test_a_number_with_a_leading_zero_is_refused_saying_what_the_engine_reads(text: str, expected: Any) -> None:
    stack = f"config:\n  meshkit:o:\n    v: {text}\n"
    assert _same(read_yaml(stack).document["config"]["meshkit:o"]["v"], expected)
    ((code, path, message),) = _refused(stack)
    assert (code, path) == ("MK006", "o.v")
    assert message.startswith(f"line 3: {text} has a leading zero, and the Pulumi engine reads it as ")
    assert f" as {expected}," in message or f" as the octal number {expected}, not " in message


def test_a_weight_written_with_a_leading_zero_says_it_is_read_as_octal_and_how_to_write_it() -> None:
    ((_, path, message),) = _refused("config:\n  meshkit:services:\n    a: {traffic: {weights: {v1: 010}}}\n")
    assert path == "services.a.traffic.weights.v1"
    assert "010 has a leading zero, and the Pulumi engine reads it as the octal number 8, not 10" in message
    with pytest.raises(ConfigError) as info:
        _keys("config:\n  meshkit:o: {v: 010}\n")
    assert info.value.findings[0].fix == "write 10, or 8 if you meant octal 010; quote it ('010') if it is text"


@pytest.mark.parametrize("text", ["'010'", '"08"', "!!str 010", "0.5", "0", "-0", "0o10", "0x10", "10"])
def test_a_quoted_string_or_a_number_without_a_leading_zero_is_not_refused(text: str) -> None:
    _keys(f"config:\n  meshkit:o:\n    v: {text}\n")


@pytest.mark.parametrize("text", ["'on'", '"0o17"', "!!str 1_000", "! '12'", "|\n      0o17\n"])
def test_quoted_block_and_str_tagged_scalars_are_strings(text: str) -> None:
    assert isinstance(_keys(f"config:\n  meshkit:o:\n    v: {text}\n")["o"]["v"], str)


def test_top_level_values_reach_the_models_as_the_program_decodes_the_engines_text() -> None:
    text = 'config:\n  meshkit:a: "25"\n  meshkit:b:\n  meshkit:c: 1.0\n  meshkit:d: on\n  meshkit:e: "[1, 2]"\n'
    assert _keys(text) == {"a": 25, "b": "", "c": 1, "d": "on", "e": [1, 2]}
    # the same decoding as the program's, from the text the engine hands it
    assert engine_config_keys({"meshkit:a": engine_text("25"), "meshkit:b": engine_text(None)}) == {"a": 25, "b": ""}


def test_every_mapping_comes_in_name_order_unless_the_files_order_is_asked_for() -> None:
    text = "config:\n  meshkit:services:\n    web: {versions: {v9: {}, v10: {}}}\n    api: {}\n"
    services = _keys(text)["services"]
    assert list(services) == ["api", "web"] and list(services["web"]["versions"]) == ["v10", "v9"]
    declared = _keys(text, declaration_order=True)["services"]
    assert list(declared) == ["web", "api"] and list(declared["web"]["versions"]) == ["v9", "v10"]


# --- what the engine refuses ------------------------------------------------------------------------


def test_a_key_written_twice_is_refused_with_both_lines() -> None:
    text = "config:\n  meshkit:services:\n    nginx:\n      traffic:\n"
    text += "        weights: {v1: 100}\n        weights: {v2: 100}\n"
    ((code, path, message),) = _refused(text)
    assert (code, path) == ("MK005", "services.nginx.traffic.weights")
    assert "at lines 5 and 6" in message and 'mapping key "weights" already defined' in message


def test_a_key_written_three_times_and_quoted_the_same_are_duplicates() -> None:
    found = _refused("config:\n  meshkit:o:\n    a: 1\n    'a': 2\n    \"a\": 3\n")
    assert [(c, p) for c, p, _ in found] == [("MK005", "o.a"), ("MK005", "o.a")]
    assert {m.split(";")[0] for _, _, m in found} == {
        "key 'a' is written twice in one mapping, at lines 3 and 4",
        "key 'a' is written twice in one mapping, at lines 3 and 5",
    }


def test_duplicate_keys_outside_config_stop_the_engine_too() -> None:
    assert [c for c, _, _ in _refused("a: 1\na: 2\nconfig:\n  meshkit:o: 1\n")] == ["MK005"]


def test_the_bare_and_the_old_form_of_a_key_name_the_meshkit_key() -> None:
    assert _keys("config:\n  services: {}\n  meshkit:config:production: true\n") == {
        "services": {},
        "production": True,
    }
    ((code, path, message),) = _refused("config:\n  meshkit:services: {}\n  services: {}\n")
    assert (code, path) == ("MK005", "services") and "'meshkit:services' and 'services'" in message


def test_a_key_that_is_no_pulumi_config_key_is_refused() -> None:
    assert [(c, p) for c, p, _ in _refused("config:\n  a:b:c: 1\n")] == [("MK006", "a:b:c")]


@pytest.mark.parametrize(
    ("text", "path", "engine"),
    [
        ("config: {1: x}", "1", "'1'"),
        ("config: {~: x}", "null", "'<nil>'"),
        ("config:\n  meshkit:services: {true: {}}", "services.true", "'true'"),
        ("config:\n  meshkit:o: {v: {1.5: x}}", "o.v.1.5", "'1.5'"),
    ],
)
def test_a_key_that_is_not_a_string_is_refused_in_config(text: str, path: str, engine: str) -> None:
    ((code, found, message),) = _refused(text + "\n")
    assert (code, found) == ("MK006", path) and f"would read it as {engine}" in message


def test_keys_outside_config_may_be_anything() -> None:
    assert _keys("other: {1: x, ~: y}\nconfig:\n  meshkit:o: 1\n") == {"o": 1}


def test_infinity_and_nan_cannot_be_passed_on_from_config() -> None:
    found = _refused("config:\n  meshkit:o: {a: .inf, b: -.Inf, c: .nan}\n")
    assert [(c, p) for c, p, _ in found] == [("MK006", "o.a"), ("MK006", "o.b"), ("MK006", "o.c")]
    assert _keys("other: .inf\nconfig:\n  meshkit:o: 1\n") == {"o": 1}
    # anchored outside config, used inside: the engine meets it in config
    assert [c for c, _, _ in _refused("other: &x {a: .inf}\nconfig:\n  meshkit:o: *x\n")] == ["MK006"]


def test_a_timestamp_with_an_offset_is_refused_as_its_text_depends_on_the_engines_time_zone() -> None:
    ((code, path, message),) = _refused("config:\n  meshkit:o: {at: 2001-12-14T21:59:43+01:00}\n")
    assert (code, path) == ("MK006", "o.at") and "time zone" in message
    assert _keys("config:\n  meshkit:o: {at: '2001-12-14T21:59:43+01:00'}\n")["o"]["at"] == "2001-12-14T21:59:43+01:00"


def test_merge_keys_explicit_keys_win_then_the_first_merged_mapping() -> None:
    text = (
        "base: &a {x: 1, y: 1}\nbase2: &b {y: 2, z: 2}\n"
        "config:\n  meshkit:o:\n    m: {<<: [*a, *b], x: 0}\n    q: {'<<': {q: 1, r: 1}, q: 2}\n"
    )
    assert _keys(text)["o"] == {"m": {"x": 0, "y": 1, "z": 2}, "q": {"q": 2, "r": 1}}
    assert [c for c, _, _ in _refused("config:\n  meshkit:o: {<<: 1}\n")] == ["MK004"]


def test_tags_as_the_engine_reads_them() -> None:
    text = "config:\n  meshkit:o: {a: ! 12, b: !!float 1, c: !foo bar, d: !!binary aGVsbG8=, e: !foo {x: 1}}\n"
    assert _keys(text)["o"] == {"a": 12, "b": 1, "c": "bar", "d": "hello", "e": {"x": 1}}
    assert [c for c, _, _ in _refused("config:\n  meshkit:o: !!int abc\n")] == ["MK004"]
    assert [c for c, _, _ in _refused("config:\n  meshkit:o: !!bool yes\n")] == ["MK004"]


def test_only_the_first_document_counts() -> None:
    assert _keys("config:\n  meshkit:o: 1\n---\nconfig:\n  meshkit:p: [\n") == {"o": 1}


def test_a_yaml_1_2_directive_stops_the_engine() -> None:
    ((code, _, message),) = _refused("%YAML 1.2\n---\nconfig:\n  meshkit:o: 1\n")
    assert code == "MK004" and "incompatible" in message
    assert _keys("%YAML 1.1\n---\nconfig:\n  meshkit:o: on\n") == {"o": "on"}


@pytest.mark.parametrize("text", ["config:\n  meshkit:o: &a [*a]\n", "config:\n  meshkit:o: *nowhere\n"])
def test_recursive_and_unknown_aliases_are_refused(text: str) -> None:
    assert [c for c, _, _ in _refused(text)] == ["MK004"]


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    lines = ["config:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    start = time.perf_counter()
    found = _refused("\n".join([*lines, "  meshkit:o: *a8", ""]))
    assert time.perf_counter() - start < 2
    assert [(c, "excessive aliasing" in m) for c, _, m in found] == [("MK004", True)]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deep_nesting_is_refused_without_recursing(depth: int) -> None:
    found = _refused("config:\n  meshkit:o: " + "[" * depth + "]" * depth + "\n")
    assert [(c, p) for c, p, _ in found] == [("MK004", "o[0]")]


@pytest.mark.parametrize("depth", [1000, MAX_DEPTH - 2])
def test_nesting_the_engine_reads_is_read_whatever_limit_libyaml_has(depth: int) -> None:
    # libyaml 0.2.6 (PyYAML 6.0.4) stops at 1000 levels on its own; the engine reads up to MAX_DEPTH.
    nested = _keys("config:\n  meshkit:o: " + "[" * depth + "]" * depth + "\n")["o"]
    for _ in range(depth - 1):
        (nested,) = nested
    assert nested == []
    libyaml = getattr(yaml, "_yaml", None)
    if hasattr(libyaml, "_get_max_nest_level"):
        assert libyaml._get_max_nest_level() == 1000, "libyaml's own limit is put back after the read"


def test_an_integer_too_long_for_any_number_is_a_string() -> None:
    assert _keys(f"config:\n  meshkit:o: {{v: {'7' * 6000}}}\n")["o"]["v"] == "7" * 6000
    assert _keys(f'config:\n  meshkit:o: "{"1" * 6000}"\n')["o"] == "1" * 6000  # too long for json.loads


# --- bytes to text ----------------------------------------------------------------------------------


def test_utf16_with_a_byte_order_mark_and_utf8_with_one_are_read() -> None:
    text = "config:\n  meshkit:o: é\n"
    assert decode_text(text.encode("utf-16")) == text
    assert decode_text(b"\xef\xbb\xbf" + text.encode()) == text


def test_bytes_that_are_not_utf8_name_their_place() -> None:
    with pytest.raises(ValueError, match=r"not UTF-8 text: byte 0xe9 at line 2, column 17"):
        decode_text("config:\n  meshkit:o: café\n".encode("latin-1"))


def test_the_reading_has_no_problems_for_the_committed_shapes() -> None:
    reading = read_yaml("a: [1, {b: c}]\nconfig: {meshkit:o: {x: 1.5}}\n")
    assert reading.problems == [] and reading.document == {"a": [1, {"b": "c"}], "config": {"meshkit:o": {"x": 1.5}}}
    assert math.isnan(engine_config_keys({"meshkit:n": "NaN"})["n"])  # what the program does with that text
