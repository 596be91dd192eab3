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

log_tag=mermaid
# shellcheck source=toolchain/build-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-lib.sh"

lock="$here/mermaid/package-lock.json"
prefix="$cache_root/mermaid-$(cat "$here/mermaid/package.json" "$lock" | sha256sum | cut -c1-16)"

# The stamp is written last: a directory without it is an install that did not finish.
missing() { [[ -f "$prefix/.installed" ]] || printf 'mermaid '; }
exit_if_built "$prefix"
exit_if_only_cached "${1:-}" "not installed yet: run toolchain/install-mermaid.sh"
require npm "npm is not installed: run toolchain/system-packages.sh (Debian: apt-get install nodejs npm)"

rm -rf "$prefix"
mkdir -p "$prefix"
cp "$here/mermaid/package.json" "$lock" "$prefix/"
# `npm ci` installs exactly the lock file's tree; none of these packages needs its install scripts.
say "installing $(node -p 'Object.entries(require(process.argv[1]).dependencies).map(d => d.join("@")).join(", ")' \
  "$prefix/package.json") into $prefix"
(cd "$prefix" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
touch "$prefix/.installed"
echo "$prefix"
