#!/usr/bin/env bash
# One command for everything meshkit needs: the virtualenv with the pinned Python packages, then the
# Pulumi CLI, Python language host and Kubernetes provider, all linked into .venv/bin.
#
#   toolchain/bootstrap.sh        (what `make bootstrap` runs; idempotent, seconds when nothing changed)
#
# Pulumi binaries: a compatible `pulumi` + `pulumi-resource-kubernetes` already on PATH are used as they
# are; otherwise toolchain/build-pulumi.sh builds the pinned versions from their Go modules (cached).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=toolchain/versions.env
source toolchain/versions.env
say() { printf '[bootstrap] %s\n' "$*" >&2; }

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
venv="$root/.venv"

# 1. Python packages: the ranges of pyproject.toml, at the exact versions of constraints.txt (the dev tools, and
#    MkDocs for the documentation site that `make test` builds).
stamp="$venv/.meshkit-installed"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [[ ! -x "$venv/bin/python" ]]; then
  say "creating $venv with $($python --version)"
  "$python" -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  say "installing pinned Python packages"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,docs]'
  echo "$want" >"$stamp"
fi

# 2. Pulumi CLI and Kubernetes provider.
on_path_version=$(PATH=${PATH//$venv\/bin:/} command -v pulumi >/dev/null 2>&1 && pulumi version 2>/dev/null || true)
if [[ "$on_path_version" == "v${PULUMI_VERSION}" ]] && command -v pulumi-resource-kubernetes >/dev/null; then
  pulumi_bin=$(dirname "$(command -v pulumi)")
  provider_bin=$(dirname "$(command -v pulumi-resource-kubernetes)")
  sdk_exec=$(command -v pulumi-language-python-exec || true)
  say "using pulumi ${on_path_version} from $pulumi_bin"
else
  [[ -z "$on_path_version" ]] || say "pulumi on PATH is ${on_path_version}, meshkit pins v${PULUMI_VERSION}: building the pinned one"
  built=$(toolchain/build-pulumi.sh | tail -n 1)
  pulumi_bin=$built provider_bin=$built sdk_exec=$built/pulumi-language-python-exec
fi
[[ -n "$sdk_exec" ]] || sdk_exec=$(toolchain/build-pulumi.sh | tail -n 1)/pulumi-language-python-exec

ln -sf "$pulumi_bin/pulumi" "$venv/bin/pulumi"
ln -sf "$provider_bin/pulumi-resource-kubernetes" "$venv/bin/pulumi-resource-kubernetes"
install -m 0755 "$sdk_exec" "$venv/bin/pulumi-language-python-exec"

# 3. The Python language host (see toolchain/language_host.py for why it is ours).
cat >"$venv/bin/pulumi-language-python" <<LAUNCHER
#!/bin/sh
exec "$venv/bin/python" "$root/toolchain/language_host.py" "\$@"
LAUNCHER
chmod 0755 "$venv/bin/pulumi-language-python"

say "ready: $("$venv/bin/pulumi" version), pulumi-resource-kubernetes ${PULUMI_KUBERNETES_VERSION}, Python host in .venv/bin"
