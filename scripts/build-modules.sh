#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# build-modules.sh BUILD_DIR SOURCES...
# Build vballoon.ko with W=1 and sparse (C=2) against the newest Debian 6.1
# and 6.12 headers, each in BUILD_DIR/<release>/, and fail on any warning
# or sparse complaint about the project's own files.
# The test device tests/vbhost is built the same way into
# BUILD_DIR/<release>/vbhost.ko, and, when `make intree` has published a
# debug kernel (its O= build directory is BUILD_DIR= in
# ${XDG_CACHE_HOME:-~/.cache}/vballoon/debug-kernel/current), against that
# too (W=1, no sparse) into BUILD_DIR/<debug release>/vbhost.ko.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$1
shift
kernels=$("$top/scripts/kernels.sh")
status=0

# build_vbhost RELEASE KDIR MAKE-FLAGS...: tests/vbhost -> BUILD_DIR/RELEASE/
build_vbhost() {
	local release=$1 kdir=$2 out=$build/$1
	shift 2
	mkdir -p "$out/vbhost"
	cp -a "$top/tests/vbhost/Kbuild" "$top/tests/vbhost/vbhost.c" "$out/vbhost/"
	local log=$out/vbhost-build.log
	if ! make -C "$kdir" M="$out/vbhost" W=1 "$@" modules >"$log" 2>&1; then
		echo "FAIL build vbhost $release (log: $log)"
		tail -n 30 "$log"
		return 1
	fi
	if grep -E '(warning|error):' "$log"; then
		echo "FAIL build vbhost $release: warnings above (log: $log)"
		return 1
	fi
	cp "$out/vbhost/vbhost.ko" "$out/vbhost.ko"
	echo "ok   build vbhost $release: W=1 $* clean -> $out/vbhost.ko"
}
while read -r release kdir; do
	out=$build/$release
	mkdir -p "$out/tree"
	# Refresh the copy; unchanged files keep their times so make is quick.
	(cd "$top" && cp -a --parents "$@" "$out/tree/")
	log=$out/build.log
	if ! make -C "$kdir" M="$out/tree" W=1 C=2 modules >"$log" 2>&1; then
		echo "FAIL build $release (log: $log)"
		tail -n 30 "$log"
		status=1
		continue
	fi
	if grep -E '(warning|error):' "$log"; then
		echo "FAIL build $release: warnings above (log: $log)"
		status=1
		continue
	fi
	cp "$out/tree/drivers/virtio/vballoon/vballoon.ko" "$out/vballoon.ko"
	echo "ok   build $release: W=1 and sparse clean -> $out/vballoon.ko"
	build_vbhost "$release" "$kdir" C=2 || status=1
done <<<"$kernels"

cur=${XDG_CACHE_HOME:-$HOME/.cache}/vballoon/debug-kernel/current
if [ -f "$cur" ]; then
	release=$(sed -n 's/^RELEASE=//p' "$cur")
	kdir=$(sed -n 's/^BUILD_DIR=//p' "$cur")
	if [ -n "$release" ] && [ -f "$kdir/Module.symvers" ]; then
		build_vbhost "$release" "$kdir" || status=1
	else
		echo "skip build vbhost for the debug kernel: no build directory in $cur"
	fi
fi
exit $status
