#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Run the vballoon VM test suite (used by `make check`).

    tests/vm/run.py                      # both kernels, all tests
    tests/vm/run.py --kernels 6.12       # only the newest 6.12 kernel
    tests/vm/run.py --kernels 6.1,6.12,debug   # plus the debug kernel
    tests/vm/run.py -k stats -x          # extra arguments go to pytest

Boots 2 guests per kernel under QEMU/TCG (deflate-on-oom on and off) and
runs every scenario against our vballoon.ko and the kernel's own
virtio_balloon.ko.  vballoon.ko is expected in build/<release>/ (see
`make modules`); without it the vballoon tests fail with a message saying
so, the virtio_balloon parity tests still run.  Exits non-zero on any
failure; pytest's closing "N passed, N failed" line is the last output.

"debug" is the 6.12 KASAN/lockdep/kmemleak kernel that `make intree`
builds, with vballoon built in (bound/unbound instead of insmod/rmmod);
it is not in the default set.
"""

import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Unknown arguments are passed to "
                                 "pytest.")
    ap.add_argument("--kernels", help="comma separated kernel series: "
                    "6.1, 6.12 and/or debug (the `make intree` debug kernel)"
                    " (default 6.1,6.12)")
    ap.add_argument("--quiet", action="store_true",
                    help="one character per test instead of one line")
    args, rest = ap.parse_known_args()
    if args.kernels:
        os.environ["VBALLOON_KERNELS"] = args.kernels
    for tool in ("qemu-system-x86_64", "gcc"):
        if not shutil.which(tool):
            sys.exit("run.py: %s not found (apt-get install qemu-system-x86 "
                     "gcc busybox-static)" % tool)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
        else sys.executable
    cmd = [python, "-m", "pytest", HERE, "-q" if args.quiet else "-v",
           "--durations=5"] + rest
    print("run.py:", " ".join(cmd), flush=True)
    os.execv(python, cmd)


if __name__ == "__main__":
    main()
