# SPDX-License-Identifier: Apache-2.0
"""OnDemand restore: snapshotd stays on as the page server of the restored VM,
and vmm-core's memory is paged in from the snapshot as it is touched."""
import os
import re
import signal
import subprocess
import time

from conftest import children_of, first_counts_after, hart_counts, write_vm_json
from test_linux_devices import netns  # noqa: F401 - a fixture

HARTS = 2


def boot_count_snapshot(vms, workdir, rng=False):
    vm = vms("first")
    vm.boot(cpus=HARTS, memory="4G", rng=rng)
    vm.wait_serial(lambda t: "pattern: written" in t and
                   all(hart_counts(t).get(h, 0) >= 3 for h in range(HARTS)),
                   what="every hart to count to 3")
    vm.remote("pause")
    text = vm.serial_text()
    snapdir = os.path.join(workdir, "snap")
    os.makedirs(snapdir)
    vm.remote("snapshot", f"file://{snapdir}")
    vm.remote("shutdown-vmm")
    assert vm.proc.wait(timeout=10) == 0
    return vm, snapdir, hart_counts(text), len(text)


def snapshotd_pids(vm):
    out = []
    for p in children_of(vm.proc.pid):
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if "cloister-snapshotd" in cmd:
            out.append(p)
    return out


def logged(vm, needle, timeout=20):
    """vm's log once it holds needle: snapshotd writes its own lines to the
    shared stderr, and may do so after the gateway has answered."""
    deadline = time.time() + timeout
    while needle not in vm.log() and time.time() < deadline:
        time.sleep(0.02)
    return vm.log()


def ended_info(vm, timeout):
    """vm.info once the VM has failed or shut down, or as it is at the timeout."""
    deadline = time.time() + timeout
    info = vm.info()
    while info["state"] not in ("Failed", "Shutdown") and time.time() < deadline:
        time.sleep(0.1)
        info = vm.info()
    return info


def check_continues(vm, before, offset):
    text = vm.wait_serial(lambda t: all(h in first_counts_after(t, offset) for h in range(HARTS)),
                          what="every hart to count again")
    first = first_counts_after(text, offset)
    for h in range(HARTS):
        assert first[h] == before[h] + 1, f"hart {h}: {before[h]} then {first[h]}"
    text = vm.wait_serial(lambda t: "pattern: ok" in t[offset:] or "BAD" in t[offset:],
                          timeout=30, what="a pattern check after resume")
    assert "BAD" not in text, text[offset:]


def test_ondemand_restore_from_command_line_counts_on(vms, workdir):
    vm, snapdir, before, offset = boot_count_snapshot(vms, workdir)
    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start("--restore", f"source_url=file://{snapdir},memory_restore_mode=OnDemand")
    assert vm2.info()["state"] == "Paused"
    assert len(snapshotd_pids(vm2)) == 1, "snapshotd is not kept as the page server"
    assert "memory on demand" in logged(vm2, "memory on demand")
    vm2.remote("resume")
    check_continues(vm2, before, offset)
    # The page server finished: every page present, the files closed, the process kept.
    deadline = time.time() + 30
    while "snapshot files closed" not in vm2.log() and time.time() < deadline:
        time.sleep(0.1)
    m = re.search(r"pager: all (\d+) bytes present \((\d+) faults served", vm2.log())
    assert m and int(m.group(1)) > 0, vm2.log()
    print("paged", m.group(1), "bytes;", m.group(2), "faults served")
    assert len(snapshotd_pids(vm2)) == 1
    info = vm2.info()
    assert info["state"] == "Running"
    # vm.info shows the paging's progress: done, all bytes present.
    mr = info["memory_restore"]
    assert mr["mode"] == "OnDemand" and mr["done"] is True, mr
    assert mr["bytes_present"] == mr["bytes_total"] == int(m.group(1)), mr
    # Once done, a snapshot of the restored VM is taken as usual.
    vm2.remote("pause")
    snap2 = os.path.join(workdir, "snap2")
    os.mkdir(snap2)
    vm2.remote("snapshot", f"file://{snap2}")


def test_ondemand_restore_through_the_api(vms, workdir):
    vm, snapdir, before, offset = boot_count_snapshot(vms, workdir)
    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start()
    status, body = vm2.api("PUT", "vm.restore", {"source_url": f"file://{snapdir}",
                                                "memory_restore_mode": "OnDemand"})
    assert status == 204, (status, body)
    assert vm2.info()["state"] == "Paused"
    assert len(snapshotd_pids(vm2)) == 1
    vm2.remote("resume")
    check_continues(vm2, before, offset)


def test_ondemand_with_prefault_is_refused(vms, workdir):
    vm = vms()
    vm.start()
    status, body = vm.api("PUT", "vm.restore", {"source_url": "file:///nonexistent",
                                               "memory_restore_mode": "OnDemand",
                                               "prefault": True})
    assert status == 400, (status, body)
    status, body = vm.api("PUT", "vm.restore", {"source_url": "file:///nonexistent",
                                               "memory_restore_mode": "Lazy"})
    assert status == 400, (status, body)


# A mount namespace whose /dev/userfaultfd is /dev/null: a host or container
# without a usable one. unshare execs sh, sh execs cloister: one pid.
NO_USERFAULTFD = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount --bind /dev/null /dev/userfaultfd && exec "$0" "$@"')


def test_without_userfaultfd_ondemand_by_name_is_refused_and_default_copies(vms, workdir):
    vm, snapdir, before, offset = boot_count_snapshot(vms, workdir)
    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start(prefix=NO_USERFAULTFD)
    status, body = vm2.api("PUT", "vm.restore", {"source_url": f"file://{snapdir}",
                                                "memory_restore_mode": "OnDemand"})
    assert status == 400, (status, body)
    assert "/dev/userfaultfd" in str(body) and "Copy" in str(body), body
    status, _ = vm2.api("GET", "vm.info")
    assert status != 200, "a refused restore left a VM"
    assert not snapshotd_pids(vm2)
    # Not named: the default falls back to Copy, says so, and the guest goes on.
    status, body = vm2.api("PUT", "vm.restore", {"source_url": f"file://{snapdir}"})
    assert status == 204, (status, body)
    assert "no usable /dev/userfaultfd" in vm2.log()
    info = vm2.info()
    assert info["state"] == "Paused"
    assert "memory_restore" not in info, info
    assert not snapshotd_pids(vm2), "a Copy restore keeps no page server"
    vm2.remote("resume")
    check_continues(vm2, before, offset)


def test_page_server_killed_fails_the_vm_with_the_reason(vms, workdir):
    vm, snapdir, _, _ = boot_count_snapshot(vms, workdir)
    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start("--restore", f"source_url=file://{snapdir},memory_restore_mode=OnDemand")
    assert vm2.info()["state"] == "Paused"
    [pid] = snapshotd_pids(vm2)
    os.kill(pid, signal.SIGKILL)
    info = ended_info(vm2, 10)
    assert "page server" in str(info), info
    print(info.get("state"), info.get("error"))
    # No process of the VM is left waiting on a fault.
    time.sleep(0.5)
    assert not [p for p in children_of(vm2.proc.pid)
                if "cloister-vmm" in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")]


def test_rng_device_process_is_served_too(vms, workdir):
    """The rng device process registers its own mapping: its writes into the
    guest's buffers and its reads of the rings fault and are filled first."""
    vm, snapdir, before, offset = boot_count_snapshot(vms, workdir, rng=True)
    vm2 = start_faults_only(vms, vm, snapdir)
    assert "for 2 processes" in logged(vm2, "for 2 processes"), vm2.log()
    vm2.remote("resume")
    check_continues(vm2, before, offset)
    # The guest asks the rng again every 50 counts; the device must answer.
    text = vm2.wait_serial(lambda t: "rng: " in t[offset:], timeout=30, what="rng after restore")
    lines = [l for l in text[offset:].splitlines() if l.startswith("rng: ")]
    assert lines[0] != "rng: timeout" and len(lines[0]) == len("rng: ") + 32, lines


def start_faults_only(vms, vm, snapdir):
    """A restore whose page server serves faults only (no prefetch): every
    page the VM uses after restore comes through the fault path."""
    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start("--restore", f"source_url=file://{snapdir},memory_restore_mode=OnDemand",
              env=dict(os.environ, CLOISTER_ONDEMAND_NO_PREFETCH="1"))
    assert vm2.info()["state"] == "Paused"
    return vm2


def test_vmm_core_faults_are_served_from_the_snapshot(vms, workdir):
    vm, snapdir, before, offset = boot_count_snapshot(vms, workdir)
    vm2 = start_faults_only(vms, vm, snapdir)
    vm2.remote("resume")
    check_continues(vm2, before, offset)
    mr = vm2.info()["memory_restore"]
    assert mr["done"] is False and mr["bytes_present"] == 0 and mr["bytes_total"] > 0, mr
    m = re.search(r"(\d+) faults served", vm2.log())
    # Pages never touched are not in the memfds yet: the snapshot has the page
    # server bring them all in first, then saves (never a missing page as zero).
    vm2.remote("pause")
    snap2 = os.path.join(workdir, "snap2")
    os.mkdir(snap2)
    vm2.remote("snapshot", f"file://{snap2}")
    mr = vm2.info()["memory_restore"]
    assert mr["done"] is True and mr["bytes_present"] == mr["bytes_total"], mr
    m = re.search(r"pager: all \d+ bytes present \((\d+) faults served", vm2.log())
    assert m, vm2.log()
    # The engine fetched its code, stacks and the pattern through faults: each
    # fault brings its whole checked 1 MiB chunk, so a few of them, not one per page.
    assert int(m.group(1)) >= 2, m.group(0)
    print(m.group(0))
    offset = len(vm2.serial_text())
    vm2.remote("shutdown-vmm")
    vm2.proc.wait(timeout=10)
    # The second snapshot holds every page: a Copy restore of it checks its pattern.
    vm3 = vms("third")
    vm3.serial = vm.serial
    vm3.start("--restore", f"source_url=file://{snap2},memory_restore_mode=Copy,resume=true")
    text = vm3.wait_serial(lambda t: "pattern: ok" in t[offset:] or "BAD" in t[offset:],
                           timeout=30, what="a pattern check after the second restore")
    assert "BAD" not in text[offset:], text[offset:]


def test_region_file_cut_during_ondemand_fails_the_vm_cleanly(vms, workdir):
    vm, snapdir, _, _ = boot_count_snapshot(vms, workdir)
    vm2 = start_faults_only(vms, vm, snapdir)
    for name in ("memory-region-0", "memory-region-1"):
        os.truncate(os.path.join(snapdir, name), 4096)
    vm2.remote("resume", check=False)
    info = ended_info(vm2, 15)
    print(info.get("state"), info.get("error"))
    assert "changed during an OnDemand restore" in str(info), info
    time.sleep(0.5)
    assert not children_of(vm2.proc.pid), "a process of the failed VM is left"
    assert vm2.api("GET", "vmm.ping", timeout=5)[0] == 200


def test_linux_with_disk_net_console_ondemand(workdir, netns, monkeypatch):
    """A running Linux guest with disk, network and console, restored
    OnDemand with faults only: every page any process touches comes from the
    snapshot through a fault, including the blk device's reads into pages
    the guest frees and refills (drop_caches, then a read of the file)."""
    import hashlib
    from test_linux import INITRAMFS, KERNEL
    from test_linux_devices import GUEST_IP, PEER_IP, NetnsVM, host_ping
    if not os.path.exists(KERNEL):
        import pytest
        pytest.skip("no Linux guest: run guest/linux/fetch.sh")
    disk = os.path.join(workdir, "disk.img")
    console = os.path.join(workdir, "hvc0.log")
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    made = []
    try:
        vm = NetnsVM(workdir, "first", netns)
        made.append(vm)
        vm.start("--cpus", "boot=2", "--memory", "size=1G", "--kernel", KERNEL,
                 "--initramfs", INITRAMFS, "--cmdline", "console=ttyS0", "--serial", "tty",
                 "--disk", f"path={disk}", "--net", "tap=cltap0,mac=52:54:00:00:77:02", "--rng",
                 "--console", f"file={console}")
        vm.wait(r"cloister-guest: init reached", timeout=240)
        vm.wait(r"~ # ")
        vm.ask("mke2fs -q /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt && echo fs-ok",
               r"^fs-ok$", timeout=120)
        vm.ask("head -c 8388608 /dev/urandom > /mnt/data && sync && echo synced", r"^synced$",
               timeout=120)
        want = vm.ask("sha256sum /mnt/data", r"^([0-9a-f]{64})  /mnt/data$").group(1)
        vm.ask(f"ip link set eth0 up && ip addr add {GUEST_IP}/24 dev eth0 && echo up", r"^up$")
        vm.ask(f"ping -c 1 -W 5 {PEER_IP} >/dev/null && echo ping-ok", r"^ping-ok$", timeout=60)
        vm.ask("echo before > /dev/hvc0; echo sent", r"^sent$")
        vm.remote("pause")
        snapdir = os.path.join(workdir, "snap")
        os.mkdir(snapdir)
        vm.remote("snapshot", f"file://{snapdir}")
        vm.remote("shutdown-vmm")
        vm.proc.wait(timeout=20)

        monkeypatch.setenv("CLOISTER_ONDEMAND_NO_PREFETCH", "1")
        vm2 = NetnsVM(workdir, "second", netns)
        made.append(vm2)
        vm2.out_path = vm.out_path + ".2"
        vm2.start("--restore",
                  f"source_url=file://{snapdir},memory_restore_mode=OnDemand,resume=true")
        assert vm2.ask("echo alive-$((2+3))", r"^alive-(\d+)$", timeout=60).group(1) == "5"
        # The file reads back the same from the page cache (pages faulted in)...
        got = vm2.ask("sha256sum /mnt/data", r"^([0-9a-f]{64})  /mnt/data$", timeout=60).group(1)
        assert got == want
        # ...and from the disk, DMAed by the blk process into pages it faults in.
        vm2.ask("echo 3 > /proc/sys/vm/drop_caches; echo dropped", r"^dropped$")
        got = vm2.ask("sha256sum /mnt/data", r"^([0-9a-f]{64})  /mnt/data$", timeout=60).group(1)
        assert got == want
        vm2.ask(f"ping -c 1 -W 5 {PEER_IP} >/dev/null && echo ping-ok2", r"^ping-ok2$", timeout=60)
        assert host_ping(netns).returncode == 0
        vm2.ask("echo after > /dev/hvc0; echo sent2", r"^sent2$")
        deadline = time.time() + 10
        while "after" not in open(console).read() and time.time() < deadline:
            time.sleep(0.1)
        assert "before" in open(console).read() and "after" in open(console).read()
        vm2.ask("umount /mnt && echo unmounted", r"^unmounted$", timeout=60)
        vm2.remote("shutdown-vmm")
        vm2.proc.wait(timeout=20)
        log = open(vm2.log_path).read()
        assert "for 5 processes" in log, log
        fsck = subprocess.run(["e2fsck", "-fn", disk], capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        print(re.search(r"pager: stopping.*", log).group(0))
    finally:
        for v in made:
            if v.proc and v.proc.poll() is None:
                v.proc.kill()
                v.proc.wait()


def test_snapshot_directory_removed_during_ondemand_is_harmless(vms, workdir):
    """snapshotd holds the region files open: removing the directory while
    pages are still missing changes nothing for the VM."""
    import shutil
    vm, snapdir, before, offset = boot_count_snapshot(vms, workdir)
    vm2 = start_faults_only(vms, vm, snapdir)
    shutil.rmtree(snapdir)
    vm2.remote("resume")
    check_continues(vm2, before, offset)
    assert vm2.info()["state"] == "Running"


def test_working_set_is_recorded_stored_and_prefetched_first(vms, workdir):
    """A restore without a mode is OnDemand; its faults are recorded, the
    next snapshot stores them in vm.json, and the next restore prefetches
    them first."""
    import json
    vm, snapdir, before, offset = boot_count_snapshot(vms, workdir)
    vm2 = vms("second")
    vm2.serial = vm.serial
    vm2.start("--restore", f"source_url=file://{snapdir}")
    assert "memory on demand" in logged(vm2, "memory on demand")
    assert "a working set of 0 blocks first" in logged(vm2, "blocks first"), vm2.log()
    vm2.remote("resume")
    check_continues(vm2, before, offset)
    vm2.remote("pause")
    snap2 = os.path.join(workdir, "snap2")
    os.mkdir(snap2)
    vm2.remote("snapshot", f"file://{snap2}")
    m = re.search(r"working set of (\d+) blocks recorded", vm2.log())
    assert m and int(m.group(1)) > 0, vm2.log()
    doc = json.load(open(os.path.join(snap2, "vm.json")))
    ws = doc["working_set"]
    assert ws["block_size"] == 65536
    blocks = ws["blocks"]
    assert len(blocks) == int(m.group(1)) and len(blocks) <= 16384
    assert len({tuple(b) for b in blocks}) == len(blocks), "a block named twice"
    sizes = [r["size"] for r in doc["memory_regions"]]
    assert all(b[0] < len(sizes) and b[1] * 65536 < sizes[b[0]] for b in blocks), blocks
    offset2 = len(vm2.serial_text())
    vm2.remote("shutdown-vmm")
    assert vm2.proc.wait(timeout=10) == 0
    vm3 = vms("third")
    vm3.serial = vm.serial
    vm3.start("--restore", f"source_url=file://{snap2}")
    assert f"a working set of {len(blocks)} blocks first" in logged(vm3, "blocks first"), \
        vm3.log()
    vm3.remote("resume")
    text = vm3.wait_serial(lambda t: "pattern: ok" in t[offset2:] or "BAD" in t[offset2:],
                           timeout=30, what="a pattern check after the third restore")
    assert "BAD" not in text[offset2:], text[offset2:]


def test_vm_json_with_a_bad_working_set_is_refused(vms, workdir):
    """The working set in vm.json is checked like the rest of the file."""
    import json
    vm, snapdir, _, _ = boot_count_snapshot(vms, workdir)
    path = os.path.join(snapdir, "vm.json")
    doc = json.load(open(path))
    size0 = doc["memory_regions"][0]["size"]
    doc["working_set"] = {"block_size": 65536, "blocks": [[0, size0 // 65536]]}
    write_vm_json(path, doc)  # its digest made right: the working set check is what refuses it
    vm2 = vms("second")
    vm2.start()
    status, body = vm2.api("PUT", "vm.restore", {"source_url": f"file://{snapdir}"})
    assert status >= 400 and "outside guest memory" in str(body), (status, body)
    assert vm2.api("GET", "vm.info")[0] == 404, "a VM was made from the refused snapshot"


def test_region_file_eio_during_ondemand_fails_the_vm_cleanly(vms, workdir):
    """A real read error from the disk under the snapshot: the snapshot sits
    on ext4 on a loop device, its pages are dropped from the page cache, and
    the loop device is cut to 1 MiB, so the block layer answers the page
    server's reads with EIO. (device-mapper's error target would do the same
    for a chosen range, but this container has no device-mapper driver.)"""
    import pytest
    vm, snapdir, _, _ = boot_count_snapshot(vms, workdir)
    image = os.path.join(workdir, "fs.img")
    mnt = os.path.join(workdir, "mnt")
    os.mkdir(mnt)
    with open(image, "wb") as f:
        f.truncate(256 << 20)
    r = subprocess.run(["losetup", "-f", "--show", image], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device here: {r.stderr.strip()}")
    loop = r.stdout.strip()
    mounted = False
    try:
        subprocess.run(["mkfs.ext4", "-q", loop], check=True)
        r = subprocess.run(["mount", "-o", "errors=continue", loop, mnt], capture_output=True,
                           text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a loop device here: {r.stderr.strip()}")
        mounted = True
        snap = os.path.join(mnt, "snap")
        subprocess.run(["cp", "-a", snapdir, snap], check=True)
        subprocess.run(["sync"], check=True)
        vm2 = start_faults_only(vms, vm, snap)
        for name in ("memory-region-0", "memory-region-1"):
            fd = os.open(os.path.join(snap, name), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        os.truncate(image, 1 << 20)
        subprocess.run(["losetup", "-c", loop], check=True)
        vm2.remote("resume", check=False)
        info = ended_info(vm2, 15)
        print(info.get("state"), info.get("error"))
        assert "Input/output error" in str(info) and "page server" in str(info), info
        time.sleep(0.5)
        assert not children_of(vm2.proc.pid), "a process of the failed VM is left"
        assert vm2.api("GET", "vmm.ping", timeout=5)[0] == 200
    finally:
        if mounted:
            subprocess.run(["umount", "-l", mnt])
        subprocess.run(["losetup", "-d", loop])


def test_reboot_and_delete_during_paging(vms, workdir):
    """A reboot while pages are still missing boots a fresh tree (fresh
    memfds, no page server: nothing of the snapshot comes back into the new
    guest); a delete then leaves no process."""
    vm, snapdir, before, offset = boot_count_snapshot(vms, workdir)
    vm2 = start_faults_only(vms, vm, snapdir)
    vm2.remote("resume")
    check_continues(vm2, before, offset)
    assert vm2.info()["memory_restore"]["done"] is False
    # The old guest, past count 3, never prints count 1 again: a count 1 is the new guest.
    os.truncate(vm2.serial, 0)
    status, body = vm2.api("PUT", "vm.reboot")
    assert status == 204, (status, body)
    info = vm2.info()
    assert info["state"] == "Running" and "memory_restore" not in info, info
    assert not snapshotd_pids(vm2), "the page server outlived the reboot"
    vm2.wait_serial(lambda t: re.search(r"^hart 0 count 1$", t, re.M), timeout=30,
                    what="the rebooted guest to count from the start")
    status, body = vm2.api("PUT", "vm.delete")
    assert status == 204, (status, body)
    time.sleep(0.5)
    assert not children_of(vm2.proc.pid), "a process of the deleted VM is left"
