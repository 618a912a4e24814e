# SPDX-License-Identifier: GPL-2.0-only
"""Fast self-tests of the harness (no VM is booted)."""

import shutil
import subprocess

import pytest

import vmlib


def test_version_sort_picks_newest():
    rels = ["6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-10-amd64"]
    assert max(rels, key=vmlib._version_key) == "6.1.0-56-amd64"
    rels = ["6.12.9+deb12-amd64", "6.12.117+deb12-amd64",
            "6.12.38+deb12-amd64"]
    assert max(rels, key=vmlib._version_key) == "6.12.117+deb12-amd64"


def test_kernel_series():
    k = vmlib.Kernel("6.12.117+deb12-amd64", None, None)
    assert k.series == "6.12"
    assert vmlib.Kernel("6.1.0-56-amd64", None, None).series == "6.1"


def test_modname():
    assert vmlib._modname("kernel/drivers/virtio/virtio_pci.ko") == \
        "virtio_pci"
    assert vmlib._modname("a/virtio-rng.ko.xz") == "virtio_rng"


def test_modinfo_field():
    data = b"\x00\x7fELF...license=GPL\x00depends=virtio,virtio_ring\x00" \
        b"vermagic=6.1.0-56-amd64 SMP mod_unload\x00"
    assert vmlib.modinfo_field(data, "depends") == "virtio,virtio_ring"
    assert vmlib.modinfo_field(data, "vermagic").startswith("6.1.0-56-amd64")
    assert vmlib.modinfo_field(data, "alias") is None


def test_bad_console_lines_found():
    text = ("[ 1.0] ok\n[ 2.0] WARNING: CPU: 1 PID: 5 at foo.c:1\n"
            "[ 2.1] Call Trace:\n[ 3.0] BUG: kernel NULL pointer\n"
            "[ 4.0] virtio_balloon virtio0: fine\n")
    bad = vmlib.find_bad_lines(text)
    assert len(bad) == 3
    assert not vmlib.find_bad_lines("[ 1.0] module verification failed: "
                                    "signature and/or required key missing "
                                    "- tainting kernel\n")
    assert vmlib.find_bad_lines("Out of memory: Killed process 12",
                                vmlib.OOM_PATTERNS)


def test_wait_until_returns_value_and_explains_timeout():
    seq = iter([0, 0, 7])
    assert vmlib.wait_until(lambda: next(seq), 5, 0.01) == 7
    with pytest.raises(vmlib.WaitTimeout) as ei:
        vmlib.wait_until(lambda: False, 0.2, 0.05, "the moon",
                         lambda: "state: cheese")
    msg = str(ei.value)
    assert "the moon" in msg and "state: cheese" in msg


@pytest.mark.skipif(not shutil.which("cpio"), reason="cpio not installed")
def test_cpio_writer_is_readable(tmp_path):
    c = vmlib.Cpio()
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


def test_installed_kernels_are_discoverable():
    for series in ("6.1", "6.12"):
        k = vmlib.find_kernel(series)
        assert k.vmlinuz.exists() and (k.moddir / "modules.dep").exists()


def test_bad_reports_show_context():
    text = "\n".join([
        "[ 1.0] ok",
        "[ 2.0] ==================================================================",
        "[ 2.0] BUG: KASAN: slab-use-after-free in vb_inflate+0x10/0x20",
        "[ 2.0] Read of size 8 at addr ffff888",
        "[ 2.0] Call Trace:",
        "[ 2.0]  vb_inflate+0x10/0x20",
        "[ 2.0] ==================================================================",
        "[ 3.0] later line",
        "[ 4.0] WARNING: possible circular locking dependency detected",
    ])
    bad = vmlib.find_bad_lines(text)
    assert any("KASAN" in l for l in bad)
    rep = vmlib.bad_reports(text)
    assert "Read of size 8" in rep and "vb_inflate+0x10" in rep
    first, second = rep.split("----- kernel report 2")
    assert "later line" not in first      # the report ends at its "===="
    assert "circular locking" in second
    for p in ("sleeping function called from invalid context",
              "inconsistent lock state", "suspicious RCU usage",
              "possible recursive locking", "WARNING: lock held"):
        assert vmlib.find_bad_lines("[ 1.0] " + p), p
    assert vmlib.bad_reports("all fine\n") == ""


def test_parse_kmemleak():
    text = """unreferenced object 0xffff8880 (size 64):
  comm "sh", pid 1, jiffies 4294
  backtrace (crc 0):
    kmemleak_alloc+0x4a/0x80
    vb_stats_init+0x22/0x40
unreferenced object 0xffff8881 (size 32):
  comm "swapper/0", pid 1, jiffies 4294
  backtrace (crc 0):
    acpi_ut_allocate+0x1/0x2
"""
    ours, others = vmlib.parse_kmemleak(text)
    assert len(ours) == 1 and "vb_stats_init" in ours[0]
    assert len(others) == 1 and "acpi_ut_allocate" in others[0]
    assert vmlib.parse_kmemleak("") == ([], [])


def test_debug_kernel_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("VBALLOON_DEBUG_KERNEL_DIR", str(tmp_path))
    with pytest.raises(vmlib.HarnessError, match="make intree"):
        vmlib.find_kernel("debug")
    assert vmlib.Kernel("6.12.1-x", None, None, label="debug").series \
        == "debug"


def test_timeout_scale():
    old = vmlib.set_timeout_scale(0.01)
    try:
        t0 = vmlib.time.monotonic()
        with pytest.raises(vmlib.WaitTimeout):
            vmlib.wait_until(lambda: False, 10, 0.01)
        assert vmlib.time.monotonic() - t0 < 5
    finally:
        vmlib.set_timeout_scale(old)
