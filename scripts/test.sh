#!/usr/bin/env bash
# The whole test suite (README's second command; .ci/run calls it).
# As root it also runs the tests that load the sensors into this kernel;
# with VIGIL_REQUIRE_ROOT_TESTS=1 a root test that cannot run is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-deps.sh
fi
log=$(mktemp /tmp/vigil-root-tests.XXXXXX)
trap 'rm -f "$log"' EXIT
export VIGIL_ROOT_TESTS_LOG="$log"
# Tests that load BPF are serialized (each agent sees the whole host).
cargo test --workspace --release --locked -- --test-threads=1
n=$(sort -u "$log" | grep -c . || true)
echo "root tests executed: $n"
if [ "${VIGIL_REQUIRE_ROOT_TESTS:-0}" = 1 ] && [ "$n" -eq 0 ]; then
  echo "test.sh: VIGIL_REQUIRE_ROOT_TESTS=1 but no root test ran" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/leak-check.sh
fi
