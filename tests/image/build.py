#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Build the Debian guest image the libvirt tests boot (cached by content).

    tests/image/build.py            # build (or find) the image, print its dir
    tests/image/build.py --force    # rebuild both layers

An ordinary Debian 12 guest, made with Debian's own tools and nothing
from outside the archive, in two cached layers under
${XDG_CACHE_HOME:-~/.cache}/vballoon/image/:

  base-<key>/   mmdebstrap: bookworm with systemd, udev, dkms,
                qemu-guest-agent, the newest Debian 6.1 and 6.12 kernels
                (the releases `make modules` builds for), the 6.1 headers,
                and the 6.12 headers' packages downloaded but not
                installed.  The key: the package list, the two releases and
                BASE_REVISION.
  <key>/        the base plus vballoon: the vballoon-dkms package that
                `make deb` builds, installed with apt as an administrator
                would (DKMS builds it for 6.1), then the 6.12 headers
                installed after it, the kernel upgrade path (DKMS's kernel
                hook builds it for 6.12).  Then an ext4 file system image
                (root.raw, mkfs.ext4 -d: no loop device), the kernels and
                initramfs images for direct boot, and info.json.  The key:
                the base's, the package's bytes, memhog.c and
                IMAGE_REVISION.

A layer is built in a .tmp directory and renamed when complete, so an
interrupted build leaves nothing that looks finished; older layers are
removed.  Needs root (mmdebstrap's root mode, chroot, mounts) and the
archive (deb.debian.org).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
MIRRORS = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
# what the guest has besides the kernels (--variant=apt: essential + apt);
# dbus lets systemd-logind turn the ACPI power button, which `virsh
# shutdown` presses, into a clean shutdown, as on any Debian install
PACKAGES = ["systemd", "systemd-sysv", "udev", "dbus", "kmod", "dkms",
            "procps", "qemu-guest-agent", "initramfs-tools", "e2fsprogs"]
# bump when the base layer's recipe changes in a way the key misses
BASE_REVISION = 1
IMAGE_REVISION = 1
# where the base keeps the 6.12 headers' packages until the upgrade step
UPGRADE_DIR = "/var/local/vballoon-upgrade"
# units a test guest does not need and that cost boot time under TCG
MASK = ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
        "e2scrub_reap.service", "fstrim.timer", "systemd-timesyncd.service"]


def log(msg):
    print("image: %s" % msg, file=sys.stderr, flush=True)


def die(msg):
    log("ERROR: " + msg)
    sys.exit(1)


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "vballoon" / "image"


def releases():
    """(6.1 release, 6.12 release): the newest installed Debian headers,
    as for `make modules` (scripts/kernels.sh)."""
    out = subprocess.run([str(TOP / "scripts" / "kernels.sh")], check=True,
                         capture_output=True, text=True).stdout
    rel = [line.split()[0] for line in out.splitlines() if line.strip()]
    if len(rel) != 2:
        die("scripts/kernels.sh found %r (run 'make deps')" % rel)
    return rel[0], rel[1]


def release(series):
    """The release of "6.1" or "6.12" that releases() names."""
    return dict(zip(("6.1", "6.12"), releases()))[series]


def digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def run(cmd, logfile=None, **kw):
    """Run cmd; its output goes to logfile (appended) if given.  Dies with
    the log's tail if it fails."""
    if logfile is None:
        return subprocess.run(cmd, check=True, **kw)
    with open(logfile, "a") as f:
        f.write("\n$ %s\n" % " ".join(map(str, cmd)))
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, **kw).returncode
    if rc != 0:
        tail = Path(logfile).read_text(errors="replace").splitlines()[-40:]
        die("%s failed (rc %d); log %s ends:\n%s" % (
            cmd[0], rc, logfile, "\n".join(tail)))


def prune(root, keep):
    """Remove the layers under root that have the prefix of `keep` (base-
    or none) but are not `keep`, and leftover .tmp directories."""
    base = keep.name.startswith("base-")
    for d in root.iterdir():
        if d == keep or not d.is_dir():
            continue
        if d.name.endswith(".tmp") or d.name.startswith("base-") == base:
            shutil.rmtree(d, ignore_errors=True)


def build_base(root, key, r61, r612):
    out = root / ("base-" + key)
    if (out / "etc" / "os-release").exists():
        return out
    tmp = root / ("base-%s.tmp" % key)
    shutil.rmtree(tmp, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    logfile = root / ("base-%s.log" % key)
    logfile.unlink(missing_ok=True)
    include = PACKAGES + ["linux-image-" + r61, "linux-headers-" + r61,
                          "linux-image-" + r612]
    hooks = [
        'echo vbguest > "$1/etc/hostname"',
        'printf "127.0.0.1 localhost\\n127.0.1.1 vbguest\\n" > "$1/etc/hosts"',
        'echo "LABEL=vbroot / ext4 rw,errors=remount-ro 0 1" > "$1/etc/fstab"',
        # a console login for whoever debugs a guest by hand
        'chroot "$1" passwd --delete root',
        'chroot "$1" systemctl mask %s' % " ".join(MASK),
        # the kernel upgrade: its packages now, installed after vballoon
        'chroot "$1" apt-get install --download-only -y -q linux-headers-%s'
        % r612,
        'mkdir -p "$1%s" && mv "$1"/var/cache/apt/archives/*.deb "$1%s/"'
        % (UPGRADE_DIR, UPGRADE_DIR),
    ]
    cmd = ["mmdebstrap", "--variant=apt", "--mode=root",
           "--include=" + ",".join(include)]
    cmd += ["--customize-hook=" + h for h in hooks]
    cmd += ["bookworm", str(tmp)] + MIRRORS
    log("building the base layer (mmdebstrap; log %s)" % logfile)
    t0 = time.monotonic()
    run(cmd, logfile)
    (tmp / "etc" / "os-release").stat()
    tmp.rename(out)
    prune(root, out)
    log("base layer built in %.0f s: %s" % (time.monotonic() - t0, out))
    return out


class Chroot:
    """The API file systems mounted into a directory while a step runs
    there with chroot, services kept from starting (policy-rc.d)."""

    def __init__(self, path, logfile):
        self.path = Path(path)
        self.logfile = logfile
        self.mounted = []

    def __enter__(self):
        for src, dst, args in (("proc", "proc", ["-t", "proc"]),
                               ("sysfs", "sys", ["-t", "sysfs"]),
                               ("/dev", "dev", ["--bind"]),
                               ("devpts", "dev/pts", ["-t", "devpts"])):
            target = self.path / dst
            run(["mount"] + args + [src, str(target)])
            self.mounted.append(target)
        prc = self.path / "usr/sbin/policy-rc.d"
        prc.write_text("#!/bin/sh\nexit 101\n")
        prc.chmod(0o755)
        return self

    def __exit__(self, *exc):
        (self.path / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
        for target in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(target)])
        self.mounted = []

    def sh(self, script):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
        run(["chroot", str(self.path), "/bin/sh", "-ec", script],
            self.logfile, env=env)

    def out(self, script):
        return subprocess.run(["chroot", str(self.path), "/bin/sh", "-c",
                               script], capture_output=True,
                              text=True).stdout


def memhog(dest):
    """The guest program of the autodeflate test, static: the VM suite's
    memhog."""
    run(["gcc", "-static", "-O2", "-o", str(dest),
         str(TOP / "tests/vm/guest/memhog.c")])


def build_image(root, base, key, deb, r61, r612):
    out = root / key
    if (out / "info.json").exists():
        return out
    tmp = root / (key + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    logfile = tmp / "build.log"
    tree = tmp / "tree"
    t0 = time.monotonic()
    log("copying the base layer")
    run(["cp", "-a", str(base), str(tree)])
    shutil.copy(deb, tree / "tmp" / deb.name)
    memhog(tree / "usr/local/bin/memhog")
    log("installing %s in the image (log %s)" % (deb.name, logfile))
    with Chroot(tree, logfile) as ch:
        ch.sh("apt-get install -y -q /tmp/%s" % deb.name)
        # the upgrade path: new kernel headers after the package
        ch.sh("apt-get install -y -q %s/*.deb" % UPGRADE_DIR)
        ch.sh("rm -rf %s /tmp/%s; apt-get clean" % (UPGRADE_DIR, deb.name))
        status = ch.out("dkms status")
        initrd_balloon = {r: ch.out("lsinitramfs /boot/initrd.img-%s | "
                                    "grep -E 'balloon' || true" % r).split()
                          for r in (r61, r612)}
    for r in (r61, r612):
        found = list((tree / "lib/modules" / r / "updates/dkms").glob(
            "vballoon.ko*"))
        if not found:
            die("DKMS did not install vballoon for %s (dkms status: %r; "
                "log %s)" % (r, status, logfile))
        for name in ("vmlinuz-" + r, "initrd.img-" + r):
            shutil.copy(tree / "boot" / name, tmp / name)
    # size: what the tree holds plus room for the guest to work in
    used = int(subprocess.run(["du", "-sx", "--block-size=1M", str(tree)],
                              capture_output=True, text=True,
                              check=True).stdout.split()[0])
    size_mib = used + 1024
    log("making the ext4 image (%d MiB, %d MiB used)" % (size_mib, used))
    run(["mkfs.ext4", "-q", "-F", "-L", "vbroot", "-d", str(tree),
         str(tmp / "root.raw"), "%dM" % size_mib], logfile)
    shutil.rmtree(tree)
    info = {"releases": [r61, r612], "package": deb.name,
            "version": (TOP / "VERSION").read_text().strip(),
            "dkms_status": status, "initrd_balloon": initrd_balloon,
            "built": time.strftime("%Y-%m-%d %H:%M:%S"),
            "seconds": round(time.monotonic() - t0)}
    (tmp / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    tmp.rename(out)
    prune(root, out)
    log("image built in %.0f s: %s" % (time.monotonic() - t0, out))
    return out


def build(force=False):
    """Build (or find) the image; its directory."""
    if os.geteuid() != 0:
        die("needs root (mmdebstrap, chroot, mounts)")
    for tool in ("mmdebstrap", "mkfs.ext4", "dpkg-buildpackage"):
        if not shutil.which(tool):
            die("%s not found: run 'make deps'" % tool)
    r61, r612 = releases()
    root = cache_root()
    debdir = TOP / "build" / "deb"
    run([str(TOP / "scripts" / "deb.sh"), str(debdir)],
        stdout=subprocess.DEVNULL)
    version = (TOP / "VERSION").read_text().strip()
    deb = debdir / ("vballoon-dkms_%s_all.deb" % version)
    base_key = digest(BASE_REVISION, r61, r612, PACKAGES, MASK, MIRRORS)
    key = digest(base_key, IMAGE_REVISION, deb.read_bytes(),
                 (TOP / "tests/vm/guest/memhog.c").read_bytes())
    if force:
        shutil.rmtree(root / ("base-" + base_key), ignore_errors=True)
        shutil.rmtree(root / key, ignore_errors=True)
    img = root / key
    if (img / "info.json").exists():
        return img
    base = build_base(root, base_key, r61, r612)
    return build_image(root, base, key, deb, r61, r612)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true",
                    help="rebuild both layers")
    args = ap.parse_args()
    print(build(args.force))


if __name__ == "__main__":
    main()
