#!/usr/bin/env bash
# Installs (only if missing) what building and testing vigil needs, and
# mounts tracefs/bpffs when absent. Idempotent; services are kept from
# starting on install. Prints one line per action.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "install-deps: run as root" >&2; exit 1; }

pkgs=(clang-19 llvm-19 bpftool libbpf-dev podman runc busybox-static rsyslog iproute2 procps util-linux tar gdb)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  # keep services (rsyslog, ...) from starting during install
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-deps: installed ${missing[*]}"
else
  echo "install-deps: all packages present"
fi

if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ]; then
  mount -t tracefs -o nosuid,nodev,noexec tracefs /sys/kernel/tracing
  echo "install-deps: mounted tracefs at /sys/kernel/tracing"
fi
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mkdir -p /sys/fs/bpf && mount -t bpf -o nosuid,nodev,noexec bpf /sys/fs/bpf
  echo "install-deps: mounted bpffs at /sys/fs/bpf"
fi
