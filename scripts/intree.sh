#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# intree.sh: build vballoon inside a real kernel tree (Debian's 6.12 source).
#
#   intree.sh graft KSRC     copy the driver (and tests/kunit/, if present)
#                            into the kernel tree KSRC and hook it into
#                            drivers/virtio/{Kconfig,Makefile}; idempotent.
#                            "intree.sh KSRC" (a directory) does the same.
#   intree.sh build [debug|module|all]
#                            build the debug kernel (vballoon=y, KASAN,
#                            lockdep, kmemleak, KUnit, ...) and/or the =m
#                            kernel (vballoon.ko); default: all.  An
#                            unchanged re-run only checks the artefacts.
#   intree.sh kunit [ARGS]   build the debug kernel if needed and run the
#                            built-in KUnit suites with kunit.py exec under
#                            QEMU; ARGS go to kunit.py (e.g. a filter glob).
#   intree.sh paths          print where the current artefacts are.
#   intree.sh clean          remove all in-tree build state from the cache.
#
# Layout, under CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/vballoon:
#   linux-source-<ver>/                pristine extraction (never written)
#   intree/<ver>/src/                  a copy of it, grafted in place
#   intree/<ver>/<variant>-<cfg>/      make O= dir; <cfg> hashes the source
#                                      version and the config fragments
#   debug-kernel/current               KEY=VALUE lines for the VM harness
#   debug-kernel/current.json          the same as JSON
#   debug-kernel/<release>-<key>/      bzImage, .config, System.map and
#                                      lib/modules/<release>/ of one build
#
# Environment: VBALLOON_JOBS (make -j, default 2), VBALLOON_KUNIT_TIMEOUT
# (seconds, default 900), VBALLOON_DEBUG_KERNEL_DIR (where to publish the
# debug kernel, default $CACHE/debug-kernel), PYTHON (default
# /usr/bin/python3).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vballoon}
PYTHON=${PYTHON:-/usr/bin/python3}
JOBS=${VBALLOON_JOBS:-2}
KUNIT_TIMEOUT=${VBALLOON_KUNIT_TIMEOUT:-900}
ARCH_ARGS=(ARCH=x86_64)
CONFIG_DIR=$TOP/scripts/config
# where the debug kernel is published for the VM harness
PUBLISH=${VBALLOON_DEBUG_KERNEL_DIR:-$CACHE/debug-kernel}
# Bump when the way a config or build is produced changes.
RECIPE=1

VB_WARN_RE='drivers/virtio/vballoon/|include/linux/vballoon_virtio\.h|modpost:.*vballoon'
# the same as tests/vm's BAD_CONSOLE_PATTERNS, plus kmemleak and KASAN
BAD_CONSOLE_RE='WARNING:|BUG:|Call Trace|kernel BUG|Oops|general protection fault|Kernel panic|list_del corruption|list_add corruption|UBSAN:|refcount_t:|kmemleak: .*new suspected|KASAN'
KCONFIG_LINE='source "drivers/virtio/vballoon/Kconfig"'
MAKEFILE_LINE='obj-$(CONFIG_VBALLOON) += vballoon/'

log() { echo "intree: $*" >&2; }
die() {
	echo "intree: ERROR: $*" >&2
	exit 1
}

usage() {
	sed -n '4,20p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-2}"
}

fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# --------------------------------------------------------------------------
# the project's files

# Source files under directory $1 (relative to TOP) that belong in a
# kernel tree: no build products of the out-of-tree build.
project_files_in() {
	local d=$1
	[ -d "$TOP/$d" ] || return 0
	(cd "$TOP" && find "$d" -type f \( -name Kconfig -o -name Makefile \
		-o -name Kbuild -o -name '*.c' -o -name '*.h' \
		-o -name .kunitconfig \) ! -name '*.mod.c' | LC_ALL=C sort)
}

project_files() {
	project_files_in drivers/virtio/vballoon
	echo include/linux/vballoon_virtio.h
	project_files_in tests/kunit
}

project_hash() {
	(cd "$TOP" && project_files | xargs -d '\n' sha256sum) | sha256sum | cut -c1-16
}

# sync_dir SRC DST: make the selected source files of SRC (relative to
# TOP) appear in DST.  Only changed files are rewritten (so make rebuilds
# only what changed), always through a temporary file and a rename, so a
# hard link into another tree is never written through.  Selected-type
# files in DST that SRC no longer has are removed.
sync_dir() {
	local src=$1 dst=$2 f rel
	mkdir -p "$dst"
	local -A want=()
	while IFS= read -r f; do
		[ -n "$f" ] || continue
		rel=${f#"$src"/}
		want[$rel]=1
		mkdir -p "$dst/$(dirname "$rel")"
		if ! cmp -s "$TOP/$f" "$dst/$rel"; then
			cp "$TOP/$f" "$dst/$rel.vbtmp"
			mv -f "$dst/$rel.vbtmp" "$dst/$rel"
		fi
	done < <(project_files_in "$src")
	while IFS= read -r f; do
		rel=${f#"$dst"/}
		[ -n "${want[$rel]:-}" ] || rm -f "$f"
	done < <(find "$dst" -type f \( -name Kconfig -o -name Makefile \
		-o -name Kbuild -o -name '*.c' -o -name '*.h' \
		-o -name .kunitconfig \) ! -name '*.mod.c')
}

# --------------------------------------------------------------------------
# graft

pristine_source() { "$TOP/scripts/kernel-source.sh" "$CACHE"; }

# rewrite FILE from stdin via a temporary file (never in place)
replace_file() {
	local file=$1
	cat >"$file.vbtmp"
	chmod --reference="$file" "$file.vbtmp"
	mv -f "$file.vbtmp" "$file"
}

graft() {
	local ksrc=$1
	[ -f "$ksrc/Makefile" ] && [ -f "$ksrc/drivers/virtio/Kconfig" ] ||
		die "$ksrc does not look like a kernel source tree"
	ksrc=$(cd "$ksrc" && pwd)
	if [ -e "$ksrc/.vballoon-extracted" ]; then
		die "$ksrc is the pristine cached extraction; graft into a copy" \
			"(intree.sh build makes one under $CACHE/intree/)"
	fi
	[ -f "$TOP/drivers/virtio/vballoon/Kconfig" ] ||
		die "$TOP/drivers/virtio/vballoon/Kconfig missing"

	sync_dir drivers/virtio/vballoon "$ksrc/drivers/virtio/vballoon"
	# tests/kunit/ lives at drivers/virtio/vballoon/tests/ in a kernel tree
	# (sync_dir above removed a stale copy if the project has none now)
	if [ -d "$TOP/tests/kunit" ]; then
		sync_dir tests/kunit "$ksrc/drivers/virtio/vballoon/tests"
	fi
	mkdir -p "$ksrc/include/linux"
	if ! cmp -s "$TOP/include/linux/vballoon_virtio.h" \
		"$ksrc/include/linux/vballoon_virtio.h"; then
		cp "$TOP/include/linux/vballoon_virtio.h" \
			"$ksrc/include/linux/vballoon_virtio.h.vbtmp"
		mv -f "$ksrc/include/linux/vballoon_virtio.h.vbtmp" \
			"$ksrc/include/linux/vballoon_virtio.h"
	fi

	# Kconfig: inside "if VIRTIO_MENU" (with the other virtio drivers)
	local kc=$ksrc/drivers/virtio/Kconfig
	if ! grep -qxF "$KCONFIG_LINE" "$kc"; then
		if grep -q '^endif # VIRTIO_MENU' "$kc"; then
			awk -v line="$KCONFIG_LINE" '
				/^endif # VIRTIO_MENU/ && !done { print line; print ""; done = 1 }
				{ print }' "$kc" | replace_file "$kc"
		else
			{ cat "$kc"; printf '\n%s\n' "$KCONFIG_LINE"; } | replace_file "$kc"
		fi
	fi
	local mk=$ksrc/drivers/virtio/Makefile
	if ! grep -qxF "$MAKEFILE_LINE" "$mk"; then
		{ cat "$mk"; printf '%s\n' "$MAKEFILE_LINE"; } | replace_file "$mk"
	fi
	[ "$(grep -cxF "$KCONFIG_LINE" "$kc")" = 1 ] || die "$kc: bad graft"
	[ "$(grep -cxF "$MAKEFILE_LINE" "$mk")" = 1 ] || die "$mk: bad graft"
	log "grafted $TOP into $ksrc"
}

# --------------------------------------------------------------------------
# the working tree: a private copy of the pristine extraction

setup_paths() {
	PRISTINE=$(pristine_source)
	KVER=$(basename "$PRISTINE")
	KVER=${KVER#linux-source-}
	WORK=$CACHE/intree/$KVER
	SRC=$WORK/src
}

prepare_worktree() {
	if [ ! -f "$SRC/.vballoon-worktree" ]; then
		log "copying $PRISTINE to $SRC (once per kernel version)"
		mkdir -p "$WORK"
		rm -rf "$SRC" "$SRC.tmp"
		cp -a "$PRISTINE" "$SRC.tmp"
		rm -f "$SRC.tmp/.vballoon-extracted"
		echo "$PRISTINE" >"$SRC.tmp/.vballoon-worktree"
		mv "$SRC.tmp" "$SRC"
		# older kernel versions' trees and builds are of no further use
		local d
		for d in "$CACHE"/intree/*/; do
			[ "${d%/}" = "$WORK" ] || { log "removing old $d"; rm -rf "$d"; }
		done
	fi
	graft "$SRC"
}

lock() {
	mkdir -p "$CACHE/intree"
	exec 9>"$CACHE/intree/.lock"
	if ! flock -n 9; then
		log "waiting for another intree.sh run to finish (lock $CACHE/intree/.lock)"
		flock 9
	fi
}

# --------------------------------------------------------------------------
# configuration

fragments() {
	case $1 in
	debug) echo "$CONFIG_DIR/base.config $CONFIG_DIR/debug.config" ;;
	module) echo "$CONFIG_DIR/base.config $CONFIG_DIR/module.config" ;;
	*) die "unknown variant $1" ;;
	esac
}

config_hash() {
	local variant=$1
	# shellcheck disable=SC2046
	{
		echo "recipe $RECIPE $KVER $variant tinyconfig"
		cat $(fragments "$variant")
	} | sha256sum | cut -c1-12
}

# symbol=value pairs a fragment asks for ("n" for "is not set")
wanted_symbols() {
	sed -n -E -e 's/^(CONFIG_[A-Za-z0-9_]+)=(.*)$/\1=\2/p' \
		-e 's/^# (CONFIG_[A-Za-z0-9_]+) is not set$/\1=n/p' "$@"
}

# symbol=value pairs of a .config
actual_symbols() {
	sed -n -E -e 's/^(CONFIG_[A-Za-z0-9_]+)=(.*)$/\1=\2/p' \
		-e 's/^# (CONFIG_[A-Za-z0-9_]+) is not set$/\1=n/p' "$1"
}

configure() {
	local variant=$1 out=$2 frags
	frags=$(fragments "$variant")
	log "$variant: configuring (tinyconfig + ${frags//$CONFIG_DIR\//})"
	mkdir -p "$out"
	{
		make -C "$SRC" O="$out" "${ARCH_ARGS[@]}" tinyconfig
		# shellcheck disable=SC2086
		"$SRC/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" $frags
		make -C "$SRC" O="$out" "${ARCH_ARGS[@]}" olddefconfig
	} >"$out/config.log" 2>&1 || {
		tail -n 30 "$out/config.log" >&2
		die "$variant: configuration failed (log: $out/config.log)"
	}
	verify_config "$variant" "$out/.config"
}

verify_config() {
	local variant=$1 config=$2 frags sym want have
	local -A actual=() optional=()
	local bad=() skipped=()
	frags=$(fragments "$variant")
	while IFS='=' read -r sym have; do actual[$sym]=$have; done \
		< <(actual_symbols "$config")
	# shellcheck disable=SC2086
	for sym in $(sed -n 's/^# vballoon-optional: *//p' $frags); do
		optional[CONFIG_$sym]=1
	done
	while IFS='=' read -r sym want; do
		have=${actual[$sym]-}
		if [ -z "${actual[$sym]+set}" ]; then
			# absent from .config: the symbol is not visible/defined
			if [ -n "${optional[$sym]:-}" ] && ! symbol_defined "$sym"; then
				skipped+=("$sym")
				continue
			fi
			have=n
		fi
		[ "$have" = "$want" ] || bad+=("$sym: wanted $want, got $have")
	done < <(wanted_symbols $frags)
	for sym in "${skipped[@]}"; do
		log "$variant: note: $sym is not defined in the tree (yet); skipped"
	done
	if [ ${#bad[@]} -gt 0 ]; then
		printf '  %s\n' "${bad[@]}" >&2
		die "$variant: ${#bad[@]} config symbol(s) did not end up as asked" \
			"(unmet dependencies?); see $config"
	fi
	log "$variant: config verified ($(wanted_symbols $frags | wc -l) symbols)"
}

symbol_defined() {
	local name=${1#CONFIG_}
	grep -rqsE --include='Kconfig*' "^[[:space:]]*(menu)?config[[:space:]]+$name\$" \
		"$SRC/drivers/virtio" "$SRC/lib/kunit"
}

# --------------------------------------------------------------------------
# builds

obj_dir() { echo "$WORK/$1-$(config_hash "$1")"; }

build_key() {
	local variant=$1
	{
		echo "$variant $(config_hash "$variant") $PROJECT_HASH"
		sha256sum "$0" | cut -d' ' -f1
	} | sha256sum | cut -c1-16
}

# The artefacts a finished build of $1 in $2 must have.
artefacts() {
	local variant=$1 out=$2
	echo "$out/arch/x86/boot/bzImage"
	echo "$out/vmlinux"
	if [ "$variant" = module ]; then
		echo "$out/drivers/virtio/vballoon/vballoon.ko"
		if grep -qx 'CONFIG_VBALLOON_KUNIT_TEST=m' "$out/.config" 2>/dev/null; then
			find "$out/drivers/virtio/vballoon/tests" -name '*.ko' 2>/dev/null |
				grep -q . || echo "$out/drivers/virtio/vballoon/tests/*.ko"
		fi
	fi
}

artefacts_ok() {
	local f
	while IFS= read -r f; do [ -e "$f" ] || return 1; done < <(artefacts "$@")
}

kernel_release() { cat "$1/include/config/kernel.release"; }

# build VARIANT: sets BUILT_OUT and BUILD_SECONDS
build_variant() {
	local variant=$1 out key stampf t0 logf total vb
	out=$(obj_dir "$variant")
	key=$(build_key "$variant")
	stampf=$out/.vballoon-stamp
	BUILT_OUT=$out
	BUILD_SECONDS=0
	if [ "$(cat "$stampf" 2>/dev/null)" = "$key" ] && artefacts_ok "$variant" "$out"; then
		log "$variant: up to date ($out)"
		return 0
	fi
	t0=$SECONDS
	# Only one O= dir per variant is kept.  After a config change the
	# previous one is renamed and reused: kbuild tracks which objects
	# depend on which symbols, so a changed fragment rebuilds minutes
	# of objects, not the whole kernel.
	local d
	for d in "$WORK/$variant"-*/; do
		[ -d "$d" ] && [ "${d%/}" != "$out" ] || continue
		if [ ! -e "$out" ]; then
			log "reusing ${d%/} as $out (config changed)"
			mv "${d%/}" "$out"
			rm -f "$out/build-first.log"
		else
			log "removing old $d"
			rm -rf "$d"
		fi
	done
	configure "$variant" "$out"
	# Always recompile the driver's own objects, so its warnings show up
	# in this log even if a previous (failed) run compiled them already.
	rm -f "$out"/drivers/virtio/vballoon/*.o "$out"/drivers/virtio/vballoon/tests/*.o
	logf=$out/build.log
	log "$variant: make -j$JOBS all (log: $logf)"
	local rc=0
	make -C "$SRC" O="$out" "${ARCH_ARGS[@]}" -j"$JOBS" all >"$logf" 2>&1 || rc=$?
	# the first build of this O= dir compiled everything: keep its log
	[ -f "$out/build-first.log" ] || cp "$logf" "$out/build-first.log"
	if [ $rc -ne 0 ]; then
		grep -E 'error|Error' "$logf" | head -n 30 >&2 || true
		tail -n 20 "$logf" >&2
		die "$variant: build failed (log: $logf)"
	fi
	total=$(grep -cE 'warning:|^WARNING:' "$logf" || true)
	# (the cache path contains "vballoon" too: match the tree's own paths)
	vb=$(grep -E 'warning:|^WARNING:' "$logf" |
		grep -E "$VB_WARN_RE" || true)
	if [ -n "$vb" ]; then
		echo "$vb" >&2
		die "$variant: warnings in vballoon files (above; log: $logf)"
	fi
	artefacts_ok "$variant" "$out" || {
		artefacts "$variant" "$out" | while IFS= read -r f; do
			[ -e "$f" ] || echo "  missing: $f" >&2
		done
		die "$variant: build finished but artefacts are missing"
	}
	echo "$key" >"$stampf"
	BUILD_SECONDS=$((SECONDS - t0))
	log "$variant: built in $(fmt_time $BUILD_SECONDS); warnings in this run:" \
		"$total (0 in vballoon files)"
}

# Copy the debug kernel somewhere a rebuild does not overwrite, install its
# modules there (modules.dep, modules.builtin for the harness) and point
# $CACHE/debug-kernel/current at it.
publish_debug() {
	local out=$1 key rel dest pub=$PUBLISH
	key=$(cat "$out/.vballoon-stamp")
	rel=$(kernel_release "$out")
	dest=$pub/$rel-$key
	if [ ! -f "$dest/.complete" ]; then
		rm -rf "$dest" "$dest.tmp"
		mkdir -p "$dest.tmp"
		make -C "$SRC" O="$out" "${ARCH_ARGS[@]}" INSTALL_MOD_PATH="$dest.tmp" \
			modules_install >"$out/modules_install.log" 2>&1 || {
			tail -n 20 "$out/modules_install.log" >&2
			die "debug: modules_install failed"
		}
		rm -f "$dest.tmp/lib/modules/$rel/build" "$dest.tmp/lib/modules/$rel/source"
		cp "$out/arch/x86/boot/bzImage" "$out/System.map" "$dest.tmp/"
		cp "$out/.config" "$dest.tmp/config"
		touch "$dest.tmp/.complete"
		mv "$dest.tmp" "$dest"
	fi
	cat >"$pub/current.tmp" <<EOF
RELEASE=$rel
BZIMAGE=$dest/bzImage
MODDIR=$dest/lib/modules/$rel
CONFIG=$dest/config
SYSTEM_MAP=$dest/System.map
BUILD_DIR=$out
VMLINUX=$out/vmlinux
KSRC=$SRC
KEY=$key
EOF
	mv -f "$pub/current.tmp" "$pub/current"
	"$PYTHON" - "$pub/current" >"$pub/current.json.tmp" <<'EOF'
import json, sys
kv = dict(l.split("=", 1) for l in open(sys.argv[1]).read().splitlines() if "=" in l)
print(json.dumps({k.lower(): v for k, v in kv.items()}, indent=1))
EOF
	mv -f "$pub/current.json.tmp" "$pub/current.json"
	# keep the two newest published kernels (a harness may be using one)
	local old
	while IFS= read -r old; do
		[ "$old" = "$dest" ] || rm -rf "$old"
	done < <(ls -1dt "$pub"/*-*/ 2>/dev/null | sed 's:/$::' | tail -n +3)
}

do_build() {
	local which=${1:-all} v
	local -a variants
	case $which in
	all) variants=(debug module) ;;
	debug | module) variants=("$which") ;;
	*) usage ;;
	esac
	setup_paths
	lock
	# hashed before the copy: an edit racing with it only causes a rebuild
	PROJECT_HASH=$(project_hash)
	export PROJECT_HASH
	prepare_worktree
	local summary=() failed=() t0 out t
	for v in "${variants[@]}"; do
		# each variant in its own process (under our lock), so one failing
		# does not stop the other
		t0=$SECONDS
		if ! bash "$0" __build_one "$v"; then
			failed+=("$v")
			continue
		fi
		out=$(obj_dir "$v")
		if [ "$v" = debug ]; then
			summary+=("debug  bzImage:     $(sed -n 's/^BZIMAGE=//p' "$PUBLISH/current")"
				"debug  build dir:   $out"
				"debug  harness:     $PUBLISH/current"
				"debug  build time:  $(fmt_time $((SECONDS - t0)))")
		else
			summary+=("module vballoon.ko: $out/drivers/virtio/vballoon/vballoon.ko")
			for t in "$out"/drivers/virtio/vballoon/tests/*.ko; do
				[ -e "$t" ] && summary+=("module KUnit .ko:   $t")
			done
			summary+=("module build time:  $(fmt_time $((SECONDS - t0)))")
		fi
	done
	[ ${#summary[@]} -eq 0 ] || printf '%s\n' "${summary[@]}"
	[ ${#failed[@]} -eq 0 ] || die "build failed: ${failed[*]}"
}

# internal: one variant, called by do_build with the lock held
build_one() {
	setup_paths
	[ -n "${PROJECT_HASH:-}" ] || die "__build_one is internal (use: build)"
	build_variant "$1"
	[ "$1" != debug ] || publish_debug "$BUILT_OUT"
}

do_kunit() {
	do_build debug >/dev/null
	setup_paths
	local out
	out=$(obj_dir debug)
	grep -qx 'CONFIG_VBALLOON_KUNIT_TEST=y' "$out/.config" ||
		die "the debug kernel has no vballoon KUnit suite" \
			"(CONFIG_VBALLOON_KUNIT_TEST is not defined/enabled yet)"
	lock
	log "kunit.py exec on $out/arch/x86/boot/bzImage (QEMU TCG, timeout ${KUNIT_TIMEOUT}s)"
	local t0=$SECONDS rc=0
	"$PYTHON" "$SRC/tools/testing/kunit/kunit.py" exec --arch=x86_64 \
		--build_dir="$out" --timeout="$KUNIT_TIMEOUT" "$@" || rc=$?
	# A lockdep splat, WARN or DEBUG_VM report does not fail a KUnit case
	# by itself; the kernel log does show it.
	local bad
	bad=$(grep -E "$BAD_CONSOLE_RE" "$out/test.log" || true)
	if [ -n "$bad" ]; then
		echo "$bad" >&2
		log "kunit: the kernel log has the reports above"
		[ "$rc" -ne 0 ] || rc=1
	fi
	log "kunit: rc $rc ($(fmt_time $((SECONDS - t0))); raw log: $out/test.log)"
	return $rc
}

do_paths() {
	setup_paths
	echo "source tree: $SRC"
	echo "debug O=:    $(obj_dir debug)"
	echo "module O=:   $(obj_dir module)"
	if [ -f "$PUBLISH/current" ]; then
		echo "debug kernel ($PUBLISH/current):"
		sed 's/^/  /' "$PUBLISH/current"
	else
		echo "debug kernel: not built yet (intree.sh build debug)"
	fi
}

do_clean() {
	lock
	rm -rf "$CACHE/intree" "$PUBLISH"
	log "removed $CACHE/intree and $PUBLISH"
}

case ${1:-} in
graft)
	[ $# -eq 2 ] || usage
	graft "$2"
	;;
build)
	shift
	[ $# -le 1 ] || usage
	do_build "${1:-all}"
	;;
kunit)
	shift
	do_kunit "$@"
	;;
__build_one)
	[ $# -eq 2 ] || usage
	build_one "$2"
	;;
paths) do_paths ;;
clean) do_clean ;;
-h | --help | help) usage 0 ;;
*)
	if [ $# -eq 1 ] && [ -d "$1" ]; then
		graft "$1"
	else
		usage
	fi
	;;
esac
