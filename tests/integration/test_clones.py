# SPDX-License-Identifier: Apache-2.0
"""Clones of one snapshot: each gets a fresh VMGenID (and so a reseeded RNG),
reads the host's wall clock through the goldfish RTC, and, with a disk
checkpoint, its own copy of the disk as it was at the snapshot.

Slow (real Linux guests); the guest comes from guest/linux/fetch.sh.
"""
import json
import os
import subprocess
import re
import time

import pytest

from conftest import BUILD
from test_linux import BOOT_TIMEOUT, INITRAMFS, KERNEL, LINUX, LinuxVM

pytestmark = pytest.mark.skipif(not os.path.exists(KERNEL) or not os.path.exists(INITRAMFS),
                                reason=f"no Linux guest in {LINUX}: run guest/linux/fetch.sh")

FORK = "crng reseeded due to virtual machine fork"
TOOL = os.path.join(BUILD, "cloister-snapshot")


def tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def linux(workdir):
    made = []

    def make(name):
        vm = LinuxVM(workdir, name)
        made.append(vm)
        return vm

    yield make
    for vm in made:
        vm.stop()


def guest_epoch(vm, command="date +%s"):
    return int(vm.ask(f"echo epoch-$({command})", r"^epoch-(\d+)$").group(1))


def first_random(vm):
    uuid = vm.ask("cat /proc/sys/kernel/random/uuid", r"^([0-9a-f-]{36})$").group(1)
    digest = vm.ask("head -c 32 /dev/urandom | sha256sum", r"^([0-9a-f]{64})  -$").group(1)
    return uuid, digest


def boot_and_snapshot(linux, workdir, *extra):
    vm = linux("base").start("--cpus", "boot=2", "--memory", "size=512M", "--kernel", KERNEL,
                             "--initramfs", INITRAMFS, "--cmdline", "console=ttyS0",
                             "--serial", "tty", *extra)
    vm.wait(r"cloister-guest: init reached", timeout=BOOT_TIMEOUT)
    vm.wait(r"~ # ")
    return vm


def take_snapshot(vm, workdir, body=()):
    vm.remote("pause")
    snapdir = os.path.join(workdir, "snap")
    os.mkdir(snapdir)
    vm.remote("snapshot", f"file://{snapdir}", *body)
    vm.remote("shutdown-vmm")
    assert vm.proc.wait(timeout=20) == 0
    return snapdir


def test_clones_get_fresh_identity_and_the_host_clock(linux, workdir):
    # virtio-rng seeds the guest's crng: a fork reseeds only a crng that is ready.
    vm = boot_and_snapshot(linux, workdir, "--rng")
    vm.wait(r"crng init done", timeout=60)
    # The kernel found both devices in the device tree.
    assert vm.ask("echo rtc-$(cat /sys/class/rtc/rtc0/name)", r"^rtc-(\S+)").group(1) \
        == "goldfish_rtc"
    assert vm.ask("echo gen-$(ls /sys/bus/platform/drivers/vmgenid/ | grep -c vmgenid)",
                  r"^gen-(\d+)$").group(1) == "1"
    # Booted, the guest's date is the host's.
    assert abs(guest_epoch(vm) - time.time()) < 5
    assert FORK not in vm.text()
    snapdir = take_snapshot(vm, workdir)
    time.sleep(8)   # the snapshot waits on disk: its clock falls behind the host's

    # Both restores read the snapshot at the same time.
    clones = [linux(f"clone{i}").start("--restore", f"source_url=file://{snapdir}")
              for i in range(2)]
    for c in clones:
        c.wait_socket()
        assert '"Paused"' in c.remote("info")
    for c in clones:
        c.remote("resume")
    for c in clones:
        assert c.ask(f"echo fork-$(dmesg | grep -c '{FORK}')", r"^fork-(\d+)$").group(1) == "1"
    got = [first_random(c) for c in clones]
    assert got[0][0] != got[1][0], got
    assert got[0][1] != got[1][1], got

    for c in clones:
        # The RTC reads the host's time of now; the system clock, frozen while
        # the VM was on disk, is behind until the guest reads the RTC again.
        assert abs(guest_epoch(c, "cat /sys/class/rtc/rtc0/since_epoch") - time.time()) < 5
        assert time.time() - guest_epoch(c) > 5
        assert abs(guest_epoch(c, "hwclock -s -u; date +%s") - time.time()) < 5


def debugfs_cat(image, path):
    r = subprocess.run(["debugfs", "-R", f"cat {path}", image], capture_output=True, text=True)
    return r.stdout


def test_disk_checkpoint_gives_each_clone_the_snapshots_disk(linux, workdir):
    disk = os.path.join(workdir, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    vm = boot_and_snapshot(linux, workdir, "--disk", f"path={disk}")
    vm.ask("mke2fs -q /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt && echo fs-ok",
           r"^fs-ok$", timeout=120)
    vm.ask("echo at-the-snapshot > /mnt/a && seq 1 5000 > /mnt/b && sync && echo synced",
           r"^synced$")
    vm.remote("pause")
    snapdir = os.path.join(workdir, "snap")
    os.mkdir(snapdir)
    vm.remote("snapshot", f"file://{snapdir}", "disks=checkpoint")
    listed = json.load(open(os.path.join(snapdir, "disks.json")))
    assert listed == {"version": 1, "disks": [{"id": "disk0", "file": "disk-disk0.img",
                                               "size": 64 << 20}]}, listed
    # The original goes on writing to its own disk.
    vm.remote("resume")
    vm.ask("echo after-the-snapshot > /mnt/a && rm /mnt/b && sync && umount /mnt && echo done",
           r"^done$")
    vm.remote("shutdown-vmm")
    assert vm.proc.wait(timeout=20) == 0
    assert debugfs_cat(disk, "/a").strip() == "after-the-snapshot"

    clones = [linux(f"clone{i}").start("--restore", f"source_url=file://{snapdir}")
              for i in range(2)]
    for c in clones:
        c.wait_socket()
    for c in clones:
        c.remote("resume")
    for i, c in enumerate(clones):
        assert c.ask("cat /mnt/a", r"^(at-the-\S+)$").group(1) == "at-the-snapshot"
        assert c.ask("echo lines-$(wc -l < /mnt/b)", r"^lines-(\d+)$").group(1) == "5000"
        c.ask(f"echo clone-{i} > /mnt/mine && sync && umount /mnt && echo unmounted",
              r"^unmounted$")
        c.remote("shutdown-vmm")
        assert c.proc.wait(timeout=20) == 0

    # cloister-snapshot sees the checkpoint, and the clones' copies beside it.
    out = tool("inspect", snapdir)
    assert out.returncode == 0 and "disks: checkpoint" in out.stdout, out.stdout + out.stderr
    assert "disk0: disk-disk0.img, 67108864 bytes" in out.stdout, out.stdout
    assert "host bindings: sealed by this host" in out.stdout, out.stdout
    out = tool("verify", snapdir)
    assert out.returncode == 0, out.stdout + out.stderr
    out = tool("check", snapdir)
    assert out.returncode == 0 and "disk0 restores from its checkpoint" in out.stdout, out.stdout

    images = sorted(f for f in os.listdir(snapdir) if f.startswith("clone-disk0-"))
    assert len(images) == 2, os.listdir(snapdir)
    mine = set()
    for name in images:
        image = os.path.join(snapdir, name)
        fsck = subprocess.run(["e2fsck", "-fn", image], capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        assert debugfs_cat(image, "/a").strip() == "at-the-snapshot"
        assert debugfs_cat(image, "/b") == "".join(f"{n}\n" for n in range(1, 5001))
        mine.add(debugfs_cat(image, "/mine").strip())
    assert mine == {"clone-0", "clone-1"}, mine
    # The checkpoint itself is untouched by either clone.
    assert "mine" not in subprocess.run(["debugfs", "-R", "ls /", os.path.join(
        snapdir, "disk-disk0.img")], capture_output=True, text=True).stdout


def test_a_bound_disk_overrides_the_checkpoint_and_a_bad_list_is_refused(linux, workdir):
    disk = os.path.join(workdir, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    vm = boot_and_snapshot(linux, workdir, "--disk", f"path={disk}")
    vm.remote("pause")
    snapdir = os.path.join(workdir, "snap")
    os.mkdir(snapdir)
    vm.remote("snapshot", f"file://{snapdir}", "disks=checkpoint")
    vm.remote("shutdown-vmm")
    assert vm.proc.wait(timeout=20) == 0

    mine = os.path.join(workdir, "mine.img")
    with open(mine, "wb") as f:
        f.truncate(16 << 20)
    c = linux("bound").start("--restore", f"source_url=file://{snapdir}",
                             "--restore-bind", f"id=disk0,path={mine}")
    c.wait_socket()
    assert not [f for f in os.listdir(snapdir) if f.startswith("clone-")], "copied anyway"
    c.remote("shutdown-vmm")
    c.proc.wait(timeout=20)

    # A list that names a file outside the checkpoint's own name is refused.
    listed = json.load(open(os.path.join(snapdir, "disks.json")))
    listed["disks"][0]["file"] = "../disk.img"
    with open(os.path.join(snapdir, "disks.json"), "w") as f:
        json.dump(listed, f)
    bad = linux("bad").start("--restore", f"source_url=file://{snapdir}")
    assert bad.proc.wait(timeout=60) != 0
    assert "disks.json: disk disk0 must be in disk-disk0.img" in open(bad.log_path).read()

    # A snapshot without checkpoint in the same directory drops the old list.
    listed["disks"][0]["file"] = "disk-disk0.img"
    with open(os.path.join(snapdir, "disks.json"), "w") as f:
        json.dump(listed, f)
    vm2 = linux("again").start("--restore", f"source_url=file://{snapdir}",
                               "--restore-bind", f"id=disk0,path={mine}")
    vm2.wait_socket()
    vm2.remote("snapshot", f"file://{snapdir}")
    assert not os.path.exists(os.path.join(snapdir, "disks.json"))
    assert not os.path.exists(os.path.join(snapdir, "disk-disk0.img"))
    assert tool("verify", snapdir).returncode == 0


def test_cloister_snapshot_verify_and_check_name_what_is_wrong(linux, workdir):
    vm = boot_and_snapshot(linux, workdir)
    snapdir = take_snapshot(vm, workdir)
    out = tool("inspect", snapdir)
    assert out.returncode == 0, out.stdout + out.stderr
    for want in ("format: vm.json version 1", "vcpus: 2", "memory: 512 MiB",
                 "memory-region-0: guest 0x80000000, 536870912 bytes", "disks: no checkpoint",
                 "encryption: none"):
        assert want in out.stdout, (want, out.stdout)
    assert tool("verify", snapdir).returncode == 0
    assert tool("check", snapdir).returncode == 0

    # A stray file, then a short region, then vm.json that does not decode.
    open(os.path.join(snapdir, "memory-region-1"), "w").close()
    out = tool("verify", snapdir)
    assert out.returncode == 1 and "memory-region-1: not a file of this snapshot" in out.stdout
    os.unlink(os.path.join(snapdir, "memory-region-1"))
    os.truncate(os.path.join(snapdir, "memory-region-0"), 4096)
    for cmd in ("verify", "check"):
        out = tool(cmd, snapdir)
        assert out.returncode == 1, out.stdout
        assert "memory-region-0: 4096 bytes, vm.json says 536870912" in out.stdout, out.stdout
    with open(os.path.join(snapdir, "vm.json"), "r+") as f:
        f.seek(0)
        f.write("[")
    out = tool("check", snapdir)
    assert out.returncode == 1 and "vm.json does not decode" in out.stdout, out.stdout
    assert tool("inspect", "/nonexistent").returncode == 1
    assert tool("frobnicate", snapdir).returncode == 2
