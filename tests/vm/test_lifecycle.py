# SPDX-License-Identifier: GPL-2.0-only
"""Device life-cycle paths only QEMU can drive (one boot per kernel,
deflate-on-oom=off, so MemTotal counts every ballooned page exactly).

1. Removal of the balloon device with 1 GiB inflated: every page back
   (MemTotal to the page, free memory), then a new device is added and
   ballooned.  On the Debian kernels QMP `device_del` / `device_add`
   (ACPI PCI hotplug: acpiphp is built in, QEMU 7.2's i440fx offers
   hotplug on the root bus); the debug kernel has no HOTPLUG_PCI (and
   boots pci=noacpi), so there the guest removes the PCI device itself
   (sysfs `remove`, then `rescan`): the same vb_remove() under KASAN,
   lockdep and kmemleak (the end-of-boot kmemleak scan covers the freed
   device).
2. Compaction moves balloon pages: free memory is made single-page holes
   around balloon pages, then huge pages are asked for; more huge pages
   appear than there are 2 MiB blocks free of balloon pages, the
   driver's migrated_pages moves and QEMU's `actual` does not.
3. Suspend to RAM with an inflated balloon: while the guest sleeps the
   host sees the balloon empty (freeze gave every page back and told the
   host); after QMP `system_wakeup` the driver inflates to the standing
   target again (restore), QEMU, the driver and MemTotal agree to the
   page, and ballooning works afterwards (debug kernel: it boots
   pci=noacpi, and after resume the balloon's interrupt is not routed
   any more, so there the driver is unbound after resume instead, every
   page back).  Last in the module for that reason.

Hibernation is not tested: it needs a swap device and the debug kernel
has no HIBERNATION; the driver's freeze/restore are the same functions.
"""

import re
import shlex

import pytest

from harness.errors import QMPError
from harness.qemu import BALLOON_ID
from harness.units import PAGE_SIZE, GiB, MiB, mib
from harness.workloads import start_victim, wait_victim_exit

pytestmark = pytest.mark.vm_config("lifecycle", deflate_on_oom=False,
                                   extra_helpers=("kpfblocks",))

BLOCK = 2 * MiB             # a huge page; kpfblocks' block
SUSPEND_EXIT = "PM: suspend exit"


def _views(vm, dev, total0_kb, base, size):
    """The driver, QEMU and MemTotal all say the balloon is `size` bytes;
    returns the driver's status."""
    pages = size // PAGE_SIZE
    st = vm.vballoon_status(dev)
    views = {
        "debugfs balloon_pages": st["balloon_pages"],
        "QEMU (RAM - actual) / page":
            (vm.ram_bytes - vm.query_balloon()) // PAGE_SIZE,
        "MemTotal drop / page":
            (total0_kb - vm.meminfo()["MemTotal"]) * 1024 // PAGE_SIZE,
    }
    if base is not None:
        views["inflated - deflated pages"] = (
            st["inflated_pages"] - base["inflated_pages"] -
            st["deflated_pages"] + base["deflated_pages"])
    wrong = {k: v for k, v in views.items() if v != pages}
    assert not wrong, "balloon of %d pages, but %s (status: %s)" % (
        pages, wrong, st)
    return st


def _balloon_cycle(vm, dev, total0_kb, free0, size, what):
    """Inflate to `size`, deflate to 0: every view agrees at both ends and
    free memory comes back."""
    vm.inflate(size)
    _views(vm, dev, total0_kb, None, size)
    vm.inflate(0)
    _views(vm, dev, total0_kb, None, 0)
    vm.wait_meminfo("FreeTotal", free0, "free memory back " + what)


def _qmp_events(vm, name, since):
    """QMP events `name` received after the first `since` ones (sends a
    command so that pending events are read)."""
    vm.qmp("query-status")
    return [e for e in vm.qmp_events[since:] if e["event"] == name]


def _balloon_props(vm):
    """The balloon's -device properties (as Machine.command_line)."""
    props = {"deflate-on-oom": "on" if vm.deflate_on_oom else "off"}
    props.update(vm.balloon_props)
    return props


def _device_present(vm):
    try:
        vm.query_balloon()
        return True
    except QMPError:
        return False


def test_remove_inflated_device(vm):
    builtin = vm.kernel.builtin_vballoon
    dev = vm.load("vballoon")
    mi = vm.meminfo()
    total0_kb, free0 = mi["MemTotal"], mi["FreeTotal"] * 1024
    vm.inflate(GiB)
    _views(vm, dev, total0_kb, None, GiB)
    pci = vm.check("basename $(readlink -f /sys/bus/virtio/devices/%s/..)"
                   % dev).strip()
    assert re.match(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.\d$", pci), pci
    since = len(vm.qmp_events)
    try:
        if builtin:
            # returns when the driver's remove is done
            vm.check("echo 1 > /sys/bus/pci/devices/%s/remove" % pci,
                     timeout=600)
        else:
            vm.qmp("device_del", id=BALLOON_ID)
            vm.wait_until(lambda: any(
                e["data"].get("device") == BALLOON_ID
                for e in _qmp_events(vm, "DEVICE_DELETED", since)), 300, 0.5,
                "QMP DEVICE_DELETED for %s" % BALLOON_ID)
        vm.wait_until(lambda: vm.run(
            "test -e /sys/bus/pci/devices/%s || test -e "
            "/sys/kernel/debug/vballoon/%s" % (pci, dev))[0] != 0, 60, 0.5,
            "%s and its debugfs directory to be gone from the guest" % pci)
        mi = vm.meminfo()
        assert mi["MemTotal"] == total0_kb, \
            "MemTotal %d kB after removing the device with 1 GiB " \
            "inflated, %d kB before inflating: %d pages never came back" % (
                mi["MemTotal"], total0_kb,
                (total0_kb - mi["MemTotal"]) * 1024 // PAGE_SIZE)
        vm.wait_meminfo("FreeTotal", free0, "free memory back after removal")
    finally:
        if builtin:
            vm.run("echo 1 > /sys/bus/pci/rescan", timeout=300)
        elif not _device_present(vm):
            vm.qmp("device_add", driver="virtio-balloon-pci", id=BALLOON_ID,
                   **_balloon_props(vm))
    # the new device: vballoon (loaded or built in) probes it by itself
    devs = vm.wait_until(lambda: vm.bound_devices("vballoon"), 120, 0.5,
                         "vballoon to bind the added balloon device")
    dev = devs[0]
    # device_add: a new device, target 0.  rescan: the same QEMU device,
    # whose standing 1 GiB target the new probe takes from scratch.
    standing = GiB if builtin else 0
    vm.wait_balloon(standing)
    st = _views(vm, dev, total0_kb, None, standing)
    assert st["inflated_pages"] == standing // PAGE_SIZE and \
        st["deflated_pages"] == 0, \
        "the new device did not start from an empty balloon: %s" % st
    _balloon_cycle(vm, dev, total0_kb, free0, 512 * MiB,
                   "on the re-added device")


def _kpfblocks(vm):
    out = vm.check("kpfblocks", timeout=300)
    return {k: int(v) for k, v in zip(*[iter(out.split())] * 2)}


def _sysctl(vm, name, value):
    """Set /proc/sys/vm/`name`, returning the old value (None if the
    kernel has no such knob)."""
    path = "/proc/sys/vm/" + name
    rc, old = vm.run("cat " + path)
    if rc != 0:
        return None
    vm.check("echo %s > %s" % (shlex.quote(str(value)), path))
    return old.strip()


def test_compaction_moves_balloon_pages(vm):
    dev = vm.load("vballoon", "huge_blocks=0")
    mi = vm.meminfo()
    total0_kb, free0 = mi["MemTotal"], mi["FreeTotal"] * 1024
    # frag maps frag_mib and frees every 4th page; the balloon then takes
    # those holes (single-page allocations take order-0 free pages first)
    # and frag exits: each 2 MiB block of that range holds a quarter
    # balloon pages, the rest free.  (The debug kernel has ~300 MiB less
    # free: KASAN's shadow.)
    # The debug kernel fragments less (its compaction run over 1300 MiB was
    # 200 s of the suite's time), but enough that free memory exceeds the
    # blocks left clean by more than the 64 huge pages asked for below:
    # with 640 MiB it fell short (729 blocks' worth free, 709 clean).
    frag_mib = min(1000 if vm.kernel.builtin_vballoon else 1400,
                   free0 // MiB - 300)
    assert frag_mib >= 900, "only %s free" % mib(free0)
    proactive = _sysctl(vm, "compaction_proactiveness", 0)
    try:
        start_victim(vm, "frag", "%d 4" % frag_mib,
                     "grep -q ready /tmp/frag.out", 600, "frag to fragment")
        size = frag_mib // 4 * MiB
        vm.inflate(size)
        vm.check("kill $(pidof frag)")
        wait_victim_exit(vm, "frag")
        before = vm.vballoon_status(dev)
        blocks = _kpfblocks(vm)
        assert blocks["balloon_pages"] == before["balloon_pages"], \
            "kpageflags shows %d balloon pages, the driver %d" % (
                blocks["balloon_pages"], before["balloon_pages"])
        # A huge page is a whole free 2 MiB block.  Unless balloon pages
        # move, only blocks holding none can become one: at most `clean`.
        clean = blocks["clean_blocks"]
        free = vm.free_bytes()
        assert free // BLOCK > clean + 64, \
            "setup did not scatter the balloon: %d blocks free of balloon " \
            "pages, %s free memory (%s)" % (clean, mib(free), blocks)
        # No more than needed to beat the bound by a margin: each huge page
        # that cannot be had costs the kernel a full round of compaction.
        want = clean + 64
        migrate0 = vm.vmstat()["pgmigrate_success"]
        actual0 = vm.query_balloon()
        # Killed after `limit` s (both writes stop at a fatal signal), so a
        # driver whose pages do not move fails on the assertion below, not
        # on a timeout.
        limit = int(120 * vm.slowdown)
        vm.run("timeout -s KILL %d sh -c 'echo 1 > /proc/sys/vm/"
               "compact_memory; echo %d > /proc/sys/vm/nr_hugepages'" % (
                   limit, want), timeout=180)
        huge = vm.meminfo()["HugePages_Total"]
        after = vm.vballoon_status(dev)
        moved = after["migrated_pages"] - before["migrated_pages"]
        migrated = vm.vmstat()["pgmigrate_success"] - migrate0
        print("LIFECYCLE-RESULT compaction: %d huge pages of %d asked, %d "
              "blocks free of balloon pages before, %d balloon pages moved "
              "(%d pages migrated in all)" % (huge, want, clean, moved,
                                              migrated))
        assert huge > clean, \
            "%d huge pages, no more than the %d blocks free of balloon " \
            "pages: compaction did not move the balloon (migrated_pages " \
            "+%d)" % (huge, clean, moved)
        # every huge page beyond `clean` had at least one balloon page moved
        # out of it, and the kernel counted each move as a migration
        assert huge - clean <= moved <= migrated, \
            "%d huge pages over the %d clean blocks, but migrated_pages " \
            "+%d, pgmigrate_success +%d" % (huge, clean, moved, migrated)
        assert vm.query_balloon() == actual0, "actual changed by compaction"
        # deflate_on_oom=off: migration inside a zone leaves MemTotal;
        # QEMU, the driver and MemTotal still agree on the balloon
        _views(vm, dev, total0_kb, None, size)
        assert _kpfblocks(vm)["balloon_pages"] == after["balloon_pages"], \
            "moved balloon pages are not flagged as balloon pages"
    finally:
        vm.run("kill $(pidof frag) 2>/dev/null; echo 0 > "
               "/proc/sys/vm/nr_hugepages")
        if proactive is not None:
            _sysctl(vm, "compaction_proactiveness", proactive)
    vm.inflate(0)
    _views(vm, dev, total0_kb, None, 0)
    vm.wait_meminfo("FreeTotal", free0, "free memory back after deflating")


# Last in the module: on the debug kernel the balloon gets no interrupt
# after a suspend (see below), so nothing may balloon after it there.
def test_suspend_resume_inflated(vm):
    states = vm.check("cat /sys/power/state").split()
    assert "mem" in states, "the guest offers no suspend to RAM " \
        "(/sys/power/state: %s); QEMU's PIIX4_PM has disable_s3=0" % states
    # "deep" is ACPI S3, where devices are frozen and QEMU stops the guest
    if "deep" in vm.run("cat /sys/power/mem_sleep")[1]:
        vm.check("echo deep > /sys/power/mem_sleep")
    dev = vm.load("vballoon")
    base = vm.vballoon_status(dev)
    mi = vm.meminfo()
    total0_kb, free0 = mi["MemTotal"], mi["FreeTotal"] * 1024
    size = 768 * MiB
    vm.inflate(size)
    _views(vm, dev, total0_kb, base, size)
    free_inflated = vm.free_bytes()

    mark = len(vm.console())
    # The agent is frozen too: start the suspend only once it has sent
    # this command's answer (it deletes /tmp/.vbout after sending).
    vm.check("(n=0; while [ -e /tmp/.vbout ] && [ $n -lt 300 ]; do "
             "sleep 0.1; n=$((n+1)); done; echo mem > /sys/power/state; "
             "echo $? > /tmp/s3.rc) </dev/null >/tmp/s3.log 2>&1 &")
    vm.wait_until(lambda: vm.qmp("query-status")["status"] == "suspended",
                  120, 0.2, "QEMU to report the guest suspended",
                  lambda: "status %s; console:\n%s" % (
                      vm.qmp("query-status")["status"], vm.console_tail(10)))
    # freeze deflated the whole balloon and told the host before reset
    asleep = vm.query_balloon()
    vm.qmp("system_wakeup")
    # Bytes sent to ttyS1 before the UART is resumed are lost: wait for
    # the kernel's last word on resume before talking to the agent.
    vm.wait_until(lambda: SUSPEND_EXIT in vm.console()[mark:], 120, 0.5,
                  "the guest to resume (%r on the console)" % SUSPEND_EXIT,
                  lambda: vm.console_tail(10))
    out = vm.check("cat /tmp/s3.rc /tmp/s3.log")
    assert out.split()[:1] == ["0"], "echo mem > /sys/power/state: %s" % out
    assert asleep == vm.ram_bytes, \
        "while suspended QEMU saw a balloon of %s, not 0: freeze did not " \
        "give the pages back" % mib(vm.ram_bytes - asleep)

    # restore: the driver takes the standing target again by itself
    vm.wait_balloon(size)
    st = _views(vm, dev, total0_kb, base, size)
    deflated = st["deflated_pages"] - base["deflated_pages"]
    inflated = st["inflated_pages"] - base["inflated_pages"]
    assert deflated == size // PAGE_SIZE and inflated == 2 * deflated, \
        "suspend/resume of a %d-page balloon: %d pages deflated, %d " \
        "inflated in all (want %d and %d: freeze empties it, restore " \
        "refills it)" % (size // PAGE_SIZE, deflated, inflated,
                         size // PAGE_SIZE, 2 * size // PAGE_SIZE)
    vm.wait_meminfo("FreeTotal", free_inflated,
                    "free memory after resume as before suspend")
    if vm.kernel.builtin_vballoon:
        # pci=noacpi: the kernel does not restore the PIIX3 interrupt
        # routing QEMU's wakeup reset cleared, so the balloon's INTx (the
        # config-change interrupt) is dead for the rest of this boot; the
        # restore above needed none (it queues its own update, and TCG
        # completes a kick before it returns).  What can still run: the
        # driver's removal after resume, every page back.
        print("LIFECYCLE-NOTE debug kernel: new targets after resume not "
              "checked (no interrupt routing after S3 with pci=noacpi)")
        vm.unload("vballoon")
        assert vm.meminfo()["MemTotal"] == total0_kb, \
            "unbinding after resume left MemTotal at %d kB, not %d kB" % (
                vm.meminfo()["MemTotal"], total0_kb)
        vm.wait_meminfo("FreeTotal", free0, "free memory back after unbind")
        return
    _balloon_cycle(vm, dev, total0_kb, free0, GiB, "after resume")
