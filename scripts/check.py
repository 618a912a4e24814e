#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Everything `make check` runs, in order.

A stage (checkpatch, the module builds, the in-tree builds) counts as one
pass or one fail.  A runner stage (KUnit, the VM suite) adds the counts of
its closing summary line (tests/vm/harness/summary.py reads it); a runner
that exited non-zero without a counted failure (a crash, a timeout) adds
one failure, and one that printed no summary counts as a stage.  Ends with
the plain line "N passed, N failed" and exits non-zero if anything failed.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
# the VM harness's one parser of runners' summary lines (stdlib only)
sys.path.insert(0, str(TOP / "tests" / "vm"))
from harness import summary  # noqa: E402

PYTHON = sys.executable or "/usr/bin/python3"


class Check:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []          # names of the stages that failed
        self.start = time.monotonic()

    def stage(self, name, cmd):
        """Run cmd with its output going straight to ours; one pass or one
        fail.  True if it passed."""
        print("=== %s" % name, flush=True)
        t0 = time.monotonic()
        ok = subprocess.run(cmd, cwd=TOP).returncode == 0
        took = int(time.monotonic() - t0)
        if ok:
            self.passed += 1
            print("=== %s: ok (%ds)" % (name, took), flush=True)
        else:
            self.failed += 1
            self.failures.append(name)
            print("=== %s: FAILED (%ds)" % (name, took), flush=True)
        return ok

    def suite(self, name, cmd):
        """Run a test runner, its output (stdout and stderr) shown as it
        comes and kept to read its summary line; its counts are added to
        ours.  True if it exited 0."""
        print("=== %s" % name, flush=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=TOP, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        chunks = []
        while True:
            # raw reads, not lines: progress dots show up at once too
            data = os.read(proc.stdout.fileno(), 65536)
            if not data:
                break
            chunks.append(data)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        proc.stdout.close()
        rc = proc.wait()
        s = summary.parse(b"".join(chunks).decode(errors="replace"))
        if s is not None:
            self.passed += s.passed
            self.failed += s.failed
            if rc != 0 and s.failed == 0:
                self.failed += 1
        elif rc == 0:
            self.passed += 1
        else:
            self.failed += 1
        if rc != 0:
            self.failures.append(name)
        print("=== %s: rc %d (%ds)" % (name, rc, int(time.monotonic() - t0)),
              flush=True)
        return rc == 0

    def finish(self):
        took = int(time.monotonic() - self.start)
        print()
        print("make check: %d min %d s" % (took // 60, took % 60))
        for name in self.failures:
            print("failed stage: %s" % name)
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 1 if self.failed else 0


def main():
    c = Check()
    intree = [PYTHON, str(TOP / "scripts" / "intree.py")]
    c.stage("checkpatch --strict", ["make", "-s", "checkpatch"])
    modules_ok = c.stage("module builds (6.1, 6.12; W=1, sparse)",
                         ["make", "-s", "modules"])
    intree_ok = c.stage("in-tree builds (vballoon=y debug kernel, "
                        "vballoon=m)", intree + ["build"])
    if intree_ok:
        # The test device (tests/vbhost) for the debug kernel needs that
        # kernel's build directory, which a cold run only has now.
        intree_ok = c.stage("test device vbhost.ko for the debug kernel",
                            ["make", "-s", "modules"])
    if intree_ok:
        c.suite("KUnit (kunit.py on the debug kernel)", intree + ["kunit"])
    # The VM suite: Debian 6.1 and 6.12 with vballoon.ko (and
    # virtio_balloon for parity), and the debug kernel (KASAN, lockdep,
    # kmemleak) with vballoon built in, each (kernel, test module) a job;
    # run.py runs them in parallel.
    # test_hinting.py migrates with bookworm-backports' QEMU (unpacked in
    # the cache, not installed): Debian 12's QEMU 7.2 under TCG corrupts
    # guests that migrate with free page hints.
    # (where the VM harness looks: harness.units.cache_dir())
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                         os.path.expanduser("~/.cache"), "vballoon")
    c.stage("QEMU from bookworm-backports (test_hinting.py's migrations)",
            [str(TOP / "scripts" / "qemu-backports.sh"), cache])
    kernels = (["6.1", "6.12"] if modules_ok else []) + \
        (["debug"] if intree_ok else [])
    if kernels:
        c.suite("VM tests (%s)" % ", ".join(kernels),
                [PYTHON, str(TOP / "tests" / "vm" / "run.py"),
                 "--kernels", ",".join(kernels)])
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
