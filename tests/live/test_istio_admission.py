"""Istio's admission refuses what meshkit refuses, on the live control plane with istiod's validating webhook
(toolchain/istiod.py).

Each case breaks one field of a `meshkit render` of scenario A3 the way a stack config of the bad-config
corpus (tests/bad_configs.yaml) would, were meshkit to let it through: the API server refuses the object (a
server-side dry run: every admission step runs, nothing is stored), with istiod's message, or the CRD schema's
where Istio's CRDs carry the rule; and `meshkit check --no-base` refuses that stack config first, with the
corpus's code. Where meshkit is stricter than Istio (Istio admits the object), the case says so.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshkit.config.stack import StackConfig
from meshkit.mesh.render import render_stack
from toolchain import istiod
from toolchain.cluster import LocalCluster

from ..e2e.engine import VENV_BIN
from ..scenario_data import TESTS, case_config, scenario, scenario_raw, stack_file_text
from .kube import Kube, collection_path

pytestmark = pytest.mark.live

CORPUS = {case["name"]: case for case in yaml.safe_load((TESTS / "bad_configs.yaml").read_text())}
DENIED = istiod.VALIDATION_DENIED  # the API server's words for a refusal by istiod's webhook
SCHEMA = "must be a valid duration greater than 1ms"  # a rule (CEL) of Istio's CRD schema


def _default_route(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The destinations of A3's one route (nginx v1 70, v2 30)."""
    route: list[dict[str, Any]] = spec["http"][-1]["route"]
    return route


def _set_weights(*weights: int) -> Callable[[dict[str, Any]], None]:
    def breaks(spec: dict[str, Any]) -> None:
        for destination, weight in zip(_default_route(spec), weights, strict=True):
            destination["weight"] = weight

    return breaks


COOKIE_MATCH = {"headers": {"cookie": {"regex": "^(.*?;)?(user=jason)(;.*)?$"}}}


def _first_rule(match: dict[str, Any] = COOKIE_MATCH, **rule: Any) -> Callable[[dict[str, Any]], None]:
    """A rule before the default route, to nginx v2 (as a header route or a fault renders)."""

    def breaks(spec: dict[str, Any]) -> None:
        destination = {"destination": {"host": "nginx", "subset": "v2"}}
        spec["http"].insert(0, copy.deepcopy({"match": [match], **rule, "route": [destination]}))

    return breaks


def _set_on_route(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda spec: spec["http"][-1].update(copy.deepcopy(fields))


def _rename_subset(new: str) -> Callable[[dict[str, Any]], None]:
    return lambda spec: spec["subsets"][0].update(name=new)


@dataclass(frozen=True)
class Case:
    id: str
    corpus: str | None
    """The bad-config corpus case whose stack config would render this object; None: ``config`` instead."""
    kind: str
    name: str
    """The object of A3's render that is broken (A3: VirtualService and DestinationRule nginx and sleep)."""
    breaks: Callable[[dict[str, Any]], None]
    """What the bad config would change in its spec."""
    refusal: str
    """What the API server says (a fragment); empty for an object Istio admits."""
    config: dict[str, Any] = field(default_factory=dict)
    """Without a corpus case: ``set`` paths on A3 and the code ``meshkit check`` must give."""

    def stack_file_text(self) -> str:
        case = CORPUS[self.corpus] if self.corpus else {"set": self.config["set"]}
        return stack_file_text(case_config(case))

    @property
    def code(self) -> str:
        return str(CORPUS[self.corpus]["expect"][0] if self.corpus else self.config["code"])


REFUSED_BY_ISTIOD = [
    Case("weights-all-zero", "all weights zero", "VirtualService", "nginx", _set_weights(0, 0),
         f"{DENIED}: configuration is invalid: total destination weight = 0"),
    Case("weight-negative", "weight above 100", "VirtualService", "nginx", _set_weights(120, -20),
         f"{DENIED}: configuration is invalid: weight -20 < 0"),
    Case("regex-lookahead", "regex with look-ahead, which RE2 lacks", "VirtualService", "nginx",
         _first_rule(match={"headers": {"end-user": {"regex": "(?=jason)"}}}),
         "invalid or unsupported Perl syntax: `(?=`; Istio uses RE2 style regex-based match"),
    Case("delay-percentage", "delay percentage above 100", "VirtualService", "nginx",
         _first_rule(fault={"delay": {"fixedDelay": "7s", "percentage": {"value": 101}}}),
         f"{DENIED}: configuration is invalid: percentage 101 is neither 0.0, nor in range [0.0001, 100.0]"),
    Case("retry-on", "unknown retry policy", "VirtualService", "nginx",
         _set_on_route(retries={"attempts": 2, "retryOn": "5xx,oops"}),
         f'{DENIED}: configuration is invalid: "oops" is not a valid retryOn policy'),
    Case("subset-name", "version name that is not a DNS label", "DestinationRule", "sleep", _rename_subset("v_1"),
         f"{DENIED}: configuration is invalid: subset name is invalid: v_1"),
]  # fmt: skip
REFUSED_BY_THE_SCHEMA = [
    # Istio's CRDs check durations themselves (a CEL rule): the API server refuses before any webhook runs.
    Case("timeout-no-unit", "timeout without a unit", "VirtualService", "nginx", _set_on_route(timeout="7"), SCHEMA),
    Case("timeout-zero", "zero timeout", "VirtualService", "nginx", _set_on_route(timeout="0s"), SCHEMA),
]
# meshkit is stricter than Istio's admission here, on purpose: these objects are admitted.
ADMITTED_BY_ISTIO = [
    Case("weights-sum-90", "weights that do not sum to 100", "VirtualService", "nginx", _set_weights(70, 20), ""),
    Case("header-capitals", "header name in capitals", "VirtualService", "nginx",
         _first_rule(match={"headers": {"End-User": {"exact": "jason"}}}), ""),
    Case("abort-600", "abort status outside HTTP", "VirtualService", "nginx",
         _first_rule(fault={"abort": {"httpStatus": 600, "percentage": {"value": 100}}}), ""),
]  # fmt: skip
# Istio refuses, meshkit lets it through: a bug of meshkit's MK303, which accepts any Go duration, while istiod
# takes durations to the millisecond only (the CRD's rule, >= 1ms, passes 1500us). Fix MK303, then move this
# case to REFUSED_BY_ISTIOD.
SUB_MILLISECOND = Case(
    "timeout-sub-millisecond", None, "VirtualService", "nginx", _set_on_route(timeout="1500us"),
    f"{DENIED}: configuration is invalid: only durations to ms precision are supported",
    config={"set": {"services.nginx.traffic.timeout": "1500us"}, "code": "MK303"},
)  # fmt: skip


def _a3_object(kind: str, name: str) -> dict[str, Any]:
    found = [m for m in render_stack(scenario("A3")) if (m["kind"], m["metadata"]["name"]) == (kind, name)]
    assert len(found) == 1, f"A3 renders no {kind} {name}"
    return copy.deepcopy(found[0])


def _dry_run_create(kube: Kube, manifest: dict[str, Any]) -> tuple[int, str]:
    """(HTTP status, message) of a server-side dry-run create in namespace default: every admission step
    (schema, webhooks) runs, nothing is stored."""
    manifest = {**manifest, "metadata": {**manifest["metadata"], "namespace": "default"}}
    path = collection_path(manifest["apiVersion"], manifest["kind"], "default") + "?dryRun=All"
    try:
        kube.request("POST", path, manifest)
    except urllib.error.HTTPError as err:
        return err.code, str(json.loads(err.read())["message"])
    return 201, ""


def _broken(case: Case) -> dict[str, Any]:
    manifest = _a3_object(case.kind, case.name)
    case.breaks(manifest["spec"])
    return manifest


def _meshkit_check(case: Case, directory: Path) -> list[tuple[str, str]]:
    """`meshkit check FILE --no-base` of the case's stack config: (code, path) of each finding; asserts it
    refuses (exit 1)."""
    stack_file = directory / "Pulumi.bad.yaml"
    stack_file.write_text(case.stack_file_text())
    result = subprocess.run(
        [str(VENV_BIN / "meshkit"), "check", str(stack_file), "--no-base", "--json"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, f"meshkit check admitted the {case.id} config:\n{result.stdout}{result.stderr}"
    return [(f["code"], f["path"]) for f in json.loads(result.stdout)["findings"]]


def _params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


@pytest.mark.parametrize(
    "case",
    [
        *_params(REFUSED_BY_ISTIOD),
        pytest.param(SUB_MILLISECOND, id=SUB_MILLISECOND.id),
    ],
)  # fmt: skip
def test_istiod_refuses_what_meshkit_refuses(case: Case, cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    status, message = _dry_run_create(kube, _broken(case))
    assert (status, DENIED in message) == (400, True), f"{case.id}: not refused by istiod's webhook: {status} {message}"
    assert case.refusal in message
    assert case.code in {code for code, _ in _meshkit_check(case, tmp_path)}


@pytest.mark.parametrize("case", _params(REFUSED_BY_THE_SCHEMA))
def test_istios_crd_schema_refuses_what_meshkit_refuses(
    case: Case, cluster: LocalCluster, kube: Kube, tmp_path: Path
) -> None:
    status, message = _dry_run_create(kube, _broken(case))
    assert status == 422 and case.refusal in message, f"{case.id}: {status} {message}"
    assert DENIED not in message
    assert case.code in {code for code, _ in _meshkit_check(case, tmp_path)}


@pytest.mark.parametrize("case", _params(ADMITTED_BY_ISTIO))
def test_meshkit_refuses_what_istio_admits(case: Case, cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    """A tripwire: once Istio refuses one of these, move it to REFUSED_BY_ISTIOD."""
    assert _dry_run_create(kube, _broken(case)) == (201, "")
    assert case.code in {code for code, _ in _meshkit_check(case, tmp_path)}


def test_istio_admits_every_istio_object_meshkit_renders(cluster: LocalCluster, kube: Kube) -> None:
    """The positive control: the Istio objects of A3 and B1 (routes, subsets, policies, a Gateway)."""
    objects = [
        m for step in ("A3", "B1") for m in render_stack(StackConfig.model_validate(scenario_raw(step)))
        if m["apiVersion"].startswith(("networking.istio.io/", "security.istio.io/"))
    ]  # fmt: skip
    assert {m["kind"] for m in objects} >= {"VirtualService", "DestinationRule", "Gateway", "AuthorizationPolicy",
                                            "PeerAuthentication"}  # fmt: skip
    refused = {f"{m['kind']} {m['metadata']['name']}": r for m in objects if (r := _dry_run_create(kube, m))[0] != 201}
    assert refused == {}


def test_the_webhooks_are_istiods_fail_closed_and_never_patched(cluster: LocalCluster, kube: Kube) -> None:
    """Registered by URL with the cluster's CA, failurePolicy Fail, and written by the install alone: istiod,
    running since the session began, has not rewritten their caBundle or failurePolicy."""
    ca_bundle = cluster.pki.path("ca.crt").read_bytes()
    webhook_port = cluster.state()["istiod_ports"]["webhook"]  # type: ignore[index]
    plural = {"ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
              "MutatingWebhookConfiguration": "mutatingwebhookconfigurations"}  # fmt: skip
    for kind, names in istiod.WEBHOOK_CONFIGURATIONS.items():
        for name in names:
            found = kube.get(f"/apis/admissionregistration.k8s.io/v1/{plural[kind]}/{name}")
            assert found, f"{kind} {name} is not registered"
            managers = {(f["manager"], f["operation"]) for f in found["metadata"]["managedFields"]}
            assert managers == {("kubectl", "Apply")}, f"{kind} {name} was written by {managers}"
            for webhook in found["webhooks"]:
                assert webhook["clientConfig"]["url"].startswith(f"https://127.0.0.1:{webhook_port}/")
                assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == ca_bundle
                assert webhook["failurePolicy"] == "Fail"
