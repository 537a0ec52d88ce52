#!/usr/bin/env bash
# The evaluation a user can run on their own host (root):
#
#   sudo bash scripts/eval.sh compare [--quick] [--rounds N] [--scale F] [--only vigil,auditd-watch,...] [--vigil-old PATH]
#   sudo bash scripts/eval.sh flood|outage|crash [--quick]
#   sudo bash scripts/eval.sh soak [--minutes 30]
#   sudo bash scripts/eval.sh sustain [--quick] [--rate N] [--seconds S]
#   sudo bash scripts/eval.sh benign [--rules PATH[@LEVEL]]... [--as-root] [--max N]
#   sudo bash scripts/eval.sh all [--quick]        (everything but the soak)
#
# Builds vigil and vigil-eval (release, packages vigil-engine and vigil-eval), installs what is missing
# (scripts/install-deps.sh: auditd, bpftrace, ...) and runs vigil-eval.
# Whatever a run changes (audit rules, agents, floods, receivers, temporary
# directories) is undone on exit and on SIGINT/SIGTERM; the kernel's audit
# state is left as `auditctl -D; -e 0; -a never,task`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "${HOME:-/root}/.cargo/bin" ] && PATH="${HOME:-/root}/.cargo/bin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "eval.sh: needs root (loads eBPF, starts auditd and bpftrace)" >&2; exit 2; }
bash scripts/install-deps.sh
cargo build --release --locked -p vigil-engine -p vigil-eval --bins
exec "${CARGO_TARGET_DIR:-target}/release/vigil-eval" "$@"
