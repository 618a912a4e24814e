# SPDX-License-Identifier: GPL-2.0-only
"""One QEMU/TCG guest: the process, its QMP socket, the console log and
the command agent on ttyS1 (see virtme-ng's qemu_helpers.py); the pc
machine with virtio-pci devices, or microvm with virtio-mmio ones
(transport="mmio").

ttyS0 (console) goes to console.log in a per-VM log directory; ttyS1 and
QMP are unix sockets on which the harness listens and QEMU connects as a
client, so no byte is lost to a connect race.  QEMU gets
PR_SET_PDEATHSIG, an atexit hook and the context manager, so that no QEMU
outlives the tests.  Balloon-level operations are in harness/vm.py.

A guest can move to a second QEMU by live migration: destination()
makes an unstarted Machine with the same command line plus `-incoming
defer`, its own sockets and a log directory under the first one's;
start_incoming() starts it without waiting for a boot (the agent is
already running in the guest; after the migration its ttyS1 talks to
the destination's agent socket) and lets it listen on incoming_uri;
once the guest runs there, switch_to() makes the source's object drive
the destination's QEMU and quits the source (harness/migration.py does
all of it).
"""

import atexit
import base64
import copy
import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from harness.errors import CommandFailed, HarnessError, QMPError, VMDied
from harness.initramfs import build_helper, build_initramfs
from harness.units import HOST_DIR, MiB, cache_dir

BALLOON_ID = "balloon0"
BALLOON_PATH = "/machine/peripheral/" + BALLOON_ID

# transport="mmio": QEMU's microvm machine, the devices on virtio-mmio.
# Debian's kernels have no VIRTIO_MMIO_CMDLINE_DEVICES, so they find the
# devices in microvm's ACPI tables (DSDT, LNRO0005; microvm's acpi=auto
# is on) once /init loads virtio_mmio; microvm's isa-serial (on by
# default) is ttyS0, the agent gets a second ISA UART (index 1: COM2's
# port 0x2f8 and IRQ 3, ttyS1).
# microvm has no HPET and no ACPI PM timer, and under TCG the PIT
# calibration fails ("tsc: Unable to calibrate against PIT ... No
# reference (HPET/PMTIMER) available"): both Debian kernels then hang
# before the console says more (pit/pic/rtc=on do not help).  Under TCG
# the guest's RDTSC reads the host's TSC, so the kernel is told the
# host's TSC frequency (tsc_early_khz=, measured by host/tsc_khz.c) and
# that the TSC is reliable (no watchdog: there is no other clocksource
# than jiffies).  VBALLOON_MICROVM_OPTS, VBALLOON_MMIO_CMDLINE and
# VBALLOON_TSC_KHZ override these.
MMIO_MACHINE_OPTS = ""
MMIO_CMDLINE = "tsc_early_khz={tsc_khz} tsc=reliable"
TRANSPORTS = ("pci", "mmio")

# Every guest boots with the CPU-vulnerability mitigations off.  Under TCG
# they only cost time: Debian's kernels turn on page-table isolation (a CR3
# switch, which flushes QEMU's software TLB, on every kernel entry and
# exit), retpolines and buffer clearing on return to user space, and none
# of it changes what the balloon does.  Measured on 6.12 (boot, 300
# fork/exec, memhog 1200 MiB, 768 MiB into a tmpfs, twice): 71.6 s of
# QEMU CPU time with them, 60.7 s without.
GUEST_CMDLINE = "console=ttyS0 panic=-1 mitigations=off"

_live_vms = set()
_live_lock = threading.Lock()


def _kill_all_vms():
    with _live_lock:
        vms = list(_live_vms)
    for vm in vms:
        vm.kill()


atexit.register(_kill_all_vms)


_tsc_khz = []


def host_tsc_khz():
    """The host's TSC frequency in kHz (VBALLOON_TSC_KHZ, else measured
    once per process by host/tsc_khz.c)."""
    env = os.environ.get("VBALLOON_TSC_KHZ")
    if env:
        return int(env)
    if not _tsc_khz:
        exe = build_helper(HOST_DIR / "tsc_khz.c")
        out = subprocess.run([str(exe)], check=True, text=True,
                             stdout=subprocess.PIPE).stdout
        _tsc_khz.append(int(out.strip()))
    return _tsc_khz[0]


def _pdeathsig():
    """In the QEMU child: die with SIGKILL when the test process dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _prune_logs(base, keep=60):
    """Keep only the newest `keep` per-VM log directories.  Guests of
    parallel jobs prune the same directory: one may vanish between the
    listing and its stat."""
    dirs = []
    for d in base.iterdir():
        try:
            if d.is_dir():
                dirs.append((d.stat().st_mtime, d))
        except FileNotFoundError:
            continue
    dirs.sort()
    for _, d in dirs[:-keep]:
        shutil.rmtree(d, ignore_errors=True)


def _end_process(proc, qmp_sock, agent_sock, sockdir, quit_timeout=None):
    """End one QEMU: with `quit_timeout`, ask it to quit over QMP and
    give it that long; then SIGKILL it, close the sockets given and
    remove `sockdir` (each of them may be None)."""
    if quit_timeout is not None and proc is not None and \
            proc.poll() is None and qmp_sock is not None:
        try:
            qmp_sock.settimeout(5)
            qmp_sock.sendall(json.dumps({"execute": "quit"}).encode() +
                             b"\n")
        except Exception:
            pass
        try:
            proc.wait(quit_timeout)
        except subprocess.TimeoutExpired:
            pass
    if proc is not None and proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
    for s in (qmp_sock, agent_sock):
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
    if sockdir is not None:
        shutil.rmtree(sockdir, ignore_errors=True)


REPO = Path(__file__).resolve().parents[3]


def backports_qemu():
    """The path of bookworm-backports' newest qemu-system-x86_64, fetched
    and unpacked into the cache by scripts/qemu-backports.sh (`make
    check` runs it first; here it runs if nothing is there yet)."""
    binary = cache_dir() / "qemu-backports" / "current" / "usr" / "bin" / \
        "qemu-system-x86_64"
    if binary.exists():
        return str(binary)
    script = REPO / "scripts" / "qemu-backports.sh"
    res = subprocess.run([str(script), str(cache_dir())],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    if res.returncode != 0:
        raise HarnessError("no QEMU from bookworm-backports: %s failed: %s"
                           % (script, res.stderr.strip()))
    return res.stdout.strip()


class Machine:
    """A QEMU/TCG guest booting `kernel` with the test initramfs and a
    virtio-balloon-pci device (transport="mmio": the microvm machine and
    a virtio-balloon-device on virtio-mmio, same device id; none with
    balloon=False); run(), check() and qmp() talk to it."""

    _seq = itertools.count(1)

    def __init__(self, kernel, mem_mib=2048, smp=2, deflate_on_oom=True,
                 balloon_props=None, append="", name=None, log_dir=None,
                 with_vballoon=True, qemu="qemu-system-x86_64",
                 tcg_thread=None, extra_helpers=(), disk_mib=0, trace=False,
                 transport="pci", balloon=True, objects=()):
        if transport not in TRANSPORTS:
            raise HarnessError("transport %r is not one of %s" % (
                transport, ", ".join(TRANSPORTS)))
        # "pci": the pc machine, virtio-*-pci; "mmio": microvm, virtio-*-device
        self.transport = transport
        self.kernel = kernel
        # False: no QEMU balloon device; the only balloon is one the guest
        # makes itself (tests/vbhost, harness/vbhost.py)
        self.balloon = balloon
        self.mem_mib = mem_mib
        self.ram_bytes = mem_mib * MiB
        self.smp = smp
        self.deflate_on_oom = deflate_on_oom
        self.balloon_props = dict(balloon_props or {})
        # `-object` specs the balloon's properties may name, e.g.
        # "iothread,id=iot0" for free-page-hint=on,iothread=iot0
        self.objects = tuple(objects)
        self.append = append
        self.with_vballoon = with_vballoon
        self.extra_helpers = tuple(extra_helpers)
        # A sparse raw disk of this size on virtio-blk (/dev/vda once the
        # test loads virtio_blk): reading it fills the guest's page cache.
        self.disk_mib = disk_mib
        # QEMU's trace log (log backend, `-D`): events are off until
        # trace_events() turns them on (harness/host.py reads the log)
        self.trace = trace
        # VBALLOON_QEMU: another QEMU binary in place of the default one;
        # "backports": bookworm-backports' QEMU, unpacked in the cache
        # (backports_qemu())
        self.qemu = os.environ.get("VBALLOON_QEMU", qemu) \
            if qemu == "qemu-system-x86_64" else qemu
        if self.qemu == "backports":
            self.qemu = backports_qemu()
        # "single" (round-robin, one host thread) by default: with "multi"
        # (MTTCG) Debian's kernels occasionally die with "Oops: int3" when
        # the kernel patches its own code (static keys) while the other
        # vCPU runs it -- a TCG cross-modifying-code race, not a driver bug.
        self.tcg_thread = tcg_thread or os.environ.get(
            "VBALLOON_TCG_THREAD", "single")
        self.name = name or "vm-%s-oom%s" % (kernel.series,
                                             "on" if deflate_on_oom else "off")
        base = Path(log_dir or os.environ.get("VBALLOON_VM_LOGDIR")
                    or cache_dir() / "logs")
        base.mkdir(parents=True, exist_ok=True)
        _prune_logs(base)
        # the boot's log directory; a destination QEMU's is a
        # subdirectory of it (destination())
        self.boot_log_dir = base / ("%s-%s-%d-%d" % (
            time.strftime("%Y%m%d-%H%M%S"), self.name, os.getpid(),
            next(self._seq)))
        self.boot_log_dir.mkdir(parents=True)
        self._new_process(self.boot_log_dir)
        self._ids = itertools.count(1)
        self.initramfs = None
        self.info = None
        self.boot_seconds = None
        # console files of the QEMUs the guest ran in before it was
        # migrated to this one (console() reads them first)
        self.console_history = []
        # a destination of a live migration (destination()): started
        # with `-incoming defer`, not booted
        self.incoming = False
        self.destinations = 0
        # every timeout of this guest is multiplied by it (debug kernel)
        self.slowdown = float(kernel.slowdown)

    def _new_process(self, log_dir):
        """What belongs to one QEMU process: its log directory, console
        and trace files, socket directory, sockets and buffers."""
        self.log_dir = log_dir
        self.console_path = log_dir / "console.log"
        self.trace_path = log_dir / "trace.log"
        self.sockdir = Path(tempfile.mkdtemp(prefix="vbvm-"))
        self.proc = None
        self.qmp_sock = None
        self.agent_sock = None
        self._qmp_buf = b""
        self._agent_buf = b""
        self._lock = threading.RLock()
        self.qmp_events = []

    # -- lifecycle ---------------------------------------------------------

    def _virtio(self, dev):
        """QEMU's name of virtio device `dev` ("balloon", "blk") on this
        transport."""
        return "virtio-%s-%s" % (dev, "pci" if self.transport == "pci"
                                 else "device")

    def _machine_args(self):
        """Machine, CPU and the extra kernel command line of the
        transport."""
        if self.transport == "pci":
            return ["-cpu", "max"], ""
        opts = os.environ.get("VBALLOON_MICROVM_OPTS", MMIO_MACHINE_OPTS)
        extra = os.environ.get("VBALLOON_MMIO_CMDLINE", MMIO_CMDLINE)
        if "{tsc_khz}" in extra:
            extra = extra.replace("{tsc_khz}", str(host_tsc_khz()))
        return (["-M", "microvm" + ("," + opts if opts else ""),
                 "-cpu", "max"], extra)

    def command_line(self):
        props = {"id": BALLOON_ID,
                 "deflate-on-oom": "on" if self.deflate_on_oom else "off"}
        props.update(self.balloon_props)
        dev = self._virtio("balloon") + "," + ",".join(
            "%s=%s" % kv for kv in props.items())
        machine, extra = self._machine_args()
        append = " ".join(a for a in (GUEST_CMDLINE, extra,
                                      self.kernel.cmdline, self.append) if a)
        # ttyS1, the agent: the pc machine takes a second -serial; microvm
        # makes only its one isa-serial from -serial, the second UART is
        # added as a device at COM2's port and IRQ
        agent = ["-serial", "chardev:agent"] if self.transport == "pci" \
            else ["-device", "isa-serial,index=1,chardev=agent"]
        return [
            self.qemu, "-accel", "tcg,thread=%s" % self.tcg_thread,
        ] + machine + [
            "-m", str(self.mem_mib), "-smp", str(self.smp),
            "-nodefaults", "-nographic", "-no-reboot", "-monitor", "none",
            "-kernel", str(self.kernel.vmlinuz),
            "-initrd", str(self.initramfs),
            "-append", append,
        ] + [a for o in self.objects for a in ("-object", o)] + (
            ["-device", dev] if self.balloon else []) + [
            "-chardev", "file,id=con,path=%s" % self.console_path,
            "-serial", "chardev:con",
            "-chardev", "socket,id=agent,path=%s" % (self.sockdir / "agent"),
        ] + agent + [
            "-chardev", "socket,id=qmp,path=%s" % (self.sockdir / "qmp"),
            "-mon", "chardev=qmp,mode=control",
        ] + self._disk_args() + (["-D", str(self.trace_path)]
                                 if self.trace else []) + (
            ["-incoming", "defer"] if self.incoming else [])

    def _disk_args(self):
        if not self.disk_mib:
            return []
        img = self.sockdir / "disk.raw"
        if not img.exists():
            with open(img, "wb") as fh:
                fh.truncate(self.disk_mib * MiB)
        return ["-drive", "file=%s,if=none,id=disk0,format=raw,cache=unsafe"
                % img, "-device", self._virtio("blk") + ",drive=disk0"]

    def start(self, boot_timeout=600):
        """Build the initramfs, launch QEMU, wait for the agent; then
        after_boot()."""
        if self.incoming:
            raise HarnessError("a migration destination is started with "
                               "start_incoming()")
        self.initramfs, self.info = build_initramfs(
            self.kernel, with_vballoon=self.with_vballoon,
            extra_helpers=self.extra_helpers)
        t0 = self._launch()
        try:
            self._agent_wait(b"@@VBAGENT-READY@@",
                             boot_timeout * self.slowdown, "boot")
            self.boot_seconds = time.monotonic() - t0
            self.ping()
            self.after_boot()
        except BaseException:
            self.kill()
            raise
        return self

    def ping(self):
        """A round trip on the agent channel (it works both ways)."""
        rc, out = self.run("echo ping", timeout=60)
        if rc != 0 or out.strip() != "ping":
            raise HarnessError("agent handshake failed: %r %r" % (rc, out))

    def _launch(self):
        """Launch QEMU with command_line(): accept its agent and QMP
        connections on the sockets the harness listens on, QMP
        handshake.  Returns the monotonic time of the launch; kills QEMU
        if anything fails."""
        listeners = {}
        for n in ("agent", "qmp"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(str(self.sockdir / n))
            s.listen(1)
            s.settimeout(1)
            listeners[n] = s
        cmd = self.command_line()
        (self.log_dir / "cmdline").write_text(" ".join(cmd) + "\n")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL,
            stdout=open(self.log_dir / "qemu.log", "wb"),
            stderr=subprocess.STDOUT, preexec_fn=_pdeathsig,
            start_new_session=True)
        with _live_lock:
            _live_vms.add(self)
        try:
            conns = {}
            for n, s in listeners.items():
                while n not in conns:
                    try:
                        conns[n], _ = s.accept()
                    except socket.timeout:
                        self._check_alive("connecting to QEMU " + n)
                        if time.monotonic() - t0 > 60:
                            raise VMDied("QEMU did not connect its %s socket"
                                         % n)
                s.close()
            self.agent_sock = conns["agent"]
            self.qmp_sock = conns["qmp"]
            self.qmp_sock.settimeout(60)
            greeting = self._qmp_read()
            if "QMP" not in greeting:
                raise HarnessError("unexpected QMP greeting %r" % greeting)
            self.qmp("qmp_capabilities")
        except BaseException:
            for s in listeners.values():
                s.close()
            self.kill()
            raise
        return t0

    # -- live migration to a second QEMU -----------------------------------

    def destination(self):
        """An unstarted Machine (of this class) for the destination of a
        live migration of this running guest: the same command line plus
        `-incoming defer`, its own socket directory and log directory
        (incoming-N under the boot's).  start_incoming() starts it."""
        if self.proc is None or self.initramfs is None:
            raise HarnessError("migrate a started guest")
        if self.disk_mib:
            # the image is in the source's socket directory, which goes
            # when the source does
            raise HarnessError("a guest with a disk cannot be migrated to "
                               "a second QEMU here")
        self.destinations += 1
        dest = copy.copy(self)
        log_dir = self.boot_log_dir / ("incoming-%d" % self.destinations)
        log_dir.mkdir()
        dest._new_process(log_dir)
        dest.incoming = True
        dest.console_history = []
        return dest

    @property
    def incoming_uri(self):
        """Where a destination (destination()) listens for the
        migration stream."""
        return "unix:%s" % (self.sockdir / "mig")

    def start_incoming(self):
        """Start this destination QEMU: no boot (the guest comes with the
        migration), QMP up, then `migrate-incoming` on incoming_uri (QEMU
        listens once that returns).  Kills it if anything fails."""
        if not self.incoming:
            raise HarnessError("start_incoming() starts a destination() "
                               "only")
        self._launch()
        try:
            self.qmp("migrate-incoming", uri=self.incoming_uri)
        except BaseException:
            self.kill()
            raise
        return self

    def switch_to(self, dest):
        """After a completed migration to `dest`, with the guest running
        there: this object drives dest's QEMU from now on (process,
        sockets, log directory, console; console() still begins with the
        source's), and the source QEMU is quit.  `dest` is left empty."""
        with self._lock, _live_lock:
            old = (self.proc, self.qmp_sock, self.agent_sock, self.sockdir)
            self.console_history.append(self.console_path)
            for attr in ("proc", "qmp_sock", "agent_sock", "sockdir",
                         "log_dir", "console_path", "trace_path",
                         "_qmp_buf"):
                setattr(self, attr, getattr(dest, attr))
            self._agent_buf += dest._agent_buf
            self.qmp_events += dest.qmp_events
            dest.proc = dest.qmp_sock = dest.agent_sock = None
            dest.sockdir = None
            _live_vms.discard(dest)
        _end_process(*old, quit_timeout=30)

    def after_boot(self):
        """Hook for variants: runs once the agent answers."""

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self, doing):
        if self.proc is None:
            raise VMDied("VM not started")
        if self.proc.poll() is not None:
            raise VMDied("QEMU exited (rc %s) while %s; console tail:\n%s%s"
                         % (self.proc.returncode, doing, self.console_tail(),
                            self._qemu_log_text()))

    def _qemu_log_text(self):
        try:
            t = (self.log_dir / "qemu.log").read_text(errors="replace").strip()
            return "\nqemu output:\n" + t if t else ""
        except OSError:
            return ""

    def shutdown(self, timeout=30):
        """Quit QEMU (via QMP, SIGKILL as fallback) and clean up."""
        _end_process(self.proc, self.qmp_sock, None, None,
                     quit_timeout=timeout)
        self.kill()

    def kill(self):
        _end_process(self.proc, self.qmp_sock, self.agent_sock,
                     self.sockdir)
        with _live_lock:
            _live_vms.discard(self)

    # -- console -----------------------------------------------------------

    def console(self):
        """Everything the guest printed on ttyS0 so far (after a
        migration: in the QEMUs it ran in before, then in this one)."""
        text = ""
        for path in self.console_history + [self.console_path]:
            try:
                text += path.read_text(errors="replace")
            except FileNotFoundError:
                pass
        return text

    def console_tail(self, lines=40):
        return "\n".join(self.console().splitlines()[-lines:])

    # -- command agent -----------------------------------------------------

    def _agent_recv(self, deadline, doing):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.agent_sock.settimeout(min(remaining, 2.0))
        try:
            chunk = self.agent_sock.recv(65536)
        except socket.timeout:
            self._check_alive(doing)
            return
        if not chunk:
            self._check_alive(doing)
            raise VMDied("agent channel closed while %s" % doing)
        self._agent_buf += chunk

    def _agent_wait(self, marker, timeout, doing):
        deadline = time.monotonic() + timeout
        while marker not in self._agent_buf:
            try:
                self._agent_recv(deadline, doing)
            except socket.timeout:
                raise VMDied("no %r from the guest agent within %d s (%s); "
                             "console tail:\n%s" % (marker, timeout, doing,
                                                    self.console_tail()))
        self._agent_buf = self._agent_buf.split(marker, 1)[1]

    def run(self, cmd, timeout=120):
        """Run a shell snippet in the guest; returns (rc, stdout+stderr).

        The guest kills the command after `timeout` seconds times the
        kernel's slowdown (rc 137); the host waits a little longer than
        that for the answer.
        """
        with self._lock:
            self._check_alive("running %r" % cmd)
            timeout = timeout * self.slowdown
            rid = "%d-%x" % (next(self._ids), int(time.time() * 1000))
            req = "%s %d %s\n" % (rid, max(1, int(timeout)),
                                  base64.b64encode(cmd.encode()).decode())
            self.agent_sock.sendall(req.encode())
            pat = re.compile(rb"@@VBAGENT-BEGIN " + rid.encode() +
                             rb"@@\n(.*?)@@VBAGENT-END " + rid.encode() +
                             rb" (-?\d+)@@\n", re.S)
            deadline = time.monotonic() + timeout + 30
            doing = "running %r" % cmd
            while True:
                m = pat.search(self._agent_buf)
                if m:
                    self._agent_buf = self._agent_buf[m.end():]
                    out = base64.b64decode(b"".join(m.group(1).split()))
                    return int(m.group(2)), out.decode(errors="replace")
                try:
                    self._agent_recv(deadline, doing)
                except socket.timeout:
                    raise VMDied("guest agent did not answer %r within %d s; "
                                 "console tail:\n%s" %
                                 (cmd, timeout + 30, self.console_tail()))

    def check(self, cmd, timeout=120):
        """Like run() but raises CommandFailed if rc != 0; returns output."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise CommandFailed("guest command %r failed with rc %d; "
                                "output:\n%s" % (cmd, rc, out))
        return out

    # -- QEMU trace (trace=True) ------------------------------------------

    def trace_events(self, events, enable=True):
        """Turn QEMU trace events on or off (QMP trace-event-set-state);
        with the log backend their lines go to trace_path.  Returns the
        trace file's size before the change (where new lines start)."""
        if not self.trace:
            raise HarnessError("trace_events() needs Machine(trace=True)")
        size = self.trace_size()
        for ev in events:
            self.qmp("trace-event-set-state", name=ev, enable=enable)
        return size

    def trace_size(self):
        try:
            return self.trace_path.stat().st_size
        except FileNotFoundError:
            return 0

    def read_trace(self, offset=0):
        """The trace log from byte `offset` on."""
        with open(self.trace_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")

    # -- QMP ---------------------------------------------------------------

    def _qmp_send(self, obj):
        self.qmp_sock.sendall(json.dumps(obj).encode() + b"\n")

    def _qmp_read(self):
        while b"\n" not in self._qmp_buf:
            try:
                chunk = self.qmp_sock.recv(65536)
            except socket.timeout:
                self._check_alive("waiting for QMP")
                raise VMDied("QMP did not answer")
            if not chunk:
                self._check_alive("reading QMP")
                raise VMDied("QMP connection closed")
            self._qmp_buf += chunk
        line, self._qmp_buf = self._qmp_buf.split(b"\n", 1)
        return json.loads(line)

    def qmp(self, execute, **args):
        """Execute a QMP command and return its "return" value."""
        with self._lock:
            self._check_alive("sending QMP %s" % execute)
            self.qmp_sock.settimeout(60)
            msg = {"execute": execute}
            if args:
                msg["arguments"] = args
            self._qmp_send(msg)
            while True:
                resp = self._qmp_read()
                if "event" in resp:
                    self.qmp_events.append(resp)
                    continue
                if "error" in resp:
                    raise QMPError("QMP %s %r failed: %s" %
                                   (execute, args, resp["error"]))
                return resp.get("return")
