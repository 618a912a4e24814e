#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Build vballoon inside a real kernel tree (Debian's linux-source-6.12):
a debug kernel with vballoon built in (KASAN, lockdep, kmemleak, KUnit),
published for the VM harness, and a kernel with vballoon as a module; and
run the KUnit suite on the debug kernel with kunit.py.

Cache layout, under CACHE=${XDG_CACHE_HOME:-~/.cache}/vballoon:
  linux-source-<ver>/            pristine extraction (never written)
  intree/<ver>/src/              a copy of it, grafted (scripts/graft.sh)
  intree/<ver>/<variant>-<cfg>/  make O= dir; <cfg> hashes the source
                                 version and the config fragments
  debug-kernel/current           KEY=VALUE lines for the VM harness
  debug-kernel/current.json      the same as JSON
  debug-kernel/<release>-<key>/  bzImage, config, System.map and
                                 lib/modules/<release>/ of one build
"""

ENVIRONMENT = """\
environment:
  VBALLOON_JOBS             make -j (default 2)
  VBALLOON_KUNIT_TIMEOUT    kunit.py --timeout, seconds (default 900)
  VBALLOON_DEBUG_KERNEL_DIR where the debug kernel is published
                            (default $CACHE/debug-kernel)
  PYTHON                    runs kunit.py (default /usr/bin/python3)
"""

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import kconfig

TOP = Path(__file__).resolve().parent.parent
# the VM harness's one definition of a bad kernel log (stdlib only)
sys.path.insert(0, str(TOP / "tests" / "vm"))
from harness import console  # noqa: E402

CACHE = Path(os.environ.get("CACHE") or
             Path(os.environ.get("XDG_CACHE_HOME") or
                  Path.home() / ".cache") / "vballoon")
PUBLISH = Path(os.environ.get("VBALLOON_DEBUG_KERNEL_DIR") or
               CACHE / "debug-kernel")
PYTHON = os.environ.get("PYTHON") or "/usr/bin/python3"
JOBS = os.environ.get("VBALLOON_JOBS") or "2"
KUNIT_TIMEOUT = os.environ.get("VBALLOON_KUNIT_TIMEOUT") or "900"
ARCH_ARGS = ["ARCH=x86_64"]
CONFIG_DIR = TOP / "scripts" / "config"
# Bump when the way a config is produced changes (part of the O= dir name).
RECIPE = 1
# What the stamp of a finished build depends on besides the sources.
TOOLING = [TOP / "scripts" / f for f in ("intree.py", "kconfig.py",
                                          "graft.sh")]

# a compiler or modpost warning about the project's own files (the cache
# path contains "vballoon" too: match the tree's paths)
WARNING_RE = re.compile(r"warning:|^WARNING:")
VB_WARN_RE = re.compile(r"drivers/virtio/vballoon/|"
                        r"include/linux/vballoon_virtio\.h|modpost:.*vballoon")


class Fail(Exception):
    """A step failed; the message says which and where its log is."""


def log(msg):
    print("intree: " + msg, file=sys.stderr, flush=True)


def fmt_time(seconds):
    seconds = int(seconds)
    return "%dm%02ds" % (seconds // 60, seconds % 60)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def tail(path, n):
    """The last n lines of a log, for an error message."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def run_logged(cmd, logf, cwd=None):
    """Run cmd with its output appended to the open file logf; True if it
    succeeded."""
    logf.flush()
    return subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT,
                          cwd=cwd).returncode == 0


_lock_fd = None


def lock():
    """Hold $CACHE/intree/.lock until exit: one build at a time (the same
    lock file as flock(1) in earlier versions of this tool)."""
    global _lock_fd
    if _lock_fd is not None:
        return
    path = CACHE / "intree" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    _lock_fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("waiting for another intree run to finish (lock %s)" % path)
        fcntl.flock(_lock_fd, fcntl.LOCK_EX)


# --------------------------------------------------------------------------
# the working tree: a grafted copy of the pristine extraction

def graft(ksrc):
    """scripts/graft.sh KSRC (raises Fail)."""
    if subprocess.run([str(TOP / "scripts" / "graft.sh"), str(ksrc)]
                      ).returncode != 0:
        raise Fail("graft into %s failed" % ksrc)


class Tree:
    """The kernel version's working tree and its O= dirs."""

    def __init__(self):
        r = subprocess.run([str(TOP / "scripts" / "kernel-source.sh"),
                            str(CACHE)], stdout=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise Fail("no kernel source (scripts/kernel-source.sh)")
        self.pristine = Path(r.stdout.strip())
        self.kver = self.pristine.name[len("linux-source-"):]
        self.work = CACHE / "intree" / self.kver
        self.src = self.work / "src"

    def prepare(self):
        """Copy the pristine tree once per kernel version (dropping other
        versions' trees and builds), then graft the project into it."""
        if not (self.src / ".vballoon-worktree").exists():
            log("copying %s to %s (once per kernel version)" %
                (self.pristine, self.src))
            tmp = self.src.with_name("src.tmp")
            self.work.mkdir(parents=True, exist_ok=True)
            for d in (self.src, tmp):
                shutil.rmtree(d, ignore_errors=True)
            subprocess.run(["cp", "-a", str(self.pristine), str(tmp)],
                           check=True)
            (tmp / ".vballoon-extracted").unlink(missing_ok=True)
            (tmp / ".vballoon-worktree").write_text("%s\n" % self.pristine)
            tmp.rename(self.src)
            for d in (CACHE / "intree").iterdir():
                if d.is_dir() and d != self.work:
                    log("removing old %s" % d)
                    shutil.rmtree(d)
        graft(self.src)

    def config_hash(self, variant):
        """Names the O= dir: must stay byte-for-byte what earlier versions
        computed (sha256 of this header and the fragments, catenated), so
        their builds are reused."""
        data = ("recipe %d %s %s tinyconfig\n" %
                (RECIPE, self.kver, variant.name)).encode()
        for f in variant.fragments:
            data += f.read_bytes()
        return sha256(data)[:12]

    def obj_dir(self, variant):
        return self.work / ("%s-%s" % (variant.name,
                                       self.config_hash(variant)))

    def grafted_hash(self):
        """What the graft put into the tree (vballoon's sources and the
        two hooked files)."""
        vb = self.src / "drivers" / "virtio" / "vballoon"
        files = sorted(p for p in vb.rglob("*") if p.is_file())
        files += [self.src / "include" / "linux" / "vballoon_virtio.h",
                  self.src / "drivers" / "virtio" / "Kconfig",
                  self.src / "drivers" / "virtio" / "Makefile"]
        h = hashlib.sha256()
        for p in files:
            h.update(("%s %s\n" % (sha256(p.read_bytes()),
                                   p.relative_to(self.src))).encode())
        return h.hexdigest()

    def symbol_defined(self, name):
        """Whether a Kconfig file of the tree's virtio or KUnit directory
        defines CONFIG_<name>."""
        pat = re.compile(r"^\s*(menu)?config\s+%s$" % re.escape(name), re.M)
        for d in ("drivers/virtio", "lib/kunit"):
            for p in (self.src / d).rglob("Kconfig*"):
                if p.is_file() and pat.search(p.read_text(errors="replace")):
                    return True
        return False

    def make(self, out, *args):
        return ["make", "-C", str(self.src), "O=%s" % out] + ARCH_ARGS + \
            list(args)


# --------------------------------------------------------------------------
# the two kernels

class Variant:
    """A kernel built from the working tree with one set of config
    fragments on top of tinyconfig."""
    name = None
    fragments = ()

    def artefacts(self, out):
        """The files a finished build in `out` has."""
        return [out / "arch/x86/boot/bzImage", out / "vmlinux"]

    def missing(self, out):
        return [str(p) for p in self.artefacts(out) if not p.exists()]

    def finish(self, tree, out):
        """After a build (or finding it up to date)."""

    def summary(self, out, seconds):
        raise NotImplementedError


class DebugVariant(Variant):
    """vballoon=y with KASAN, lockdep, kmemleak and KUnit; published for
    the VM harness."""
    name = "debug"
    fragments = (CONFIG_DIR / "base.config", CONFIG_DIR / "debug.config")

    def finish(self, tree, out):
        publish_debug(tree, out)

    def summary(self, out, seconds):
        bz = read_kv(PUBLISH / "current").get("BZIMAGE", "")
        return ["debug  bzImage:     %s" % bz,
                "debug  build dir:   %s" % out,
                "debug  harness:     %s" % (PUBLISH / "current"),
                "debug  build time:  %s" % fmt_time(seconds)]


class ModuleVariant(Variant):
    """vballoon=m (and its KUnit suite as a module), no debug options."""
    name = "module"
    fragments = (CONFIG_DIR / "base.config", CONFIG_DIR / "module.config")

    def kunit_modules(self, out):
        return sorted((out / "drivers/virtio/vballoon/tests").rglob("*.ko"))

    def artefacts(self, out):
        files = super().artefacts(out)
        files.append(out / "drivers/virtio/vballoon/vballoon.ko")
        config = kconfig.parse_file(out / ".config") \
            if (out / ".config").exists() else kconfig.Kconfig()
        if config.get("VBALLOON_KUNIT_TEST") == "m":
            files += self.kunit_modules(out) or \
                [out / "drivers/virtio/vballoon/tests/*.ko"]
        return files

    def missing(self, out):
        """Also: the module must carry the project's VERSION (graft.sh
        copies the file; the driver's Makefile reads it)."""
        gone = super().missing(out)
        ko = out / "drivers/virtio/vballoon/vballoon.ko"
        if not gone and ko.exists():
            want = (TOP / "VERSION").read_text().strip()
            got = subprocess.run(["modinfo", "-F", "version", str(ko)],
                                 capture_output=True, text=True).stdout.strip()
            if got != want:
                gone.append("%s: modinfo version %r, VERSION says %r" %
                            (ko, got, want))
        return gone

    def summary(self, out, seconds):
        lines = ["module vballoon.ko: %s" %
                 (out / "drivers/virtio/vballoon/vballoon.ko")]
        lines += ["module KUnit .ko:   %s" % t
                  for t in self.kunit_modules(out)]
        return lines + ["module build time:  %s" % fmt_time(seconds)]


VARIANTS = {v.name: v for v in (DebugVariant(), ModuleVariant())}


# --------------------------------------------------------------------------
# configuring and building one variant

def configure(tree, variant, out):
    log("%s: configuring (tinyconfig + %s)" %
        (variant.name, " ".join(f.name for f in variant.fragments)))
    out.mkdir(parents=True, exist_ok=True)
    merge = [str(tree.src / "scripts/kconfig/merge_config.sh"), "-m", "-O",
             str(out), str(out / ".config")] + \
        [str(f) for f in variant.fragments]
    with open(out / "config.log", "w") as logf:
        ok = (run_logged(tree.make(out, "tinyconfig"), logf) and
              run_logged(merge, logf) and
              run_logged(tree.make(out, "olddefconfig"), logf))
    if not ok:
        print(tail(out / "config.log", 30), file=sys.stderr)
        raise Fail("%s: configuration failed (log: %s)" %
                   (variant.name, out / "config.log"))
    verify_config(tree, variant, out / ".config")


def verify_config(tree, variant, config_path):
    """Every symbol of the fragments has the value asked for, except an
    optional one ("# vballoon-optional: SYM") the tree does not define."""
    wanted = kconfig.parse_files(variant.fragments)
    actual = kconfig.parse_file(config_path)
    skipped = sorted(n for n in wanted.optional
                     if actual.get(n) is None and not tree.symbol_defined(n))
    for n in skipped:
        log("%s: note: CONFIG_%s is not defined in the tree (yet); skipped"
            % (variant.name, n))
    wanted = wanted.without(skipped)
    if not wanted.is_subset_of(actual):
        bad = wanted.differences(actual)
        for entry, have in bad:
            print("  CONFIG_%s: wanted %s, got %s" %
                  (entry.name, entry.value, have), file=sys.stderr)
        raise Fail("%s: %d config symbol(s) did not end up as asked "
                   "(unmet dependencies?); see %s" %
                   (variant.name, len(bad), config_path))
    log("%s: config verified (%d symbols)" % (variant.name, len(wanted)))


def build_key(tree, variant):
    """The stamp of a finished build: config, grafted sources, tooling."""
    h = hashlib.sha256(("%s %s %s\n" % (variant.name,
                                        tree.config_hash(variant),
                                        tree.grafted_hash())).encode())
    for f in TOOLING:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def reuse_old_obj_dir(tree, variant, out):
    """Only one O= dir per variant is kept.  After a config change the
    previous one is renamed and reused: kbuild tracks which objects depend
    on which symbols, so a changed fragment rebuilds minutes of objects,
    not the whole kernel."""
    for d in sorted(tree.work.glob(variant.name + "-*")):
        if not d.is_dir() or d == out:
            continue
        if not out.exists():
            log("reusing %s as %s (config changed)" % (d, out))
            d.rename(out)
            (out / "build-first.log").unlink(missing_ok=True)
        else:
            log("removing old %s" % d)
            shutil.rmtree(d)


def build_variant(tree, variant):
    """Configure and build `variant` unless its stamp says it is up to
    date; returns the O= dir."""
    out = tree.obj_dir(variant)
    key = build_key(tree, variant)
    stamp = out / ".vballoon-stamp"
    if stamp.exists() and stamp.read_text().strip() == key and \
            not variant.missing(out):
        log("%s: up to date (%s)" % (variant.name, out))
        return out
    t0 = time.monotonic()
    reuse_old_obj_dir(tree, variant, out)
    configure(tree, variant, out)
    # Always recompile the driver's own objects, so its warnings show up
    # in this log even if a previous (failed) run compiled them already.
    # The modules too: a stale one must not pass for a fresh build.
    for o in ("drivers/virtio/vballoon", "drivers/virtio/vballoon/tests"):
        for p in list((out / o).glob("*.o")) + list((out / o).glob("*.ko")):
            p.unlink()
    logp = out / "build.log"
    log("%s: make -j%s all (log: %s)" % (variant.name, JOBS, logp))
    with open(logp, "w") as logf:
        ok = run_logged(tree.make(out, "-j" + JOBS, "all"), logf)
    # the first build of this O= dir compiled everything: keep its log
    if not (out / "build-first.log").exists():
        shutil.copyfile(logp, out / "build-first.log")
    text = logp.read_text(errors="replace")
    if not ok:
        errors = [l for l in text.splitlines() if re.search("error|Error", l)]
        print("\n".join(errors[:30]), file=sys.stderr)
        print(tail(logp, 20), file=sys.stderr)
        raise Fail("%s: build failed (log: %s)" % (variant.name, logp))
    warnings = [l for l in text.splitlines() if WARNING_RE.search(l)]
    ours = [l for l in warnings if VB_WARN_RE.search(l)]
    if ours:
        print("\n".join(ours), file=sys.stderr)
        raise Fail("%s: warnings in vballoon files (above; log: %s)" %
                   (variant.name, logp))
    missing = variant.missing(out)
    if missing:
        for m in missing:
            print("  missing: %s" % m, file=sys.stderr)
        raise Fail("%s: build finished but artefacts are missing" %
                   variant.name)
    stamp.write_text(key + "\n")
    log("%s: built in %s; warnings in this run: %d (0 in vballoon files)"
        % (variant.name, fmt_time(time.monotonic() - t0), len(warnings)))
    return out


# --------------------------------------------------------------------------
# publishing the debug kernel for the VM harness

def read_kv(path):
    """KEY=VALUE lines of a file (empty if it does not exist)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return {}
    return dict(l.split("=", 1) for l in text.splitlines() if "=" in l)


def write_atomically(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def publish_debug(tree, out):
    """Copy the debug kernel where a rebuild does not overwrite it, install
    its modules there (modules.dep and modules.builtin for the harness)
    and point PUBLISH/current (and current.json) at it."""
    key = (out / ".vballoon-stamp").read_text().strip()
    rel = (out / "include/config/kernel.release").read_text().strip()
    dest = PUBLISH / ("%s-%s" % (rel, key))
    if not (dest / ".complete").exists():
        tmp = dest.with_name(dest.name + ".tmp")
        for d in (dest, tmp):
            shutil.rmtree(d, ignore_errors=True)
        tmp.mkdir(parents=True)
        with open(out / "modules_install.log", "w") as logf:
            ok = run_logged(tree.make(out, "INSTALL_MOD_PATH=%s" % tmp,
                                      "modules_install"), logf)
        if not ok:
            print(tail(out / "modules_install.log", 20), file=sys.stderr)
            raise Fail("debug: modules_install failed")
        for link in ("build", "source"):
            (tmp / "lib/modules" / rel / link).unlink(missing_ok=True)
        shutil.copy(out / "arch/x86/boot/bzImage", tmp)
        shutil.copy(out / "System.map", tmp)
        shutil.copy(out / ".config", tmp / "config")
        (tmp / ".complete").touch()
        tmp.rename(dest)
    # the order and names the harness (and earlier versions) use
    current = {
        "RELEASE": rel,
        "BZIMAGE": dest / "bzImage",
        "MODDIR": dest / "lib/modules" / rel,
        "CONFIG": dest / "config",
        "SYSTEM_MAP": dest / "System.map",
        "BUILD_DIR": out,
        "VMLINUX": out / "vmlinux",
        "KSRC": tree.src,
        "KEY": key,
    }
    # what current named until now: a running VM suite may be using it
    previous = Path(read_kv(PUBLISH / "current").get("BZIMAGE", "/")).parent
    write_atomically(PUBLISH / "current", "".join(
        "%s=%s\n" % kv for kv in current.items()))
    write_atomically(PUBLISH / "current.json", json.dumps(
        {k.lower(): str(v) for k, v in current.items()}, indent=1) + "\n")
    # Keep this one, the previous one and otherwise the newest two (by
    # when they were last made current).
    os.utime(dest)
    old = sorted((d for d in PUBLISH.glob("*-*") if d.is_dir()),
                 key=lambda d: d.stat().st_mtime, reverse=True)
    for d in old[2:]:
        if d not in (dest, previous):
            shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# commands

def cmd_graft(ksrc):
    graft(ksrc)
    return 0


def cmd_build(which="all", print_summary=True):
    variants = list(VARIANTS.values()) if which == "all" \
        else [VARIANTS[which]]
    tree = Tree()
    lock()
    tree.prepare()
    summary, failed = [], []
    for v in variants:
        # one variant failing does not stop the other
        t0 = time.monotonic()
        try:
            out = build_variant(tree, v)
            v.finish(tree, out)
        except Fail as e:
            log("ERROR: %s" % e)
            failed.append(v.name)
            continue
        summary += v.summary(out, time.monotonic() - t0)
    if print_summary and summary:
        print("\n".join(summary), flush=True)
    if failed:
        raise Fail("build failed: %s" % " ".join(failed))
    return 0


def cmd_kunit(args):
    """Build the debug kernel if needed, run its built-in KUnit suites with
    kunit.py exec under QEMU, and fail on a bad kernel log: a lockdep
    splat, WARN or KASAN report does not fail a KUnit case by itself."""
    cmd_build("debug", print_summary=False)
    tree = Tree()
    out = tree.obj_dir(VARIANTS["debug"])
    if kconfig.parse_file(out / ".config").get("VBALLOON_KUNIT_TEST") != "y":
        raise Fail("the debug kernel has no vballoon KUnit suite "
                   "(CONFIG_VBALLOON_KUNIT_TEST is not defined/enabled yet)")
    log("kunit.py exec on %s (QEMU TCG, timeout %ss)" %
        (out / "arch/x86/boot/bzImage", KUNIT_TIMEOUT))
    t0 = time.monotonic()
    sys.stdout.flush()
    rc = subprocess.run(
        [PYTHON, str(tree.src / "tools/testing/kunit/kunit.py"), "exec",
         "--arch=x86_64", "--build_dir=%s" % out,
         "--timeout=%s" % KUNIT_TIMEOUT] + args).returncode
    try:
        text = (out / "test.log").read_text(errors="replace")
    except OSError:
        text = ""
    bad = console.find_bad_lines(text)
    if bad:
        print(console.bad_reports(text), file=sys.stderr)
        log("kunit: the kernel log has %d bad line(s), reports above" %
            len(bad))
        rc = rc or 1
    log("kunit: rc %d (%s; raw log: %s)" %
        (rc, fmt_time(time.monotonic() - t0), out / "test.log"))
    return rc


def cmd_paths():
    tree = Tree()
    print("source tree: %s" % tree.src)
    print("debug O=:    %s" % tree.obj_dir(VARIANTS["debug"]))
    print("module O=:   %s" % tree.obj_dir(VARIANTS["module"]))
    current = PUBLISH / "current"
    if current.exists():
        print("debug kernel (%s):" % current)
        for line in current.read_text().splitlines():
            print("  " + line)
    else:
        print("debug kernel: not built yet (intree.py build debug)")
    return 0


def cmd_clean():
    lock()
    shutil.rmtree(CACHE / "intree", ignore_errors=True)
    shutil.rmtree(PUBLISH, ignore_errors=True)
    log("removed %s and %s" % (CACHE / "intree", PUBLISH))
    return 0


def parser():
    p = argparse.ArgumentParser(
        prog="intree.py", description=__doc__, epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    s = sub.add_parser("graft", help="copy the driver (and tests/kunit/) "
                       "into the kernel tree KSRC and hook it into "
                       "drivers/virtio/{Kconfig,Makefile}; idempotent "
                       "(scripts/graft.sh; 'intree.py KSRC' does the same)")
    s.add_argument("ksrc", metavar="KSRC")
    s = sub.add_parser("build", help="build the debug kernel (vballoon=y, "
                       "KASAN, lockdep, kmemleak, KUnit) and/or the =m "
                       "kernel; an unchanged re-run only checks the "
                       "artefacts")
    s.add_argument("which", nargs="?", default="all",
                   choices=["debug", "module", "all"])
    # (parsed by hand in main(): its arguments are kunit.py's)
    sub.add_parser("kunit", usage="intree.py kunit [ARGS]",
                   help="build the debug kernel if needed and run its "
                   "built-in KUnit suites with kunit.py exec under QEMU; "
                   "ARGS go to kunit.py (e.g. a filter glob)")
    sub.add_parser("paths", help="print where the current artefacts are")
    sub.add_parser("clean", help="remove all in-tree build state from the "
                   "cache")
    return p


def main(argv):
    try:
        if argv[:1] == ["kunit"]:
            return cmd_kunit(argv[1:])
        if len(argv) == 1 and not argv[0].startswith("-") and \
                argv[0] not in ("graft", "build", "paths", "clean") and \
                os.path.isdir(argv[0]):
            return cmd_graft(argv[0])
        args = parser().parse_args(argv)
        if args.command == "graft":
            return cmd_graft(args.ksrc)
        if args.command == "build":
            return cmd_build(args.which)
        if args.command == "paths":
            return cmd_paths()
        return cmd_clean()
    except Fail as e:
        log("ERROR: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
