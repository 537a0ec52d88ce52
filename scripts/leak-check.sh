#!/usr/bin/env bash
# Fails if the test run left anything behind: cgroups, mounts, netns, BPF
# pins, podman containers or processes created by the tests.
set -uo pipefail
leaks=()
while IFS= read -r d; do leaks+=("cgroup $d"); done < <(find /sys/fs/cgroup -maxdepth 3 -type d -name 'vigil-test-*' 2>/dev/null)
while IFS= read -r m; do leaks+=("mount $m"); done < <(awk '$2 ~ /vigil-test/ {print $2}' /proc/mounts)
while IFS= read -r n; do leaks+=("netns $n"); done < <(ip netns list 2>/dev/null | awk '/vigil-test/ {print $1}')
while IFS= read -r p; do leaks+=("bpf pin $p"); done < <(find /sys/fs/bpf -name '*vigil*' 2>/dev/null)
if command -v podman >/dev/null; then
  while IFS= read -r c; do [ -n "$c" ] && leaks+=("podman container $c"); done < <(podman --cgroup-manager=cgroupfs ps -a --format '{{.Names}}' 2>/dev/null | grep '^vigil-test' || true)
fi
while IFS= read -r p; do leaks+=("process $p"); done < <(pgrep -af 'vigil-test-marker' | grep -v -e pgrep -e leak-check || true)
if [ ${#leaks[@]} -gt 0 ]; then
  printf 'leak-check: left behind: %s\n' "${leaks[@]}" >&2
  exit 1
fi
echo "leak-check: nothing left behind"
