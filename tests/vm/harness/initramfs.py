# SPDX-License-Identifier: GPL-2.0-only
"""The test initramfs (see virtme-ng's mkinitramfs.py): busybox, /init,
the command agent, the kernel's virtio transport modules and
virtio_balloon.ko (decompressed, dependency order from modules.dep),
vballoon.ko (dependencies from its .modinfo, vermagic checked), the test
device vbhost.ko when built (the same way) and static test helpers.
Cached under <cache>/initramfs/ by the hash of every input."""

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

from harness.cpio import Cpio
from harness.errors import HarnessError
from harness.modules import ModuleIndex, modinfo_field, modname, read_module
from harness.units import GUEST_DIR, cache_dir

# Bump when the initramfs layout changes, to invalidate caches.
INITRAMFS_FORMAT = "vbtest-initramfs-4"

TRANSPORT_MODULES = ("virtio_pci",)   # pulls in virtio, virtio_ring, ...
# Transports /init also loads where the kernel has them: virtio_mmio
# finds the devices of QEMU's microvm machine in its ACPI tables
# (Machine(transport="mmio")); on the pc machine it finds none.
OPTIONAL_TRANSPORTS = ("virtio_mmio",)
# Modules put in the image for tests to load when they need them (a disk
# for page-cache tests); left out quietly where the kernel lacks them.
OPTIONAL_MODULES = ("virtio_blk",)
# Helpers every image has (guest/<name>.c); tests add more (extra_helpers).
HELPERS = ("memhog", "frag")
SCRIPTS = ("init", "vbagent", "modload")


def build_helper(name):
    """Compile guest/<name>.c (or the C file `name` is a path to)
    statically; cached by source hash.  Returns the binary's path."""
    src = Path(name) if str(name).endswith(".c") else GUEST_DIR / (name + ".c")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    out = cache_dir() / "helpers" / ("%s-%s" % (src.stem, digest))
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


def _vballoon_module(kernel, idx, with_vballoon):
    """(vballoon.ko bytes or None, its insmod order, info dict)."""
    ko = kernel.vballoon_ko()
    info = {"kernel": kernel.release, "vballoon": kernel.builtin_vballoon,
            "vballoon_ko": str(ko) if ko else
            "(built into %s)" % kernel.vmlinuz,
            "vballoon_builtin": kernel.builtin_vballoon}
    if ko is None or not with_vballoon or not ko.exists():
        return None, None, info
    data, order = _our_module(kernel, idx, ko, "vballoon")
    info["vballoon"] = True
    return data, order, info


def _our_module(kernel, idx, ko, name):
    """(bytes, insmod order) of a module this project built (`name` at
    `ko`), after checking it was built for this kernel; its dependencies
    come from its own .modinfo."""
    data = ko.read_bytes()
    vermagic = modinfo_field(data, "vermagic") or ""
    if vermagic.split(" ")[0] != kernel.release:
        raise HarnessError("%s was built for %r, not %s" %
                           (ko, vermagic, kernel.release))
    deps = [d for d in (modinfo_field(data, "depends") or "").split(",") if d]
    return data, idx.closure(name, extra_deps=[modname(d) for d in deps])


def _vbhost_module(kernel, idx):
    """(vbhost.ko bytes or None, its insmod order): the test device of
    tests/vbhost, when it has been built for this kernel."""
    ko = kernel.vbhost_ko()
    if ko is None or not ko.exists():
        return None, None
    return _our_module(kernel, idx, ko, "vbhost")


def _cache_key(kernel, busybox, sources, helpers, scripts, vb_data, plans,
               vbh_data=None):
    h = hashlib.sha256(INITRAMFS_FORMAT.encode())
    h.update(kernel.release.encode())
    for label, data in sorted(
            [("busybox", busybox.read_bytes())]
            + [("mod:" + m, Path(p).read_bytes()) for m, p in sources.items()]
            + [("helper:" + n, p.read_bytes()) for n, p in helpers.items()]
            + [("script:" + n, d) for n, d in scripts.items()]
            + ([("vballoon", vb_data)] if vb_data is not None else [])
            + ([("vbhost", vbh_data)] if vbh_data is not None else [])):
        h.update(label.encode() + b"\0")
        h.update(hashlib.sha256(data).digest())
    h.update(json.dumps(plans, sort_keys=True).encode())
    return h.hexdigest()[:20]


def build_initramfs(kernel, with_vballoon=True, busybox="/bin/busybox",
                    extra_helpers=()):
    """Build (or reuse from cache) the test initramfs for `kernel`.

    Returns (path, info) where info["vballoon"] tells whether vballoon is
    there (built in, or vballoon.ko included; it is left out, not an
    error, when it has not been built).
    """
    busybox = Path(busybox)
    if not busybox.exists():
        raise HarnessError("%s missing (apt-get install busybox-static)" %
                           busybox)
    idx = ModuleIndex(kernel)
    sources = {}  # modname -> source file, for everything in the image
    plans = {}    # initramfs-visible driver name -> ordered modnames
    optional = OPTIONAL_TRANSPORTS + OPTIONAL_MODULES
    for top in TRANSPORT_MODULES + OPTIONAL_TRANSPORTS + ("virtio_balloon",) \
            + OPTIONAL_MODULES:
        try:
            order = idx.closure(top)
        except HarnessError:
            if top in optional:
                continue
            raise
        plans[top] = order
        for m in order:
            sources[m] = idx.paths[m]
    vb_data, vb_order, info = _vballoon_module(kernel, idx, with_vballoon)
    if vb_order is not None:
        plans["vballoon"] = vb_order
        sources.update((m, idx.paths[m]) for m in vb_order if m != "vballoon")
    vbh_data, vbh_order = _vbhost_module(kernel, idx)
    info["vbhost"] = vbh_data is not None
    if vbh_order is not None:
        plans["vbhost"] = vbh_order
        sources.update((m, idx.paths[m]) for m in vbh_order if m != "vbhost")

    helpers = {Path(h).stem: build_helper(h)
               for h in HELPERS + tuple(str(p) for p in extra_helpers)}
    scripts = {n: (GUEST_DIR / n).read_bytes() for n in SCRIPTS}
    key = _cache_key(kernel, busybox, sources, helpers, scripts, vb_data,
                     plans, vbh_data)
    out = cache_dir() / "initramfs" / ("%s-%s.cpio" % (kernel.release, key))
    try:
        # in use again: newer than the age at which other jobs prune it
        os.utime(out)
        return out, info
    except FileNotFoundError:
        pass

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
        c.file("lib/modules/vbtest/%s.ko" % m, read_module(p))
    if vb_data is not None:
        c.file("lib/modules/vbtest/vballoon.ko", vb_data)
    if vbh_data is not None:
        c.file("lib/modules/vbtest/vbhost.ko", vbh_data)
    for top, order in plans.items():
        c.file("lib/modules/vbtest/%s.deps" % top,
               "".join("%s %s.ko\n" % (m, m) for m in order).encode())
    transport = [t for t in TRANSPORT_MODULES + OPTIONAL_TRANSPORTS
                 if plans.get(t)]
    c.file("etc/vbtest/transport", ("\n".join(transport) + "\n").encode())
    c.file("etc/vbtest/info", json.dumps(info).encode())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp%d" % os.getpid())
    tmp.write_bytes(c.finish())
    os.replace(tmp, out)
    # Keep the cache small: drop images of this kernel no boot used for
    # an hour.  Jobs run side by side: another may prune (or touch) the
    # same files at the same moment.
    for old in out.parent.glob("%s-*.cpio" % kernel.release):
        try:
            if old != out and time.time() - old.stat().st_mtime > 3600:
                old.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
    return out, info
