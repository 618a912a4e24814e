#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# checkpatch.sh CACHE_DIR
# Run checkpatch.pl --strict from Debian's linux-source-6.12 over every
# source file of the driver and of the test device (tests/vbhost).  The
# script (and the data files it reads) is pulled out of the source tarball
# once, into CACHE_DIR, keyed by the package version.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=$1
ver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null) || {
	echo "checkpatch: linux-source-6.12 is not installed (run 'make deps')" >&2
	exit 1
}
dir=$cache/checkpatch-$ver
if [ ! -f "$dir/scripts/checkpatch.pl" ]; then
	tarball=$(ls /usr/src/linux-source-6.12.tar.* | head -n 1)
	tmp=$(mktemp -d "$cache/.checkpatch.XXXXXX" 2>/dev/null || {
		mkdir -p "$cache" && mktemp -d "$cache/.checkpatch.XXXXXX"; })
	tar -xf "$tarball" -C "$tmp" --strip-components=1 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
	rm -rf "$dir"
	mv "$tmp" "$dir"
fi
cd "$top"
# CAMELCASE: without a tree checkpatch cannot tell the kernel's own
# mixed-case names (__SetPageOffline, PageOffline) from new ones.
mapfile -t files < <(find drivers include tests/kunit tests/vbhost -type f \
	\( -name '*.c' -o -name '*.h' \) ! -name '*.mod.c' 2>/dev/null | sort)
if perl "$dir/scripts/checkpatch.pl" --no-tree --strict --terse \
	--show-types --ignore FILE_PATH_CHANGES,CAMELCASE -f "${files[@]}"; then
	echo "ok   checkpatch --strict: ${#files[@]} files clean"
else
	echo "FAIL checkpatch --strict"
	exit 1
fi
