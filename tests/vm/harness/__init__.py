# SPDX-License-Identifier: GPL-2.0-only
"""The vballoon test harness: one small module per job.

Only the Python standard library is used, so scripts outside tests/vm
(scripts/intree.py, scripts/check.py) can import it too.
"""
