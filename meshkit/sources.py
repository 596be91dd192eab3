"""Where the command line finds stacks: stack files by name, older revisions in git, deployed outputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .config import YAML_LOADER, stack_file
from .errors import MeshkitError

MAIN_BRANCHES = ("main", "master", "origin/main", "origin/master")


def project_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``Pulumi.yaml`` (``start`` when none does)."""
    for directory in [start, *start.parents]:
        if (directory / "Pulumi.yaml").is_file():
            return directory
    return start


def project_name(root: Path) -> str:
    """The ``name`` of the Pulumi project at ``root`` (what the file backend files its stacks under)."""
    try:
        document = yaml.load((root / "Pulumi.yaml").read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise MeshkitError(f"{root / 'Pulumi.yaml'}: cannot read the project's name ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        raise MeshkitError(f"{root / 'Pulumi.yaml'}: has no project `name`")
    return str(document["name"])


def resolve_stack(stack_or_path: str, cwd: Path | None = None) -> tuple[str, Path]:
    """``prod`` → ``("prod", <project>/stacks/Pulumi.prod.yaml)``; a path to a stack file is taken as is."""
    cwd = cwd or Path.cwd()
    if stack_or_path.endswith((".yaml", ".yml")) or "/" in stack_or_path:
        path = Path(stack_or_path)
        name = path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]
        return name, path
    path = stack_file(stack_or_path, project_root(cwd.resolve()))
    # Shown in messages and reports: relative to where the user stands, when it is below.
    return stack_or_path, path.relative_to(cwd.resolve()) if path.is_relative_to(cwd.resolve()) else path


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)


def merge_base(path: Path) -> str:
    """The commit where the current branch left the main branch: what a pull request is reviewed against."""
    directory = path.resolve().parent
    for branch in MAIN_BRANCHES:
        result = _git(["merge-base", "HEAD", branch], directory)
        if result.returncode == 0:
            return result.stdout.strip()
    raise MeshkitError(
        f"{path}: found no main branch ({', '.join(MAIN_BRANCHES)}) to compare with; give --base GIT_REF"
    )


def text_at_revision(path: Path, ref: str) -> str | None:
    """The stack file's text at ``ref``, or None when the file did not exist there."""
    directory = path.resolve().parent
    verify = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], directory)
    if verify.returncode != 0:
        raise MeshkitError(f"{path}: {ref!r} is not a git revision of this repository")
    shown = _git(["show", f"{ref}:./{path.name}"], directory)
    return shown.stdout if shown.returncode == 0 else None


def last_deployed_outputs(stack: str) -> dict[str, Any]:
    """The outputs of the stack's last deployment (``{}`` before the first), read with the Pulumi CLI so
    that the same backend and credentials apply as for ``pulumi up``."""
    try:
        result = subprocess.run(
            ["pulumi", "stack", "output", "--json", "--stack", stack],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise MeshkitError("the pulumi CLI is not on PATH (run `make bootstrap`, then use .venv/bin)") from None
    if result.returncode != 0:
        raise MeshkitError(
            f"cannot read what stack {stack!r} last deployed, so the rollout checks cannot run: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    outputs: dict[str, Any] = json.loads(result.stdout or "{}")
    return outputs


def read_outputs_file(path: Path) -> dict[str, Any]:
    """Deployed outputs saved with ``pulumi stack output --json > FILE``."""
    try:
        outputs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise MeshkitError(
            f"{path}: cannot read stack outputs ({err}); save them with `pulumi stack output --json`"
        ) from None
    if not isinstance(outputs, dict):
        raise MeshkitError(f"{path}: stack outputs must be a JSON object, as `pulumi stack output --json` prints")
    return outputs


def stack_cluster(path: Path) -> list[str]:
    """The kubectl flags that reach the cluster a stack file names (``kubernetes:kubeconfig`` or
    ``kubernetes:context``); empty for a stack that renders manifests instead."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []  # the stack checks report an unreadable file; the cluster is then unknown
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        return []
    flags = []
    if config.get("kubernetes:kubeconfig"):
        kubeconfig = str(config["kubernetes:kubeconfig"])
        # A path (relative to the project, as the provider reads it) or the kubeconfig's contents.
        if "\n" not in kubeconfig:
            flags += ["--kubeconfig", str(project_root(path.resolve().parent) / kubeconfig)]
    if config.get("kubernetes:context"):
        flags += ["--context", str(config["kubernetes:context"])]
    return flags


def live_virtual_services(cluster_flags: list[str], namespaces: list[str]) -> dict[str, dict[str, Any]]:
    """The VirtualServices in ``namespaces`` as the cluster stores them now, by name, read with kubectl."""
    found: dict[str, dict[str, Any]] = {}
    for namespace in namespaces:
        try:
            result = subprocess.run(
                ["kubectl", *cluster_flags, "get", "virtualservices.networking.istio.io", "-n", namespace,
                 "-o", "json"], capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
        except FileNotFoundError:
            raise MeshkitError("kubectl is not on PATH: it reads the cluster's VirtualServices for drift") from None
        if result.returncode != 0:
            raise MeshkitError(f"cannot read VirtualServices in namespace {namespace}: {result.stderr.strip()}")
        found.update({item["metadata"]["name"]: item for item in json.loads(result.stdout)["items"]})
    return found
