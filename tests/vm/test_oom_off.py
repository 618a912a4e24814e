# SPDX-License-Identifier: GPL-2.0-only
"""VM tests with virtio-balloon-pci,deflate-on-oom=off (one boot per kernel).

Without deflate-on-oom, ballooned pages leave the guest's MemTotal.
"""

import pytest

import autodeflate_scenarios
import scenarios

VM_CONFIG = {"deflate_on_oom": False}
VM_LABEL = "oom-off"

# vballoon only: the parity runs of virtio_balloon are in test_oom_on.py
ours = pytest.mark.parametrize("driver", scenarios.OURS)


@ours
def test_memtotal_follows_balloon(vm, driver):
    scenarios.memtotal_accounting(vm, driver)


@ours
def test_balloon_holds_without_deflate_on_oom(vm, driver):
    scenarios.balloon_holds_without_deflate_on_oom(vm, driver)


@ours
def test_inflate_half_and_back(vm, driver):
    scenarios.skip_on_debug_kernel(vm, "test_oom_on.py")
    scenarios.inflate_half_and_back(vm, driver)


@ours
def test_burst_of_targets(vm, driver):
    scenarios.skip_on_debug_kernel(vm, "test_oom_on.py")
    scenarios.burst_of_targets(vm, driver)


@ours
def test_rmmod_with_inflated_balloon(vm, driver):
    scenarios.skip_on_debug_kernel(vm, "test_oom_on.py")
    scenarios.rmmod_inflated(vm, driver)


def test_console_clean_at_end_of_boot(vm_slot):
    scenarios.console_clean(vm_slot)


def test_pressure_falls_back_to_off(vm):
    """autodeflate=pressure from a host that does not offer deflate-on-oom
    runs with autodeflate off and says so."""
    autodeflate_scenarios.pressure_falls_back_to_off(vm)
