#!/usr/bin/env bash
# CPU time of the full `--events` pipeline offline, for two vigil binaries
# side by side: each round replays CAPTURE once with each binary (order
# alternating), the way `vigil run --events` processes records (decode,
# enrich, built-in rules plus RULES, baselines learning, every event as ECS
# JSON to a file), and prints user+sys seconds per run, the medians, records
# per second of CPU for each and the ratio. The two outputs are compared with
# cmp (they must be byte-identical); a difference fails.
#
#   bash scripts/replay-cpu.sh OLD_VIGIL NEW_VIGIL CAPTURE RULES [ROUNDS]
#
# No root needed. Each run learns into a fresh data directory (0700) below
# a temporary directory, removed at exit.
set -uo pipefail
[ $# -ge 4 ] || { echo "usage: $0 OLD_VIGIL NEW_VIGIL CAPTURE RULES [ROUNDS]" >&2; exit 2; }
old=$1 new=$2 cap=$3 rules=$4 rounds=${5:-5}
for b in "$old" "$new"; do
  [ -x "$b" ] || { echo "replay-cpu.sh: $b: not an executable" >&2; exit 2; }
done
[ -r "$cap" ] || { echo "replay-cpu.sh: $cap: not readable" >&2; exit 2; }
[ -d "$rules" ] || { echo "replay-cpu.sh: $rules: not a directory" >&2; exit 2; }
case $rounds in ''|*[!0-9]*) echo "replay-cpu.sh: ROUNDS: not a number: $rounds" >&2; exit 2;; esac
umask 077
tmp=$(mktemp -d /tmp/vigil-replay-cpu.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT

# run BINARY OUT: prints the run's user+sys CPU seconds
run() {
  rm -rf "$tmp/data" "$2"
  mkdir -m 0700 "$tmp/data"
  printf '[agent]\ndata_dir = "%s"\n' "$tmp/data" > "$tmp/cfg.toml"
  local TIMEFORMAT='%U %S' t
  t=$( { time "$1" -c "$tmp/cfg.toml" replay "$cap" --events --learn --rules "$rules" -o "$2" >/dev/null 2>"$tmp/err"; } 2>&1 ) || {
    echo "replay-cpu.sh: $1 failed:" >&2; cat "$tmp/err" >&2; exit 1; }
  set -- $t
  echo "$1 $2" | awk '{printf "%.3f", $1 + $2}'
}

med() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

: > "$tmp/old.t"; : > "$tmp/new.t"
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
  for which in $order; do
    if [ "$which" = old ]; then b=$old; else b=$new; fi
    t=$(run "$b" "$tmp/$which.json") || exit 1
    echo "$t" >> "$tmp/$which.t"
    echo "round $i $which: $t s"
  done
  cmp -s "$tmp/old.json" "$tmp/new.json" || { echo "replay-cpu.sh: outputs differ (round $i)" >&2; exit 1; }
done
records=$(sed -n 's/^vigil: replayed \([0-9]*\) records in .*/\1/p' "$tmp/err" | tail -1)
[ -n "$records" ] || { echo "replay-cpu.sh: no record count in the replay's summary" >&2; exit 1; }
mo=$(med < "$tmp/old.t"); mn=$(med < "$tmp/new.t")
awk -v mo="$mo" -v mn="$mn" -v r="$records" -v n="$rounds" 'BEGIN {
  printf "medians of %d rounds, %d records replayed (outputs byte-identical):\n", n, r
  printf "old %.3f s CPU  %.0f records/s\n", mo, r / mo
  printf "new %.3f s CPU  %.0f records/s\n", mn, r / mn
  printf "new/old CPU %.2fx\n", mn / mo }'
