# SPDX-License-Identifier: GPL-2.0-only
"""The admin guide (Documentation/admin-guide/vballoon.rst) against the
driver: every internal reference names a section that exists, every
module parameter and debugfs key is described, and the sections the
README and the other documents point to are there.  No VM; plain text
parsing, so that it runs where docutils is not installed.

An edit that drops a section by mistake (741042e replaced 286 lines,
"Free page hinting" among them) fails here."""

import os
import re

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUIDE = os.path.join(ROOT, "Documentation", "admin-guide", "vballoon.rst")
DRIVER = os.path.join(ROOT, "drivers", "virtio", "vballoon")

# reStructuredText section underlines (any of these characters, repeated)
UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")
REFERENCE = re.compile(r"`([^`<>]+)`_(?!_)")
# Sections that other documents (README.md, tests/*/README.md) send
# readers to: a rename must update them.
REQUIRED = ("Parameters", "Autodeflate", "Free page reporting and page poison",
            "Free page hinting", "Performance", "Parallel allocation",
            "Hosts", "Faults", "Messages", "Packaging", "debugfs")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def sections(text):
    """Section titles: a line underlined (and maybe overlined) by a run
    of one punctuation character at least as long as it."""
    lines = text.split("\n")
    out = []
    for i in range(1, len(lines)):
        title = lines[i - 1].strip()
        if (title and UNDERLINE.match(lines[i]) and
                not UNDERLINE.match(lines[i - 1]) and
                len(lines[i].rstrip()) >= len(title) and
                (i + 1 >= len(lines) or not lines[i + 1].strip() or
                 not UNDERLINE.match(lines[i + 1]))):
            out.append(title)
    return out


def test_sections_parser_finds_titles():
    text = "Top\n===\n\nA b\n---\ntext\n\n====  ====\nx     y\n====  ====\n"
    assert sections(text) == ["Top", "A b"]


def test_guide_references_resolve():
    text = read(GUIDE)
    titles = {t.lower() for t in sections(text)}
    # explicit targets (.. _name:) count as well
    titles |= {m.lower() for m in re.findall(r"^\.\. _([^:]+):", text,
                                             re.M)}
    # a reference may be wrapped over two lines
    refs = {" ".join(r.split()) for r in REFERENCE.findall(text)}
    missing = sorted(r for r in refs if r.lower() not in titles)
    assert not missing, "references to sections that do not exist: %s" % (
        ", ".join(missing))


def test_guide_keeps_its_sections():
    titles = set(sections(read(GUIDE)))
    missing = [t for t in REQUIRED if t not in titles]
    assert not missing, "admin guide lacks the sections %s (has: %s)" % (
        missing, sorted(titles))


def test_every_parameter_is_documented():
    text = read(GUIDE)
    params = set()
    for name in os.listdir(DRIVER):
        if name.endswith(".c"):
            params |= set(re.findall(
                r"module_param(?:_named|_cb)?\(\s*(\w+)", read(
                    os.path.join(DRIVER, name))))
    assert len(params) >= 10, params
    missing = sorted(p for p in params if "``%s``" % p not in text)
    assert not missing, "parameters not in the admin guide: %s" % missing


def test_every_debugfs_key_is_documented():
    text = read(GUIDE)
    src = read(os.path.join(DRIVER, "debugfs.c"))
    keys = set(re.findall(r'\[VB_CNT_\w+\]\s*=\s*"(\w+)"', src))
    keys |= set(re.findall(r'seq_printf\(m,\s*"(\w+) ', src))
    assert len(keys) >= 40, keys
    missing = sorted(k for k in keys if "``%s``" % k not in text)
    assert not missing, "debugfs keys not in the admin guide: %s" % missing
