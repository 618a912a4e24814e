# SPDX-License-Identifier: GPL-2.0-only
"""Sizes and where the harness keeps its files."""

import os
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
PAGE_SIZE = 4096

VM_DIR = Path(__file__).resolve().parent.parent     # tests/vm
GUEST_DIR = VM_DIR / "guest"                         # files for the guest
HOST_DIR = VM_DIR / "host"                           # host-side helpers
REPO_ROOT = VM_DIR.parent.parent


def mib(nbytes):
    """`nbytes` as text in MiB with one decimal, for messages."""
    return "%.1f MiB" % (nbytes / MiB)


def cache_dir():
    """${XDG_CACHE_HOME:-~/.cache}/vballoon, created if missing."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    d = Path(base) / "vballoon"
    d.mkdir(parents=True, exist_ok=True)
    return d
