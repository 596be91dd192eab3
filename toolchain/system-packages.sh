#!/usr/bin/env bash
# Installs the Debian packages a real node of the local cluster and the tests need (Debian 12), with apt-get:
# only those missing, so a second run returns at once. `apt-get update` runs only when something is missing.
#
#   toolchain/system-packages.sh        # as root, or as a user sudo lets run apt-get
#
# Exits non-zero, saying why, when a package cannot be installed. The Go toolchain is not among these
# (see toolchain/build-*.sh).
set -euo pipefail

say() { printf '[system-packages] %s\n' "$*" >&2; }

packages=(
  # runc (toolchain/build-node.sh) is built with cgo and its `seccomp` tag: a C compiler, libseccomp's
  # headers, and pkg-config to find them. containerd's btrfs snapshotter (cgo too) needs only the kernel's
  # headers, which libc6-dev brings.
  gcc libc6-dev pkg-config libseccomp-dev
  # The node: the kubelet mounts and unmounts pods' volumes with mount(8); the CNI plugins (bridge's IP
  # masquerading, portmap) and Istio's istio-iptables drive iptables (the nft backend); the node's network
  # namespaces, veth pairs and bridges are made with iproute2's `ip`.
  mount iptables iproute2
  # Tests: socat forwards TCP (e.g. from the pods' bridge to istiod on loopback); openssl makes and reads the
  # cluster's certificates; chromium renders pages headless (--screenshot, --dump-dom), with a font for
  # their text (fonts-liberation, a recommendation of chromium that --no-install-recommends leaves out).
  socat openssl chromium fonts-liberation
  # The tests of `meshkit graph` check its pictures with the real parsers: Graphviz's `dot`, and Mermaid's own
  # (npm packages, toolchain/install-mermaid.sh) under Node.js.
  graphviz nodejs
)
# Debian's npm is a package of its own; a Node.js from elsewhere (NodeSource's) brings npm and conflicts with it.
command -v npm >/dev/null || packages+=(npm)

installed() { [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii " ]]; }

command -v dpkg-query >/dev/null && command -v apt-get >/dev/null || {
  say "this needs Debian's dpkg and apt-get (Debian 12); install these by hand: ${packages[*]}"
  exit 1
}

missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]} == 0)); then
  say "all present: ${packages[*]}"
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { say "missing: ${missing[*]}; run this as root (or install sudo)"; exit 1; }
  sudo=(sudo)
fi
# Wait for another apt-get or dpkg (an unattended upgrade, a second run) instead of failing on its lock.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q)

say "installing: ${missing[*]}"
say "apt-get update"
"${apt[@]}" update >&2 || { say "apt-get update failed (see above): nothing installed"; exit 1; }
"${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2 || {
  say "apt-get install failed (see above); missing: ${missing[*]}"
  exit 1
}

still=()
for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
((${#still[@]} == 0)) || { say "still not installed after apt-get: ${still[*]}"; exit 1; }
say "installed: ${missing[*]}"
