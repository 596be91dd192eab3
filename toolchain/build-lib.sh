# shellcheck shell=bash
# What the toolchain's build scripts (build-*.sh, install-mermaid.sh) do alike; sourced by each, never run.
#
# Each builds or installs into a cache directory outside the repository keyed by what it builds, prints that
# directory on its last line (its messages go to stderr), and on a second run finds the cache and returns at
# once. A script sets `log_tag`, the prefix of its messages, then sources this, which sets `here`
# (toolchain/), the versions of versions.env, `cache_root` and `start`; it then sets `bin` and `binaries`
# (what it builds into `bin`), or defines its own `missing`.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=toolchain/versions.env
source "$here/versions.env"

cache_root=${MESHKIT_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit/toolchain}
start=$(date +%s)

say() { printf '[%s] %s\n' "$log_tag" "$*" >&2; }

# The names of `binaries` not yet built, each followed by a space: nothing when the cache is whole.
missing() { local b; for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || printf '%s ' "$b"; done; }

# exit_if_built DIRECTORY: the cache is whole: print DIRECTORY and stop.
exit_if_built() {
  [[ -z "$(missing)" ]] || return 0
  say "cached: $1"
  echo "$1"
  exit 0
}

# exit_if_only_cached "${1:-}" MESSAGE...: the tests ask with --cached, which must never start a build.
exit_if_only_cached() {
  [[ "$1" == "--cached" ]] || return 0
  say "${@:2}"
  exit 1
}

# require COMMAND LINE...: without COMMAND nothing can be built; the LINEs say what to install.
require() {
  command -v "$1" >/dev/null && return 0
  local line
  for line in "${@:2}"; do say "$line"; done
  exit 1
}

# Go prints a line per package compiled: show a count, not the flood (but every compiler error in full).
progress() {
  awk -v what="$1" -v tag="$log_tag" '/^#|: / { print > "/dev/stderr"; next }
    { n++; if (n % 100 == 0) printf "[%s]   %s: %d packages compiled\n", tag, what, n > "/dev/stderr" }'
}

# The end of a build: what is still missing fails it; else `bin` is printed, as from the cache.
exit_built() {
  [[ -z "$(missing)" ]] || { say "build incomplete ($(missing)missing): $bin"; exit 1; }
  say "built in $(( $(date +%s) - start ))s: $bin"
  echo "$bin"
  exit 0
}
