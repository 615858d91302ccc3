# SPDX-License-Identifier: Apache-2.0
"""A device process that stalls during a pause: the pause fails, the VM keeps running.

The device's late answers, when it wakes, are dropped rather than taken for
the answers to later requests; the next pause works.
"""
import os
import signal

from conftest import hart_counts


def wait_more_counts(vm, than, what):
    return vm.wait_serial(lambda t: hart_counts(t).get(0, 0) > than, what=what)


def test_pause_with_a_stopped_device_fails_and_the_vm_runs_on(vms):
    vm = vms("stall")
    vm.boot(cpus=1, memory="256M")
    vm.wait_serial(lambda t: "rng: " in t and hart_counts(t).get(0, 0) >= 3, what="the guest running")
    rng = vm.child("cloister-rng")

    os.kill(rng, signal.SIGSTOP)
    try:
        status, body = vm.api("PUT", "vm.pause")
        assert status >= 400, (status, body)
        assert "did not answer" in str(body), body
        assert vm.info()["state"] == "Running"
        # Harts and time were resumed: the count goes on while the device sleeps.
        now = hart_counts(vm.serial_text()).get(0, 0)
        wait_more_counts(vm, now + 2, "the count going on after the failed pause")
    finally:
        os.kill(rng, signal.SIGCONT)

    # The device catches up (pause, then the resume that undoes it); its late
    # answers are dropped and the next pause is answered by its own reply.
    status, body = vm.api("PUT", "vm.pause")
    assert status == 204 or status == 200, (status, body)
    assert vm.info()["state"] == "Paused"
    status, body = vm.api("PUT", "vm.resume")
    assert status in (200, 204), (status, body)
    assert vm.info()["state"] == "Running"
    rngs = vm.serial_text().count("rng: ")
    vm.wait_serial(lambda t: t.count("rng: ") > rngs, timeout=60, what="the rng device still serving")
    assert "late" in vm.log(), vm.log()
