# SPDX-License-Identifier: GPL-2.0-only
"""The programmable balloon device of tests/vbhost, from the host side.

vbhost.ko runs inside the guest and registers a virtio balloon device on
its own transport; QEMU's virtio-balloon-pci is left out of these guests
(make_vm(..., balloon=False)), so the only balloon is vbhost's.  This
wraps its debugfs files, /sys/kernel/debug/vbhost/<n>/:

    state            key value lines (profile, held_frames, violations,
                     reports, report_pages, reports_pending, hint_blocks,
                     hint_bytes, hints_pending, hint_kept, ...)
    stats            "tag value" lines, stats_requests, stats_received, ...
    target           balloon target in 4 KiB frames (config change sent)
    cmd_id           free page hint command id (hinting=1): a new round
                     (>= 2), STOP (0) or DONE (1); config change sent
    hint_budget      after that many blocks of the current id's round the
    hint_next        device shows hint_next as cmd_id (then STOP again)
    fault            none, silent, delay=MS, flap=MS, storm=MS,
                     break-inflate, break-deflate, badid, badlen,
                     stats-flood, remove-inflate, report-silent,
                     remove-report, hint-silent, remove-hint
    stats_period_ms  the device gives the stats buffer back every MS
    remove / add     echo 1: hot-unplug the device (asynchronous) / plug
                     a new one (fresh state)

    h = VBHost(vm)
    h.load("firecracker")          # insmod vbhost.ko profile=firecracker
    h.load("qemu", "reporting=1")  # + free page reporting (page_poison=1)
    h.load("qemu", "hinting=1")    # + free page hinting; h.set_cmd_id(2)
    h.set_target(256 * MiB // PAGE_SIZE)
    h.wait(lambda s: s["held_frames"] == ..., 60, "inflated")
    h.unload()                     # rmmod vbhost (bounded)
"""

import shlex
import time

from harness.errors import HarnessError
from harness.units import PAGE_SIZE, MiB

DEBUGFS = "/sys/kernel/debug/vbhost"
PROFILES = ("qemu", "firecracker", "crosvm", "legacy")
# features (bit numbers)
F_MUST_TELL_HOST, F_STATS_VQ, F_DEFLATE_ON_OOM = 0, 1, 2
F_FREE_PAGE_HINT, F_PAGE_POISON, F_REPORTING = 3, 4, 5
F_VERSION_1 = 32
# free page hint command ids (virtio 1.2, 5.5.6.4): any other opens a round
CMD_ID_STOP, CMD_ID_DONE = 0, 1


def parse_kv(text):
    """"key value" lines as {key: int or str} (hex 0x.. as int too)."""
    res = {}
    for line in text.splitlines():
        key, _, val = line.strip().partition(" ")
        if not key:
            continue
        try:
            res[key] = int(val, 0)
        except ValueError:
            res[key] = val
    return res


class VBHost:
    """Instance `n` of vbhost in guest `vm`."""

    def __init__(self, vm, n=0):
        self.vm = vm
        self.n = n
        self.dir = "%s/%d" % (DEBUGFS, n)
        self.profile = None

    # -- module ------------------------------------------------------------

    def available(self):
        return bool(self.vm.info.get("vbhost"))

    def load(self, profile="qemu", params=""):
        """insmod vbhost.ko profile=PROFILE PARAMS; a driver already loaded
        (or built in) binds the new device while this runs."""
        if not self.available():
            raise HarnessError(
                "vbhost.ko for %s is missing at %s: build it with `make "
                "modules` at the top of the repository" % (
                    self.vm.kernel.release, self.vm.kernel.vbhost_ko()))
        self.vm.check("modload vbhost profile=%s %s" % (
            shlex.quote(profile), params), timeout=120)
        self.profile = profile
        return self.state()

    def loaded(self):
        return self.vm.run("test -e /sys/module/vbhost/initstate")[0] == 0

    def unload(self, timeout=60):
        """rmmod vbhost: removes its devices (the bound driver's remove
        runs); the device is made to answer everything first."""
        return self.vm.check("rmmod vbhost", timeout=timeout)

    # -- debugfs -----------------------------------------------------------

    def _write(self, name, value, timeout=60):
        self.vm.check("echo %s > %s/%s" % (shlex.quote(str(value)),
                                           self.dir, name), timeout=timeout)

    def _read(self, name):
        return self.vm.check("cat %s/%s" % (self.dir, name))

    def state(self):
        return parse_kv(self._read("state"))

    def stats(self):
        return parse_kv(self._read("stats"))

    def fault(self):
        return self._read("fault").strip()

    def set_fault(self, fault):
        self._write("fault", fault)

    def set_target(self, frames):
        self._write("target", int(frames))

    def set_target_bytes(self, nbytes):
        self.set_target(nbytes // PAGE_SIZE)

    def set_cmd_id(self, cmd_id):
        """Show free page hint command id `cmd_id` (hinting=1): >= 2 opens
        a round, CMD_ID_STOP ends it, CMD_ID_DONE frees the hints."""
        self._write("cmd_id", int(cmd_id))

    def set_hint_budget(self, blocks, next_id=CMD_ID_STOP):
        """After `blocks` blocks of a round of the current id (0: no
        limit) the device shows `next_id` itself, then STOP after as
        many of that one's."""
        self._write("hint_next", int(next_id))
        self._write("hint_budget", int(blocks))

    def set_stats_period(self, ms):
        self._write("stats_period_ms", int(ms))

    def remove(self):
        """Hot-unplug the device: starts the removal (the driver's remove
        runs in a work item) and returns at once."""
        self._write("remove", 1)

    def add(self):
        """A new device (fresh state, target 0); the driver probes it while
        this runs."""
        self._write("add", 1, timeout=120)

    def device(self):
        """virtioN of the current device."""
        return self.state()["device"]

    def wait(self, pred, timeout, what):
        """Wait until pred(state) holds; returns that state."""
        got = {}

        def ok():
            got["s"] = self.state()
            return pred(got["s"])
        self.vm.wait_until(ok, timeout, 0.5, what,
                           lambda: "vbhost state: %r" % got.get("s"))
        return got["s"]

    def inflate(self, nbytes, timeout=300):
        """Target `nbytes`; wait until the device holds that many frames and
        the driver's `actual` says so."""
        frames = nbytes // PAGE_SIZE
        self.set_target(frames)
        stop = []

        def done(s):
            # a lost descriptor, a broken device or a protocol violation
            # (a request dropped) never completes: say so now rather than
            # after the timeout
            if s["lost_descs"] or s["broken"] or s["violations"]:
                stop.append(s)
                return True
            return s["held_frames"] == frames and s["actual"] == frames
        st = self.wait(done, timeout, "vbhost to hold %d frames (%d MiB)"
                       % (frames, nbytes // MiB))
        if stop:
            raise AssertionError(
                "vbhost cannot reach %d frames: lost_descs %d, broken %d, "
                "violations %d, first: %s (state %r)" % (
                    frames, st["lost_descs"], st["broken"],
                    st["violations"], st["first_violation"], st))
        return st


def reset(vm, timeout=120):
    """The vm fixture's cleanup for guests without QEMU's balloon: target 0
    and no fault, the balloon deflated if a driver is bound (bounded wait),
    vbhost unloaded."""
    h = VBHost(vm)
    if not h.loaded():
        return
    if vm.run("test -d %s" % h.dir)[0] == 0:
        vm.run("echo none > %s/fault; echo 0 > %s/target" % (h.dir, h.dir))
        try:
            h.wait(lambda s: not s["present"] or s["driver"] == "-" or
                   s["held_frames"] == 0, timeout, "balloon back to 0")
        except Exception:
            pass
    h.unload(timeout=timeout)


# -- which faults each driver survives (test_vbhost.py) ----------------------

SURVIVAL = {}     # (release, scenario) -> {driver: result}
SURVIVAL_FILE = "vbhost-survival.json"


def record_survival(vm, driver, scenario, result, why=""):
    """Keep `result` (survives, hangs, fails) of `driver` in `scenario`
    for the table, and as a JSON line (with `why`) in
    <cache>/logs/SURVIVAL_FILE."""
    import json
    from harness.units import cache_dir
    SURVIVAL.setdefault((vm.kernel.release, scenario), {})[driver] = result
    rec = {"kernel": vm.kernel.release, "scenario": scenario,
           "driver": driver, "result": result, "why": why,
           "time": int(time.time())}
    path = cache_dir() / "logs" / SURVIVAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(rec, sort_keys=True) + "\n")


def survival_table(release=None):
    """Side by side: scenario, then each driver's result."""
    rows = [(k, v) for k, v in SURVIVAL.items()
            if release is None or k[0] == release]
    if not rows:
        return ""
    drivers = sorted({d for _, v in rows for d in v},
                     key=lambda d: (d != "vballoon", d))
    lines = ["%-24s %-26s %s" % ("kernel", "scenario", " ".join(
        "%-12s" % d for d in drivers))]
    for (rel, sc), v in rows:
        lines.append("%-24s %-26s %s" % (rel, sc, " ".join(
            "%-12s" % v.get(d, "-") for d in drivers)))
    return "\n".join(lines)
