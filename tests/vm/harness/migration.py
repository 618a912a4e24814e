# SPDX-License-Identifier: GPL-2.0-only
"""Live migration of a guest, driven through its QEMU's QMP.

Free page hinting acts only while QEMU migrates (precopy): these helpers
start a migration to a URI ("exec:cat > /dev/null" throws the stream
away; the guest is paused at the end and resumed with resume()), poll
`query-migrate` until it ends, and return QEMU's final figures
(`ram.normal-bytes`: RAM sent as whole pages, which hinting saves).
"""

from harness.errors import HarnessError
from harness.wait import wait_until

# sent away: the source's own figures are what a test reads
DISCARD_URI = "exec:cat > /dev/null"
ENDED = ("completed", "failed", "cancelled")


def set_bandwidth(vm, bytes_per_s):
    """Limit the migration stream of `vm` to `bytes_per_s`."""
    vm.qmp("migrate-set-parameters", **{"max-bandwidth": int(bytes_per_s)})


def start(vm, uri=DISCARD_URI, bytes_per_s=None):
    """Start a precopy migration of `vm` to `uri` (postcopy off: QEMU
    does not hint with it), bandwidth-limited if `bytes_per_s`."""
    vm.qmp("migrate-set-capabilities", capabilities=[
        {"capability": "postcopy-ram", "state": False}])
    if bytes_per_s:
        set_bandwidth(vm, bytes_per_s)
    vm.qmp("migrate", uri=uri)


def status(vm):
    """`query-migrate` of `vm` (a dict; "status" says where it is)."""
    return vm.qmp("query-migrate")


def wait_ended(vm, timeout):
    """Poll until the migration of `vm` ended; its final `query-migrate`.
    Raises HarnessError when it failed or was cancelled."""
    got = {}

    def ended():
        got["st"] = status(vm)
        return got["st"].get("status") in ENDED
    wait_until(ended, timeout * vm.slowdown, 0.5, "the migration to end",
               lambda: "query-migrate: %r" % got.get("st"))
    if got["st"]["status"] != "completed":
        raise HarnessError("migration %s: %r" % (got["st"]["status"],
                                                got["st"]))
    return got["st"]


def cancel(vm, timeout=30):
    """Cancel a running migration and wait until QEMU says so."""
    vm.qmp("migrate_cancel")
    wait_until(lambda: status(vm).get("status") in ENDED,
               timeout * vm.slowdown, 0.5, "the migration to be cancelled")


def resume(vm):
    """Let the source guest run again after a migration paused it."""
    if vm.qmp("query-status").get("status") != "running":
        vm.qmp("cont")


def migrate(vm, uri=DISCARD_URI, bytes_per_s=None, timeout=300):
    """Migrate `vm` to `uri`, wait for the end, resume it; returns the
    final `query-migrate`."""
    start(vm, uri, bytes_per_s)
    try:
        return wait_ended(vm, timeout)
    except Exception:
        # a timeout, or QEMU said it failed: leave no migration running
        if status(vm).get("status") not in ENDED:
            cancel(vm)
        raise
    finally:
        resume(vm)
