#!/usr/bin/env bash
# Proves a test run left nothing behind. Every fixture names what it creates
# with `vigil-test`, so these are absolute checks:
#   - no cgroup directory named vigil-test-* in any hierarchy under /sys/fs/cgroup
#   - no mount whose mount point contains vigil-test
#   - no loop device whose backing file's path contains vigil-test
#   - no network namespace named vigil-test*
#   - no BPF pin under /sys/fs/bpf whose path contains vigil
#   - no podman container (running or not) named vigil-test*
#   - no process whose command line contains vigil-test-marker, and no
#     auditd, bpftrace or agent started by vigil-eval (/tmp/vigil-eval-*)
#   - the kernel's audit state as the evaluation must leave it: disabled,
#     and no rule but `-a never,task` (or none)
#   - with --accounts SUMS: /etc/passwd, /etc/shadow, /etc/group, /etc/gshadow
#     byte-identical to SUMS, the checksums `--accounts-save SUMS` wrote
#     before the tests (scripts/test.sh does both)
# Prints each leak and exits 1 if there is any, else prints one line, exits 0.
#
#   leak-check.sh [--accounts SUMS]  check (scripts/test.sh runs it after the tests)
#   leak-check.sh --accounts-save SUMS
#                           write the account files' checksums to SUMS (0600)
#   leak-check.sh --clean   remove such leftovers (of an earlier, crashed run)
#                           and print what was removed; exits 0 unless
#                           something could not be removed
set -uo pipefail

account_files=(/etc/passwd /etc/shadow /etc/group /etc/gshadow)
# One line a file: its path and SHA-256, or "absent".
account_sums() {
  local f
  for f in "${account_files[@]}"; do
    if [ -e "$f" ]; then
      printf '%s %s\n' "$f" "$(sha256sum < "$f" | cut -d' ' -f1)"
    else
      printf '%s absent\n' "$f"
    fi
  done
}

clean=0
accounts=""
case "${1:-}" in
  "") ;;
  --clean) clean=1 ;;
  --accounts-save)
    [ -n "${2:-}" ] || { echo "usage: $0 --accounts-save SUMS" >&2; exit 2; }
    (umask 077; account_sums > "$2") || exit 1
    exit 0 ;;
  --accounts)
    [ -r "${2:-}" ] || { echo "leak-check: --accounts ${2:-}: no such checksum file (write it with --accounts-save)" >&2; exit 2; }
    accounts=$2 ;;
  *) echo "usage: $0 [--clean | --accounts SUMS | --accounts-save SUMS]" >&2; exit 2 ;;
esac

leaks=()
leak() { leaks+=("$1"); }

# --- processes (first: they may hold the mounts and cgroups below) ---
marker_pids() {
  local p
  for p in $(pgrep -f 'vigil-test-marker' 2>/dev/null); do
    [ "$p" = "$$" ] || [ "$p" = "${BASHPID:-}" ] && continue
    # pgrep cannot see its own command substitution's shell; re-check the cmdline
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q 'vigil-test-marker' && echo "$p"
  done
}

descendants() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END { n = split(kids[root], q, " "); for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], more, " "); for (j = 1; j <= m; j++) q[++n] = more[j] } }'
}

# --- what vigil-eval starts: auditd/bpftrace/agents with /tmp/vigil-eval-* ---
eval_pids() {
  local p
  for p in $(pgrep -f '/tmp/vigil-eval-' 2>/dev/null); do
    [ "$p" = "$$" ] || [ "$p" = "${BASHPID:-}" ] && continue
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q '/tmp/vigil-eval-' && echo "$p"
  done
}

# --- the kernel's audit state (empty when as the evaluation must leave it) ---
audit_state() {
  command -v auditctl >/dev/null && [ "$(id -u)" -eq 0 ] || return 0
  local st rules
  st=$(auditctl -s 2>/dev/null | awk '$1=="enabled"{print $2}')
  rules=$(auditctl -l 2>/dev/null | grep -v -x -e '-a never,task' -e 'No rules' | tr '\n' ';')
  if [ "${st:-0}" != 0 ] || [ -n "$rules" ]; then
    echo "enabled=${st:-?} rules=${rules:-none} (restore: auditctl -D; auditctl -e 0; auditctl -a never,task)"
  fi
}

# --- podman containers ---
podman_names() {
  [ "$(id -u)" -eq 0 ] && command -v podman >/dev/null || return 0
  podman --cgroup-manager=cgroupfs ps -a --format '{{.Names}}' 2>/dev/null | grep '^vigil-test' || true
}

# --- cgroups, deepest first ---
cgroups() {
  find /sys/fs/cgroup -mindepth 1 -type d -name 'vigil-test-*' 2>/dev/null \
    | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}

# --- mounts, deepest first (mount points are octal-escaped in /proc/mounts) ---
mounts() {
  awk '$2 ~ /vigil-test/ { print length($2) "\t" $2 }' /proc/mounts | sort -rn | cut -f2- \
    | while IFS= read -r m; do printf '%b\n' "$m"; done
}

# --- loop devices backed by a test's file ---
loop_devs() {
  local f b
  for f in /sys/block/loop*/loop/backing_file; do
    [ -r "$f" ] || continue
    b=$(cat "$f" 2>/dev/null)
    case "$b" in *vigil-test*) f=${f#/sys/block/}; echo "/dev/${f%%/*} $b" ;; esac
  done
  return 0
}

# --- network namespaces ---
netns_names() {
  local f
  for f in /run/netns/vigil-test*; do [ -e "$f" ] && echo "${f##*/}"; done
  return 0
}

# --- BPF pins ---
pins() {
  find /sys/fs/bpf -mindepth 1 -path '*vigil*' 2>/dev/null | sort -r
}

if [ "$clean" -eq 1 ]; then
  failed=0
  for p in $(eval_pids); do
    echo "leak-check: killing leftover vigil-eval process $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-160)"
    kill -9 "$p" 2>/dev/null
  done
  if [ -n "$(audit_state)" ]; then
    echo "leak-check: restoring the audit state ($(audit_state))"
    { auditctl -D && auditctl -e 0 && auditctl -a never,task; } >/dev/null || failed=1
  fi
  for p in $(marker_pids); do
    echo "leak-check: killing leftover process $p and its descendants: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-160)"
    kill -STOP "$p" 2>/dev/null   # no new children while we collect them
    kill -9 "$p" $(descendants "$p") 2>/dev/null
  done
  while IFS= read -r c; do
    [ -n "$c" ] || continue
    echo "leak-check: removing leftover podman container $c"
    podman --cgroup-manager=cgroupfs rm -f -t 0 "$c" >/dev/null || failed=1
  done < <(podman_names)
  while IFS= read -r cg; do
    [ -d "$cg" ] || continue
    echo "leak-check: removing leftover cgroup $cg"
    if [ -e "$cg/cgroup.kill" ]; then echo 1 > "$cg/cgroup.kill" 2>/dev/null; fi
    for _ in $(seq 200); do
      pids=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)
      [ -z "$pids" ] && break
      kill -9 $pids 2>/dev/null
      sleep 0.01
    done
  done < <(cgroups)
  while IFS= read -r m; do
    echo "leak-check: unmounting leftover $m"
    umount "$m" 2>/dev/null || umount -l "$m" || failed=1
  done < <(mounts)
  while IFS= read -r cg; do
    # child cgroups (any name) first
    find "$cg" -depth -mindepth 1 -type d -exec rmdir {} \; 2>/dev/null
    rmdir "$cg" 2>/dev/null || { sleep 0.1; find "$cg" -depth -type d -exec rmdir {} \; ; } || failed=1
  done < <(cgroups)
  while IFS=' ' read -r d b; do
    [ -n "$d" ] || continue
    echo "leak-check: detaching leftover loop device $d ($b)"
    losetup -d "$d" || failed=1
  done < <(loop_devs)
  while IFS= read -r n; do
    echo "leak-check: deleting leftover netns $n"
    ip netns delete "$n" 2>/dev/null || { umount "/run/netns/$n" 2>/dev/null; rm -f "/run/netns/$n"; } || failed=1
  done < <(netns_names)
  while IFS= read -r p; do
    echo "leak-check: removing leftover BPF pin $p"
    if [ -d "$p" ]; then rmdir "$p"; else rm -f "$p"; fi || failed=1
  done < <(pins)
  [ "$failed" -eq 0 ] || { echo "leak-check: some leftovers could not be removed" >&2; exit 1; }
  exit 0
fi

for p in $(marker_pids); do
  leak "process $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-200)"
done
for p in $(eval_pids); do
  leak "process $p (vigil-eval): $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-200)"
done
a=$(audit_state); [ -n "$a" ] && leak "audit state: $a"
while IFS= read -r c; do [ -n "$c" ] && leak "podman container $c"; done < <(podman_names)
while IFS= read -r cg; do leak "cgroup $cg (pids in it and below: $(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' '))"; done < <(cgroups)
while IFS= read -r m; do leak "mount $m"; done < <(mounts)
while IFS= read -r l; do [ -n "$l" ] && leak "loop device $l"; done < <(loop_devs)
while IFS= read -r n; do leak "netns $n"; done < <(netns_names)
while IFS= read -r p; do leak "BPF pin $p"; done < <(pins)
if [ -n "$accounts" ]; then
  while IFS= read -r l; do
    leak "account file changed during the tests: ${l% *} (before: $(grep -F "${l% *} " "$accounts" | cut -d' ' -f2), now: ${l##* }; --clean cannot restore it)"
  done < <(account_sums | grep -v -x -F -f "$accounts")
fi

if [ ${#leaks[@]} -gt 0 ]; then
  printf 'leak-check: LEAK: %s\n' "${leaks[@]}" >&2
  echo "leak-check: FAILED: the tests left ${#leaks[@]} thing(s) behind (remove them with: $0 --clean)" >&2
  exit 1
fi
echo "leak-check: nothing left behind (cgroups, mounts, loop devices, netns, BPF pins, podman containers, marker and vigil-eval processes, audit state${accounts:+, account files unchanged})"
