# SPDX-License-Identifier: GPL-2.0-only
"""vballoon's large batches and 2 MiB blocks (one boot per kernel,
deflate-on-oom=off, so MemTotal counts every ballooned page exactly).

1. Large batches, every page exactly once: with batch_pages at its
   maximum, a walk of targets that are not multiples of a block must be
   met exactly, with the driver's count, QEMU's `actual` and the guest's
   MemTotal agreeing to the page at every step, and the guest must get
   every page back at the end (a page returned twice would be a double
   free, which the kernel reports; one never returned stays out of
   MemTotal).  QEMU traces the walk (virtqueue_pop and
   virtio_balloon_handle_output): the host must have received as many
   frames and descriptors as the driver counts, no frame inflated twice
   while in the balloon or deflated without being in it, none left at
   the end, no descriptor above 256 frames (Firecracker's limit, and
   what Linux has always sent), and full batches of 32768 frames behind
   one kick.
2. Fragmented guest: when free memory is scattered single pages, the
   driver falls back from 2 MiB blocks to small allocations and still
   reaches the target, without an OOM kill or an allocation-failure
   warning.
3. Parallel allocation: an idle guest shares a large inflation between
   its two CPUs (alloc_parallel_rounds, alloc_helper_pages) and meets
   the target exactly; beside a program holding most of the memory an
   inflation of nearly all that is free still reaches its target with
   no OOM kill and no allocation-failure warning.
"""

import time

import pytest

from harness import host
from harness.console import OOM_PATTERNS
from harness.units import PAGE_SIZE, MiB, mib
from harness.workloads import start_victim, wait_victim_exit

# Not on the debug kernel: the 32768-page batches run under the
# sanitizers in test_oom_on.py (test_oom_notifier_never_waits_for_a_batch);
# this module's evidence is QEMU's trace, the same on any kernel.
pytestmark = [
    pytest.mark.vm_config("batch", deflate_on_oom=False, trace=True),
    pytest.mark.skip_debug("the Debian kernels"),
]

# The driver's upper limit of batch_pages (VB_BATCH_MAX in core.h).
BATCH_MAX = 32768
BLOCK_PAGES = 512
# balloon frames (4 KiB, VIRTIO_BALLOON_PFN_SHIFT) per guest page
FRAMES_PER_PAGE = PAGE_SIZE >> host.FRAME_SHIFT
ALLOC_FAILURE = "page allocation failure"


def _consistent(vm, dev, total0_kb, base, pages):
    """The driver, QEMU and MemTotal all say the balloon holds `pages`."""
    st = vm.vballoon_status(dev)
    actual = vm.query_balloon()
    total_kb = vm.meminfo()["MemTotal"]
    inflated = st["inflated_pages"] - base["inflated_pages"]
    deflated = st["deflated_pages"] - base["deflated_pages"]
    views = {
        "debugfs balloon_pages": st["balloon_pages"],
        "QEMU (RAM - actual) / page": (vm.ram_bytes - actual) // PAGE_SIZE,
        "MemTotal drop / page": (total0_kb - total_kb) * 1024 // PAGE_SIZE,
        "inflated - deflated pages": inflated - deflated,
    }
    wrong = {k: v for k, v in views.items() if v != pages}
    assert not wrong, "balloon of %d pages, but %s (status: %s)" % (
        pages, wrong, st)
    return st


def _assert_survived(vm, mark, prog, what):
    """`prog` still runs, and since console offset `mark` the guest has
    logged no OOM kill and no allocation-failure warning."""
    rc, out = vm.run("pidof %s" % prog)
    assert rc == 0 and out.strip(), "%s is gone (OOM-killed?)" % prog
    text = vm.console()[mark:] + vm.dmesg()
    bad = [ln for ln in text.splitlines()
           if ALLOC_FAILURE in ln or any(p in ln for p in OOM_PATTERNS)]
    assert not bad, "%s:\n%s" % (what, "\n".join(bad))


def test_large_batches_every_page_once(vm):
    dev = vm.load("vballoon", "batch_pages=%d" % BATCH_MAX)
    base = vm.vballoon_status(dev)
    assert base["batch_pages"] == BATCH_MAX, base
    mi = vm.meminfo()
    total0_kb, free0 = mi["MemTotal"], mi["FreeTotal"] * 1024
    # odd page counts: blocks, then partial blocks, then single pages;
    # up and down, crossing several batches each way
    walk = [700 * MiB + 3 * PAGE_SIZE, 250 * MiB + 511 * PAGE_SIZE,
            1000 * MiB + 1 * PAGE_SIZE, 5 * PAGE_SIZE,
            384 * MiB + 77 * PAGE_SIZE, 0]
    offset = vm.trace_events(host.TRACE_EVENTS)
    t0 = time.monotonic()
    try:
        for size in walk:
            vm.set_balloon_size(size)
            vm.wait_balloon(size)
            st = _consistent(vm, dev, total0_kb, base, size // PAGE_SIZE)
    finally:
        vm.trace_events(host.TRACE_EVENTS, enable=False)
    walk_s = time.monotonic() - t0
    inflated = st["inflated_pages"] - base["inflated_pages"]
    deflated = st["deflated_pages"] - base["deflated_pages"]
    requests = st["requests"] - base["requests"]
    descs = st["descriptors"] - base["descriptors"]
    text = vm.read_trace(offset)
    reqs = host.parse_balloon_trace(text)
    book = host.FrameBook().apply(reqs)
    # Frames per descriptor as the host popped them, and per kick: a
    # batch is many descriptors of at most 256 frames behind one kick.
    per_desc = [n for _, n in host.group_frames(reqs, by="request")]
    per = [n for _, n in host.group_frames(reqs, by="kick")]
    print("BATCH-RESULT walk %.1f s traced (%d MiB of trace); host got "
          "%d descriptors (largest %d frames) in %d kicks: %d frames "
          "inflated, %d deflated, %.0f per kick (largest %d); driver: %d "
          "requests, %d descriptors, %d pages in, %d out, %d blocks" % (
              walk_s, len(text) >> 20, len(reqs), max(per_desc or [0]),
              len(per), book.inflated, book.deflated,
              sum(per) / max(1, len(per)), max(per or [0]),
              requests, descs, inflated, deflated,
              st["inflated_blocks"] - base["inflated_blocks"]))
    assert book.nerrors == 0, "the host's view of the balloon frames " \
        "(%d errors; trace %s):\n%s" % (book.nerrors, vm.trace_path,
                                       "\n".join(book.errors))
    assert (book.inflated, book.deflated, len(reqs)) == (
        inflated * FRAMES_PER_PAGE, deflated * FRAMES_PER_PAGE, descs), \
        "host received %d frames inflated, %d deflated in %d descriptors; " \
        "the driver counts %d pages in, %d out in %d descriptors" % (
            book.inflated, book.deflated, len(reqs), inflated, deflated,
            descs)
    assert max(per_desc) <= 256, \
        "a descriptor of %d frames reached the host: Firecracker drops " \
        "any above 256 and never answers" % max(per_desc)
    assert not book.held, "balloon 0, but the host still holds %d " \
        "frames, e.g. %s" % (len(book.held), sorted(book.held)[:5])
    # upstream kicks for every 256 pages; full batches behind one kick here
    assert max(per) == BATCH_MAX * FRAMES_PER_PAGE and \
        sum(per) / len(per) > 256, \
        "host received at most %d frames per kick, %.0f on average: " \
        "batches no larger than upstream's 256" % (
            max(per), sum(per) / len(per))
    # ~60 MiB: kept in the VM's log directory only when the test fails
    vm.trace_path.write_bytes(b"")
    vm.wait_meminfo("FreeTotal", free0,
                           "free memory back after the walk")


# the allocation fallback is plain page-allocator use; under KASAN the
# fragmenter alone takes minutes
@pytest.mark.skip_debug("the Debian kernels")
def test_fragmented_guest_falls_back_to_small_pages(vm):
    dev = vm.load("vballoon")
    base = vm.vballoon_status(dev)
    assert base["huge_blocks"] == 1, base
    mi = vm.meminfo()
    total0_kb, free_mib = mi["MemTotal"], mi["MemFree"] * 1024 // MiB
    # Scatter free memory: frag keeps every other 4 KiB page of
    # free - 300 MiB, so at most ~300 MiB stays free in blocks.
    frag_mib = free_mib - 300
    assert frag_mib > 400, "guest has only %d MiB free" % free_mib
    mark = len(vm.console())
    # Proactive compaction (kcompactd, on by default) would rebuild 2 MiB
    # blocks behind frag's back and hide the fallback path.
    proactive = vm.run("cat /proc/sys/vm/compaction_proactiveness")[1].strip()
    if proactive.isdigit():
        vm.check("echo 0 > /proc/sys/vm/compaction_proactiveness")
    # frag is the OOM killer's favourite (the agent is protected), so a
    # mistake here kills frag instead of panicking the guest
    start_victim(vm, "frag", "%d 2" % frag_mib,
                 "grep -q ready /tmp/frag.out", 900,
                 "frag to finish fragmenting")
    log = vm.run("cat /tmp/frag.out")[1]
    assert "ready" in log, "frag failed: %s" % log
    free_after = vm.meminfo()["FreeTotal"] * 1024
    assert free_after >= (free_mib - frag_mib // 2 - 100) * MiB, \
        "frag gave back too little: %s free after it (%s)" % (
            mib(free_after), log.strip())
    # More than the free memory left in blocks: at least frag_mib / 4 of
    # it has to come from the scattered pages.
    size = (300 + frag_mib // 4) * MiB
    vm.set_balloon_size(size)
    vm.wait_balloon(size)
    st = _consistent(vm, dev, total0_kb, base, size // PAGE_SIZE)
    inflated = st["inflated_pages"] - base["inflated_pages"]
    blocks = st["inflated_blocks"] - base["inflated_blocks"]
    small = inflated - blocks * BLOCK_PAGES
    print("BATCH-RESULT fragmented: %d MiB ballooned, %d MiB in 2 MiB "
          "blocks, %d MiB in smaller pieces, %d requests, %d short "
          "rounds, %d pages migrated" % (
              inflated * PAGE_SIZE // MiB, blocks * 2,
              small * PAGE_SIZE // MiB, st["requests"] - base["requests"],
              st["alloc_shortfalls"] - base["alloc_shortfalls"],
              st["migrated_pages"] - base["migrated_pages"]))
    assert small * PAGE_SIZE >= 64 * MiB, \
        "only %d pages of %d came from below 2 MiB blocks: the fallback " \
        "was not exercised" % (small, inflated)
    _assert_survived(vm, mark, "frag", "while inflating a fragmented guest")
    vm.check("kill $(pidof frag)")
    wait_victim_exit(vm, "frag")
    vm.set_balloon_size(0)
    vm.wait_balloon(0)
    _consistent(vm, dev, total0_kb, base, 0)
    if proactive.isdigit():
        vm.check("echo %s > /proc/sys/vm/compaction_proactiveness" %
                 proactive)



@pytest.mark.skip_debug("the Debian kernels")
def test_parallel_allocation_under_pressure(vm):
    """Parallel allocation (alloc_cpus=2 on the 2-vCPU guest): an idle
    guest shares a large inflation between its CPUs and reaches the
    target exactly; beside a program holding most of the memory, an
    inflation that takes nearly all that is left still reaches its
    target without an OOM kill or an allocation-failure warning, and the
    program keeps its memory."""
    dev = vm.load("vballoon", "alloc_cpus=2")
    base = vm.vballoon_status(dev)
    assert base["alloc_cpus"] == 2, base
    total0_kb = vm.meminfo()["MemTotal"]
    mark = len(vm.console())

    # Idle: shared between the CPUs, exact.
    size = 768 * MiB
    vm.set_balloon_size(size)
    vm.wait_balloon(size)
    st = _consistent(vm, dev, total0_kb, base, size // PAGE_SIZE)
    rounds = st["alloc_parallel_rounds"] - base["alloc_parallel_rounds"]
    helped = st["alloc_helper_pages"] - base["alloc_helper_pages"]
    print("BATCH-RESULT parallel: %d MiB, %d of %d batches shared, %d MiB "
          "by the helper, %.2f s allocating, %.2f s waiting for the host" % (
              size // MiB, rounds, st["requests"] - base["requests"],
              helped * PAGE_SIZE // MiB,
              (st["alloc_us"] - base["alloc_us"]) / 1e6,
              (st["inflate_host_us"] - base["inflate_host_us"]) / 1e6))
    assert rounds > 0 and helped > 0, \
        "an idle 2-vCPU guest inflated %d MiB on one CPU: %s" % (
            size // MiB, st)
    vm.set_balloon_size(0)
    vm.wait_balloon(0)
    # Deflation's split: the guest's part (off the list, freed) and the
    # host's, both accounted.
    st = vm.vballoon_status(dev)
    free_us = st["deflate_free_us"] - base["deflate_free_us"]
    host_us = st["deflate_host_us"] - base["deflate_host_us"]
    print("BATCH-RESULT deflate: %d MiB, %.2f s taking pages off the list "
          "and freeing them, %.2f s waiting for the host" % (
              size // MiB, free_us / 1e6, host_us / 1e6))
    assert free_us > 0, "deflate_free_us did not move: %s" % st

    # Pressure: a program holds all but ~600 MiB, and the balloon takes
    # all of that but 150 MiB (the driver shares batches only while free
    # memory covers them twice over, then goes on alone).
    hold_mib = vm.meminfo()["MemAvailable"] // 1024 - 600
    start_victim(vm, "memhog", "-r /tmp/memhog.ready -H 600 %d" % hold_mib,
                 "test -e /tmp/memhog.ready", 900,
                 "memhog %d to touch its memory" % hold_mib)
    free_mib = vm.meminfo()["MemFree"] // 1024
    before = vm.vballoon_status(dev)
    size = (free_mib - 150) * MiB
    assert size >= 256 * MiB, "only %d MiB free beside memhog" % free_mib
    vm.set_balloon_size(size)
    vm.wait_balloon(size)
    st = _consistent(vm, dev, total0_kb, base, size // PAGE_SIZE)
    print("BATCH-RESULT pressure: %d MiB of %d MiB free beside a %d MiB "
          "program: %d batches shared, %d shortfalls" % (
              size // MiB, free_mib, hold_mib,
              st["alloc_parallel_rounds"] - before["alloc_parallel_rounds"],
              st["alloc_shortfalls"] - before["alloc_shortfalls"]))
    _assert_survived(vm, mark, "memhog", "parallel inflation under pressure")
    vm.set_balloon_size(0)
    vm.wait_balloon(0)
    vm.run("killall -USR1 memhog")
    wait_victim_exit(vm, "memhog")
    _consistent(vm, dev, total0_kb, base, 0)
