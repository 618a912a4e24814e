# SPDX-License-Identifier: GPL-2.0-only
"""The harness's exceptions: what went wrong, and whose fault it is.

HarnessError and its subclasses mean the harness or the emulator could
not do what was asked; the AssertionError subclasses are test failures
(a guest command failed, a condition was never met).
"""


class HarnessError(Exception):
    """The harness itself cannot do what was asked (missing kernel, ...)."""


class VMDied(HarnessError):
    """QEMU exited or the guest stopped answering."""


class QMPError(HarnessError):
    """QMP returned an error object."""


class CommandFailed(AssertionError):
    """vm.check(): a guest command returned non-zero."""


class WaitTimeout(AssertionError):
    """wait_until() gave up."""


class DestinationFailed(AssertionError):
    """A live migration to a second QEMU completed, but the guest did not
    go on there (the destination QEMU died, did not run the guest, or its
    agent did not answer)."""
