# SPDX-License-Identifier: GPL-2.0-only
"""VM tests with virtio-balloon-pci,deflate-on-oom=off (one boot per kernel).

Without deflate-on-oom, ballooned pages leave the guest's MemTotal.  The
three tests imported from test_oom_on.py run here again under this
module's device configuration, with vballoon only (the parity runs of
virtio_balloon are in test_oom_on.py).

Not on the debug kernel at all: this module checks accounting and
parameter handling, and the driver paths it takes (inflation and
deflation without DEFLATE_ON_OOM, the probe's parameter checks) run
under the sanitizers in test_lifecycle.py and test_vbhost.py, whose
devices lack DEFLATE_ON_OOM too.  A debug boot costs about 80 s of the
suite's time (boot, then two kmemleak scans).
"""

import pytest

from harness.console import EXPECT_BEGIN, EXPECT_END, OOM_PATTERNS, \
    find_bad_lines
from harness.units import PAGE_SIZE, MiB, mib
from harness.workloads import finish_hog, squeeze, start_hog
from test_oom_on import (test_burst_of_targets,  # noqa: F401 (repeats)
                         test_inflate_half_and_back,
                         test_rmmod_with_inflated_balloon)

pytestmark = [
    pytest.mark.vm_config("oom-off", deflate_on_oom=False),
    pytest.mark.skip_debug("the Debian kernels (see the module's text)"),
]

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


# -- module parameters -------------------------------------------------------

PARAMS = "/sys/module/vballoon/parameters"
SAME_CHECK = "batch_pages=0 (the same range check)"


@pytest.mark.parametrize("name,value,default,message", [
    ("batch_pages", "0", 4096,
     "batch_pages=0 out of range 1-32768, using 4096"),
    pytest.param("batch_pages", "40000", 4096,
                 "batch_pages=40000 out of range 1-32768, using 4096",
                 marks=pytest.mark.skip_debug(SAME_CHECK)),
    pytest.param("oom_pages", "999999", 1024,
                 "oom_pages=999999 out of range 1-32768, using 1024",
                 marks=pytest.mark.skip_debug(SAME_CHECK)),
    # not in debugfs status: only the message shows the value in force
    pytest.param("pressure_hold_ms", "600001", None,
                 "pressure_hold_ms=600001 above 600000, using 10000",
                 marks=pytest.mark.skip_debug(SAME_CHECK)),
], ids=["batch_pages=0", "batch_pages=40000", "oom_pages=999999",
         "pressure_hold_ms=600001"])
def test_param_out_of_range(vm, name, value, default, message):
    """A value out of range: the device binds, the default is in force
    (debugfs status), and the warning says so once for the probe; a plain
    load afterwards warns no more."""
    mark = len(vm.console())
    dev = vm.load("vballoon", "%s=%s" % (name, value))
    want = "vballoon %s: %s" % (dev, message)
    vm.wait_until(lambda: want in vm.console()[mark:], 30, 0.5,
                  "the warning %r on the console" % want,
                  lambda: "console since load: %r" %
                  vm.console()[mark:][-2000:])
    st = vm.vballoon_status(dev)
    if default is not None:
        assert st[name] == default, \
            "%s=%s is out of range, yet status says %s %s (default %d)" % (
                name, value, name, st[name], default)
    vm.unload("vballoon")
    vm.load("vballoon")
    st = vm.vballoon_status(dev)
    if default is not None:
        assert st[name] == default, st
    log = vm.console()[mark:]
    assert log.count(message) == 1, \
        "%r %d times on the console for one probe with %s=%s and one " \
        "without: %r" % (message, log.count(message), name, value, log)


@pytest.mark.parametrize("name,value,message", [
    # the driver's own setter refuses it (and says which values work)
    ("autodeflate", "bogus",
     "vballoon: autodeflate=bogus: use off, oom, pressure or auto"),
    # the kernel's parser refuses a malformed number (insmod only: a
    # write to sysfs just fails, as the shell reports)
    pytest.param("batch_pages", "abc",
                 "vballoon: `abc' invalid for parameter `batch_pages'",
                 marks=pytest.mark.skip_debug(
                     "autodeflate=bogus (a parameter write refused)")),
], ids=["autodeflate=bogus", "batch_pages=abc"])
def test_param_rejected(vm, name, value, message):
    """A value the parameter cannot take: loading fails with a kernel
    message naming it, nothing stays loaded (built in: the parameter
    keeps its value, nothing is bound), and a plain load works."""
    mark = len(vm.console())
    if vm.kernel.builtin_vballoon:
        rc, out = _write_refused(vm, name, value)
    else:
        rc, out = vm.run("modload vballoon %s=%s" % (name, value))
    assert rc != 0, "%s=%s was accepted: %s" % (name, value, out)
    assert not vm.loaded("vballoon"), \
        "loading vballoon with %s=%s failed but left it loaded" % (
            name, value)
    assert not vm.bound_devices("vballoon"), \
        "%s=%s refused, yet vballoon bound the balloon" % (name, value)
    vm.wait_until(lambda: message in vm.console()[mark:], 30, 0.5,
                  "the message %r on the console" % message,
                  lambda: "console since: %r, command output %r" % (
                      vm.console()[mark:][-2000:], out))
    # once per attempt to load; busybox insmod makes two (finit_module,
    # then init_module when that was refused), a sysfs write one
    attempts = 1 if vm.kernel.builtin_vballoon else 2
    said = vm.console()[mark:].count(message)
    assert 1 <= said <= attempts, "%r said %d times for %d attempt(s) to " \
        "load" % (message, said, attempts)
    dev = vm.load("vballoon")
    st = vm.vballoon_status(dev)
    assert st["autodeflate"] == "off" and st["batch_pages"] == 4096, st
    if name == "autodeflate" and not vm.kernel.builtin_vballoon:
        # the same setter through sysfs, as on the debug kernel: the
        # written value ends in a newline, the message is still one line
        mark = len(vm.console())
        _write_refused(vm, name, value)
        vm.wait_until(lambda: message in vm.console()[mark:], 30, 0.5,
                      "the message %r on the console after a sysfs write"
                      % message, lambda: vm.console()[mark:][-2000:])


def _write_refused(vm, name, value):
    """Write `value` to vballoon's parameter `name` in sysfs: the write
    must fail and leave the parameter as it was; returns (rc, output)."""
    before = vm.check("cat %s/%s" % (PARAMS, name)).strip()
    rc, out = vm.run("echo %s > %s/%s" % (value, PARAMS, name))
    after = vm.check("cat %s/%s" % (PARAMS, name)).strip()
    assert rc != 0, "writing %s=%s to sysfs succeeded" % (name, value)
    assert after == before, "writing %s=%s changed the parameter: %r -> " \
        "%r" % (name, value, before, after)
    return rc, out


def test_huge_blocks_off(vm):
    """huge_blocks=0: inflation takes single pages only (no 2 MiB block
    counted); the default, on the same guest, does count blocks -- so the
    counter can tell."""
    size = 256 * MiB
    dev = vm.load("vballoon", "huge_blocks=0")
    st0 = vm.vballoon_status(dev)
    assert st0["huge_blocks"] == 0, \
        "loaded with huge_blocks=0, status says huge_blocks %s" % (
            st0["huge_blocks"])
    vm.inflate(size)
    st1 = vm.vballoon_status(dev)
    vm.inflate(0)
    vm.unload("vballoon")
    dev = vm.load("vballoon")
    st2 = vm.vballoon_status(dev)
    assert st2["huge_blocks"] == 1, st2
    vm.inflate(size)
    st3 = vm.vballoon_status(dev)
    pages = size // PAGE_SIZE
    assert st1["inflated_pages"] - st0["inflated_pages"] == pages, st1
    assert st1["inflated_blocks"] == st0["inflated_blocks"], \
        "huge_blocks=0 inflated %d 2 MiB blocks" % (
            st1["inflated_blocks"] - st0["inflated_blocks"])
    assert st3["inflated_blocks"] - st2["inflated_blocks"] > 0, \
        "the default (huge_blocks=1) inflated %d pages without a 2 MiB " \
        "block: the check above proves nothing" % (
            st3["inflated_pages"] - st2["inflated_pages"])
