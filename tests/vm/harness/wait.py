# SPDX-License-Identifier: GPL-2.0-only
"""Polling with a helpful timeout message.

Tests call vm.wait_until(), which scales the timeout by the slowdown of
the VM's kernel (the debug kernel's sanitizers make everything slower);
this is the unscaled function underneath.
"""

import time

from harness.errors import HarnessError, WaitTimeout


def wait_until(pred, timeout, interval=0.5, what="condition", describe=None):
    """Poll pred() until it returns a truthy value, which is returned.

    Raises WaitTimeout after `timeout` seconds, naming `what`, the last
    value pred() returned (or the exception it raised) and, if given, the
    text that describe() returns at that moment (e.g. the current balloon
    state).  A HarnessError (the VM died, ...) from pred() is not retried.
    """
    start = time.monotonic()
    deadline = start + timeout
    last, last_exc = None, None
    while True:
        try:
            last = pred()
            last_exc = None
            if last:
                return last
        except HarnessError:
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
