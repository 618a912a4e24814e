#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Print "<release> <headers-dir>" for the newest installed Debian 6.1 and
# 6.12 kernel headers, one line each, in that order.  Exit 1 if either is
# missing (run `make deps`).
set -u
rc=0
for series in 6.1 6.12; do
	dir=$(ls -d /usr/src/linux-headers-"$series".*-amd64 2>/dev/null |
		sort -V | tail -n 1)
	if [ -z "$dir" ] || [ ! -f "$dir/Makefile" ]; then
		echo "no Debian $series kernel headers installed (run 'make deps')" >&2
		rc=1
		continue
	fi
	echo "${dir#/usr/src/linux-headers-} $dir"
done
exit $rc
