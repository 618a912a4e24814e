# SPDX-License-Identifier: GPL-2.0-only
"""The balloon as the host sees it, not as the driver reports it.

* smaps: the QEMU process's mapping that backs guest RAM (the anonymous
  mapping of exactly the guest's RAM size) and its Rss / AnonHugePages.
  QEMU 7.2 madvise(MADV_DONTNEED)s every inflated 4 KiB frame, so the
  Rss of that mapping drops by what the balloon took from touched
  memory; a DONTNEED of part of a 2 MiB huge page splits it, so
  AnonHugePages shows how many host huge pages a balloon broke.
* QEMU trace (log backend, `-D file`): the requests the host popped from
  the balloon's inflate and deflate queues and the frames in each, and
  a bookkeeping of which guest frames the host holds.
"""

import re
import time
from collections import namedtuple

from harness.errors import HarnessError

THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"

# Trace events of QEMU 7.2 that show balloon requests: the queue a kick
# is for (n: 0 inflate, 1 deflate, 2 stats), each element popped, each
# frame of it (one line per 4 KiB frame).
TRACE_EVENTS = ("virtio_queue_notify", "virtqueue_pop",
                "virtio_balloon_handle_output")
INFLATE_Q, DEFLATE_Q = 0, 1
FRAME_SHIFT = 12        # VIRTIO_BALLOON_PFN_SHIFT

Mapping = namedtuple("Mapping", "start end name fields")


# -- smaps -------------------------------------------------------------------

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$")
_FIELD = re.compile(r"^(\w+):\s+(\d+) kB$")


def parse_smaps(text):
    """/proc/PID/smaps as a list of Mapping(start, end, name, {field: kB});
    fields that are not sizes (VmFlags, THPeligible) are left out, except
    THPeligible, kept as an int."""
    maps = []
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            maps.append(Mapping(int(m.group(1), 16), int(m.group(2), 16),
                                m.group(3).strip(), {}))
            continue
        if not maps:
            continue
        m = _FIELD.match(line)
        if m:
            maps[-1].fields[m.group(1)] = int(m.group(2))
        elif line.startswith("THPeligible:"):
            maps[-1].fields["THPeligible"] = int(line.split()[1])
    return maps


def ram_mapping(maps, ram_bytes):
    """The one anonymous mapping of exactly `ram_bytes` (guest RAM)."""
    found = [m for m in maps if m.end - m.start == ram_bytes and not m.name]
    if len(found) != 1:
        raise HarnessError(
            "expected one anonymous mapping of %d MiB (guest RAM) in QEMU's "
            "smaps, found %d: %s" % (ram_bytes >> 20, len(found), [
                "%x-%x %s" % (m.start, m.end, m.name) for m in maps
                if m.end - m.start >= ram_bytes // 2]))
    return found[0]


def guest_ram(pid, ram_bytes):
    """{field: kB} of QEMU's guest RAM mapping (Rss, AnonHugePages, ...)
    from /proc/PID/smaps."""
    with open("/proc/%d/smaps" % pid) as fh:
        return ram_mapping(parse_smaps(fh.read()), ram_bytes).fields


def guest_ram_rss(vm):
    """Bytes resident in the guest-RAM mapping of `vm`'s QEMU."""
    return guest_ram(vm.proc.pid, vm.ram_bytes)["Rss"] * 1024


def wait_rss_still(vm, still_s=3, timeout=60):
    """Wait until the guest-RAM Rss of `vm` has not moved by more than
    4 MiB for `still_s` seconds (a free page reporting pass is over);
    returns it."""
    seen = {"rss": guest_ram_rss(vm), "since": time.monotonic()}

    def still():
        now, cur = time.monotonic(), guest_ram_rss(vm)
        if abs(cur - seen["rss"]) > 4 * 2**20:
            seen.update(rss=cur, since=now)
            return False
        return now - seen["since"] >= still_s
    vm.wait_until(still, timeout, 0.5, "guest-RAM Rss to stay still for "
                  "%d s" % still_s, lambda: "Rss %d MiB" % (
                      seen["rss"] >> 20))
    return seen["rss"]


def host_thp_mode(path=THP_ENABLED):
    """The host's transparent huge page mode: "always", "madvise",
    "never", or None when the kernel has no THP."""
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return None
    m = re.search(r"\[(\w+)\]", text)
    return m.group(1) if m else None


# -- QEMU trace --------------------------------------------------------------

# A request: the queue it was popped from (INFLATE_Q, DEFLATE_Q, ...), the
# kick (counting virtio_queue_notify lines of the balloon device) it
# followed, and its frames (guest physical address >> 12) in order.
Request = namedtuple("Request", "queue kick frames")

# log backend: "[PID@SECS.USECS:]event args" (the prefix with -msg
# timestamp=on only)
_TRACE = re.compile(r"^(?:\d+@[\d.]+:)?(\w+) (.*)$")
_NOTIFY = re.compile(r"vdev (\S+) n (\d+) vq (\S+)")
_POP = re.compile(r"vq (\S+) elem \S+ in_num \d+ out_num \d+")
_FRAME = re.compile(r"section name: (.*) gpa: 0x([0-9a-f]+)$")


def parse_balloon_trace(text):
    """The balloon requests in a QEMU trace of TRACE_EVENTS, in order.

    QEMU 7.2's handle_output pops an element and traces each frame of it
    before popping the next, so the frames after a virtqueue_pop belong to
    that element; the queue comes from the virtio_queue_notify that named
    the element's vq.  Elements of other devices or of the stats queue
    have no frames and are left out; frames of an element whose queue
    was never named raise HarnessError (the trace started mid-request)."""
    queues = {}          # vq pointer -> (vdev, queue index)
    kicks = {}           # vdev -> kicks seen
    requests, cur = [], None
    for line in text.splitlines():
        m = _TRACE.match(line)
        if not m:
            continue
        event, args = m.groups()
        if event == "virtio_queue_notify":
            a = _NOTIFY.match(args)
            if a:
                vdev, n, vq = a.group(1), int(a.group(2)), a.group(3)
                queues[vq] = (vdev, n)
                kicks[vdev] = kicks.get(vdev, 0) + 1
        elif event == "virtqueue_pop":
            a = _POP.match(args)
            if a:
                cur = None
                vq = a.group(1)
                if vq in queues:
                    vdev, n = queues[vq]
                    cur = Request(n, kicks[vdev], [])
                    requests.append(cur)
                else:
                    cur = Request(None, None, [])
                    requests.append(cur)
        elif event == "virtio_balloon_handle_output":
            a = _FRAME.search(args)
            if not a:
                continue
            if cur is None or cur.queue is None:
                raise HarnessError("balloon frame %s traced before the "
                                   "kick naming its queue: %r" % (
                                       a.group(2), line))
            cur.frames.append(int(a.group(2), 16) >> FRAME_SHIFT)
    return [r for r in requests if r.frames]


def group_frames(requests, by="request"):
    """Frames per unit as the host received them, a list of
    (queue, frames): per request (one popped descriptor chain), or per
    kick (every request that followed one notification of the queue).

    Issue 11 caps descriptors at 256 frames for Firecracker; a large batch
    then becomes several requests behind one kick, and "frames per
    request" has to be counted by="kick"."""
    if by == "request":
        return [(r.queue, len(r.frames)) for r in requests]
    if by != "kick":
        raise ValueError("group by 'request' or 'kick', not %r" % by)
    out = []
    for r in requests:
        if out and out[-1][0] == (r.queue, r.kick):
            out[-1][1] += len(r.frames)
        else:
            out.append([(r.queue, r.kick), len(r.frames)])
    return [(key[0], n) for key, n in out]


class FrameBook:
    """Host-side bookkeeping of the frames in the balloon, by guest
    frame number: inflating a frame the host already holds, or deflating
    one it does not hold, is an error."""

    def __init__(self, held=()):
        self.held = set(held)
        self.inflated = 0       # frames received on the inflate queue
        self.deflated = 0
        self.errors = []        # first few errors, as text
        self.nerrors = 0

    def _error(self, text):
        self.nerrors += 1
        if len(self.errors) < 10:
            self.errors.append(text)

    def apply(self, requests, inflate_q=INFLATE_Q, deflate_q=DEFLATE_Q):
        for i, r in enumerate(requests):
            if r.queue == inflate_q:
                for f in r.frames:
                    if f in self.held:
                        self._error("request %d inflates frame %#x, which "
                                    "the host already holds" % (i, f))
                    self.held.add(f)
                self.inflated += len(r.frames)
            elif r.queue == deflate_q:
                for f in r.frames:
                    if f not in self.held:
                        self._error("request %d deflates frame %#x, which "
                                    "the host does not hold" % (i, f))
                    self.held.discard(f)
                self.deflated += len(r.frames)
            else:
                self._error("request %d with %d frames on queue %s" % (
                    i, len(r.frames), r.queue))
        return self
