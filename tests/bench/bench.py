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
* free page reporting (QEMU `free-page-reporting=on`): one 2 GiB guest,
  the drivers alternating, FREE_ROUNDS times each: memhog touches
  512 MiB and exits; the Rss of QEMU's guest-RAM mapping (host smaps,
  harness/host.py) is polled from the hog's exit: seconds until 90 % of
  the 512 MiB is back with the host, and MiB back once the Rss stood
  still for 3 s.  As in tests/vm/test_reporting.py, when the Rss stood
  still for a reporting delay and a second more short of 90 % (the 6.1
  page allocator may schedule no further pass), memhog frees 8 MiB more
  to start one; the rows count these nudges.
* free page hinting (QEMU `free-page-hint=on` with an iothread): one
  1 GiB guest, FREE_ROUNDS times: for vballoon with
  free_page_hinting=0 (the control), vballoon and virtio_balloon, memhog
  touches 512 MiB and exits, then the guest is migrated to
  `exec:cat > /dev/null` at 32 MiB/s (harness.migration, as
  tests/vm/test_hinting.py): `query-migrate` ram.normal-bytes, and the
  bytes saved against the same round's control.

Writes results.csv, thp.csv, reporting.csv, hinting.csv, summary.csv,
series.csv, reporting_series.csv, actual.png and reporting.png
(gnuplot), each for the parts that ran, and prints a table; the results
directory is printed at the end.
"""

import argparse
import csv
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "vm"))

from harness import host, migration  # noqa: E402
from harness.console import find_bad_lines  # noqa: E402
from harness.errors import WaitTimeout  # noqa: E402
from harness.kernels import find_kernel  # noqa: E402
from harness.units import MiB  # noqa: E402
from harness.vm import make_vm  # noqa: E402
from harness.workloads import finish_hog, start_hog  # noqa: E402

DRIVERS = ("vballoon", "virtio_balloon")
PARTS = ("speed", "thp", "reporting", "hinting")

# free page reporting and hinting: the figures of tests/vm/test_reporting.py
# and test_hinting.py, measured rather than judged
FREE_MIB = 512              # what memhog touches, then frees
REPORT_GUEST_MIB = 2048
HINT_GUEST_MIB = 1024
SHARE = 0.9                 # "time to return 90 %"
REPORT_DELAY_S = 2          # mm/page_reporting.c: PAGE_REPORTING_DELAY
STILL_S = 3                 # Rss still this long: reporting is over
HINT_BANDWIDTH = 32 * MiB   # see test_hinting.py's docstring


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


guest_ram_rss = host.guest_ram_rss


def watch_return(vm, held, t0, label, series, timeout):
    """Poll the guest-RAM Rss from `t0` (the hog's exit): returns (seconds
    to SHARE of FREE_MIB back or nan, MiB back once the Rss stood still
    for STILL_S seconds after that or at `timeout`, nudges)."""
    want = SHARE * FREE_MIB * MiB
    t90 = None
    nudges = 0
    last = {"rss": guest_ram_rss(vm), "since": time.monotonic()}
    while True:
        cur, now = guest_ram_rss(vm), time.monotonic()
        series.append((label, round(now - t0, 2), (held - cur) // MiB))
        if abs(cur - last["rss"]) > 4 * MiB:
            last.update(rss=cur, since=now)
        if t90 is None and held - cur >= want:
            t90 = now - t0
        elif t90 is None and now - last["since"] > REPORT_DELAY_S + 1:
            # see test_reporting.py's nudge(): start a reporting pass
            vm.check("memhog -N 8 >/dev/null")
            nudges += 1
            last["since"] = time.monotonic()
        if t90 is not None and now - last["since"] >= STILL_S:
            break
        if now - t0 > timeout:
            break
        time.sleep(0.1)
    return (t90 if t90 is not None else float("nan"),
            (held - guest_ram_rss(vm)) // MiB, nudges)


def reporting(kernel, args, rep_rows, rep_series):
    with make_vm(kernel, mem_mib=REPORT_GUEST_MIB, smp=2,
                 deflate_on_oom=False,
                 balloon_props={"free-page-reporting": "on"},
                 name="bench-rep-%s" % kernel.series,
                 append=args.append) as vm:
        for r in range(1, args.free_rounds + 1):
            for drv in (DRIVERS if r % 2 else DRIVERS[::-1]):
                dev = vm.load(drv)
                host.wait_rss_still(vm, STILL_S)
                start_hog(vm, FREE_MIB)
                st0 = vb_status(vm, drv, dev)
                held = guest_ram_rss(vm)
                t0 = time.monotonic()
                rc, out = finish_hog(vm)
                if rc:
                    raise WaitTimeout("memhog failed (%d): %s" % (rc, out))
                label = "%s %s r%d" % (kernel.series, drv, r)
                t90, back, nudges = watch_return(vm, held, t0, label,
                                                 rep_series,
                                                 args.report_timeout)
                st1 = vb_status(vm, drv, dev)
                vm.unload(drv)
                reported = ((st1["reported_bytes"] - st0["reported_bytes"])
                            // MiB if st1 else "")
                reports = st1["reports"] - st0["reports"] if st1 else ""
                rep_rows.append(dict(kernel=kernel.release, driver=drv,
                                     round=r, freed_mib=FREE_MIB,
                                     t90_s=round(t90, 2), returned_mib=back,
                                     nudges=nudges, reports=reports,
                                     reported_mib=reported))
                print("  %-6s %-15s reporting round %d: 90 %% of %d MiB "
                      "back in %.1f s, %d MiB back in all, %d nudges%s" % (
                          kernel.series, drv, r, FREE_MIB, t90, back, nudges,
                          " [%d reports, %s MiB reported]" % (
                              reports, reported) if st1 else ""),
                      flush=True)
        bad = bad_console(vm)
        if bad:
            print("  WARNING: console complaints:\n    " + "\n    ".join(bad))


def hinting(kernel, args, hint_rows):
    modes = (("off", "vballoon", "free_page_hinting=0"),
             ("vballoon", "vballoon", ""),
             ("virtio_balloon", "virtio_balloon", ""))
    with make_vm(kernel, mem_mib=HINT_GUEST_MIB, smp=2,
                 deflate_on_oom=False, objects=("iothread,id=iot0",),
                 balloon_props={"free-page-hint": "on", "iothread": "iot0"},
                 name="bench-hint-%s" % kernel.series,
                 append=args.append) as vm:
        for r in range(1, args.free_rounds + 1):
            # the control first, then the drivers alternating
            order = modes if r % 2 else modes[:1] + modes[:0:-1]
            off = None
            for mode, drv, params in order:
                dev = vm.load(drv, params)
                st0 = vb_status(vm, drv, dev)
                vm.check("memhog %d >/dev/null" % FREE_MIB, timeout=300)
                before = vm.free_bytes()
                t0 = time.monotonic()
                q = migration.migrate(vm, bytes_per_s=HINT_BANDWIDTH,
                                      timeout=300)
                secs = time.monotonic() - t0
                normal = q["ram"]["normal-bytes"] // MiB
                if mode == "off":
                    off = normal
                # hinted memory free again (DONE) before the next one
                back = {"s": float("nan")}

                def free_again():
                    if drv == "vballoon" and vm.vballoon_status(dev)[
                            "hint_held_pages"]:
                        return False
                    if vm.free_bytes() < before - 32 * MiB:
                        return False
                    back["s"] = time.monotonic() - t0 - secs
                    return True
                try:
                    vm.wait_until(free_again, 60, 0.5,
                                  "hinted memory free again")
                except WaitTimeout as exc:
                    print("  WARNING: %s" % exc)
                st1 = vb_status(vm, drv, dev)
                vm.unload(drv)
                hinted = ((st1["hinted_bytes"] - st0["hinted_bytes"]) // MiB
                          if st1 else "")
                saved = off - normal if mode != "off" else ""
                hint_rows.append(dict(kernel=kernel.release, mode=mode,
                                      round=r, normal_mib=normal,
                                      saved_mib=saved,
                                      transferred_mib=q["ram"][
                                          "transferred"] // MiB,
                                      migrate_s=round(secs, 1),
                                      free_again_s=round(back["s"], 1),
                                      hinted_mib=hinted))
                print("  %-6s %-15s hinting round %d: %d MiB sent as normal "
                      "pages in %.0f s%s%s" % (
                          kernel.series, mode, r, normal, secs,
                          "" if mode == "off" else ", saved %d MiB" % saved,
                          " [%s MiB hinted]" % hinted if hinted != "" and
                          mode != "off" else ""), flush=True)
        bad = bad_console(vm)
        if bad:
            print("  WARNING: console complaints:\n    " + "\n    ".join(bad))


def med(rows, kernel, drv, key, field="driver"):
    v = [r[key] for r in rows if r["kernel"] == kernel and r[field] == drv
         and r[key] != ""]
    return statistics.median(v) if v else float("nan")


def report(rows, thp_rows, out, rep_rows=(), hint_rows=()):
    kernels = sorted({r["kernel"] for r in rows} |
                     {r["kernel"] for r in thp_rows} |
                     {r["kernel"] for r in rep_rows} |
                     {r["kernel"] for r in hint_rows})
    lines = []
    hdr = ("%-22s %-10s %9s %9s %9s %9s" %
           ("kernel", "metric", "vballoon", "virtio_b", "ratio", "goal"))
    lines += [hdr, "-" * len(hdr)]
    summary = []

    def row(k, key, what, a, b, goal, fmt="%9.2f"):
        ratio = a / b if b else float("nan")
        lines.append(("%-22s %-10s " + fmt + " " + fmt + " %9.2f %9s") %
                     (k, what, a, b, ratio, goal))
        summary.append(dict(kernel=k, metric=key, vballoon=a,
                            virtio_balloon=b, ratio=ratio))
    for k in kernels:
        if any(r["kernel"] == k for r in rows):
            for key, what, goal in (("inflate_s", "inflate s", "<=0.5"),
                                    ("deflate_s", "deflate s", "<=0.5"),
                                    ("inflate_cpu_s", "infl cpu", "<=0.5"),
                                    ("deflate_cpu_s", "defl cpu", "")):
                row(k, key, what, med(rows, k, "vballoon", key),
                    med(rows, k, "virtio_balloon", key), goal)
        t = {r["driver"]: r for r in thp_rows if r["kernel"] == k}
        if len(t) == 2:
            a = t["vballoon"]["thp_inflated_mib"]
            b = t["virtio_balloon"]["thp_inflated_mib"]
            ratio = a / b if b else float("inf")
            lines.append("%-22s %-10s %9d %9d %9.2f %9s" %
                         (k, "THP MiB", a, b, ratio, ">=3"))
            summary.append(dict(kernel=k, metric="thp_after_inflate_mib",
                                vballoon=a, virtio_balloon=b, ratio=ratio))
        if any(r["kernel"] == k for r in rep_rows):
            # seconds until 90 % of the 512 MiB freed is back with the
            # host (issue 12: within 10 s), and MiB back in all
            row(k, "report_90pct_s", "report s",
                med(rep_rows, k, "vballoon", "t90_s"),
                med(rep_rows, k, "virtio_balloon", "t90_s"), "<=10")
            row(k, "report_returned_mib", "report MiB",
                med(rep_rows, k, "vballoon", "returned_mib"),
                med(rep_rows, k, "virtio_balloon", "returned_mib"),
                ">=%d" % math.ceil(SHARE * FREE_MIB), "%9.0f")
        if any(r["kernel"] == k for r in hint_rows):
            # ram.normal-bytes of a migration after 512 MiB were freed;
            # saved: against the same round's control (issue 12: >= 256)
            off = med(hint_rows, k, "off", "normal_mib", "mode")
            lines.append("%-22s %-10s %9.0f %9s %9s %9s" %
                         (k, "nohint MiB", off, "-", "-", ""))
            summary.append(dict(kernel=k, metric="hint_off_sent_mib",
                                vballoon=off, virtio_balloon="",
                                ratio=""))
            row(k, "hint_sent_mib", "hint MiB",
                med(hint_rows, k, "vballoon", "normal_mib", "mode"),
                med(hint_rows, k, "virtio_balloon", "normal_mib", "mode"),
                "", "%9.0f")
            row(k, "hint_saved_mib", "saved MiB",
                med(hint_rows, k, "vballoon", "saved_mib", "mode"),
                med(hint_rows, k, "virtio_balloon", "saved_mib", "mode"),
                ">=256", "%9.0f")
    text = "\n".join(lines)
    (out / "table.txt").write_text(text + "\n")
    if summary:
        with open(out / "summary.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(summary[0]))
            w.writeheader()
            w.writerows(summary)
    return text


def write_csv(path, rows):
    """`rows` (dicts) as a CSV at `path`; returns its name, or None when
    there is nothing to write."""
    if not rows:
        return None
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path.name


def gnuplot(script):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("bench: gnuplot failed (%s); no plot" % e)
        return False
    return True


def plot_reporting(series, out):
    """MiB back with the host against seconds since the hog's exit, round
    1 of each kernel and driver (reporting.png)."""
    runs = []
    for row in series:
        if row[0].endswith(" r1") and row[0] not in runs:
            runs.append(row[0])
    if not runs:
        return None
    plots = gnuplot_blocks(out / "reporting_series.dat", runs, series)
    script = ("set terminal pngcairo size 1100,700 noenhanced\n"
              "set output '%s'\n"
              "set title 'free page reporting: %d MiB freed, MiB back with "
              "the host (guest-RAM Rss), round 1'\n"
              "set xlabel 'seconds since the program exited'\n"
              "set ylabel 'MiB back'\nset key outside right\n"
              "set arrow from graph 0, first %d to graph 1, first %d nohead "
              "dt 2\nset grid\nplot %s\n" % (
                  out / "reporting.png", FREE_MIB, SHARE * FREE_MIB,
                  SHARE * FREE_MIB, plots))
    return out / "reporting.png" if gnuplot(script) else None


def gnuplot_blocks(dat, runs, series):
    """Write the (label, x, y) rows of `series` to `dat`, one data block
    per label of `runs`; returns gnuplot's plot list for them."""
    with open(dat, "w") as fh:
        for lb in runs:
            fh.write("# %s\n" % lb)
            for row in series:
                if row[0] == lb:
                    fh.write("%s %s\n" % (row[1], row[2]))
            fh.write("\n\n")
    return ", ".join("'%s' index %d with lines lw 2 title '%s'" %
                     (dat, i, lb) for i, lb in enumerate(runs))


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
    plots = gnuplot_blocks(out / "series.dat", runs, series)
    script = ("set terminal pngcairo size 1100,700 noenhanced\n"
              "set output '%s'\n"
              "set title 'balloon actual (guest RAM) after a 2 GiB target "
              "change, round 1'\n"
              "set xlabel 'seconds since QMP balloon'\n"
              "set ylabel 'actual, MiB'\nset key outside right\n"
              "set grid\nplot %s\n" % (out / "actual.png", plots))
    if not runs:
        return None
    return out / "actual.png" if gnuplot(script) else None


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
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="what to measure, of %s (default: all)" %
                    ",".join(PARTS))
    ap.add_argument("--no-thp", action="store_true",
                    help="leave the THP part out (as --parts without thp)")
    ap.add_argument("--no-reporting", action="store_true",
                    help="leave free page reporting out")
    ap.add_argument("--no-hinting", action="store_true",
                    help="leave free page hinting out")
    ap.add_argument("--free-rounds", type=int, default=2,
                    help="rounds of the reporting and hinting parts "
                    "(medians)")
    ap.add_argument("--report-timeout", type=int, default=60,
                    help="seconds a reporting round watches the host")
    ap.add_argument("--append", default="",
                    help="extra guest kernel command line, e.g. "
                    "init_on_alloc=0 to see the cost of page zeroing")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error("unknown part(s) %s: use %s" % (",".join(sorted(unknown)),
                                                 ",".join(PARTS)))
    for p, off in (("thp", args.no_thp), ("reporting", args.no_reporting),
                   ("hinting", args.no_hinting)):
        if off and p in parts:
            parts.remove(p)

    out = Path(args.out or (HERE.parent.parent / "results" /
                            time.strftime("bench-%Y%m%d-%H%M%S")))
    out.mkdir(parents=True, exist_ok=True)
    rows, thp_rows, series = [], [], []
    rep_rows, rep_series, hint_rows = [], [], []
    t0 = time.monotonic()
    for s in args.kernels.split(","):
        kernel = find_kernel(s.strip())
        print("bench: kernel %s" % kernel.release, flush=True)
        if "speed" in parts:
            speed(kernel, args, rows, series)
        if "thp" in parts:
            thp(kernel, args, thp_rows)
        if "reporting" in parts:
            reporting(kernel, args, rep_rows, rep_series)
        if "hinting" in parts:
            hinting(kernel, args, hint_rows)
    files = [write_csv(out / "results.csv", rows),
             write_csv(out / "thp.csv", thp_rows),
             write_csv(out / "reporting.csv", rep_rows),
             write_csv(out / "hinting.csv", hint_rows)]
    if rep_series:
        with open(out / "reporting_series.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["label", "seconds", "returned_mib"])
            w.writerows(rep_series)
        files.append("reporting_series.csv")
    print()
    if rows:
        print("Medians over %d rounds, %d MiB balloon, %d MiB guest%s; "
              "ratio = vballoon / virtio_balloon (same boot)" %
              (args.rounds, args.size, args.mem,
               ", guest cmdline +'%s'" % args.append if args.append else ""))
    if rep_rows or hint_rows:
        print("Reporting (%d MiB guest) and hinting (%d MiB guest, "
              "migration at %d MiB/s): medians over %d rounds of %d MiB "
              "freed" % (REPORT_GUEST_MIB, HINT_GUEST_MIB,
                         HINT_BANDWIDTH // MiB, args.free_rounds, FREE_MIB))
    print(report(rows, thp_rows, out, rep_rows, hint_rows))
    files.append("summary.csv")
    if rows:
        files.append("series.csv")
        if plot(series, out):
            files.append("actual.png")
    if plot_reporting(rep_series, out):
        files.append("reporting.png")
    print()
    print("bench: %.0f s; results in %s (%s)" % (
        time.monotonic() - t0, out, ", ".join(f for f in files if f)))


if __name__ == "__main__":
    main()
