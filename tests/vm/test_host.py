# SPDX-License-Identifier: GPL-2.0-only
"""Evidence from the host, not from the driver (one boot per kernel,
deflate-on-oom=off).

QMP's `actual` is the number the driver writes into config space; a
driver that writes it and sends wrong frames, or none, passes every test
that decides by it.  These tests look at what the host did instead
(harness/host.py):

1. The host drops what was inflated (parity): after the guest has
   written to all its free memory (so QEMU's mapping backs it), the Rss
   of QEMU's guest-RAM mapping (/proc/PID/smaps) drops by at least 90 %
   of a 1 GiB balloon: QEMU 7.2 madvise(MADV_DONTNEED)s each frame it
   receives.  vballoon runs first, on the fresh guest, and its 2 MiB
   blocks must cover at least 90 % of the pages it inflated.
2. Patterned data intact: guest/pattern keeps 256 MiB of data (every
   word derived from its offset) in 2 MiB chunks with the guest's free
   2 MiB blocks between them, and checks every word after each of three
   inflate/deflate cycles (a balloon the size of those holes, then most
   of the free memory twice): a data frame wrongly given to the host
   reads back as zeros.
3. The host keeps its huge pages (vballoon against virtio_balloon, each
   in a fresh 1 GiB guest of its own, with part of free memory scattered
   single pages): the AnonHugePages QEMU loses beyond the Rss the balloon
   freed stays under 10 % of the balloon with vballoon and is over 25 %
   with virtio_balloon, which takes the scattered pages first and splits
   a host huge page for each.  Skipped, with the reason, where the host
   does not back guest RAM with huge pages.
"""

import pytest

import conftest
from harness import host
from harness.console import find_bad_lines
from harness.units import GiB, MiB, PAGE_SIZE, mib
from harness.vm import make_vm
from harness.workloads import start_victim, victim_ended

# Not on the debug kernel: what the host did (QEMU's Rss, huge pages,
# the data) does not depend on the guest's sanitizers, and inflation and
# deflation run under them in every other debug module.
pytestmark = [
    pytest.mark.vm_config("host", deflate_on_oom=False,
                          extra_helpers=("pattern",)),
    pytest.mark.skip_debug("the Debian kernels"),
]

BLOCK_PAGES = 512       # pages in a 2 MiB block (x86, 4 KiB pages)


def ram(vm):
    """{field: kB} of QEMU's guest-RAM mapping now."""
    return host.guest_ram(vm.proc.pid, vm.ram_bytes)


def touch_free(vm, leave=100 * MiB):
    """Write once to all but `leave` of the guest's free memory (memhog,
    which then exits), so that QEMU's mapping backs those frames and a
    frame the host discards later shows in its Rss.  Returns MiB."""
    size = (vm.free_bytes() - leave) // MiB
    vm.check("memhog %d" % size, timeout=900)
    return size


@pytest.mark.parity
def test_host_drops_inflated_frames(vm, driver):
    dev = vm.load(driver)
    touched = touch_free(vm)
    before = ram(vm)
    size = 1 * GiB
    assert before["Rss"] * 1024 >= size, \
        "QEMU's guest RAM has only %s resident after the guest wrote %d " \
        "MiB: cannot see a 1 GiB balloon in it" % (
            mib(before["Rss"] * 1024), touched)
    vm.inflate(size)
    after = ram(vm)
    drop = (before["Rss"] - after["Rss"]) * 1024
    print("HOST-RESULT %s: balloon %s, Rss of guest RAM %s -> %s (-%s), "
          "AnonHugePages %s -> %s" % (
              driver, mib(size), mib(before["Rss"] * 1024),
              mib(after["Rss"] * 1024), mib(drop),
              mib(before["AnonHugePages"] * 1024),
              mib(after["AnonHugePages"] * 1024)))
    assert drop >= 0.9 * size, \
        "QMP says %s are ballooned, but QEMU's guest RAM shrank by only " \
        "%s (Rss %s -> %s): the host did not get those frames" % (
            mib(size), mib(drop), mib(before["Rss"] * 1024),
            mib(after["Rss"] * 1024))
    if driver == "vballoon":
        # first test of the module: a fresh guest, free memory in blocks
        st = vm.vballoon_status(dev)
        pages, blocks = st["inflated_pages"], st["inflated_blocks"]
        assert pages == size // PAGE_SIZE, st
        assert blocks * BLOCK_PAGES >= 0.9 * pages, \
            "2 MiB blocks first: only %d blocks (%d pages) of %d pages " \
            "inflated on a fresh guest" % (blocks, blocks * BLOCK_PAGES,
                                           pages)


PATTERN_MIB = 256


def start_pattern(vm, size_mib):
    """Start `pattern size_mib` in the background (the OOM killer's
    favourite, like memhog); returns once its data is written."""
    start_victim(vm, "pattern", "-r /tmp/pattern.ready %d" % size_mib,
                 "test -e /tmp/pattern.ready", 300,
                 "pattern to write its data")
    out = vm.check("cat /tmp/pattern.out")
    assert vm.run("test -e /tmp/pattern.ready")[0] == 0, \
        "pattern did not start: %s" % out


def check_pattern(vm, n):
    """Have pattern check all its data (its n-th check); returns its
    report line and the bad pages it found."""
    vm.check("killall -USR1 pattern")
    got = {}

    def done():
        got["out"] = vm.check("cat /tmp/pattern.out")
        return "check %d:" % n in got["out"] or victim_ended(vm, "pattern")
    vm.wait_until(done, 120, 0.5, "pattern's check %d" % n,
                  lambda: got.get("out"))
    line = [ln for ln in got["out"].splitlines() if "check %d:" % n in ln]
    assert line, "pattern ended before check %d:\n%s" % (n, got["out"])
    bad = int(line[0].split(" pages, ")[1].split()[0])
    return line[0], bad, got["out"]


# A frame handed to the host by mistake reads back as zeros on any kernel;
# the sanitizers add nothing to this one, and it is the module's longest
# scenario on the debug kernel (about 70 s).
@pytest.mark.skip_debug("the Debian kernels")
def test_patterned_data_survives_cycles(vm):
    dev = vm.load("vballoon")
    start_pattern(vm, PATTERN_MIB)
    try:
        free = vm.free_bytes()
        # first a balloon the size of the free 2 MiB holes between the
        # data (the blocks freed last), then most of free memory, twice
        sizes = [PATTERN_MIB * MiB] + [
            (free - (160 + 32 * i) * MiB) // MiB * MiB for i in range(2)]
        for n, size in enumerate(sizes, 1):
            vm.inflate(size)
            vm.inflate(0)
            line, bad, out = check_pattern(vm, n)
            assert bad == 0, \
                "after inflating %s and deflating (cycle %d), %s:\n%s" % (
                    mib(size), n, line, out)
    finally:
        vm.run("killall pattern")
    st = vm.vballoon_status(dev)
    print("HOST-RESULT pattern: %d MiB intact through balloons of %s; %d "
          "pages inflated, %d in 2 MiB blocks" % (
              PATTERN_MIB, ", ".join(mib(s) for s in sizes),
              st["inflated_pages"], st["inflated_blocks"] * BLOCK_PAGES))


def _thp_lost(kernel, driver):
    """Fresh 1 GiB, 1 vCPU guest: touch free memory, scatter 16 MiB of free
    single pages over 128 MiB (frag 128 8), inflate 256 MiB with
    `driver`.  Returns (balloon, Rss drop, AnonHugePages drop), bytes."""
    size = 256 * MiB
    # One vCPU: frag's freed pages wait on a per-cpu free list (on 6.12
    # up to ~100 MiB) before they reach the buddy lists; a balloon
    # allocating on another CPU would not see them, and whether a driver
    # got the scattered pages would depend on where its worker ran.
    with make_vm(kernel, mem_mib=1024, smp=1, deflate_on_oom=False,
                 name="host-thp-%s-%s" % (driver, kernel.series)) as g:
        if not ram(g).get("THPeligible"):
            pytest.skip("QEMU's guest RAM is not eligible for host THP "
                        "(THP %s, not madvised?)" % host.host_thp_mode())
        touch_free(g, 160 * MiB)
        g.check("(frag 128 8 > /tmp/frag.log 2>&1 &)")
        g.wait_until(lambda: "ready" in g.run("cat /tmp/frag.log")[1], 300,
                     0.5, "frag to scatter free pages",
                     lambda: g.run("cat /tmp/frag.log")[1])
        before = ram(g)
        if before["AnonHugePages"] < before["Rss"] // 2:
            pytest.skip("the host backs only %s of %s resident guest RAM "
                        "with huge pages" % (
                            mib(before["AnonHugePages"] * 1024),
                            mib(before["Rss"] * 1024)))
        g.load(driver)
        g.inflate(size)
        after = ram(g)
        bad = find_bad_lines(g.console())
        assert not bad, "%s guest (console %s):\n%s" % (
            driver, g.console_path, "\n".join(bad))
    return (size, (before["Rss"] - after["Rss"]) * 1024,
            (before["AnonHugePages"] - after["AnonHugePages"]) * 1024)


# boots guests of its own (no `vm` fixture, so it applies skip_debug itself)
@pytest.mark.skip_debug("the Debian kernels")
def test_host_keeps_huge_pages(request, kernel):
    conftest._skip_on_debug_kernel(request.node, kernel)
    mode = host.host_thp_mode()
    if mode not in ("always", "madvise"):
        pytest.skip("the host has no transparent huge pages (%s: %s)" % (
            host.THP_ENABLED, mode))
    if "virtio_balloon" not in conftest.DRIVERS:
        pytest.skip("needs virtio_balloon to show the measurement can fail "
                    "(VBALLOON_DRIVERS=%s)" % ",".join(conftest.DRIVERS))
    excess = {}
    for driver in ("vballoon", "virtio_balloon"):
        size, rss, ahp = _thp_lost(kernel, driver)
        excess[driver] = ahp - rss
        print("HOST-RESULT THP %s: balloon %s, Rss -%s, AnonHugePages -%s: "
              "%s of huge pages split beyond the balloon" % (
                  driver, mib(size), mib(rss), mib(ahp),
                  mib(excess[driver])))
        assert rss >= 0.9 * size, \
            "%s: Rss of guest RAM dropped by %s for a %s balloon" % (
                driver, mib(rss), mib(size))
    assert excess["vballoon"] <= 0.1 * size, \
        "vballoon split %s of host huge pages beyond the %s it ballooned " \
        "(2 MiB blocks first?)" % (mib(excess["vballoon"]), mib(size))
    # the same measurement catches a driver that scatters: it can fail
    assert excess["virtio_balloon"] >= 0.25 * size, \
        "virtio_balloon split only %s of host huge pages beyond its %s: " \
        "the fragmented guest no longer shows what scattered pages cost" \
        % (mib(excess["virtio_balloon"]), mib(size))
