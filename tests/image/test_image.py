# SPDX-License-Identifier: GPL-2.0-only
"""vballoon in an ordinary Debian guest, as an administrator runs it.

The image (build.py: Debian 12 with systemd, the 6.1 and 6.12 kernels and
the vballoon-dkms package installed with apt) boots under libvirt
(qemu:///system, domain type qemu) with

    <memballoon model='virtio' autodeflate='on'><stats period='2'/>

once per guest kernel; the tests use virsh (setmem, dominfo, dommemstat,
shutdown) and reach the guest through qemu-guest-agent.  Each kernel's
guest is booted once for the tests and shut down with its balloon
inflated; the 6.12 guest then boots again to purge the package and comes
back with virtio_balloon.
"""

import os
import re
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(TOP / "tests" / "vm"))

import build  # noqa: E402
import domain  # noqa: E402
from harness.console import bad_reports  # noqa: E402
from harness.wait import wait_until  # noqa: E402

SERIES = [s.strip() for s in os.environ.get(
    "VBALLOON_IMAGE_KERNELS", "6.1,6.12").split(",") if s.strip()]
GUEST_MIB = 2048
LOW_MIB = 1024
# how long the balloon may take to follow a `virsh setmem`, and a boot
FOLLOW_S = 120
BOOT_S = 600
# fields `virsh dommemstat` must show with <stats period='2'/>
STAT_FIELDS = ("actual", "unused", "available", "usable", "swap_in",
               "swap_out", "major_fault", "minor_fault", "disk_caches",
               "last_update", "rss")
VERSION = (TOP / "VERSION").read_text().strip()


@pytest.fixture(scope="session")
def image():
    """The cached image's directory (built on a cold run)."""
    return build.build()


@pytest.fixture(scope="session")
def libvirtd():
    domain.ensure_libvirtd()


@pytest.fixture(scope="module", params=SERIES)
def guest(request, image, libvirtd):
    """The image booted on one kernel series, shared by the tests."""
    rel = build.release(request.param)
    work = TOP / "build" / "image-tests" / request.param
    g = domain.Guest(image, rel, work, "vballoon-image-%s-%d" % (
        request.param, os.getpid()), mem_mib=GUEST_MIB)
    g.series = request.param
    took = g.start(BOOT_S)
    print("\n%s: booted in %.0f s" % (g.name, took))
    yield g
    g.undefine()


def meminfo(g):
    return {k: int(v.split()[0]) for k, v in
            (line.split(":", 1) for line in
             g.sh("cat /proc/meminfo").splitlines())}


def balloon_driver(g):
    """The driver bound to the guest's balloon device (virtio id 5), or
    "" while none is."""
    return g.sh(
        "for d in /sys/bus/virtio/devices/*; do "
        "[ \"$(cat $d/device)\" = 0x0005 ] && [ -e $d/driver ] && "
        "basename \"$(readlink -f $d/driver)\"; done; true").strip()


def wait_balloon_bound(g, timeout=120):
    """The guest agent answers before udev has loaded every module: wait
    (bounded) until a driver has the balloon; its name."""
    return wait_until(lambda: balloon_driver(g), timeout, interval=1,
                      what="a driver bound to the balloon of %s" % g.name)


@pytest.fixture(autouse=True)
def console_mark(guest):
    """Where the guest's console stood when the test began: each test
    answers for the kernel messages printed while it ran."""
    guest.console_from = len(guest.console_text())


def assert_console_clean(g):
    text = g.console_text()
    if len(text) >= getattr(g, "console_from", 0):
        text = text[g.console_from:]
    # from a few lines before: a report's header (an RCU stall's, say)
    # need not match a pattern itself
    reports = bad_reports(text, before=12)
    assert not reports, "kernel trouble on %s's console:\n%s" % (
        g.name, reports)


def test_vballoon_binds_at_boot(guest):
    """After boot vballoon drives the balloon, virtio_balloon is not
    loaded, and modinfo shows the packaged version from DKMS."""
    assert wait_balloon_bound(guest) == "vballoon"
    mods = guest.sh("cut -d' ' -f1 /proc/modules").split()
    assert "vballoon" in mods
    assert "virtio_balloon" not in mods
    assert guest.sh("modinfo -F version vballoon").strip() == VERSION
    path = guest.sh("modinfo -n vballoon").strip()
    assert "/updates/dkms/vballoon.ko" in path, path
    assert guest.sh("uname -r").strip() == guest.release
    status = guest.sh("dkms status vballoon")
    assert re.search(r"vballoon/%s, %s, x86_64: installed" % (
        re.escape(VERSION), re.escape(guest.release)), status), status


def test_setmem_dominfo_dommemstat(guest):
    """`virsh setmem 1G --live` and back: dominfo's Used memory follows,
    dommemstat shows every statistic with last_update moving each period,
    and the guest's own `free` agrees with it."""
    guest.setmem(LOW_MIB)
    guest.wait_used(LOW_MIB, FOLLOW_S)
    stats = wait_until(
        lambda: (lambda s: s if all(f in s for f in STAT_FIELDS) else None)(
            guest.dommemstat()), 30, what="every dommemstat field",
        describe=lambda: guest.dommemstat())
    assert stats["actual"] == LOW_MIB * 1024
    first = stats["last_update"]
    later = wait_until(lambda: (lambda s: s if s["last_update"] > first
                                else None)(guest.dommemstat()), 15,
                       what="last_update to advance (period 2 s)")
    assert later["last_update"] - first <= 10, (first, later["last_update"])
    # the guest's own view, read right after the host's
    stats = guest.dommemstat()
    free = guest.sh("free -k").splitlines()[1].split()
    total_kib, free_kib = int(free[1]), int(free[3])
    mi = meminfo(guest)
    assert stats["available"] == mi["MemTotal"] == total_kib
    # free memory moves a little between the guest's last report and now
    assert abs(stats["unused"] - free_kib) <= max(32 << 10,
                                                  free_kib // 20), (
        stats, free)
    assert abs(stats["usable"] - mi["MemAvailable"]) <= max(
        32 << 10, mi["MemAvailable"] // 20), (stats, mi)
    assert stats["rss"] > 0
    # the balloon holds what the guest no longer has
    guest.setmem(GUEST_MIB)
    guest.wait_used(GUEST_MIB, FOLLOW_S)
    assert guest.dommemstat()["actual"] == GUEST_MIB * 1024
    assert_console_clean(guest)


def test_autodeflate_under_libvirt(guest):
    """With the balloon inflated, a program that allocates past free
    memory completes without an OOM kill: autodeflate gives memory back
    and dommemstat's actual grows."""
    guest.setmem(LOW_MIB)
    guest.wait_used(LOW_MIB, FOLLOW_S)
    avail_mib = meminfo(guest)["MemAvailable"] // 1024
    want = avail_mib + 256
    rc, out, err = guest.run("/usr/local/bin/memhog %d" % want, timeout=600,
                             check=False)
    assert rc == 0, "memhog %d MiB (MemAvailable %d MiB): exit %s\n%s%s" % (
        want, avail_mib, rc, out, err)
    dmesg = guest.sh("dmesg")
    assert not re.search(r"Out of memory|oom-kill|invoked oom-killer",
                         dmesg), dmesg[-3000:]
    actual = guest.dommemstat()["actual"]
    assert actual > LOW_MIB * 1024 + (128 << 10), actual
    guest.setmem(GUEST_MIB)
    guest.wait_used(GUEST_MIB, FOLLOW_S)
    assert_console_clean(guest)


def test_kernel_upgrade_path(guest):
    """The 6.12 headers came after the package (the image's upgrade
    step): DKMS built vballoon for that kernel from its kernel hook, and
    booting into it binds vballoon."""
    if guest.series != "6.12":
        pytest.skip("the upgrade kernel is 6.12")
    log = guest.sh("grep ' status installed ' /var/log/dpkg.log")
    order = [line.split()[4].split(":")[0] for line in log.splitlines()]
    pkg = order.index("vballoon-dkms")
    headers = order.index("linux-headers-" + guest.release)
    assert pkg < headers, order
    # the module's build log names this kernel and the DKMS tree it came from
    mod = guest.sh("modinfo -F vermagic vballoon").split()[0]
    assert mod == guest.release
    assert balloon_driver(guest) == "vballoon"


def test_shutdown_with_balloon_inflated(guest):
    """`virsh shutdown` with half the guest ballooned: the guest powers
    off cleanly (libvirt: shut off, reason shutdown) and its console shows
    no kernel trouble."""
    guest.setmem(LOW_MIB)
    guest.wait_used(LOW_MIB, FOLLOW_S)
    # ~5 s alone; minutes beside other TCG guests on a 2-core machine
    took = guest.shutdown(600)
    print("%s: shut down in %.0f s" % (guest.name, took))
    assert guest.state_reason() == "shut off (shutdown)"
    text = guest.console_text()
    assert "reboot: Power down" in text, guest.console_tail()
    assert_console_clean(guest)


def test_purge_brings_virtio_balloon_back(guest):
    """`apt-get purge vballoon-dkms`, then a reboot: virtio_balloon binds
    again and nothing of vballoon is left (dpkg, DKMS, modprobe.d, the
    module trees)."""
    if guest.series != "6.12":
        pytest.skip("purged on the 6.12 guest only")
    if guest.state() != "running":
        guest.start(BOOT_S)
    guest.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "
             "vballoon-dkms", timeout=600)
    rc, out, _ = guest.run("dpkg -L vballoon-dkms", check=False)
    assert rc != 0, out
    assert guest.sh("dkms status").strip() == ""
    left = guest.sh(
        "ls -d /lib/modprobe.d/vballoon* /etc/modprobe.d/vballoon* "
        "/usr/src/vballoon-* /var/lib/dkms/vballoon "
        "/lib/modules/*/updates/dkms/vballoon* 2>/dev/null; true").split()
    assert not left, left
    # the running guest keeps vballoon until the reboot
    boot_id = guest.sh("cat /proc/sys/kernel/random/boot_id").strip()
    t0 = time.monotonic()
    guest.reboot()

    def back():
        rc, out, _ = guest.run("cat /proc/sys/kernel/random/boot_id",
                               timeout=10, check=False)
        return rc == 0 and out.strip() != boot_id
    wait_until(back, BOOT_S, interval=2,
               what="%s to come back after the reboot" % guest.name,
               describe=guest.console_tail)
    print("%s: rebooted in %.0f s" % (guest.name, time.monotonic() - t0))
    assert wait_balloon_bound(guest) == "virtio_balloon"
    rc, _, _ = guest.run("modinfo vballoon", check=False)
    assert rc != 0
    assert_console_clean(guest)
