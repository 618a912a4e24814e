# SPDX-License-Identifier: GPL-2.0-only
"""A minimal writer of the "newc" cpio format the kernel unpacks as an
initramfs (see virtme-ng's cpiowriter.py for the same idea)."""


class Cpio:
    """Collects entries in memory; finish() returns the archive bytes.

        c = Cpio()
        c.dir("etc")
        c.file("etc/hello", b"hi\\n", 0o644)
        data = c.finish()
    """

    def __init__(self):
        self.buf = bytearray()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join("%08x" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
            rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        self.buf += hdr.encode() + name_b
        self.buf += b"\0" * (-len(self.buf) % 4)
        self.buf += data
        self.buf += b"\0" * (-len(self.buf) % 4)

    def dir(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def finish(self):
        """The archive: the entries, the trailer, padded to 512 bytes."""
        self._entry("TRAILER!!!", 0)
        self.buf += b"\0" * (-len(self.buf) % 512)
        return bytes(self.buf)
