"""``meshkit step``: the next rollout step as an edit of the stack file, comments and layout kept.

Computing the new weights is pure (:func:`assign_weights`, :func:`promote`, :func:`take_over`); the edit
goes through ruamel.yaml's round-trip mode so that a reviewer's diff shows the changed values and
nothing else. Whether the step is safe is decided by the same checks ``pulumi up`` runs, with the file's
current content standing in for the deployed state (:func:`step_stack_file`).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from .analysis import errors_only
from .config import PROJECT, config_key, parse_stack_file_text
from .errors import ConfigError, Finding, MeshkitError
from .models import ServiceSpec, StackConfig
from .rollout import PREVIOUS_WEIGHTS, check_rollout, stack_summary


class StepError(MeshkitError):
    """A requested step that cannot be written: the reason says what to do instead."""


# --- the new weights --------------------------------------------------------------------------------


def _check_versions(svc: ServiceSpec, service: str, versions: list[str]) -> None:
    unknown = [v for v in versions if v not in svc.versions]
    if unknown:
        raise StepError(
            f"service {service!r} has no version {', '.join(map(repr, unknown))}; declared: {', '.join(svc.versions)}"
        )


def assign_weights(svc: ServiceSpec, service: str, assignments: Mapping[str, int]) -> dict[str, int]:
    """Set some versions' weights; the remainder goes to the one other version that had traffic (or the
    one other version there is), so ``v2=80`` on a v1/v2 split means v1 gets 20."""
    _check_versions(svc, service, list(assignments))
    return _assign(svc.default_weights(), service, assignments)


def _assign(current: Mapping[str, int], service: str, assignments: Mapping[str, int]) -> dict[str, int]:
    """:func:`assign_weights` from the current weights of every version (0 for one without traffic)."""
    bad = {v: w for v, w in assignments.items() if not 0 <= w <= 100}
    if bad:
        raise StepError(f"weights must be between 0 and 100, got {bad}")
    weights = {**current, **assignments}
    if sum(weights.values()) != 100:
        others = [v for v in current if v not in assignments]
        live = [v for v in others if weights[v] > 0]
        taker = live[0] if len(live) == 1 else others[0] if len(others) == 1 else None
        remainder = 100 - sum(w for v, w in weights.items() if v != taker)
        if taker is None or remainder < 0:
            shown = ", ".join(f"{v}={w}" for v, w in weights.items())
            raise StepError(
                f"the weights of {service!r} would be {shown}, which does not sum to 100; "
                "give the weight of each version with traffic, e.g. " + " ".join(f"{v}={w}" for v, w in current.items())
            )
        weights[taker] = remainder
    return weights


def promote(svc: ServiceSpec, service: str) -> dict[str, int]:
    """The next of the service's ``traffic.steps`` for its newest version (the canary)."""
    steps = svc.traffic.steps
    if not steps:
        raise StepError(
            f"service {service!r} has no step list to promote along; "
            f"add services.{service}.traffic.steps, e.g. [10, 30, 50, 100], or give the weights"
        )
    canary = list(svc.versions)[-1]
    current = svc.default_weights()[canary]
    following = [s for s in steps if s > current]
    if not following:
        raise StepError(
            f"{canary!r}, the newest version of {service!r}, already takes {current}%: the last step; "
            "retire the old versions with --retire"
        )
    return assign_weights(svc, service, {canary: following[0]})


def take_over(svc: ServiceSpec, service: str, version: str) -> dict[str, int]:
    """All traffic to ``version``, every other version at 0 (still deployed, ready to roll back)."""
    _check_versions(svc, service, [version])
    return {v: 100 if v == version else 0 for v in svc.versions}


NOT_WRITTEN = "the step was not written"


def _shown(weights: Mapping[str, int]) -> str:
    return ", ".join(f"{version}={weight}" for version, weight in weights.items())


def rollback_target(
    svc: ServiceSpec, service: str, deployed: Mapping[str, Any], label: str, source: str
) -> dict[str, int]:
    """The weights ``service`` had before its last deployed weight change (``previousWeights`` in the
    ``deployed`` outputs, which ``label`` names: "the outputs of stack 'prod'"), over the versions the
    file declares now (0 for the others). Refused with MK505 when there is nothing to roll back to, and
    with MK506 when a version the rollback would send traffic to is no longer declared or has no
    replicas."""
    where = f"services.{service}.traffic.weights"
    services = deployed.get("services") or {}
    last = services.get(service)
    if last is None:
        recorded = "not among their services" if services else "they hold no services: no deployment yet"
        raise ConfigError(
            [Finding(where, "MK505", f"no deployment of {service!r} is recorded in {label} ({recorded}), so there "
                     "are no earlier weights to roll back to",
                     "--rollback undoes a deployed weight change: deploy first (`make up`), or give the weights")],
            source, outcome=NOT_WRITTEN,
        )  # fmt: skip
    previous = last.get(PREVIOUS_WEIGHTS)
    if previous is None:
        raise ConfigError(
            [Finding(where, "MK505", f"{label} record no earlier weights of {service!r}: its weights "
                     f"({_shown(last.get('weights') or {})}) have not changed since its first deployment (or the "
                     "outputs were written before meshkit recorded `previousWeights`), so there is nothing to roll "
                     "back to",
                     f"give the weights you want, e.g. `meshkit step {source} {service} VERSION=WEIGHT`")],
            source, outcome=NOT_WRITTEN,
        )  # fmt: skip
    deployed_versions = last.get("versions") or {}
    findings = []
    for version, weight in previous.items():
        if not weight:
            continue  # a version without traffic then need not exist now
        if version not in svc.versions:
            image = (deployed_versions.get(version) or {}).get("image", "IMAGE")
            findings.append(Finding(
                f"services.{service}.versions", "MK506",
                f"the rollback would send {weight}% to version {version!r}, which the stack file no longer declares",
                f"re-add it first, at 0%: `meshkit step {source} {service} --add {version} --image {image}` "
                "(with the image, replicas and settings it had: `git log -p` on the stack file shows them), then "
                "run --rollback again",
                obj=f"DestinationRule {service}.{svc.namespace}",
            ))  # fmt: skip
        elif svc.versions[version].replicas == 0:
            replicas = (deployed_versions.get(version) or {}).get("replicas") or 1
            findings.append(Finding(
                f"services.{service}.versions.{version}.replicas", "MK506",
                f"the rollback would send {weight}% to version {version!r}, which has replicas: 0 (on its way out)",
                f"give {version!r} its replicas back first (e.g. replicas: {replicas}), then run --rollback again",
                obj=f"Deployment {service}-{version}.{svc.namespace}",
            ))  # fmt: skip
    if findings:
        raise ConfigError(findings, source, outcome=NOT_WRITTEN)
    return {version: int(previous.get(version, 0)) for version in svc.versions}


# --- the comment-preserving edit --------------------------------------------------------------------


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, key order, quotes and flow style survive
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def _mapping(node: Any, where: str) -> CommentedMap:
    if not isinstance(node, CommentedMap):
        raise StepError(f"{where} is not a mapping written out in the file, which `meshkit step` can edit")
    return node


def edit_services(text: str, edit: Callable[[CommentedMap], None]) -> str:
    """Apply ``edit`` to the ``meshkit:services`` mapping of a stack file's text (which the config checks
    have read before: the edit refuses only what its round-trip reading sees differently)."""
    yaml = _yaml()
    try:
        with warnings.catch_warnings():  # e.g. a reused anchor: the config reading has accepted the file
            warnings.simplefilter("ignore")
            document = yaml.load(text)
        config = _mapping(document.get("config") if isinstance(document, CommentedMap) else None, "config")
        # The key as written: `services` and `meshkit:config:services` name meshkit:services too.
        key = next((k for k in config if isinstance(k, str) and config_key(k) == f"{PROJECT}:services"), None)
        edit(_mapping(config.get(key), f"config.{PROJECT}:services"))
        out = io.StringIO()
        yaml.dump(document, out)
    except YAMLError as err:
        raise StepError(f"cannot edit the file while keeping its layout: {err}") from None
    return out.getvalue()


def write_weights(services: CommentedMap, service: str, weights: Mapping[str, int]) -> None:
    """Update weights in place, keeping the existing keys' order; add a version only when it gets traffic."""
    node = _mapping(services.get(service), f"services.{service}")
    if node.get("traffic") is None:
        node["traffic"] = CommentedMap()
    traffic = _mapping(node["traffic"], f"services.{service}.traffic")
    if traffic.get("weights") is None:
        traffic.insert(0, "weights", CommentedMap())
    current = _mapping(traffic["weights"], f"services.{service}.traffic.weights")
    for version, weight in weights.items():
        if version in current or weight:
            current[version] = weight


def insert_version(services: CommentedMap, service: str, version: str, spec: Mapping[str, Any]) -> None:
    """Add ``version`` last under the service's versions (the newest version is the one declared last)."""
    node = _mapping(services.get(service), f"services.{service}")
    versions = _mapping(node.get("versions"), f"services.{service}.versions")
    versions[version] = CommentedMap(spec)


def drop_version(services: CommentedMap, service: str, version: str) -> None:
    node = _mapping(services.get(service), f"services.{service}")
    versions = _mapping(node.get("versions"), f"services.{service}.versions")
    if version not in versions:
        raise StepError(f"services.{service}.versions.{version} is not written out in the file (a merge?)")
    del versions[version]
    traffic = node.get("traffic")
    weights = traffic.get("weights") if isinstance(traffic, CommentedMap) else None
    if isinstance(weights, CommentedMap) and version in weights:
        del weights[version]


# --- the whole step ----------------------------------------------------------------------------------


def _service(text: str, source: str, service: str) -> tuple[StackConfig, ServiceSpec]:
    # In the file's order, not the engine's: the newest version is the one declared last.
    stack = parse_stack_file_text(text, source, declaration_order=True)
    if service not in stack.services:
        raise StepError(f"{source}: no service {service!r}; declared: {', '.join(stack.services)}")
    return stack, stack.services[service]


@dataclass(frozen=True)
class Step:
    """A checked step: the new text of the stack file and both stack summaries, for the plan shown."""

    text: str
    before: dict[str, Any]
    after: dict[str, Any]
    note: str = ""
    """What the step did, said in a sentence (``--rollback``: to which weights, from which deployment)."""


def _checked(before: StackConfig, new_text: str, source: str, deployed: Mapping[str, Any] | None = None) -> Step:
    """The step to ``new_text`` if it passes every check ``pulumi up`` runs, against the ``deployed``
    outputs when the step read them, else with the current file standing in for the deployed state; so a
    step the engine would refuse is never written."""
    try:
        after = parse_stack_file_text(new_text, source, declaration_order=True)
    except ConfigError as error:  # e.g. an invalid or unpinned image of a version added
        raise ConfigError(error.findings, source, outcome=NOT_WRITTEN) from None
    current = stack_summary(before)
    refused = errors_only(check_rollout(after, current if deployed is None else deployed))
    if refused:
        raise ConfigError(refused, source, outcome=NOT_WRITTEN)
    return Step(new_text, current, stack_summary(after))


def step_weights(text: str, source: str, service: str, compute: Callable[[ServiceSpec], dict[str, int]]) -> Step:
    """The stack file's text with the service's weights set to ``compute(its current spec)``."""
    before, svc = _service(text, source, service)
    weights = compute(svc)
    return _checked(before, edit_services(text, lambda services: write_weights(services, service, weights)), source)


def retire_version(text: str, source: str, service: str, version: str) -> Step:
    """The stack file's text without ``version``: refused while any route still sends it traffic."""
    before, svc = _service(text, source, service)
    _check_versions(svc, service, [version])
    if version in svc.routed_versions():
        share = svc.default_weights().get(version, 0)
        raise StepError(
            f"{version!r} of {service!r} still takes traffic ({share}% by default"
            f"{', and routes or a mirror use it' if share == 0 else ''}): move it away first "
            "(--take-over another version, or set its weight to 0), deploy that step, then retire it"
        )
    return _checked(before, edit_services(text, lambda services: drop_version(services, service, version)), source)


def add_version(text: str, source: str, service: str, version: str, spec: Mapping[str, Any], weight: int = 0) -> Step:
    """The stack file's text with ``version`` (``spec``: image, replicas) added last to the service with
    its first traffic share ``weight``, the remainder going as for ``v2=30`` (a lone version without
    written weights gets them written); one edit, checked as every step is (image, pinning in production,
    maxStep)."""
    before, svc = _service(text, source, service)
    if version in svc.versions:
        raise StepError(
            f"service {service!r} already has a version {version!r}; give the new version another name, "
            f"or step the existing one with `{version}=WEIGHT`"
        )
    current = {**svc.default_weights(), version: 0}
    weights = _assign(current, service, {version: weight})

    def change(services: CommentedMap) -> None:
        insert_version(services, service, version, spec)
        write_weights(services, service, weights)

    return _checked(before, edit_services(text, change), source)


def rollback(text: str, source: str, service: str, deployed: Mapping[str, Any], label: str) -> Step:
    """The stack file's text with the service's weights set back to those before its last deployed weight
    change (:func:`rollback_target`), checked as every step is, against the ``deployed`` outputs (what
    ``pulumi up`` checks it against); the text unchanged, and a note saying so, when the file has those
    weights already."""
    before, svc = _service(text, source, service)
    weights = rollback_target(svc, service, deployed, label, source)
    if weights == svc.default_weights():
        summary = stack_summary(before)
        note = f"{service!r} has the weights it had before its last deployed weight change already ({_shown(weights)})"
        return Step(text, summary, summary, note)
    new_text = edit_services(text, lambda services: write_weights(services, service, weights))
    step = _checked(before, new_text, source, deployed)
    return replace(step, note=f"{service!r} back to its weights before its last deployed weight change, from {label}")
