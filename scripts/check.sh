#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# check.sh: everything 'make check' runs, in order, each stage counted as
# passed or failed; the VM suite's own counts are added in.  Ends with
# "N passed, N failed" and exits non-zero if anything failed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
passed=0
failed=0
failures=()
start=$(date +%s)

stage() {
	local name=$1
	shift
	local t0=$SECONDS
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1))
		echo "=== $name: ok ($((SECONDS - t0))s)"
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "=== $name: FAILED ($((SECONDS - t0))s)"
		return 1
	fi
}

# A test runner stage: its own counts are added to ours, read from a plain
# "N passed, N failed" line, pytest's closing summary or kunit.py's "Ran N
# tests: passed: P, failed: F"; a runner that printed none counts as one
# stage.
suite() {
	local name=$1
	shift
	local t0=$SECONDS log line p="" f=""
	log=$(mktemp)
	echo "=== $name"
	"$@" 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]}
	line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		p=$(sed -E 's/.*\b([0-9]+) passed.*/\1/' <<<"$line")
		f=$(sed -E 's/.*\b([0-9]+) failed.*/\1/' <<<"$line")
	fi
	if [ -z "$p" ]; then
		# pytest: "=== 3 failed, 50 passed, 1 error in 600.1s ==="
		line=$(grep -E '^=+ .*[0-9]+ (passed|failed|errors?)\b.* in [0-9.]+s' \
			"$log" | tail -n 1)
		if [ -n "$line" ]; then
			p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
			f=$(($(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0) + \
				$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || echo 0)))
		fi
	fi
	if [ -z "$p" ]; then
		line=$(grep -E 'Ran [0-9]+ tests?: passed: [0-9]+' "$log" | tail -n 1)
		if [ -n "$line" ]; then
			p=$(sed -E 's/.*passed: ([0-9]+).*/\1/' <<<"$line")
			f=$(sed -nE 's/.*failed: ([0-9]+).*/\1/p' <<<"$line")
			f=${f:-0}
		fi
	fi
	rm -f "$log"
	if [ -n "$p" ]; then
		passed=$((passed + p))
		failed=$((failed + f))
		# A runner that failed without counting a failure (crash,
		# timeout) still fails the run.
		[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
	elif [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
	if [ "$rc" -ne 0 ]; then
		failures+=("$name")
	fi
	echo "=== $name: rc $rc ($((SECONDS - t0))s)"
	return "$rc"
}

stage "checkpatch --strict" make -s checkpatch
modules_ok=0
stage "module builds (6.1, 6.12; W=1, sparse)" make -s modules && modules_ok=1
intree_ok=0
stage "in-tree builds (vballoon=y debug kernel, vballoon=m)" \
	scripts/intree.sh build && intree_ok=1
if [ "$intree_ok" -eq 1 ]; then
	suite "KUnit (kunit.py on the debug kernel)" scripts/intree.sh kunit
fi
# The VM suite: Debian 6.1 and 6.12 with vballoon.ko (and virtio_balloon
# for parity), and the debug kernel (KASAN, lockdep, kmemleak) with vballoon
# built in, each (kernel, test module) a job; run.py runs them in parallel.
vm_kernels=()
[ "$modules_ok" -eq 1 ] && vm_kernels+=(6.1 6.12)
[ "$intree_ok" -eq 1 ] && vm_kernels+=(debug)
if [ ${#vm_kernels[@]} -gt 0 ]; then
	vm_list=$(IFS=,; echo "${vm_kernels[*]}")
	suite "VM tests (${vm_list//,/, })" \
		/usr/bin/python3 tests/vm/run.py --kernels "$vm_list"
fi

echo
echo "make check: $((($(date +%s) - start) / 60)) min $((($(date +%s) - start) % 60)) s"
if [ ${#failures[@]} -gt 0 ]; then
	printf 'failed stage: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
