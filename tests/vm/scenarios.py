# SPDX-License-Identifier: GPL-2.0-only
"""Test scenarios shared by test_oom_on.py and test_oom_off.py.

Every scenario loads the driver it is given (our vballoon or the kernel's
virtio_balloon, for parity), asserts behaviour seen from both sides (QEMU's
QMP view and the guest's /proc/meminfo), and relies on the `vm` fixture to
deflate and unload afterwards.  Waits poll; timeouts are safety nets sized
for TCG.
"""

import os

import pytest

from vmlib import (COUNTER_STATS, EXPECT_BEGIN, EXPECT_END, GiB, MiB,
                   OOM_PATTERNS, QEMU_STATS, bad_reports, find_bad_lines,
                   wait_until)

# Inflating or deflating 1 GiB takes seconds under TCG; allow minutes.
BALLOON_TIMEOUT = 900
# Tolerance for memory comparisons: 2% of guest RAM.
TOLERANCE = 0.02

# Drivers every scenario runs against (run.py sets VBALLOON_DRIVERS=vballoon
# for the debug kernel, where the sanitizers are there for our driver).
DRIVERS = tuple(d.strip() for d in os.environ.get(
    "VBALLOON_DRIVERS", "vballoon,virtio_balloon").split(",") if d.strip())
# Scenarios 1-3 (test_oom_on.py) run against both drivers, for parity: it
# shows the harness tests the protocol, not our quirks.  The others test
# vballoon only, which keeps the suite's time down.
OURS = tuple(d for d in DRIVERS if d == "vballoon")


def skip_on_debug_kernel(vm, where):
    """The debug kernel runs each vballoon code path once: skip a scenario
    another module already ran there (`where`)."""
    if vm.kernel.builtin_vballoon:
        pytest.skip("on the debug kernel this scenario runs in %s only" %
                    where)


def tol(vm):
    return int(vm.ram_bytes * TOLERANCE)


def mib(nbytes):
    return "%.1f MiB" % (nbytes / MiB)


def load(vm, driver, params=""):
    """Load `driver` (with module parameters `params`), check it bound the
    balloon device; returns the bound device's name."""
    if driver == "vballoon" and not vm.info.get("vballoon"):
        pytest.fail("vballoon.ko for %s is missing at %s: build it with "
                    "`make modules` at the top of the repository" %
                    (vm.kernel.release, vm.info["vballoon_ko"]),
                    pytrace=False)
    vm.load_driver(driver, params)
    devs = wait_until(lambda: vm.bound_devices(driver), 60, 0.5,
                      "a virtio device bound to driver %s" % driver)
    dev = devs[0]
    devid = vm.check("cat /sys/bus/virtio/drivers/%s/%s/device" %
                     (driver, dev)).strip()
    assert int(devid, 16) == 5, \
        "%s bound %s, device id %s, not a balloon (5)" % (driver, dev, devid)
    return dev


def describe_balloon(vm):
    def text():
        act = vm.query_balloon()
        mi = vm.meminfo()
        return ("now: actual %s (balloon %s), guest MemFree %s + per-cpu "
                "lists %s, MemTotal %s" % (
                    mib(act), mib(vm.ram_bytes - act),
                    mib(mi["MemFree"] * 1024), mib(mi["PcpFree"] * 1024),
                    mib(mi["MemTotal"] * 1024)))
    return text


def wait_balloon(vm, size, timeout=BALLOON_TIMEOUT):
    """Wait until QEMU reports a balloon of exactly `size` bytes."""
    want = vm.ram_bytes - size
    wait_until(lambda: vm.query_balloon() == want, timeout, 0.5,
               "query-balloon actual == %s (balloon %s)" % (mib(want),
                                                            mib(size)),
               describe_balloon(vm))


def wait_meminfo(vm, field, expect_kb_bytes, what):
    """Wait until /proc/meminfo[field] (as bytes) is within the tolerance
    of `expect_kb_bytes`; returns the value."""
    got = {}

    def ok():
        got["v"] = vm.meminfo()[field] * 1024
        return abs(got["v"] - expect_kb_bytes) <= tol(vm)
    wait_until(ok, 60, 0.5, "%s: %s within %s of %s" % (
        what, field, mib(tol(vm)), mib(expect_kb_bytes)),
        lambda: "%s is %s" % (field, mib(got.get("v", 0))))
    return got["v"]


def free_bytes(vm):
    """Guest free memory: MemFree plus the per-cpu free lists (see
    VM.meminfo); plain MemFree jumps by up to ~100 MiB on 6.12 as those
    lists fill after a deflate and drain a few seconds later."""
    return vm.meminfo()["FreeTotal"] * 1024


# -- 1: inflate to half the RAM and back -----------------------------------

def inflate_half_and_back(vm, driver):
    load(vm, driver)
    wait_until(lambda: vm.query_balloon() == vm.ram_bytes, 60, 0.5,
               "actual == full RAM right after loading (balloon 0)",
               describe_balloon(vm))
    before = free_bytes(vm)
    half = vm.ram_bytes // 2
    vm.set_balloon(half)
    wait_balloon(vm, vm.ram_bytes - half)
    wait_meminfo(vm, "FreeTotal", before - half,
                 "free memory dropped by the balloon size")
    vm.set_balloon(vm.ram_bytes)
    wait_balloon(vm, 0)
    wait_meminfo(vm, "FreeTotal", before, "free memory recovered after deflate")


# -- 2: burst of targets ---------------------------------------------------

def burst_of_targets(vm, driver):
    load(vm, driver)
    before = free_bytes(vm)
    for size in (600, 200, 800):
        vm.set_balloon_size(size * MiB)
    # reverse while the 800 MiB inflation is (most likely) still running
    wait_until(lambda: vm.balloon_size() > 0, 120, 0.05,
               "the balloon to start inflating", describe_balloon(vm))
    vm.set_balloon_size(100 * MiB)
    vm.set_balloon_size(300 * MiB)
    wait_balloon(vm, 300 * MiB)
    # it must stay at the last target (no late reaction to older ones)
    seen = set()
    for _ in range(10):
        seen.add(vm.balloon_size())
        vm.run("sleep 0.5")
    assert seen == {300 * MiB}, \
        "balloon did not stay at 300 MiB: saw %s" % sorted(mib(s) for s in seen)
    wait_meminfo(vm, "FreeTotal", before - 300 * MiB,
                 "free memory dropped by the final balloon size")


# -- 3: statistics ---------------------------------------------------------

def _next_stats(vm, after, what):
    """Wait for a stats update newer than `after` (a last-update value)."""
    return wait_until(
        lambda: (lambda s: s if s["last-update"] > after else None)(
            vm.guest_stats()),
        60, 0.5, "guest-stats update newer than %s (%s)" % (after, what),
        lambda: "guest-stats: %r" % vm.guest_stats())


def _compare_stats_to_meminfo(vm, when):
    pairs = (("stat-total-memory", "MemTotal"),
             ("stat-free-memory", "MemFree"),
             ("stat-available-memory", "MemAvailable"))
    last = vm.guest_stats()["last-update"]
    m1 = vm.meminfo()
    st = _next_stats(vm, last, "after reading meminfo")["stats"]
    m2 = vm.meminfo()
    errors = []
    for stat, field in pairs:
        lo = min(m1[field], m2[field]) * 1024 - tol(vm)
        hi = max(m1[field], m2[field]) * 1024 + tol(vm)
        if not lo <= st[stat] <= hi:
            errors.append("%s = %s but guest %s was %s / %s" % (
                stat, mib(st[stat]), field, mib(m1[field] * 1024),
                mib(m2[field] * 1024)))
    assert not errors, "%s: stats disagree with /proc/meminfo (tolerance " \
        "%s): %s" % (when, mib(tol(vm)), "; ".join(errors))


def stats(vm, driver):
    load(vm, driver)
    try:
        vm.set_stats_interval(2)
        assert vm.qom_get("guest-stats-polling-interval") == 2
        s = vm.guest_stats()
        s = _next_stats(vm, s["last-update"], "first")
        s = _next_stats(vm, s["last-update"], "second")
        st = s["stats"]
        missing = [k for k in QEMU_STATS if k not in st]
        assert not missing, "stats missing from guest-stats: %s" % missing
        unset = [k for k in QEMU_STATS if st[k] == -1]
        assert not unset, "stats the driver did not report (-1): %s" % unset

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
        vm.set_balloon_size(512 * MiB)
        wait_balloon(vm, 512 * MiB)
        _compare_stats_to_meminfo(vm, "balloon 512 MiB")
    finally:
        if vm.alive():
            vm.set_stats_interval(0)


# -- 4: deflate on OOM / MemTotal accounting ------------------------------

def _squeeze(vm, leave=100 * MiB):
    """Inflate until only about `leave` bytes are free; returns actual."""
    size = (free_bytes(vm) - leave) // MiB * MiB
    vm.set_balloon_size(size)
    wait_balloon(vm, size)
    wait_meminfo(vm, "FreeTotal", leave, "about %s left free" % mib(leave))
    return vm.query_balloon()


def _start_hog(vm, size_mib, options=""):
    """Start `memhog [options] size_mib` in the background, killable by the
    OOM killer (the agent itself is protected); returns once all its memory
    is touched, or it ended."""
    # only memhog itself is made the OOM killer's favourite; the subshell
    # that records its exit code keeps the agent's protection
    vm.check("rm -f /tmp/hog.*; (sh -c 'echo 1000 > /proc/self/oom_score_adj"
             " && exec memhog %s -r /tmp/hog.ready -H 600 %d' >/tmp/hog.out"
             " 2>&1; echo $? >/tmp/hog.rc) </dev/null >/dev/null 2>&1 &" % (
                 options, size_mib))
    wait_until(lambda: vm.run("test -e /tmp/hog.ready || "
                              "test -e /tmp/hog.rc")[0] == 0,
               BALLOON_TIMEOUT, 1, "memhog %d to touch all its memory or end"
               % size_mib,
               lambda: "memhog output: %r, %s" % (
                   vm.run("cat /tmp/hog.out")[1], describe_balloon(vm)()))


def _finish_hog(vm):
    """Release memhog; returns (rc, output)."""
    vm.run("killall -USR1 memhog")
    wait_until(lambda: vm.run("test -e /tmp/hog.rc")[0] == 0, 120, 0.5,
               "memhog to exit")
    return (int(vm.check("cat /tmp/hog.rc").strip()),
            vm.check("cat /tmp/hog.out"))


def deflate_on_oom(vm, driver):
    """deflate-on-oom=on: with ~100 MiB free, a 300 MiB allocation succeeds
    because the balloon gives memory back, and the OOM killer stays idle."""
    load(vm, driver)
    mark = len(vm.console())
    actual_before = _squeeze(vm)
    _start_hog(vm, 300)
    actual_during = vm.query_balloon()
    rc, out = _finish_hog(vm)
    assert rc == 0, "memhog 300 failed (rc %d) with the balloon deflatable " \
        "on OOM:\n%s" % (rc, out)
    grown = actual_during - actual_before
    assert grown >= 100 * MiB, \
        "balloon should have given back memory to let memhog 300 run with " \
        "100 MiB free, but actual grew by only %s (from %s to %s)" % (
            mib(grown), mib(actual_before), mib(actual_during))
    oom = find_bad_lines(vm.console()[mark:], OOM_PATTERNS) + \
        find_bad_lines(vm.dmesg(), OOM_PATTERNS)
    assert not oom, "the OOM killer ran instead of the balloon deflating:" \
        "\n  " + "\n  ".join(oom)


def balloon_holds_without_deflate_on_oom(vm, driver):
    """deflate-on-oom=off: the balloon must not shrink under memory
    pressure; the OOM killer takes the memory hog instead."""
    load(vm, driver)
    mark = len(vm.console())
    # Leave more room than the deflate-on-oom test: MemTotal shrinks with
    # the balloon, yet the min watermark (~44 MiB, set at boot for 2 GiB)
    # and the per-cpu list limits (~27 MiB per CPU) do not, so at 100 MiB
    # the guest is too tight to even fork after the OOM kill (either
    # driver).  256 MiB left and a 512 MiB hog still force the OOM killer.
    actual_before = _squeeze(vm, 256 * MiB)
    # MemTotal shrank with the balloon, so the default overcommit heuristic
    # would refuse the mmap outright; we want real pressure at fault time.
    vm.check("echo 1 > /proc/sys/vm/overcommit_memory")
    # Everything else in the guest has oom_score_adj -1000; if an
    # allocation fails again after memhog was reaped but before its memory
    # is back (a wide window on the KASAN kernel), the OOM killer finds
    # nobody and panics ("no killable processes").  A spare victim closes
    # that window; memhog (1000) is still chosen first.
    vm.check("(echo 500 > /proc/self/oom_score_adj; exec sleep 2147483647)"
             " </dev/null >/dev/null 2>&1 & echo $! > /tmp/spare.pid")
    vm.kmsg(EXPECT_BEGIN)
    try:
        _start_hog(vm, 512)
        actual_during = vm.query_balloon()
        rc, out = _finish_hog(vm)
    finally:
        if vm.alive():
            vm.kmsg(EXPECT_END)
            vm.run("kill $(cat /tmp/spare.pid)")
            vm.check("echo 0 > /proc/sys/vm/overcommit_memory")
    assert actual_during == actual_before, \
        "balloon shrank under memory pressure without deflate-on-oom: " \
        "actual %s -> %s" % (mib(actual_before), mib(actual_during))
    assert rc != 0, "memhog 512 succeeded with 256 MiB free and a balloon " \
        "that may not deflate:\n%s" % out
    oom = find_bad_lines(vm.console()[mark:], OOM_PATTERNS,
                         skip_expected=False)
    assert oom, "memhog failed (rc %d) but the OOM killer was not seen:\n%s" \
        % (rc, out)
    assert vm.query_balloon() == actual_before


def memtotal_accounting(vm, driver):
    """deflate-on-oom=off: ballooned pages leave MemTotal.  deflate-on-oom=on:
    they stay in MemTotal (counted as used) so the OOM path can take them
    back -- the behaviour of the kernel's virtio_balloon."""
    load(vm, driver)
    total0 = vm.meminfo()["MemTotal"] * 1024
    size = 512 * MiB
    vm.set_balloon_size(size)
    wait_balloon(vm, size)
    if vm.deflate_on_oom:
        wait_meminfo(vm, "MemTotal", total0,
                     "MemTotal unchanged with deflate-on-oom=on")
    else:
        wait_meminfo(vm, "MemTotal", total0 - size,
                     "MemTotal dropped by the balloon size")
    vm.set_balloon(vm.ram_bytes)
    wait_balloon(vm, 0)
    wait_meminfo(vm, "MemTotal", total0, "MemTotal recovered")


# -- 5: unload with an inflated balloon ------------------------------------

def rmmod_inflated(vm, driver):
    """rmmod with a 1 GiB balloon (for a built-in vballoon: unbind, see
    VM.unload_driver): the memory comes back; a fresh load/bind inflates
    to the standing target again."""
    load(vm, driver)
    mi = vm.meminfo()
    free0, total0 = mi["FreeTotal"] * 1024, mi["MemTotal"] * 1024
    vm.set_balloon_size(GiB)
    wait_balloon(vm, GiB)
    wait_meminfo(vm, "FreeTotal", free0 - GiB, "free memory dropped by 1 GiB")
    vm.unload_driver(driver)
    assert not vm.loaded(driver)
    wait_meminfo(vm, "FreeTotal", free0, "free memory back after rmmod")
    wait_meminfo(vm, "MemTotal", total0, "MemTotal back after rmmod")
    # QEMU still asks for 1 GiB: a fresh load must inflate to it again
    load(vm, driver)
    wait_balloon(vm, GiB)
    wait_meminfo(vm, "FreeTotal", free0 - GiB, "free memory dropped again")
    vm.set_balloon(vm.ram_bytes)
    wait_balloon(vm, 0)
    wait_meminfo(vm, "FreeTotal", free0, "free memory back after deflate")
    vm.unload_driver(driver)
    assert not vm.loaded(driver)


# -- 7: end of boot ---------------------------------------------------------

def console_clean(vm_slot):
    """No guest died, the whole console/dmesg of this boot is clean and
    (debug kernel) kmemleak finds no leak in vballoon.  All three are
    checked and reported together."""
    vm = vm_slot.vm
    problems = []
    deaths = list(vm_slot.deaths)
    if vm is None or not vm.alive():
        deaths.append("the guest is not running at the end of the module" +
                      ("" if vm is None else " (console %s):\n%s" % (
                          vm.console_path, vm.console_tail(30))))
    if deaths:
        problems.append("guests were lost during this module:\n" +
                        "\n".join(deaths))
    if vm is None or not vm.alive():
        pytest.fail("\n".join(problems), pytrace=False)
    leaks = None
    if vm.kernel.builtin_vballoon or vm.kernel.series == "debug":
        leaks = vm.kmemleak_check()
    con, dmesg = vm.console(), vm.dmesg()
    bad = find_bad_lines(con) + find_bad_lines(dmesg)
    if bad:
        problems.append("kernel problems in this boot (console %s):\n  %s\n%s"
                        % (vm.console_path, "\n  ".join(bad[:40]),
                           bad_reports(con) or bad_reports(dmesg)))
    if leaks is not None:
        ours, others = leaks
        if others:
            print("kmemleak: %d leak(s) not involving vballoon (not a "
                  "failure; %s):\n%s" % (len(others),
                                         vm.log_dir / "kmemleak.txt",
                                         "\n".join(others[:10])))
        if ours:
            problems.append("kmemleak: %d leak(s) with vballoon in the "
                            "backtrace (%s):\n%s" % (
                                len(ours), vm.log_dir / "kmemleak.txt",
                                "\n".join(ours)))
    assert not problems, "\n".join(problems)
