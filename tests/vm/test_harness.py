# SPDX-License-Identifier: GPL-2.0-only
"""Fast self-tests of the harness (no VM is booted)."""

import os
import shutil
import struct
import subprocess
import sys
import time
import types

import pytest

import conftest
import run
import test_oom_off
import test_oom_on
from harness import summary
from harness.cpio import Cpio
from harness.errors import (DestinationFailed, HarnessError, VMDied,
                            WaitTimeout)
from harness.kernels import (DebugKernel, Kernel, find_kernel, version_key)
from harness.modules import ModuleIndex, modinfo_field, modname
from harness.vm import (BOOT_ATTEMPTS, VM, BuiltinVM, boot_attempts,
                        boot_bound_problem, make_vm, param_equal,
                        parse_status)
from harness.wait import wait_until

# -- kernels and modules -----------------------------------------------------


def test_version_sort_picks_newest():
    rels = ["6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-10-amd64"]
    assert max(rels, key=version_key) == "6.1.0-56-amd64"
    rels = ["6.12.9+deb12-amd64", "6.12.117+deb12-amd64",
            "6.12.38+deb12-amd64"]
    assert max(rels, key=version_key) == "6.12.117+deb12-amd64"


def test_kernel_series():
    k = Kernel("6.12.117+deb12-amd64", None, None)
    assert k.series == "6.12"
    assert Kernel("6.1.0-56-amd64", None, None).series == "6.1"


def test_modname():
    assert modname("kernel/drivers/virtio/virtio_pci.ko") == "virtio_pci"
    assert modname("a/virtio-rng.ko.xz") == "virtio_rng"


def test_modinfo_field():
    data = b"\x00\x7fELF...license=GPL\x00depends=virtio,virtio_ring\x00" \
        b"vermagic=6.1.0-56-amd64 SMP mod_unload\x00"
    assert modinfo_field(data, "depends") == "virtio,virtio_ring"
    assert modinfo_field(data, "vermagic").startswith("6.1.0-56-amd64")
    assert modinfo_field(data, "alias") is None


def _moddir(tmp_path, dep, builtin=""):
    d = tmp_path / "lib-modules"
    d.mkdir()
    (d / "modules.dep").write_text(dep)
    (d / "modules.builtin").write_text(builtin)
    return d


def test_module_closure_puts_dependencies_first(tmp_path):
    moddir = _moddir(tmp_path, (
        "kernel/virtio_balloon.ko.xz: kernel/virtio_ring.ko.xz "
        "kernel/virtio.ko.xz\n"
        "kernel/virtio_ring.ko.xz: kernel/virtio.ko.xz\n"
        "kernel/virtio.ko.xz:\n"), "kernel/drivers/virtio/virtio_pci.ko\n")
    idx = ModuleIndex(Kernel("6.1.0-1-amd64", None, moddir))
    assert idx.closure("virtio_balloon") == ["virtio", "virtio_ring",
                                             "virtio_balloon"]
    assert idx.has("virtio_pci") and not idx.has("virtio_blk")
    assert idx.closure("virtio_pci") == []        # built in
    # vballoon.ko's own dependencies come from its .modinfo
    assert idx.closure("vballoon", extra_deps=["virtio_ring"]) == \
        ["virtio", "virtio_ring", "vballoon"]
    with pytest.raises(HarnessError, match="virtio_blk"):
        idx.closure("virtio_blk")


def test_installed_kernels_are_discoverable():
    for series in ("6.1", "6.12"):
        k = find_kernel(series)
        assert k.vmlinuz.exists() and (k.moddir / "modules.dep").exists()
        assert not k.builtin_vballoon


def test_vballoon_ko_follows_build_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VBALLOON_BUILD_DIR", str(tmp_path))
    k = Kernel("6.1.0-56-amd64", None, None)
    assert k.vballoon_ko() == tmp_path / "6.1.0-56-amd64" / "vballoon.ko"
    assert "MISSING" in k.describe()


def test_debug_kernel_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("VBALLOON_DEBUG_KERNEL_DIR", str(tmp_path))
    with pytest.raises(HarnessError, match="make intree"):
        find_kernel("debug")
    assert DebugKernel("6.12.1-x", None, None).series == "debug"


def _publish_debug_kernel(tmp_path, builtin):
    moddir = _moddir(tmp_path, "kernel/virtio_balloon.ko:\n", builtin)
    bz = tmp_path / "bzImage"
    bz.write_bytes(b"kernel")
    pub = tmp_path / "pub"
    pub.mkdir()
    (pub / "current").write_text("RELEASE=6.12.1-vbdebug\nBZIMAGE=%s\n"
                                 "MODDIR=%s\n" % (bz, moddir))
    return pub


def test_debug_kernel_variant(tmp_path, monkeypatch):
    pub = _publish_debug_kernel(tmp_path, "kernel/drivers/virtio/"
                                "vballoon/vballoon.ko\n")
    monkeypatch.setenv("VBALLOON_DEBUG_KERNEL_DIR", str(pub))
    monkeypatch.setenv("VBALLOON_DEBUG_SLOWDOWN", "3")
    monkeypatch.delenv("VBALLOON_DEBUG_CMDLINE", raising=False)
    k = find_kernel("debug")
    assert isinstance(k, DebugKernel) and k.builtin_vballoon
    assert (k.series, k.release, k.slowdown) == ("debug", "6.12.1-vbdebug", 3)
    assert k.cmdline == "pci=noacpi" and k.vballoon_ko() is None


def test_debug_kernel_without_builtin_vballoon(tmp_path, monkeypatch):
    pub = _publish_debug_kernel(tmp_path, "kernel/drivers/virtio/"
                                "virtio_pci.ko\n")
    monkeypatch.setenv("VBALLOON_DEBUG_KERNEL_DIR", str(pub))
    with pytest.raises(HarnessError, match="does not have vballoon built in"):
        find_kernel("debug")


def _unstarted_vm(kernel, tmp_path, monkeypatch, **kw):
    monkeypatch.setenv("VBALLOON_VM_LOGDIR", str(tmp_path / "logs"))
    vm = make_vm(kernel, **kw)
    vm.initramfs = tmp_path / "initrd"
    return vm


def test_make_vm_picks_the_variant(tmp_path, monkeypatch):
    deb = _unstarted_vm(Kernel("6.1.0-56-amd64", tmp_path / "vmlinuz",
                               tmp_path), tmp_path, monkeypatch,
                        deflate_on_oom=False)
    dbg = _unstarted_vm(DebugKernel("6.12.1-vbdebug", tmp_path / "bz",
                                    tmp_path, slowdown=4), tmp_path,
                        monkeypatch, append="quiet")
    try:
        assert type(deb) is VM and type(dbg) is BuiltinVM
        assert (deb.slowdown, dbg.slowdown) == (1, 4)
        cmd = deb.command_line()
        append = cmd[cmd.index("-append") + 1]
        assert append == "console=ttyS0 panic=-1 mitigations=off"
        assert "deflate-on-oom=off" in cmd[cmd.index("-device") + 1]
        cmd = dbg.command_line()
        assert cmd[cmd.index("-append") + 1] == \
            "console=ttyS0 panic=-1 mitigations=off pci=noacpi quiet"
        assert "deflate-on-oom=on" in cmd[cmd.index("-device") + 1]
    finally:
        deb.kill()
        dbg.kill()


def test_mmio_transport_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("VBALLOON_TSC_KHZ", "2445422")
    monkeypatch.delenv("VBALLOON_MMIO_CMDLINE", raising=False)
    monkeypatch.delenv("VBALLOON_MICROVM_OPTS", raising=False)
    k = Kernel("6.12.1-amd64", tmp_path / "vmlinuz", tmp_path)
    pci = _unstarted_vm(k, tmp_path, monkeypatch, disk_mib=16)
    mmio = _unstarted_vm(k, tmp_path, monkeypatch, disk_mib=16,
                         transport="mmio")
    try:
        cmd = pci.command_line()
        assert "-M" not in cmd and cmd.count("-serial") == 2
        assert cmd[cmd.index("-device") + 1].startswith(
            "virtio-balloon-pci,id=balloon0,")
        assert "virtio-blk-pci,drive=disk0" in cmd
        cmd = mmio.command_line()
        assert cmd[cmd.index("-M") + 1] == "microvm"
        assert cmd[cmd.index("-append") + 1] == (
            "console=ttyS0 panic=-1 mitigations=off tsc_early_khz=2445422 "
            "tsc=reliable")
        devs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
        assert devs[0].startswith("virtio-balloon-device,id=balloon0,")
        assert "isa-serial,index=1,chardev=agent" in devs
        assert "virtio-blk-device,drive=disk0" in devs
        assert cmd.count("-serial") == 1
    finally:
        pci.kill()
        mmio.kill()
    with pytest.raises(HarnessError, match="transport"):
        _unstarted_vm(k, tmp_path, monkeypatch, transport="ccw")


def test_destination_command_line_and_switch_over(tmp_path, monkeypatch):
    import socket
    from harness import qemu
    vm = _unstarted_vm(Kernel("6.12.1-amd64", tmp_path / "vmlinuz",
                              tmp_path), tmp_path, monkeypatch,
                       mem_mib=1024, objects=("iothread,id=iot0",),
                       balloon_props={"free-page-hint": "on",
                                      "iothread": "iot0"})
    # stand-ins for the two QEMUs: the source quits when it reads a line
    # on its QMP socket, the destination runs until killed
    src_qmp, src_peer = socket.socketpair()
    vm.proc = subprocess.Popen(["head", "-n1"], stdin=src_peer,
                               stdout=subprocess.DEVNULL)
    src_peer.close()
    vm.qmp_sock = src_qmp
    vm.agent_sock = socket.socketpair()[0]
    with qemu._live_lock:
        qemu._live_vms.add(vm)
    dest = vm.destination()
    try:
        assert type(dest) is VM and dest.incoming and not vm.incoming
        assert dest.log_dir.parent == vm.boot_log_dir == vm.log_dir
        assert dest.sockdir != vm.sockdir
        assert dest.incoming_uri == "unix:%s/mig" % dest.sockdir
        src, dst = vm.command_line(), dest.command_line()
        assert dst[-2:] == ["-incoming", "defer"]
        assert "-incoming" not in src
        same = [a.replace(str(dest.sockdir), str(vm.sockdir))
                .replace(str(dest.log_dir), str(vm.log_dir))
                for a in dst[:-2]]
        assert same == src
        assert "file,id=con,path=%s/console.log" % dest.log_dir in dst
        with pytest.raises(HarnessError, match="start_incoming"):
            dest.start()
        with pytest.raises(HarnessError, match="destination"):
            vm.start_incoming()

        vm.console_path.write_text("on the source\n")
        dest.console_path.write_text("on the destination\n")
        dest.proc = subprocess.Popen(["sleep", "600"])
        dest.qmp_sock, dest.agent_sock = socket.socketpair()
        with qemu._live_lock:
            qemu._live_vms.add(dest)
        old_proc, old_sockdir, new_proc = vm.proc, vm.sockdir, dest.proc
        vm.switch_to(dest)
        assert old_proc.poll() == 0             # quit, not killed
        assert not old_sockdir.exists()
        assert vm.proc is new_proc and vm.alive()
        assert vm.log_dir == dest.log_dir == vm.boot_log_dir / "incoming-1"
        assert vm.console() == "on the source\non the destination\n"
        assert vm in qemu._live_vms and dest not in qemu._live_vms
        dest.kill()                 # the emptied destination owns nothing
        assert vm.alive()
        assert vm.destination().log_dir.name == "incoming-2"
    finally:
        dest.kill()
        vm.kill()
    assert new_proc.poll() is not None and vm not in qemu._live_vms


def test_failed_migration_kills_the_destination_keeps_the_source():
    from harness import migration

    class FakeQEMU:
        slowdown = 1

        def __init__(self, status):
            self.status, self.sent, self.killed = status, [], False
            self.incoming_uri = "unix:/nowhere/mig"

        def qmp(self, execute, **args):
            self.sent.append(execute)
            if execute == "query-migrate":
                return {"status": self.status}
            if execute == "query-status":
                return {"status": "paused"}
            return {}

        def alive(self):
            return True

        def destination(self):
            return dest

        def start_incoming(self):
            return self

        def kill(self):
            self.killed = True

        def switch_to(self, other):
            raise AssertionError("switched over after a failure")

        def console(self):
            return "[ 1.0] BUG: kernel NULL pointer dereference\n"

    src, dest = FakeQEMU("failed"), FakeQEMU("")
    with pytest.raises(HarnessError, match="migration failed"):
        migration.to_destination(src, bytes_per_s=32 << 20)
    assert dest.killed and not src.killed
    assert "migrate" in src.sent and src.sent[-1] == "cont"
    # completed, but the guest never runs in the destination
    src, dest = FakeQEMU("completed"), FakeQEMU("")
    dest.log_dir = "/logs/incoming-1"
    with pytest.raises(DestinationFailed, match="(?s)incoming-1.*NULL"):
        migration.to_destination(src, running_timeout=0.2)
    assert dest.killed and src.sent[-1] == "cont"


def test_host_tsc_khz_is_measured(monkeypatch):
    from harness.qemu import host_tsc_khz
    if shutil.which("gcc") is None or os.uname().machine != "x86_64":
        pytest.skip("needs gcc on an x86_64 host")
    monkeypatch.delenv("VBALLOON_TSC_KHZ", raising=False)
    khz = host_tsc_khz()
    assert 100000 < khz < 10000000, khz


def test_vm_wait_until_scales_by_the_kernels_slowdown():
    fast = types.SimpleNamespace(slowdown=0.01)
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout):
        VM.wait_until(fast, lambda: False, 10, 0.01)
    assert time.monotonic() - t0 < 5
    slow = types.SimpleNamespace(slowdown=100)
    with pytest.raises(WaitTimeout, match="after [1-9]"):
        VM.wait_until(slow, lambda: False, 0.02, 0.05)


def test_param_equal():
    assert param_equal("oom", "oom") and param_equal("1", "Y")
    assert param_equal("off", "N") and not param_equal("on", "N")
    assert not param_equal("5", None) and not param_equal("5", "6")


def test_parse_status():
    st = parse_status("balloon_pages 512\nautodeflate pressure\n"
                      "delta -3\n\n  requests 7\n")
    assert st == {"balloon_pages": 512, "autodeflate": "pressure",
                  "delta": -3, "requests": 7}


# -- boots ----------------------------------------------------------------

DEBIAN = Kernel("6.12.1-amd64", None, None)
DEBUG = DebugKernel("6.12.1-vbdebug", None, None)


def test_boot_retried_only_without_builtin_vballoon():
    assert boot_attempts(DEBIAN) == BOOT_ATTEMPTS > 1
    assert boot_attempts(DEBUG) == 1


def test_boot_bound_is_the_balloon_device():
    assert boot_bound_problem(["virtio2"], "virtio2") is None
    assert "bound nothing" in boot_bound_problem([], "virtio2")
    assert boot_bound_problem(["virtio1", "virtio2"], "virtio2")


def _boot(monkeypatch, kernel, ok, bound=("virtio0",)):
    """(boots VMSlot.get() tried, what it raised); boot i works if ok[i]."""
    tried = []

    def fake_make_vm(kernel, **kwargs):
        works = ok[len(tried)]
        tried.append(works)

        def start():
            if not works:
                raise VMDied("guest died while booting")
        return types.SimpleNamespace(
            start=start, boot_seconds=1, log_dir="logs", console_path="c",
            boot_bound=list(bound), balloon_device=lambda: "virtio0",
            alive=lambda: False, console_tail=lambda lines=30: "")
    monkeypatch.setattr(conftest, "make_vm", fake_make_vm)
    slot = conftest.VMSlot(kernel, {}, "t")
    _boot.slot = slot
    try:
        slot.get()
    except BaseException as exc:        # pytest.fail is not an Exception
        return len(tried), exc
    return len(tried), None


def test_slot_retries_debian_boots_and_not_debug_boots(monkeypatch):
    assert _boot(monkeypatch, DEBIAN, [False, False, True]) == (3, None)
    for kernel, n in ((DEBIAN, 3), (DEBUG, 1)):
        tried, exc = _boot(monkeypatch, kernel, [False] * 3 + [True])
        assert tried == n and isinstance(exc, VMDied)
    assert _boot(monkeypatch, DEBUG, [True]) == (1, None)


def test_slot_fails_a_debug_boot_without_vballoon_bound(monkeypatch):
    n, exc = _boot(monkeypatch, DEBUG, [True], bound=())
    assert n == 1 and "bound nothing" in str(exc)
    assert _boot(monkeypatch, DEBIAN, [True], bound=()) == (1, None)


def test_end_of_boot_check_repeats_debug_boot_problems(monkeypatch):
    # the module's end-of-boot check fails too, whichever test booted
    _boot(monkeypatch, DEBUG, [True], bound=())
    problems = _boot.slot.end_of_boot_problems()
    assert len(problems) >= 1 and "bound nothing" in problems[0]
    _boot(monkeypatch, DEBUG, [False])
    problems = _boot.slot.end_of_boot_problems()
    assert problems and "guest died while booting" in problems[0]
    # a Debian boot that needed a retry is not a problem
    _boot(monkeypatch, DEBIAN, [False, True])
    assert _boot.slot.boot_problems == []


# -- waits -------------------------------------------------------------------

def test_wait_until_returns_value_and_explains_timeout():
    seq = iter([0, 0, 7])
    assert wait_until(lambda: next(seq), 5, 0.01) == 7
    with pytest.raises(WaitTimeout) as ei:
        wait_until(lambda: False, 0.2, 0.05, "the moon",
                   lambda: "state: cheese")
    msg = str(ei.value)
    assert "the moon" in msg and "state: cheese" in msg


def test_wait_until_does_not_retry_harness_errors():
    calls = []

    def pred():
        calls.append(1)
        raise HarnessError("QEMU exited")
    with pytest.raises(HarnessError):
        wait_until(pred, 5, 0.01)
    assert len(calls) == 1


# -- cpio --------------------------------------------------------------------

def _read_newc(data):
    """(name, mode, body) of each entry of a newc archive."""
    out, off = [], 0
    while True:
        assert data[off:off + 6] == b"070701", off
        f = [int(data[off + 6 + 8 * i:off + 14 + 8 * i], 16)
             for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        off += 110
        name = data[off:off + namesize - 1].decode()
        off += namesize
        off += -off % 4
        body = data[off:off + size]
        off += size
        off += -off % 4
        if name == "TRAILER!!!":
            return out, off
        out.append((name, mode, body))


def test_cpio_writer_format():
    c = Cpio()
    c.dir("etc")
    c.file("etc/hello", b"hello", 0o600)
    c.symlink("bin/sh", "busybox")
    c.chardev("dev/null", 1, 3)
    data = c.finish()
    assert len(data) % 512 == 0
    entries, end = _read_newc(data)
    assert [(n, oct(m)) for n, m, _ in entries] == [
        ("etc", "0o40755"), ("etc/hello", "0o100600"),
        ("bin/sh", "0o120777"), ("dev/null", "0o20600")]
    assert entries[1][2] == b"hello" and entries[2][2] == b"busybox"
    assert data[end:] == b"\0" * (len(data) - end)
    # device numbers: rdevmajor / rdevminor of the last entry
    hdr = data.rindex(b"070701", 0, data.index(b"dev/null"))
    assert struct.unpack("8s8s", data[hdr + 78:hdr + 94]) == \
        (b"00000001", b"00000003")


@pytest.mark.skipif(not shutil.which("cpio"), reason="cpio not installed")
def test_cpio_writer_is_readable(tmp_path):
    c = Cpio()
    c.dir("etc")
    c.file("etc/hello", b"hello world\n", 0o600)
    c.symlink("link", "etc/hello")
    c.chardev("console", 5, 1)
    img = tmp_path / "x.cpio"
    img.write_bytes(c.finish())
    out = subprocess.run(["cpio", "-itv", "--quiet"], stdin=open(img, "rb"),
                         stdout=subprocess.PIPE, check=True, text=True).stdout
    assert "etc/hello" in out and "link -> etc/hello" in out
    assert "console" in out
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames",
                    "--nonmatching", "console"], stdin=open(img, "rb"),
                   cwd=dest, check=True)
    assert (dest / "etc/hello").read_bytes() == b"hello world\n"


# -- summary lines -----------------------------------------------------------

def test_summary_plain_line():
    s = summary.parse_line("12 passed, 1 failed")
    assert (s.passed, s.failed, s.skipped) == (12, 1, 0)
    s = summary.parse_line("VM: 3 passed, 0 failed, 2 skipped")
    assert (s.passed, s.failed, s.skipped) == (3, 0, 2)
    assert summary.parse_line("12 passed, 1 failed, soon") is None


def test_summary_pytest_line_counts_errors_as_failures():
    s = summary.parse_line("===== 2 failed, 50 passed, 3 skipped, 1 error "
                           "in 600.12s (0:10:00) =====")
    assert (s.passed, s.failed, s.skipped) == (50, 3, 3)
    assert s.line == "2 failed, 50 passed, 3 skipped, 1 error"
    s = summary.parse_line("=== no tests ran in 0.01s ===")
    assert (s.passed, s.failed) == (0, 0)


def test_summary_kunit_line():
    s = summary.parse_line("[12:00:01] Testing complete. Ran 44 tests: "
                           "passed: 43, failed: 1")
    assert (s.passed, s.failed) == (43, 1)
    assert summary.parse_line("Ran 5 tests: passed: 5").passed == 5


def test_summary_last_line_wins_and_none():
    text = "3 passed, 1 failed\nnoise\n=== 7 passed in 1.00s ===\nbye\n"
    s = summary.parse(text)
    assert (s.passed, s.failed) == (7, 0)
    assert summary.parse("no summary here\n") is None
    assert summary.parse("") is None


# -- run.py job accounting ---------------------------------------------------

def test_run_job_failures():
    ok = summary.Summary(passed=5)
    bad = summary.Summary(passed=5, failed=2)
    assert run.failures(ok, 0) == 0
    assert run.failures(bad, 1) == 2
    assert run.failures(None, 0) == 1       # printed no summary
    assert run.failures(ok, -9) == 1        # killed after its summary
    assert run.failures(summary.Summary(), 5) == 0   # no tests collected


DEATH = """\
the guest died during the test
kernel problems on the guest console during this test:
  [    4.821644] Oops: double fault: 0000 [#1] PREEMPT SMP NOPTI
[    4.467103] vballoon virtio0: vballoon ready: must-tell-host off
[    4.830862]  serial8250_handle_irq+0x2c0/0x460
[    4.831749]  filemap_map_pages+0xcf/0x680
[    4.836093] Modules linked in: vballoon(OE) virtio_mmio
"""


def test_run_reruns_only_emulator_deaths_without_driver_frames():
    assert run.emulator_death(DEATH) == "Oops: double fault"
    assert run.emulator_death(DEATH.replace("double fault", "int3")) == \
        "Oops: int3"
    # our function in a trace, from the module or built in: a real failure
    assert run.emulator_death(DEATH + " vb_inflate_retire+0x1f/0x90 "
                              "[vballoon]\n") is None
    assert run.emulator_death(DEATH + " vballoon_probe+0x1f/0x90\n") is None
    # another death, or no death at all
    assert run.emulator_death(DEATH.replace("double fault",
                                            "general protection")) is None
    assert run.emulator_death(DEATH.replace("guest died", "test")) is None


def test_run_job_reads_its_output():
    job = run.Job("6.1", "oom_on", ["-x"], sys.executable)
    assert job.env["VBALLOON_KERNELS"] == "6.1" and "-x" in job.cmd
    assert run.Job("debug", "batch", [], "py").env["VBALLOON_DRIVERS"] == \
        os.environ.get("VBALLOON_DRIVERS", "vballoon")
    # virtio_balloon beside vballoon: 6.12 everywhere, 6.1 where the
    # issues measure both kernels
    drivers = os.environ.get("VBALLOON_DRIVERS")
    assert run.Job("6.1", "oom_on", [], "py").env.get(
        "VBALLOON_DRIVERS") == (drivers or "vballoon")
    assert run.Job("6.1", "reporting", [], "py").env.get(
        "VBALLOON_DRIVERS") == drivers
    assert run.Job("6.12", "oom_on", [], "py").env.get(
        "VBALLOON_DRIVERS") == drivers
    job.cmd = [sys.executable, "-c", "print('x'); print('==== 1 failed, "
               "4 passed, 2 skipped in 3.00s ===='); raise SystemExit(1)"]
    job.launch()
    job.proc.wait(60)
    text = job.finish()
    assert "x\n" in text
    assert (job.passed, job.failed, job.skipped) == (4, 1, 2)
    assert job.summary == "1 failed, 4 passed, 2 skipped"


def test_harness_job_runs_every_self_test_file():
    files = [os.path.basename(f) for f in run.module_files("harness")]
    assert "test_harness.py" in files and \
        "test_harness_console.py" in files
    assert [os.path.basename(f) for f in run.module_files("batch")] == \
        ["test_batch.py"]


# -- test modules ------------------------------------------------------------

def test_repeated_tests_are_recognised():
    assert conftest.is_repeat(test_oom_off.test_inflate_half_and_back,
                              test_oom_off)
    assert not conftest.is_repeat(test_oom_off.test_memtotal_follows_balloon,
                                  test_oom_off)
    assert not conftest.is_repeat(test_oom_on.test_inflate_half_and_back,
                                  test_oom_on)


def test_vm_modules_say_how_their_device_looks():
    import test_autodeflate
    import test_batch
    import test_mmio
    for mod in (test_oom_on, test_oom_off, test_batch, test_autodeflate,
                test_mmio):
        marks = mod.pytestmark if isinstance(mod.pytestmark, list) else \
            [mod.pytestmark]
        cfg = [m for m in marks if m.name == "vm_config"]
        assert len(cfg) == 1 and isinstance(cfg[0].args[0], str), mod
        assert "deflate_on_oom" in cfg[0].kwargs, mod
