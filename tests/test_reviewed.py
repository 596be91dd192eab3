"""Reviewed = applied, without the engine: the digests of a stack file and a deployed state, what counts as
a move, the refusal's wording, and ``meshkit review record|verify`` on saved ``pulumi stack export`` files.
The engine's side (``make review``, ``make apply``) is in tests/e2e/test_reviewed_apply.py and
tests/live/test_reviewed_apply.py."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.engine.reviewed import (
    RECORD_FILE,
    SECRET,
    STACK_FILE_COPY,
    STATE_FILE,
    UPDATE_PLAN,
    FieldChange,
    ReviewRecord,
    changed_fields,
    deployed_resources,
    make_record,
    moved_resources,
    normalized,
    object_label,
    read_review,
    verdict,
    write_review,
)
from meshkit.errors import MeshkitError

from .scenario_data import REPO, SCENARIOS

runner = CliRunner()
STACK_URN = "urn:pulumi:prod::meshkit::pulumi:pulumi:Stack::meshkit-prod"
VS_URN = "urn:pulumi:prod::meshkit::meshkit:index:TrafficSplit$kubernetes:networking.istio.io/v1:VirtualService::nginx-virtualservice"  # noqa: E501
SECRET_URN = "urn:pulumi:prod::meshkit::meshkit:index:VersionedService$kubernetes:core/v1:Secret::nginx-secrets"
NS_URN = "urn:pulumi:prod::meshkit::meshkit:index:InjectedNamespace$kubernetes:core/v1:Namespace::demo-namespace"
DEPLOY_URN = (
    "urn:pulumi:prod::meshkit::meshkit:index:VersionedService$kubernetes:apps/v1:Deployment::nginx-v3-deployment"
)


def _secret(ciphertext: str) -> dict[str, str]:
    """A secret value as `pulumi stack export` writes it."""
    return {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": ciphertext}


def _k8s(
    urn: str, kind: str, name: str, namespace: str | None, body: dict[str, Any], **metadata: Any
) -> dict[str, Any]:
    """A Kubernetes object as the state holds it: what was sent (inputs) and what the API server stores."""
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    inputs = {"apiVersion": "v1", "kind": kind, "metadata": meta, **body}
    outputs = {**copy.deepcopy(inputs), "__inputs": copy.deepcopy(inputs)}
    outputs["metadata"] = {**meta, "uid": f"uid-{name}", "resourceVersion": "100", "generation": 1,
                           "managedFields": [{"manager": "pulumi"}], **metadata}  # fmt: skip
    return {"urn": urn, "type": urn.split("::")[-2].split("$")[-1], "custom": True, "id": name,
            "inputs": inputs, "outputs": outputs}  # fmt: skip


def _weights(v1: int, v2: int) -> dict[str, Any]:
    route = [{"destination": {"host": "nginx", "subset": "v1"}, "weight": v1},
             {"destination": {"host": "nginx", "subset": "v2"}, "weight": v2}]  # fmt: skip
    return {"spec": {"hosts": ["nginx"], "http": [{"route": route}]}}


def _export(v1: int = 70, v2: int = 30, ciphertext: str = "v1:aaa", extra: list[dict[str, Any]] | None = None) -> Any:
    """A `pulumi stack export` of a small deployed stack."""
    resources = [
        {"urn": STACK_URN, "type": "pulumi:pulumi:Stack", "custom": False,
         "outputs": {"services": {"nginx": {"weights": {"v1": v1, "v2": v2}}}}},
        _k8s(NS_URN, "Namespace", "demo", None, {"spec": {}, "status": {"phase": "Active"}}),
        _k8s(VS_URN, "VirtualService", "nginx", "demo", _weights(v1, v2)),
        _k8s(SECRET_URN, "Secret", "nginx-secrets", "demo", {"data": _secret(ciphertext), "type": "Opaque"}),
        *(extra or []),
    ]  # fmt: skip
    return {"version": 3, "deployment": {"manifest": {}, "resources": resources}}


def _record(export: Any, stack_file: bytes = b"config: {}\n") -> ReviewRecord:
    return make_record("prod", "stacks/Pulumi.prod.yaml", stack_file, deployed_resources(export, "test"), "T0")


# --- digests ----------------------------------------------------------------------------------------


def test_same_state_same_digests_and_a_weight_changes_one() -> None:
    before, after = deployed_resources(_export(), "a"), deployed_resources(_export(50, 50), "b")
    assert {k: v.digest for k, v in before.items()} == {
        k: v.digest for k, v in deployed_resources(_export(), "c").items()
    }
    changed = {key for key in before if before[key].digest != after[key].digest}
    assert changed == {VS_URN, STACK_URN}


def test_a_secrets_new_ciphertext_is_no_move() -> None:
    """Every refresh re-encrypts secrets with a new nonce: comparing ciphertexts would refuse every apply."""
    before, after = (
        deployed_resources(_export(ciphertext="v1:aaa"), "a"),
        deployed_resources(_export(ciphertext="v1:bbb"), "b"),
    )
    assert before[SECRET_URN].digest == after[SECRET_URN].digest
    assert before[SECRET_URN].state["outputs"]["data"] == SECRET
    assert "v1:aaa" not in json.dumps(before[SECRET_URN].state)


def test_what_the_api_server_rewrites_is_no_move_but_content_is() -> None:
    """Status, resourceVersion, managedFields and generation change with nobody changing the object."""
    export = _export()
    base = deployed_resources(export, "a")[NS_URN].digest
    churned = copy.deepcopy(export)
    namespace = churned["deployment"]["resources"][1]["outputs"]
    namespace["status"] = {"phase": "Terminating"}
    namespace["metadata"].update(resourceVersion="200", generation=2, managedFields=[{"manager": "kubectl"}])
    assert deployed_resources(churned, "b")[NS_URN].digest == base
    namespace["metadata"]["labels"] = {"team": "web"}
    assert deployed_resources(churned, "c")[NS_URN].digest != base
    recreated = copy.deepcopy(export)
    recreated["deployment"]["resources"][1]["outputs"]["metadata"]["uid"] = "another"
    assert deployed_resources(recreated, "d")[NS_URN].digest != base


def test_status_counts_outside_kubernetes_objects() -> None:
    component = {
        "urn": "urn:pulumi:prod::meshkit::meshkit:index:TrafficSplit::nginx",
        "type": "meshkit:index:TrafficSplit",
        "outputs": {"status": "a", "routedVersions": ["v1"]},
    }
    assert normalized(component)["outputs"]["status"] == "a"


@pytest.mark.parametrize(
    ("resource", "label"),
    [
        (_k8s(VS_URN, "VirtualService", "nginx", "demo", {}), "VirtualService demo/nginx"),
        (_k8s(NS_URN, "Namespace", "demo", None, {}), "Namespace demo"),
        ({"urn": STACK_URN, "type": "pulumi:pulumi:Stack"}, "the stack's outputs (meshkit-prod)"),
        ({"urn": "urn:pulumi:prod::meshkit::pulumi:providers:kubernetes::k8s", "type": "pulumi:providers:kubernetes"},
         "provider kubernetes k8s"),
        ({"urn": "urn:pulumi:prod::meshkit::meshkit:index:TrafficSplit::nginx", "type": "meshkit:index:TrafficSplit"},
         "meshkit component TrafficSplit nginx"),
        # Created but never read back (a killed update): the inputs name it.
        ({**_k8s(VS_URN, "VirtualService", "nginx", "demo", {}), "outputs": {}}, "VirtualService demo/nginx"),
        ({"urn": VS_URN, "type": "kubernetes:networking.istio.io/v1:VirtualService"},
         "VirtualService nginx-virtualservice"),
    ],
)  # fmt: skip
def test_objects_are_named_as_kubectl_names_them(resource: dict[str, Any], label: str) -> None:
    assert object_label(resource) == label


def test_a_replaced_resources_pending_deletion_is_its_own_entry() -> None:
    old = {**_k8s(VS_URN, "VirtualService", "nginx", "demo", _weights(70, 30)), "delete": True}
    found = deployed_resources(_export(extra=[old]), "x")
    assert {VS_URN, f"{VS_URN} (pending deletion)"} <= set(found)


@pytest.mark.parametrize(
    ("export", "reason"),
    [
        ([], "no `deployment` object"),
        ({"version": 3}, "no `deployment` object"),
        ({"deployment": {"resources": {}}}, "`deployment.resources` is not a list"),
        ({"deployment": {"resources": [{"type": "x"}]}}, "a resource without a URN"),
    ],
)
def test_not_a_stack_export_is_refused(export: Any, reason: str) -> None:
    with pytest.raises(MeshkitError, match=r"^state\.json: not a `pulumi stack export` of a stack") as caught:
        deployed_resources(export, "state.json")
    assert reason in str(caught.value)


def test_a_stack_never_deployed_has_no_resources() -> None:
    assert deployed_resources({"version": 3, "deployment": {"manifest": {}}}, "x") == {}


# --- the record and what moved ----------------------------------------------------------------------


def test_record_round_trips_and_names_every_object() -> None:
    record = _record(_export())
    text = record.to_json()
    assert ReviewRecord.from_json(text, "r") == record
    document = json.loads(text)
    assert document["stackFile"] == {"path": "stacks/Pulumi.prod.yaml", "sha256": record.stack_file_sha256}
    assert document["deployed"]["resources"][VS_URN]["object"] == "VirtualService demo/nginx"
    assert document["updatePlan"] == UPDATE_PLAN


@pytest.mark.parametrize("text", ["", "[]", '{"meshkitReview": 2}', '{"meshkitReview": 1, "stack": "prod"}'])
def test_not_a_record_is_refused(text: str) -> None:
    with pytest.raises(MeshkitError, match=r"^r\.json: not a meshkit review record .*`make review` writes one$"):
        ReviewRecord.from_json(text, "r.json")


def test_changed_fields_are_leaf_paths() -> None:
    before = {"spec": {"http": [{"route": [{"weight": 70}, {"weight": 30}]}], "hosts": ["a"]}, "x": 1}
    after = {"spec": {"http": [{"route": [{"weight": 50}, {"weight": 50}]}], "hosts": ["a", "b"]}, "y": 2}
    assert [str(c) for c in changed_fields(before, after)] == [
        'spec.hosts ["a"] → ["a", "b"]',
        "spec.http[0].route[0].weight 70 → 50",
        "spec.http[0].route[1].weight 30 → 50",
        "x 1 → (none)",
        "y (none) → 2",
    ]
    assert str(FieldChange("data", "x" * 100, 1)).startswith('data "' + "x" * 56 + "... → 1")


def test_moved_names_changed_new_and_gone_objects_with_their_fields() -> None:
    reviewed_export = _export()
    record = _record(reviewed_export)
    states = {key: item.state for key, item in deployed_resources(reviewed_export, "r").items()}
    now = _export(50, 50, ciphertext="v1:zzz", extra=[_k8s(DEPLOY_URN, "Deployment", "nginx-v3", "demo", {})])
    del now["deployment"]["resources"][1]  # the Namespace
    moved = moved_resources(record, deployed_resources(now, "n"), states)
    assert [str(m) for m in moved] == [
        "Deployment demo/nginx-v3: new, not in the reviewed state",
        "Namespace demo: gone from the deployed state",
        "VirtualService demo/nginx: changed: spec.http[0].route[0].weight 70 → 50, "
        "spec.http[0].route[1].weight 30 → 50",
        "the stack's outputs (meshkit-prod): changed: services.nginx.weights.v1 70 → 50, "
        "services.nginx.weights.v2 30 → 50",
    ]
    # Without the reviewed states (or with states that are not those the digests were taken of), the
    # objects are still named.
    assert str(moved_resources(record, deployed_resources(now, "n"))[2]) == "VirtualService demo/nginx: changed"
    wrong = {**states, VS_URN: deployed_resources(_export(10, 90), "w")[VS_URN].state}
    assert str(moved_resources(record, deployed_resources(now, "n"), wrong)[2]) == "VirtualService demo/nginx: changed"


def test_only_inputs_changed_is_shown_as_inputs() -> None:
    reviewed_export = _export()
    record = _record(reviewed_export)
    states = {key: item.state for key, item in deployed_resources(reviewed_export, "r").items()}
    now = copy.deepcopy(reviewed_export)
    now["deployment"]["resources"][2]["inputs"]["metadata"]["labels"] = {"a": "b"}
    (moved,) = moved_resources(record, deployed_resources(now, "n"), states)
    assert str(moved) == 'VirtualService demo/nginx: changed: inputs.metadata.labels (none) → {"a": "b"}'


def test_many_fields_are_counted_not_listed() -> None:
    reviewed_export = _export()
    reviewed_export["deployment"]["resources"][2]["outputs"]["metadata"]["labels"] = {f"l{i}": "a" for i in range(6)}
    record = _record(reviewed_export)
    states = {key: item.state for key, item in deployed_resources(reviewed_export, "r").items()}
    now = copy.deepcopy(reviewed_export)
    now["deployment"]["resources"][2]["outputs"]["metadata"]["labels"] = {f"l{i}": "x" for i in range(6)}
    (moved,) = moved_resources(record, deployed_resources(now, "n"), states)
    assert str(moved).endswith('metadata.labels.l3 "a" → "x" and 2 more field(s)')


# --- the review directory and the verdict ----------------------------------------------------------


@pytest.fixture
def review_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "review" / "prod"
    data = (SCENARIOS / "A4.yaml").read_bytes()
    deployed = deployed_resources(_export(), "r")
    write_review(directory, make_record("prod", "stacks/Pulumi.prod.yaml", data, deployed, "T0"), data, deployed)
    (directory / UPDATE_PLAN).write_text("{}")
    return directory


def test_unchanged_holds(review_dir: Path) -> None:
    review = read_review(review_dir, "prod", "make review STACK=prod")
    result = verdict(review, "stacks/Pulumi.prod.yaml", (SCENARIOS / "A4.yaml").read_bytes(),
                     deployed_resources(_export(ciphertext="v1:new"), "n"))  # fmt: skip
    assert result.holds
    assert result.summary().startswith(f"{review_dir}: unchanged since the review (T0): the stack file ")
    assert result.summary().endswith(
        f"4 resource(s) deployed in stack prod; the saved plan is {review_dir / UPDATE_PLAN}"
    )


def test_refusal_says_what_moved_and_how_to_replan(review_dir: Path) -> None:
    review = read_review(review_dir, "prod", "make review STACK=prod")
    edited = (SCENARIOS / "A4.yaml").read_text().replace("v1: 20", "v1: 25").replace("v2: 80", "v2: 75")
    result = verdict(review, "stacks/Pulumi.prod.yaml", edited.encode(), deployed_resources(_export(50, 50), "n"))
    assert not result.holds
    message = result.refusal("make review STACK=prod CLUSTER=local")
    lines = message.splitlines()
    assert lines[0] == f"{review_dir}: refused, nothing was deployed: what was reviewed no longer holds."
    assert lines[1].startswith("  the stack file stacks/Pulumi.prod.yaml changed since the review (reviewed sha256 ")
    assert "    -          v1: 20" in lines and "    +          v1: 25" in lines
    assert (
        "  the deployed state of stack prod moved since the review (T0; another deployment, or a hand edit in the "
        "cluster): 2 object(s):"
    ) in lines
    assert (
        "    VirtualService demo/nginx: changed: spec.http[0].route[0].weight 70 → 50, "
        "spec.http[0].route[1].weight 30 → 50"
    ) in lines
    assert lines[-1] == (
        "  fix: re-plan with `make review STACK=prod CLUSTER=local` and get the new plan reviewed, "
        "then apply that review"
    )


def test_refusal_without_the_states_copy_still_names_the_objects(review_dir: Path) -> None:
    (review_dir / STATE_FILE).write_text("not json")
    review = read_review(review_dir, "prod", "x")
    message = verdict(review, "s.yaml", b"other", deployed_resources(_export(50, 50), "n")).refusal("x")
    assert "  the stack file s.yaml changed since the review (reviewed sha256 " in message
    assert "    VirtualService demo/nginx: changed\n" in message


def test_a_record_vouching_for_another_file_than_the_reviewed_copy_is_refused(review_dir: Path) -> None:
    # An edited stack file whose digest was pasted into record.json: the reviewed copy still says what was
    # reviewed, and it no longer matches the record.
    edited = (SCENARIOS / "A4.yaml").read_text().replace("v1: 20", "v1: 0").replace("v2: 80", "v2: 100").encode()
    record = json.loads((review_dir / RECORD_FILE).read_text())
    record["stackFile"]["sha256"] = hashlib.sha256(edited).hexdigest()
    (review_dir / RECORD_FILE).write_text(json.dumps(record))
    with pytest.raises(MeshkitError, match=r"the review was altered, so nothing was deployed"):
        read_review(review_dir, "prod", "make review STACK=prod")
    (review_dir / STACK_FILE_COPY).unlink()
    with pytest.raises(MeshkitError, match=r"the reviewed stack file's copy, is missing"):
        read_review(review_dir, "prod", "make review STACK=prod")


def test_a_record_with_a_byte_order_mark_is_read_like_an_outputs_file(review_dir: Path) -> None:
    record = (review_dir / RECORD_FILE).read_bytes()
    (review_dir / RECORD_FILE).write_bytes(b"\xef\xbb\xbf" + record)
    assert read_review(review_dir, "prod", "x").record.stack == "prod"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("no record",
         "no review there (record.json missing), so nothing was deployed; make one with `make review STACK=prod`"),
        ("no plan", "the review is incomplete (update-plan.json, the engine's saved plan, is missing"),
        ("other stack", "the review of stack dev, not of prod, so nothing was deployed"),
    ],
)  # fmt: skip
def test_no_usable_review_is_refused(review_dir: Path, damage: str, expected: str) -> None:
    if damage == "no record":
        shutil.rmtree(review_dir)
    elif damage == "no plan":
        (review_dir / UPDATE_PLAN).unlink()
    else:
        record = json.loads((review_dir / RECORD_FILE).read_text())
        (review_dir / RECORD_FILE).write_text(json.dumps({**record, "stack": "dev"}))
    with pytest.raises(MeshkitError) as caught:
        read_review(review_dir, "prod", "make review STACK=prod")
    assert str(caught.value).startswith(f"{review_dir}: {expected}")


# --- the command line -------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "stacks").mkdir()
    shutil.copy(SCENARIOS / "A4.yaml", tmp_path / "stacks" / "Pulumi.prod.yaml")
    (tmp_path / "state.json").write_text(json.dumps(_export()))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_record_then_verify_on_the_command_line(project: Path) -> None:
    recorded = runner.invoke(app, ["review", "record", "prod", "--state", "state.json"])
    assert recorded.exit_code == 0, recorded.output
    assert recorded.output.startswith("review/prod: recorded stacks/Pulumi.prod.yaml (sha256 ")
    assert sorted(p.name for p in (project / "review" / "prod").iterdir()) == [RECORD_FILE, STACK_FILE_COPY, STATE_FILE]
    assert "v1:aaa" not in (project / "review" / "prod" / STATE_FILE).read_text(), "no ciphertext in the artifact"
    (project / "review" / "prod" / UPDATE_PLAN).write_text("{}")  # `pulumi preview --save-plan` writes it

    held = runner.invoke(app, ["review", "verify", "prod", "--state", "state.json"])
    assert held.exit_code == 0, held.output
    assert held.output.startswith("review/prod: unchanged since the review")

    (project / "state.json").write_text(json.dumps(_export(50, 50)))
    refused = runner.invoke(app, ["review", "verify", "stacks/Pulumi.prod.yaml", "--state", "state.json",
                                  "--replan", "make review STACK=prod CLUSTER=local"])  # fmt: skip
    assert refused.exit_code == 1
    assert "VirtualService demo/nginx: changed: spec.http[0].route[0].weight 70 → 50" in refused.output
    assert "re-plan with `make review STACK=prod CLUSTER=local`" in refused.output
    assert "Traceback" not in refused.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["review", "verify", "prod", "--state", "state.json"], "review/prod: no review there (record.json missing)"),
        (["review", "record", "prod", "--state", "missing.json"], "missing.json: cannot read the saved state"),
        (["review", "record", "nope", "--state", "state.json"], "stacks/Pulumi.nope.yaml: cannot read the stack file"),
    ],
)
def test_review_errors_exit_1_without_a_traceback(project: Path, args: list[str], expected: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.startswith(expected), result.output
    assert "Traceback" not in result.output


def test_a_saved_state_that_is_not_json_is_refused(project: Path) -> None:
    (project / "state.json").write_text("{")
    result = runner.invoke(app, ["review", "record", "prod", "--state", "state.json"])
    assert result.exit_code == 1
    assert result.output.startswith("state.json: not a `pulumi stack export` (not JSON:")
