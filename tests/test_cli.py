"""The ``meshkit`` command line, run against real git repositories made in temporary directories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from meshkit.cli import app
from meshkit.mesh.checks import load_stack_file
from meshkit.mesh.manifest import manifests_to_yaml
from meshkit.mesh.render import render_stack
from meshkit.rollout.summary import deployment_outputs, stack_summary

from .goldens import assert_matches_golden
from .scenario_data import REPO, SCENARIOS, scenario, scenario_raw, stack_file_text

runner = CliRunner()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git repository with the project file and both stacks committed on main, checked out on a
    branch ``rollout`` as a pull request would be."""
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "base")
    _git(tmp_path, "checkout", "-q", "-b", "rollout")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def meshkit(*args: str) -> Any:
    return runner.invoke(app, list(args))


def _use_step(repo: Path, stack: str, step: str) -> None:
    """Make the working tree's stack file a copy of a scenario step (comments included)."""
    shutil.copy(SCENARIOS / f"{step}.yaml", repo / "stacks" / f"Pulumi.{stack}.yaml")


# --- check -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_check_passes_the_committed_stacks(repo: Path, stack: str) -> None:
    result = meshkit("check", stack)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("0 error(s), 0 warning(s)")


def test_check_reports_errors_by_path_and_exits_1(repo: Path) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    stack_file.write_text(stack_file.read_text().replace("v2: 30", "v3: 30"))
    result = meshkit("check", "prod", "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["errors"] == 1 and report["file"] == "stacks/Pulumi.prod.yaml"
    (finding,) = report["findings"]
    assert (finding["code"], finding["path"], finding["object"]) == (
        "MK101",
        "services.nginx.traffic.weights.v3",
        "VirtualService nginx.demo",
    )


def test_check_warning_exits_0_unless_strict(repo: Path) -> None:
    _use_step(repo, "dev", "B3")
    result = meshkit("check", "dev")
    assert result.exit_code == 0
    assert "warning MK503 services.ratings.faults[0].delay.fixedDelay" in result.output
    assert "productpage waits for reviews" in result.output
    assert meshkit("check", "dev", "--strict").exit_code == 1


def test_check_takes_a_file_path_and_deployed_outputs(repo: Path, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack_summary(scenario("A4"))))
    result = meshkit("check", str(SCENARIOS / "A6.yaml"), "--deployed", str(outputs))
    assert result.exit_code == 1
    assert "error MK501 services.nginx.versions" in result.output


def test_check_of_a_missing_stack_names_the_file(repo: Path) -> None:
    result = meshkit("check", "staging")
    assert result.exit_code == 1
    assert "stacks/Pulumi.staging.yaml" in result.output and "MK004" in result.output


def _commit_on_main(repo: Path, step: str) -> None:
    """Make a scenario step the stack file of prod on main, the rollout branch following it."""
    _use_step(repo, "prod", step)
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-am", step)
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "-q", "--ff-only", "rollout")
    _git(repo, "checkout", "-q", "rollout")


def test_check_compares_with_the_merge_base_by_default(repo: Path) -> None:
    _commit_on_main(repo, "A4")  # main sends v1 20%
    _use_step(repo, "prod", "A6")  # and the branch removes v1
    merge_base = _git(repo, "merge-base", "HEAD", "main").strip()
    result = meshkit("check", "prod")
    assert result.exit_code == 1, result.output
    assert "error MK501 services.nginx.versions" in result.output
    assert f"rollout checks against the merge base with main, {merge_base[:12]}" in result.output
    report = json.loads(meshkit("check", "prod", "--json").output)
    assert report["base"]["kind"] == "merge-base" and report["base"]["ref"] == merge_base
    assert [f["code"] for f in report["findings"]] == ["MK501"]
    off = meshkit("check", "prod", "--no-base")
    assert off.exit_code == 0 and "no rollout checks (--no-base)" in off.output, off.output


def test_check_deployed_outputs_take_precedence_over_the_merge_base(repo: Path, tmp_path: Path) -> None:
    _commit_on_main(repo, "A4")
    _use_step(repo, "prod", "A6")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack_summary(scenario("A5"))))  # deployed: v1 already at 0
    result = meshkit("check", "prod", "--deployed", str(outputs), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["base"]["kind"] == "deployed" and report["findings"] == []


def test_check_outside_git_says_no_base_was_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no repository here
    shutil.copy(SCENARIOS / "A6.yaml", tmp_path / "Pulumi.prod.yaml")
    result = meshkit("check", str(tmp_path / "Pulumi.prod.yaml"))
    assert result.exit_code == 0, result.output
    assert "no rollout checks: no git merge base with a main branch found" in result.output
    assert result.output.strip().endswith("0 error(s), 0 warning(s)")
    assert json.loads(meshkit("check", str(tmp_path / "Pulumi.prod.yaml"), "--json").output)["base"]["kind"] == "none"


def test_check_in_git_without_a_main_branch_is_no_error(repo: Path) -> None:
    _git(repo, "branch", "-q", "-m", "main", "trunk")
    _use_step(repo, "prod", "A6")
    result = meshkit("check", "prod")
    assert result.exit_code == 0, result.output
    assert "no git merge base with a main branch found" in result.output


# --- plan --------------------------------------------------------------------------------------------


def test_plan_against_the_merge_base(repo: Path) -> None:
    _use_step(repo, "prod", "A4")
    result = meshkit("plan", "prod")
    assert result.exit_code == 0, result.output
    merge_base = _git(repo, "merge-base", "HEAD", "main").strip()[:12]
    assert_matches_golden("cli/plan-A3-A4.txt", result.output.replace(merge_base, "<merge-base>"))


def test_plan_markdown_embeds_before_and_after_pictures(repo: Path) -> None:
    _use_step(repo, "dev", "B3")
    result = meshkit("plan", "dev", "--format", "markdown")
    assert result.exit_code == 0, result.output
    merge_base = _git(repo, "merge-base", "HEAD", "main").strip()[:12]
    assert result.output.count("```mermaid") == 2
    assert_matches_golden("cli/plan-B4-B3.md", result.output.replace(merge_base, "<merge-base>"))


def test_plan_flags_what_up_would_refuse(repo: Path) -> None:
    _use_step(repo, "prod", "A6")  # v1 leaves while main still sends it 70%
    result = meshkit("plan", "prod", "--format", "markdown")
    assert result.exit_code == 1
    assert "**Refused: `pulumi up` would stop.**" in result.output
    assert "`MK501` `services.nginx.versions`" in result.output


def test_plan_against_deployed_outputs_and_a_new_stack(repo: Path, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack_summary(scenario("A2"))))
    result = meshkit("plan", "prod", "--base-file", str(outputs))
    assert result.exit_code == 0
    assert "version v2" in result.output and "nginx:1.15 ×1" in result.output
    _use_step(repo, "staging", "A1")
    result = meshkit("plan", "staging")
    assert "no stack file there" in result.output and "service" in result.output


def test_plan_shows_percentages_as_written(repo: Path, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack_summary(scenario("A3"))))
    raw = scenario_raw("A3")
    raw["services"]["nginx"]["traffic"]["mirror"] = {"version": "v2", "percentage": 12.5}
    raw["services"]["nginx"]["faults"] = [
        {"match": {"headers": {"x-test": {"exact": "1"}}}, "delay": {"fixedDelay": "1s", "percentage": 33.333333},
         "abort": {"httpStatus": 500, "percentage": 0.00001}}
    ]  # fmt: skip
    (repo / "stacks" / "Pulumi.prod.yaml").write_text(stack_file_text(raw))
    result = meshkit("plan", "prod", "--base-file", str(outputs))
    assert result.exit_code == 0, result.output
    assert "delay 1s (33.333333%) + abort 500 (0.00001%) for x-test=1" in result.output
    assert "v2 12.5%" in result.output and "12.50" not in result.output and "0.125" not in result.output


def test_plan_with_an_unknown_base_is_an_error(repo: Path) -> None:
    result = meshkit("plan", "prod", "--base", "no-such-branch")
    assert result.exit_code == 1
    assert "'no-such-branch' is not a git revision" in result.output


def test_plan_of_a_missing_stack_file_says_it_does_not_exist(repo: Path) -> None:
    result = meshkit("plan", "staging")
    assert result.exit_code == 1
    assert "stacks/Pulumi.staging.yaml" in result.output and "the file does not exist" in result.output
    assert "nothing was deployed" not in result.output


# --- step --------------------------------------------------------------------------------------------


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new), "a weight step must not add or remove lines"
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def test_step_changes_only_the_weight_values(repo: Path) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    before = stack_file.read_text()
    result = meshkit("step", "prod", "nginx", "v2=80")
    assert result.exit_code == 0, result.output
    assert _changed_lines(before, stack_file.read_text()) == [
        ("          v1: 70", "          v1: 20"),
        ("          v2: 30", "          v2: 80"),
    ]
    assert meshkit("check", "prod").exit_code == 0


def test_step_keeps_comments_and_flow_style(repo: Path) -> None:
    _use_step(repo, "dev", "B4")
    stack_file = repo / "stacks" / "Pulumi.dev.yaml"
    before = stack_file.read_text()
    assert meshkit("step", "dev", "reviews", "v3=50").exit_code == 0
    after = stack_file.read_text()
    # v1's weight changes and v3 is added under it; every other line, comments included, is kept.
    assert after.replace("          v1: 50\n          v3: 50\n", "          v1: 100\n") == before


def test_take_over_then_retire(repo: Path) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    refused = meshkit("step", "prod", "nginx", "--retire", "v1")
    assert refused.exit_code == 1 and "still takes traffic (70%" in refused.output
    assert meshkit("step", "prod", "nginx", "--take-over", "v2").exit_code == 0
    assert stack_summary(scenario("A5"))["services"]["nginx"]["weights"] == {"v1": 0, "v2": 100}
    assert "v1: 0" in stack_file.read_text()
    assert meshkit("step", "prod", "nginx", "--retire", "v1").exit_code == 0
    text = stack_file.read_text()
    assert "nginx:1.14" not in text and "v1: 0" not in text and "# Production" in text


def test_promote_follows_the_step_list(repo: Path) -> None:
    _use_step(repo, "prod", "A2")
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    document = yaml.safe_load(stack_file.read_text())
    nginx = document["config"]["meshkit:services"]["nginx"]
    nginx["versions"]["v2"] = {"image": "nginx:1.15"}
    nginx["traffic"] = {"weights": {"v1": 100, "v2": 0}, "steps": [10, 30, 50, 100]}
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
    seen = []
    for _ in range(4):
        assert meshkit("step", "prod", "nginx", "--promote").exit_code == 0
        seen.append(yaml.safe_load(stack_file.read_text())["config"]["meshkit:services"]["nginx"]["traffic"]["weights"])
    assert seen == [{"v1": 90, "v2": 10}, {"v1": 70, "v2": 30}, {"v1": 50, "v2": 50}, {"v1": 0, "v2": 100}]
    last = meshkit("step", "prod", "nginx", "--promote")
    assert last.exit_code == 1 and "already takes 100%" in last.output


def test_step_larger_than_max_step_is_refused_and_nothing_written(repo: Path) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    limited = stack_file.read_text().replace(
        "meshkit:production: true", "meshkit:production: true\n  meshkit:maxStep: 25"
    )
    stack_file.write_text(limited)
    before = stack_file.read_text()
    result = meshkit("step", "prod", "nginx", "v2=80")
    assert result.exit_code == 1
    assert "MK502 services.nginx.traffic.weights.v2" in result.output and "the step was not written" in result.output
    assert stack_file.read_text() == before


@pytest.mark.parametrize(("args", "message"), [
    (["nginx", "v3=10"], "has no version 'v3'"),
    (["web", "v2=10"], "no service 'web'"),
    (["nginx", "v2=70", "v1=40"], "does not sum to 100"),
    (["nginx", "--promote"], "no step list"),
])  # fmt: skip
def test_step_refusals_name_the_problem(repo: Path, args: list[str], message: str) -> None:
    before = (repo / "stacks" / "Pulumi.prod.yaml").read_text()
    result = meshkit("step", "prod", *args)
    assert result.exit_code == 1 and message in result.output
    assert (repo / "stacks" / "Pulumi.prod.yaml").read_text() == before


@pytest.mark.parametrize("args", [
    ["nginx"], ["nginx", "v2=10", "--promote"], ["nginx", "v2"], ["nginx", "--add", "v3"],
    ["nginx", "--image", "nginx:1.16"], ["nginx", "v2=10", "--weight", "10"], ["nginx", "--add", "v3", "v2=10"],
    ["nginx", "--rollback", "v2=10"], ["nginx", "--rollback", "--promote"], ["nginx", "--deployed", "outputs.json"],
    ["nginx", "v2=10", "--deployed", "outputs.json"],
])  # fmt: skip
def test_step_usage_errors_exit_2(repo: Path, args: list[str]) -> None:
    assert meshkit("step", "prod", *args).exit_code == 2


def test_step_with_no_change_writes_nothing(repo: Path) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    os.utime(stack_file, ns=(1_000_000_000, 1_000_000_000))
    before = stack_file.read_bytes()
    result = meshkit("step", "prod", "nginx", "v2=30")  # v2 takes 30% already
    assert result.exit_code == 0, result.output
    assert "no change, nothing written" in result.output and "step written" not in result.output
    assert stack_file.read_bytes() == before and stack_file.stat().st_mtime_ns == 1_000_000_000


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_step_keeps_the_files_encoding_and_line_breaks(repo: Path, encoding: str) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    text = stack_file.read_text().replace("\n", "\r\n")
    stack_file.write_bytes(text.encode(encoding))
    assert meshkit("step", "prod", "nginx", "v2=80").exit_code == 0
    expected = text.replace("v1: 70\r\n", "v1: 20\r\n").replace("v2: 30\r\n", "v2: 80\r\n")
    assert stack_file.read_bytes() == expected.encode(encoding)


def test_step_refuses_to_change_a_value_another_service_shares(repo: Path) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    shared = stack_file.read_text().replace("    nginx:\n", "    nginx: &nginx\n")
    shared = shared.replace("    sleep:\n", "    web:\n      <<: *nginx\n    sleep:\n")
    stack_file.write_text(shared)
    result = meshkit("step", "prod", "web", "v2=80")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == (
        "stacks/Pulumi.prod.yaml: 1 problem(s), the step was not written:\n"
        "  error MK507 services.web.traffic.weights.v1: the step would set it to 20 (from 70), but "
        "services.web.traffic comes from the merge <<: *nginx: services.nginx.traffic reads the same value, so the "
        "step would change service 'nginx' as well; fix: to step 'web' alone, give services.web its own traffic "
        "(write `traffic:` out under it: a mapping's own keys take precedence over <<: *nginx), then run the step "
        "again; to move them all together, edit it by hand where &nginx is written\n"
    )
    assert stack_file.read_text() == shared


def _canary_repo(repo: Path, stack: str = "prod") -> Path:
    """Scenario A2 (nginx v1 only) on main and on the branch."""
    _commit_on_main(repo, "A2")
    return repo / "stacks" / f"Pulumi.{stack}.yaml"


def test_step_add_writes_the_canary_and_its_weight_in_one_edit(repo: Path) -> None:
    stack_file = _canary_repo(repo)
    before = stack_file.read_text()
    result = meshkit("step", "prod", "nginx", "--add", "v2", "--image", "nginx:1.15", "--replicas", "1",
                     "--weight", "30")  # fmt: skip
    assert result.exit_code == 0, result.output
    after = stack_file.read_text()
    added = "        v2:\n          image: nginx:1.15\n          replicas: 1\n"
    assert after.replace(added, "").replace("          v1: 70\n          v2: 30\n", "          v1: 100\n") == before
    nginx = yaml.safe_load(after)["config"]["meshkit:services"]["nginx"]
    assert list(nginx["versions"]) == ["v1", "v2"] and nginx["traffic"]["weights"] == {"v1": 70, "v2": 30}
    assert meshkit("check", "prod").exit_code == 0
    # step and plan show the new version the same way.
    plan = meshkit("plan", "prod")
    rows = [line for line in result.output.splitlines() if line.startswith("nginx")]
    assert rows == [line for line in plan.output.splitlines() if line.startswith("nginx")]
    assert [r.split()[:3] for r in rows] == [["nginx", "weight", "v1"], ["nginx", "weight", "v2"],
                                             ["nginx", "version", "v2"]]  # fmt: skip
    assert "nginx:1.15 ×1" in rows[2]


def test_step_add_without_a_weight_adds_the_version_at_0(repo: Path) -> None:
    stack_file = _canary_repo(repo)
    assert meshkit("step", "prod", "nginx", "--add", "v2", "--image", "nginx:1.15").exit_code == 0
    nginx = yaml.safe_load(stack_file.read_text())["config"]["meshkit:services"]["nginx"]
    assert nginx["versions"]["v2"] == {"image": "nginx:1.15"} and nginx["traffic"]["weights"] == {"v1": 100}
    promoted = meshkit("step", "prod", "nginx", "v2=10")
    assert promoted.exit_code == 0, promoted.output


@pytest.mark.parametrize(("args", "message"), [
    (["--add", "v1", "--image", "nginx:1.15"], "already has a version 'v1'"),
    (["--add", "v2", "--image", "nginx"], "MK604 services.nginx.versions.v2.image"),
    (["--add", "v2", "--image", "nginx:latest"], "MK604 services.nginx.versions.v2.image"),
    (["--add", "v2", "--image", "Nginx:1.15"], "MK311 services.nginx.versions.v2.image"),
    (["--add", "v2", "--image", "nginx:1.15", "--weight", "30"], "MK502 services.nginx.traffic.weights.v2"),
    (["--add", "v2", "--image", "nginx:1.15", "--weight", "130"], "between 0 and 100"),
])  # fmt: skip
def test_step_add_refusals_write_nothing(repo: Path, args: list[str], message: str) -> None:
    stack_file = _canary_repo(repo)
    if "MK502" in message:
        stack_file.write_text(
            stack_file.read_text().replace(
                "meshkit:production: true", "meshkit:production: true\n  meshkit:maxStep: 20"
            )
        )
    before = stack_file.read_bytes()
    result = meshkit("step", "prod", "nginx", *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert stack_file.read_bytes() == before


def test_step_add_of_an_unpinned_image_outside_production_is_a_warning(repo: Path) -> None:
    stack_file = _canary_repo(repo)
    stack_file.write_text(stack_file.read_text().replace("meshkit:production: true", "meshkit:production: false"))
    assert meshkit("step", "prod", "nginx", "--add", "v2", "--image", "nginx", "--weight", "10").exit_code == 0
    assert "image: nginx\n" in stack_file.read_text()


# --- step --rollback ---------------------------------------------------------------------------------


def _deployed(path: Path, *steps: str, edit: Any = None) -> Path:
    """Saved outputs (``pulumi stack output --json``) after deploying scenario steps one after the other,
    as the program exports them; ``edit(config)`` changes the last step's config first."""
    outputs: dict[str, Any] | None = None
    for i, step in enumerate(steps):
        config = scenario(step)
        if edit is not None and i == len(steps) - 1:
            config = edit(config)
        outputs = json.loads(json.dumps(deployment_outputs(config, outputs)))
    path.write_text(json.dumps(outputs))
    return path


def test_step_rollback_undoes_the_last_deployed_weight_change(repo: Path) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    reviewed = stack_file.read_bytes()  # A3 with comments: v1 70, v2 30
    assert meshkit("step", "prod", "nginx", "v2=80").exit_code == 0  # the bad canary step, deployed:
    outputs = _deployed(repo / "outputs.json", "A2", "A3", "A4")
    result = meshkit("step", "prod", "nginx", "--rollback", "--deployed", str(outputs))
    assert result.exit_code == 0, result.output
    assert f"'nginx' back to its weights before its last deployed weight change, from the outputs in {outputs}" in (
        result.output
    )
    rows = [line.split() for line in result.output.splitlines() if line.startswith("nginx")]
    assert rows == [["nginx", "weight", "v1", "20", "→", "70"], ["nginx", "weight", "v2", "80", "→", "30"]]
    # Only the two weight values changed back: comments, order and layout are the reviewed file's.
    assert stack_file.read_bytes() == reviewed
    # Make-before-break rules pass against the deployment it undoes, and against main.
    assert meshkit("check", "prod", "--deployed", str(outputs)).exit_code == 0
    assert meshkit("check", "prod").exit_code == 0


def test_step_rollback_to_the_weights_the_file_has_already_changes_nothing(repo: Path) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    os.utime(stack_file, ns=(1_000_000_000, 1_000_000_000))
    before = stack_file.read_bytes()
    outputs = _deployed(repo / "outputs.json", "A2", "A3", "A4")  # rolled back in the file, not deployed yet
    result = meshkit("step", "prod", "nginx", "--rollback", "--deployed", str(outputs))
    assert result.exit_code == 0, result.output
    assert "'nginx' has the weights it had before its last deployed weight change already (v1=70, v2=30)" in (
        result.output
    )
    assert "no change, nothing written" in result.output and "step written" not in result.output
    assert stack_file.read_bytes() == before and stack_file.stat().st_mtime_ns == 1_000_000_000


def _without_v1_replicas(config: Any) -> Any:
    raw = config.model_dump(by_alias=True, exclude_defaults=True)
    raw["services"]["nginx"]["versions"]["v1"]["replicas"] = 0
    return type(config).model_validate(raw)


@pytest.mark.parametrize(("file_step", "deployed_steps", "expected"), [
    # Nothing deployed yet: `pulumi stack output --json` prints {}.
    ("A4", (), ["error MK505 services.nginx.traffic.weights: no deployment of 'nginx' is recorded in the outputs "
                "in ", "(they hold no services: no deployment yet)"]),
    # nginx deployed once, at 70/30: no weight change to undo.
    ("A4", ("A3",), ["error MK505 services.nginx.traffic.weights: the outputs in ",
                     "record no earlier weights of 'nginx': its weights (v1=70, v2=30) have not changed since its "
                     "first deployment"]),
    # v1 was retired (A6) after v2 took over (A5): rolling back to 20/80 needs v1 again.
    ("A6", ("A3", "A4", "A5", "A6"), ["error MK506 services.nginx.versions: the rollback would send 20% to version "
                                      "'v1', which the stack file no longer declares; fix: re-add it first, at 0%: "
                                      "`meshkit step stacks/Pulumi.prod.yaml nginx --add v1 --image IMAGE`"]),
    # v1 scaled to 0 after v2 took over: its pods are gone.
    ("A5", ("A3", "A4", "A5"), ["error MK506 services.nginx.versions.v1.replicas: the rollback would send 20% to "
                                "version 'v1', which has replicas: 0 (on its way out); fix: give 'v1' its replicas "
                                "back first (e.g. replicas: 2)"]),
])  # fmt: skip
def test_step_rollback_refusals_write_nothing(
    repo: Path, file_step: str, deployed_steps: tuple[str, ...], expected: list[str]
) -> None:
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    _use_step(repo, "prod", file_step)
    if "replicas: 0" in expected[0]:
        stack_file.write_text(stack_file.read_text().replace("replicas: 2", "replicas: 0"))
    outputs = repo / "outputs.json"
    if deployed_steps:
        _deployed(outputs, *deployed_steps)
    else:
        outputs.write_text("{}")
    before = stack_file.read_bytes()
    result = meshkit("step", "prod", "nginx", "--rollback", "--deployed", str(outputs))
    assert result.exit_code == 1, result.output
    assert result.output.startswith("stacks/Pulumi.prod.yaml: 1 problem(s), the step was not written:")
    assert all(fragment in result.output for fragment in expected), result.output
    assert stack_file.read_bytes() == before


def test_step_rollback_to_a_retired_version_after_re_adding_it(repo: Path) -> None:
    """MK506's fix: re-add the version at 0% and roll back, in one reviewed change; it passes `check`."""
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    _use_step(repo, "prod", "A6")
    outputs = _deployed(repo / "outputs.json", "A3", "A4", "A5", "A6")
    assert meshkit("step", "prod", "nginx", "--add", "v1", "--image", "nginx:1.14", "--replicas", "2").exit_code == 0
    result = meshkit("step", "prod", "nginx", "--rollback", "--deployed", str(outputs))
    assert result.exit_code == 0, result.output
    nginx = yaml.safe_load(stack_file.read_text())["config"]["meshkit:services"]["nginx"]
    assert nginx["traffic"]["weights"] == {"v1": 20, "v2": 80}
    assert meshkit("check", "prod", "--deployed", str(outputs)).exit_code == 0


def test_step_rollback_is_checked_against_the_deployment_it_undoes(repo: Path) -> None:
    """maxStep counts from what is deployed (20/80), not from an undeployed edit of the file (50/50)."""
    stack_file = repo / "stacks" / "Pulumi.prod.yaml"
    _use_step(repo, "prod", "A4")
    text = stack_file.read_text().replace("v1: 20\n", "v1: 50\n").replace("v2: 80\n", "v2: 50\n")
    stack_file.write_text(text.replace("config:\n", "config:\n  meshkit:maxStep: 25\n", 1))
    before = stack_file.read_bytes()
    outputs = _deployed(repo / "outputs.json", "A3", "A4")
    result = meshkit("step", "prod", "nginx", "--rollback", "--deployed", str(outputs))
    assert result.exit_code == 1, result.output
    assert "MK502 services.nginx.traffic.weights.v1: moves 'v1' from 20% to 70%, a step of 50 over maxStep 25" in (
        result.output
    )
    assert stack_file.read_bytes() == before


def test_step_rollback_reads_the_last_deployment_with_pulumi(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --deployed, the outputs come from `pulumi stack output --json`, as for `plan --base deployed`."""
    _use_step(repo, "prod", "A4")
    outputs = _deployed(repo.parent / "outputs.json", "A2", "A3", "A4")
    bin_dir = repo.parent / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(f'#!/bin/sh\necho "$@" > {repo.parent / "args"}\ncat {outputs}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    result = meshkit("step", "prod", "nginx", "--rollback")
    assert result.exit_code == 0, result.output
    assert "from the outputs of stack 'prod'" in result.output
    assert (repo.parent / "args").read_text().split() == ["stack", "output", "--json", "--stack", "prod"]
    weights = yaml.safe_load((repo / "stacks" / "Pulumi.prod.yaml").read_text())["config"]["meshkit:services"]
    assert weights["nginx"]["traffic"]["weights"] == {"v1": 70, "v2": 30}


# --- render and graph --------------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["A3", "B4"])
def test_render_prints_what_the_program_registers(repo: Path, step: str) -> None:
    result = meshkit("render", str(SCENARIOS / f"{step}.yaml"))
    assert result.exit_code == 0
    assert result.output == manifests_to_yaml(render_stack(scenario(step)))
    assert_matches_golden(f"{step}.yaml", result.output)


def test_render_to_a_directory_writes_one_file_per_object(repo: Path) -> None:
    result = meshkit("render", "dev", "-o", "out")
    assert result.exit_code == 0
    files = sorted((repo / "out").iterdir())
    objects = [yaml.safe_load(f.read_text()) for f in files]
    expected = render_stack(load_stack_file(repo / "stacks" / "Pulumi.dev.yaml"))
    assert len(files) == len(expected) == 29  # 27 objects of the services, the ingress Gateway and its routes
    assert (repo / "out" / "virtualservice.networking.istio.io_bookinfo_ratings.yaml").exists()
    assert (repo / "out" / "gateway.networking.istio.io_bookinfo_bookinfo-gateway.yaml").exists()
    assert (repo / "out" / "namespace_bookinfo.yaml").exists()
    assert sorted(objects, key=str) == sorted(expected, key=str)
    assert result.output == "29 manifests written to out\n"


def test_render_to_a_directory_gives_every_object_its_own_file(repo: Path) -> None:
    # Service shop of namespace web-api and service api-shop of namespace web: every one of their objects was
    # <kind>-web-api-shop….yaml, one file for two objects.
    raw = scenario_raw("A3")
    raw["namespaces"].update({"web-api": {}, "web": {}})
    service = {"ports": [{"name": "http", "port": 80}], "versions": {"v1": {"image": "nginx:1.15"}}}
    raw["services"].update({"shop": {**service, "namespace": "web-api"}, "api-shop": {**service, "namespace": "web"}})
    (repo / "stacks" / "Pulumi.prod.yaml").write_text(stack_file_text(raw))
    result = meshkit("render", "prod", "-o", "out")
    assert result.exit_code == 0, result.output
    expected = render_stack(load_stack_file(repo / "stacks" / "Pulumi.prod.yaml"))
    files = sorted((repo / "out").iterdir())
    assert len(files) == len(expected)
    assert result.output == f"{len(expected)} manifests written to out\n"
    assert sorted((yaml.safe_load(f.read_text()) for f in files), key=str) == sorted(expected, key=str)


def test_render_of_a_bad_stack_writes_nothing(repo: Path) -> None:
    (repo / "stacks" / "Pulumi.prod.yaml").write_text("config:\n  meshkit:services: {nginx: {}}\n")
    result = meshkit("render", "prod", "-o", "out")
    assert result.exit_code == 1 and "MK002 services.nginx.namespace" in result.output
    assert not (repo / "out").exists()


@pytest.mark.parametrize(("stack", "output_format", "golden"), [
    ("prod", "mermaid", "graph-prod.mmd"),
    ("dev", "mermaid", "graph-dev.mmd"),
    ("dev", "dot", "graph-dev.dot"),
])  # fmt: skip
def test_graph_text_formats(repo: Path, stack: str, output_format: str, golden: str) -> None:
    result = meshkit("graph", stack, "--format", output_format)
    assert result.exit_code == 0
    assert_matches_golden(f"cli/{golden}", result.output)


def test_graph_image_without_graphviz_says_what_to_install(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo))  # no `dot` here
    result = meshkit("graph", "prod", "--format", "svg", "-o", "traffic.svg")
    assert result.exit_code == 1 and "apt-get install graphviz" in result.output
    assert not (repo / "traffic.svg").exists()


# --- the installed entry points -------------------------------------------------------------------------


def test_python_dash_m_and_console_script(repo: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    module = subprocess.run([sys.executable, "-m", "meshkit", "check", "prod"], capture_output=True, text=True, env=env)
    assert module.returncode == 0 and "0 error(s)" in module.stdout
    script = Path(sys.executable).parent / "meshkit"
    for command in ("check", "plan", "step", "render", "graph"):
        help_text = subprocess.run([script, command, "--help"], capture_output=True, text=True, env=env)
        assert help_text.returncode == 0 and "Usage: meshkit" in help_text.stdout, help_text.stderr
