# SPDX-License-Identifier: GPL-2.0-only
"""VM tests with virtio-balloon-pci,deflate-on-oom=off (one boot per kernel).

Without deflate-on-oom, ballooned pages leave the guest's MemTotal.  The
three tests imported from test_oom_on.py run here again under this
module's device configuration, with vballoon only (the parity runs of
virtio_balloon are in test_oom_on.py), and not on the debug kernel (see
conftest.py).
"""

import pytest

from harness.console import EXPECT_BEGIN, EXPECT_END, OOM_PATTERNS, \
    find_bad_lines
from harness.units import MiB, mib
from harness.workloads import finish_hog, squeeze, start_hog
from test_oom_on import (test_burst_of_targets,  # noqa: F401 (repeats)
                         test_inflate_half_and_back,
                         test_rmmod_with_inflated_balloon)

pytestmark = pytest.mark.vm_config("oom-off", deflate_on_oom=False)

FALLBACK_WARNING = ("autodeflate=pressure needs the host to offer "
                    "deflate-on-oom: autodeflate off")


def test_memtotal_follows_balloon(vm, driver):
    """Ballooned pages leave MemTotal."""
    vm.load(driver)
    total0 = vm.meminfo()["MemTotal"] * 1024
    size = 512 * MiB
    vm.inflate(size)
    vm.wait_meminfo("MemTotal", total0 - size,
                    "MemTotal dropped by the balloon size")
    vm.inflate(0)
    vm.wait_meminfo("MemTotal", total0, "MemTotal recovered")


def test_balloon_holds_without_deflate_on_oom(vm, driver):
    """The balloon must not shrink under memory pressure; the OOM killer
    takes the memory hog instead."""
    vm.load(driver)
    mark = len(vm.console())
    # Leave more room than the deflate-on-oom test: MemTotal shrinks with
    # the balloon, yet the min watermark (~44 MiB, set at boot for 2 GiB)
    # and the per-cpu list limits (~27 MiB per CPU) do not, so at 100 MiB
    # the guest is too tight to even fork after the OOM kill (either
    # driver).  256 MiB left and a 512 MiB hog still force the OOM killer.
    actual_before = squeeze(vm, 256 * MiB)
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
        start_hog(vm, 512)
        actual_during = vm.query_balloon()
        rc, out = finish_hog(vm)
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


def test_pressure_falls_back_to_off(vm):
    """autodeflate=pressure from a host that does not offer deflate-on-oom
    runs with autodeflate off and says so."""
    assert not vm.deflate_on_oom, "needs a host without deflate-on-oom"
    mark = len(vm.console())
    dev = vm.load("vballoon", "autodeflate=pressure")
    st = vm.vballoon_status(dev)
    assert st["deflate_on_oom"] == 0 and st["autodeflate"] == "off", \
        "autodeflate=pressure without deflate-on-oom: %r" % st
    want = "%s: %s" % (dev, FALLBACK_WARNING)
    vm.wait_until(lambda: want in vm.dmesg(), 30, 0.5,
                  "the warning %r in dmesg" % want,
                  lambda: "console since load: %r" %
                  vm.console()[mark:][-2000:])
