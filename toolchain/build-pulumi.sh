#!/usr/bin/env bash
# Builds the Pulumi CLI and the Kubernetes provider from their Go modules, at the versions pinned in
# toolchain/versions.env, into a cache directory outside the repository keyed by those versions.
#
#   toolchain/build-pulumi.sh            # prints the bin directory on its last line
#
# A second run with the same versions finds the cache and returns in well under a second.
# Why build at all: the Python packages on the package index carry the SDKs only; the CLI and provider
# binaries are normally downloaded from release servers, which this kind of site cannot reach. The Go
# module proxy (or a mirror of it) is enough to build them.
set -euo pipefail

log_tag=toolchain
# shellcheck source=toolchain/build-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-lib.sh"

key="pulumi-${PULUMI_VERSION}_kubernetes-${PULUMI_KUBERNETES_VERSION}-${PULUMI_KUBERNETES_PROVIDER_PSEUDO##*-}"
prefix="$cache_root/$key"
bin="$prefix/bin"
binaries=(pulumi pulumi-resource-kubernetes pulumi-language-python-exec)

exit_if_built "$bin"
require go "Go is not installed. Install Go >= 1.25 (Debian: apt-get install golang) or put a pulumi CLI and" \
  "pulumi-resource-kubernetes ${PULUMI_KUBERNETES_VERSION} on PATH, then run this again."

mkdir -p "$bin" "$prefix/src"
# Some github.com/pulumi modules (the provider's pseudo-version, a few tags) are missing from the checksum
# database the mirror here serves. Their hashes are pinned instead by the go.sum files committed beside
# this script (go.sum.cli, go.sum.provider), which every build starts from.
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/pulumi"
export GOFLAGS="-mod=mod"

build_cli() {
  local src="$prefix/src/cli"
  mkdir -p "$src"
  # pkg/go.mod replaces sdk/v3 with a relative path, so `go install pkg@version` is refused; a wrapper
  # module that requires pkg and sdk at the same version (and repeats the non-local replace) builds it.
  cat >"$src/go.mod" <<EOF
module meshkit.local/pulumi-cli

go 1.25

require (
	github.com/pulumi/pulumi/pkg/v3 v${PULUMI_VERSION}
	github.com/pulumi/pulumi/sdk/v3 v${PULUMI_VERSION}
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
EOF
  cp "$here/go.sum.cli" "$src/go.sum" 2>/dev/null || true
  cat >"$src/tools.go" <<'EOF'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
EOF
  (
    cd "$src"
    say "resolving CLI modules (pulumi ${PULUMI_VERSION})"
    go mod tidy -e >/dev/null 2>&1 || true
    go get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v${PULUMI_VERSION}"
    say "compiling the pulumi CLI: the first build takes 10-25 minutes on 2 cores"
    go build -v -trimpath -o "$bin/pulumi" \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}" \
      github.com/pulumi/pulumi/pkg/v3/cmd/pulumi 2>&1 | progress cli
    test -x "$bin/pulumi"
  )
  # The exec script that runs a Python program under the engine ships in the sdk/v3 module.
  local sdk_dir
  sdk_dir=$(cd "$src" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
}

build_provider() {
  local src="$prefix/src/provider"
  local mod=github.com/pulumi/pulumi-kubernetes/provider/v4
  mkdir -p "$src"
  cat >"$src/go.mod" <<EOF
module meshkit.local/pulumi-resource-kubernetes

go 1.25

require (
	${mod} ${PULUMI_KUBERNETES_PROVIDER_PSEUDO}
	github.com/pulumi/pulumi-kubernetes/sdk/v4 ${PULUMI_KUBERNETES_SDK_GO}
)
EOF
  cp "$here/go.sum.provider" "$src/go.sum" 2>/dev/null || true
  (
    cd "$src"
    say "resolving provider modules (pulumi-kubernetes ${PULUMI_KUBERNETES_VERSION})"
    go mod download "${mod}@${PULUMI_KUBERNETES_PROVIDER_PSEUDO}"
    local mod_dir="$(go env GOMODCACHE)/${mod}@${PULUMI_KUBERNETES_PROVIDER_PSEUDO}/cmd/pulumi-resource-kubernetes"
    # main.go embeds schema-embed.json and terraform-mapping-embed.json, which upstream makes with
    # `go generate` (schema.json with its version set) and does not publish: derive them here.
    cp "$mod_dir/main.go" ./main.go
    chmod 644 main.go
    python3 - "$mod_dir" "$PULUMI_KUBERNETES_VERSION" <<'PY'
import json, sys
src, version = sys.argv[1], sys.argv[2]
schema = json.load(open(f"{src}/schema.json"))
schema["version"] = version
json.dump(schema, open("schema-embed.json", "w"), separators=(",", ":"))
mapping = json.load(open(f"{src}/terraform-mapping.json"))
json.dump(mapping, open("terraform-mapping-embed.json", "w"), separators=(",", ":"))
PY
    go mod tidy >/dev/null
    say "compiling pulumi-resource-kubernetes: the first build takes 5-15 minutes on 2 cores"
    go build -v -trimpath -o "$bin/pulumi-resource-kubernetes" \
      -ldflags "-s -w -X ${mod}/pkg/version.Version=${PULUMI_KUBERNETES_VERSION}" . 2>&1 | progress provider
    test -x "$bin/pulumi-resource-kubernetes"
  )
}

[[ -x "$bin/pulumi" && -x "$bin/pulumi-language-python-exec" ]] || build_cli
[[ -x "$bin/pulumi-resource-kubernetes" ]] || build_provider
exit_built
