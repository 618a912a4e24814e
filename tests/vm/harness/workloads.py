# SPDX-License-Identifier: GPL-2.0-only
"""Programs the tests run in the guest to put memory under pressure:
memhog (guest/memhog.c) in the background, a loop reading the VM's
virtio-blk disk into the page cache, and the OOM-killer bookkeeping
around them."""

import time

from harness.console import (EXPECT_BEGIN, EXPECT_END, OOM_PATTERNS,
                             find_bad_lines)
from harness.units import MiB, mib
from harness.vm import BALLOON_TIMEOUT


def start_victim(vm, name, args, ready, timeout, what, interval=0.5,
                 describe=None):
    """Start guest program `name args` in the background as the OOM
    killer's favourite, its output in /tmp/NAME.out and its exit code, once
    it ends, in /tmp/NAME.rc; returns once the shell test `ready` succeeds
    or the program ended (the caller tells which)."""
    # only the program is made the OOM killer's favourite; the subshell
    # that records its exit code keeps the agent's protection
    vm.check("rm -f /tmp/%s.*; (sh -c 'echo 1000 > /proc/self/oom_score_adj"
             " && exec %s %s' >/tmp/%s.out 2>&1; echo $? >/tmp/%s.rc) "
             "</dev/null >/dev/null 2>&1 &" % (name, name, args, name, name))
    vm.wait_until(lambda: vm.run("%s || test -e /tmp/%s.rc" % (
        ready, name))[0] == 0, timeout, interval, what,
        describe or (lambda: vm.run("cat /tmp/%s.out" % name)[1]))


def victim_ended(vm, name):
    """The program start_victim started has exited."""
    return vm.run("test -e /tmp/%s.rc" % name)[0] == 0


def wait_victim_exit(vm, name, timeout=120):
    vm.wait_until(lambda: victim_ended(vm, name), timeout, 0.5,
                  "%s to exit" % name)


def start_hog(vm, size_mib, options=""):
    """Start `memhog [options] size_mib` in the background, killable by the
    OOM killer (the agent itself is protected); returns once all its memory
    is touched, or it ended."""
    start_victim(vm, "memhog", "%s -r /tmp/memhog.ready -H 600 %d" % (
        options, size_mib), "test -e /tmp/memhog.ready", 900,
        "memhog %d to touch all its memory or end" % size_mib, interval=1,
        describe=lambda: "memhog output: %r, %s; memhog's state and "
        "kernel stack: %r; vballoon: %r" % (
            vm.run("cat /tmp/memhog.out")[1], vm.describe_balloon(),
            vm.run("p=$(pidof memhog); grep State /proc/$p/status; "
                   "cat /proc/$p/stack")[1],
            vm.run("cat /sys/kernel/debug/vballoon/*/status 2>/dev/null "
                   "| tr '\\n' ' '")[1]))


def finish_hog(vm):
    """Release memhog; returns (rc, output)."""
    vm.run("killall -USR1 memhog")
    wait_victim_exit(vm, "memhog")
    return (int(vm.check("cat /tmp/memhog.rc").strip()),
            vm.check("cat /tmp/memhog.out"))


def oom_kill_hog(vm, size_mib):
    """Run memhog expecting the OOM killer, inside expected-splat markers;
    returns (rc, output, the console's OOM lines)."""
    mark = len(vm.console())
    vm.kmsg(EXPECT_BEGIN)
    try:
        start_hog(vm, size_mib)
        rc, out = finish_hog(vm)
    finally:
        if vm.alive():
            vm.kmsg(EXPECT_END)
    return rc, out, find_bad_lines(vm.console()[mark:], OOM_PATTERNS,
                                   skip_expected=False)


def oom_lines(vm, mark):
    """OOM-killer messages on the console since `mark` and in dmesg,
    outside expected-splat markers."""
    return (find_bad_lines(vm.console()[mark:], OOM_PATTERNS) +
            find_bad_lines(vm.dmesg(), OOM_PATTERNS))


def squeeze(vm, leave=100 * MiB, still_s=10):
    """Inflate until only about `leave` bytes are free; returns actual.

    The target is what is free now minus `leave`, but the last few MiB
    may sit on per-CPU free lists or be taken by the guest meanwhile,
    where the balloon (allocating without reclaim) cannot get them: the
    balloon has done its part when it reaches the target, or when it has
    not grown for `still_s` seconds with free memory within the tolerance
    of `leave`."""
    size = (vm.free_bytes() - leave) // MiB * MiB
    vm.set_balloon_size(size)
    seen = {"size": None, "since": time.monotonic()}

    def settled():
        cur = vm.balloon_size()
        if cur >= size:
            return True
        now = time.monotonic()
        if cur != seen["size"]:
            seen.update(size=cur, since=now)
            return False
        return now - seen["since"] >= still_s and \
            vm.free_bytes() <= leave + vm.tolerance
    vm.wait_until(settled, BALLOON_TIMEOUT, 1,
                  "balloon of %s, or one that stopped growing with about "
                  "%s free" % (mib(size), mib(leave)), vm.describe_balloon)
    vm.wait_meminfo("FreeTotal", leave, "about %s left free" % mib(leave))
    return vm.query_balloon()


def ensure_disk(vm):
    """Load virtio_blk so the VM's sparse disk shows up as /dev/vda, and
    keep it open."""
    assert vm.disk_mib, "this test needs a VM with disk_mib set"
    if vm.run("test -b /dev/vda")[0] != 0:
        vm.check("modload virtio_blk")
    vm.wait_until(lambda: vm.run("test -b /dev/vda")[0] == 0, 60, 0.5,
                  "/dev/vda to appear after loading virtio_blk")
    sectors = int(vm.check("cat /sys/block/vda/size"))
    assert sectors * 512 == vm.disk_mib * MiB, \
        "/dev/vda has %d sectors, expected %d MiB" % (sectors, vm.disk_mib)
    # The kernel drops a block device's page cache when its last opener
    # closes it; keep it open for the rest of the boot so that what dd
    # read stays cached (until reclaim or drop_caches takes it).
    if vm.run("kill -0 $(cat /tmp/vda.holder 2>/dev/null) 2>/dev/null")[0]:
        vm.check("sleep 2147483647 </dev/vda >/dev/null 2>&1 & "
                 "echo $! > /tmp/vda.holder")


def start_reader(vm):
    """Read /dev/vda in a loop in the background: the page cache fills with
    clean pages and is refilled as fast as reclaim drops them."""
    ensure_disk(vm)
    vm.check("rm -f /tmp/rd.*; cat > /tmp/rd.sh <<'EOF'\n"
             "while [ ! -e /tmp/rd.stop ]; do\n"
             "  dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null\n"
             "  echo pass >> /tmp/rd.passes\n"
             "done\n"
             "EOF\n"
             "sh /tmp/rd.sh </dev/null >/dev/null 2>&1 &\n"
             "echo $! > /tmp/rd.pid")


def reader_alive(vm):
    return vm.run("kill -0 $(cat /tmp/rd.pid)")[0] == 0


def stop_reader(vm):
    """Stop the reader loop (its passes stay counted in /tmp/rd.passes)."""
    vm.run("touch /tmp/rd.stop; killall dd")
    vm.wait_until(lambda: vm.run("kill -0 $(cat /tmp/rd.pid) 2>/dev/null || "
                                 "exit 0; killall dd; exit 1")[0] == 0,
                  120, 0.5, "the disk reader loop to stop")
