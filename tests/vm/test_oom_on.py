# SPDX-License-Identifier: GPL-2.0-only
"""VM tests with virtio-balloon-pci,deflate-on-oom=on (one boot per kernel).

Tests 1-3 run for our vballoon and, for parity, for the kernel's own
virtio_balloon in the same boot; the others for vballoon only.
"""

import pytest

import scenarios

VM_CONFIG = {"deflate_on_oom": True}
VM_LABEL = "oom-on"

drivers = pytest.mark.parametrize("driver", scenarios.DRIVERS)
ours = pytest.mark.parametrize("driver", scenarios.OURS)


@drivers
def test_inflate_half_and_back(vm, driver):
    scenarios.inflate_half_and_back(vm, driver)


@drivers
def test_burst_of_targets(vm, driver):
    scenarios.burst_of_targets(vm, driver)


@drivers
def test_stats(vm, driver):
    scenarios.stats(vm, driver)


@ours
def test_deflate_on_oom(vm, driver):
    scenarios.deflate_on_oom(vm, driver)


@ours
def test_memtotal_kept_with_deflate_on_oom(vm, driver):
    scenarios.memtotal_accounting(vm, driver)


@ours
def test_rmmod_with_inflated_balloon(vm, driver):
    scenarios.rmmod_inflated(vm, driver)


def test_console_clean_at_end_of_boot(vm_slot):
    scenarios.console_clean(vm_slot)
