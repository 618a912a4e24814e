# SPDX-License-Identifier: GPL-2.0-only
"""Fast self-tests of harness/host.py, the code that decides the
host-side evidence (QEMU's smaps, its balloon trace); no VM is booted."""

import os

import pytest

import run
from harness import host
from harness.errors import HarnessError

GiB_KB = 1 << 20

SMAPS = """\
55d0c0a00000-55d0c0c00000 r-xp 00000000 fd:01 1234 /usr/bin/qemu-system
Size:               2048 kB
Rss:                1024 kB
AnonHugePages:         0 kB
THPeligible:    0
VmFlags: rd ex mr mw me
7f3400000000-7f3480000000 rw-p 00000000 00:00 0
Size:            2097152 kB
KernelPageSize:        4 kB
Rss:             1990656 kB
AnonHugePages:   1988608 kB
THPeligible:    1
VmFlags: rd wr mr mw me ac hg
7f3480000000-7f3480001000 ---p 00000000 00:00 0
Size:                  4 kB
Rss:                   0 kB
7f3500000000-7f3540000000 rw-s 00000000 00:01 99     /memfd:other (deleted)
Size:            1048576 kB
Rss:                   0 kB
"""


def test_smaps_guest_ram_mapping():
    maps = host.parse_smaps(SMAPS)
    assert len(maps) == 4
    ram = host.ram_mapping(maps, 2 * GiB_KB * 1024)
    assert ram.start == 0x7f3400000000
    assert ram.fields == {"Size": 2097152, "KernelPageSize": 4,
                          "Rss": 1990656, "AnonHugePages": 1988608,
                          "THPeligible": 1}
    # a named (file or memfd) mapping of that size is not guest RAM here
    with pytest.raises(HarnessError, match="found 0"):
        host.ram_mapping(maps, GiB_KB * 1024)
    twice = host.parse_smaps(SMAPS + SMAPS.split("\n", 6)[6])
    with pytest.raises(HarnessError, match="found 2"):
        host.ram_mapping(twice, 2 * GiB_KB * 1024)


def test_host_thp_mode(tmp_path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert host.host_thp_mode(f) == "madvise"
    f.write_text("[always] madvise never\n")
    assert host.host_thp_mode(f) == "always"
    assert host.host_thp_mode(tmp_path / "missing") is None


def _trace(*reqs, stats=True, prefix=""):
    """A QEMU 7.2 log-backend trace: each (queue, [gpa...]) is one kick
    and one popped element; a stats-queue pop without frames between."""
    vqs = {0: "0x7f347550d010", 1: "0x7f347550d098", 2: "0x7f347550d120"}
    out = []
    for i, (q, gpas) in enumerate(reqs):
        out.append("%svirtio_queue_notify vdev 0x562dc30ba300 n %d vq %s"
                   % (prefix, q, vqs[q]))
        out.append("%svirtqueue_pop vq %s elem 0x7f342c31%04x in_num 0 "
                   "out_num 1" % (prefix, vqs[q], i))
        out += ["%svirtio_balloon_handle_output section name: pc.ram gpa: "
                "0x%x" % (prefix, g) for g in gpas]
        if stats:
            out.append("%svirtqueue_pop vq %s elem 0x7f342c40%04x in_num 0 "
                       "out_num 1" % (prefix, vqs[2], i))
    return "\n".join(out) + "\n"


def test_trace_requests_and_queues():
    text = _trace((0, [0x2bff000, 0x2bfe000]), (1, [0x2bff000]),
                  (0, [0x1000, 0x2000, 0x3000]))
    reqs = host.parse_balloon_trace(text)
    assert [(r.queue, r.frames) for r in reqs] == [
        (0, [0x2bff, 0x2bfe]), (1, [0x2bff]), (0, [1, 2, 3])]
    # with -msg timestamp=on every line has a "PID@SECS.USECS:" prefix
    stamped = _trace((0, [0x5000]), prefix="4242@1795802639.583129:")
    assert [(r.queue, r.frames) for r in
            host.parse_balloon_trace(stamped)] == [(0, [5])]


def test_trace_frames_without_a_named_queue_are_an_error():
    text = _trace((0, [0x1000]))
    cut = text.split("\n", 1)[1]          # the kick is not in the trace
    with pytest.raises(HarnessError, match="before the kick"):
        host.parse_balloon_trace(cut)


def test_group_frames_per_request_and_per_kick():
    R = host.Request
    reqs = [R(0, 1, [1, 2]), R(0, 1, [3]), R(1, 2, [1]), R(0, 3, [4])]
    assert host.group_frames(reqs) == [(0, 2), (0, 1), (1, 1), (0, 1)]
    assert host.group_frames(reqs, by="kick") == [(0, 3), (1, 1), (0, 1)]
    with pytest.raises(ValueError):
        host.group_frames(reqs, by="chain")


def test_frame_book_balances_and_catches_double_frames():
    R = host.Request
    ok = host.FrameBook().apply([R(0, 1, [1, 2, 3]), R(1, 2, [3, 1]),
                                 R(0, 3, [1]), R(1, 4, [1, 2])])
    assert (ok.inflated, ok.deflated, ok.held, ok.errors) == (4, 4, set(),
                                                               [])
    bad = host.FrameBook().apply([R(0, 1, [1, 2]), R(0, 2, [2]),
                                  R(1, 3, [7]), R(2, 4, [9])])
    assert bad.nerrors == 3 and bad.held == {1, 2}
    assert "inflates frame 0x2, which the host already holds" in \
        bad.errors[0]
    assert "deflates frame 0x7, which the host does not hold" in \
        bad.errors[1]
    assert "on queue 2" in bad.errors[2]
    # frames already in the balloon when the trace started
    assert host.FrameBook(held={7}).apply([R(1, 1, [7])]).errors == []


def test_run_py_runs_this_module_by_default():
    assert os.path.basename(__file__) in [
        os.path.basename(f) for f in run.module_files("harness")]
