#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# kernel-source.sh CACHE_DIR
# Extract Debian's linux-source-6.12 tarball once into
# CACHE_DIR/linux-source-<package version>/ and print that path.
# Extraction goes to a temporary name first, so an interrupted run never
# leaves a half tree behind that looks complete.
set -euo pipefail
cache=$1
ver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null) || {
	echo "kernel-source: linux-source-6.12 is not installed (run 'make deps')" >&2
	exit 1
}
dir=$cache/linux-source-$ver
if [ ! -f "$dir/.vballoon-extracted" ]; then
	mkdir -p "$cache"
	tarball=$(ls /usr/src/linux-source-6.12.tar.* | head -n 1)
	tmp=$(mktemp -d "$cache/.linux-source.XXXXXX")
	echo "kernel-source: extracting $tarball (once per version)" >&2
	tar -xf "$tarball" -C "$tmp" --strip-components=1
	touch "$tmp/.vballoon-extracted"
	rm -rf "$dir"
	mv "$tmp" "$dir"
fi
echo "$dir"
