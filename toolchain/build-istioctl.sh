#!/usr/bin/env bash
# Builds Istio's binaries from the Go module istio.io/istio, at the version pinned in toolchain/versions.env,
# into a cache directory outside the repository keyed by that version:
#
# - istioctl, Istio's own config analyzer, for the offline tier (tests/istio/) and the live tier;
# - pilot-discovery, Istio's control plane (istiod), which the local cluster runs for its validating webhook
#   and its sidecar injector (toolchain/istiod.py);
# - pilot-agent, the proxy agent of a real data plane: it starts Envoy and feeds it certificates and config
#   from istiod (`pilot-agent proxy`), and writes a pod's traffic redirection (`pilot-agent istio-iptables`).
#
#   toolchain/build-istioctl.sh            # prints the bin directory on its last line
#   toolchain/build-istioctl.sh --cached   # the same if all 3 are built, else exit 1 without building (tests)
#
# A second run with the same version finds the cache and returns at once; a run after a partial build (or
# after a binary joined the list) compiles only the binaries missing. Module hashes are pinned by the
# go.sum.istio file beside this script: a module that resolves to other content stops the build with Go's
# checksum mismatch error. Why a pseudo-version: the module proxy here does not serve Istio's tagged release
# commits, only master commits (see the comment in versions.env).
set -euo pipefail

log_tag=istio-build
# shellcheck source=toolchain/build-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-lib.sh"

prefix="$cache_root/istio-${ISTIO_VERSION}-${ISTIO_PSEUDO##*-}"
bin="$prefix/bin"
mod=istio.io/istio
# All from one wrapper module (one go.sum), with the same flags and tags.
binaries=(istioctl pilot-discovery pilot-agent)
declare -A packages=([istioctl]=istioctl/cmd/istioctl [pilot-discovery]=pilot/cmd/pilot-discovery
  [pilot-agent]=pilot/cmd/pilot-agent)

exit_if_built "$bin"
exit_if_only_cached "${1:-}" \
  "not built yet: $(missing)(Istio ${ISTIO_VERSION}, ${ISTIO_PSEUDO}): run toolchain/build-istioctl.sh"
require go "Go is not installed. Install Go >= 1.26 (Debian: apt-get install golang), then run this again."

mkdir -p "$bin" "$prefix/src"
# GOTOOLCHAIN=local: never try to download another Go release when a module asks for a newer one.
# CGO_ENABLED=0: static binaries, as Istio's own common/scripts/gobuild.sh builds them.
export GOFLAGS="-mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0

build_istio() {
  local src="$prefix/src/istio"
  mkdir -p "$src"
  # istio.io/istio has no replace directives, so a plain `go install` would build it too; the wrapper module
  # is what lets go.sum.istio pin every dependency's hash.
  cat >"$src/go.mod" <<EOF
module meshkit.local/istio

go 1.26.0

require ${mod} ${ISTIO_PSEUDO}
EOF
  cp "$here/go.sum.istio" "$src/go.sum" 2>/dev/null || true
  {
    printf '//go:build tools\n\npackage tools\n\n'
    for b in "${binaries[@]}"; do printf 'import _ "%s/%s"\n' "$mod" "${packages[$b]}"; done
  } >"$src/tools.go"
  (
    cd "$src"
    say "resolving istio.io/istio ${ISTIO_PSEUDO} modules (Istio ${ISTIO_VERSION})"
    # Always with the version: a bare `go get` moves istio.io/istio to the newest master commit.
    go get "${mod}@${ISTIO_PSEUDO}"
    go mod tidy
    # The stamps Istio's common/scripts/report_build_info.sh gives a release build, so that
    # `istioctl version --remote=false` and istiod's first log lines name the pinned commit.
    local pkg=${mod}/pkg/version
    local ldflags="-s -w -X $pkg.buildVersion=${ISTIO_VERSION} -X $pkg.buildGitRevision=${ISTIO_PSEUDO##*-}"
    ldflags+=" -X $pkg.buildStatus=Clean -X $pkg.buildTag=${ISTIO_PSEUDO}"
    ldflags+=" -X $pkg.buildOS=$(go env GOOS) -X $pkg.buildArch=$(go env GOARCH)"
    for b in "${binaries[@]}"; do
      [[ -x "$bin/$b" ]] && continue
      say "compiling $b: a first build takes about 5 (istioctl), 10 (pilot-discovery), 1 (pilot-agent) minutes on 2 cores"
      # The build tags of Istio's Makefile (STANDARD_TAGS) for istioctl, pilot-discovery and pilot-agent.
      go build -v -trimpath -tags vtprotobuf,disable_pgv -ldflags "$ldflags" -o "$bin/$b.tmp" \
        "${mod}/${packages[$b]}" 2>&1 | progress "$b"
      mv "$bin/$b.tmp" "$bin/$b"
    done
  )
}

build_istio
exit_built
