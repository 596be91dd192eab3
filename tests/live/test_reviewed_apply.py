"""Reviewed = applied against the live control plane: a hand edit of a route between `make review` and
`make apply` is seen by apply's refresh, and the reviewed plan is refused instead of applied over it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from toolchain.cluster import LocalCluster

from .deploy import VIRTUAL_SERVICE, new_live_stack, routes, scenario_in
from .kube import Kube, collection_path

pytestmark = pytest.mark.live


def test_apply_after_a_kubectl_edit_of_the_route_is_refused(cluster: LocalCluster, kube: Kube, tmp_path: Path) -> None:
    namespace = "reviewed"
    stack = new_live_stack(tmp_path, cluster)

    def use(step: str) -> None:
        """The step, with a Pulumi secret in a Kubernetes Secret: every refresh re-encrypts it in the state,
        which must not count as a move."""
        raw = scenario_in(step, namespace)
        raw["services"]["nginx"]["versions"]["v2"]["env"] = {"DB_PASSWORD": {"secret": "dbPassword"}}
        raw["secrets"] = {"dbPassword": "replaced by the secret below"}
        stack.use(raw)
        stack.project.pulumi("config", "set", "--secret", "--path", "meshkit:secrets.dbPassword", "s3cr3t")

    use("A3")
    stack.up()
    use("A4")  # the pull request: v1 70 → 20, v2 30 → 80
    kubectl_dir = Path(str(cluster.state()["bin"]))
    # kubectl on PATH: `meshkit plan --base deployed` reads the routes with it.
    env = {**stack.project.env, "PATH": f"{kubectl_dir}:{stack.project.env['PATH']}"}
    review = stack.project.make("review", env=env)
    assert review.returncode == 0, review.stdout + review.stderr
    reviewed = stack.project.root / "review" / "live"
    assert "[secret]" in (reviewed / "reviewed-state.json").read_text()
    assert not any("s3cr3t" in path.read_text() for path in reviewed.iterdir()), "no secret in the CI artifact"

    # Someone moves the weights by hand, with `kubectl edit` (its editor a sed script: 70/30 → 50/50).
    editor = "sed -i -e /weight:/s/[37]0$/50/"
    result = subprocess.run(
        [str(kubectl_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "edit",
         "virtualservice", "nginx"],
        env={**os.environ, "KUBE_EDITOR": editor}, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = f"{collection_path(*VIRTUAL_SERVICE, namespace)}/nginx"

    def weights() -> list[tuple[str, int]]:
        stored = kube.get(path)
        assert stored is not None
        return routes(stored)

    assert weights() == [("v1", 50), ("v2", 50)]

    offset = kube.audit_offset()
    applied = stack.project.make("apply", env=env)
    assert applied.returncode != 0, applied.stdout
    # The hand edit, and nothing else: no status, resourceVersion or secret ciphertext that a refresh rewrote.
    assert "moved since the review" in applied.stderr and "1 object(s):" in applied.stderr, applied.stderr
    assert f"VirtualService {namespace}/nginx: changed: spec.http[0].route[0].weight 70 → 50" in applied.stderr
    assert "re-plan with `make review STACK=live`" in applied.stderr
    assert "pulumi up" not in applied.stdout
    # Nothing deployed: the API server saw no write (apply's refresh only reads), the hand edit stands.
    assert kube.audit_writes(offset) == []
    assert weights() == [("v1", 50), ("v2", 50)]
    # No `pulumi destroy`: the namespace is this test's alone, and the session's cluster is deleted at its end.
