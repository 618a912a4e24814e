# SPDX-License-Identifier: GPL-2.0-only
"""Free page hinting (feature bit 3), judged by what QEMU sends when it
migrates the guest: `query-migrate` ram.normal-bytes.

The module's guest has 1 GiB, an iothread and QEMU's
`free-page-hint=on,iothread=iot0`.  QEMU hints only during a precopy
migration.  Tests 1 and 2 live-migrate the guest to a second QEMU on
this machine (the same command line plus `-incoming defer`, listening
on a unix socket; harness/migration.py to_destination) and go on with
the guest there: the module's `vm` drives the destination from then on,
the source QEMU is quit (VBALLOON_HINT_DESTINATION=discard: to
`exec:cat > /dev/null`, the source guest resumed).

The module's QEMU is bookworm-backports' (10.0 when written; fetched
into the cache by scripts/qemu-backports.sh), not Debian 12's 7.2: under
7.2's TCG a migration with hints brought the guest over corrupted in 9
of 10 runs with vballoon and 5 of 9 with virtio_balloon (list
corruption, oopses in timer and workqueue code as the destination
resumed), and in none of 23 without hints.  With QEMU 10.0 the same
migrations came over intact with both drivers.  QEMU 9.0's 03bfc2188f
("physmem: Fix migration dirty bitmap coherency with TCG memory
access") fixed lost TCG dirty-page updates during migration, which fits;
a hinted block the guest's shrinker gives back and reuses mid-migration
depends on exactly those updates.  VBALLOON_HINT_QEMU=qemu-system-x86_64
runs the system's QEMU instead.  The bandwidth is limited to 32 MiB/s so that hints
arrive before the pages they cover are sent.  At 64 MiB/s (the
reference note's figure; measured with the stream thrown away) the
savings swung between 38 and 374 MiB on this 2-core machine under load
(6 or more): hints reach QEMU at only ~50 MiB/s there (a 1 GiB 6.1
guest hinted 244 MiB in the first 5 s while 293 MiB were sent), so the
scan outran them.  Before each migration the guest writes KEPT_MIB of
random data to a file in its RAM-backed root and takes its sha256 (on
the destination the sum must be the same; then the file goes), and
memhog touches 512 MiB and exits: that memory is free but not zero, so
without hints QEMU sends it.

1. Control: vballoon with free_page_hinting=0 does not accept bit 3 and
   says `hinting off`; the figure it gives is the reference.
2. Hinting (parity): with vballoon QEMU sends at least 256 MiB less RAM
   as normal pages than in the control.  virtio_balloon is measured
   beside it (it must save at least 64 MiB, and vballoon may send at
   most 64 MiB more than it).  With either (and in the control), the
   guest answers on the destination, within 15 s of the migration's
   end (QEMU's DONE, set before the device state goes to the
   destination) its free memory is back to what it was before
   (vballoon: nothing parked, `hinting idle`, counters moved, no round
   ended on a silent host), and the kept data is intact.
3. Shrinker and mid-hint removal (cheap; also on the debug kernel): a
   migration at 2 MiB/s to `exec:cat > /dev/null` (the stream is thrown
   away; these migrations are cancelled and the source guest resumed)
   keeps the guest hinting; once the round ended
   (no free block left) memhog touches 256 MiB: the shrinker gives
   hinted blocks back (hint_shrunk_blocks), memhog succeeds without an
   OOM kill; then vballoon is unloaded while it still holds hinted
   blocks: every block is freed (free memory back) and the migration
   is cancelled.  On the debug kernel KASAN, lockdep and kmemleak watch.

Reference (virtio_balloon, the note in shared/reference): 95-134 MiB
sent with hinting against 596-603 MiB without.
"""

import os
import time

import pytest

from harness import migration
from harness.console import bad_reports, find_bad_lines
from harness.units import MiB, mib
from harness.wait import wait_until

# Where tests 1 and 2 migrate: "qemu" (default), a second QEMU the guest
# goes on in (the goal); "discard", exec:cat, the source resumed.
DESTINATION = os.environ.get("VBALLOON_HINT_DESTINATION", "qemu")
# The QEMU of this module's guests: bookworm-backports' by default (see
# the module text: Debian 12's QEMU 7.2 under TCG corrupts guests that
# migrate with hints); "qemu-system-x86_64" for the system's.
QEMU = os.environ.get("VBALLOON_HINT_QEMU", "backports")

pytestmark = [
    pytest.mark.vm_config(
        "hinting", mem_mib=1024, deflate_on_oom=False, qemu=QEMU,
        objects=("iothread,id=iot0",),
        balloon_props={"free-page-hint": "on", "iothread": "iot0"}),
    # On the debug kernel QEMU's hinting rounds run in test_reporting.py's
    # coexistence test, and unbind while holding blocks, removal mid-round
    # and a silent or late host in test_vbhost.py's hinting scenarios:
    # this module would add its boot and kmemleak scans (~400 s) for one
    # unload the test device already covers.
    pytest.mark.skip_debug("test_vbhost.py (hinting) and test_reporting.py "
                           "(coexistence)"),
]

HOG_MIB = 512
SAVED = 256 * MiB           # issue 12: at least this much less sent
BANDWIDTH = 32 * MiB        # bytes/s; see the module docstring
FREED_S = 15                # issue 12: hinted memory free again within
KEPT_MIB = 64               # random data the guest keeps across a migration
KEPT = "/tmp/kept"          # in the initramfs root: RAM, never free
F_HINT = 3
SHRINK_MIB = 256            # what the guest needs while hints hold its memory
# virtio_balloon is measured, not held to SAVED: it must save this much
# (hints reach QEMU), and vballoon may send at most PARITY_SLACK more
PARITY_FLOOR = 64 * MiB
PARITY_SLACK = 64 * MiB
_sent = {}                  # (kernel, "off" / driver) -> ram.normal-bytes


def feature_bit(vm, dev, bit=F_HINT):
    s = vm.check("cat /sys/bus/virtio/devices/%s/features" % dev).strip()
    return int(s[bit])


def free_bytes(vm):
    return vm.meminfo()["FreeTotal"] * 1024


def fill_and_free(vm):
    """memhog touches HOG_MIB MiB (a pattern, not zeros) and exits;
    returns the guest's free memory afterwards."""
    vm.check("memhog %d >/dev/null" % HOG_MIB, timeout=300)
    return free_bytes(vm)


def console_here(vm):
    """What the guest printed since it arrived in this QEMU."""
    return vm.console_path.read_text(errors="replace")


def kept_sum(vm):
    """sha256 of the kept file, and its size."""
    out = vm.check("sha256sum %s; wc -c < %s" % (KEPT, KEPT), timeout=300)
    return out.split()[0], int(out.split()[-1])


def keep_data(vm):
    """The guest writes KEPT_MIB of random data to KEPT; returns
    kept_sum()."""
    vm.check("head -c %d /dev/urandom > %s" % (KEPT_MIB * MiB, KEPT),
             timeout=300)
    got = kept_sum(vm)
    assert got[1] == KEPT_MIB * MiB, got
    return got


def wait_free_again(vm, before, ended, dev=None):
    """Within FREED_S of the migration's end (`ended`, monotonic) the
    guest's free memory is back (within 32 MiB) to `before`; with
    vballoon (`dev`) nothing stays parked.  Returns the seconds it took
    from `ended`."""
    def back():
        if dev is not None and \
                vm.vballoon_status(dev)["hint_held_pages"] != 0:
            return False
        return free_bytes(vm) >= before - 32 * MiB
    # counted from the end of the migration, not from this call
    wait_until(back, ended + FREED_S * vm.slowdown - time.monotonic(), 0.5,
               "hinted memory free again within %d s of the migration's "
               "end" % FREED_S,
               lambda: "free %s, before migrating %s%s" % (
                   mib(free_bytes(vm)), mib(before),
                   "" if dev is None else ", status %r" %
                   vm.vballoon_status(dev)))
    return time.monotonic() - ended


def migrate_keeping(vm, what, dev=None):
    """Issue 12's migration: the guest keeps KEPT_MIB of random data,
    memhog fills and frees HOG_MIB, then the guest is migrated to a
    second QEMU at BANDWIDTH and goes on there.  On the destination the
    guest answers, its free memory is back within FREED_S of the end
    (vballoon on `dev`: nothing parked) and the kept data is intact.
    Returns ram.normal-bytes, the source's figure."""
    want = keep_data(vm)
    try:
        before = fill_and_free(vm)
        source = vm.log_dir
        if DESTINATION == "qemu":
            mig = migration.to_destination(vm, bytes_per_s=BANDWIDTH,
                                           timeout=120)
            stats, ended = mig.stats, mig.ended
            assert vm.log_dir != source
        else:
            stats = migration.migrate(vm, bytes_per_s=BANDWIDTH,
                                      timeout=120)
            ended = time.monotonic()
        sent = stats["ram"]["normal-bytes"]
        print("\n%s: %s sent as normal pages in %.1f s; the guest runs on "
              "in %s (%s)" % (what, mib(sent), stats["total-time"] / 1000,
                              vm.log_dir, DESTINATION))
        assert vm.check("echo alive").strip() == "alive"
        # a guest whose memory came over wrong often still answers
        bad = find_bad_lines(console_here(vm))
        assert not bad, "the guest on the destination (%s) reports:\n%s" % (
            vm.console_path, bad_reports(console_here(vm)))
        took = wait_free_again(vm, before, ended, dev)
        got = kept_sum(vm)
        print("%s: free again %.1f s after the migration's end; kept %d MiB "
              "%s" % (what, took, KEPT_MIB,
                      "intact" if got == want else "CHANGED"))
        assert got == want, "kept data before the migration %r, on the " \
            "destination %r" % (want, got)
    finally:
        # best effort: what failed first is what the test reports
        if vm.alive():
            try:
                vm.run("rm -f %s" % KEPT, timeout=30)
            except Exception:
                pass
    return sent


def control(vm):
    """ram.normal-bytes with vballoon's free_page_hinting=0 (measured
    once per boot)."""
    key = (vm.kernel.release, "off")
    if key not in _sent:
        dev = vm.load("vballoon", "free_page_hinting=0")
        assert feature_bit(vm, dev) == 0
        st = vm.vballoon_status(dev)
        assert st["hinting"] == "off", st
        _sent[key] = migrate_keeping(vm, "hinting off", dev)
        assert vm.vballoon_status(dev)["hint_cmd_ids"] == 0
        vm.unload("vballoon")
    return _sent[key]


@pytest.mark.skip_debug("test_hinting.py::test_unbind_mid_hint")
def test_control_without_hinting(vm):
    off = control(vm)
    print("\nhinting off (vballoon free_page_hinting=0): %s sent as "
          "normal pages" % mib(off))
    assert off >= HOG_MIB * MiB, \
        "only %s sent without hints: memhog's memory was not sent?" % mib(off)


@pytest.mark.parity
@pytest.mark.skip_debug("test_hinting.py::test_unbind_mid_hint")
def test_hinting_saves_migration(vm, driver):
    off = control(vm)
    dev = vm.load(driver)
    assert feature_bit(vm, dev) == 1
    if driver == "vballoon":
        st0 = vm.vballoon_status(dev)
        assert st0["hinting"] == "idle", st0
    # the guest answers on the destination, its memory is free again and
    # the kept data intact (checked in there)
    on = _sent[vm.kernel.release, driver] = migrate_keeping(
        vm, driver, dev if driver == "vballoon" else None)
    print("%s: %s sent as normal pages with hinting, %s without "
          "(saved %s)" % (driver, mib(on), mib(off), mib(off - on)))
    if driver == "vballoon":
        assert off - on >= SAVED, \
            "%s: %s sent with hinting, %s without: saved %s, want %s" % (
                driver, mib(on), mib(off), mib(off - on), mib(SAVED))
    else:
        # measured beside vballoon, not held to the goal: in this harness
        # virtio_balloon saved 196-... MiB (see the admin guide's table)
        assert off - on >= PARITY_FLOOR, \
            "%s saved only %s: do hints reach QEMU at all?" % (
                driver, mib(off - on))
        ours = _sent.get((vm.kernel.release, "vballoon"))
        if ours is not None:
            assert ours <= on + PARITY_SLACK, \
                "vballoon sent %s, %s %s" % (mib(ours), driver, mib(on))
    if driver == "vballoon":
        st = vm.vballoon_status(dev)
        print("vballoon: %d runs, %d ids, %s hinted, %d alloc stops, "
              "%d host stalls, %d freed, %d shrunk" % (
                  st["hint_runs"], st["hint_cmd_ids"],
                  mib(st["hinted_bytes"]), st["hint_alloc_stops"],
                  st["hint_host_stalls"], st["hint_freed_blocks"],
                  st["hint_shrunk_blocks"]))
        assert st["hint_runs"] >= 1 and st["hinted_bytes"] > 0, st
        assert st["hint_host_stalls"] == 0, st
        assert st["hint_freed_blocks"] + st["hint_shrunk_blocks"] == \
            st["hinted_blocks"], st
        assert st["hint_cmd_id"] == 1, st       # DONE
        assert st["hinting"] == "idle", st


def slow_migration_holding(vm, dev, need_held=True):
    """Start a migration slow enough (2 MiB/s) to last the test and wait
    until vballoon holds hinted blocks (`need_held`), or at least until a
    round has hinted some and not ended."""
    migration.start(vm, bytes_per_s=2 * MiB)

    def ready():
        st = vm.vballoon_status(dev)
        if need_held:
            return st["hint_held_pages"] > 0
        return st["hinted_blocks"] > 0 and st["hinting"] in ("hinting",
                                                             "holding")
    vm.wait_until(ready, 60, 0.5, "vballoon to hold hinted blocks",
                  lambda: "status %r, migration %r" % (
                      vm.vballoon_status(dev), migration.status(vm)))


def end_migration(vm):
    if migration.status(vm).get("status") not in migration.ENDED:
        migration.cancel(vm)
    migration.resume(vm)


# On the debug kernel the shrinker gives every hinted block back while
# the round still runs (hinting takes free memory down to the watermarks,
# kswapd wakes and the eager shrinker answers it: 554 of 554 blocks in
# the one run), so the round never reaches "holding" there.  That path
# runs there in test_unbind_mid_hint.
@pytest.mark.skip_debug("the Debian kernels")
def test_shrinker_gives_back(vm):
    dev = vm.load("vballoon")
    try:
        slow_migration_holding(vm, dev)
        # the round ends when no free block is left; the guest then
        # needs memory: the shrinker gives hinted blocks back, no OOM
        vm.wait_until(lambda: vm.vballoon_status(dev)["hinting"] ==
                      "holding", 60, 0.5, "the round of hints to end",
                      lambda: "status %r" % vm.vballoon_status(dev))
        held = vm.vballoon_status(dev)["hint_held_pages"]
        vm.check("memhog %d >/dev/null" % SHRINK_MIB, timeout=300)
        st = vm.vballoon_status(dev)
    finally:
        end_migration(vm)
    print("\nheld %s; memhog %d MiB made the shrinker give back %d blocks"
          % (mib(held * 4096), SHRINK_MIB, st["hint_shrunk_blocks"]))
    assert st["hint_shrunk_blocks"] > 0, st
    assert "oom-kill" not in vm.check("dmesg")


def test_unbind_mid_hint(vm):
    dev = vm.load("vballoon")
    before = free_bytes(vm)
    try:
        # the debug kernel's shrinker may have taken every block back
        # already (see test_shrinker_gives_back): there the unload comes
        # during a round, holding or not
        slow_migration_holding(vm, dev,
                               need_held=not vm.kernel.builtin_vballoon)
        held = vm.vballoon_status(dev)["hint_held_pages"]
        vm.unload("vballoon", timeout=60)
        assert migration.status(vm)["status"] not in migration.ENDED
    finally:
        end_migration(vm)
    print("\nunloaded holding %s of hinted blocks" % mib(held * 4096))
    vm.wait_until(lambda: free_bytes(vm) >= before - 32 * MiB, 30, 0.5,
                  "the hinted blocks free again after unload",
                  lambda: "free %s, before %s" % (mib(free_bytes(vm)),
                                                  mib(before)))
