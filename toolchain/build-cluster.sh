#!/usr/bin/env bash
# Builds a local Kubernetes control plane from Go modules, at the versions pinned in toolchain/versions.env,
# into a cache directory outside the repository keyed by those versions: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, and kwok (simulated nodes and pods, so Deployments
# become Available without a kubelet or a container runtime); and the kubelet, for a real node (with the
# container runtime and CNI plugins of toolchain/build-node.sh).
#
#   toolchain/build-cluster.sh            # prints the bin directory on its last line
#
# A second run with the same versions finds the cache and returns at once; a run after a partial build (or
# after a binary joined the list) compiles only the binaries missing. Module hashes are pinned by the
# go.sum files beside this script (go.sum.kubernetes, go.sum.etcd, go.sum.kwok): a module that resolves to
# other content stops the build with Go's checksum mismatch error.
set -euo pipefail

log_tag=cluster-build
# shellcheck source=toolchain/build-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-lib.sh"

prefix="$cache_root/cluster-kubernetes-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
bin="$prefix/bin"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kwok)

exit_if_built "$bin"
require go "Go is not installed. Install Go >= 1.26 (Debian: apt-get install golang), then run this again."

mkdir -p "$bin" "$prefix/src"
# GOTOOLCHAIN=local: never try to download another Go release when a module asks for a newer one.
export GOFLAGS="-mod=mod" GOTOOLCHAIN=local

# A wrapper module in src/NAME: go.mod from stdin, the pinned go.sum, a tools.go importing the packages.
new_wrapper() {
  local name=$1; shift
  local src="$prefix/src/$name"
  mkdir -p "$src"
  cat >"$src/go.mod"
  cp "$here/go.sum.$name" "$src/go.sum" 2>/dev/null || true
  {
    printf '//go:build tools\n\npackage tools\n\n'
    for pkg in "$@"; do printf 'import _ "%s"\n' "$pkg"; done
  } >"$src/tools.go"
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION src="$prefix/src/kubernetes"
  local minor=${v#*.}; minor=${minor%%.*}
  # All from one wrapper module (one go.sum.kubernetes), stamped alike.
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)
  local mod_file staging go_line
  mod_file=$(go mod download -json "k8s.io/kubernetes@v$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  # k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/client-go, ...) with local paths,
  # so `go install` refuses it: the wrapper points each one at its published v0.N.M instead.
  staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$mod_file")
  go_line=$(grep -m1 '^go ' "$mod_file")
  {
    printf 'module meshkit.local/kubernetes\n\n%s\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$go_line" "$v"
    for m in $staging; do printf '\t%s => %s v0.%s\n' "$m" "$m" "${v#1.}"; done
    printf ')\n'
  } | new_wrapper kubernetes "${cmds[@]/#/k8s.io/kubernetes/cmd/}"
  (
    cd "$src"
    say "resolving Kubernetes v$v modules"
    # Always with the version: a bare `go get` moves k8s.io/kubernetes to the newest release.
    go get "k8s.io/kubernetes@v$v"
    go mod tidy
    # Stamp the version, or the API server tells clients (the Pulumi provider among them) v0.0.0-master.
    local pkg=k8s.io/component-base/version
    local ldflags="-s -w -X $pkg.gitVersion=v$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    for cmd in "${cmds[@]}"; do
      [[ -x "$bin/$cmd" ]] && continue
      say "compiling $cmd (kube-apiserver takes about 4 minutes on 2 cores, the others 1 or less)"
      go build -v -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" 2>&1 | progress "$cmd"
      mv "$bin/$cmd.tmp" "$bin/$cmd"
    done
  )
}

build_etcd() {
  local v=$ETCD_VERSION src="$prefix/src/etcd"
  # go.etcd.io/etcd/server/v3 replaces its sibling modules with relative paths: require them at one version.
  new_wrapper etcd go.etcd.io/etcd/server/v3/etcdmain <<EOF
module meshkit.local/etcd

go 1.25

require (
	go.etcd.io/etcd/api/v3 v$v
	go.etcd.io/etcd/client/pkg/v3 v$v
	go.etcd.io/etcd/client/v3 v$v
	go.etcd.io/etcd/pkg/v3 v$v
	go.etcd.io/etcd/server/v3 v$v
)
EOF
  # etcd's main package is a single call, which the server module exports as etcdmain.Main.
  mkdir -p "$src/cmd/etcd"
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' \
    >"$src/cmd/etcd/main.go"
  (
    cd "$src"
    say "resolving etcd v$v modules"
    go mod tidy
    say "compiling etcd"
    go build -v -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" ./cmd/etcd 2>&1 | progress etcd
    mv "$bin/etcd.tmp" "$bin/etcd"
  )
}

build_kwok() {
  local v=$KWOK_VERSION src="$prefix/src/kwok"
  new_wrapper kwok sigs.k8s.io/kwok/cmd/kwok <<EOF
module meshkit.local/kwok

go 1.25

require sigs.k8s.io/kwok v$v
EOF
  (
    cd "$src"
    say "resolving kwok v$v modules"
    go get "sigs.k8s.io/kwok@v$v"
    go mod tidy
    say "compiling kwok"
    go build -v -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$v" \
      -o "$bin/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok 2>&1 | progress kwok
    mv "$bin/kwok.tmp" "$bin/kwok"
  )
}

[[ -x "$bin/etcd" ]] || build_etcd
[[ -x "$bin/kwok" ]] || build_kwok
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do
  [[ -x "$bin/$b" ]] || { build_kubernetes; break; }
done
exit_built
