#!/usr/bin/env bash
# Builds what a real node of the local cluster runs under the kubelet, from Go modules, at the versions pinned
# in toolchain/versions.env, into a cache directory outside the repository keyed by those versions:
#
# - containerd, its CLI ctr and its runc shim containerd-shim-runc-v2 (Go module
#   github.com/containerd/containerd/v2);
# - runc, the OCI runtime (module github.com/opencontainers/runc), with cgo and libseccomp (Debian's
#   libseccomp-dev: toolchain/system-packages.sh installs it);
# - the CNI plugins bridge, host-local, loopback and portmap (module github.com/containernetworking/plugins).
#
#   toolchain/build-node.sh            # prints the bin directory on its last line
#   toolchain/build-node.sh --cached   # the same if all are built, else exit 1 without building (tests)
#
# A second run with the same versions finds the cache and returns at once; a run after a partial build
# compiles only the binaries missing. Module hashes are pinned by the go.sum files beside this script
# (go.sum.containerd, go.sum.runc, go.sum.cni-plugins): a module that resolves to other content stops the
# build with Go's checksum mismatch error. None of the three modules has replace directives (checked for
# these versions), so each builds from a plain wrapper module that requires it; the wrapper is what lets
# the go.sum files pin every dependency's hash.
set -euo pipefail

log_tag=node-build
# shellcheck source=toolchain/build-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-lib.sh"

prefix="$cache_root/node-containerd-${CONTAINERD_VERSION}_runc-${RUNC_VERSION}_cni-${CNI_PLUGINS_VERSION}"
bin="$prefix/bin"
containerd_mod=github.com/containerd/containerd/v2
runc_mod=github.com/opencontainers/runc
cni_mod=github.com/containernetworking/plugins
containerd_bins=(containerd ctr containerd-shim-runc-v2)
cni_bins=(bridge host-local loopback portmap)
binaries=("${containerd_bins[@]}" runc "${cni_bins[@]}")
declare -A packages=(
  [containerd]=$containerd_mod/cmd/containerd
  [ctr]=$containerd_mod/cmd/ctr
  [containerd-shim-runc-v2]=$containerd_mod/cmd/containerd-shim-runc-v2
  [runc]=$runc_mod
  [bridge]=$cni_mod/plugins/main/bridge
  [host-local]=$cni_mod/plugins/ipam/host-local
  [loopback]=$cni_mod/plugins/main/loopback
  [portmap]=$cni_mod/plugins/meta/portmap
)

exit_if_built "$bin"
exit_if_only_cached "${1:-}" "not built yet: $(missing)(containerd ${CONTAINERD_VERSION}, runc ${RUNC_VERSION}," \
  "CNI plugins ${CNI_PLUGINS_VERSION}): run toolchain/build-node.sh"
require go "Go is not installed. Install Go >= 1.26.8 (Debian: apt-get install golang), then run this again."

mkdir -p "$bin" "$prefix/src"
# GOTOOLCHAIN=local: never try to download another Go release when a module asks for a newer one.
export GOFLAGS="-mod=mod" GOTOOLCHAIN=local

# A wrapper module in src/NAME requiring MODULE@VERSION, with the `go` line of the module's own go.mod (a
# lower one would make `go mod tidy` refuse it), the pinned go.sum.NAME, and a tools.go importing the
# packages of BINARIES; then resolved.
new_wrapper() {
  local name=$1 module=$2 version=$3; shift 3
  local src="$prefix/src/$name" mod_file go_line
  mkdir -p "$src"
  mod_file=$(go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  go_line=$(grep -m1 '^go ' "$mod_file")
  printf 'module meshkit.local/%s\n\n%s\n\nrequire %s %s\n' "$name" "$go_line" "$module" "$version" >"$src/go.mod"
  cp "$here/go.sum.$name" "$src/go.sum" 2>/dev/null || true
  {
    printf '//go:build tools\n\npackage tools\n\n'
    for b in "$@"; do printf 'import _ "%s"\n' "${packages[$b]}"; done
  } >"$src/tools.go"
  (
    cd "$src"
    say "resolving $module $version modules"
    # Always with the version: a bare `go get` moves the module to its newest release.
    go get "$module@$version"
    go mod tidy
  )
}

# compile NAME SRC ARGS...: `go build` of NAME's package in the wrapper module SRC, unless already built.
compile() {
  local b=$1 src=$2; shift 2
  [[ -x "$bin/$b" ]] && return 0
  say "compiling $b"
  (cd "$src" && go build -v -trimpath "$@" -o "$bin/$b.tmp" "${packages[$b]}" 2>&1 | progress "$b")
  mv "$bin/$b.tmp" "$bin/$b"
}

build_containerd() {
  local v=v$CONTAINERD_VERSION src="$prefix/src/containerd"
  new_wrapper containerd "$containerd_mod" "$v" "${containerd_bins[@]}"
  # The stamps and tags of containerd's Makefile (its release builds): `containerd --version` names the
  # version (the module carries no commit to stamp as the revision).
  local ldflags="-s -w -X $containerd_mod/version.Version=$v -X $containerd_mod/version.Package=$containerd_mod"
  # With cgo (Go's default when a C compiler is present), as containerd's Makefile builds them: the one cgo
  # part, the btrfs snapshotter, needs only the kernel headers that libc6-dev brings.
  compile containerd "$src" -tags urfave_cli_no_docs -ldflags "$ldflags"
  compile ctr "$src" -tags urfave_cli_no_docs -ldflags "$ldflags"
  # The shim as upstream builds it: static (CGO_ENABLED=0) and without gRPC (it speaks ttrpc), one process
  # per pod that must not depend on the host's libraries.
  CGO_ENABLED=0 compile containerd-shim-runc-v2 "$src" -tags "urfave_cli_no_docs no_grpc" -ldflags "$ldflags"
}

build_runc() {
  local v=v$RUNC_VERSION src="$prefix/src/runc"
  # runc needs cgo (libcontainer/nsenter) and, with the seccomp tag, libseccomp found through pkg-config.
  command -v gcc >/dev/null && command -v pkg-config >/dev/null && pkg-config --exists libseccomp || {
    say "runc needs gcc, pkg-config and libseccomp's headers: run toolchain/system-packages.sh (Debian:"
    say "gcc, libc6-dev, pkg-config, libseccomp-dev), then this again."
    exit 1
  }
  new_wrapper runc "$runc_mod" "$v" runc
  # The tags of runc's Makefile without its default `libpathrs`, which links a Rust library (libpathrs)
  # that no Debian 12 package provides; without it runc uses its pure-Go path resolution. Its version comes
  # from the module's VERSION file (go:embed); the module carries no commit to stamp.
  CGO_ENABLED=1 compile runc "$src" -buildmode=pie -tags "seccomp urfave_cli_no_docs" -ldflags "-s -w"
}

build_cni_plugins() {
  local v=v$CNI_PLUGINS_VERSION src="$prefix/src/cni-plugins"
  new_wrapper cni-plugins "$cni_mod" "$v" "${cni_bins[@]}"
  # Static (CGO_ENABLED=0) and stamped with the version like upstream's release builds: a plugin run without
  # CNI_COMMAND prints it ("CNI bridge plugin v1.10.0").
  local b
  for b in "${cni_bins[@]}"; do
    CGO_ENABLED=0 compile "$b" "$src" \
      -ldflags "-s -w -X $cni_mod/pkg/utils/buildversion.BuildVersion=$v"
  done
}

any_missing() { for b in "$@"; do [[ -x "$bin/$b" ]] || return 0; done; return 1; }

! any_missing runc || build_runc
! any_missing "${cni_bins[@]}" || build_cni_plugins
! any_missing "${containerd_bins[@]}" || build_containerd
exit_built
