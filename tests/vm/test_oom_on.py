# SPDX-License-Identifier: GPL-2.0-only
"""VM tests with virtio-balloon-pci,deflate-on-oom=on (one boot per kernel).

Each test loads the driver it is given (our vballoon or, for the tests
marked `parity`, also the kernel's virtio_balloon: the harness tests the
protocol, not our quirks), asserts behaviour seen from both sides (QEMU's
QMP view and the guest's /proc/meminfo), and relies on the `vm` fixture
to deflate and unload afterwards.  Waits poll; timeouts are safety nets
sized for TCG.  test_oom_off.py repeats three of these tests with
deflate-on-oom=off.
"""

import pytest

from harness.figures import record
from harness.units import GiB, MiB, mib
from harness.vm import BALLOON_TIMEOUT, COUNTER_STATS, QEMU_STATS
from harness.workloads import finish_hog, oom_lines, squeeze, start_hog

pytestmark = pytest.mark.vm_config("oom-on", deflate_on_oom=True)


@pytest.mark.parity
def test_inflate_half_and_back(vm, driver):
    vm.load(driver)
    vm.wait_until(lambda: vm.query_balloon() == vm.ram_bytes, 60, 0.5,
                  "actual == full RAM right after loading (balloon 0)",
                  vm.describe_balloon)
    before = vm.free_bytes()
    half = vm.ram_bytes // 2
    vm.set_balloon(half)
    vm.wait_balloon(vm.ram_bytes - half)
    vm.wait_meminfo("FreeTotal", before - half,
                    "free memory dropped by the balloon size")
    vm.set_balloon(vm.ram_bytes)
    vm.wait_balloon(0)
    vm.wait_meminfo("FreeTotal", before, "free memory recovered after deflate")


@pytest.mark.parity
def test_burst_of_targets(vm, driver):
    vm.load(driver)
    before = vm.free_bytes()
    for size in (600, 200, 800):
        vm.set_balloon_size(size * MiB)
    # reverse while the 800 MiB inflation is (most likely) still running
    vm.wait_until(lambda: vm.balloon_size() > 0, 120, 0.05,
                  "the balloon to start inflating", vm.describe_balloon)
    vm.set_balloon_size(100 * MiB)
    vm.set_balloon_size(300 * MiB)
    vm.wait_balloon(300 * MiB)
    # it must stay at the last target (no late reaction to older ones)
    seen = set()
    for _ in range(10):
        seen.add(vm.balloon_size())
        vm.run("sleep 0.5")
    assert seen == {300 * MiB}, \
        "balloon did not stay at 300 MiB: saw %s" % sorted(mib(s) for s in seen)
    vm.wait_meminfo("FreeTotal", before - 300 * MiB,
                    "free memory dropped by the final balloon size")


def _next_stats(vm, after, what):
    """Wait for a stats update newer than `after` (a last-update value)."""
    return vm.wait_until(
        lambda: (lambda s: s if s["last-update"] > after else None)(
            vm.guest_stats()),
        60, 0.5, "guest-stats update newer than %s (%s)" % (after, what),
        lambda: "guest-stats: %r" % vm.guest_stats())


def _with_file_pages(m):
    m["FilePages"] = m["Cached"] + m["Buffers"] + m.get("SwapCached", 0)
    return m


def _compare_stats_to_meminfo(vm, when):
    # disk-caches is the file page count (virtio_balloon and vballoon alike,
    # NR_FILE_PAGES), which /proc/meminfo splits into Cached, Buffers and
    # SwapCached: compared with their sum, the bound is the same 2 % of RAM
    pairs = (("stat-total-memory", "MemTotal"),
             ("stat-free-memory", "MemFree"),
             ("stat-available-memory", "MemAvailable"),
             ("stat-disk-caches", "FilePages"))
    last = vm.guest_stats()["last-update"]
    m1 = _with_file_pages(vm.meminfo())
    st = _next_stats(vm, last, "after reading meminfo")["stats"]
    m2 = _with_file_pages(vm.meminfo())
    errors = []
    for stat, field in pairs:
        lo = min(m1[field], m2[field]) * 1024 - vm.tolerance
        hi = max(m1[field], m2[field]) * 1024 + vm.tolerance
        if not lo <= st[stat] <= hi:
            errors.append("%s = %s but guest %s was %s / %s" % (
                stat, mib(st[stat]), field, mib(m1[field] * 1024),
                mib(m2[field] * 1024)))
    assert not errors, "%s: stats disagree with /proc/meminfo (tolerance " \
        "%s): %s" % (when, mib(vm.tolerance), "; ".join(errors))


@pytest.mark.parity
def test_stats(vm, driver):
    vm.load(driver)
    try:
        vm.set_stats_interval(2)
        s = vm.guest_stats()
        s = _next_stats(vm, s["last-update"], "first")
        s = _next_stats(vm, s["last-update"], "second")
        st = s["stats"]
        missing = [k for k in QEMU_STATS if k not in st]
        assert not missing, "stats missing from guest-stats: %s" % missing
        unset = [k for k in QEMU_STATS if st[k] == -1]
        assert not unset, "stats the driver did not report (-1): %s" % unset

        # the initramfs guest has only some 10-40 MiB of file pages, within
        # the tolerance of 0: a 256 MiB file in /tmp (rootfs, page cache)
        # makes a disk-caches of 0 or of the wrong counter fail
        vm.check("dd if=/dev/zero of=/tmp/stats.cache bs=1M count=256 "
                 "2>/dev/null")
        _compare_stats_to_meminfo(vm, "balloon 0")

        # counters never go backwards; touch memory in between so that at
        # least the fault counters have a reason to move
        series = [s["stats"]]
        for _ in range(3):
            vm.check("memhog 16")
            s = _next_stats(vm, s["last-update"], "counter series")
            series.append(s["stats"])
        for k in COUNTER_STATS:
            vals = [x[k] for x in series]
            assert vals == sorted(vals), "%s not monotonic: %s" % (k, vals)
        assert series[-1]["stat-minor-faults"] > \
            series[0]["stat-minor-faults"], \
            "stat-minor-faults did not grow although the guest faulted " \
            "in 48 MiB: %s" % [x["stat-minor-faults"] for x in series]

        # the stats follow the balloon
        vm.inflate(512 * MiB)
        _compare_stats_to_meminfo(vm, "balloon 512 MiB")
    finally:
        if vm.alive():
            vm.set_stats_interval(0)
            vm.check("rm -f /tmp/stats.cache")


HTLB_STATS = {"stat-htlb-pgalloc": "htlb_buddy_alloc_success",
              "stat-htlb-pgfail": "htlb_buddy_alloc_fail"}
HUGE_PAGES = 8


def _wait_htlb_stats(vm, vs, what):
    """Wait until QEMU's hugetlb stats equal the guest's /proc/vmstat
    counters `vs` (the kernel's HTLB_BUDDY_PGALLOC[_FAIL], which both
    drivers report as tags 8 and 9)."""
    want = {stat: vs[field] for stat, field in HTLB_STATS.items()}
    vm.wait_until(
        lambda: all(vm.guest_stats()["stats"].get(k) == v
                    for k, v in want.items()),
        60, 0.5, "guest-stats hugetlb counters == /proc/vmstat %r (%s)" % (
            want, what),
        lambda: "guest-stats: %r" % {k: vm.guest_stats()["stats"].get(k)
                                     for k in want})


@pytest.mark.parity
@pytest.mark.skip_debug("test_stats (the same stats code; the pool "
                        "would take the whole guest under KASAN)")
def test_stats_hugetlb(vm, driver):
    """Hugetlb pages allocated through nr_hugepages show in
    stat-htlb-pgalloc (grows by exactly that many); asking for more huge
    pages than the guest has makes stat-htlb-pgfail grow.  Both equal the
    guest's htlb_buddy_alloc_success/_fail in /proc/vmstat."""
    vm.load(driver)
    nr = "/proc/sys/vm/nr_hugepages"
    try:
        vm.set_stats_interval(2)
        vs0 = vm.vmstat()
        _wait_htlb_stats(vm, vs0, "before")

        vm.check("echo %d > %s" % (HUGE_PAGES, nr))
        got = int(vm.check("cat %s" % nr))
        vs1 = vm.vmstat()
        assert got == HUGE_PAGES and vs1["htlb_buddy_alloc_success"] - \
            vs0["htlb_buddy_alloc_success"] == HUGE_PAGES, \
            "the guest did not allocate %d huge pages (nr_hugepages %d, " \
            "vmstat %r)" % (HUGE_PAGES, got, vs1)
        _wait_htlb_stats(vm, vs1, "%d huge pages allocated" % HUGE_PAGES)

        # more 2 MiB pages than the guest has RAM: the pool takes what it
        # can get, the next allocation fails; give it all back at once
        impossible = vm.ram_bytes // (2 * MiB) + 1
        vm.check("echo %d > %s; echo 0 > %s" % (impossible, nr, nr),
                 timeout=300)
        vs2 = vm.vmstat()
        assert vs2["htlb_buddy_alloc_fail"] > vs1["htlb_buddy_alloc_fail"], \
            "asking for %d huge pages did not fail a huge page allocation: " \
            "%r" % (impossible, vs2)
        _wait_htlb_stats(vm, vs2, "after asking for %d huge pages" %
                         impossible)
    finally:
        if vm.alive():
            vm.check("echo 0 > %s" % nr)
            vm.set_stats_interval(0)


def test_deflate_on_oom(vm, driver):
    """With ~100 MiB free, a 300 MiB allocation succeeds because the
    balloon gives memory back, and the OOM killer stays idle."""
    vm.load(driver)
    mark = len(vm.console())
    actual_before = squeeze(vm)
    start_hog(vm, 300)
    actual_during = vm.query_balloon()
    rc, out = finish_hog(vm)
    assert rc == 0, "memhog 300 failed (rc %d) with the balloon deflatable " \
        "on OOM:\n%s" % (rc, out)
    grown = actual_during - actual_before
    assert grown >= 100 * MiB, \
        "balloon should have given back memory to let memhog 300 run with " \
        "100 MiB free, but actual grew by only %s (from %s to %s)" % (
            mib(grown), mib(actual_before), mib(actual_during))
    oom = oom_lines(vm, mark)
    assert not oom, "the OOM killer ran instead of the balloon deflating:" \
        "\n  " + "\n  ".join(oom)


def test_memtotal_kept_with_deflate_on_oom(vm, driver):
    """Ballooned pages stay in MemTotal (counted as used) so the OOM path
    can take them back -- the behaviour of the kernel's virtio_balloon."""
    vm.load(driver)
    total0 = vm.meminfo()["MemTotal"] * 1024
    vm.inflate(512 * MiB)
    vm.wait_meminfo("MemTotal", total0,
                    "MemTotal unchanged with deflate-on-oom=on")
    vm.inflate(0)
    vm.wait_meminfo("MemTotal", total0, "MemTotal recovered")


def test_rmmod_with_inflated_balloon(vm, driver):
    """rmmod with a 1 GiB balloon (for a built-in vballoon: unbind): the
    memory comes back; a fresh load/bind inflates to the standing target
    again."""
    vm.load(driver)
    mi = vm.meminfo()
    free0, total0 = mi["FreeTotal"] * 1024, mi["MemTotal"] * 1024
    vm.inflate(GiB)
    vm.wait_meminfo("FreeTotal", free0 - GiB, "free memory dropped by 1 GiB")
    vm.unload(driver)
    assert not vm.loaded(driver)
    vm.wait_meminfo("FreeTotal", free0, "free memory back after rmmod")
    vm.wait_meminfo("MemTotal", total0, "MemTotal back after rmmod")
    # QEMU still asks for 1 GiB: a fresh load must inflate to it again
    vm.load(driver)
    vm.wait_balloon(GiB)
    vm.wait_meminfo("FreeTotal", free0 - GiB, "free memory dropped again")
    vm.inflate(0)
    vm.wait_meminfo("FreeTotal", free0, "free memory back after deflate")
    vm.unload(driver)
    assert not vm.loaded(driver)


def test_oom_notifier_never_waits_for_a_batch(vm):
    """OOM while 32768-page batches inflate: a guest program needs memory
    the balloon keeps taking (pressure_hold_ms=0, so inflation fights it
    all along).  The OOM notifier gives memory back every time, nobody is
    killed, and at least 99 % of its calls (98 % on the debug kernel,
    whose longest wait must stay under 100 ms) take under 10 ms: it never
    waits behind a batch being allocated or with the host."""
    dev = vm.load("vballoon", "batch_pages=32768 pressure_hold_ms=0")
    base = vm.vballoon_status(dev)
    mark = len(vm.console())
    # the debug kernel fights over less: each OOM call costs it far more
    hog = 400 if vm.kernel.builtin_vballoon else 600
    # a balloon of all but 300 MiB plus a 600 MiB program do not fit
    vm.set_balloon_size(vm.ram_bytes - 300 * MiB)
    vm.wait_until(lambda: vm.balloon_size() >= GiB, BALLOON_TIMEOUT, 0.5,
                  "the balloon to pass 1 GiB", vm.describe_balloon)
    start_hog(vm, hog)
    # memhog touched all it needs: the fight is over, its figures are
    # these (the deflation that follows may keep a late OOM call waiting
    # for a batch to be freed: not what is measured here).
    st = vm.vballoon_status(dev)
    # End the fight through QMP before memhog exits: the target becomes
    # what the balloon holds now, so it neither grows into the memory
    # memhog frees nor deflates (the fixture deflates later, with that
    # memory free).  Left fighting, the fixture's deflation in 32768-page
    # batches met the agent's forks at the watermarks: an OOM notifier
    # call that waits more than 1 s for the deflating batch's lock gives
    # up and releases nothing, and the OOM killer ran (on the debug
    # kernel 1 run in 3, "System is deadlocked on memory" with only the
    # unkillable agent left).  See the issue 12 note.
    vm.set_balloon_size(vm.balloon_size())
    rc, out = finish_hog(vm)
    calls = st["oom_calls"] - base["oom_calls"]
    slow = st["oom_slow_calls"] - base["oom_slow_calls"]
    record(vm, "oom_latency", {
        "memhog_rc": rc, "oom_calls": calls, "oom_slow_calls": slow,
        "host_timeouts": st["host_timeouts"] - base["host_timeouts"],
        "oom_max_us": st["oom_max_us"],
        "oom_wait_max_us": st["oom_wait_max_us"], "hog_mib": hog,
        "oom_released_pages": st["oom_released_pages"] -
        base["oom_released_pages"],
        "inflated_pages": st["inflated_pages"] - base["inflated_pages"],
        "requests": st["requests"] - base["requests"],
    }, "OOM-LATENCY", "oom_latency.jsonl")
    assert rc == 0, "memhog %d failed (rc %d) with the balloon " \
        "deflatable on OOM:\n%s" % (hog, rc, out)
    oom = oom_lines(vm, mark)
    assert not oom, "the OOM killer ran instead of the balloon " \
        "deflating:\n  " + "\n  ".join(oom)
    assert calls > 0, "memhog fit without an OOM call: nothing measured " \
        "(%s)" % st
    # The debug kernel (KASAN, lockdep) stretches a lock handoff or the
    # pressure path's release to 10-25 ms now and then beside other
    # guests (2 of 118 calls, longest 21 ms, in the check of 2026-11-28);
    # a wait behind a 32768-page batch lasts seconds there, so the
    # longest wait must stay under 100 ms and 2 % may pass 10 ms.
    per_cent = 2 if vm.kernel.builtin_vballoon else 1
    assert slow * 100 <= calls * per_cent, \
        "%d of %d OOM notifier calls waited 10 ms or more (longest wait " \
        "%d us, longest call %d us)" % (slow, calls, st["oom_wait_max_us"],
                                        st["oom_max_us"])
    if vm.kernel.builtin_vballoon:
        assert st["oom_wait_max_us"] < 100000, \
            "an OOM notifier call waited %d us: behind a batch?" % \
            st["oom_wait_max_us"]


# driver -> pgmigrate_fail during test_compaction_while_inflating, per kernel
_migrate_fail = {}


# a comparison with virtio_balloon, which the debug kernel does not run
@pytest.mark.skip_debug("the Debian kernels")
@pytest.mark.parity
def test_compaction_while_inflating(vm, driver):
    """Compaction running all through a 1 GiB inflation and deflation:
    the balloon's migrate callback fails (pgmigrate_fail) no more often
    than virtio_balloon's, which takes its lock only by trying."""
    vm.load(driver)
    vs0 = vm.vmstat()
    vm.check("rm -f /tmp/cstop; (while [ ! -e /tmp/cstop ]; do "
             "echo 1 > /proc/sys/vm/compact_memory; done) "
             "</dev/null >/dev/null 2>&1 & echo $! > /tmp/compact.pid")
    try:
        vm.inflate(GiB)
        vm.inflate(0)
    finally:
        if vm.alive():
            vm.check("touch /tmp/cstop; while kill -0 $(cat "
                     "/tmp/compact.pid) 2>/dev/null; do sleep 0.2; done")
    vs1 = vm.vmstat()
    figures = {k: vs1.get(k, 0) - vs0.get(k, 0) for k in (
        "pgmigrate_success", "pgmigrate_fail", "balloon_migrate",
        "compact_stall", "compact_fail")}
    record(vm, "compaction_while_inflating", dict(driver=driver, **figures),
           "COMPACTION", "compaction.jsonl")
    ours = _migrate_fail.setdefault(vm.kernel.release, {})
    ours[driver] = figures["pgmigrate_fail"]
    if "vballoon" in ours and "virtio_balloon" in ours:
        assert ours["vballoon"] <= ours["virtio_balloon"] + 64, \
            "pgmigrate_fail during inflation: vballoon %d, virtio_balloon " \
            "%d" % (ours["vballoon"], ours["virtio_balloon"])
