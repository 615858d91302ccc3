# SPDX-License-Identifier: Apache-2.0
"""Boot, pause, snapshot, restore and resume through the whole process tree."""
import json
import os
import signal
import subprocess
import threading
import time

from conftest import children_of, first_counts_after, hart_counts

GiB = 1 << 30
HARTS = 2


def boot_and_count(vm, minimum=3):
    vm.boot(cpus=HARTS, memory="4G")
    vm.wait_serial(lambda t: "pattern: written" in t and
                   all(hart_counts(t).get(h, 0) >= minimum for h in range(HARTS)),
                   what=f"every hart to count to {minimum}")


def pause_and_snapshot(vm, snapdir):
    vm.remote("pause")
    assert vm.info()["state"] == "Paused"
    paused_text = vm.serial_text()
    time.sleep(0.6)   # six guest ticks: a running guest would print more
    assert vm.serial_text() == paused_text, "the guest kept printing while paused"
    os.makedirs(snapdir, exist_ok=True)
    vm.remote("snapshot", f"file://{snapdir}")
    return hart_counts(paused_text), len(paused_text)


def check_snapshot_files(snapdir):
    names = sorted(os.listdir(snapdir))
    assert names == ["host-bindings", "memory-region-0", "memory-region-1", "vm.json"], names
    st0 = os.stat(os.path.join(snapdir, "memory-region-0"))
    st1 = os.stat(os.path.join(snapdir, "memory-region-1"))
    assert st0.st_size == 3 * GiB
    assert st1.st_size == 1 * GiB
    # Never-written memory stays a hole: the guest touched a few MiB of 4 GiB.
    assert st0.st_blocks * 512 < 256 << 20, st0.st_blocks
    assert st1.st_blocks * 512 < 64 << 20, st1.st_blocks
    with open(os.path.join(snapdir, "vm.json")) as f:
        doc = json.load(f)
    assert doc["version"] == 1
    assert doc["config"]["boot_vcpus"] == HARTS
    assert len(doc["state"]["vcpus"]) == HARTS
    assert [r["file"] for r in doc["memory_regions"]] == ["memory-region-0", "memory-region-1"]


def check_continues(vm, before, offset):
    """Every hart prints the very next count, and the memory pattern is intact."""
    text = vm.wait_serial(lambda t: all(h in first_counts_after(t, offset) for h in range(HARTS)),
                          what="every hart to count again")
    first = first_counts_after(text, offset)
    for h in range(HARTS):
        assert first[h] == before[h] + 1, f"hart {h}: {before[h]} then {first[h]}"
    text = vm.wait_serial(lambda t: "pattern: ok" in t[offset:] or "BAD" in t[offset:],
                          timeout=30, what="a pattern check after resume")
    assert "BAD" not in text, text[offset:]


def test_snapshot_then_restore_from_command_line(vms, workdir):
    vm = vms("first")
    boot_and_count(vm)
    snapdir = os.path.join(workdir, "snap")
    before, offset = pause_and_snapshot(vm, snapdir)
    check_snapshot_files(snapdir)
    tree = [vm.proc.pid] + children_of(vm.proc.pid)
    vm.remote("shutdown-vmm")
    assert vm.proc.wait(timeout=10) == 0
    time.sleep(0.2)
    assert not [p for p in tree if os.path.exists(f"/proc/{p}")], "processes outlived shutdown-vmm"

    # A new tree, writing on into the same serial file.
    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start("--restore", f"source_url=file://{snapdir}")
    assert vm2.info()["state"] == "Paused"
    time.sleep(0.3)
    assert len(vm2.serial_text()) == offset, "a restored VM ran before resume"
    vm2.remote("resume")
    assert vm2.info()["state"] == "Running"
    check_continues(vm2, before, offset)


def test_restore_through_the_api_in_a_second_terminal(vms, workdir):
    vm = vms("first")
    boot_and_count(vm)
    snapdir = os.path.join(workdir, "snap")
    before, offset = pause_and_snapshot(vm, snapdir)
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)

    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start()
    status, _ = vm2.api("GET", "vm.info")
    assert status == 404, "a VMM started without a VM has no VM"
    vm2.remote("restore", f"source_url=file://{snapdir}")
    assert vm2.info()["state"] == "Paused"
    vm2.remote("resume")
    check_continues(vm2, before, offset)


def test_restore_with_resume_true(vms, workdir):
    vm = vms("first")
    boot_and_count(vm)
    snapdir = os.path.join(workdir, "snap")
    before, offset = pause_and_snapshot(vm, snapdir)
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)

    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start("--restore", f"source_url=file://{snapdir},resume=true")
    check_continues(vm2, before, offset)
    assert vm2.info()["state"] == "Running"


def test_rng_device_serves_the_guest_across_restore(vms, workdir):
    vm = vms("first")
    boot_and_count(vm)
    text = vm.wait_serial(lambda t: "rng: " in t, what="an rng line")
    line = [l for l in text.splitlines() if l.startswith("rng: ")][0]
    assert line != "rng: timeout" and len(line) == len("rng: ") + 32, line
    snapdir = os.path.join(workdir, "snap")
    before, offset = pause_and_snapshot(vm, snapdir)
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)
    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start("--restore", f"source_url=file://{snapdir},resume=true")
    # The guest asks again every 50 counts; the restored device must answer.
    text = vm2.wait_serial(lambda t: "rng: " in t[offset:], timeout=30, what="rng after restore")
    lines = [l for l in text[offset:].splitlines() if l.startswith("rng: ")]
    assert lines[0] != "rng: timeout", lines
    assert lines[0] != line


def test_guest_time_does_not_jump_over_a_pause(vms, workdir):
    vm = vms()
    boot_and_count(vm)
    vm.remote("pause")
    before = hart_counts(vm.serial_text())
    time.sleep(2)
    offset = len(vm.serial_text())
    vm.remote("resume")
    start = time.time()
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= before[0] + 5, what="five more counts")
    # Five 100 ms sleeps: had the two paused seconds counted, they would pass at once.
    assert time.time() - start >= 0.35
    first = first_counts_after(vm.serial_text(), offset)
    assert first[0] == before[0] + 1


def test_ctrl_c_stops_the_tree_in_order(vms):
    """A terminal's Ctrl-C goes to the whole process group; only the gateway should act on it."""
    import signal
    vm = vms()
    vm.boot(cpus=2, memory="1G", new_session=True)
    vm.wait_serial(lambda t: hart_counts(t).get(1, 0) >= 2, what="the guest to run")
    tree = [vm.proc.pid] + children_of(vm.proc.pid)
    os.killpg(vm.proc.pid, signal.SIGINT)
    assert vm.proc.wait(timeout=10) == 0
    time.sleep(0.2)
    assert not [p for p in tree if os.path.exists(f"/proc/{p}")]
    assert "error" not in vm.log(), vm.log()


def test_back_to_back_pause_resume_is_never_refused(vms):
    """Only a second operation while one runs gets 409: the gateway's own
    supervision tick, which looks at the tree between operations, must not
    make a request fail. Hundreds of pause/resume pairs with no gap give the
    tick many chances to coincide with one."""
    vm = vms()
    vm.boot(cpus=HARTS, memory="1G")
    vm.wait_serial(lambda t: hart_counts(t).get(1, 0) >= 2, what="the guest to run")
    refused = []
    rounds = 0
    # Busy loops on every host CPU, so the tick is sometimes descheduled while
    # it looks: that is when a request used to be refused.
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"])
            for _ in range(os.cpu_count() or 1)]
    try:
        deadline = time.time() + 8
        while time.time() < deadline:
            for op in ("vm.pause", "vm.resume"):
                status, body = vm.api("PUT", op)
                if status != 204:
                    refused.append((rounds, op, status, body))
            rounds += 1
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert rounds >= 50, f"only {rounds} rounds in 8 s"
    assert not refused, f"{len(refused)} of {2 * rounds} requests refused, first: {refused[:3]}"
    assert vm.info()["state"] == "Running"



def test_snapshot_progress_in_vm_info_while_it_runs(vms, workdir):
    vm = vms()
    boot_and_count(vm)
    vm.remote("pause")
    total = vm.info()["memory_actual_size"]
    assert "snapshot_progress" not in vm.info()
    # vmm-core held stopped: the save waits for its state, so it is seen under way.
    core = vm.child("cloister-vmm")
    snapdir = os.path.join(workdir, "snap")
    os.mkdir(snapdir)
    result = {}
    os.kill(core, signal.SIGSTOP)
    try:
        t = threading.Thread(target=lambda: result.update(
            r=vm.api("PUT", "vm.snapshot", {"destination_url": f"file://{snapdir}"})))
        t.start()
        deadline = time.time() + 20
        info = vm.info()
        while "snapshot_progress" not in info and time.time() < deadline:
            time.sleep(0.02)
            info = vm.info()
        assert info.get("operation", {}).get("name") == "snapshot", info
        progress = info["snapshot_progress"]
        assert progress == {"bytes_done": 0, "bytes_total": total}, progress
    finally:
        os.kill(core, signal.SIGCONT)
    t.join(timeout=120)
    assert result["r"][0] == 204, result
    assert "snapshot_progress" not in vm.info(), "progress shown after the save ended"
    check_snapshot_files(snapdir)
