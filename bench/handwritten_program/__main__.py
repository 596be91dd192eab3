"""bench/handwritten.py as a real Pulumi program: what a team writes without meshkit, for the same stack.

``bench/engine_compare.py`` copies this file and ``Pulumi.yaml`` into a temporary project, with a copy of
``bench/handwritten.py`` in a ``bench`` package beside them and the repository's virtualenv as ``.venv``.
The program reads the same ``meshkit:`` keys of the same stack file as meshkit's program, and registers
every object with one explicit provider: the cluster of ``kubernetes:kubeconfig`` (``bench/live.py``), else
a render-mode one writing to ``rendered/<stack>/``, as meshkit's program does when the stack names no
cluster (``meshkit/pulumi/program.py``: ``kubernetes_provider``, ``render_directory``).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from bench import handwritten


class WithProvider:
    """A module of ``pulumi_kubernetes`` whose resource classes create their objects with ``opts``.

    bench/handwritten.py registers with the default provider (the mock benchmark has no other); given this
    in place of its ``k8s`` module, every object it registers goes through one explicit provider instead,
    as a hand-written program that renders would pass ``opts=pulumi.ResourceOptions(provider=...)``.
    """

    def __init__(self, module: ModuleType, opts: pulumi.ResourceOptions) -> None:
        self._module = module
        self._opts = opts

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if isinstance(value, ModuleType):
            return WithProvider(value, self._opts)
        if isinstance(value, type) and issubclass(value, pulumi.CustomResource):
            return functools.partial(value, opts=self._opts)
        return value


def main() -> None:
    config = pulumi.Config("meshkit")
    stack = {"namespaces": config.require_object("namespaces"), "services": config.require_object("services")}
    # A cluster when the stack names one (bench/live.py); else, as meshkit/pulumi/program.py's render_directory,
    # relative, so that the state does not depend on the checkout.
    kubeconfig = pulumi.Config("kubernetes").get("kubeconfig")
    provider = (
        k8s.Provider("k8s", kubeconfig=kubeconfig)
        if kubeconfig
        else k8s.Provider("k8s", render_yaml_to_directory=f"rendered/{pulumi.get_stack()}")
    )
    handwritten.k8s = WithProvider(k8s, pulumi.ResourceOptions(provider=provider))  # type: ignore[attr-defined,assignment]
    handwritten.register(stack)


main()
