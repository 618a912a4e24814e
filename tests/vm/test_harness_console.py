# SPDX-License-Identifier: GPL-2.0-only
"""Self-tests of the console reader that decides whether a guest's kernel
log is clean (harness/console.py); no VM is booted."""

from harness.console import (EXPECT_BEGIN, EXPECT_END, OOM_PATTERNS,
                             bad_reports, find_bad_lines, parse_kmemleak)

# An OOM report as 6.12 prints it (shortened), inside the markers a test
# writes around an OOM kill it provokes.
OOM_REPORT = [
    "[ 70.0] " + EXPECT_BEGIN,
    "[ 73.9] memhog invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_"
    "MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=1000",
    "[ 73.9] CPU: 0 UID: 0 PID: 673 Comm: memhog Tainted: G OE",
    "[ 73.9] Call Trace:",
    "[ 73.9]  <TASK>",
    "[ 73.9]  out_of_memory+0x257/0x520",
    "[ 73.9]  </TASK>",
    "[ 73.9] Mem-Info:",
    "[ 74.0] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/",
    "[ 74.0] Out of memory: Killed process 673 (memhog) total-vm:525316kB",
]
WINDOW_END = "[ 75.0] " + EXPECT_END
KASAN = "[ 73.9] BUG: KASAN: slab-use-after-free in vb_shrink_scan+0x1/0x2"
LOCKDEP = "[ 73.9] WARNING: possible circular locking dependency detected"
WARN = "[ 74.5] WARNING: CPU: 1 PID: 9 at drivers/virtio/vballoon/main.c:1"
AFTER_REPORT_TRACE = "[ 74.5] Call Trace:"


def _text(lines):
    return "\n".join(lines)


def test_oom_report_inside_the_window_is_excused():
    text = _text(OOM_REPORT + [WINDOW_END])
    assert find_bad_lines(text) == []
    assert find_bad_lines(text, OOM_PATTERNS) == []
    # the OOM tests look inside the window on purpose
    assert len(find_bad_lines(text, OOM_PATTERNS, skip_expected=False)) == 3
    assert find_bad_lines(text, skip_expected=False) == ["[ 73.9] Call Trace:"]


def test_other_reports_inside_the_window_are_not_excused():
    # interleaved with the OOM report (another CPU) ...
    for bad in (KASAN, LOCKDEP, "[ 73.9] BUG: sleeping function called "
                "from invalid context at mm/page_alloc.c:1"):
        lines = OOM_REPORT[:4] + [bad] + OOM_REPORT[4:] + [WINDOW_END]
        assert find_bad_lines(_text(lines)) == [bad], bad
    # ... or after it: a warning and its own call trace both count
    lines = OOM_REPORT + [WARN, AFTER_REPORT_TRACE, WINDOW_END]
    assert find_bad_lines(_text(lines)) == [WARN, AFTER_REPORT_TRACE]
    # a call trace inside the window but outside an OOM report counts
    lines = [OOM_REPORT[0], AFTER_REPORT_TRACE, WINDOW_END]
    assert find_bad_lines(_text(lines)) == [AFTER_REPORT_TRACE]
    # kmemleak's finding is never part of an OOM report
    leak = "[ 73.9] kmemleak: 1 new suspected memory leaks (see /sys/...)"
    lines = OOM_REPORT[:4] + [leak] + OOM_REPORT[4:] + [WINDOW_END]
    assert find_bad_lines(_text(lines)) == [leak]
    rep = bad_reports(_text(OOM_REPORT[:4] + [KASAN] + OOM_REPORT[4:] +
                            [WINDOW_END]))
    assert "KASAN" in rep


def test_window_closes():
    later_oom = "[ 80.0] Out of memory: Killed process 9 (memhog)"
    text = _text(OOM_REPORT + [WINDOW_END, WARN, later_oom])
    assert find_bad_lines(text) == [WARN]
    assert find_bad_lines(text, OOM_PATTERNS) == [later_oom]
    # an OOM report outside any window is reported (its call trace too)
    assert find_bad_lines(_text(OOM_REPORT[1:])) == ["[ 73.9] Call Trace:"]


def test_unclosed_window_still_reports():
    text = _text(OOM_REPORT + ["[ 90.0] BUG: unable to handle page fault"])
    assert find_bad_lines(text) == ["[ 90.0] BUG: unable to handle page "
                                    "fault"]


def test_bad_console_lines_found():
    text = ("[ 1.0] ok\n[ 2.0] WARNING: CPU: 1 PID: 5 at foo.c:1\n"
            "[ 2.1] Call Trace:\n[ 3.0] BUG: kernel NULL pointer\n"
            "[ 4.0] virtio_balloon virtio0: fine\n")
    bad = find_bad_lines(text)
    assert len(bad) == 3
    assert not find_bad_lines("[ 1.0] module verification failed: "
                              "signature and/or required key missing "
                              "- tainting kernel\n")
    assert find_bad_lines("Out of memory: Killed process 12", OOM_PATTERNS)


def test_kmemleak_suspects_are_bad_lines():
    line = "[ 9.0] kmemleak: 2 new suspected memory leaks (see " \
        "/sys/kernel/debug/kmemleak)"
    assert find_bad_lines(line) == [line]
    assert find_bad_lines(line, OOM_PATTERNS) == []


def test_bad_reports_show_context():
    text = "\n".join([
        "[ 1.0] ok",
        "[ 2.0] ==================================================================",
        "[ 2.0] BUG: KASAN: slab-use-after-free in vb_inflate+0x10/0x20",
        "[ 2.0] Read of size 8 at addr ffff888",
        "[ 2.0] Call Trace:",
        "[ 2.0]  vb_inflate+0x10/0x20",
        "[ 2.0] ==================================================================",
        "[ 3.0] later line",
        "[ 4.0] WARNING: possible circular locking dependency detected",
    ])
    bad = find_bad_lines(text)
    assert any("KASAN" in ln for ln in bad)
    rep = bad_reports(text)
    assert "Read of size 8" in rep and "vb_inflate+0x10" in rep
    first, second = rep.split("----- kernel report 2")
    assert "later line" not in first      # the report ends at its "===="
    assert "circular locking" in second
    for p in ("sleeping function called from invalid context",
              "inconsistent lock state", "suspicious RCU usage",
              "possible recursive locking", "WARNING: lock held"):
        assert find_bad_lines("[ 1.0] " + p), p
    assert bad_reports("all fine\n") == ""


def test_parse_kmemleak():
    text = """unreferenced object 0xffff8880 (size 64):
  comm "sh", pid 1, jiffies 4294
  backtrace (crc 0):
    kmemleak_alloc+0x4a/0x80
    vb_stats_init+0x22/0x40
unreferenced object 0xffff8881 (size 32):
  comm "swapper/0", pid 1, jiffies 4294
  backtrace (crc 0):
    acpi_ut_allocate+0x1/0x2
"""
    ours, others = parse_kmemleak(text)
    assert len(ours) == 1 and "vb_stats_init" in ours[0]
    assert len(others) == 1 and "acpi_ut_allocate" in others[0]
    assert parse_kmemleak("") == ([], [])
