# SPDX-License-Identifier: GPL-2.0-only
"""Config fragments and .config files as typed objects, after the kernel's
tools/testing/kunit/kunit_config.py: a Kconfig maps symbol names (without
"CONFIG_") to values ("y", "m", "n", a number or a quoted string), and
`wanted.is_subset_of(actual)` says whether a .config has everything a
fragment asks for.

One addition: a fragment line "# vballoon-optional: SYM" marks SYM as
possibly not defined in the kernel tree yet (e.g. the KUnit suite before it
is grafted); the caller decides what to do about it (Kconfig.optional).
"""

import dataclasses
import re

CONFIG_IS_NOT_SET_PATTERN = re.compile(r"^# CONFIG_(\w+) is not set$")
CONFIG_PATTERN = re.compile(r'^CONFIG_(\w+)=(\S+|".*")$')
OPTIONAL_PATTERN = re.compile(r"^# vballoon-optional:\s*(\w+)\s*$")


@dataclasses.dataclass(frozen=True)
class KconfigEntry:
    name: str
    value: str

    def __str__(self):
        if self.value == "n":
            return "# CONFIG_%s is not set" % self.name
        return "CONFIG_%s=%s" % (self.name, self.value)


class KconfigParseError(Exception):
    """A line of a fragment or .config that is neither a symbol nor a
    comment."""


class Kconfig:
    """A config fragment or a .config: symbol name -> value, in the order
    the symbols were first given; later entries of a name win, as in
    merge_config.sh."""

    def __init__(self):
        self._entries = {}
        self.optional = set()    # names marked "# vballoon-optional:"

    def __eq__(self, other):
        return (isinstance(other, Kconfig) and
                self._entries == other._entries)

    def __len__(self):
        return len(self._entries)

    def entries(self):
        for name, value in self._entries.items():
            yield KconfigEntry(name, value)

    def get(self, name):
        """The value of `name`, or None if the config does not mention it
        (for a .config: the symbol is not visible or not defined)."""
        return self._entries.get(name)

    def add_entry(self, name, value):
        self._entries[name] = value

    def merge_in_entries(self, other):
        for e in other.entries():
            self.add_entry(e.name, e.value)
        self.optional |= other.optional

    def without(self, names):
        """A copy without the symbols `names`."""
        k = Kconfig()
        for e in self.entries():
            if e.name not in names:
                k.add_entry(e.name, e.value)
        k.optional = self.optional - set(names)
        return k

    def differences(self, other):
        """(wanted entry, value in other) for each entry of self that other
        does not have; a symbol other does not mention counts as "n"."""
        out = []
        for e in self.entries():
            have = other.get(e.name)
            have = "n" if have is None else have
            if have != e.value:
                out.append((e, have))
        return out

    def is_subset_of(self, other):
        return not self.differences(other)

    def __str__(self):
        return "\n".join(str(e) for e in self.entries())


def parse_from_string(blob):
    """A Kconfig from the text of a fragment or .config."""
    kconfig = Kconfig()
    for line in blob.split("\n"):
        line = line.strip()
        if not line:
            continue
        m = CONFIG_PATTERN.match(line)
        if m:
            kconfig.add_entry(m.group(1), m.group(2))
            continue
        m = CONFIG_IS_NOT_SET_PATTERN.match(line)
        if m:
            kconfig.add_entry(m.group(1), "n")
            continue
        m = OPTIONAL_PATTERN.match(line)
        if m:
            kconfig.optional.add(m.group(1))
            continue
        if line.startswith("#"):
            continue
        raise KconfigParseError("failed to parse: " + line)
    return kconfig


def parse_file(path):
    with open(path) as f:
        try:
            return parse_from_string(f.read())
        except KconfigParseError as e:
            raise KconfigParseError("%s: %s" % (path, e)) from None


def parse_files(paths):
    """The fragments `paths` merged in order (later ones win)."""
    kconfig = Kconfig()
    for p in paths:
        kconfig.merge_in_entries(parse_file(p))
    return kconfig
