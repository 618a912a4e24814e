#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# graft.sh KSRC: put vballoon into the kernel source tree KSRC where it
# would sit upstream: drivers/virtio/vballoon/ (the KUnit suite of
# tests/kunit/ in its tests/), include/linux/vballoon_virtio.h, the lines
# of the top-level Kconfig in drivers/virtio/Kconfig inside "if
# VIRTIO_MENU", and obj-$(CONFIG_VBALLOON) in drivers/virtio/Makefile.
#
# Idempotent.  A file is rewritten only if it changed (so make rebuilds
# only what changed), through a new file and a rename (never in place, so
# a hard link into another tree is never written through); source files
# the project no longer has are removed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ksrc=${1:?usage: graft.sh KSRC}
die() { echo "graft: ERROR: $*" >&2; exit 1; }
if [ ! -f "$ksrc/Makefile" ] || [ ! -f "$ksrc/drivers/virtio/Kconfig" ]; then
	die "$ksrc does not look like a kernel source tree"
fi
[ ! -e "$ksrc/.vballoon-extracted" ] ||
	die "$ksrc is the pristine cached extraction; graft into a copy"
vb=$ksrc/drivers/virtio/vballoon

# replace FILE with FILE.vbtmp (same mode as FILE had)
commit() { chmod --reference="$1" "$1.vbtmp" 2>/dev/null || true; mv -f "$1.vbtmp" "$1"; }
# put SRC at DST unless DST has the same contents already
put() { cmp -s "$1" "$2" || { mkdir -p "$(dirname "$2")"; cp "$1" "$2.vbtmp"; commit "$2"; }; }
# the source files under directory $1, relative to it (no build products
# of the out-of-tree build; a tests/ subdirectory is synced on its own)
sources() {
	[ -d "$1" ] || return 0
	(cd "$1" && find . -path ./tests -prune -o -type f \( -name Kconfig \
		-o -name Makefile -o -name Kbuild -o -name '*.c' -o -name '*.h' \
		-o -name .kunitconfig \) ! -name '*.mod.c' -print | LC_ALL=C sort)
}
# make DST's source files those of SRC
sync() {
	local f
	sources "$1" | while IFS= read -r f; do put "$1/$f" "$2/$f"; done
	sources "$2" | while IFS= read -r f; do [ -e "$1/$f" ] || rm -f "$2/$f"; done
}

sync "$top/drivers/virtio/vballoon" "$vb"
sync "$top/tests/kunit" "$vb/tests"
# the version modinfo shows (drivers/virtio/vballoon/Makefile reads it)
put "$top/VERSION" "$vb/VERSION"
put "$top/include/linux/vballoon_virtio.h" "$ksrc/include/linux/vballoon_virtio.h"

# The top-level Kconfig's lines go before "endif # VIRTIO_MENU" (at the
# end if the tree has no such line); the Makefile line goes at the end.
kc=$ksrc/drivers/virtio/Kconfig mk=$ksrc/drivers/virtio/Makefile
# shellcheck disable=SC2016 # a make variable, not a shell one
mk_line='obj-$(CONFIG_VBALLOON) += vballoon/'
grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$top/Kconfig" | while IFS= read -r line; do
	if ! grep -qxF "$line" "$kc"; then
		awk -v line="$line" '/^endif # VIRTIO_MENU/ && !done { print line; print ""; done = 1 }
			{ print } END { if (!done) { print ""; print line } }' "$kc" >"$kc.vbtmp"
		commit "$kc"
	fi
	[ "$(grep -cxF "$line" "$kc")" = 1 ] || die "$kc: bad graft ($line)"
done
if ! grep -qxF "$mk_line" "$mk"; then
	{ cat "$mk"; echo "$mk_line"; } >"$mk.vbtmp"
	commit "$mk"
fi
[ "$(grep -cxF "$mk_line" "$mk")" = 1 ] || die "$mk: bad graft"
echo "graft: grafted $top into $(cd "$ksrc" && pwd)" >&2
