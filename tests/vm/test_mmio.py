# SPDX-License-Identifier: GPL-2.0-only
"""VM tests on the virtio-mmio transport (one boot per kernel).

The guest is QEMU's microvm machine (Machine(transport="mmio")): no PCI
bus, the balloon is a virtio-balloon-device that the kernel's
virtio_mmio finds in microvm's ACPI tables (a platform device LNRO0005:NN
whose driver is virtio-mmio).  deflate-on-oom=off, so MemTotal follows
the balloon as well as MemFree.  Both tests run against vballoon and
virtio_balloon (parity):

  test_mmio_balloon         the balloon's virtio device hangs off a
                            virtio-mmio platform device; 256 MiB inflated
                            and deflated (QEMU's actual, MemFree,
                            MemTotal), stats answered, unbind inflated
                            and bind again, rmmod
  test_mmio_remove_inflated the transport goes away under an inflated
                            balloon (the platform device unbound from
                            virtio-mmio), comes back as a new virtio
                            device, and the driver inflates it again

Skipped on a kernel without virtio_mmio (the debug kernel has
CONFIG_VIRTIO_MMIO off).  QEMU's microvm needs the host's TSC frequency
on the kernel command line under TCG: see harness/qemu.py.
"""

import pytest

from harness.units import MiB, mib
from harness.vm import QEMU_STATS

pytestmark = pytest.mark.vm_config("mmio", deflate_on_oom=False,
                                   transport="mmio")

SIZE = 256 * MiB
MMIO_DRIVER = "virtio-mmio"


def transport_of(vm, dev):
    """(sysfs path of virtio device `dev`, its parent's path, the name of
    the parent's driver)."""
    path = vm.check("readlink -f /sys/bus/virtio/devices/%s" % dev).strip()
    parent = path.rsplit("/", 1)[0]
    drv = vm.check("basename $(readlink -f %s/driver)" % parent).strip()
    return path, parent, drv


def check_mmio(vm, dev):
    """`dev` is a virtio device on a virtio-mmio platform device, and the
    guest has no PCI device at all; returns the platform device's name."""
    path, parent, drv = transport_of(vm, dev)
    assert drv == MMIO_DRIVER and "/platform/" in path, \
        "%s is not on virtio-mmio: %s, parent driven by %r" % (dev, path, drv)
    pci = vm.check("ls /sys/bus/pci/devices 2>/dev/null; true").split()
    assert not pci, "microvm guest has PCI devices: %s" % pci
    return parent.rsplit("/", 1)[1]


def check_memory(vm, free0, total0, balloon, what):
    """QEMU's actual, free memory and MemTotal show a balloon of
    `balloon` bytes (deflate-on-oom=off: MemTotal shrinks with it)."""
    vm.wait_balloon(balloon)
    vm.wait_meminfo("FreeTotal", free0 - balloon,
                    "free memory with a %s balloon (%s)" % (mib(balloon),
                                                            what))
    vm.wait_meminfo("MemTotal", total0 - balloon,
                    "MemTotal with a %s balloon (%s)" % (mib(balloon), what))


def check_stats(vm, driver, dev):
    """Two stats updates answered; every stat QEMU knows reported, the
    total memory matching MemTotal."""
    before = vm.vballoon_status(dev)["stats_requests"] \
        if driver == "vballoon" else None
    vm.set_stats_interval(2)
    try:
        last = vm.guest_stats()["last-update"]
        for n in ("first", "second"):
            s = vm.wait_until(
                lambda: (lambda g: g if g["last-update"] > last else None)(
                    vm.guest_stats()),
                60, 0.5, "%s guest-stats update over virtio-mmio" % n,
                lambda: "guest-stats: %r" % vm.guest_stats())
            last = s["last-update"]
        st = s["stats"]
        bad = [k for k in QEMU_STATS if st.get(k, -1) == -1]
        assert not bad, "stats missing or not reported (-1): %s" % bad
        total = vm.meminfo()["MemTotal"] * 1024
        assert abs(st["stat-total-memory"] - total) <= vm.tolerance, \
            "stat-total-memory %s, guest MemTotal %s" % (
                mib(st["stat-total-memory"]), mib(total))
        if before is not None:
            after = vm.vballoon_status(dev)["stats_requests"]
            assert after >= before + 2, \
                "vballoon counted %d stats requests for two updates" % (
                    after - before)
    finally:
        if vm.alive():
            vm.set_stats_interval(0)


@pytest.mark.parity
def test_mmio_balloon(vm, driver):
    dev = vm.load(driver)
    check_mmio(vm, dev)
    vm.wait_until(lambda: vm.query_balloon() == vm.ram_bytes, 60, 0.5,
                  "actual == full RAM right after loading (balloon 0)",
                  vm.describe_balloon)
    mi = vm.meminfo()
    free0, total0 = mi["FreeTotal"] * 1024, mi["MemTotal"] * 1024

    vm.set_balloon_size(SIZE)
    check_memory(vm, free0, total0, SIZE, "inflated")
    check_stats(vm, driver, dev)
    vm.set_balloon_size(0)
    check_memory(vm, free0, total0, 0, "deflated")

    # unbind with the balloon inflated: the memory comes back; bound
    # again, the driver inflates to QEMU's standing target
    vm.set_balloon_size(SIZE)
    check_memory(vm, free0, total0, SIZE, "inflated again")
    vm.check("echo %s > /sys/bus/virtio/drivers/%s/unbind" % (dev, driver),
             timeout=300)
    assert vm.bound_devices(driver) == []
    check_memory(vm, free0, total0, 0, "after unbinding inflated")
    vm.check("echo %s > /sys/bus/virtio/drivers/%s/bind" % (dev, driver),
             timeout=300)
    assert vm.bound_devices(driver) == [dev]
    check_memory(vm, free0, total0, SIZE, "bound again")
    vm.set_balloon_size(0)
    check_memory(vm, free0, total0, 0, "deflated before unloading")
    vm.unload(driver)
    assert not vm.loaded(driver)


@pytest.mark.parity
def test_mmio_remove_inflated(vm, driver):
    dev = vm.load(driver)
    pdev = check_mmio(vm, dev)
    mi = vm.meminfo()
    free0, total0 = mi["FreeTotal"] * 1024, mi["MemTotal"] * 1024
    vm.set_balloon_size(SIZE)
    check_memory(vm, free0, total0, SIZE, "inflated")

    # the transport's remove takes the virtio device, and with it the
    # driver, away under the inflated balloon
    pdrv = "/sys/bus/platform/drivers/%s" % MMIO_DRIVER
    try:
        vm.check("echo %s > %s/unbind" % (pdev, pdrv), timeout=300)
        left = vm.check("ls /sys/bus/virtio/devices").split()
        assert left == [], "virtio devices left after their transport " \
            "went away: %s" % left
        check_memory(vm, free0, total0, 0, "transport removed")
    finally:
        if vm.alive():
            vm.run("echo %s > %s/bind" % (pdev, pdrv), timeout=300)
    # a new virtio device (the freed index again: virtio0) on the same
    # platform device, which the loaded driver probes and inflates to the
    # standing target
    new = vm.wait_until(lambda: vm.bound_devices(driver), 60, 0.5,
                        "%s bound to the re-added virtio-mmio device"
                        % driver)
    assert len(new) == 1, \
        "expected one virtio device after the rebind, got %s" % new
    assert check_mmio(vm, new[0]) == pdev
    check_memory(vm, free0, total0, SIZE, "inflated on the new device")
    vm.set_balloon_size(0)
    check_memory(vm, free0, total0, 0, "deflated")
