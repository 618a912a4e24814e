# SPDX-License-Identifier: GPL-2.0-only
"""The vballoon test harness: one small module per job.

  errors      the exceptions          units      sizes, paths, cache dir
  wait        wait_until              cpio       newc cpio writer
  modules     modules.dep order       kernels    Kernel / DebugKernel
  initramfs   the test initramfs      qemu       Machine: QEMU, QMP, agent
  vm          VM / BuiltinVM          workloads  memhog, disk reader
  figures     result records          console    kernel-log patterns
  summary     test-runner summaries

Only the Python standard library is used, so scripts outside tests/vm
(scripts/intree.py, scripts/check.py) can import it too; importing the
package imports none of its modules.
"""
