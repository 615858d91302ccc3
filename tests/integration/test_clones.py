# SPDX-License-Identifier: Apache-2.0
"""Clones of one snapshot: each gets a fresh VMGenID (and so a reseeded RNG),
reads the host's wall clock through the goldfish RTC, and, with a disk
checkpoint, its own copy of the disk as it was at the snapshot.

Slow (real Linux guests); the guest comes from guest/linux/fetch.sh.
"""
import json
import os
import subprocess
import sys
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


GUEST_IP = "10.77.0.2"
PEER_A, PEER_B = "10.77.0.1", "10.77.0.3"

# Run inside clone B's namespace: makes its tap (gone when the last descriptor
# closes), gives it the peer's address, then restores through cloister-remote,
# which passes the tap's descriptor along as ch-remote does.
RESTORE_WITH_TAP_FD = r"""
import fcntl, os, struct, subprocess, sys
remote, sock, url, tap, peer = sys.argv[1:]
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", tap.encode(), 0x0002 | 0x1000 | 0x4000))
subprocess.run(["ip", "addr", "add", peer + "/24", "dev", tap], check=True)
subprocess.run(["ip", "link", "set", tap, "up"], check=True)
r = subprocess.run([remote, "--api-socket", sock, "restore",
                    f"source_url={url},net_fds=[net0@[{fd}]]"], pass_fds=[fd],
                   capture_output=True, text=True)
sys.stderr.write(r.stderr)
sys.exit(r.returncode)
"""


def netns_add(names):
    name = f"clclone{os.getpid() % 10000}{len(names)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    names.append(name)
    ns = ["ip", "netns", "exec", name]
    subprocess.run([*ns, "ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    return ns


def guest_pings(vm, peer, count=2):
    out = vm.ask(f"ping -c {count} -W 3 {peer} >/dev/null && echo ping-$? || echo ping-$?",
                 r"^ping-(\d+)$", timeout=60)
    return out.group(1) == "0"


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                    reason="taps and network namespaces need root and /dev/net/tun")
def test_two_clones_side_by_side_each_on_its_own_tap_and_disk(linux, workdir):
    """One clone gets its tap by name, the other as a descriptor over the API socket."""
    from conftest import REMOTE
    from test_linux_devices import NetnsVM

    names = []
    try:
        ns_a, ns_b = netns_add(names), netns_add(names)
        for cmd in (["ip", "tuntap", "add", "dev", "cltapA", "mode", "tap"],
                    ["ip", "addr", "add", f"{PEER_A}/24", "dev", "cltapA"],
                    ["ip", "link", "set", "cltapA", "up"]):
            subprocess.run([*ns_a, *cmd], check=True, capture_output=True)
        disk = os.path.join(workdir, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(64 << 20)
        base = NetnsVM(workdir, "base", ns_a)
        try:
            base.start("--cpus", "boot=2", "--memory", "size=512M", "--kernel", KERNEL,
                       "--initramfs", INITRAMFS, "--cmdline", "console=ttyS0", "--serial", "tty",
                       "--disk", f"path={disk}", "--net", "tap=cltapA,mac=52:54:00:00:77:05")
            base.wait(r"cloister-guest: init reached", timeout=BOOT_TIMEOUT)
            base.wait(r"~ # ")
            base.ask("mke2fs -q /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt && echo fs-ok",
                     r"^fs-ok$", timeout=120)
            base.ask("echo at-the-snapshot > /mnt/a && sync && echo synced", r"^synced$")
            base.ask(f"ip link set eth0 up && ip addr add {GUEST_IP}/24 dev eth0 && echo up",
                     r"^up$")
            assert guest_pings(base, PEER_A)
            base.remote("pause")
            snapdir = os.path.join(workdir, "snap")
            os.mkdir(snapdir)
            base.remote("snapshot", f"file://{snapdir}", "disks=checkpoint")
            base.remote("shutdown-vmm")
            assert base.proc.wait(timeout=20) == 0
        finally:
            base.stop()

        # Clone A: in the namespace of cltapA, bound to it by name.
        a = NetnsVM(workdir, "cloneA", ns_a)
        # Clone B: a gateway in the host's own namespace, where no tap of that
        # name exists: its NIC can only be the descriptor it is sent.
        b = linux("cloneB")
        try:
            a.start("--restore", f"source_url=file://{snapdir}",
                    "--restore-bind", "id=net0,tap=cltapA")
            b.start()
            a.wait_socket()
            b.wait_socket()
            r = subprocess.run([*ns_b, sys.executable, "-c", RESTORE_WITH_TAP_FD, REMOTE, b.sock,
                                f"file://{snapdir}", "cltapB", PEER_B],
                               capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr + open(b.log_path).read()[-2000:]
            info = json.loads(b.remote("info"))
            nets = [d for d in info["config"].get("net", [])]
            assert [n.get("tap") for n in nets] == ["cltapB"], info["config"]
            for c in (a, b):
                c.remote("resume")

            # Each clone reaches the peer on its own tap, and only that one.
            assert guest_pings(a, PEER_A)
            assert guest_pings(b, PEER_B)
            assert not guest_pings(a, PEER_B, count=1)
            assert not guest_pings(b, PEER_A, count=1)
            for ns in (ns_a, ns_b):
                ping = subprocess.run([*ns, "ping", "-c", "2", "-W", "5", GUEST_IP],
                                      capture_output=True, text=True, timeout=60)
                assert ping.returncode == 0, ping.stdout + ping.stderr

            # Each has the snapshot's disk, as its own copy.
            for name, c in (("clone-a", a), ("clone-b", b)):
                assert c.ask("cat /mnt/a", r"^(at-the-\S+)$").group(1) == "at-the-snapshot"
                c.ask(f"echo {name} > /mnt/mine && sync && umount /mnt && echo unmounted",
                      r"^unmounted$")

            # Rebooted, clone B is on the descriptor's tap still (a name would
            # make a new, unconnected tap in the gateway's namespace).
            start = len(b.text())
            b.remote("reboot")
            b.wait(r"cloister-guest: init reached", start, timeout=BOOT_TIMEOUT)
            b.wait(r"~ # ", start)
            b.ask(f"ip link set eth0 up && ip addr add {GUEST_IP}/24 dev eth0 && echo up", r"^up$")
            assert guest_pings(b, PEER_B)
            for c in (a, b):
                c.remote("shutdown-vmm")
                assert c.proc.wait(timeout=20) == 0
        finally:
            a.stop()

        images = sorted(f for f in os.listdir(snapdir) if f.startswith("clone-disk0-"))
        assert len(images) == 2, os.listdir(snapdir)
        mine = set()
        for name in images:
            image = os.path.join(snapdir, name)
            fsck = subprocess.run(["e2fsck", "-fn", image], capture_output=True, text=True)
            assert fsck.returncode == 0, fsck.stdout + fsck.stderr
            assert debugfs_cat(image, "/a").strip() == "at-the-snapshot"
            mine.add(debugfs_cat(image, "/mine").strip())
        assert mine == {"clone-a", "clone-b"}, mine
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
