#!/usr/bin/env bash
# Quick start: install what the build needs (if missing), build, run the agent
# with the embedded defaults (built-in rules, baselines in /var/lib/vigil,
# alerts on stdout). Extra arguments go to `vigil run` (e.g. --events).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "quickstart: vigil loads eBPF sensors; run as root (sudo $0)" >&2
  exit 1
fi
bash scripts/install-deps.sh
cargo build --release --locked -p vigil-engine
exec target/release/vigil run "$@"
