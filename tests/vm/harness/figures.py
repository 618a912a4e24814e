# SPDX-License-Identifier: GPL-2.0-only
"""Figures a test reports besides pass/fail: counters read from the
guest, and one JSON record per test printed and kept in the VM's log
directory."""

import json


def delta(after, before, *names):
    """{name: after[name] - before[name]} for each of `names`."""
    return {n: after[n] - before[n] for n in names}


def allocstalls(vmstat):
    """Direct-reclaim stalls over all zones, from vm.vmstat()."""
    return sum(v for k, v in vmstat.items() if k.startswith("allocstall"))


def reclaim_scans(vmstat):
    """Pages scanned by reclaim (kswapd and direct), from vm.vmstat()."""
    return vmstat.get("pgscan_kswapd", 0) + vmstat.get("pgscan_direct", 0)


def page_cache(meminfo):
    """Page cache in bytes, from vm.meminfo(); a block device's cache
    counts as Buffers."""
    return (meminfo["Buffers"] + meminfo["Cached"]) * 1024


def record(vm, test, figures, tag, filename):
    """Print the figures as one "`tag` {json}" line and append the JSON
    to `filename` in the VM's log directory; returns the record."""
    rec = {"test": test, "kernel": vm.kernel.release}
    rec.update(figures)
    line = json.dumps(rec, sort_keys=True)
    path = vm.log_dir / filename
    with open(path, "a") as fh:
        fh.write(line + "\n")
    print("%s %s\n(also in %s)" % (tag, line, path))
    return rec
