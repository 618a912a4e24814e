# SPDX-License-Identifier: GPL-2.0-only
"""Live migration of a guest, driven through its QEMU's QMP.

Free page hinting acts only while QEMU migrates (precopy): these helpers
start a migration, poll `query-migrate` until it ends, and return QEMU's
final figures (`ram.normal-bytes`: RAM sent as whole pages, which
hinting saves).  Two kinds of destination:

  to_destination()  a second QEMU on this machine, started with the
                    same command line plus `-incoming defer` and
                    listening on a unix socket: once the guest runs
                    there, the VM object switches over to it (its
                    process, sockets, console and log directory) and
                    the source QEMU is quit (Machine.switch_to)
  migrate()         a URI, by default "exec:cat > /dev/null" (the stream
                    is thrown away; the source guest is paused at the
                    end and resumed with resume()); start() and cancel()
                    for migrations that are never meant to complete
"""

import collections
import time

from harness.console import bad_reports
from harness.errors import DestinationFailed, HarnessError
from harness.wait import wait_until

# sent away: the source's own figures are what a test reads
DISCARD_URI = "exec:cat > /dev/null"
ENDED = ("completed", "failed", "cancelled")

# the source's final `query-migrate`, and the monotonic time the harness
# saw it completed
Migrated = collections.namedtuple("Migrated", "stats ended")


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


def wait_running(dest, timeout):
    """Wait until the destination QEMU `dest` runs the guest
    (query-status "running")."""
    got = {}

    def running():
        got["st"] = dest.qmp("query-status").get("status")
        return got["st"] == "running"
    wait_until(running, timeout * dest.slowdown, 0.2,
               "the destination to run the guest",
               lambda: "destination status %r, its query-migrate %r" % (
                   got.get("st"), status(dest)))


def to_destination(vm, bytes_per_s=None, timeout=300, running_timeout=60):
    """Live-migrate `vm` to a second QEMU (vm.destination()) over a unix
    socket, bandwidth-limited if `bytes_per_s`; wait for the end and for
    the guest to run there, check the agent channel with a round trip,
    then switch `vm` over to the destination (the source QEMU is quit).
    Returns Migrated(the source's final `query-migrate`, when it was
    seen completed).

    If anything fails before the switch, the destination is killed and
    the source guest goes on running (no migration left running).  A
    guest that does not go on in the destination once the migration
    completed is a DestinationFailed (with what the destination's
    console shows)."""
    dest = vm.destination()
    try:
        dest.start_incoming()
        start(vm, dest.incoming_uri, bytes_per_s)
        try:
            st = wait_ended(vm, timeout)
        except Exception:
            if status(vm).get("status") not in ENDED:
                cancel(vm)
            raise
        ended = time.monotonic()
        try:
            wait_running(dest, running_timeout)
            dest.ping()
        except Exception as exc:
            raise DestinationFailed(
                "the migration completed (ram %r), but the guest did not "
                "go on in the destination QEMU (logs: %s): %s\n%s" % (
                    st.get("ram"), dest.log_dir, exc,
                    bad_reports(dest.console()))) from exc
    except BaseException:
        dest.kill()
        if vm.alive():
            try:
                resume(vm)
            except Exception:
                pass    # what went wrong first is what the caller sees
        raise
    vm.switch_to(dest)
    return Migrated(st, ended)
