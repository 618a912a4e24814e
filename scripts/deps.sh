#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Install what building and testing vballoon needs, from Debian's archive.
# The kernel meta-packages pull the newest 6.1 and 6.12 kernels apt offers.
# 'make deb' needs debhelper, dh-dkms and lintian; the guest image
# (tests/image) mmdebstrap, mkfs.ext4 and qemu-img, and libvirt to boot it.
# "deps.sh --check" only reports whether anything is missing (exit 1).
set -eu
PKGS="build-essential libc6-dev qemu-system-x86 busybox-static cpio sparse
python3 python3-pytest xz-utils zstd kmod gnuplot-nox bc flex bison
libelf-dev libssl-dev dwarves
linux-image-amd64 linux-headers-amd64
linux-image-6.12-amd64 linux-headers-6.12-amd64 linux-source-6.12
debhelper dh-dkms dkms dpkg-dev lintian mmdebstrap e2fsprogs qemu-utils
libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		grep -q '^install ok installed' || missing="$missing $p"
done
if [ "${1:-}" = "--check" ]; then
	[ -z "$missing" ] && exit 0
	echo "missing packages:$missing" >&2
	exit 1
fi
[ -z "$missing" ] && { echo "deps: everything is installed"; exit 0; }
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
