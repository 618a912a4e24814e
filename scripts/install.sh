#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# install.sh install|uninstall KDIR: 'make install' and 'make uninstall'.
#
# install: the kernel's modules_install puts vballoon.ko (built for KDIR)
# into /lib/modules/<release>/updates/ (found before the kernel's own
# modules), /etc/modprobe.d/vballoon.conf keeps virtio_balloon from
# loading on its own, and depmod indexes the module.
# uninstall: removes that module for KDIR's release, runs depmod, and
# removes the modprobe.d file once no kernel has a 'make install'ed
# vballoon left.
# DESTDIR stages both under another root (depmod -b there).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
action=${1:?usage: install.sh install|uninstall KDIR}
kdir=${2:-}
destdir=${DESTDIR:-}
die() { echo "install: ERROR: $*" >&2; exit 1; }
uts=$kdir/include/generated/utsrelease.h
[ -n "$kdir" ] && [ -f "$uts" ] ||
	die "no kernel headers at KDIR='$kdir' (pass KDIR=/lib/modules/<release>/build)"
# the release uname -r prints (Debian's kernel.release file holds the
# upstream version, not that)
release=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$uts")
conf=$destdir/etc/modprobe.d/vballoon.conf

run_depmod() {
	if [ -n "$destdir" ]; then
		depmod -b "$destdir" "$release"
	else
		depmod -a "$release"
	fi
}

case $action in
install)
	if dpkg-query -W -f='${Status}' vballoon-dkms 2>/dev/null |
		grep -q 'ok installed'; then
		echo "install: note: the vballoon-dkms package is installed too;" \
			"its module (updates/dkms) and this one compete: use one" >&2
	fi
	# Unsigned, as DKMS's are: the headers carry no signing key, and
	# Debian's kernels load unsigned modules (taint E) unless the
	# machine enforces signatures (Secure Boot: sign with your MOK).
	make -C "$kdir" M="$top" INSTALL_MOD_DIR=updates CONFIG_MODULE_SIG_ALL= \
		${destdir:+INSTALL_MOD_PATH="$destdir"} modules_install
	install -D -m 0644 "$top/debian/modprobe.conf" "$conf"
	run_depmod
	echo "installed vballoon for $release; it binds the balloon from the next boot"
	echo "(now: unbind virtio_balloon's device and 'modprobe vballoon', see README.md)"
	;;
uninstall)
	# (DKMS's copy, in updates/dkms, is the package's to remove)
	find "$destdir/lib/modules/$release/updates" -name 'vballoon.ko*' \
		! -path '*/updates/dkms/*' -delete 2>/dev/null || true
	# the directories modules_install made, if nothing else is in them
	for dir in drivers/virtio/vballoon drivers/virtio drivers; do
		rmdir "$destdir/lib/modules/$release/updates/$dir" 2>/dev/null || true
	done
	[ -d "$destdir/lib/modules/$release" ] && run_depmod
	left=$(find "$destdir"/lib/modules/*/updates -name 'vballoon.ko*' \
		! -path '*/updates/dkms/*' 2>/dev/null | head -n 1 || true)
	if [ -z "$left" ]; then
		rm -f "$conf"
	fi
	echo "uninstalled vballoon for $release${left:+ (still installed: $left)}"
	;;
*)
	die "unknown action $action"
	;;
esac
