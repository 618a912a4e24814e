# SPDX-License-Identifier: GPL-2.0-only
"""vballoon autodeflate modes (one boot per kernel, deflate-on-oom=on).

The guest has a 3 GiB sparse virtio-blk disk: reading it fills the page
cache with clean pages, more than the 2 GiB guest can hold.  Figures the
issue asks for are printed as "AUTODEFLATE-RESULT {json}" lines (pytest
-s or -rA) and appended to autodeflate-results.jsonl in the VM's log
directory (listed in the "vballoon VM boots" summary).

The fallback of autodeflate=pressure to off on a host without
deflate-on-oom needs such a host: see
autodeflate_scenarios.pressure_falls_back_to_off.
"""

import pytest

import autodeflate_scenarios as ads
import scenarios

VM_CONFIG = {"deflate_on_oom": True, "disk_mib": 3072}
VM_LABEL = "autodeflate"


# Tests 1 and 2 check what autodeflate must *not* release, with minutes of
# page-cache churn; the debug kernel runs the release paths (test 3, both
# modes) and leaves the OOM-kill tests 4-5 to the Debian kernels.

def test_busy_noop_guard(vm):
    scenarios.skip_on_debug_kernel(vm, "the Debian kernels (policy check)")
    ads.busy_noop_guard(vm)


def test_drop_caches_deflates_nothing(vm):
    scenarios.skip_on_debug_kernel(vm, "the Debian kernels (policy check)")
    ads.drop_caches_keeps_balloon(vm)


@pytest.mark.parametrize("mode", ("pressure", "oom"))
def test_anon_pressure(vm, mode):
    ads.anon_pressure(vm, mode)


def test_off_is_oom_killed_and_balloon_holds(vm):
    scenarios.skip_on_debug_kernel(vm, "test_oom_off.py (balloon holds)")
    ads.off_oom_kill(vm)


def test_host_stats_after_oom_kill(vm):
    scenarios.skip_on_debug_kernel(vm, "the Debian kernels")
    ads.host_stats_after_oom_kill(vm)


def test_console_clean_at_end_of_boot(vm_slot):
    scenarios.console_clean(vm_slot)
