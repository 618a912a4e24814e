# SPDX-License-Identifier: GPL-2.0-only
"""Reading a guest's kernel log: the one definition of what counts as a
kernel problem (a warning, BUG, lockdep or KASAN report, ...), the
markers around splats a test provokes on purpose, and kmemleak reports.

Used by the VM tests, the bench and the KUnit run (scripts/intree.py).
"""

import re

# Kernel messages that mean something went wrong in the guest.
BAD_CONSOLE_PATTERNS = (
    "WARNING:", "BUG:", "Call Trace", "kernel BUG", "Oops",
    "general protection fault", "Kernel panic", "list_del corruption",
    "list_add corruption", "UBSAN:", "refcount_t:",
    # debug kernel (KASAN, lockdep, DEBUG_ATOMIC_SLEEP); most of these lines
    # also start with "BUG:" or "WARNING:", listed so that they stay caught
    "BUG: KASAN", "possible circular locking dependency",
    "possible recursive locking", "inconsistent lock state",
    "suspicious RCU usage", "WARNING: lock held",
    "sleeping function called from invalid context",
)
# A kernel whose kmemleak scans on its own (the KUnit run) prints this.
KMEMLEAK_PATTERN = re.compile(r"kmemleak: .*new suspected")
OOM_PATTERNS = ("Out of memory", "oom-kill", "invoked oom-killer")

# A test that provokes the OOM killer on purpose brackets it with these
# lines in the kernel log.  Inside the window only the OOM report itself is
# excused (see bad_line_numbers): a KASAN, lockdep, BUG or WARNING report
# there is as bad as anywhere else.
EXPECT_BEGIN = "vbtest: expected kernel splat begin"
EXPECT_END = "vbtest: expected kernel splat end"

# An OOM report runs from its "invoked oom-killer" header to the "Killed
# process" line ("Out of memory: ..." or "Memory cgroup out of memory:
# ..."); of the bad patterns only its stack dump's "Call Trace" is part of
# it.
OOM_REPORT_START = "invoked oom-killer"
OOM_REPORT_END = "Killed process"
OOM_REPORT_EXCUSED = ("Call Trace",)

# Symbols that make a kmemleak report ours (a failure); other leaks are
# printed only.
KMEMLEAK_OURS_RE = re.compile(r"\b(vb_\w+|\w*vballoon\w*)")

# Lines that close a kernel report (KASAN, lockdep, WARN, BUG).
_REPORT_END_RE = re.compile(r"---\[ end trace|^(\[[ \d.]+\] )?={20,}\s*$")


def _is_bad(line, patterns):
    if patterns is BAD_CONSOLE_PATTERNS and KMEMLEAK_PATTERN.search(line):
        return True
    return any(p in line for p in patterns)


def _excused_in_oom_report(line, patterns):
    """`line`, inside an OOM report, matches nothing of `patterns` but what
    such a report prints anyway."""
    hits = [p for p in patterns if p in line]
    if patterns is BAD_CONSOLE_PATTERNS and KMEMLEAK_PATTERN.search(line):
        return False
    return all(p in OOM_REPORT_EXCUSED or p in OOM_PATTERNS for p in hits)


def bad_line_numbers(lines, patterns=BAD_CONSOLE_PATTERNS,
                     skip_expected=True):
    """(index, line) of each line of `lines` that matches `patterns`.

    Between EXPECT_BEGIN and EXPECT_END markers (unless skip_expected is
    False) the lines of an OOM report are left out: its own lines (those
    matching OOM_PATTERNS) and, from its header to its "Killed process"
    line, the stack dump's "Call Trace".  Every other match counts there
    too, a window left open included."""
    bad, window, report = [], False, False
    for i, line in enumerate(lines):
        if skip_expected and EXPECT_BEGIN in line:
            window = True
            continue
        if skip_expected and EXPECT_END in line:
            window = report = False
            continue
        if window and OOM_REPORT_START in line:
            report = True
        excused = window and (
            any(p in line for p in OOM_PATTERNS) or
            (report and _excused_in_oom_report(line, patterns)))
        if window and OOM_REPORT_END in line:
            report = False
        if not excused and _is_bad(line, patterns):
            bad.append((i, line))
    return bad


def find_bad_lines(text, patterns=BAD_CONSOLE_PATTERNS, skip_expected=True):
    """Lines of `text` containing any of `patterns` (see
    bad_line_numbers)."""
    return [line for _, line in
            bad_line_numbers(text.splitlines(), patterns, skip_expected)]


def bad_reports(text, patterns=BAD_CONSOLE_PATTERNS, skip_expected=True,
                before=3, after=80, max_reports=3):
    """The kernel reports around the bad lines of `text`, as one string:
    for each of the first `max_reports` reports, `before` lines of context
    and up to `after` lines following the first bad line (stopping at an
    "---[ end trace" or "=====" line).  Empty if the text is clean."""
    lines = text.splitlines()
    bad = bad_line_numbers(lines, patterns, skip_expected)
    out, covered, n = [], -1, 0
    for i, _ in bad:
        if i <= covered:
            continue
        if n == max_reports:
            out.append("... (%d more bad lines not shown)" %
                       sum(1 for j, _ in bad if j > covered))
            break
        n += 1
        start = max(0, i - before, covered + 1)
        end = min(len(lines), i + after)
        for j in range(i + 1, end):
            if _REPORT_END_RE.search(lines[j]) and j > i + 1:
                end = j + 1
                break
        out.append("----- kernel report %d (console line %d) -----" %
                   (n, i + 1))
        out.extend(lines[start:end])
        covered = end - 1
    return "\n".join(out)


def parse_kmemleak(text):
    """Split /sys/kernel/debug/kmemleak into its "unreferenced object"
    reports; returns (ours, others), ours being the reports whose text
    (backtrace) names a vballoon symbol (vb_*, *vballoon*)."""
    reports, cur = [], None
    for line in text.splitlines():
        if line.startswith("unreferenced object"):
            cur = [line]
            reports.append(cur)
        elif cur is not None:
            cur.append(line)
    reports = ["\n".join(r) for r in reports]
    ours = [r for r in reports if KMEMLEAK_OURS_RE.search(r)]
    others = [r for r in reports if not KMEMLEAK_OURS_RE.search(r)]
    return ours, others
