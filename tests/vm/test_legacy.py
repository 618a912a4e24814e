# SPDX-License-Identifier: GPL-2.0-only
"""VM tests with a legacy balloon device (one boot per kernel).

The device is QEMU's transitional virtio-balloon-pci with
disable-modern=on: it offers no VIRTIO_F_VERSION_1, so the guest's
virtio_pci drives it through the legacy (virtio 0.9.5) transport: the
configuration in the I/O BAR, virtqueues by page frame number, and
guest-endian fields in the statistics buffer (virtio16/virtio64 with
VERSION_1 off).  test_legacy_device checks that the device really is
legacy and inflates/deflates with the largest batches; it runs on every
kernel where the legacy device can work: on the debug kernel not with
its default command line (see needs_io_bar).  Three tests of
test_oom_on.py run here again (imported: vballoon only, not on the debug
kernel, see conftest.py): inflate/deflate, stats (the legacy endianness
of the stats buffer) and deflate on OOM.
"""

import pytest

from harness.units import GiB, PAGE_SIZE, mib
from test_oom_on import (test_deflate_on_oom,  # noqa: F401 (repeats)
                         test_inflate_half_and_back, test_stats)

pytestmark = pytest.mark.vm_config(
    "legacy", deflate_on_oom=True,
    balloon_props={"disable-modern": "on", "disable-legacy": "off"})

VIRTIO_F_VERSION_1 = 32
NO_IO_BAR = ("the debug kernel's pci=noacpi (VBALLOON_DEBUG_CMDLINE) leaves "
             "a legacy device's I/O BAR unassigned (\"BAR 0 [io size "
             "0x0040]: failed to assign\", virtio-pci probe error -5); with "
             "VBALLOON_DEBUG_CMDLINE=acpi=noirq it binds and this test runs")


@pytest.fixture(autouse=True)
def needs_io_bar(kernel):
    """The legacy transport talks through an I/O port BAR.  Under the
    debug kernel's pci=noacpi the PCI core cannot claim one (it conflicts
    with the host bridge window ACPI still reports), so the device never
    reaches the virtio bus and the boot check would fail: skip before
    booting.  acpi=noirq also keeps ACPI's _PRT (the reason for
    pci=noacpi) out of interrupt routing, and there the test passes."""
    if kernel.builtin_vballoon and "pci=noacpi" in kernel.cmdline.split():
        pytest.skip(NO_IO_BAR)
# The driver's upper limit of batch_pages (VB_BATCH_MAX in core.h).
BATCH_MAX = 32768


def negotiated_features(vm, dev):
    """The features the driver and device agreed on: bit i is character i
    of /sys/bus/virtio/devices/<dev>/features."""
    text = vm.check("cat /sys/bus/virtio/devices/%s/features" % dev).strip()
    assert text and set(text) <= {"0", "1"}, \
        "unexpected features of %s: %r" % (dev, text)
    return {i for i, c in enumerate(text) if c == "1"}


def test_legacy_device(vm, driver):
    """The balloon is driven by the legacy transport (VERSION_1 not
    negotiated); with batch_pages at its maximum, 1 GiB inflates in few
    requests, free memory follows, and everything comes back."""
    dev = vm.load(driver, "batch_pages=%d" % BATCH_MAX)
    feats = negotiated_features(vm, dev)
    assert VIRTIO_F_VERSION_1 not in feats, \
        "%s negotiated VIRTIO_F_VERSION_1 (features %s): the device is not " \
        "driven by the legacy transport" % (dev, sorted(feats))
    # deflate-on-oom (2) and stats (1) still negotiated on legacy
    assert {1, 2} <= feats, "features %s lack STATS_VQ/DEFLATE_ON_OOM" % \
        sorted(feats)
    base = vm.vballoon_status(dev)
    assert base["batch_pages"] == BATCH_MAX, base
    free0 = vm.free_bytes()
    vm.inflate(GiB)
    vm.wait_meminfo("FreeTotal", free0 - GiB, "free memory dropped by 1 GiB")
    st = vm.vballoon_status(dev)
    pages = GiB // PAGE_SIZE
    assert st["balloon_pages"] == pages, st
    requests = st["requests"] - base["requests"]
    # 1 GiB is 8 full batches of 32768 pages; a driver reporting `actual`
    # in steps of the upstream 256 pages would need 1024
    assert 0 < requests <= 2 * pages // BATCH_MAX, \
        "%d pages inflated in %d requests with batch_pages=%d" % (
            pages, requests, BATCH_MAX)
    vm.inflate(0)
    vm.wait_meminfo("FreeTotal", free0, "free memory back after deflate")
    st = vm.vballoon_status(dev)
    assert st["deflated_pages"] - base["deflated_pages"] == pages, \
        "deflated %d pages, inflated %d" % (
            st["deflated_pages"] - base["deflated_pages"], pages)
    print("LEGACY-RESULT %s: features %s, %d pages in %d requests, "
          "balloon %s" % (vm.kernel.release, sorted(feats), pages, requests,
                          mib(GiB)))
