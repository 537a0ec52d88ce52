#!/usr/bin/env bash
# The whole test suite: the README's second command, and what .ci/run calls.
#
#   sudo bash scripts/test.sh [cargo test selection instead of --workspace, e.g. -p vigil-rules]
#
# As root it first installs what is missing (scripts/install-deps.sh) and
# removes leftovers of an earlier crashed run (scripts/leak-check.sh --clean),
# then runs every test, including the root tests that load the sensors into
# this kernel and start real containers, one test at a time (tests that load
# BPF must not overlap). Each root test that runs appends its name to
# $VIGIL_ROOT_TESTS_LOG; the count is printed as "root tests executed: N".
# With VIGIL_REQUIRE_ROOT_TESTS=1 (CI) a root test that cannot run fails,
# and so does a run in which none ran. Finally scripts/leak-check.sh proves
# the tests left nothing behind, the host's account files (/etc/passwd,
# /etc/shadow, /etc/group, /etc/gshadow) byte-identical included. Exits
# nonzero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ -d "${HOME:-/root}/.cargo/bin" ] && PATH="${HOME:-/root}/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "test.sh: cargo not found (install Rust 1.95 with rustup)" >&2; exit 1; }

failed=()
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-deps.sh || { echo "test.sh: scripts/install-deps.sh failed" >&2; exit 1; }
  bash scripts/leak-check.sh --clean || { echo "test.sh: cannot remove an earlier run's leftovers" >&2; exit 1; }
else
  echo "test.sh: not root: root tests will be skipped (or fail, with VIGIL_REQUIRE_ROOT_TESTS=1)" >&2
fi

log=$(mktemp /tmp/vigil-root-tests.XXXXXX) || exit 1
sums=$(mktemp /tmp/vigil-account-sums.XXXXXX) || exit 1
trap 'rm -f "$log" "$sums"' EXIT
# The host's account files (passwd, shadow, group, gshadow) as they are now:
# the leak check at the end proves no test changed them.
bash scripts/leak-check.sh --accounts-save "$sums" || exit 1
export VIGIL_ROOT_TESTS_LOG="$log"

# Arguments, if any, replace --workspace (e.g. `-p vigil-rules`).
sel=(--workspace)
[ $# -gt 0 ] && sel=("$@")
echo "test.sh: cargo test ${sel[*]} --release --locked --no-fail-fast -- --test-threads=1"
if ! cargo test "${sel[@]}" --release --locked --no-fail-fast -- --test-threads=1; then
  failed+=("cargo test")
fi

n=$(wc -l < "$log" | tr -d ' ')
echo "root tests executed: $n"
if [ "${VIGIL_REQUIRE_ROOT_TESTS:-0}" = 1 ] && [ "$n" -eq 0 ]; then
  echo "test.sh: VIGIL_REQUIRE_ROOT_TESTS=1 but no root test ran" >&2
  failed+=("root tests")
fi

if ! bash scripts/leak-check.sh --accounts "$sums"; then
  failed+=("leak check")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "test.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "test.sh: all passed"
