# SPDX-License-Identifier: Apache-2.0
"""A stalled or stopped child never wedges the gateway: the API keeps
answering during any operation, a late reply is dropped instead of killing
the VM, and SIGTERM always stops the whole tree within seconds."""
import os
import signal
import threading
import time

from conftest import children_of


def put_in_background(vm, path, body=None, timeout=120):
    """Sends a request on a thread; returns (thread, result list)."""
    out = []

    def run():
        try:
            out.append(vm.api("PUT", path, body=body, timeout=timeout))
        except Exception as e:  # noqa: BLE001 - the test reports it
            out.append(("exception", repr(e)))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def snapshotd_of(vm, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in vm.children():
            if "cloister-snapshotd" in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace"):
                return p
        time.sleep(0.005)
    raise AssertionError("snapshotd never started")


def test_api_answers_during_a_stalled_snapshot_and_sigterm_stops_all(vms, workdir):
    vm = vms().boot(memory="1G")
    vm.wait_serial(lambda t: "count 3" in t)
    assert vm.api("PUT", "vm.pause")[0] == 204
    snap = os.path.join(workdir, "snap")
    os.mkdir(snap)
    thread, result = put_in_background(vm, "vm.snapshot", {"destination_url": "file://" + snap})
    snapd = snapshotd_of(vm)
    os.kill(snapd, signal.SIGSTOP)
    try:
        # ping and info answer at once while the snapshot waits on the stopped snapshotd.
        for _ in range(5):
            t0 = time.monotonic()
            assert vm.api("GET", "vmm.ping", timeout=5)[0] == 200
            status, info = vm.api("GET", "vm.info", timeout=5)
            assert status == 200 and time.monotonic() - t0 < 2
            time.sleep(0.1)
        assert info.get("operation", {}).get("name") == "snapshot", info
        # Another lifecycle request meanwhile is refused with a clear 409.
        status, body = vm.api("PUT", "vm.resume", timeout=5)
        assert status == 409, (status, body)
        # SIGTERM stops the gateway and its whole tree in order, within seconds.
        pids = children_of(vm.proc.pid)
        t0 = time.monotonic()
        vm.proc.send_signal(signal.SIGTERM)
        vm.proc.wait(timeout=10)
        assert time.monotonic() - t0 < 10
    finally:
        try:
            os.kill(snapd, signal.SIGCONT)
        except ProcessLookupError:
            pass
    thread.join(timeout=10)
    deadline = time.time() + 5
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")], "children outlived the gateway"
    # Nothing half-written is left in the snapshot directory.
    assert not [f for f in os.listdir(snap) if f.endswith(".partial")], os.listdir(snap)


def test_late_reply_from_vmm_core_does_not_kill_the_vm(vms):
    vm = vms().boot(memory="256M")
    vm.wait_serial(lambda t: "count 3" in t)
    core = vm.child("cloister-vmm")
    os.kill(core, signal.SIGSTOP)
    try:
        thread, result = put_in_background(vm, "vm.pause", timeout=60)
        # The gateway gives up on the pause (its bound for vmm-core), answering an error.
        thread.join(timeout=30)
        assert result and result[0][0] >= 500, result
        assert vm.api("GET", "vmm.ping", timeout=5)[0] == 200
    finally:
        os.kill(core, signal.SIGCONT)
    # vmm-core's late answers are dropped: the VM is still there, running.
    time.sleep(1)
    info = vm.info()
    assert info["state"] == "Running", info
    before = vm.serial_text()
    vm.wait_serial(lambda t: len(t) > len(before) + 20, what="the guest going on")
    assert vm.api("PUT", "vm.pause")[0] == 204
    assert vm.api("PUT", "vm.resume")[0] == 204
    assert vm.proc.poll() is None


def test_device_stalled_during_pause_keeps_the_vm_running(vms):
    vm = vms().boot(memory="256M")
    vm.wait_serial(lambda t: "count 3" in t)
    rng = vm.child("cloister-rng")
    os.kill(rng, signal.SIGSTOP)
    try:
        status, body = vm.api("PUT", "vm.pause", timeout=60)
    finally:
        time.sleep(2)
        os.kill(rng, signal.SIGCONT)
    # The pause fails within vmm-core's bound for a device and everything it had
    # paused runs again: never a dead or half-paused VM.
    assert 400 <= status < 600, (status, body)
    info = vm.info()
    assert info["state"] == "Running", info
    assert "rng0" in info.get("error", ""), info
    before = vm.serial_text()
    vm.wait_serial(lambda t: len(t) > len(before) + 20, what="the guest going on")
    assert vm.api("PUT", "vm.pause")[0] == 204
    assert vm.info()["state"] == "Paused"
    assert vm.api("PUT", "vm.resume")[0] == 204
