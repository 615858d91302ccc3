# SPDX-License-Identifier: Apache-2.0
"""What a snapshot, an option or a killed gateway must not make the host do (docs/trust.md)."""
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
import uuid

import pytest

from conftest import GUEST, cmdline, hart_counts, proc_status, write_vm_json

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the attacks are on a gateway that runs as root")


def snapshot_of(vm, snapdir):
    vm.remote("pause")
    os.makedirs(snapdir, exist_ok=True)
    vm.remote("snapshot", f"file://{snapdir}")


def sealed_snapshot(vms, workdir, extra=(), name="orig"):
    """A snapshot of a small guest with a disk; the VM stopped."""
    disk = os.path.join(workdir, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    vm = vms(name)
    vm.boot(cpus=1, memory="256M", extra=("--disk", f"path={disk}", *extra))
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 2, what="the guest to run")
    snapdir = os.path.join(workdir, "snap")
    snapshot_of(vm, snapdir)
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)
    return snapdir, disk


def edit_vm_json(d, change):
    path = os.path.join(d, "vm.json")
    with open(path) as f:
        doc = json.load(f)
    change(doc)
    write_vm_json(path, doc)


def digest(d):
    """Names and contents of every file in d."""
    out = {}
    for n in sorted(os.listdir(d)):
        with open(os.path.join(d, n), "rb") as f:
            out[n] = hashlib.sha256(f.read()).hexdigest()
    return out


def wait_log(vm, text):
    """The children's lines come through the gateway's relay: wait for one."""
    deadline = time.time() + 10
    while text not in vm.log() and time.time() < deadline:
        time.sleep(0.05)
    return text in vm.log()


def restore_refused(vm, snapdir, status=400):
    code, body = vm.api("PUT", "vm.restore", {"source_url": f"file://{snapdir}"})
    assert code == status, (code, body)
    assert vm.api("GET", "vm.info")[0] == 404
    assert vm.children() == []
    return json.dumps(body)


# ---- 1. a snapshot directory is untrusted input ----

@needs_root
def test_copied_snapshot_reaches_no_host_path(vms, workdir):
    snapdir, disk = sealed_snapshot(vms, workdir)
    # The attacker's copy: serial output into a root-only directory, the disk on a secret.
    victim_dir = os.path.join(workdir, "root-only")
    os.mkdir(victim_dir, 0o700)
    victim = os.path.join(victim_dir, "authorized_keys")
    secret = os.path.join(workdir, "shadow")
    with open(secret, "wb") as f:
        f.write(b"x" * 631)
    os.chmod(secret, 0o600)
    evil = os.path.join(workdir, "evil")
    shutil.copytree(snapdir, evil)

    def attack(doc):
        doc["config"]["serial"] = {"mode": "SERIAL_FILE", "path": victim}
        doc["config"]["devices"][-1]["path"] = secret
    edit_vm_json(evil, attack)

    vm = vms("restorer")
    vm.start()
    text = restore_refused(vm, evil)
    assert "disk0" in text and "binding" in text, text
    assert "631" not in text and secret not in text, text
    assert not os.path.exists(victim), "the restore created a file the snapshot named"
    with open(secret, "rb") as f:
        assert f.read() == b"x" * 631

    # With the disk bound by the restorer, it restores; serial output goes nowhere.
    mine = os.path.join(workdir, "mine.img")
    shutil.copy(disk, mine)
    vm2 = vms("bound")
    vm2.start("--restore", f"source_url=file://{evil}",
              "--restore-bind", f"id=disk0,path={mine}")
    info = vm2.info()
    assert info["state"] == "Paused"
    assert info["config"]["disks"][0]["path"] == mine
    assert not os.path.exists(victim)


@needs_root
def test_fifo_and_symlink_in_a_sealed_snapshot_are_refused(vms, workdir):
    console = os.path.join(workdir, "console.out")
    snapdir, disk = sealed_snapshot(vms, workdir, extra=("--console", f"file={console}"))
    # The console's file became a FIFO: opening it for writing must not happen.
    os.unlink(console)
    os.mkfifo(console)
    vm = vms("fifo")
    vm.start()
    text = restore_refused(vm, snapdir)
    assert "console0" in text and "regular file" in text, text
    os.unlink(console)
    open(console, "w").close()

    # The disk's path now leads through a link: refused, and no size is told.
    os.rename(disk, disk + ".real")
    os.symlink(disk + ".real", disk)
    vm2 = vms("link")
    vm2.start()
    text = restore_refused(vm2, snapdir)
    assert "disk0" in text and "symbolic link" in text, text
    os.unlink(disk)
    os.rename(disk + ".real", disk)

    # As it was, the sealed snapshot restores with its own paths.
    vm3 = vms("again")
    vm3.start("--restore", f"source_url=file://{snapdir}")
    assert vm3.info()["state"] == "Paused"


@needs_root
def test_disk_size_change_is_refused_without_telling_sizes(vms, workdir):
    snapdir, disk = sealed_snapshot(vms, workdir)
    os.truncate(disk, 12345 * 512)
    vm = vms("restorer")
    vm.start()
    text = restore_refused(vm, snapdir)
    assert "disk0" in text and "size" in text, text
    assert "12345" not in text and str(12345 * 512) not in text and str(8 << 20) not in text, text


@needs_root
def test_one_snapshot_restores_twice_side_by_side(vms, workdir):
    snapdir, disk = sealed_snapshot(vms, workdir)
    for i in range(2):
        img = os.path.join(workdir, f"clone{i}.img")
        shutil.copy(disk, img)
        out = os.path.join(workdir, f"clone{i}.serial")
        vm = vms(f"clone{i}")
        vm.start("--restore", f"source_url=file://{snapdir},resume=true",
                 "--restore-bind", f"id=disk0,path={img}",
                 "--restore-bind", f"id=serial,file={out}")
        assert vm.info()["config"]["disks"][0]["path"] == img
        deadline = time.time() + 30
        while time.time() < deadline and "count" not in open(out).read():
            time.sleep(0.05)
        assert "count" in open(out).read(), f"clone {i} wrote nothing to its own serial file"


@needs_root
def test_vm_restore_takes_bindings_over_the_api(vms, workdir):
    snapdir, disk = sealed_snapshot(vms, workdir)
    evil = os.path.join(workdir, "copied")
    shutil.copytree(snapdir, evil)
    edit_vm_json(evil, lambda doc: doc["config"]["devices"][-1].update(path="/etc/shadow"))
    vm = vms("api")
    vm.start()
    # The copy is unsealed: without a binding its disk is refused, naming it.
    text = restore_refused(vm, evil)
    assert "disk0" in text, text
    # A malformed binding is a 400 too, and creates nothing.
    code, body = vm.api("PUT", "vm.restore", {"source_url": f"file://{evil}",
                                              "devices": [{"id": "disk0", "bogus": "x"}]})
    assert code == 400, (code, body)
    assert vm.api("GET", "vm.info")[0] == 404
    mine = os.path.join(workdir, "api.img")
    shutil.copy(disk, mine)
    out = os.path.join(workdir, "api.serial")
    code, body = vm.api("PUT", "vm.restore", {
        "source_url": f"file://{evil}", "resume": True,
        "devices": [{"id": "disk0", "path": mine}, {"id": "serial", "file": out}]})
    assert code == 204, (code, body)
    info = vm.info()
    assert info["state"] == "Running" and info["config"]["disks"][0]["path"] == mine, info
    deadline = time.time() + 30
    while time.time() < deadline and "count" not in open(out).read():
        time.sleep(0.05)
    assert "count" in open(out).read()


def test_restore_bind_needs_a_known_device(vms, workdir):
    snapdir, disk = sealed_snapshot(vms, workdir)
    vm = vms("restorer")
    vm.start("--restore", f"source_url=file://{snapdir}", "--restore-bind", "id=disk7,path=/x",
             wait_socket=False)
    assert vm.proc.wait(timeout=30) != 0
    assert "disk7" in vm.log() and "no such device" in vm.log()


# ---- 2. no crash from any option or snapshot ----

def tap_name():
    return f"clt{uuid.uuid4().hex[:8]}"


@needs_root
@pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun")
def test_net_without_mac_does_not_crash(vms, workdir):
    tap = tap_name()
    vm = vms("net")
    vm.boot(cpus=1, memory="256M", extra=("--net", f"tap={tap}"))
    mac = vm.info()["config"]["net"][0]["mac"]
    assert len(mac) == 17 and mac.startswith("52:54:00:"), mac
    snapdir = os.path.join(workdir, "snap")
    snapshot_of(vm, snapdir)
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)
    assert vm.proc.returncode == 0
    # The sealed snapshot restores on a tap of the restorer's choosing.
    vm1 = vms("rebound")
    vm1.start("--restore", f"source_url=file://{snapdir}",
              "--restore-bind", f"id=net0,tap={tap_name()}")
    assert vm1.info()["config"]["net"][0]["mac"] == mac
    vm1.remote("shutdown-vmm")
    vm1.proc.wait(timeout=10)
    # A snapshot whose NIC has no MAC: refused before anything starts, nobody crashes.
    edit_vm_json(snapdir, lambda doc: [d.update(mac="") for d in doc["config"]["devices"]
                                       if d.get("kind") == "net"])
    vm2 = vms("cli")
    vm2.start("--restore", f"source_url=file://{snapdir}",
              "--restore-bind", f"id=net0,tap={tap_name()}", wait_socket=False)
    assert vm2.proc.wait(timeout=30) == 1, vm2.log()
    assert "no MAC" in vm2.log()
    vm3 = vms("api")
    vm3.start()
    assert "no MAC" in restore_refused(vm3, snapdir)
    assert vm3.api("GET", "vmm.ping")[0] == 200
    assert vm3.proc.poll() is None


# ---- 3. the tree never outlives the gateway ----

@needs_root
def test_children_die_with_a_killed_gateway(vms, workdir):
    vm = vms("doomed")
    vm.boot(cpus=1, memory="256M")
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 2, what="the guest to run")
    kids = vm.children()
    assert len(kids) >= 2, kids
    os.kill(vm.child("cloister-vmm"), signal.SIGSTOP)
    vm.proc.kill()
    vm.proc.wait(timeout=10)
    deadline = time.time() + 5
    alive = kids
    while alive and time.time() < deadline:
        alive = [p for p in kids if os.path.exists(f"/proc/{p}") and
                 open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
        time.sleep(0.05)
    assert not alive, [cmdline(p) for p in alive]


# ---- 6. a failed snapshot leaves the previous one ----

@needs_root
def test_enospc_keeps_the_older_snapshot(vms, workdir):
    small = os.path.join(workdir, "small")
    os.mkdir(small)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "cloister-test", small],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    vm = vms("full")
    try:
        vm.boot(cpus=1, memory="256M")
        vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 2, what="the guest to run")
        snapdir = os.path.join(small, "snap")
        snapshot_of(vm, snapdir)
        before = digest(snapdir)
        # Fill what is left of the file system.
        with open(os.path.join(small, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\xff" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        vm.remote("resume")
        vm.remote("pause")
        r = vm.remote("snapshot", f"file://{snapdir}", check=False)
        assert r.returncode != 0, "the snapshot did not fail on a full file system"
        assert digest(snapdir) == before
        assert vm.info()["state"] == "Paused"
    finally:
        vm.stop()
        subprocess.run(["umount", "-l", small], check=False)


@needs_root
def test_kill_mid_snapshot_keeps_the_older_one(vms, workdir):
    vm = vms("killed")
    vm.boot(cpus=1, memory="256M")
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 2, what="the guest to run")
    snapdir = os.path.join(workdir, "snap")
    snapshot_of(vm, snapdir)
    before = digest(snapdir)
    # vmm-core stopped: the next snapshot waits for it with its files half made.
    os.kill(vm.child("cloister-vmm"), signal.SIGSTOP)
    def snapshot_request():
        try:
            vm.api("PUT", "vm.snapshot", {"destination_url": f"file://{snapdir}"}, timeout=60)
        except OSError:
            pass    # the gateway is killed before it answers
    t = threading.Thread(target=snapshot_request)
    t.daemon = True
    t.start()
    deadline = time.time() + 20
    while time.time() < deadline and not any(n.endswith(".partial") for n in os.listdir(snapdir)):
        time.sleep(0.02)
    assert any(n.endswith(".partial") for n in os.listdir(snapdir))
    vm.proc.kill()
    vm.proc.wait(timeout=10)
    assert {n: h for n, h in digest(snapdir).items() if not n.endswith(".partial")} == before
    # The next user of the directory clears the leftovers and finds the older snapshot.
    vm2 = vms("after")
    vm2.start("--restore", f"source_url=file://{snapdir}")
    assert vm2.info()["state"] == "Paused"
    assert digest(snapdir) == before


@needs_root
def test_committed_snapshot_is_completed_by_the_next_restore(vms, workdir):
    vm = vms("two")
    vm.boot(cpus=1, memory="256M")
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 2, what="the guest to run")
    a = os.path.join(workdir, "a")
    snapshot_of(vm, a)
    vm.remote("resume")
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 6, what="the guest to go on")
    b = os.path.join(workdir, "b")
    snapshot_of(vm, b)
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)
    # A publish of b over a, killed right after its commit point.
    for n in os.listdir(b):
        shutil.copy(os.path.join(b, n), os.path.join(a, n + ".partial"))
    with open(os.path.join(a, "commit"), "w") as f:
        f.write("regions 2\n")
    vm2 = vms("after")
    vm2.start("--restore", f"source_url=file://{a}")
    assert vm2.info()["state"] == "Paused"
    assert digest(a) == digest(b)


# ---- 7. smaller points a snapshot can make ----

@needs_root
def test_duplicate_key_hard_link_and_foreign_region_are_refused(vms, workdir):
    vm = vms("orig")
    vm.boot(cpus=1, memory="256M")
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 2, what="the guest to run")
    snapdir = os.path.join(workdir, "snap")
    snapshot_of(vm, snapdir)
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)

    dup = os.path.join(workdir, "dup")
    shutil.copytree(snapdir, dup)
    with open(os.path.join(dup, "vm.json")) as f:
        text = f.read()
    text = text.replace('"version": 1', '"version": 1, "version": 1', 1).replace(
        '"version":1', '"version":1,"version":1', 1)
    with open(os.path.join(dup, "vm.json"), "w") as f:
        f.write(text)
    r = vms("dup")
    r.start()
    assert "repeats a key" in restore_refused(r, dup)

    linked = os.path.join(workdir, "linked")
    shutil.copytree(snapdir, linked)
    other = os.path.join(workdir, "guest-memory-of-another-vm")
    shutil.copy(os.path.join(linked, "memory-region-0"), other)
    os.unlink(os.path.join(linked, "memory-region-0"))
    os.link(other, os.path.join(linked, "memory-region-0"))
    r = vms("linked")
    r.start()
    text = restore_refused(r, linked)
    assert "memory-region-0" in text and "hard link" in text, text

    foreign = os.path.join(workdir, "foreign")
    shutil.copytree(snapdir, foreign)
    os.chown(os.path.join(foreign, "memory-region-0"), 12345, 12345)
    r = vms("foreign")
    r.start()
    text = restore_refused(r, foreign)
    assert "memory-region-0" in text and "another user" in text, text


@needs_root
def test_each_vm_has_its_own_uid_and_no_terminal(vms, workdir):
    a = vms("a")
    a.boot(cpus=1, memory="256M")
    b = vms("b")
    b.boot(cpus=1, memory="256M")
    ids = []
    for vm in (a, b):
        kids = vm.children()
        assert kids
        uids = {tuple(proc_status(p)["Uid"].split()) for p in kids}
        gids = {tuple(proc_status(p)["Gid"].split()) for p in kids}
        assert len(uids) == 1 and len(gids) == 1, (uids, gids)
        uid = next(iter(uids))[0]
        assert uid not in ("0", "65534") and next(iter(gids))[0] == uid, (uids, gids)
        ids.append(uid)
        for p in kids:
            assert os.readlink(f"/proc/{p}/fd/1") == "/dev/null", cmdline(p)
            assert os.readlink(f"/proc/{p}/fd/2").startswith("pipe:"), cmdline(p)
        # The children's own lines still reach the operator, through the gateway.
        assert wait_log(vm, "vmm confined")
    assert ids[0] != ids[1], "two VMs share a uid"
    # One VM's process cannot signal the other's.
    probe = subprocess.run(["setpriv", f"--reuid={ids[0]}", f"--regid={ids[0]}", "--clear-groups",
                            "kill", "-0", str(b.child("cloister-vmm"))], capture_output=True)
    assert probe.returncode != 0


@needs_root
def test_seccomp_trap_is_a_flag_not_an_inherited_variable(vms, workdir):
    env = dict(os.environ, CLOISTER_SECCOMP_TRAP="1")
    vm = vms("env")
    vm.start("--cpus", "boot=1", "--memory", "size=256M", "--kernel", GUEST,
             "--serial", f"file={vm.serial}", env=env)
    assert all("--seccomp-trap" not in cmdline(p) for p in vm.children())
    assert wait_log(vm, "vmm confined")
    assert "trap mode" not in vm.log()
    flag = vms("flag")
    flag.start("--cpus", "boot=1", "--memory", "size=256M", "--kernel", GUEST,
               "--serial", f"file={flag.serial}", "--seccomp-trap")
    assert all("--seccomp-trap" in cmdline(p) for p in flag.children())
    assert wait_log(flag, "trap mode")
