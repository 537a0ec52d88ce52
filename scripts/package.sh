#!/usr/bin/env bash
# Builds the Debian package from the release binary already built
# (target/release/vigil, or $VIGIL_BIN; nothing is recompiled) with
# dpkg-deb, and prints the package's path as its last line.
#
#   cargo build --release --locked -p vigil-engine && scripts/package.sh
#
# Contents: /usr/bin/vigil; /etc/vigil/vigil.toml (conffile, every key
# commented with its default, generated from docs/config.md); /var/lib/vigil
# (0700); the systemd unit; a logrotate snippet (conffile); man pages (one per command, vigil.toml(5));
# bash/zsh/fish completions; the Grafana dashboard and the docs under
# /usr/share. Man pages, completions and the config come from
# `vigil generate` (the binary's own clap definitions and embedded
# configuration reference). Output: target/debian/vigil_VERSION_ARCH.deb.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "package.sh: ERROR: $*" >&2; exit 1; }
bin=${VIGIL_BIN:-target/release/vigil}
[ -x "$bin" ] || die "$bin missing: run 'cargo build --release --locked -p vigil-engine' first"
command -v dpkg-deb >/dev/null || die "dpkg-deb missing (apt-get install dpkg)"
version=$("$bin" --version | awk '{print $2}')
[ -n "$version" ] || die "cannot read the version from '$bin --version'"
arch=$(dpkg --print-architecture)
out=target/debian
mkdir -p "$out"
stage=$(mktemp -d "$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
gen=$stage/gen
root=$stage/root
"$bin" generate "$gen" >/dev/null

umask 022
d() { install -d -m "${2:-0755}" "$root$1"; }
f() { install -m "$1" "$2" "$root$3"; }
d /usr/bin; f 0755 "$bin" /usr/bin/vigil
d /etc/vigil; f 0600 "$gen/vigil.toml" /etc/vigil/vigil.toml
d /var/lib/vigil 0700
d /lib/systemd/system; f 0644 packaging/vigil.service /lib/systemd/system/vigil.service
d /etc/logrotate.d; f 0644 packaging/vigil.logrotate /etc/logrotate.d/vigil
d /usr/share/man/man1; d /usr/share/man/man5
for p in "$gen"/man/man1/*.1; do gzip -9n < "$p" > "$root/usr/share/man/man1/$(basename "$p").gz"; done
gzip -9n < "$gen/man/man5/vigil.toml.5" > "$root/usr/share/man/man5/vigil.toml.5.gz"
d /usr/share/bash-completion/completions; f 0644 "$gen/completions/vigil.bash" /usr/share/bash-completion/completions/vigil
d /usr/share/zsh/vendor-completions; f 0644 "$gen/completions/_vigil" /usr/share/zsh/vendor-completions/_vigil
d /usr/share/fish/vendor_completions.d; f 0644 "$gen/completions/vigil.fish" /usr/share/fish/vendor_completions.d/vigil.fish
d /usr/share/vigil/grafana; f 0644 outputs/grafana/vigil.json /usr/share/vigil/grafana/vigil.json
d /usr/share/doc/vigil
f 0644 README.md /usr/share/doc/vigil/README.md
for doc in docs/*.md; do f 0644 "$doc" "/usr/share/doc/vigil/$(basename "$doc")"; done
f 0644 rules/README.md /usr/share/doc/vigil/rules.md
d /usr/share/doc/vigil/examples; f 0644 packaging/rsyslog-relay.conf /usr/share/doc/vigil/examples/rsyslog-relay.conf
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: vigil"
  echo
  echo "Files: *"
  echo "License: Apache-2.0 AND GPL-2.0-only"
  echo " The user-space programs are Apache-2.0; the eBPF programs embedded in the"
  echo " binary are GPL-2.0-only. Full texts: /usr/share/common-licenses/Apache-2.0,"
  echo " /usr/share/common-licenses/GPL-2."
} > "$root/usr/share/doc/vigil/copyright"
chmod 0644 "$root/usr/share/doc/vigil/copyright"

d /DEBIAN
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: vigil
Version: $version
Architecture: $arch
Maintainer: vigil developers <vigil@example.invalid>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgcc-s1
Recommends: init-system-helpers
Section: admin
Priority: optional
Homepage: https://example.invalid/vigil
Description: Linux host security and anomaly-detection agent (eBPF)
 eBPF sensors watch program execution, file opens, network connections,
 privilege changes and the kernel attack surface; vigil enriches every event
 with its process, parent chain, user and container, raises alerts from
 built-in and Sigma rules, learns per-program baselines and delivers alerts to
 stdout, files and syslog/SIEMs, with Prometheus metrics.
CONTROL
printf '%s\n' /etc/vigil/vigil.toml /etc/logrotate.d/vigil > "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"; done
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

deb="$out/vigil_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip -z6 --build "$root" "$deb" >/dev/null
echo "$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"
