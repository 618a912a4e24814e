# SPDX-License-Identifier: GPL-2.0-only
"""The one parser of test runners' closing lines, used by tests/vm/run.py
(a pytest job per kernel and module) and scripts/check.py (make check).

Understands, last match wins:
  * the plain line "N passed, N failed" (", N skipped" may follow; one
    word and a colon may stand before it),
  * pytest's "=== 3 failed, 50 passed, 1 error in 600.1s ===",
  * kunit.py's "Ran N tests: passed: P, failed: F".
"""

import dataclasses
import re

PLAIN_RE = re.compile(r"^(?:[A-Za-z-]+: )?(\d+) passed, (\d+) failed"
                      r"(?:, (\d+) skipped)?\s*$")
PYTEST_RE = re.compile(r"^=+ (.*\b(?:passed|failed|errors?|skipped|"
                       r"deselected|no tests ran)\b.*) in [0-9.]+s")
KUNIT_RE = re.compile(r"Ran (\d+) tests?: passed: (\d+)(?:, failed: (\d+))?")


@dataclasses.dataclass
class Summary:
    passed: int = 0
    failed: int = 0          # failures and errors
    skipped: int = 0
    line: str = ""           # the line it was read from


def parse_line(line):
    """The Summary a single closing line states, or None."""
    line = line.rstrip("\n")
    m = PLAIN_RE.match(line)
    if m:
        return Summary(int(m.group(1)), int(m.group(2)),
                       int(m.group(3) or 0), line)
    m = PYTEST_RE.match(line)
    if m:
        s = Summary(line=m.group(1))
        for n, what in re.findall(r"(\d+) (passed|failed|errors?|skipped)",
                                  m.group(1)):
            if what == "passed":
                s.passed += int(n)
            elif what == "skipped":
                s.skipped += int(n)
            else:
                s.failed += int(n)
        return s
    m = KUNIT_RE.search(line)
    if m:
        return Summary(int(m.group(2)), int(m.group(3) or 0), 0,
                       m.group(0))
    return None


def parse(text):
    """The Summary of the last closing line in `text`, or None if the
    runner printed none."""
    found = None
    for line in text.splitlines():
        s = parse_line(line)
        if s is not None:
            found = s
    return found
