# SPDX-License-Identifier: GPL-2.0-only
"""pytest fixtures for the vballoon VM tests.

One guest is booted per (kernel, device configuration) and shared by all
tests of a test module: test_oom_on.py runs with deflate-on-oom=on,
test_oom_off.py with deflate-on-oom=off (each module sets VM_CONFIG).
The `kernel` fixture is parametrized over the newest installed 6.1 and
6.12 kernels (override with VBALLOON_KERNELS=6.12 for instance; "debug"
is the KASAN/lockdep/kmemleak kernel of `make intree`, with vballoon built
in: there "load" binds the device, "unload" unbinds it, and every timeout
is multiplied by the kernel's slowdown).

The function-scoped `vm` fixture hands out the running guest and, after
the test, puts it back in a clean state (balloon 0, no balloon driver
loaded) and fails the test if the guest console got a kernel warning,
BUG or call trace during it.  A guest that died is replaced by a fresh
boot for the remaining tests; the end-of-boot test reports the death.
"""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vmlib  # noqa: E402

KERNEL_SERIES = [s.strip() for s in
                 os.environ.get("VBALLOON_KERNELS", "6.1,6.12").split(",")
                 if s.strip()]
GUEST_MEM_MIB = int(os.environ.get("VBALLOON_GUEST_MIB", "2048"))
BOOT_ATTEMPTS = 3

_slots = []


class VMSlot:
    """Owns the guest of one (kernel, configuration) pair; reboots it if it
    died so that one crash does not take every later test down with it."""

    def __init__(self, kernel, config, label):
        self.kernel = kernel
        self.config = dict(config)
        self.label = label
        self.vm = None
        self.boots = []     # (boot seconds, log dir)
        self.deaths = []    # descriptions of guests that died or were reset
        self.boot_failures = []
        self.started = time.monotonic()

    def get(self):
        vmlib.set_timeout_scale(self.kernel.slowdown)
        if self.vm is not None and not self.vm.alive():
            self.deaths.append("guest died (console: %s):\n%s" % (
                self.vm.console_path, self.vm.console_tail(30)))
            self.vm.kill()
            self.vm = None
        if self.vm is None:
            # No balloon driver is loaded while booting, so a boot that dies
            # is the emulator's or the distribution kernel's problem: retry.
            for attempt in range(1, BOOT_ATTEMPTS + 1):
                vm = vmlib.VM(self.kernel, mem_mib=GUEST_MEM_MIB,
                              name="%s-%s" % (self.label, self.kernel.series),
                              **self.config)
                try:
                    vm.start()
                    break
                except vmlib.VMDied as exc:
                    self.boot_failures.append(
                        "boot attempt %d failed (console: %s): %s" % (
                            attempt, vm.console_path,
                            str(exc).splitlines()[0]))
                    if attempt == BOOT_ATTEMPTS:
                        raise
            self.boots.append((vm.boot_seconds, vm.log_dir))
            self.vm = vm
        return self.vm

    def discard(self, why):
        if self.vm is not None:
            self.deaths.append("guest discarded: %s (console: %s)" %
                               (why, self.vm.console_path))
            self.vm.kill()
            self.vm = None

    def close(self):
        if self.vm is not None:
            self.vm.shutdown()
            self.vm = None


@pytest.fixture(scope="module", params=KERNEL_SERIES,
                ids=lambda s: "linux" + s)
def kernel(request):
    try:
        return vmlib.find_kernel(request.param)
    except vmlib.HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def vm_slot(request, kernel):
    config = getattr(request.module, "VM_CONFIG", {})
    label = getattr(request.module, "VM_LABEL", request.module.__name__)
    if config.get("disk_mib") and not vmlib.ModuleIndex(kernel).has(
            "virtio_blk"):
        pytest.skip("%s has no virtio_blk (neither built in nor a module), "
                    "which this module's disk needs" % kernel.release)
    slot = VMSlot(kernel, config, label)
    _slots.append(slot)
    old = vmlib.set_timeout_scale(kernel.slowdown)
    try:
        yield slot
    finally:
        slot.close()
        vmlib.set_timeout_scale(old)


@pytest.fixture
def vm(vm_slot):
    """The shared guest; cleaned up and checked for kernel splats after the
    test."""
    vm = vm_slot.get()
    start = len(vm.console())
    yield vm
    problems = []
    if vm.alive():
        try:
            vm.reset_balloon()
        except Exception as exc:
            problems.append("could not return the guest to balloon 0 / no "
                            "driver loaded: %s" % exc)
    else:
        problems.append("the guest died during the test")
    text = vm.console()[start:]
    bad = vmlib.find_bad_lines(text)
    if bad:
        problems.append("kernel problems on the guest console during this "
                        "test:\n  " + "\n  ".join(bad[:20]) +
                        "\n" + vmlib.bad_reports(text))
    if problems:
        if vm.alive() and any(p.startswith("could not") for p in problems):
            vm_slot.discard("cleanup failed")
        pytest.fail("\n".join(problems) + "\n(console log: %s)" %
                    vm.console_path, pytrace=False)


def pytest_report_header(config):
    lines = []
    for s in KERNEL_SERIES:
        try:
            k = vmlib.find_kernel(s)
            ko = k.vballoon_ko()
            if k.builtin_vballoon:
                lines.append("vballoon VM tests: linux%s -> %s (%s), vballoon "
                             "built in, timeouts x%g" % (
                                 s, k.release, k.vmlinuz, k.slowdown))
                continue
            lines.append("vballoon VM tests: linux%s -> %s, vballoon.ko %s" % (
                s, k.release, ko if ko.exists() else "MISSING (%s)" % ko))
        except vmlib.HarnessError as exc:
            lines.append("vballoon VM tests: linux%s -> %s" % (s, exc))
    lines.append("vballoon VM tests: guest RAM %d MiB, cache %s" %
                 (GUEST_MEM_MIB, vmlib.cache_dir()))
    return lines


def pytest_terminal_summary(terminalreporter):
    if not _slots:
        return
    tr = terminalreporter
    tr.section("vballoon VM boots")
    for s in _slots:
        for secs, logdir in s.boots:
            tr.write_line("%-8s %-24s boot %5.1f s  logs %s" % (
                s.label, s.kernel.release, secs or 0, logdir))
        for d in s.boot_failures + s.deaths:
            tr.write_line("%-8s %-24s %s" % (s.label, s.kernel.release,
                                             d.splitlines()[0]))
