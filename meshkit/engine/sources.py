"""Where the command line finds stacks: stack files by name, older revisions in git, deployed outputs."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from meshkit.config.engine_yaml import decode_text, read_yaml
from meshkit.config.stack_file import config_key, engine_text, stack_file, stack_text
from meshkit.engine.refresh_scope import ObjectRef
from meshkit.errors import ConfigError, Finding, MeshkitError
from meshkit.rollout.summary import OUTPUTS_FIX, OUTPUTS_OUTCOME, summary_from_outputs

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
        reading = read_yaml(decode_text((root / "Pulumi.yaml").read_bytes()), carried_under=None)
    except (OSError, ValueError) as error:
        raise MeshkitError(f"{root / 'Pulumi.yaml'}: cannot read the project's name ({error})") from None
    if reading.problems:
        raise MeshkitError(f"{root / 'Pulumi.yaml'}: cannot read the project's name ({reading.problems[0].message})")
    document = reading.document
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
    return stack_or_path, as_seen_from(cwd, stack_file(stack_or_path, project_root(cwd.resolve())))


def as_seen_from(cwd: Path, path: Path) -> Path:
    """``path`` as messages show it to a user standing in ``cwd``: relative to it when below it."""
    here = cwd.resolve()
    return path.relative_to(here) if path.is_relative_to(here) else path


def _run(
    command: list[str], missing: str, timeout: float, cwd: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool meshkit reads from; a missing tool (``missing`` says which) or directory, or a hang, is a
    meshkit error. Output stays bytes: a tool's messages need not be UTF-8."""
    if cwd is not None and not cwd.is_dir():
        raise MeshkitError(f"{cwd}: no such directory, so {command[0]} cannot run there")
    # Inside the program, the engine's config is in this environment; a tool needs none of it, and a large
    # one would not fit in a new process's environment (see toolchain/language_host.py).
    env = {key: value for key, value in os.environ.items() if key not in ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS")}
    try:
        return subprocess.run(command, cwd=cwd, env=env, input=stdin, capture_output=True, check=False, timeout=timeout)
    except FileNotFoundError:
        raise MeshkitError(missing) from None
    except subprocess.TimeoutExpired:
        raise MeshkitError(f"`{' '.join(command[:3])}` did not answer within {timeout:g} s") from None


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").strip()


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    missing = "git is not on PATH: `meshkit plan` finds the revision to compare with through it (or give --base-file)"
    return _run(["git", *args], missing, 60, cwd)


def merge_base(path: Path) -> str:
    """The commit where the current branch left the main branch: what a pull request is reviewed against."""
    directory = path.resolve().parent
    for branch in MAIN_BRANCHES:
        result = _git(["merge-base", "HEAD", branch], directory)
        if result.returncode == 0:
            return _text(result.stdout)
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
    return stack_text(shown.stdout, f"{path} at {ref[:12]}") if shown.returncode == 0 else None


def last_update_succeeded(stack: str, cwd: Path) -> bool:
    """Whether the stack's last update ended well (False when there is none, or it cannot be told)."""
    result = _run(
        ["pulumi", "stack", "history", "--json", "--page-size", "1", "--stack", stack],
        "the pulumi CLI is not on PATH (run `make bootstrap`, then use .venv/bin)",
        120,
        cwd,
    )
    if result.returncode != 0:
        return False
    try:
        history = json.loads(result.stdout or b"[]")
    except ValueError:
        return False
    return bool(history) and isinstance(history[0], dict) and history[0].get("result") == "succeeded"


def stack_outputs(stack: str) -> Any:
    """The outputs of the stack's last deployment as JSON (``{}`` before the first), read with the Pulumi
    CLI so that the same backend and credentials apply as for ``pulumi up``."""
    result = _run(
        ["pulumi", "stack", "output", "--json", "--stack", stack],
        "the pulumi CLI is not on PATH (run `make bootstrap`, then use .venv/bin)",
        120,
    )
    if result.returncode != 0:
        raise MeshkitError(
            f"cannot read what stack {stack!r} last deployed, so the rollout checks cannot run: "
            f"{_text(result.stderr) or _text(result.stdout)}"
        )
    try:
        return json.loads(decode_text(result.stdout or b"{}"))
    except (ValueError, RecursionError) as err:
        raise MeshkitError(f"outputs of stack {stack!r} (pulumi stack output --json): not JSON ({err})") from None


def last_deployed_outputs(stack: str) -> dict[str, Any]:
    """The outputs of the stack's last deployment as a stack summary (MK008 for any other shape)."""
    return summary_from_outputs(stack_outputs(stack), f"outputs of stack {stack!r} (pulumi stack output --json)")


def stack_export(stack: str) -> Any:
    """The stack's deployed state (``pulumi stack export``: every resource's inputs and outputs, secrets
    encrypted), read with the Pulumi CLI so that the same backend and credentials apply as for ``up``."""
    result = _run(
        ["pulumi", "stack", "export", "--stack", stack],
        "the pulumi CLI is not on PATH (run `make bootstrap`, then use .venv/bin)",
        300,
    )
    if result.returncode != 0:
        raise MeshkitError(
            f"cannot read the deployed state of stack {stack!r}: {_text(result.stderr) or _text(result.stdout)}"
        )
    return read_export(result.stdout, f"the state of stack {stack!r} (pulumi stack export)")


def read_export(data: bytes, source: str) -> Any:
    """A ``pulumi stack export`` document from its bytes (its shape is checked by the reader)."""
    try:
        return json.loads(decode_text(data))
    except RecursionError:
        raise MeshkitError(f"{source}: not a `pulumi stack export` (JSON nested too deeply)") from None
    except ValueError as error:
        raise MeshkitError(f"{source}: not a `pulumi stack export` (not JSON: {error})") from None


def _outputs(data: bytes, source: str) -> dict[str, Any]:
    def refused(message: str) -> ConfigError:
        return ConfigError([Finding("(file)", "MK008", message, OUTPUTS_FIX)], source, outcome=OUTPUTS_OUTCOME)

    try:
        outputs = json.loads(decode_text(data))
    except RecursionError:
        raise refused("not stack outputs: JSON nested too deeply") from None
    except ValueError as err:  # not UTF-8 or UTF-16 text, or not JSON
        raise refused(f"not stack outputs: {err}") from None
    return summary_from_outputs(outputs, source)


def read_outputs_file(path: Path) -> dict[str, Any]:
    """Deployed outputs saved with ``pulumi stack output --json > FILE``, as a stack summary (MK008 when
    the file is missing, not JSON, or not of the shape the program exports)."""
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        if path.exists() and not path.is_file():
            raise OSError(0, "not a regular file")
        data = path.read_bytes()
    except OSError as err:
        reason = "file not found" if isinstance(err, FileNotFoundError) else err.strerror or str(err)
        raise ConfigError(
            [Finding("(file)", "MK008", f"cannot read stack outputs: {reason}", OUTPUTS_FIX)],
            str(path),
            outcome=OUTPUTS_OUTCOME,
        ) from None
    return _outputs(data, str(path))


def _plain_config(path: Path) -> dict[str | None, str]:
    """A stack file's plain config values as the provider gets them: keys named as the engine names them,
    values as text ({} for a file the stack checks report as unreadable)."""
    try:
        document = read_yaml(decode_text(path.read_bytes())).document
    except (OSError, ValueError):
        return {}
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        return {}
    return {config_key(k): engine_text(v) for k, v in config.items() if not isinstance(v, dict | list)}


def cluster_config(path: Path) -> dict[str, str | None]:
    """The cluster a stack file names, as :func:`meshkit.pulumi.program.cluster_settings` reads it in the engine."""
    values = _plain_config(path)
    return {"context": values.get("kubernetes:context"), "kubeconfig": values.get("kubernetes:kubeconfig")}


def stack_cluster(path: Path) -> list[str]:
    """The kubectl flags that reach the cluster a stack file names (``kubernetes:kubeconfig`` or
    ``kubernetes:context``); empty for a stack that renders manifests instead."""
    values = _plain_config(path)
    flags = []
    if values.get("kubernetes:kubeconfig"):
        kubeconfig = values["kubernetes:kubeconfig"]
        # A path (relative to the project, as the provider reads it) or the kubeconfig's contents.
        if "\n" not in kubeconfig:
            flags += ["--kubeconfig", str(project_root(path.resolve().parent) / kubeconfig)]
    if values.get("kubernetes:context"):
        flags += ["--context", values["kubernetes:context"]]
    return flags


def live_virtual_services(cluster_flags: list[str], namespaces: list[str]) -> dict[str, dict[str, Any]]:
    """The VirtualServices in ``namespaces`` as the cluster stores them now, by name, read with kubectl."""
    found: dict[str, dict[str, Any]] = {}
    for namespace in namespaces:
        command = [
            "kubectl",
            *cluster_flags,
            "get",
            "virtualservices.networking.istio.io",
            "-n",
            namespace,
            "-o",
            "json",
        ]
        result = _run(command, "kubectl is not on PATH: it reads the cluster's VirtualServices for drift", 60)
        if result.returncode != 0:
            raise MeshkitError(f"cannot read VirtualServices in namespace {namespace}: {_text(result.stderr)}")
        try:
            found.update({item["metadata"]["name"]: item for item in json.loads(result.stdout)["items"]})
        except (ValueError, KeyError, TypeError) as err:
            raise MeshkitError(f"kubectl printed no VirtualService list for namespace {namespace} ({err!r})") from None
    return found


def live_objects(cluster_flags: list[str], refs: Iterable[ObjectRef]) -> dict[ObjectRef, dict[str, Any]]:
    """The objects of the kinds and namespaces of ``refs`` as the cluster stores them now (one kubectl list
    per namespace, run side by side), by where they are; objects the cluster does not hold are absent."""
    by_namespace: dict[str, set[str]] = {}
    for ref in refs:
        by_namespace.setdefault(ref.namespace, set()).add(ref.kubectl_type)
    commands = {
        namespace: [
            "kubectl", *cluster_flags, "get", ",".join(sorted(types)), "-o", "json",
            *(["-n", namespace] if namespace else []),
        ]
        for namespace, types in by_namespace.items()
    }  # fmt: skip
    missing = "kubectl is not on PATH: it lists the stack's objects to tell which changed since the last update"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(commands, pool.map(lambda c: _run(c, missing, 120), commands.values()), strict=True))
    found: dict[ObjectRef, dict[str, Any]] = {}
    for namespace, result in results.items():
        where = f"namespace {namespace}" if namespace else "the cluster-wide kinds"
        if result.returncode != 0:
            raise MeshkitError(f"cannot list the stack's objects in {where}: {_text(result.stderr)}")
        try:
            items = json.loads(result.stdout)["items"]
            for item in items:
                metadata = item["metadata"]
                ref = ObjectRef(item["apiVersion"], item["kind"], metadata.get("namespace") or "", metadata["name"])
                found[ref] = item
        except (ValueError, KeyError, TypeError) as err:
            raise MeshkitError(f"kubectl printed no object list for {where} ({err!r})") from None
    return found


def server_dry_run(cluster_flags: list[str], manifests: list[dict[str, Any]]) -> tuple[bool, str]:
    """Apply ``manifests`` as a server-side dry run: the API server validates them and runs its admission
    webhooks (Istio's validation among them), and writes nothing. Whether all were accepted, and kubectl's
    report."""
    command = [
        "kubectl", *cluster_flags, "apply", "--server-side", "--dry-run=server", "--field-manager=meshkit-preview",
        # The objects are the provider's (its field manager owns their fields): a dry run must not stop at
        # that, only at what the API server refuses.
        "--force-conflicts", "-f", "-",
    ]  # fmt: skip
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}).encode()
    missing = "kubectl is not on PATH: it asks the API server to dry-run the objects a step changes"
    result = _run(command, missing, 300, stdin=document)
    return result.returncode == 0, _text(result.stdout + b"\n" + result.stderr)
