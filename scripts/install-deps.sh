#!/usr/bin/env bash
# Installs, only if missing, what building and testing vigil needs (Debian 12
# packages), and mounts tracefs and bpffs when they are not mounted.
# Idempotent: on a ready machine it changes nothing and prints one line.
# Prints one line per thing it did; exits nonzero with a message on failure.
# Services (rsyslog, podman's units, ...) are kept from starting on install.
set -euo pipefail

say() { echo "install-deps: $*"; did=1; }
die() { echo "install-deps: ERROR: $*" >&2; exit 1; }
did=0
trap 'echo "install-deps: ERROR: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and mounts filesystems)"

# package -> a command it provides (checked too: a package can be half-removed)
declare -A provides=(
  [clang-19]=clang-19
  [llvm-19]=llvm-strip-19
  [bpftool]=bpftool
  [libbpf-dev]=
  [podman]=podman
  [runc]=runc
  [busybox-static]=busybox
  [rsyslog]=rsyslogd
  [rsyslog-gnutls]=        # rsyslog's gtls netstream driver (TLS receiver in the outputs tests)
  [rsyslog-relp]=          # imrelp (RELP receiver in the outputs tests)
  [openssl]=openssl        # test certificates for the TLS tests
  [prometheus]=promtool    # `promtool check metrics` validates the /metrics exposition
  [iproute2]=ip
  [procps]=pgrep
  [util-linux]=unshare    # unshare(1), mount(8), script(1) comes from bsdutils
  [bsdutils]=script
  [tar]=tar
  [auditd]=auditctl        # the head-to-head evaluation (vigil-eval compare) runs auditd
  [bpftrace]=bpftrace      # ... and bpftrace one-liners as the eBPF floor
  [redis-server]=redis-server      # the baseline root test learns real servers under load:
  [redis-tools]=redis-benchmark    # redis with redis-benchmark,
  [postgresql-15]=                 # PostgreSQL (initdb, postgres in /usr/lib/postgresql/15/bin)
  [postgresql-client-15]=pgbench   # with pgbench
  [systemd]=systemd-analyze        # the package test verifies the unit (no systemd as pid 1 needed)
  [logrotate]=logrotate            # ... and parses the logrotate snippet it ships
  [pcp]=pminfo                     # the scrape test: pmcd + the OpenMetrics PMDA read vigil's /metrics,
  [python3-requests]=              # which that PMDA (python) needs
)
pkgs=(clang-19 llvm-19 bpftool libbpf-dev podman runc busybox-static rsyslog rsyslog-gnutls rsyslog-relp openssl prometheus iproute2 procps util-linux bsdutils tar auditd bpftrace redis-server redis-tools postgresql-15 postgresql-client-15 systemd logrotate pcp python3-requests)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  elif [ -n "${provides[$p]}" ] && ! PATH="$PATH:/usr/sbin:/sbin" command -v "${provides[$p]}" >/dev/null; then
    missing+=("$p")   # installed but its command is gone: reinstall
  fi
done
# libbpf-dev: the header the sensors include
# rsyslog-gnutls: the module rsyslog loads for TLS
compgen -G "/usr/lib/*/rsyslog/lmnsd_gtls.so" >/dev/null || [[ " ${missing[*]} " == *" rsyslog-gnutls "* ]] || missing+=(rsyslog-gnutls)
[ -f /usr/include/bpf/bpf_helpers.h ] || [[ " ${missing[*]} " == *" libbpf-dev "* ]] || missing+=(libbpf-dev)

# A package left unconfigured by an earlier failed install (pcp's postinst
# where systemd is not pid 1) makes every later apt-get fail: finish it.
if command -v dpkg >/dev/null && [ -n "$(dpkg --audit 2>/dev/null)" ]; then
  shim=$(mktemp -d /tmp/vigil-install-deps-shim.XXXXXX)
  printf '#!/bin/sh\n# no systemd as pid 1: nothing to reload or start\nexit 0\n' > "$shim/systemctl"
  chmod 755 "$shim/systemctl"
  PATH="$shim:$PATH" dpkg --configure -a >/dev/null 2>&1 || { rm -rf "$shim"; die "dpkg --configure -a failed"; }
  rm -rf "$shim"
  say "configured packages an earlier install left half-installed"
fi

if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get (this script targets Debian 12)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep services from starting during the install (policy-rc.d exit 101),
  # restoring whatever policy-rc.d was there before.
  policy=/usr/sbin/policy-rc.d
  saved=""
  if [ -e "$policy" ]; then
    saved=$(mktemp /usr/sbin/.policy-rc.d.vigil-saved.XXXXXX)
    cp -p "$policy" "$saved"
  fi
  restore_policy() {
    if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\n# written by vigil scripts/install-deps.sh for the duration of an install\nexit 101\n' > "$policy"
  chmod 755 "$policy"

  say "apt-get update (missing: ${missing[*]})"
  apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null \
    || die "apt-get update failed (no network to the Debian mirrors?)"
  log=$(mktemp /tmp/vigil-install-deps.XXXXXX.log)
  # Where systemd is not pid 1, pcp's postinst still runs `systemctl
  # daemon-reload` (it only checks that systemctl exists) and fails the
  # install: give maintainer scripts a systemctl that does nothing. apt
  # runs dpkg with its own PATH (DPkg::Path), so the shim goes there too.
  shim=$(mktemp -d /tmp/vigil-install-deps-shim.XXXXXX)
  if [ ! -d /run/systemd/system ]; then
    printf '#!/bin/sh\n# no systemd as pid 1: nothing to reload or start\nexit 0\n' > "$shim/systemctl"
    chmod 755 "$shim/systemctl"
  fi
  if ! PATH="$shim:$PATH" apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 \
       -o DPkg::Path="$shim:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
       -o Dpkg::Options::=--force-confold --reinstall "${missing[@]}" >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    rm -rf "$shim"
    die "apt-get install ${missing[*]} failed (full log: $log)"
  fi
  rm -rf "$shim"
  rm -f "$log"
  for p in "${missing[@]}"; do say "installed $p"; done
fi

mounted() { awk -v m="$1" -v t="$2" '$2 == m && $3 == t { f = 1 } END { exit !f }' /proc/mounts; }

if ! mounted /sys/kernel/tracing tracefs; then
  mkdir -p /sys/kernel/tracing 2>/dev/null || true
  mount -t tracefs -o nosuid,nodev,noexec tracefs /sys/kernel/tracing \
    || die "cannot mount tracefs at /sys/kernel/tracing"
  say "mounted tracefs at /sys/kernel/tracing"
fi
if ! mounted /sys/fs/bpf bpf; then
  mkdir -p /sys/fs/bpf 2>/dev/null || true
  mount -t bpf -o nosuid,nodev,noexec bpf /sys/fs/bpf \
    || die "cannot mount bpffs at /sys/fs/bpf"
  say "mounted bpffs at /sys/fs/bpf"
fi

# securityfs: `vigil probe` reads the kernel lockdown mode from it.
if ! mounted /sys/kernel/security securityfs && [ -d /sys/kernel/security ]; then
  if mount -t securityfs -o nosuid,nodev,noexec securityfs /sys/kernel/security 2>/dev/null; then
    say "mounted securityfs at /sys/kernel/security"
  else
    echo "install-deps: note: cannot mount securityfs; vigil probe will report the lockdown mode as unknown"
  fi
fi

if [ "$did" -eq 0 ]; then
  echo "install-deps: nothing to do (all ${#pkgs[@]} packages present, tracefs and bpffs mounted)"
fi
