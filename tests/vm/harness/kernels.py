# SPDX-License-Identifier: GPL-2.0-only
"""The kernels the VM tests boot, and how vballoon gets into each.

Two variants of one interface (like kunit_kernel.py's
LinuxSourceTreeOperations and its QEMU subclass):

  Kernel       a Debian kernel; vballoon is the module the driver build
               left in build/<release>/vballoon.ko (VM: insmod / rmmod)
  DebugKernel  the 6.12 kernel `make intree` builds with KASAN, lockdep and
               kmemleak and vballoon built in (BuiltinVM: bind / unbind),
               slower (slowdown) and booted with an extra command line

find_kernel("6.1"), find_kernel("6.12"), find_kernel("debug").
"""

import dataclasses
import os
import re
from pathlib import Path

from harness.errors import HarnessError
from harness.modules import builtin_modules
from harness.units import REPO_ROOT, cache_dir


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A distribution kernel with its modules in `moddir`."""
    release: str
    vmlinuz: Path
    moddir: Path
    # how many times slower than a distribution kernel: every timeout of
    # a VM running it is multiplied by this
    slowdown: float = 1.0
    # extra kernel command line for every boot of this kernel
    cmdline: str = ""

    # vballoon is compiled into the kernel (=y) rather than a module
    builtin_vballoon = False

    @property
    def series(self):
        """"6.1", "6.12", ...: what find_kernel() takes."""
        return ".".join(self.release.split(".")[:2])

    def vballoon_ko(self):
        """Path where the driver build puts vballoon.ko for this kernel
        (VBALLOON_BUILD_DIR, default <repo>/build)."""
        base = os.environ.get("VBALLOON_BUILD_DIR")
        base = Path(base) if base else REPO_ROOT / "build"
        return base / self.release / "vballoon.ko"

    def vbhost_ko(self):
        """Path where scripts/build-modules.sh puts the test device
        tests/vbhost for this kernel: <build>/<release>/vbhost.ko (the
        debug kernel too: it is a module there as well)."""
        base = os.environ.get("VBALLOON_BUILD_DIR")
        base = Path(base) if base else REPO_ROOT / "build"
        return base / self.release / "vbhost.ko"

    def describe(self):
        """One line for the test report header."""
        ko = self.vballoon_ko()
        return "%s, vballoon.ko %s" % (
            self.release, ko if ko.exists() else "MISSING (%s)" % ko)


DEBUG_SLOWDOWN = 4.0
# Under KASAN + TCG, ACPI's _PRT method (PCI interrupt routing) runs into
# AE_AML_LOOP_TIMEOUT (30 s): "virtio-pci 0000:00:02.0: PCI INT A: no GSI",
# and the balloon (INTx, no MSI-X) never gets an interrupt.  Route PCI
# interrupts from the BIOS tables instead.
DEBUG_CMDLINE = "pci=noacpi"


@dataclasses.dataclass(frozen=True)
class DebugKernel(Kernel):
    """The debug kernel of `make intree`: vballoon built in."""
    slowdown: float = DEBUG_SLOWDOWN
    cmdline: str = DEBUG_CMDLINE

    builtin_vballoon = True

    @property
    def series(self):
        return "debug"

    def vballoon_ko(self):
        """None: there is no module to pack, vballoon is in the image."""
        return None

    def describe(self):
        return "%s (%s), vballoon built in, timeouts x%g" % (
            self.release, self.vmlinuz, self.slowdown)


def version_key(release):
    """Sort key that orders releases numerically (6.1.0-10 > 6.1.0-9)."""
    return [int(t) if t.isdigit() else t
            for t in re.findall(r"\d+|[A-Za-z]+", release)]


def installed_kernels(boot="/boot"):
    """Kernels in `boot` whose modules are installed, oldest first."""
    out = []
    for vmlinuz in Path(boot).glob("vmlinuz-*"):
        release = vmlinuz.name[len("vmlinuz-"):]
        moddir = Path("/lib/modules") / release
        if (moddir / "modules.dep").exists():
            out.append(Kernel(release, vmlinuz, moddir))
    return sorted(out, key=lambda k: version_key(k.release))


def debug_kernel_dir():
    """Where `make intree` publishes the debug kernel
    (VBALLOON_DEBUG_KERNEL_DIR, default <cache>/debug-kernel)."""
    d = os.environ.get("VBALLOON_DEBUG_KERNEL_DIR")
    return Path(d) if d else cache_dir() / "debug-kernel"


def find_debug_kernel():
    """The debug kernel `make intree` published: 6.12 with KASAN, lockdep,
    kmemleak, ... and vballoon built in (read from <dir>/current:
    RELEASE=, BZIMAGE=, MODDIR= lines)."""
    cur = debug_kernel_dir() / "current"
    hint = ("build it with `make intree` at the top of the repository")
    if not cur.exists():
        raise HarnessError("no debug kernel: %s is missing; %s" % (cur, hint))
    kv = dict(line.split("=", 1) for line in cur.read_text().splitlines()
              if "=" in line)
    missing = [k for k in ("RELEASE", "BZIMAGE", "MODDIR") if not kv.get(k)]
    if missing:
        raise HarnessError("%s lacks %s; %s" % (cur, ", ".join(missing), hint))
    vmlinuz, moddir = Path(kv["BZIMAGE"]), Path(kv["MODDIR"])
    for f in (vmlinuz, moddir / "modules.dep"):
        if not f.exists():
            raise HarnessError("debug kernel named by %s is incomplete: %s "
                               "missing; %s" % (cur, f, hint))
    if "vballoon" not in builtin_modules(moddir):
        raise HarnessError("debug kernel %s does not have vballoon built in "
                           "(%s); %s" % (kv["RELEASE"],
                                         moddir / "modules.builtin", hint))
    return DebugKernel(
        kv["RELEASE"], vmlinuz, moddir,
        slowdown=float(os.environ.get("VBALLOON_DEBUG_SLOWDOWN",
                                      DEBUG_SLOWDOWN)),
        cmdline=os.environ.get("VBALLOON_DEBUG_CMDLINE", DEBUG_CMDLINE))


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
