#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Live demo of the vballoon driver in a QEMU/TCG guest (used by `make run`).

Boots the newest installed 6.12 kernel with a virtio-balloon device, loads
vballoon.ko, asks QEMU to take half of the guest's RAM away (inflate the
balloon), then to give it all back (deflate), and prints one table row per
poll so you can watch the balloon move.
"""

import argparse
import sys
import time

from harness.console import find_bad_lines
from harness.kernels import find_kernel
from harness.qemu import BALLOON_PATH
from harness.units import MiB
from harness.vm import BALLOON_DRIVERS, make_vm


HEADER = """\
What you are looking at
-----------------------
The host (QEMU) can borrow memory back from a running guest with a
"balloon": the guest driver allocates pages inside the guest and hands
them to the host, so the guest can no longer use them.  The host only sets
a target; the guest driver does the work and reports progress.

Columns (one row per poll, every {interval:.1f} s):
  time      seconds since the scenario started
  phase     what the host asked for last
  target    balloon size the host asked for, MiB   (RAM - QMP `balloon` value)
  balloon   balloon size the guest reports, MiB    (RAM - QMP `query-balloon`)
  guest RAM memory the guest may use now, MiB      (QMP `query-balloon` actual)
  MemFree   free memory seen inside the guest, MiB (/proc/meminfo MemFree
            plus the per-cpu free lists)
Inflating: balloon climbs to target and MemFree falls by the same amount.
Deflating: balloon goes back to 0 and MemFree recovers.
"""


def row(t, phase, target, balloon, ram, free):
    return "%7.1f  %-10s %8s %9s %10s %9s" % (t, phase, target, balloon, ram,
                                                free)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="6.12",
                    help="kernel series to boot (default 6.12)")
    ap.add_argument("--driver", default="vballoon",
                    choices=BALLOON_DRIVERS)
    ap.add_argument("--mem", type=int, default=2048, help="guest MiB")
    ap.add_argument("--percent", type=int, default=50,
                    help="guest RAM to keep while inflated, %% (default 50)")
    ap.add_argument("--interval", type=float, default=1.0,
                    help="seconds between rows")
    args = ap.parse_args()

    kernel = find_kernel(args.kernel)
    ko = kernel.vballoon_ko()     # None: built into the kernel
    if args.driver == "vballoon" and ko is not None and not ko.exists():
        sys.exit("demo: %s is missing; run `make modules` first (or use "
                 "--driver virtio_balloon)" % ko)
    print("Booting %s (%d MiB RAM, QEMU TCG, no KVM) ..." %
          (kernel.release, args.mem), flush=True)
    with make_vm(kernel, mem_mib=args.mem, name="demo-" + kernel.series) \
            as vm:
        print("Booted in %.1f s; loading %s.ko" % (vm.boot_seconds,
                                                 args.driver), flush=True)
        vm.load(args.driver)
        vm.set_stats_interval(2)
        print()
        print(HEADER.format(interval=args.interval))
        print("%7s  %-10s %8s %9s %10s %9s" % (
            "time", "phase", "target", "balloon", "guest RAM", "MemFree"))
        print("%7s  %-10s %8s %9s %10s %9s" % (
            "s", "", "MiB", "MiB", "MiB", "MiB"))
        t0 = time.monotonic()
        ram = vm.ram_bytes
        phases = (("inflate", ram * args.percent // 100), ("deflate", ram))
        for phase, target_ram in phases:
            vm.set_balloon(target_ram)
            settled = 0
            deadline = time.monotonic() + 900
            while settled < 3 and time.monotonic() < deadline:
                actual = vm.query_balloon()
                free = vm.meminfo()["FreeTotal"] * 1024
                print(row(time.monotonic() - t0, phase,
                          (ram - target_ram) // MiB, (ram - actual) // MiB,
                          actual // MiB, free // MiB), flush=True)
                settled = settled + 1 if actual == target_ram else 0
                time.sleep(args.interval)
            if settled < 3:
                print("demo: the balloon did not reach its target",
                      file=sys.stderr)
                return 1
        stats = vm.guest_stats()
        print()
        print("Last statistics the guest driver sent to QEMU "
              "(qom-get %s guest-stats):" % BALLOON_PATH)
        when = stats.get("last-update", 0)
        print("  last update: %s" % (time.strftime(
            "%H:%M:%S", time.localtime(when)) if when else "never"))
        for key, value in sorted(stats.get("stats", {}).items()):
            name = key.replace("stat-", "")
            if value == -1:
                text = "not reported"
            elif name.endswith("memory") or name == "disk-caches":
                text = "%.1f MiB" % (value / MiB)
            else:
                text = "%d" % value
            print("  %-18s %s" % (name, text))
        vm.set_stats_interval(0)
        vm.unload(args.driver)
        bad = find_bad_lines(vm.console())
        if bad:
            print("\nKernel problems on the guest console:\n  " +
                  "\n  ".join(bad))
            return 1
        print("\nDone: driver unloaded, guest console clean (log: %s)." %
              vm.console_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
