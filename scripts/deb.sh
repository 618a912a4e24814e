#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# deb.sh OUT: build vballoon-dkms_<version>_all.deb into OUT with Debian's
# own tooling (dpkg-buildpackage, debhelper's dh-sequence-dkms) and check
# it with lintian (errors fail).  The version is the project's VERSION
# file; debian/changelog is written here from it (the tree has none, so
# the version lives in one place), dated by the last commit that changed
# the package's files, so that the same sources give the same package.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: deb.sh OUT}
version=$(cat "$top/VERSION")
die() { echo "deb: ERROR: $*" >&2; exit 1; }
for tool in dpkg-buildpackage dh dh_dkms lintian; do
	command -v "$tool" >/dev/null ||
		die "$tool not found: run 'make deps' (debhelper, dh-dkms, lintian)"
done

# The package's sources: what git has or would add, or (a tree without git) the
# source files only, never the products of an in-place 'make'.
files() {
	if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git -C "$top" ls-files --cached --others --exclude-standard -- Kbuild VERSION drivers include debian
	else
		(cd "$top" && find Kbuild VERSION drivers include debian -type f \
			! -name '*.o' ! -name '*.ko' ! -name '*.mod*' ! -name '.*' \
			! -name Module.symvers ! -name modules.order)
	fi
}

src=$out/vballoon-$version
rm -rf "$src"
mkdir -p "$src"
(cd "$top" && files | cpio -pdm --quiet "$src")
[ -f "$src/debian/control" ] || die "no debian/ in $top"

# the last change to what the package holds: a commit elsewhere (docs,
# tests) leaves the package byte for byte the same, and the guest image
# keyed by it cached
when=$(git -C "$top" log -1 --format=%ct -- Kbuild VERSION drivers include \
	debian 2>/dev/null || true)
[ -n "$when" ] || when=$(date +%s)
cat >"$src/debian/changelog" <<EOT
vballoon ($version) unstable; urgency=medium

  * vballoon $version, packaged by 'make deb'.

 -- vballoon developers <vballoon@lists.vballoon.dev>  $(date -R -u -d "@$when")
EOT

log=$out/dpkg-buildpackage.log
rm -f "$out"/vballoon-dkms_*
if ! (cd "$src" && SOURCE_DATE_EPOCH=$when dpkg-buildpackage -b --no-sign) \
	>"$log" 2>&1; then
	tail -n 30 "$log"
	die "dpkg-buildpackage failed (log: $log)"
fi
deb=$out/vballoon-dkms_${version}_all.deb
[ -f "$deb" ] || die "no $deb (log: $log)"
if ! lintian --allow-root --fail-on error "$deb"; then
	die "lintian reports errors in $deb"
fi
echo "deb: $deb (lintian: no errors)"
