# SPDX-License-Identifier: GPL-2.0-only
"""The package and `make install` on the host (no guest): what
vballoon-dkms holds, that DKMS's build and clean commands work on its
sources for both Debian kernels, and that `make install` / `make
uninstall` put everything in place and take all of it away again.

(test_image.py installs the package in a real guest.)
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
sys.path.insert(0, str(HERE))

import build  # noqa: E402

VERSION = (TOP / "VERSION").read_text().strip()
PKG_SRC = "usr/src/vballoon-%s" % VERSION


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          **kw).stdout


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """`make deb`'s package (scripts/deb.sh, lintian included: errors
    fail it), built into a directory of this test's."""
    out = tmp_path_factory.mktemp("deb")
    p = subprocess.run([str(TOP / "scripts" / "deb.sh"), str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    path = out / ("vballoon-dkms_%s_all.deb" % VERSION)
    assert path.exists()
    return path


@pytest.fixture(scope="module")
def unpacked(deb, tmp_path_factory):
    d = tmp_path_factory.mktemp("unpacked")
    sh(["dpkg-deb", "-x", str(deb), str(d)])
    return d


def test_package_fields(deb):
    """An arch-all -dkms package of the VERSION file's version that
    depends on dkms and has no conffiles (nothing survives a removal)."""
    fields = dict(re.findall(r"^ ?([A-Za-z-]+): (.*)$",
                             sh(["dpkg-deb", "-I", str(deb)]), re.M))
    assert fields["Package"] == "vballoon-dkms"
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == "all"
    assert fields["Depends"].startswith("dkms")
    p = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"],
                       capture_output=True, text=True)
    assert p.returncode != 0 or not p.stdout.strip(), p.stdout


def test_package_contents(deb):
    """The sources DKMS builds from, under /usr/src/vballoon-<version>/,
    the modprobe.d file, the docs; no build products, no tests."""
    names = [line.split()[-1].lstrip(".") for line in
             sh(["dpkg-deb", "-c", str(deb)]).splitlines()]
    files = set(n for n in names if not n.endswith("/"))
    for want in ("Kbuild", "VERSION", "dkms.conf",
                 "drivers/virtio/vballoon/main.c",
                 "drivers/virtio/vballoon/Makefile",
                 "include/linux/vballoon_virtio.h"):
        assert "/%s/%s" % (PKG_SRC, want) in files, want
    assert "/lib/modprobe.d/vballoon.conf" in files
    assert "/usr/share/doc/vballoon-dkms/copyright" in files
    bad = [f for f in files if re.search(r"\.(o|ko|mod|cmd)$|/tests/", f)]
    assert not bad, bad
    assert not [f for f in files if f.startswith("/etc/")]


def test_modprobe_conf_keeps_virtio_balloon_out(unpacked):
    conf = (unpacked / "lib/modprobe.d/vballoon.conf").read_text()
    lines = [ln for ln in conf.splitlines() if ln and not ln.startswith("#")]
    assert lines == ["blacklist virtio_balloon"]


def test_dkms_conf(unpacked):
    conf = (unpacked / PKG_SRC / "dkms.conf").read_text()
    assert 'PACKAGE_NAME="vballoon"' in conf
    assert 'PACKAGE_VERSION="%s"' % VERSION in conf
    assert 'AUTOINSTALL="yes"' in conf
    assert 'BUILT_MODULE_NAME[0]="vballoon"' in conf


@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_dkms_build_and_clean(unpacked, series, tmp_path):
    """dkms.conf's MAKE and CLEAN commands, as DKMS runs them on a copy of
    /usr/src/vballoon-<version>, for each Debian kernel: the module
    carries the version; clean leaves no object behind."""
    rel = build.release(series)
    kdir = "/usr/src/linux-headers-" + rel
    tree = tmp_path / "build"
    shutil.copytree(unpacked / PKG_SRC, tree)
    conf = (tree / "dkms.conf").read_text()
    env = {"kernel_source_dir": kdir, "dkms_tree": str(tmp_path / "dkms"),
           "PACKAGE_NAME": "vballoon", "PACKAGE_VERSION": VERSION}

    def command(var):
        m = re.search(r'^%s="(.*)"$' % re.escape(var), conf, re.M)
        cmd = m.group(1)
        for k, v in env.items():
            cmd = cmd.replace("${%s}" % k, v)
        # DKMS builds in ${dkms_tree}/<name>/<version>/build
        return cmd.replace("%s/vballoon/%s/build" % (env["dkms_tree"],
                                                     VERSION), str(tree))
    p = subprocess.run(command("MAKE[0]"), shell=True, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    ko = tree / "drivers/virtio/vballoon/vballoon.ko"
    assert sh(["modinfo", "-F", "version", str(ko)]).strip() == VERSION
    assert sh(["modinfo", "-F", "vermagic", str(ko)]).split()[0] == rel
    p = subprocess.run(command("CLEAN"), shell=True, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not list(tree.rglob("*.o")) and not ko.exists()


def test_make_install_and_uninstall(tmp_path):
    """`make install` (staged with DESTDIR) puts the module into
    updates/, the modprobe.d file into /etc and indexes the module;
    `make uninstall` takes every piece away again."""
    rel = build.release("6.12")
    kdir = "/usr/src/linux-headers-" + rel
    src = tmp_path / "src"
    # a copy of the project: `make` builds in its tree
    src.mkdir()
    for name in ("Makefile", "Kbuild", "VERSION", "drivers", "include",
                 "scripts", "debian"):
        s = TOP / name
        (shutil.copytree if s.is_dir() else shutil.copy)(s, src / name)
    root = tmp_path / "root"
    env = {"DESTDIR": str(root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    p = subprocess.run(["make", "-C", str(src), "install", "KDIR=" + kdir],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    mods = root / "lib/modules" / rel
    found = list((mods / "updates").rglob("vballoon.ko*"))
    assert len(found) == 1, found
    assert sh(["modinfo", "-F", "version", str(found[0])]).strip() == VERSION
    assert "updates/" in (mods / "modules.dep").read_text()
    conf = root / "etc/modprobe.d/vballoon.conf"
    assert "blacklist virtio_balloon" in conf.read_text()
    p = subprocess.run(["make", "-C", str(src), "uninstall", "KDIR=" + kdir],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not list(root.rglob("vballoon*")), list(root.rglob("vballoon*"))
    assert "vballoon" not in (mods / "modules.dep").read_text()
