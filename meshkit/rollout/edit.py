"""``meshkit step``: the next rollout step as an edit of the stack file, comments and layout kept.

Computing the new weights is pure (:func:`assign_weights`, :func:`promote`, :func:`take_over`); the edit
splices the new values into the file's text where they are written (:class:`FileEdit`), so that a
reviewer's diff shows the changed values and nothing else, and a value another service shares through an
anchor or a merge is never changed behind its back (MK507). Whether the step is safe is decided by the
same checks ``pulumi up`` runs, with the file's current content standing in for the deployed state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

from meshkit.config.service import ServiceSpec
from meshkit.config.stack import StackConfig
from meshkit.config.stack_file import PROJECT, config_key, config_path, stack_file_keys
from meshkit.config.validation import format_path
from meshkit.errors import ConfigError, Finding, MeshkitError
from meshkit.mesh.checks import errors_only, validate_stack
from meshkit.rollout import splice
from meshkit.rollout.summary import PREVIOUS_WEIGHTS, check_rollout, stack_summary


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


# --- the edit: the changed values' own text, nothing else ------------------------------------------

CHANGED_ELSEWHERE = "MK507"
"""A step that would change a value another path (another service) shares through an anchor or a merge."""
NOT_SPLICED = "MK508"
"""A step that cannot be written by editing the changed values' own text."""

REPORT = "make this change by hand, and report the file to the meshkit maintainers"
"""The fix when the edit read back is not what the step meant: a defect of meshkit's."""

ConfigPath = tuple[str, ...]
"""A path below the ``meshkit:`` keys: ``("services", "nginx", "traffic", "weights")``."""
Path = tuple[str | int, ...]


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _difference(read: Any, meant: Any, path: Path = ()) -> tuple[Path, Any, Any] | None:
    """The first place where what the edited file reads as differs from what the step meant, if any; a
    service's versions count in order (the newest is the one declared last)."""
    if isinstance(read, dict) and isinstance(meant, dict):
        ordered = len(path) == 3 and path[0] == "services" and path[2] == "versions"
        if set(read) != set(meant) or (ordered and list(read) != list(meant)):
            return path, list(read), list(meant)
        return next((d for k in read if (d := _difference(read[k], meant[k], (*path, k)))), None)
    if isinstance(read, list) and isinstance(meant, list) and len(read) == len(meant):
        return next((d for i, (r, m) in enumerate(zip(read, meant, strict=True))
                     if (d := _difference(r, m, (*path, i)))), None)  # fmt: skip
    return None if type(read) is type(meant) and read == meant else (path, read, meant)


class FileEdit:
    """One step's changes to the services of a stack file, made as text edits where the values are written
    (:mod:`meshkit.rollout.splice`): every other character of the file stays as it is, comments, quotes, flow style
    and document markers included. The ``meshkit:`` keys the file must read as afterwards are kept beside
    them, and :meth:`result` checks the edited file against them."""

    def __init__(self, text: str, source: str, keys: dict[str, Any]) -> None:
        self.source = source
        self.keys = keys
        self.intended = dict(keys)
        try:
            self.document = splice.Document(text)
        except (yaml.YAMLError, splice.SpliceError) as error:
            raise self._refused("(file)", f"the file cannot be read for an edit: {error}", REPORT) from None
        config = self.document.chain(("config",))[-1]
        written = next((k for k in self.document.members(config) if config_key(k) == f"{PROJECT}:services"), None)
        if written is None:
            raise self._refused(f"{PROJECT}:services", "the file's services cannot be found for an edit", REPORT)
        self.prefix = ("config", written)

    def _refused(self, where: str, message: str, fix: str, code: str = NOT_SPLICED) -> ConfigError:
        return ConfigError([Finding(where, code, message, fix)], self.source, outcome=NOT_WRITTEN)

    def value(self, *path: str) -> Any:
        """The value at ``path`` with the changes made so far."""
        value: Any = self.intended
        for key in path:
            value = value[key]
        return value

    def _writable(self, path: ConfigPath) -> dict[str, Any]:
        # Copied on the way down: a mapping the file shares (a merge) is one object in the keys read.
        mapping = self.intended
        for key in path:
            mapping[key] = mapping = dict(mapping[key])
        return mapping

    def _nodes(self, path: ConfigPath, change: str) -> list[splice.Node]:
        """The nodes from the file's root to the value at ``path``, refused when another path reaches one
        of them: the change would change that path too."""
        where = format_path(path)
        document_path = (*self.prefix, *path[1:])
        shared = self.document.sharing(document_path)
        if shared is not None:
            raise self._shared(where, change, path[1], shared)
        nodes = self.document.chain(document_path)
        if len(nodes) <= len(document_path):
            raise self._refused(where, f"the step would {change}, but it is not written out in the file", REPORT)
        return nodes

    def _shared(self, where: str, change: str, service: str, shared: splice.Sharing) -> ConfigError:
        # Refused rather than copied: an anchor that services share their weights or versions through
        # says that they move together. Which of them the step should break away is the author's call,
        # and a copy written silently would turn a one-line diff into a new block of config that the next
        # step of the other services would not follow. The fix names both ways out.
        at = config_path(shared.path)
        anchor, alias = (f"&{shared.anchor}", f"*{shared.anchor}") if shared.anchor else ("an anchor", "the alias")
        others = [config_path(p) for p in shared.others] or ["another path"]
        services = sorted({p[2] for p in shared.others if p[:2] == self.prefix and len(p) > 2 and p[2] != service})
        if shared.how == "merge":
            key = shared.path[-1]
            how = f"comes from the merge <<: {alias}"
            alone = (
                f"give {config_path(shared.path[:-1])} its own {key} (write `{key}:` out under it: a mapping's "
                f"own keys take precedence over <<: {alias})"
            )
        elif shared.how == "alias":
            how = f"is the alias {alias}"
            alone = f"write {at} out in full in place of {alias}"
        else:
            how = f"is shared through {anchor}"
            alone = f"give {_listed(others)} {'its' if len(others) == 1 else 'their'} own copy, written out in full"
        plural = len(services) > 1
        moved = f"service{'s' if plural else ''} {_listed([repr(s) for s in services])}" if services else "them"
        message = (
            f"the step would {change}, but {at} {how}: {_listed(others)} {'reads' if len(others) == 1 else 'read'} "
            f"the same value, so the step would change {moved} as well"
        )
        fix = (
            f"to step {service!r} alone, {alone}, then run the step again; to move them all together, edit it "
            f"by hand where {anchor} is written"
        )
        return self._refused(where, message, fix, CHANGED_ELSEWHERE)

    def _spliced(self, where: ConfigPath, change: str, edit: Callable[[], None]) -> None:
        try:
            edit()
        except splice.SpliceError as error:
            raise self._refused(format_path(where), f"the step would {change}, but {error}", error.fix) from None

    def set(self, path: ConfigPath, value: Any) -> None:
        change = f"set it to {value} (from {self.value(*path)})"
        nodes = self._nodes(path, change)
        self._spliced(path, change, lambda: self.document.replace(nodes[-1], value, nodes[-2].flow))
        self._writable(path[:-1])[path[-1]] = value

    def add(self, path: ConfigPath, key: str, value: Any, first: bool = False) -> None:
        """Add ``key: value`` to the mapping at ``path``, last (or first)."""
        change = f"add {key}: {splice.flow_text(value)}"
        nodes = self._nodes(path, change)
        self._spliced(path, change, lambda: self.document.add(nodes, key, value, first))
        self._writable(path)[key] = value

    def delete(self, path: ConfigPath) -> None:
        change = "remove it"
        nodes = self._nodes(path, change)
        self._spliced(path, change, lambda: self.document.delete(nodes[-2], path[-1]))
        del self._writable(path[:-1])[path[-1]]

    def result(self) -> tuple[str, dict[str, Any]]:
        """The edited text and its ``meshkit:`` keys, once read back as the step meant them."""
        try:
            text = self.document.result()
        except splice.SpliceError as error:
            raise self._refused("(file)", f"the step's changes cannot be written together: {error}", REPORT) from None
        if text == self.document.text:
            return text, self.keys
        try:
            keys = stack_file_keys(text, self.source, declaration_order=True)
        except ConfigError as error:
            first = error.findings[0]
            raise self._refused(first.path, f"the edited file would not read: {first.message}", REPORT) from None
        found = _difference(keys, self.intended)
        if found is not None:
            path, read, meant = found
            raise self._refused(format_path(path), f"the edited file would read {read!r} here, not {meant!r}", REPORT)
        return text, keys


def write_weights(edit: FileEdit, service: str, weights: Mapping[str, int]) -> None:
    """Update weights in place, keeping the existing keys' order; add a version only when it gets traffic."""
    path = ("services", service, "traffic")
    traffic = edit.value(*path[:-1]).get("traffic")
    with_traffic = {version: weight for version, weight in weights.items() if weight}
    if traffic is None:
        edit.add(path[:-1], "traffic", {"weights": with_traffic})
    elif traffic.get("weights") is None:
        edit.add(path, "weights", with_traffic, first=True)
    else:
        current = traffic["weights"]
        for version, weight in weights.items():
            if version not in current:
                if weight:
                    edit.add((*path, "weights"), version, weight)
            elif current[version] != weight:
                edit.set((*path, "weights", version), weight)


def insert_version(edit: FileEdit, service: str, version: str, spec: Mapping[str, Any]) -> None:
    """Add ``version`` last under the service's versions (the newest version is the one declared last)."""
    edit.add(("services", service, "versions"), version, dict(spec))


def drop_version(edit: FileEdit, service: str, version: str) -> None:
    edit.delete(("services", service, "versions", version))
    if version in (edit.value("services", service).get("traffic") or {}).get("weights", {}):
        edit.delete(("services", service, "traffic", "weights", version))


# --- the whole step ----------------------------------------------------------------------------------


def _service(text: str, source: str, service: str) -> tuple[dict[str, Any], StackConfig, ServiceSpec]:
    """The stack file's ``meshkit:`` keys, as the engine reads them, their config and the service's."""
    # In the file's order, not the engine's: the newest version is the one declared last.
    keys = stack_file_keys(text, source, declaration_order=True)
    stack = validate_stack(keys, source)
    if service not in stack.services:
        raise StepError(f"{source}: no service {service!r}; declared: {', '.join(stack.services)}")
    return keys, stack, stack.services[service]


@dataclass(frozen=True)
class Step:
    """A checked step: the new text of the stack file and both stack summaries, for the plan shown."""

    text: str
    before: dict[str, Any]
    after: dict[str, Any]
    note: str = ""
    """What the step did, said in a sentence (``--rollback``: to which weights, from which deployment)."""


def _checked(
    text: str,
    source: str,
    keys: dict[str, Any],
    before: StackConfig,
    change: Callable[[FileEdit], None],
    deployed: Mapping[str, Any] | None = None,
) -> Step:
    """The step that ``change`` makes to the file, if it passes every check ``pulumi up`` runs, against the
    ``deployed`` outputs when the step read them, else with the current file standing in for the deployed
    state; so a step the engine would refuse is never written."""
    edit = FileEdit(text, source, keys)
    change(edit)
    new_text, new_keys = edit.result()
    try:
        after = validate_stack(new_keys, source)
    except ConfigError as error:  # e.g. an invalid or unpinned image of a version added
        raise ConfigError(error.findings, source, outcome=NOT_WRITTEN) from None
    current = stack_summary(before)
    refused = errors_only(check_rollout(after, current if deployed is None else deployed))
    if refused:
        raise ConfigError(refused, source, outcome=NOT_WRITTEN)
    return Step(new_text, current, stack_summary(after))


def step_weights(text: str, source: str, service: str, compute: Callable[[ServiceSpec], dict[str, int]]) -> Step:
    """The stack file's text with the service's weights set to ``compute(its current spec)``."""
    keys, before, svc = _service(text, source, service)
    weights = compute(svc)
    return _checked(text, source, keys, before, lambda edit: write_weights(edit, service, weights))


def retire_version(text: str, source: str, service: str, version: str) -> Step:
    """The stack file's text without ``version``: refused while any route still sends it traffic."""
    keys, before, svc = _service(text, source, service)
    _check_versions(svc, service, [version])
    if version in svc.routed_versions():
        share = svc.default_weights().get(version, 0)
        raise StepError(
            f"{version!r} of {service!r} still takes traffic ({share}% by default"
            f"{', and routes or a mirror use it' if share == 0 else ''}): move it away first "
            "(--take-over another version, or set its weight to 0), deploy that step, then retire it"
        )
    return _checked(text, source, keys, before, lambda edit: drop_version(edit, service, version))


def add_version(text: str, source: str, service: str, version: str, spec: Mapping[str, Any], weight: int = 0) -> Step:
    """The stack file's text with ``version`` (``spec``: image, replicas) added last to the service with
    its first traffic share ``weight``, the remainder going as for ``v2=30`` (a lone version without
    written weights gets them written); one edit, checked as every step is (image, pinning in production,
    maxStep)."""
    keys, before, svc = _service(text, source, service)
    if version in svc.versions:
        raise StepError(
            f"service {service!r} already has a version {version!r}; give the new version another name, "
            f"or step the existing one with `{version}=WEIGHT`"
        )
    current = {**svc.default_weights(), version: 0}
    weights = _assign(current, service, {version: weight})

    def change(edit: FileEdit) -> None:
        insert_version(edit, service, version, spec)
        write_weights(edit, service, weights)

    return _checked(text, source, keys, before, change)


def rollback(text: str, source: str, service: str, deployed: Mapping[str, Any], label: str) -> Step:
    """The stack file's text with the service's weights set back to those before its last deployed weight
    change (:func:`rollback_target`), checked as every step is, against the ``deployed`` outputs (what
    ``pulumi up`` checks it against); the text unchanged, and a note saying so, when the file has those
    weights already."""
    keys, before, svc = _service(text, source, service)
    weights = rollback_target(svc, service, deployed, label, source)
    if weights == svc.default_weights():
        summary = stack_summary(before)
        note = f"{service!r} has the weights it had before its last deployed weight change already ({_shown(weights)})"
        return Step(text, summary, summary, note)
    step = _checked(text, source, keys, before, lambda edit: write_weights(edit, service, weights), deployed)
    return replace(step, note=f"{service!r} back to its weights before its last deployed weight change, from {label}")
