#!/usr/bin/env bash
# The file-write floor of the `--events` pipeline: the CPU (user + sys) the
# kernel takes to write the bytes of a JSON-lines output file again, in the
# chunks the file sink writes (records collected until the buffer holds at
# least 64 KiB, then one write), to a new file on the same filesystem, and
# nothing else (the bytes come from one buffer prepared before the clock
# starts). Prints bytes, writes, CPU seconds per round and their median.
#
#   bash scripts/write-floor.sh OUTPUT_JSON [ROUNDS]
#
# OUTPUT_JSON is what `vigil replay ... --events -o FILE` wrote; the copy is
# written next to it and removed.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUTPUT_JSON [ROUNDS]" >&2; exit 2; }
src=$1 rounds=${2:-5}
[ -r "$src" ] || { echo "write-floor.sh: $src: not readable" >&2; exit 2; }
case $rounds in ''|*[!0-9]*|0) echo "write-floor.sh: ROUNDS: not a positive number: $rounds" >&2; exit 2;; esac
exec python3 - "$src" "$rounds" <<'PY'
import os, resource, statistics, sys
src, rounds = sys.argv[1], int(sys.argv[2])
BATCH = 64 << 10  # vigil_outputs::JsonLines::BATCH
chunks, cur = [], 0
with open(src, 'rb') as f:
    for line in f:
        if cur >= BATCH:
            chunks.append(cur)
            cur = 0
        cur += len(line)
if cur:
    chunks.append(cur)
buf = memoryview(bytes(b'x' * max(chunks)))
dst = os.path.join(os.path.dirname(os.path.abspath(src)), '.write-floor.%d' % os.getpid())
os.umask(0o077)
times = []
for r in range(rounds):
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    a = resource.getrusage(resource.RUSAGE_SELF)
    for n in chunks:
        done = 0
        while done < n:
            done += os.write(fd, buf[done:n])
    b = resource.getrusage(resource.RUSAGE_SELF)
    os.close(fd)
    os.unlink(dst)
    t = (b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)
    times.append(t)
    print('round %d: %.3f s CPU (user %.3f, sys %.3f)' % (r + 1, t, b.ru_utime - a.ru_utime, b.ru_stime - a.ru_stime))
total = sum(chunks)
m = statistics.median(times)
print('%d bytes in %d writes (%.0f bytes each on average)' % (total, len(chunks), total / len(chunks)))
print('median of %d rounds: %.3f s CPU, %.2f ns per byte' % (rounds, m, m * 1e9 / total))
PY
