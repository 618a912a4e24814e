# SPDX-License-Identifier: GPL-2.0-only
"""Kernel modules on the host side: names, .modinfo fields, and the
dependency order from a kernel's modules.dep / modules.builtin (see
virtme-ng's modfinder.py)."""

import gzip
import lzma
import re
import subprocess
from pathlib import Path

from harness.errors import HarnessError


def modname(path):
    """Module name of a .ko path: directory and compression suffix gone,
    dashes as underscores (virtio-rng.ko.xz -> virtio_rng)."""
    name = Path(path).name
    name = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", name)
    return name.replace("-", "_")


def read_module(path):
    """The bytes of a module file, decompressed."""
    path = Path(path)
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], check=True,
                              stdout=subprocess.PIPE).stdout
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def modinfo_field(data, field):
    """Value of `field` (vermagic, depends, ...) in a module's .modinfo,
    or None."""
    m = re.search(rb"(?:^|\x00)" + field.encode() + rb"=([^\x00]*)\x00", data)
    return m.group(1).decode() if m else None


class ModuleIndex:
    """The kernel's modules.dep / modules.builtin."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.paths = {}   # modname -> absolute path
        self.deps = {}    # modname -> [modname]
        for line in (kernel.moddir / "modules.dep").read_text().splitlines():
            if ":" not in line:
                continue
            mod, deps = line.split(":", 1)
            name = modname(mod)
            self.paths[name] = kernel.moddir / mod
            self.deps[name] = [modname(d) for d in deps.split()]
        self.builtin = builtin_modules(kernel.moddir)

    def has(self, name):
        """`name` is built in or available as a module."""
        return name in self.builtin or name in self.paths

    def closure(self, name, extra_deps=None):
        """Modules to insmod for `name`, dependencies first (builtins left
        out).  extra_deps overrides the dependency list of `name`."""
        order, seen = [], set()

        def visit(n, deps=None):
            if n in seen:
                return
            seen.add(n)
            if n in self.builtin and n not in self.paths:
                return
            if deps is None:
                if n not in self.deps:
                    raise HarnessError("module %s is neither in modules.dep "
                                       "nor builtin for %s" %
                                       (n, self.kernel.release))
                deps = self.deps[n]
            for d in deps:
                visit(d)
            order.append(n)

        visit(name, extra_deps)
        return order


def builtin_modules(moddir):
    """Names of the modules built into the kernel of `moddir`."""
    bfile = Path(moddir) / "modules.builtin"
    if not bfile.exists():
        return set()
    return {modname(line) for line in bfile.read_text().split()}
