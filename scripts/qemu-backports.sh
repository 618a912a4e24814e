#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# The newest QEMU of bookworm-backports, unpacked into the cache (never
# installed: the system's QEMU 7.2 stays what every other test runs).
#
#     scripts/qemu-backports.sh <cache>     # fetch if needed, print the binary
#
# Why: test_hinting.py live-migrates a guest to a second QEMU.  Under
# QEMU 7.2's TCG a migration with free page hints brought the guest over
# corrupted most of the time, with virtio_balloon as with vballoon, and
# never without hints; QEMU 10.0 from bookworm-backports migrates the
# same guests intact.  The package's own version keys the directory, so
# a newer backport is picked up and an old one is not refetched.  With
# the archive unreachable, the last one fetched is used.
set -eu
cache=${1:?usage: qemu-backports.sh <cache dir>}
base="$cache/qemu-backports"
apt="$base/apt"
pkgs="qemu-system-x86 qemu-system-common qemu-system-data"
mkdir -p "$apt/lists/partial" "$apt/archives/partial"
cat > "$apt/backports.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# shellcheck disable=SC2086
set -- -q -o Dir::Etc::sourcelist="$apt/backports.sources" \
	-o Dir::Etc::sourceparts=/nonexistent \
	-o Dir::State::Lists="$apt/lists" \
	-o Dir::Cache::archives="$apt/archives" \
	-o APT::Sandbox::User=root

use_last() {
	if [ -x "$base/current/usr/bin/qemu-system-x86_64" ]; then
		echo "qemu-backports: $1; using the last one fetched" >&2
		echo "$base/current/usr/bin/qemu-system-x86_64"
		exit 0
	fi
	echo "qemu-backports: $1" >&2
	exit 1
}

apt-get "$@" update >"$apt/update.log" 2>&1 ||
	use_last "apt-get update of bookworm-backports failed ($apt/update.log)"
ver=$(apt-cache "$@" policy qemu-system-x86 |
	awk '/bpo/ && $1 ~ /[0-9]/ { v = ($1 == "***") ? $2 : $1; print v; exit }')
[ -n "$ver" ] || use_last "bookworm-backports has no qemu-system-x86"
dir="$base/$(echo "$ver" | tr ':~+' '___')"
if [ ! -x "$dir/usr/bin/qemu-system-x86_64" ]; then
	tmp=$(mktemp -d "$base/.fetch.XXXXXX")
	(cd "$tmp" && for p in $pkgs; do
		apt-get "$@" download "$p=$ver" >>"$apt/download.log" 2>&1 ||
			exit 1
	done) || { rm -rf "$tmp"; use_last "download of QEMU $ver failed"; }
	mkdir -p "$tmp/root"
	for deb in "$tmp"/*.deb; do
		dpkg-deb -x "$deb" "$tmp/root"
	done
	rm -rf "$dir"
	mv "$tmp/root" "$dir"
	rm -rf "$tmp"
fi
"$dir/usr/bin/qemu-system-x86_64" --version >/dev/null 2>&1 ||
	use_last "QEMU $ver does not run here (missing libraries?)"
ln -sfn "$dir" "$base/current.new"
mv -T "$base/current.new" "$base/current"
echo "$dir/usr/bin/qemu-system-x86_64"
