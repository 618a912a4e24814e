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

# A test runner stage: its own "N passed, N failed" line is added to ours.
suite() {
	local name=$1
	shift
	local t0=$SECONDS log line p f
	log=$(mktemp)
	echo "=== $name"
	"$@" 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]}
	line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	rm -f "$log"
	if [ -n "$line" ]; then
		p=$(sed -E 's/.*\b([0-9]+) passed.*/\1/' <<<"$line")
		f=$(sed -E 's/.*\b([0-9]+) failed.*/\1/' <<<"$line")
		passed=$((passed + p))
		failed=$((failed + f))
	fi
	if [ "$rc" -ne 0 ] && { [ -z "$line" ] || [ "${f:-0}" -eq 0 ]; }; then
		failed=$((failed + 1))
	fi
	if [ "$rc" -ne 0 ]; then
		failures+=("$name")
	fi
	echo "=== $name: rc $rc ($((SECONDS - t0))s)"
}

stage "checkpatch --strict" make -s checkpatch
if stage "module builds (6.1, 6.12; W=1, sparse)" make -s modules; then
	suite "VM tests" /usr/bin/python3 tests/vm/run.py
fi

echo
echo "make check: $((($(date +%s) - start) / 60)) min $((($(date +%s) - start) % 60)) s"
if [ ${#failures[@]} -gt 0 ]; then
	printf 'failed stage: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
