# SPDX-License-Identifier: GPL-2.0-only
"""QEMU/TCG test harness for the vballoon guest driver.

Pieces:
  * kernel discovery     -- find_kernel("6.1"), find_kernel("6.12")
  * initramfs builder    -- build_initramfs(kernel): busybox, /init, the
                            kernel's virtio + virtio_balloon modules, our
                            vballoon.ko and static test helpers; cached under
                            ${XDG_CACHE_HOME:-~/.cache}/vballoon/ by input hash
  * VM                   -- QEMU launcher with a QMP socket, the console
                            (ttyS0) logged to a file and a command agent on
                            ttyS1 (vm.run / vm.check)
  * wait_until           -- polling helper with a helpful timeout message

Only the Python standard library is used.
"""

import atexit
import base64
import ctypes
import dataclasses
import hashlib
import itertools
import json
import lzma
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from harness.console import (  # noqa: F401 (re-exported)
    BAD_CONSOLE_PATTERNS, EXPECT_BEGIN, EXPECT_END, OOM_PATTERNS,
    bad_reports, find_bad_lines, parse_kmemleak)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
GUEST_DIR = HERE / "guest"

MiB = 1 << 20
GiB = 1 << 30
PAGE_SIZE = 4096

BALLOON_ID = "balloon0"
BALLOON_PATH = "/machine/peripheral/" + BALLOON_ID

# Every stat QEMU 7.2 knows about (hw/virtio/virtio-balloon.c).
QEMU_STATS = (
    "stat-swap-in", "stat-swap-out", "stat-major-faults",
    "stat-minor-faults", "stat-free-memory", "stat-total-memory",
    "stat-available-memory", "stat-disk-caches", "stat-htlb-pgalloc",
    "stat-htlb-pgfail",
)
COUNTER_STATS = (
    "stat-swap-in", "stat-swap-out", "stat-major-faults",
    "stat-minor-faults", "stat-htlb-pgalloc", "stat-htlb-pgfail",
)


# Bump when the initramfs layout changes, to invalidate caches.
INITRAMFS_FORMAT = "vbtest-initramfs-3"

TRANSPORT_MODULES = ("virtio_pci",)   # pulls in virtio, virtio_ring, ...
BALLOON_DRIVERS = ("vballoon", "virtio_balloon")


class HarnessError(Exception):
    """The harness itself cannot do what was asked (missing kernel, ...)."""


class VMDied(HarnessError):
    """QEMU exited or the guest stopped answering."""


class CommandFailed(AssertionError):
    """vm.check(): a guest command returned non-zero."""


class QMPError(HarnessError):
    """QMP returned an error object."""


class WaitTimeout(AssertionError):
    """wait_until() gave up."""


# --------------------------------------------------------------------------
# helpers

def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    d = Path(base) / "vballoon"
    d.mkdir(parents=True, exist_ok=True)
    return d


# Multiplier for every wait_until() timeout: the harness sets it to the
# slowdown of the kernel under test (see Kernel.slowdown, set_timeout_scale)
# so that the safety nets of the scenarios stretch for a debug kernel.
_timeout_scale = 1.0


def set_timeout_scale(scale):
    """Scale all later wait_until() timeouts by `scale`; returns the old
    value."""
    global _timeout_scale
    old, _timeout_scale = _timeout_scale, float(scale)
    return old


def timeout_scale():
    return _timeout_scale


def wait_until(pred, timeout, interval=0.5, what="condition", describe=None):
    """Poll pred() until it returns a truthy value, which is returned.

    Raises WaitTimeout after `timeout` seconds (times the current timeout
    scale, see set_timeout_scale), naming `what`, the last value pred()
    returned (or the exception it raised) and, if given, the text that
    describe() returns at that moment (e.g. the current balloon state).
    """
    timeout = timeout * _timeout_scale
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    last, last_exc = None, None
    while True:
        try:
            last = pred()
            last_exc = None
            if last:
                return last
        except (VMDied, HarnessError):
            raise
        except Exception as exc:  # keep polling, but remember why
            last_exc = exc
        if time.monotonic() >= deadline:
            msg = "timed out after %.0f s waiting for %s; last result: %r" % (
                time.monotonic() - start, what, last)
            if last_exc is not None:
                msg += "; last exception: %r" % (last_exc,)
            if describe is not None:
                try:
                    msg += "; " + str(describe())
                except Exception as exc:
                    msg += "; (describe failed: %r)" % (exc,)
            raise WaitTimeout(msg)
        time.sleep(interval)


def _version_key(release):
    return [int(t) if t.isdigit() else t
            for t in re.findall(r"\d+|[A-Za-z]+", release)]


# --------------------------------------------------------------------------
# kernels and modules

@dataclasses.dataclass(frozen=True)
class Kernel:
    release: str
    vmlinuz: Path
    moddir: Path
    # vballoon is compiled into this kernel (=y): it binds the balloon at
    # boot; "load"/"unload" become bind/unbind (see VM.load_driver)
    builtin_vballoon: bool = False
    # series name when it is not the release's x.y ("debug")
    label: str = ""
    # how many times slower than a distribution kernel (KASAN, lockdep):
    # every harness timeout is multiplied by it
    slowdown: float = 1.0
    # extra kernel command line for every boot of this kernel
    cmdline: str = ""

    @property
    def series(self):
        if self.label:
            return self.label
        return ".".join(self.release.split(".")[:2])

    def vballoon_ko(self):
        """Path where the driver build puts vballoon.ko for this kernel."""
        base = os.environ.get("VBALLOON_BUILD_DIR")
        base = Path(base) if base else REPO_ROOT / "build"
        return base / self.release / "vballoon.ko"


def installed_kernels(boot="/boot"):
    out = []
    for vmlinuz in Path(boot).glob("vmlinuz-*"):
        release = vmlinuz.name[len("vmlinuz-"):]
        moddir = Path("/lib/modules") / release
        if (moddir / "modules.dep").exists():
            out.append(Kernel(release, vmlinuz, moddir))
    return sorted(out, key=lambda k: _version_key(k.release))


DEBUG_SLOWDOWN = 4.0
# Under KASAN + TCG, ACPI's _PRT method (PCI interrupt routing) runs into
# AE_AML_LOOP_TIMEOUT (30 s): "virtio-pci 0000:00:02.0: PCI INT A: no GSI",
# and the balloon (INTx, no MSI-X) never gets an interrupt.  Route PCI
# interrupts from the BIOS tables instead.
DEBUG_CMDLINE = "pci=noacpi"


def debug_kernel_dir():
    d = os.environ.get("VBALLOON_DEBUG_KERNEL_DIR")
    return Path(d) if d else cache_dir() / "debug-kernel"


def find_debug_kernel():
    """The debug kernel `make intree` (scripts/intree.sh build) published:
    6.12 with KASAN, lockdep, kmemleak, ... and vballoon built in."""
    cur = debug_kernel_dir() / "current"
    hint = ("build it with `make intree` (scripts/intree.sh build debug) at "
            "the top of the repository")
    if not cur.exists():
        raise HarnessError("no debug kernel: %s is missing; %s" % (cur, hint))
    kv = dict(l.split("=", 1) for l in cur.read_text().splitlines()
              if "=" in l)
    missing = [k for k in ("RELEASE", "BZIMAGE", "MODDIR") if not kv.get(k)]
    if missing:
        raise HarnessError("%s lacks %s; %s" % (cur, ", ".join(missing), hint))
    vmlinuz, moddir = Path(kv["BZIMAGE"]), Path(kv["MODDIR"])
    for f in (vmlinuz, moddir / "modules.dep"):
        if not f.exists():
            raise HarnessError("debug kernel named by %s is incomplete: %s "
                               "missing; %s" % (cur, f, hint))
    builtin = moddir / "modules.builtin"
    has_vb = builtin.exists() and "vballoon" in {
        _modname(l) for l in builtin.read_text().split()}
    if not has_vb:
        raise HarnessError("debug kernel %s does not have vballoon built in "
                           "(%s); %s" % (kv["RELEASE"], builtin, hint))
    slow = float(os.environ.get("VBALLOON_DEBUG_SLOWDOWN", DEBUG_SLOWDOWN))
    return Kernel(kv["RELEASE"], vmlinuz, moddir, builtin_vballoon=True,
                  label="debug", slowdown=slow,
                  cmdline=os.environ.get("VBALLOON_DEBUG_CMDLINE",
                                         DEBUG_CMDLINE))


def find_kernel(series, boot="/boot"):
    """Newest installed kernel of a series such as "6.1" or "6.12", or the
    debug kernel built by `make intree` for "debug"."""
    if series == "debug":
        return find_debug_kernel()
    cands = [k for k in installed_kernels(boot) if k.series == series]
    if not cands:
        raise HarnessError(
            "no installed %s kernel with modules found (looked for "
            "/boot/vmlinuz-%s.* with /lib/modules/<release>/modules.dep)"
            % (series, series))
    return cands[-1]


def _modname(path):
    name = Path(path).name
    name = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", name)
    return name.replace("-", "_")


def _param_equal(want, got):
    """A module parameter value as written vs. as read back (bools read
    back as Y/N)."""
    if got is None:
        return False
    if want == got:
        return True
    b = {"y": "Y", "1": "Y", "true": "Y", "on": "Y",
         "n": "N", "0": "N", "false": "N", "off": "N"}
    return b.get(want.lower()) is not None and b.get(want.lower()) == got


def _read_module(path):
    path = Path(path)
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], check=True,
                              stdout=subprocess.PIPE).stdout
    if path.name.endswith(".gz"):
        import gzip
        return gzip.decompress(data)
    return data


def modinfo_field(data, field):
    m = re.search(rb"(?:^|\x00)" + field.encode() + rb"=([^\x00]*)\x00", data)
    return m.group(1).decode() if m else None


class ModuleIndex:
    """The kernel's modules.dep / modules.builtin."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.paths = {}   # modname -> absolute path
        self.deps = {}    # modname -> [modname]
        for line in (kernel.moddir / "modules.dep").read_text().splitlines():
            if ":" not in line:
                continue
            mod, deps = line.split(":", 1)
            name = _modname(mod)
            self.paths[name] = kernel.moddir / mod
            self.deps[name] = [_modname(d) for d in deps.split()]
        self.builtin = set()
        bfile = kernel.moddir / "modules.builtin"
        if bfile.exists():
            self.builtin = {_modname(l) for l in bfile.read_text().split()}

    def has(self, name):
        """`name` is built in or available as a module."""
        return name in self.builtin or name in self.paths

    def closure(self, name, extra_deps=None):
        """Modules to insmod for `name`, dependencies first (builtins left
        out).  extra_deps overrides the dependency list of `name`."""
        order, seen = [], set()

        def visit(n, deps=None):
            if n in seen:
                return
            seen.add(n)
            if n in self.builtin and n not in self.paths:
                return
            if deps is None:
                if n not in self.deps:
                    raise HarnessError("module %s is neither in modules.dep "
                                       "nor builtin for %s" %
                                       (n, self.kernel.release))
                deps = self.deps[n]
            for d in deps:
                visit(d)
            order.append(n)

        visit(name, extra_deps)
        return order


# --------------------------------------------------------------------------
# initramfs

class Cpio:
    """Minimal writer for the "newc" cpio format the kernel unpacks."""

    def __init__(self):
        self.buf = bytearray()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join("%08x" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
            rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        self.buf += hdr.encode() + name_b
        self.buf += b"\0" * (-len(self.buf) % 4)
        self.buf += data
        self.buf += b"\0" * (-len(self.buf) % 4)

    def dir(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def finish(self):
        self._entry("TRAILER!!!", 0)
        self.buf += b"\0" * (-len(self.buf) % 512)
        return bytes(self.buf)


HELPERS = ("memhog",)


def build_helper(name):
    """Compile guest/<name>.c (or the C file `name` is a path to)
    statically; cached by source hash."""
    src = Path(name) if str(name).endswith(".c") else GUEST_DIR / (name + ".c")
    name = src.stem
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    out = cache_dir() / "helpers" / ("%s-%s" % (name, digest))
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp%d" % os.getpid())
        res = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o",
                              str(tmp), str(src)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        if res.returncode != 0:
            raise HarnessError("compiling %s failed:\n%s" % (src, res.stdout))
        os.replace(tmp, out)
    return out


# Modules put in the image for tests to load when they need them (a disk
# for page-cache tests); left out quietly where the kernel lacks them.
OPTIONAL_MODULES = ("virtio_blk",)


def build_initramfs(kernel, with_vballoon=True, busybox="/bin/busybox",
                    extra_helpers=()):
    """Build (or reuse from cache) the test initramfs for `kernel`.

    Returns (path, info) where info["vballoon"] tells whether vballoon.ko
    was included (it is left out, not an error, when it has not been built).
    """
    busybox = Path(busybox)
    if not busybox.exists():
        raise HarnessError("%s missing (apt-get install busybox-static)" %
                           busybox)
    idx = ModuleIndex(kernel)
    # (modname -> source file) for everything going into the image
    sources = {}
    plans = {}  # initramfs-visible driver name -> ordered modnames
    for top in TRANSPORT_MODULES + ("virtio_balloon",) + OPTIONAL_MODULES:
        try:
            order = idx.closure(top)
        except HarnessError:
            if top in OPTIONAL_MODULES:
                continue
            raise
        plans[top] = order
        for m in order:
            sources[m] = idx.paths[m]
    vb_ko = kernel.vballoon_ko()
    info = {"kernel": kernel.release, "vballoon": False,
            "vballoon_ko": str(vb_ko),
            "vballoon_builtin": kernel.builtin_vballoon}
    vb_data = None
    if kernel.builtin_vballoon:
        info["vballoon"] = True
        info["vballoon_ko"] = "(built into %s)" % kernel.vmlinuz
    elif with_vballoon and vb_ko.exists():
        vb_data = vb_ko.read_bytes()
        vermagic = modinfo_field(vb_data, "vermagic") or ""
        if vermagic.split(" ")[0] != kernel.release:
            raise HarnessError("%s was built for %r, not %s" %
                               (vb_ko, vermagic, kernel.release))
        deps = [d for d in (modinfo_field(vb_data, "depends") or "").split(",")
                if d]
        order = idx.closure("vballoon", extra_deps=[_modname(d) for d in deps])
        plans["vballoon"] = order
        for m in order:
            if m != "vballoon":
                sources[m] = idx.paths[m]
        info["vballoon"] = True

    helpers = {Path(h).stem: build_helper(h)
               for h in HELPERS + tuple(str(p) for p in extra_helpers)}
    scripts = {n: (GUEST_DIR / n).read_bytes()
               for n in ("init", "vbagent", "modload")}

    h = hashlib.sha256(INITRAMFS_FORMAT.encode())
    h.update(kernel.release.encode())
    for label, data in sorted(
            [("busybox", busybox.read_bytes())]
            + [("mod:" + m, Path(p).read_bytes()) for m, p in sources.items()]
            + [("helper:" + n, p.read_bytes()) for n, p in helpers.items()]
            + [("script:" + n, d) for n, d in scripts.items()]
            + ([("vballoon", vb_data)] if vb_data is not None else [])):
        h.update(label.encode() + b"\0")
        h.update(hashlib.sha256(data).digest())
    h.update(json.dumps(plans, sort_keys=True).encode())
    key = h.hexdigest()[:20]
    out = cache_dir() / "initramfs" / ("%s-%s.cpio" % (kernel.release, key))
    if out.exists():
        return out, info

    c = Cpio()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc",
              "sys", "tmp", "run", "etc", "etc/vbtest", "lib", "lib/modules",
              "lib/modules/vbtest"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    c.file("bin/busybox", busybox.read_bytes(), 0o755)
    c.symlink("bin/sh", "busybox")
    c.file("init", scripts["init"], 0o755)
    c.file("bin/vbagent", scripts["vbagent"], 0o755)
    c.file("bin/modload", scripts["modload"], 0o755)
    for n, p in helpers.items():
        c.file("bin/" + n, p.read_bytes(), 0o755)
    for m, p in sorted(sources.items()):
        c.file("lib/modules/vbtest/%s.ko" % m, _read_module(p))
    if vb_data is not None:
        c.file("lib/modules/vbtest/vballoon.ko", vb_data)
    for top, order in plans.items():
        c.file("lib/modules/vbtest/%s.deps" % top,
               "".join("%s %s.ko\n" % (m, m) for m in order).encode())
    transport = [t for t in TRANSPORT_MODULES if plans[t]]
    c.file("etc/vbtest/transport", ("\n".join(transport) + "\n").encode())
    c.file("etc/vbtest/info", json.dumps(info).encode())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp%d" % os.getpid())
    tmp.write_bytes(c.finish())
    os.replace(tmp, out)
    # keep the cache small: drop older images of this kernel
    for old in out.parent.glob("%s-*.cpio" % kernel.release):
        if old != out and time.time() - old.stat().st_mtime > 3600:
            old.unlink(missing_ok=True)
    return out, info


# --------------------------------------------------------------------------
# QEMU

_live_vms = set()
_live_lock = threading.Lock()


def _kill_all_vms():
    with _live_lock:
        vms = list(_live_vms)
    for vm in vms:
        vm.kill()


atexit.register(_kill_all_vms)


def _pdeathsig():
    """In the QEMU child: die with SIGKILL when the test process dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _prune_logs(base, keep=60):
    """Keep only the newest `keep` per-VM log directories."""
    dirs = sorted((d for d in base.iterdir() if d.is_dir()),
                  key=lambda d: d.stat().st_mtime)
    for d in dirs[:-keep]:
        shutil.rmtree(d, ignore_errors=True)


class VM:
    """One QEMU/TCG guest running the test initramfs.

    with VM(find_kernel("6.12"), deflate_on_oom=True) as vm:
        vm.check("modload vballoon")
        vm.set_balloon(vm.ram_bytes // 2)
    """

    _seq = itertools.count(1)

    def __init__(self, kernel, mem_mib=2048, smp=2, deflate_on_oom=True,
                 balloon_props=None, append="", name=None, log_dir=None,
                 with_vballoon=True, qemu="qemu-system-x86_64",
                 tcg_thread=None, extra_helpers=(), disk_mib=0):
        self.kernel = kernel
        self.mem_mib = mem_mib
        self.ram_bytes = mem_mib * MiB
        self.smp = smp
        self.deflate_on_oom = deflate_on_oom
        self.balloon_props = dict(balloon_props or {})
        self.append = append
        self.with_vballoon = with_vballoon
        self.extra_helpers = tuple(extra_helpers)
        # A sparse raw disk of this size on virtio-blk (/dev/vda once the
        # test loads virtio_blk): reading it fills the guest's page cache.
        self.disk_mib = disk_mib
        self.qemu = qemu
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
        self.log_dir = base / ("%s-%s-%d-%d" % (
            time.strftime("%Y%m%d-%H%M%S"), self.name, os.getpid(),
            next(self._seq)))
        self.log_dir.mkdir(parents=True)
        self.console_path = self.log_dir / "console.log"
        self.sockdir = Path(tempfile.mkdtemp(prefix="vbvm-"))
        self.proc = None
        self.qmp_sock = None
        self.agent_sock = None
        self._qmp_buf = b""
        self._agent_buf = b""
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.initramfs = None
        self.info = None
        self.boot_seconds = None
        self.qmp_events = []
        # timeouts of this guest are multiplied by it (debug kernel)
        self.slowdown = float(getattr(kernel, "slowdown", 1.0) or 1.0)
        self.builtin_vballoon = bool(getattr(kernel, "builtin_vballoon",
                                             False))
        # built-in vballoon: its parameters as read at boot
        self.vb_param_defaults = {}
        self.boot_bound = []   # devices vballoon had bound at boot

    # -- lifecycle ---------------------------------------------------------

    def command_line(self):
        props = {"id": BALLOON_ID,
                 "deflate-on-oom": "on" if self.deflate_on_oom else "off"}
        props.update(self.balloon_props)
        dev = "virtio-balloon-pci," + ",".join(
            "%s=%s" % kv for kv in props.items())
        append = "console=ttyS0 panic=-1"
        if getattr(self.kernel, "cmdline", ""):
            append += " " + self.kernel.cmdline
        if self.append:
            append += " " + self.append
        return [
            self.qemu, "-accel", "tcg,thread=%s" % self.tcg_thread, "-cpu", "max",
            "-m", str(self.mem_mib), "-smp", str(self.smp),
            "-nodefaults", "-nographic", "-no-reboot", "-monitor", "none",
            "-kernel", str(self.kernel.vmlinuz),
            "-initrd", str(self.initramfs),
            "-append", append,
            "-device", dev,
            "-chardev", "file,id=con,path=%s" % self.console_path,
            "-serial", "chardev:con",
            "-chardev", "socket,id=agent,path=%s" % (self.sockdir / "agent"),
            "-serial", "chardev:agent",
            "-chardev", "socket,id=qmp,path=%s" % (self.sockdir / "qmp"),
            "-mon", "chardev=qmp,mode=control",
        ] + self._disk_args()

    def _disk_args(self):
        if not self.disk_mib:
            return []
        img = self.sockdir / "disk.raw"
        if not img.exists():
            with open(img, "wb") as fh:
                fh.truncate(self.disk_mib * MiB)
        return ["-drive", "file=%s,if=none,id=disk0,format=raw,cache=unsafe"
                % img, "-device", "virtio-blk-pci,drive=disk0"]

    def start(self, boot_timeout=600):
        self.initramfs, self.info = build_initramfs(
            self.kernel, with_vballoon=self.with_vballoon,
            extra_helpers=self.extra_helpers)
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
            self._agent_wait(b"@@VBAGENT-READY@@",
                             boot_timeout * self.slowdown, "boot")
            self.boot_seconds = time.monotonic() - t0
            # the first round trip proves the channel works both ways
            rc, out = self.run("echo ping", timeout=60)
            if rc != 0 or out.strip() != "ping":
                raise HarnessError("agent handshake failed: %r %r" % (rc, out))
            if self.builtin_vballoon:
                self._builtin_boot_state()
        except BaseException:
            self.kill()
            raise
        return self

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
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.qmp_sock.settimeout(5)
                self._qmp_send({"execute": "quit"})
            except Exception:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        for s in (self.qmp_sock, self.agent_sock):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        shutil.rmtree(self.sockdir, ignore_errors=True)
        with _live_lock:
            _live_vms.discard(self)

    # -- console -----------------------------------------------------------

    def console(self):
        try:
            return self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

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

        The guest kills the command after `timeout` seconds (rc 137); the
        host waits a little longer than that for the answer.
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

    def set_balloon(self, ram_bytes):
        """Ask for the guest to have `ram_bytes` of RAM (balloon = RAM - it)."""
        self.qmp("balloon", value=int(ram_bytes))

    def set_balloon_size(self, balloon_bytes):
        self.set_balloon(self.ram_bytes - int(balloon_bytes))

    def query_balloon(self):
        """QEMU's `actual`: guest RAM minus the balloon, in bytes."""
        return self.qmp("query-balloon")["actual"]

    def balloon_size(self):
        return self.ram_bytes - self.query_balloon()

    def qom_get(self, prop, path=BALLOON_PATH):
        return self.qmp("qom-get", path=path, property=prop)

    def qom_set(self, prop, value, path=BALLOON_PATH):
        return self.qmp("qom-set", path=path, property=prop, value=value)

    def guest_stats(self):
        return self.qom_get("guest-stats")

    def set_stats_interval(self, seconds):
        self.qom_set("guest-stats-polling-interval", int(seconds))

    # -- guest state -------------------------------------------------------

    def meminfo(self):
        """/proc/meminfo as {field: kB}, plus two synthesized fields:

        PcpFree   -- free pages sitting on the per-cpu free lists (summed
                     "count:" of /proc/zoneinfo).  They are free, but not in
                     MemFree; 6.12 auto-tunes these lists up to ~100 MiB
                     right after a big deflate and drains them over seconds.
        FreeTotal -- MemFree + PcpFree: free memory that does not move when
                     the per-cpu lists fill or drain.
        """
        out = self.check(
            "cat /proc/meminfo; awk '$1 == \"count:\" { s += $2 } "
            "END { print \"PcpPages:\", s + 0 }' /proc/zoneinfo")
        res = {}
        for line in out.splitlines():
            m = re.match(r"(\S+):\s+(\d+)", line)
            if m:
                res[m.group(1)] = int(m.group(2))
        res["PcpFree"] = res.pop("PcpPages", 0) * PAGE_SIZE // 1024
        res["FreeTotal"] = res["MemFree"] + res["PcpFree"]
        return res

    def dmesg(self):
        return self.check("dmesg")

    def kmsg(self, text):
        """Write a line into the guest kernel log (console and dmesg)."""
        self.check("echo %s > /dev/kmsg" % shlex.quote(text))

    def loaded(self, module):
        """Module `module` is loaded; for a built-in vballoon: it is bound
        to a device (built-ins have no initstate)."""
        if module == "vballoon" and self.builtin_vballoon:
            return bool(self.bound_devices("vballoon"))
        rc, _ = self.run("test -e /sys/module/%s/initstate" % module)
        return rc == 0

    def load_driver(self, name, params=""):
        """insmod `name` (with its dependencies) and `params`.  For a
        built-in vballoon: write `params` (name=value ...) to
        /sys/module/vballoon/parameters/ (the others back to their boot
        defaults) and bind the balloon device, taking it from any other
        driver first.  Loading virtio_balloon next to a built-in vballoon
        first unbinds vballoon."""
        if name == "vballoon" and self.builtin_vballoon:
            return self._bind_builtin(params)
        if name == "vballoon" and not self.info.get("vballoon"):
            raise HarnessError(
                "vballoon.ko for %s not found at %s; build it with "
                "`make -C %s modules`" % (self.kernel.release,
                                          self.info["vballoon_ko"], REPO_ROOT))
        if self.builtin_vballoon and self.bound_devices("vballoon"):
            self._unbind_builtin(300)
        return self.check("modload %s %s" % (name, params), timeout=300)

    def unload_driver(self, name, timeout=600):
        """rmmod `name`; for a built-in vballoon: unbind it from its devices
        and reset its parameters to the boot defaults."""
        if name == "vballoon" and self.builtin_vballoon:
            return self._unbind_builtin(timeout)
        return self.check("rmmod %s" % name, timeout=timeout)

    # -- built-in vballoon -------------------------------------------------

    VB_PARAMS = "/sys/module/vballoon/parameters"
    VB_DRIVER = "/sys/bus/virtio/drivers/vballoon"

    def _builtin_boot_state(self):
        """After boot: remember vballoon's parameter defaults and unbind it,
        so every test starts like with the module kernels (no balloon
        driver)."""
        out = self.check("cd %s && for f in *; do echo \"$f=$(cat $f)\"; "
                         "done" % self.VB_PARAMS)
        self.vb_param_defaults = dict(
            l.split("=", 1) for l in out.splitlines() if "=" in l)
        if not self.vb_param_defaults:
            raise HarnessError("no parameters in %s" % self.VB_PARAMS)
        self.boot_bound = self.bound_devices("vballoon")
        self._unbind_builtin(600)

    def balloon_device(self):
        """Name (virtioN) of the virtio balloon device (id 5)."""
        out = self.check("for d in /sys/bus/virtio/devices/*; do "
                         "[ $(cat $d/device) = 0x0005 ] && basename $d; "
                         "done; true")
        devs = out.split()
        if not devs:
            raise HarnessError("no virtio balloon device in the guest")
        return devs[0]

    def _set_vb_params(self, params):
        want = dict(self.vb_param_defaults)
        for tok in shlex.split(params or ""):
            if "=" not in tok:
                raise HarnessError("vballoon parameter %r is not name=value"
                                   % tok)
            k, v = tok.split("=", 1)
            if k not in want:
                raise HarnessError("vballoon has no parameter %r (has %s)" %
                                   (k, ", ".join(sorted(want))))
            want[k] = v
        self.check("; ".join(
            "echo %s > %s/%s" % (shlex.quote(v), self.VB_PARAMS, k)
            for k, v in sorted(want.items())) + "; true")
        cur = self.check("cd %s && for f in *; do echo \"$f=$(cat $f)\"; "
                         "done" % self.VB_PARAMS)
        got = dict(l.split("=", 1) for l in cur.splitlines() if "=" in l)
        bad = {k: (v, got.get(k)) for k, v in want.items()
               if not _param_equal(v, got.get(k))}
        if bad:
            raise CommandFailed("could not set vballoon parameters "
                                "(wanted, read back): %r" % bad)

    def _bind_builtin(self, params=""):
        dev = self.balloon_device()
        for drv in BALLOON_DRIVERS:
            if dev in self.bound_devices(drv):
                self.check("echo %s > /sys/bus/virtio/drivers/%s/unbind"
                           % (dev, drv), timeout=600)
        self._set_vb_params(params)
        return self.check("echo %s > %s/bind" % (dev, self.VB_DRIVER),
                          timeout=300)

    def _unbind_builtin(self, timeout=600):
        out = ""
        for dev in self.bound_devices("vballoon"):
            out += self.check("echo %s > %s/unbind" % (dev, self.VB_DRIVER),
                              timeout=timeout)
        if self.vb_param_defaults:
            self._set_vb_params("")
        return out

    def bound_devices(self, driver):
        """virtio devices bound to `driver` (names like virtio0)."""
        out = self.check("ls /sys/bus/virtio/drivers/%s/ 2>/dev/null; true"
                         % driver)
        return sorted(n for n in out.split() if n.startswith("virtio"))

    def reset_balloon(self, timeout=900):
        """Target balloon 0, wait for it if a driver is loaded, unload all
        balloon drivers (built-in vballoon: unbind it, parameters back to
        their defaults).  Leaves the VM ready for the next test: the balloon
        device bound to no driver."""
        self.set_balloon(self.ram_bytes)
        for drv in BALLOON_DRIVERS:
            if self.loaded(drv):
                wait_until(lambda: self.query_balloon() == self.ram_bytes,
                           timeout, 1, "balloon to deflate to 0 before "
                           "unloading %s" % drv,
                           lambda: "actual=%d MiB" %
                           (self.query_balloon() // MiB))
                self.unload_driver(drv)
        if self.builtin_vballoon:
            self._unbind_builtin()
            left = {d: self.bound_devices(d) for d in BALLOON_DRIVERS}
            left = {d: v for d, v in left.items() if v}
            if left:
                raise HarnessError("balloon device still bound after "
                                   "reset: %r" % left)

    def kmemleak_check(self, scans=2, scan_timeout=300):
        """Run kmemleak (debug kernels): `scans` scans, then read the
        report.  Returns (ours, others) as parse_kmemleak(), or None when
        the kernel has no kmemleak."""
        path = "/sys/kernel/debug/kmemleak"
        if self.run("test -e %s" % path)[0] != 0:
            return None
        for _ in range(scans):
            # the write returns when the scan is done; bounded by timeout
            self.check("echo scan > %s" % path, timeout=scan_timeout)
        text = self.check("cat %s" % path, timeout=120)
        (self.log_dir / "kmemleak.txt").write_text(text)
        return parse_kmemleak(text)
