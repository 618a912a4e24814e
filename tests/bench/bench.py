#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""vballoon benchmark against the kernel's virtio_balloon (`make bench`).

For each Debian kernel (newest 6.1 and 6.12):

* speed: one 4 GiB / 2 vCPU guest; its memory is touched once so the host
  has backed it; then, alternating drivers in the same boot, ROUNDS times
  each: inflate SIZE MiB, deflate SIZE MiB.  Time runs from the QMP
  `balloon` command until `query-balloon` reports the target; guest CPU
  is the busy time in the guest's /proc/stat over the same span.
* host friendliness: per driver, a fresh guest whose memory is touched,
  then fragmented (frag: FRAG_MIB of 4 KiB pages in use with one page in
  FREE_EVERY freed, as a long-running workload leaves it); the QEMU
  process's AnonHugePages (host THP backing guest RAM) before inflating,
  after inflating SIZE MiB and after deflating.

Writes results.csv, series.csv, actual.png (gnuplot) and prints a table;
the results directory is printed at the end.
"""

import argparse
import csv
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "vm"))

from harness.console import find_bad_lines  # noqa: E402
from harness.errors import WaitTimeout  # noqa: E402
from harness.kernels import find_kernel  # noqa: E402
from harness.units import MiB  # noqa: E402
from harness.vm import make_vm  # noqa: E402

DRIVERS = ("vballoon", "virtio_balloon")


def guest_busy_seconds(vm):
    """Busy CPU time of the whole guest so far (all CPUs), seconds."""
    out = vm.check("head -n 1 /proc/stat")
    f = [int(x) for x in out.split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / 100.0


def host_anon_huge_kib(vm):
    with open("/proc/%d/smaps_rollup" % vm.proc.pid) as fh:
        for line in fh:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


def move(vm, ram_target, series, label, timeout):
    """Set the target; poll until reached. Returns (seconds, cpu seconds)."""
    cpu0 = guest_busy_seconds(vm)
    t0 = time.monotonic()
    vm.set_balloon(ram_target)
    while True:
        actual = vm.query_balloon()
        t = time.monotonic() - t0
        series.append((label, round(t, 3), actual // MiB))
        if actual == ram_target:
            break
        if t > timeout:
            raise WaitTimeout("%s: target %d MiB not reached in %d s "
                                    "(actual %d MiB)" % (label,
                                                         ram_target // MiB,
                                                         timeout,
                                                         actual // MiB))
        time.sleep(0.02)
    secs = time.monotonic() - t0
    cpu = guest_busy_seconds(vm) - cpu0
    return secs, cpu


def vb_status(vm, driver, dev):
    """vballoon's debugfs counters (empty for other drivers)."""
    return vm.vballoon_status(dev) if driver == "vballoon" else {}


def warm(vm, mib):
    """Touch most of the guest's memory once so the host backs it."""
    vm.check("memhog %d" % mib, timeout=900)
    vm.check("echo 3 > /proc/sys/vm/drop_caches")


def bad_console(vm):
    return find_bad_lines(vm.console()) + [
        ln for ln in vm.console().splitlines()
        if "page allocation failure" in ln or "invoked oom-killer" in ln]


def speed(kernel, args, rows, series):
    size = args.size * MiB
    with make_vm(kernel, mem_mib=args.mem, smp=2, deflate_on_oom=False,
                 name="bench-%s" % kernel.series, append=args.append) as vm:
        warm(vm, int(args.mem * 0.8))
        for r in range(1, args.rounds + 1):
            order = DRIVERS if r % 2 else DRIVERS[::-1]
            for drv in order:
                dev = vm.load(drv)
                label = "%s %s r%d" % (kernel.series, drv, r)
                st0 = vb_status(vm, drv, dev)
                ti, ci = move(vm, vm.ram_bytes - size, series,
                              label + " inflate", args.timeout)
                st1 = vb_status(vm, drv, dev)
                td, cd = move(vm, vm.ram_bytes, series,
                              label + " deflate", args.timeout)
                vm.unload(drv)
                where = ""
                alloc_s = host_s = float("nan")
                if st1:
                    alloc_s = (st1["alloc_us"] - st0["alloc_us"]) / 1e6
                    host_s = (st1["inflate_host_us"] -
                              st0["inflate_host_us"]) / 1e6
                    where = " [inflate: %.2f s allocating+zeroing, %.2f s " \
                        "in the host, %d requests, %d 2 MiB blocks]" % (
                            alloc_s, host_s,
                            st1["requests"] - st0["requests"],
                            st1["inflated_blocks"] - st0["inflated_blocks"])
                print("  %-6s %-15s round %d: inflate %.2f s (cpu %.2f s), "
                      "deflate %.2f s (cpu %.2f s)%s" %
                      (kernel.series, drv, r, ti, ci, td, cd, where),
                      flush=True)
                rows.append(dict(kernel=kernel.release, driver=drv, round=r,
                                 inflate_s=ti, inflate_cpu_s=ci,
                                 deflate_s=td, deflate_cpu_s=cd,
                                 inflate_alloc_s=alloc_s,
                                 inflate_host_s=host_s))
        bad = bad_console(vm)
        if bad:
            print("  WARNING: console complaints:\n    " + "\n    ".join(bad))


def thp(kernel, args, thp_rows):
    size = args.size * MiB
    for drv in DRIVERS:
        with make_vm(kernel, mem_mib=args.mem, smp=2, deflate_on_oom=False,
                     name="bench-thp-%s-%s" % (kernel.series, drv),
                     append=args.append) as vm:
            warm(vm, int(args.mem * 0.8))
            vm.check("frag %d %d > /tmp/frag.log 2>&1 &" %
                     (args.frag_mib, args.free_every))
            vm.wait_until(lambda: "ready" in vm.run("cat /tmp/frag.log")[1],
                          600, 0.5, "frag to finish fragmenting")
            dev = vm.load(drv)
            before = host_anon_huge_kib(vm)
            ti, _ = move(vm, vm.ram_bytes - size, [], "thp", args.timeout)
            inflated = host_anon_huge_kib(vm)
            st = vb_status(vm, drv, dev)
            move(vm, vm.ram_bytes, [], "thp", args.timeout)
            deflated = host_anon_huge_kib(vm)
            vm.unload(drv)
            bad = bad_console(vm)
            blocks = st.get("inflated_blocks", "")
            thp_rows.append(dict(kernel=kernel.release, driver=drv,
                                 thp_before_mib=before // 1024,
                                 thp_inflated_mib=inflated // 1024,
                                 thp_deflated_mib=deflated // 1024,
                                 inflate_s=round(ti, 2),
                                 blocks_2mib=blocks,
                                 console_problems=len(bad)))
            print("  %-6s %-15s THP before %d MiB, inflated %d MiB, "
                  "deflated %d MiB (fragmented inflate %.1f s, %d console "
                  "problems)" % (kernel.series, drv, before // 1024,
                                 inflated // 1024, deflated // 1024, ti,
                                 len(bad)), flush=True)
            for b in bad:
                print("    " + b)


def med(rows, kernel, drv, key):
    v = [r[key] for r in rows if r["kernel"] == kernel and r["driver"] == drv]
    return statistics.median(v) if v else float("nan")


def report(rows, thp_rows, out):
    kernels = sorted({r["kernel"] for r in rows} |
                     {r["kernel"] for r in thp_rows})
    lines = []
    hdr = ("%-22s %-10s %9s %9s %9s %9s" %
           ("kernel", "metric", "vballoon", "virtio_b", "ratio", "goal"))
    lines += [hdr, "-" * len(hdr)]
    summary = []
    for k in kernels:
        for key, what, goal in (("inflate_s", "inflate s", "<=0.5"),
                                ("deflate_s", "deflate s", "<=0.5"),
                                ("inflate_cpu_s", "infl cpu", "<=0.5"),
                                ("deflate_cpu_s", "defl cpu", "")):
            a, b = med(rows, k, "vballoon", key), med(rows, k,
                                                      "virtio_balloon", key)
            ratio = a / b if b else float("nan")
            lines.append("%-22s %-10s %9.2f %9.2f %9.2f %9s" %
                         (k, what, a, b, ratio, goal))
            summary.append(dict(kernel=k, metric=key, vballoon=a,
                                virtio_balloon=b, ratio=ratio))
        t = {r["driver"]: r for r in thp_rows if r["kernel"] == k}
        if len(t) == 2:
            a = t["vballoon"]["thp_inflated_mib"]
            b = t["virtio_balloon"]["thp_inflated_mib"]
            ratio = a / b if b else float("inf")
            lines.append("%-22s %-10s %9d %9d %9.2f %9s" %
                         (k, "THP MiB", a, b, ratio, ">=3"))
            summary.append(dict(kernel=k, metric="thp_after_inflate_mib",
                                vballoon=a, virtio_balloon=b, ratio=ratio))
    text = "\n".join(lines)
    (out / "table.txt").write_text(text + "\n")
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    return text


def plot(series, out):
    data = out / "series.csv"
    labels = []
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "seconds", "actual_mib"])
        for row in series:
            w.writerow(row)
            if row[0] not in labels:
                labels.append(row[0])
    # One block of data per first-round run, for gnuplot's index.
    runs = [lb for lb in labels if " r1 " in lb]
    dat = out / "series.dat"
    with open(dat, "w") as fh:
        for lb in runs:
            fh.write("# %s\n" % lb)
            for row in series:
                if row[0] == lb:
                    fh.write("%s %s\n" % (row[1], row[2]))
            fh.write("\n\n")
    plots = ", ".join("'%s' index %d with lines lw 2 title '%s'" %
                      (dat, i, lb.replace("_", "\\_"))
                      for i, lb in enumerate(runs))
    script = ("set terminal pngcairo size 1100,700 noenhanced\n"
              "set output '%s'\n"
              "set title 'balloon actual (guest RAM) after a 2 GiB target "
              "change, round 1'\n"
              "set xlabel 'seconds since QMP balloon'\n"
              "set ylabel 'actual, MiB'\nset key outside right\n"
              "set grid\nplot %s\n" % (out / "actual.png", plots))
    if not runs:
        return None
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("bench: gnuplot failed (%s); no plot" % e)
        return None
    return out / "actual.png"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernels", default="6.1,6.12")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mem", type=int, default=4096, help="guest MiB")
    ap.add_argument("--size", type=int, default=2048, help="balloon MiB")
    ap.add_argument("--frag-mib", type=int, default=1800,
                    help="MiB the fragmenter spreads over")
    ap.add_argument("--free-every", type=int, default=8,
                    help="the fragmenter frees one page in this many")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--no-thp", action="store_true")
    ap.add_argument("--append", default="",
                    help="extra guest kernel command line, e.g. "
                    "init_on_alloc=0 to see the cost of page zeroing")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    out = Path(args.out or (HERE.parent.parent / "results" /
                            time.strftime("bench-%Y%m%d-%H%M%S")))
    out.mkdir(parents=True, exist_ok=True)
    rows, thp_rows, series = [], [], []
    t0 = time.monotonic()
    for s in args.kernels.split(","):
        kernel = find_kernel(s.strip())
        print("bench: kernel %s" % kernel.release, flush=True)
        speed(kernel, args, rows, series)
        if not args.no_thp:
            thp(kernel, args, thp_rows)
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if thp_rows:
        with open(out / "thp.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(thp_rows[0]))
            w.writeheader()
            w.writerows(thp_rows)
    print()
    print("Medians over %d rounds, %d MiB balloon, %d MiB guest%s; ratio = "
          "vballoon / virtio_balloon (same boot)" %
          (args.rounds, args.size, args.mem,
           ", guest cmdline +'%s'" % args.append if args.append else ""))
    print(report(rows, thp_rows, out))
    png = plot(series, out)
    print()
    print("bench: %.0f s; results in %s (results.csv, thp.csv, summary.csv, "
          "series.csv%s)" % (time.monotonic() - t0, out,
                             ", actual.png" if png else ""))


if __name__ == "__main__":
    main()
