#!/usr/bin/env bash
# Installs Mermaid's own parser (the npm packages mermaid and jsdom, at the versions and hashes of
# toolchain/mermaid/package-lock.json) for the tests of `meshkit graph`, into a cache directory outside the
# repository keyed by that lock file. Needs Node.js and npm (toolchain/system-packages.sh installs them).
#
#   toolchain/install-mermaid.sh            # prints the directory to give toolchain/mermaid/parse.mjs
#   toolchain/install-mermaid.sh --cached   # the same if installed, else exit 1 without installing (tests)
#
# A second run with the same lock file finds the cache and returns at once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MESHKIT_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit/toolchain}
lock="$here/mermaid/package-lock.json"
prefix="$cache_root/mermaid-$(cat "$here/mermaid/package.json" "$lock" | sha256sum | cut -c1-16)"

say() { printf '[mermaid] %s\n' "$*" >&2; }

# The stamp is written last: a directory without it is an install that did not finish.
if [[ -f "$prefix/.installed" ]]; then
  say "cached: $prefix"
  echo "$prefix"
  exit 0
fi
if [[ "${1:-}" == "--cached" ]]; then
  say "not installed yet: run toolchain/install-mermaid.sh"
  exit 1
fi
command -v npm >/dev/null || {
  say "npm is not installed: run toolchain/system-packages.sh (Debian: apt-get install nodejs npm)"
  exit 1
}

rm -rf "$prefix"
mkdir -p "$prefix"
cp "$here/mermaid/package.json" "$lock" "$prefix/"
# `npm ci` installs exactly the lock file's tree; none of these packages needs its install scripts.
say "installing $(node -p 'Object.entries(require(process.argv[1]).dependencies).map(d => d.join("@")).join(", ")' \
  "$prefix/package.json") into $prefix"
(cd "$prefix" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
touch "$prefix/.installed"
echo "$prefix"
