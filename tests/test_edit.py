"""``meshkit step``'s edit of the stack file: only the changed values' lines differ, and a value another
service shares through an anchor or a merge is never changed behind its back."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkit.config.stack_file import stack_file_keys
from meshkit.errors import ConfigError, Finding
from meshkit.rollout import edit

SOURCE = "stacks/Pulumi.test.yaml"


def _step(text: str, service: str, **weights: int) -> str:
    return edit.step_weights(text, SOURCE, service, lambda svc: edit.assign_weights(svc, service, weights)).text


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new), "a weight step must not add or remove lines"
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def _refusal(step: Callable[[], Any]) -> Finding:
    with pytest.raises(ConfigError) as refused:
        step()
    assert "the step was not written" in str(refused.value)
    [finding] = refused.value.findings
    return finding


# --- flow style, comments, quotes, markers ----------------------------------------------------------

FLOW = """\
--- # written by hand
config:
  meshkit:namespaces: {demo: {}}
  meshkit:ingresses:
    gw:
      namespace: demo
      port: 8080
      routes:
      - service: web
        port: 80
        paths: [{exact: /productpage}, {prefix: '/static'}]
  meshkit:services:
    web:
      namespace: "demo"
      allowFrom: [{service: api}, {namespace: istio-system}]
      ports: [{name: http, port: 80}]
      versions:
        v1: {image: "nginx:1.14"}   # stable

        v2:   {image: 'nginx:1.15'}
      traffic:
        weights: {v1: 70, v2: 30}   # the canary
    api:
      namespace: demo
      ports:
      - name: http
        port: 80
      versions:
        v1:
            image: nginx:1.14
...
"""


def test_a_weight_step_changes_the_weights_line_alone() -> None:
    after = _step(FLOW, "web", v2=80)
    assert _changed_lines(FLOW, after) == [
        ("        weights: {v1: 70, v2: 30}   # the canary\n", "        weights: {v1: 20, v2: 80}   # the canary\n")
    ]


def test_adding_a_version_adds_its_line_alone() -> None:
    after = edit.add_version(FLOW, SOURCE, "web", "v3", {"image": "nginx:1.16"}).text
    lines = FLOW.splitlines(keepends=True)
    at = lines.index("        v2:   {image: 'nginx:1.15'}\n") + 1
    assert after.splitlines(keepends=True) == [*lines[:at], '        v3: {image: "nginx:1.16"}\n', *lines[at:]]


def test_retiring_a_version_removes_its_line_alone() -> None:
    taken_over = edit.step_weights(FLOW, SOURCE, "web", lambda svc: edit.take_over(svc, "web", "v2")).text
    after = edit.retire_version(taken_over, SOURCE, "web", "v1").text
    expected = FLOW.replace('        v1: {image: "nginx:1.14"}   # stable\n', "").replace(
        "{v1: 70, v2: 30}", "{v2: 100}"
    )
    assert after == expected


def test_a_block_mapping_gets_new_keys_at_its_own_indentation() -> None:
    after = edit.add_version(FLOW, SOURCE, "api", "v2", {"image": "nginx:1.15", "replicas": 2}, weight=10).text
    # v2's keys are indented as v1's are; traffic's as the service's own mappings are.
    added = "        v2:\n            image: nginx:1.15\n            replicas: 2\n"
    added += "      traffic:\n        weights:\n          v1: 90\n          v2: 10\n"
    assert after == FLOW.replace("            image: nginx:1.14\n", "            image: nginx:1.14\n" + added)


def test_tagged_and_anchored_values_keep_their_tag_and_anchor() -> None:
    text = FLOW.replace("{v1: 70, v2: 30}", "{v1: !!int 0x46, v2: &unshared 30}")
    after = _step(text, "web", v2=80)
    assert _changed_lines(text, after) == [
        (
            "        weights: {v1: !!int 0x46, v2: &unshared 30}   # the canary\n",
            "        weights: {v1: !!int 20, v2: &unshared 80}   # the canary\n",
        )
    ]


# --- aliases and merge keys -------------------------------------------------------------------------

SHARED = """\
config:
  meshkit:namespaces: {demo: {}}
  meshkit:services:
    web: &base
      namespace: demo
      ports: [{name: http, port: 80}]
      versions:
        v1: {image: "nginx:1.14"}
        v2: {image: "nginx:1.15"}
      traffic:
        weights: &w {v1: 70, v2: 30}
    api:
      <<: *base
    cart:
      namespace: demo
      ports: [{name: http, port: 80}]
      versions:
        v1: {image: "nginx:1.14"}
        v2: {image: "nginx:1.15"}
      traffic:
        weights: *w
    solo:
      <<: *base
      traffic:
        weights: {v1: 100, v2: 0}
"""


def test_a_step_through_an_alias_is_refused_naming_who_shares_the_value() -> None:
    finding = _refusal(lambda: _step(SHARED, "cart", v2=80))
    assert (finding.path, finding.code) == ("services.cart.traffic.weights.v1", "MK507")
    assert finding.message == (
        "the step would set it to 20 (from 70), but services.cart.traffic.weights is the alias *w: "
        "services.api.traffic.weights and services.web.traffic.weights read the same value, so the step would "
        "change services 'api' and 'web' as well"
    )
    assert finding.fix == (
        "to step 'cart' alone, write services.cart.traffic.weights out in full in place of *w, then run the step "
        "again; to move them all together, edit it by hand where &w is written"
    )


def test_a_step_through_a_merge_key_is_refused_naming_who_shares_the_value() -> None:
    finding = _refusal(lambda: _step(SHARED, "api", v2=80))
    assert (finding.path, finding.code) == ("services.api.traffic.weights.v1", "MK507")
    assert "services.api.traffic comes from the merge <<: *base: services.web.traffic reads the same value" in (
        finding.message
    )
    assert "change service 'web' as well" in finding.message
    assert finding.fix.startswith("to step 'api' alone, give services.api its own traffic (write `traffic:` out")


def test_a_step_of_the_service_holding_the_anchor_is_refused_too() -> None:
    finding = _refusal(lambda: _step(SHARED, "web", v2=80))
    assert (finding.path, finding.code) == ("services.web.traffic.weights.v1", "MK507")
    assert "services.web.traffic is shared through &base: services.api.traffic reads the same value" in (
        finding.message
    )


def test_versions_shared_through_a_merge_are_neither_added_to_nor_retired_from() -> None:
    added = _refusal(lambda: edit.add_version(SHARED, SOURCE, "api", "v3", {"image": "nginx:1.16"}))
    assert (added.path, added.code) == ("services.api.versions", "MK507")
    assert "change services 'solo' and 'web' as well" in added.message
    retired = _refusal(lambda: edit.retire_version(SHARED, SOURCE, "solo", "v2"))
    assert (retired.path, retired.code) == ("services.solo.versions.v2", "MK507")


def test_a_service_with_its_own_keys_beside_a_merge_steps_alone() -> None:
    after = _step(SHARED, "solo", v2=80)
    assert _changed_lines(SHARED, after) == [
        ("        weights: {v1: 100, v2: 0}\n", "        weights: {v1: 20, v2: 80}\n")
    ]


def test_anchors_nobody_else_uses_are_no_reason_to_refuse() -> None:
    text = FLOW.replace("    web:\n", "    web: &web\n").replace("weights: {", "weights: &w {")
    after = _step(text, "web", v2=80)
    assert _changed_lines(text, after) == [
        (
            "        weights: &w {v1: 70, v2: 30}   # the canary\n",
            "        weights: &w {v1: 20, v2: 80}   # the canary\n",
        )
    ]


def test_a_version_only_a_merge_supplies_cannot_be_retired_by_an_edit() -> None:
    text = SHARED.replace(
        '      versions:\n        v1: {image: "nginx:1.14"}\n        v2: {image: "nginx:1.15"}\n      traffic:\n'
        "        weights: &w {v1: 70, v2: 30}\n",
        '      versions: {<<: {v1: {image: "nginx:1.14"}}, v2: {image: "nginx:1.15"}}\n      traffic:\n'
        "        weights: {v1: 0, v2: 100}\n",
        1,
    ).split("    api:")[0]
    finding = _refusal(lambda: edit.retire_version(text, SOURCE, "web", "v1"))
    assert (finding.path, finding.code) == ("services.web.versions.v1", "MK508")
    assert finding.message == "the step would remove it, but it comes from a merge (<<), not from the mapping itself"
    assert finding.fix == "write the merged keys out in the mapping itself, then run the step again"


# --- the property: a step changes exactly the lines of the values it steps ---------------------------

SERVICES = ["web", "api", "cart"]


@st.composite
def _split(draw: st.DrawFn, versions: list[str]) -> dict[str, int]:
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(versions) - 1, max_size=len(versions) - 1)))
    bounds = [0, *cuts, 100]
    return {v: bounds[i + 1] - bounds[i] for i, v in enumerate(versions)}


@st.composite
def styled_stacks(draw: st.DrawFn) -> tuple[str, dict[str, dict[str, int]], dict[tuple[str, str], int]]:
    """A stack file written in drawn styles (block or flow, quoted or plain, comments, blank lines,
    indentation, list indentation, markers, line breaks), its weights, and the line each weight is on."""
    width = draw(st.sampled_from([2, 4]))
    lines: list[str] = []
    weight_lines: dict[tuple[str, str], int] = {}

    def emit(depth: int, text: str, column: int | None = None) -> None:
        lines.append(" " * (depth * width if column is None else column) + text)

    def word(text: str) -> str:
        return draw(st.sampled_from([text, f"'{text}'", f'"{text}"']))

    def comment() -> str:
        return draw(st.sampled_from(["", "  # note", "   # a: b, [c] {d}"]))

    def block_list(depth: int, items: list[dict[str, str]]) -> None:
        column = depth * width + draw(st.sampled_from([0, width]))  # `- ` at the key's column, or indented
        for item in items:
            for i, (key, value) in enumerate(item.items()):
                emit(0, f"{'- ' if i == 0 else '  '}{key}: {value}", column)

    def listed(depth: int, key: str, items: list[dict[str, str]]) -> None:
        if draw(st.booleans()):
            flow = ", ".join("{" + ", ".join(f"{k}: {v}" for k, v in item.items()) + "}" for item in items)
            emit(depth, f"{key}: [{flow}]{comment()}")
        else:
            emit(depth, f"{key}:{comment()}")
            block_list(depth + 1, items)

    if draw(st.booleans()):
        lines.append("---" + comment())
    if draw(st.booleans()):
        lines.append("# a stack file for the property")
    emit(0, "config:")
    if draw(st.booleans()):
        emit(1, "meshkit:namespaces: {demo: {}}")
    else:
        emit(1, "meshkit:namespaces:")
        emit(2, "demo: {}")
    services = SERVICES[: draw(st.integers(1, len(SERVICES)))]
    ingress = draw(st.booleans())
    if ingress:
        emit(1, "meshkit:ingresses:")
        emit(2, "gw:")
        emit(3, "namespace: demo")
        emit(3, "port: 8080")
        emit(3, "routes:")
        paths = "[{exact: /productpage}, {prefix: '/static'}]"
        block_list(4, [{"service": services[0], "port": "80", "paths": paths}])
    emit(1, draw(st.sampled_from(["meshkit:services:", "services:"])))
    weights: dict[str, dict[str, int]] = {}
    for service in services:
        if draw(st.booleans()):
            lines.append("")
        if draw(st.booleans()):
            emit(2, f"# {service}, and what it is for")
        emit(2, f"{service}:{draw(st.sampled_from(['', f' &{service}-unshared']))}{comment()}")
        emit(3, f"{word('namespace')}: {word('demo')}{comment()}")
        if draw(st.booleans()):
            callers = [{"service": other} for other in services if other != service]
            listed(3, "allowFrom", [*callers, *([{"namespace": "istio-system"}] if ingress else [])])
        listed(3, "ports", [{"name": word("http"), "port": "80"}])
        versions = ["v1", "v2", "v3"][: draw(st.integers(2, 3))]
        images = {v: word(f"nginx:1.{14 + i}") for i, v in enumerate(versions)}
        if draw(st.booleans()):
            emit(3, "versions: {" + ", ".join(f"{word(v)}: {{image: {images[v]}}}" for v in versions) + "}")
        else:
            emit(3, "versions:")
            for v in versions:
                if draw(st.booleans()):
                    emit(4, f"{word(v)}: {{image: {images[v]}}}{comment()}")
                else:
                    emit(4, f"{word(v)}:")
                    emit(5, f"image: {images[v]}{comment()}")
        weights[service] = split = draw(_split(versions))
        style = draw(st.sampled_from(["block", "flow", "flow lines", "all flow"]))
        flow = "{" + ", ".join(f"{v}: {w}" for v, w in split.items()) + "}"
        if style == "all flow":
            weight_lines |= {(service, v): len(lines) for v in versions}
            emit(3, f"traffic: {{weights: {flow}}}{comment()}")
            continue
        emit(3, "traffic:")
        if style == "flow":
            weight_lines |= {(service, v): len(lines) for v in versions}
            emit(4, f"weights: {flow}{comment()}")
        elif style == "flow lines":
            emit(4, "weights: {")
            for i, (v, w) in enumerate(split.items()):
                weight_lines[service, v] = len(lines)
                emit(5, f"{v}: {w}{',' if i < len(split) - 1 else ''}")
            emit(4, "}")
        else:
            emit(4, "weights:")
            for v, w in split.items():
                if draw(st.booleans()):
                    emit(5, "# the share of " + v)
                weight_lines[service, v] = len(lines)
                emit(5, f"{word(v)}: {w}{comment()}")
    if draw(st.booleans()):
        lines.append("encryptionsalt: v1:uyCKgiXM5iM=:v1:m+4+vhxDJPmGDaav")
    if draw(st.booleans()):
        lines.append("...")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from([newline, ""]))
    return text, weights, weight_lines


@settings(max_examples=150, deadline=None)
@given(styled_stacks(), st.data())
def test_a_step_changes_exactly_the_lines_of_the_values_it_steps(
    stack: tuple[str, dict[str, dict[str, int]], dict[tuple[str, str], int]], data: st.DataObject
) -> None:
    text, weights, weight_lines = stack
    service = data.draw(st.sampled_from(sorted(weights)))
    new = data.draw(_split(list(weights[service])))
    after = _step(text, service, **new)
    old_lines, new_lines = text.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(new_lines) == len(old_lines)
    changed = {i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b}
    assert changed == {weight_lines[service, v] for v, w in new.items() if w != weights[service][v]}
    expected = copy.deepcopy(stack_file_keys(text, SOURCE))
    expected["services"][service]["traffic"]["weights"] = new
    assert stack_file_keys(after, SOURCE) == expected
