# SPDX-License-Identifier: GPL-2.0-only
"""The balloon test guest: a QEMU Machine plus what the tests do with it
(balloon targets over QMP, /proc readers, loading and unloading balloon
drivers, vballoon's debugfs status, waits scaled by the kernel's
slowdown).

Two variants of one interface, picked by make_vm(kernel):

  VM          vballoon.ko next to a Debian kernel: load = insmod (modload),
              unload = rmmod
  BuiltinVM   the debug kernel with vballoon built in: load = bind (its
              module parameters written to sysfs first), unload = unbind;
              vballoon is unbound right after boot so that every test
              starts with no driver on the device; kmemleak at the end
"""

import re
import shlex

from harness.console import parse_kmemleak
from harness.errors import CommandFailed, HarnessError
from harness.qemu import BALLOON_PATH, Machine
from harness.units import PAGE_SIZE, MiB, mib
from harness.wait import wait_until

BALLOON_DRIVERS = ("vballoon", "virtio_balloon")
VIRTIO_ID_BALLOON = 5
# Inflating or deflating 1 GiB takes seconds under TCG; allow minutes.
BALLOON_TIMEOUT = 900
# Tolerance for memory comparisons: 2% of guest RAM.
TOLERANCE = 0.02

# Every stat QEMU 7.2 knows about (hw/virtio/virtio-balloon.c).
QEMU_STATS = (
    "stat-swap-in", "stat-swap-out", "stat-major-faults",
    "stat-minor-faults", "stat-free-memory", "stat-total-memory",
    "stat-available-memory", "stat-disk-caches", "stat-htlb-pgalloc",
    "stat-htlb-pgfail",
)
COUNTER_STATS = (
    "stat-swap-in", "stat-swap-out", "stat-major-faults",
    "stat-minor-faults", "stat-htlb-pgalloc", "stat-htlb-pgfail",
)


def parse_status(text):
    """vballoon's debugfs status ("name value" lines) as {name: int or
    str}."""
    res = {}
    for line in text.splitlines():
        name, _, val = line.strip().partition(" ")
        if name:
            res[name] = int(val) if val.lstrip("-").isdigit() else val
    return res


class VM(Machine):
    """A guest whose kernel has vballoon as a module (Debian kernels).

        with make_vm(find_kernel("6.12"), deflate_on_oom=True) as vm:
            dev = vm.load("vballoon")
            vm.set_balloon(vm.ram_bytes // 2)
    """

    # -- waits (the one place timeouts are scaled) -------------------------

    def wait_until(self, pred, timeout, interval=0.5, what="condition",
                   describe=None):
        """harness.wait.wait_until with `timeout` times the kernel's
        slowdown: only the safety nets stretch on a slow kernel."""
        return wait_until(pred, timeout * self.slowdown, interval, what,
                          describe)

    @property
    def tolerance(self):
        """Bytes two memory figures may differ by: 2 % of guest RAM."""
        return int(self.ram_bytes * TOLERANCE)

    def describe_balloon(self):
        """The balloon and the guest's free memory now, as text."""
        act = self.query_balloon()
        mi = self.meminfo()
        return ("now: actual %s (balloon %s), guest MemFree %s + per-cpu "
                "lists %s, MemTotal %s" % (
                    mib(act), mib(self.ram_bytes - act),
                    mib(mi["MemFree"] * 1024), mib(mi["PcpFree"] * 1024),
                    mib(mi["MemTotal"] * 1024)))

    def wait_balloon(self, size, timeout=BALLOON_TIMEOUT):
        """Wait until QEMU reports a balloon of exactly `size` bytes."""
        want = self.ram_bytes - size
        self.wait_until(lambda: self.query_balloon() == want, timeout, 0.5,
                        "query-balloon actual == %s (balloon %s)" % (
                            mib(want), mib(size)), self.describe_balloon)

    def inflate(self, size, timeout=BALLOON_TIMEOUT):
        """Ask for a balloon of `size` bytes and wait until it is there."""
        self.set_balloon_size(size)
        self.wait_balloon(size, timeout)

    def wait_meminfo(self, field, expect, what):
        """Wait until /proc/meminfo[field] (as bytes) is within the
        tolerance of `expect` bytes; returns the value."""
        got = {}

        def ok():
            got["v"] = self.meminfo()[field] * 1024
            return abs(got["v"] - expect) <= self.tolerance
        self.wait_until(ok, 60, 0.5, "%s: %s within %s of %s" % (
            what, field, mib(self.tolerance), mib(expect)),
            lambda: "%s is %s" % (field, mib(got.get("v", 0))))
        return got["v"]

    # -- QMP: the balloon from the host's side -----------------------------

    def set_balloon(self, ram_bytes):
        """Ask for the guest to have `ram_bytes` of RAM (balloon = RAM -
        it)."""
        self.qmp("balloon", value=int(ram_bytes))

    def set_balloon_size(self, balloon_bytes):
        self.set_balloon(self.ram_bytes - int(balloon_bytes))

    def query_balloon(self):
        """QEMU's `actual`: guest RAM minus the balloon, in bytes."""
        return self.qmp("query-balloon")["actual"]

    def balloon_size(self):
        return self.ram_bytes - self.query_balloon()

    def qom_get(self, prop, path=BALLOON_PATH):
        return self.qmp("qom-get", path=path, property=prop)

    def qom_set(self, prop, value, path=BALLOON_PATH):
        return self.qmp("qom-set", path=path, property=prop, value=value)

    def guest_stats(self):
        return self.qom_get("guest-stats")

    def set_stats_interval(self, seconds):
        self.qom_set("guest-stats-polling-interval", int(seconds))

    # -- guest state -------------------------------------------------------

    def meminfo(self):
        """/proc/meminfo as {field: kB}, plus two synthesized fields:

        PcpFree   -- free pages sitting on the per-cpu free lists (summed
                     "count:" of /proc/zoneinfo).  They are free, but not in
                     MemFree; 6.12 auto-tunes these lists up to ~100 MiB
                     right after a big deflate and drains them over seconds.
        FreeTotal -- MemFree + PcpFree: free memory that does not move when
                     the per-cpu lists fill or drain.
        """
        out = self.check(
            "cat /proc/meminfo; awk '$1 == \"count:\" { s += $2 } "
            "END { print \"PcpPages:\", s + 0 }' /proc/zoneinfo")
        res = {}
        for line in out.splitlines():
            m = re.match(r"(\S+):\s+(\d+)", line)
            if m:
                res[m.group(1)] = int(m.group(2))
        res["PcpFree"] = res.pop("PcpPages", 0) * PAGE_SIZE // 1024
        res["FreeTotal"] = res["MemFree"] + res["PcpFree"]
        return res

    def free_bytes(self):
        """Guest free memory: MemFree plus the per-cpu free lists (see
        meminfo); plain MemFree jumps by up to ~100 MiB on 6.12 as those
        lists fill after a deflate and drain a few seconds later."""
        return self.meminfo()["FreeTotal"] * 1024

    def vmstat(self):
        """/proc/vmstat as {name: int}."""
        out = self.check("cat /proc/vmstat")
        return {k: int(v) for k, v in (ln.split() for ln in out.splitlines())}

    def watermarks(self):
        """Sum over zones of the min/low/high watermarks, in MiB."""
        out = self.check("cat /proc/zoneinfo")
        res = {"min": 0, "low": 0, "high": 0}
        for line in out.splitlines():
            f = line.split()
            if len(f) == 2 and f[0] in res and f[1].isdigit():
                res[f[0]] += int(f[1])
        return {k: round(v * PAGE_SIZE / MiB, 1) for k, v in res.items()}

    def dmesg(self):
        return self.check("dmesg")

    def kmsg(self, text):
        """Write a line into the guest kernel log (console and dmesg)."""
        self.check("echo %s > /dev/kmsg" % shlex.quote(text))

    # -- balloon drivers ---------------------------------------------------

    def bound_devices(self, driver):
        """virtio devices bound to `driver` (names like virtio0)."""
        out = self.check("ls /sys/bus/virtio/drivers/%s/ 2>/dev/null; true"
                         % driver)
        return sorted(n for n in out.split() if n.startswith("virtio"))

    def balloon_device(self):
        """Name (virtioN) of the virtio balloon device (id 5)."""
        out = self.check("for d in /sys/bus/virtio/devices/*; do "
                         "[ $(cat $d/device) = 0x0005 ] && basename $d; "
                         "done; true")
        devs = out.split()
        if not devs:
            raise HarnessError("no virtio balloon device in the guest")
        return devs[0]

    def load(self, driver, params=""):
        """Load `driver` ("vballoon" or "virtio_balloon") with module
        parameters `params` ("name=value ..."), wait until it bound the
        balloon device and check that it is one (virtio id 5); returns the
        device's name (virtio0)."""
        if driver == "vballoon" and not self.info.get("vballoon"):
            raise HarnessError(
                "vballoon.ko for %s is missing at %s: build it with `make "
                "modules` at the top of the repository" % (
                    self.kernel.release, self.info["vballoon_ko"]))
        self._attach(driver, params)
        devs = self.wait_until(lambda: self.bound_devices(driver), 60, 0.5,
                               "a virtio device bound to driver %s" % driver)
        dev = devs[0]
        devid = self.check("cat /sys/bus/virtio/drivers/%s/%s/device" %
                           (driver, dev)).strip()
        assert int(devid, 16) == VIRTIO_ID_BALLOON, \
            "%s bound %s, device id %s, not a balloon (5)" % (
                driver, dev, devid)
        return dev

    def unload(self, driver, timeout=600):
        """Take `driver` off the balloon device (rmmod; BuiltinVM:
        unbind)."""
        return self._detach(driver, timeout)

    def loaded(self, driver):
        """`driver` is loaded (BuiltinVM: vballoon is bound)."""
        return self.run("test -e /sys/module/%s/initstate" % driver)[0] == 0

    def _attach(self, driver, params):
        self.check("modload %s %s" % (driver, params), timeout=300)

    def _detach(self, driver, timeout):
        return self.check("rmmod %s" % driver, timeout=timeout)

    def vballoon_status(self, dev):
        """vballoon's debugfs status of device `dev` as {name: value}."""
        return parse_status(self.check(
            "cat /sys/kernel/debug/vballoon/%s/status" % dev))

    def wait_stats_answered(self, dev, after_requests, after_update, what):
        """Wait until vballoon on `dev` answered a stats request and QEMU
        stored a newer update than given; returns (status, guest-stats)."""
        got = {}

        def ok():
            got["st"], got["gs"] = self.vballoon_status(dev), \
                self.guest_stats()
            return got["st"]["stats_requests"] > after_requests and \
                got["gs"]["last-update"] > after_update
        self.wait_until(ok, 60, 0.5, "a stats request answered and stored "
                        "by QEMU (%s)" % what,
                        lambda: "stats_requests %s, last-update %s" % (
                            got.get("st", {}).get("stats_requests"),
                            got.get("gs", {}).get("last-update")))
        return got["st"], got["gs"]

    def reset_balloon(self, timeout=900):
        """Target balloon 0, wait for it if a driver is loaded, unload all
        balloon drivers.  Leaves the VM ready for the next test: the
        balloon device bound to no driver.  Without QEMU's balloon
        (balloon=False) the balloon is vbhost's: harness.vbhost.reset."""
        if not self.balloon:
            from harness import vbhost
            vbhost.reset(self)
            for drv in BALLOON_DRIVERS:
                if self.loaded(drv) and not self.kernel.builtin_vballoon:
                    self.unload(drv, timeout=60)
            return
        self.set_balloon(self.ram_bytes)
        for drv in BALLOON_DRIVERS:
            if self.loaded(drv):
                self.wait_until(
                    lambda: self.query_balloon() == self.ram_bytes, timeout,
                    1, "balloon to deflate to 0 before unloading %s" % drv,
                    lambda: "actual=%d MiB" % (self.query_balloon() // MiB))
                self.unload(drv)

    def end_of_boot_leaks(self):
        """(ours, others) kmemleak reports at the end of a boot, or None
        where the kernel does not look for leaks."""
        return None

    def kmemleak_check(self, scans=2, scan_timeout=300):
        """Run kmemleak: `scans` scans, then read the report (saved as
        kmemleak.txt in the log directory).  Returns (ours, others) as
        parse_kmemleak(), or None when the kernel has no kmemleak."""
        path = "/sys/kernel/debug/kmemleak"
        if self.run("test -e %s" % path)[0] != 0:
            return None
        for _ in range(scans):
            # the write returns when the scan is done; bounded by timeout
            self.check("echo scan > %s" % path, timeout=scan_timeout)
        text = self.check("cat %s" % path, timeout=120)
        (self.log_dir / "kmemleak.txt").write_text(text)
        return parse_kmemleak(text)


def param_equal(want, got):
    """A module parameter value as written vs. as read back (bools read
    back as Y/N)."""
    if got is None:
        return False
    if want == got:
        return True
    b = {"y": "Y", "1": "Y", "true": "Y", "on": "Y",
         "n": "N", "0": "N", "false": "N", "off": "N"}
    return b.get(want.lower()) is not None and b.get(want.lower()) == got


class BuiltinVM(VM):
    """A guest whose kernel has vballoon built in (the debug kernel).

    Right after boot the harness reads vballoon's parameter defaults from
    /sys/module/vballoon/parameters/ and unbinds it.  load("vballoon",
    params) writes `params` (all others back to their defaults) there
    (read at probe), unbinds any other driver and binds the device;
    unload("vballoon") unbinds it and resets the parameters.  Loading
    virtio_balloon first unbinds vballoon.
    """

    VB_PARAMS = "/sys/module/vballoon/parameters"
    VB_DRIVER = "/sys/bus/virtio/drivers/vballoon"

    def __init__(self, kernel, **kwargs):
        super().__init__(kernel, **kwargs)
        self.vb_param_defaults = {}   # vballoon's parameters at boot
        self.boot_bound = []          # devices vballoon had bound at boot

    def _read_params(self):
        out = self.check("cd %s && for f in *; do echo \"$f=$(cat $f)\"; "
                         "done" % self.VB_PARAMS)
        return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)

    def after_boot(self):
        self.vb_param_defaults = self._read_params()
        if not self.vb_param_defaults:
            raise HarnessError("no parameters in %s" % self.VB_PARAMS)
        self.boot_bound = self.bound_devices("vballoon")
        self._unbind(600)

    def _set_params(self, params):
        want = dict(self.vb_param_defaults)
        for tok in shlex.split(params or ""):
            if "=" not in tok:
                raise HarnessError("vballoon parameter %r is not name=value"
                                   % tok)
            k, v = tok.split("=", 1)
            if k not in want:
                raise HarnessError("vballoon has no parameter %r (has %s)" %
                                   (k, ", ".join(sorted(want))))
            want[k] = v
        self.check("; ".join(
            "echo %s > %s/%s" % (shlex.quote(v), self.VB_PARAMS, k)
            for k, v in sorted(want.items())) + "; true")
        got = self._read_params()
        bad = {k: (v, got.get(k)) for k, v in want.items()
               if not param_equal(v, got.get(k))}
        if bad:
            raise CommandFailed("could not set vballoon parameters "
                                "(wanted, read back): %r" % bad)

    def _unbind(self, timeout=600):
        out = ""
        for dev in self.bound_devices("vballoon"):
            out += self.check("echo %s > %s/unbind" % (dev, self.VB_DRIVER),
                              timeout=timeout)
        if self.vb_param_defaults:
            self._set_params("")
        return out

    def _attach(self, driver, params):
        if driver != "vballoon":
            if self.bound_devices("vballoon"):
                self._unbind(300)
            return super()._attach(driver, params)
        dev = self.balloon_device()
        for drv in BALLOON_DRIVERS:
            if dev in self.bound_devices(drv):
                self.check("echo %s > /sys/bus/virtio/drivers/%s/unbind"
                           % (dev, drv), timeout=600)
        self._set_params(params)
        return self.check("echo %s > %s/bind" % (dev, self.VB_DRIVER),
                          timeout=300)

    def _detach(self, driver, timeout):
        if driver == "vballoon":
            return self._unbind(timeout)
        return super()._detach(driver, timeout)

    def loaded(self, driver):
        if driver == "vballoon":    # built-ins have no initstate
            return bool(self.bound_devices("vballoon"))
        return super().loaded(driver)

    def reset_balloon(self, timeout=900):
        super().reset_balloon(timeout)
        if not self.balloon:
            return
        self._unbind()
        left = {d: self.bound_devices(d) for d in BALLOON_DRIVERS}
        left = {d: v for d, v in left.items() if v}
        if left:
            raise HarnessError("balloon device still bound after reset: %r"
                               % left)

    def end_of_boot_leaks(self):
        return self.kmemleak_check()


# Boots tried before a guest counts as lost on a kernel whose balloon driver
# is a module: nothing of ours runs while it boots, so a boot that dies is
# the emulator's or the distribution kernel's problem.
BOOT_ATTEMPTS = 3


def boot_attempts(kernel):
    """How many times to try booting `kernel` before the failure is the
    test's: once with vballoon built in (it probes while booting, so a boot
    that dies may be ours), BOOT_ATTEMPTS otherwise."""
    return 1 if kernel.builtin_vballoon else BOOT_ATTEMPTS


def boot_bound_problem(boot_bound, balloon_dev):
    """With vballoon built in, it must have bound exactly the balloon
    device by the end of boot: None if so, else what is wrong."""
    if boot_bound == [balloon_dev]:
        return None
    return "vballoon built in but bound %s at the end of boot, not the " \
        "balloon device %s" % (boot_bound or "nothing", balloon_dev)


def make_vm(kernel, **kwargs):
    """The VM variant for `kernel` (VM or BuiltinVM); keyword arguments
    as for Machine (mem_mib, smp, deflate_on_oom, balloon_props, append,
    name, disk_mib, extra_helpers, ...)."""
    cls = BuiltinVM if kernel.builtin_vballoon else VM
    return cls(kernel, **kwargs)
