# SPDX-License-Identifier: GPL-2.0-only
"""pytest fixtures and markers for the vballoon VM tests.

One guest is booted per (kernel, test module) and shared by the module's
tests.  A module says how its guest's balloon device looks with the
`vm_config` marker:

    pytestmark = pytest.mark.vm_config("oom-on", deflate_on_oom=True)

(label, then keyword arguments of harness.vm.make_vm: deflate_on_oom,
disk_mib, balloon_props, transport, ...).  The `kernel` fixture is parametrized over
the newest installed 6.1 and 6.12 kernels (VBALLOON_KERNELS=6.12 for
instance; "debug" is the KASAN/lockdep/kmemleak kernel of `make intree`,
with vballoon built in: there "load" binds the device, "unload" unbinds
it, and every timeout is multiplied by the kernel's slowdown).

The `driver` argument of a test is parametrized with vballoon, and with
the kernel's virtio_balloon too if the test is marked `parity` (both as
far as VBALLOON_DRIVERS allows).  On the debug kernel, which runs each of
vballoon's code paths once, a test marked `skip_debug(where)` is skipped,
and so is a test function a module imports from another test module (a
repeat of that module's test under this module's device configuration;
repeats run with vballoon only).

The function-scoped `vm` fixture hands out the running guest and, after
the test, puts it back in a clean state (balloon 0, no balloon driver
loaded) and fails the test if the guest console got a kernel warning,
BUG or call trace during it.  A guest that died is replaced by a fresh
boot for the remaining tests.  When the module's last test is done, the
`vm_slot` fixture checks the whole boot (console and dmesg clean, no
guest lost, no vballoon leak on the debug kernel) and reports a problem
as an error of that test, so the check also runs under -k.
"""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.console import bad_reports, find_bad_lines  # noqa: E402
from harness.errors import HarnessError, VMDied  # noqa: E402
from harness.kernels import find_kernel  # noqa: E402
from harness.modules import ModuleIndex  # noqa: E402
from harness.units import cache_dir  # noqa: E402
from harness.vm import (boot_attempts, boot_bound_problem,  # noqa: E402
                        make_vm)

KERNEL_SERIES = [s.strip() for s in
                 os.environ.get("VBALLOON_KERNELS", "6.1,6.12").split(",")
                 if s.strip()]
GUEST_MEM_MIB = int(os.environ.get("VBALLOON_GUEST_MIB", "2048"))
# Drivers the tests run against (run.py sets VBALLOON_DRIVERS=vballoon for
# the debug kernel, where the sanitizers are there for our driver).
DRIVERS = tuple(d.strip() for d in os.environ.get(
    "VBALLOON_DRIVERS", "vballoon,virtio_balloon").split(",") if d.strip())
OURS = tuple(d for d in DRIVERS if d == "vballoon")

_slots = []


class VMSlot:
    """Owns the guest of one (kernel, test module) pair; reboots it if it
    died so that one crash does not take every later test down with it."""

    def __init__(self, kernel, config, label):
        self.kernel = kernel
        self.config = dict(config)
        self.label = label
        self.vm = None
        self.boots = []     # (boot seconds, log dir)
        self.deaths = []    # descriptions of guests that died or were reset
        self.boot_failures = []
        # what fails the run even if the test that booted was deselected
        # or its failure overlooked: a debug-kernel boot that died, or one
        # after which vballoon had not bound the balloon
        self.boot_problems = []
        # guests a test gave up on on purpose (a driver stuck in the host's
        # wait: test_vbhost.py), with what their console/dmesg showed
        self.retired = []
        self.retired_problems = []
        self.started = time.monotonic()

    def get(self):
        if self.vm is not None and not self.vm.alive():
            self.deaths.append("guest died (console: %s):\n%s" % (
                self.vm.console_path, self.vm.console_tail(30)))
            self.vm.kill()
            self.vm = None
        if self.vm is None:
            # retried on the Debian kernels only (see boot_attempts)
            attempts = boot_attempts(self.kernel)
            for attempt in range(1, attempts + 1):
                # a module's vm_config may set its own mem_mib
                kwargs = dict({"mem_mib": GUEST_MEM_MIB}, **self.config)
                vm = make_vm(self.kernel,
                             name="%s-%s" % (self.label, self.kernel.series),
                             **kwargs)
                try:
                    vm.start()
                    break
                except VMDied as exc:
                    self.boot_failures.append(
                        "boot attempt %d failed (console: %s): %s" % (
                            attempt, vm.console_path,
                            str(exc).splitlines()[0]))
                    if attempt == attempts:
                        if self.kernel.builtin_vballoon:
                            self.boot_problems.append(
                                self.boot_failures[-1])
                        raise
            self.boots.append((vm.boot_seconds, vm.log_dir))
            self.vm = vm
            if self.kernel.builtin_vballoon and getattr(vm, "balloon", True):
                problem = boot_bound_problem(vm.boot_bound,
                                             vm.balloon_device())
                if problem:
                    self.boot_problems.append("%s (console: %s)" % (
                        problem, vm.console_path))
                    pytest.fail("%s (console: %s)" % (problem,
                                                      vm.console_path),
                                pytrace=False)
        return self.vm

    def discard(self, why):
        if self.vm is not None:
            self.deaths.append("guest discarded: %s (console: %s)" %
                               (why, self.vm.console_path))
            self.vm.kill()
            self.vm = None

    def retire(self, why):
        """Replace the guest by a fresh boot for the next test without
        counting it as lost: a test left a process stuck in the kernel on
        purpose (a driver that waits for the host forever).  Its whole
        console and dmesg are checked first, as at the end of a boot."""
        vm = self.vm
        if vm is None:
            return
        self.retired.append("guest retired: %s (console: %s)" %
                            (why, vm.console_path))
        if vm.alive():
            try:
                con, dmesg = vm.console(), vm.dmesg()
                bad = find_bad_lines(con) + find_bad_lines(dmesg)
                if bad:
                    self.retired_problems.append(
                        "kernel problems in a retired boot (console %s):\n"
                        "  %s\n%s" % (vm.console_path, "\n  ".join(bad[:40]),
                                      bad_reports(con) or bad_reports(dmesg)))
            except Exception as exc:
                self.retired_problems.append(
                    "could not read the log of a retired guest: %s" % exc)
        vm.kill()
        self.vm = None

    def end_of_boot_problems(self):
        """No guest died, the whole console/dmesg of this boot is clean and
        (debug kernel) kmemleak finds no leak in vballoon.  All three are
        checked; returns the problems found, as text."""
        problems = ["a boot of the debug kernel (vballoon built in) "
                    "failed: " + p for p in self.boot_problems]
        problems += self.retired_problems
        if not self.boots:
            return problems     # nothing booted (all skipped, or it died)
        vm = self.vm
        if vm is None and self.retired and not self.deaths:
            return problems     # the last guest was retired and checked
        deaths = list(self.deaths)
        if vm is None or not vm.alive():
            deaths.append("the guest is not running at the end of the "
                          "module" + ("" if vm is None else " (console %s):"
                                      "\n%s" % (vm.console_path,
                                                vm.console_tail(30))))
        if deaths:
            problems.append("guests were lost during this module:\n" +
                            "\n".join(deaths))
        if vm is None or not vm.alive():
            return problems
        leaks = vm.end_of_boot_leaks()
        con, dmesg = vm.console(), vm.dmesg()
        bad = find_bad_lines(con) + find_bad_lines(dmesg)
        if bad:
            problems.append("kernel problems in this boot (console %s):\n  "
                            "%s\n%s" % (vm.console_path, "\n  ".join(bad[:40]),
                                        bad_reports(con) or
                                        bad_reports(dmesg)))
        ours, others = leaks or ([], [])
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
        return problems

    def close(self):
        if self.vm is not None:
            self.vm.shutdown()
            self.vm = None


def is_repeat(function, module):
    """`function` was imported from another test module into `module`."""
    return function.__module__ != module.__name__


def pytest_generate_tests(metafunc):
    if "driver" not in metafunc.fixturenames:
        return
    parity = metafunc.definition.get_closest_marker("parity") and \
        not is_repeat(metafunc.function, metafunc.module)
    metafunc.parametrize("driver", DRIVERS if parity else OURS)


@pytest.fixture(scope="module", params=KERNEL_SERIES,
                ids=lambda s: "linux" + s)
def kernel(request):
    try:
        return find_kernel(request.param)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def vm_slot(request, kernel):
    """The module's guest (booted by the first test that needs it); at the
    end of the module, the end-of-boot check."""
    mark = request.node.get_closest_marker("vm_config")
    if mark is None:
        pytest.fail("%s has no vm_config marker" % request.module.__name__,
                    pytrace=False)
    label, config = mark.args[0], mark.kwargs
    if config.get("disk_mib") and not ModuleIndex(kernel).has("virtio_blk"):
        pytest.skip("%s has no virtio_blk (neither built in nor a module), "
                    "which this module's disk needs" % kernel.release)
    if config.get("transport") == "mmio" and \
            not ModuleIndex(kernel).has("virtio_mmio"):
        pytest.skip("%s has no virtio_mmio (CONFIG_VIRTIO_MMIO neither =y "
                    "nor =m), which the microvm guest needs" % kernel.release)
    slot = VMSlot(kernel, config, label)
    _slots.append(slot)
    try:
        yield slot
        problems = slot.end_of_boot_problems()
    finally:
        slot.close()
    if problems:
        pytest.fail("end of boot (%s, %s):\n%s" % (
            label, kernel.release, "\n".join(problems)), pytrace=False)


def _skip_on_debug_kernel(item, kernel):
    if not kernel.builtin_vballoon:
        return
    mark = item.get_closest_marker("skip_debug")
    if mark is not None:
        where = mark.args[0]
    elif is_repeat(item.function, item.module):
        where = item.function.__module__ + ".py"
    else:
        return
    pytest.skip("on the debug kernel this scenario runs in %s only" % where)


@pytest.fixture
def vm(request, vm_slot):
    """The shared guest; cleaned up and checked for kernel splats after the
    test."""
    _skip_on_debug_kernel(request.node, vm_slot.kernel)
    vm = vm_slot.get()
    start = len(vm.console())
    vm.retire_reason = None
    yield vm
    problems = []
    retire = vm.retire_reason
    if retire and vm.alive():
        # the test left the guest unusable on purpose (see VMSlot.retire)
        pass
    elif vm.alive():
        try:
            vm.reset_balloon()
        except Exception as exc:
            problems.append("could not return the guest to balloon 0 / no "
                            "driver loaded: %s" % exc)
    else:
        problems.append("the guest died during the test")
    text = vm.console()[start:]
    bad = find_bad_lines(text)
    if bad:
        problems.append("kernel problems on the guest console during this "
                        "test:\n  " + "\n  ".join(bad[:20]) +
                        "\n" + bad_reports(text))
    if retire:
        vm_slot.retire(retire)
    if problems:
        if vm.alive() and any(p.startswith("could not") for p in problems):
            vm_slot.discard("cleanup failed")
        pytest.fail("\n".join(problems) + "\n(console log: %s)" %
                    vm.console_path, pytrace=False)


def pytest_report_header(config):
    lines = []
    for s in KERNEL_SERIES:
        try:
            lines.append("vballoon VM tests: linux%s -> %s" % (
                s, find_kernel(s).describe()))
        except HarnessError as exc:
            lines.append("vballoon VM tests: linux%s -> %s" % (s, exc))
    lines.append("vballoon VM tests: guest RAM %d MiB, cache %s" %
                 (GUEST_MEM_MIB, cache_dir()))
    return lines


def pytest_terminal_summary(terminalreporter):
    if not _slots:
        return
    tr = terminalreporter
    from harness.vbhost import survival_table
    table = survival_table()
    if table:
        tr.section("vbhost: what each driver survives")
        for line in table.splitlines():
            tr.write_line(line)
    tr.section("vballoon VM boots")
    for s in _slots:
        for secs, logdir in s.boots:
            tr.write_line("%-8s %-24s boot %5.1f s  logs %s" % (
                s.label, s.kernel.release, secs or 0, logdir))
        for d in s.boot_failures + s.deaths + s.retired:
            tr.write_line("%-8s %-24s %s" % (s.label, s.kernel.release,
                                             d.splitlines()[0]))
