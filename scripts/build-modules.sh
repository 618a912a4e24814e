#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# build-modules.sh BUILD_DIR SOURCES...
# Build vballoon.ko with W=1 and sparse (C=2) against the newest Debian 6.1
# and 6.12 headers, each in BUILD_DIR/<release>/, and fail on any warning
# or sparse complaint about the project's own files.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$1
shift
kernels=$("$top/scripts/kernels.sh")
status=0
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
done <<<"$kernels"
exit $status
