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
# Pinned to one version (name=version, apt-get's syntax): Prometheus and its promtool, for the metric gate
# (meshkit/metrics): the local cluster runs its own Prometheus on loopback (toolchain/prometheus.py), and the
# tests load recorded series into one with promtool. Debian's service of the package is never started or
# enabled by this script: see prometheus_service_off below. A point release of Debian 12 that replaces this
# version makes the install fail, naming it: change the pin then (apt-cache policy prometheus).
pinned=(prometheus=2.42.0+ds-5+deb12u1)
# Debian's npm is a package of its own; a Node.js from elsewhere (NodeSource's) brings npm and conflicts with it.
command -v npm >/dev/null || packages+=(npm)

installed() {
  local name=${1%%=*} version=${1#*=}
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$name" 2>/dev/null)" == "ii " ]] || return 1
  [[ "$1" != *=* || "$(dpkg-query -W -f='${Version}' "$name")" == "$version" ]]
}

command -v dpkg-query >/dev/null && command -v apt-get >/dev/null || {
  say "this needs Debian's dpkg and apt-get (Debian 12); install these by hand: ${packages[*]}"
  exit 1
}

missing=()
for p in "${packages[@]}" "${pinned[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]} == 0)); then
  say "all present: ${packages[*]} ${pinned[*]}"
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { say "missing: ${missing[*]}; run this as root (or install sudo)"; exit 1; }
  sudo=(sudo)
fi
# Wait for another apt-get or dpkg (an unattended upgrade, a second run) instead of failing on its lock.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q)

# Debian's prometheus package starts its service (Prometheus on *:9090, scraping a node exporter) from its
# maintainer script, through invoke-rc.d or deb-systemd-invoke, which both ask /usr/sbin/policy-rc.d first.
# meshkit runs its own Prometheus on a loopback port: for the length of the install, a policy-rc.d of this
# script's forbids starting that one service (a policy-rc.d already there is set aside and put back), and the
# service is then disabled at boot.
policy=/usr/sbin/policy-rc.d
saved_policy=$policy.meshkit-saved
own_policy=
prometheus_service_off() {
  [[ " ${missing[*]} " == *" prometheus="* ]] || return 0
  [[ -e $policy ]] && "${sudo[@]}" mv "$policy" "$saved_policy"
  own_policy=1
  "${sudo[@]}" tee "$policy" >/dev/null <<'POLICY'
#!/bin/sh
# Written by meshkit's toolchain/system-packages.sh for the length of one apt-get install: Debian's prometheus
# service is not started (meshkit runs its own on loopback); every other action is allowed.
for arg in "$@"; do
  case "$arg" in --*) ;; prometheus|prometheus.service) exit 101 ;; *) exit 0 ;; esac
done
exit 0
POLICY
  "${sudo[@]}" chmod 755 "$policy"
}
restore_policy() {
  [[ -n $own_policy ]] || return 0
  "${sudo[@]}" rm -f "$policy"
  [[ ! -e $saved_policy ]] || "${sudo[@]}" mv "$saved_policy" "$policy"
}
trap restore_policy EXIT

say "installing: ${missing[*]}"
prometheus_service_off
say "apt-get update"
"${apt[@]}" update >&2 || { say "apt-get update failed (see above): nothing installed"; exit 1; }
"${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2 || {
  say "apt-get install failed (see above); missing: ${missing[*]}"
  exit 1
}

still=()
for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
((${#still[@]} == 0)) || { say "still not installed after apt-get: ${still[*]}"; exit 1; }
if [[ " ${missing[*]} " == *" prometheus="* ]]; then
  # Not started at boot either (the package enables it): systemd's links and the SysV ones, whichever exist.
  command -v deb-systemd-helper >/dev/null && "${sudo[@]}" deb-systemd-helper disable prometheus.service >/dev/null 2>&1 || true
  command -v update-rc.d >/dev/null && "${sudo[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
  say "Debian's prometheus service: not started, disabled at boot (meshkit runs its own on loopback)"
fi
say "installed: ${missing[*]}"
