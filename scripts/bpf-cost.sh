#!/usr/bin/env bash
# Where the kernel side of vigil's cost goes, per op of a workload: every
# BPF program's runs and run time (kernel.bpf_stats_enabled) while one
# `vigil run` (default deployment: built-in rules, alerts to a file) watches
# N ops of a vigil-eval workload. Root; nothing else should load BPF
# programs meanwhile (every program on the host is counted).
#
#   sudo bash scripts/bpf-cost.sh [--vigil PATH] [--eval PATH] WORKLOAD N
#
# WORKLOAD is one of vigil-eval's (`exec`: fork + exec /bin/true, `connect`:
# refused loopback connect, `openat`: the openat mix). Prints, per program,
# runs per op, ns per run and ns per op, most expensive first. Run time is
# the kernel's own per-program accounting: it leaves out the cost of
# reaching a program (tracepoint dispatch, the syscall slow path) and, while
# on, adds two clock reads to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
VIGIL=target/release/vigil
EVAL=target/release/vigil-eval
while [ $# -gt 2 ]; do
  case "$1" in
    --vigil) VIGIL=$2; shift 2 ;;
    --eval) EVAL=$2; shift 2 ;;
    *) echo "bpf-cost.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ $# -eq 2 ] || { echo "usage: bpf-cost.sh [--vigil PATH] [--eval PATH] WORKLOAD N" >&2; exit 2; }
W=$1; N=$2
case "$N" in ''|*[!0-9]*) echo "bpf-cost.sh: N must be a number, got '$N'" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "bpf-cost.sh: needs root" >&2; exit 2; }
for t in bpftool jq; do command -v $t >/dev/null || { echo "bpf-cost.sh: $t not found" >&2; exit 2; }; done
D=$(mktemp -d /tmp/vigil-bpf-cost.XXXXXX)
chmod 700 "$D"
STATS0=$(cat /proc/sys/kernel/bpf_stats_enabled)
VP=
cleanup() {
  sysctl -q -w kernel.bpf_stats_enabled="$STATS0" || true
  [ -n "$VP" ] && kill -INT "$VP" 2>/dev/null && wait "$VP" 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
printf '[agent]\ndata_dir = "%s/data"\n' "$D" > "$D/vigil.toml"
"$VIGIL" --config "$D/vigil.toml" run -o "file://$D/out.json" 2> "$D/err" &
VP=$!
for _ in $(seq 1 300); do grep -q 'sensors live' "$D/err" && break; sleep 0.1; done
grep -o '[0-9]*/[0-9]* sensors live in [0-9]* ms' "$D/err" || { cat "$D/err" >&2; exit 1; }
sleep 6 # the performance objects load after "sensors live"
sysctl -q -w kernel.bpf_stats_enabled=1
bpftool prog show -j > "$D/before.json"
"$EVAL" work "$W" "$N" > "$D/work.out"
bpftool prog show -j > "$D/after.json"
sysctl -q -w kernel.bpf_stats_enabled="$STATS0"
read -r WALL OPS < "$D/work.out"
echo "workload $W: $OPS ops, $((WALL / OPS)) ns/op wall, load average $(cut -d' ' -f1-3 /proc/loadavg)"
jq -r --slurpfile a "$D/before.json" --argjson n "$OPS" '
  ($a[0] | map({key: (.id | tostring), value: .}) | from_entries) as $b
  | map(. as $p | ($b[($p.id | tostring)] // {run_cnt: 0, run_time_ns: 0}) as $q
        | {name: $p.name, c: (($p.run_cnt // 0) - ($q.run_cnt // 0)),
           t: (($p.run_time_ns // 0) - ($q.run_time_ns // 0))})
  | map(select(.c > 0)) | sort_by(-.t)
  | (["program", "runs/op", "ns/run", "ns/op"] | @tsv),
    (.[] | [.name, (.c / $n * 100 | round / 100), (.t / .c | round), (.t / $n | round)] | @tsv),
    (["total", "", "", (map(.t) | add // 0 | . / $n | round)] | @tsv)
' "$D/after.json" | column -t -s $'\t'
