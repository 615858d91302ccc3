# SPDX-License-Identifier: Apache-2.0
"""Debian's Linux with all four virtio devices, each in its own process, across a snapshot.

The network peer lives in a network namespace this test makes: no packet
leaves it.
"""
import os
import re
import subprocess
import time
import uuid

import pytest

from test_linux import INITRAMFS, KERNEL, LinuxVM, pytestmark  # noqa: F401

ROOT = os.geteuid() == 0
GUEST_IP, PEER_IP = "10.77.0.2", "10.77.0.1"


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def netns():
    """A namespace with a persistent tap that holds the guest's peer."""
    if not ROOT or not os.path.exists("/dev/net/tun"):
        pytest.skip("the tap and network namespace need root and /dev/net/tun")
    name = f"cltest{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    try:
        ns = ["ip", "netns", "exec", name]
        sh(*ns, "ip", "link", "set", "lo", "up")
        sh(*ns, "ip", "tuntap", "add", "dev", "cltap0", "mode", "tap")
        sh(*ns, "ip", "addr", "add", f"{PEER_IP}/24", "dev", "cltap0")
        sh(*ns, "ip", "link", "set", "cltap0", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


class NetnsVM(LinuxVM):
    """cloister started inside the test's network namespace (where its tap is)."""

    def __init__(self, workdir, name, ns):
        super().__init__(workdir, name)
        self.ns = ns

    def start(self, *args):
        self.out = open(self.out_path, "wb")
        self.log = open(self.log_path, "wb")
        from conftest import CLOISTER
        self.proc = subprocess.Popen([*self.ns, CLOISTER, "--api-socket", self.sock, *args],
                                     stdin=subprocess.PIPE, stdout=self.out, stderr=self.log)
        return self


def host_ping(ns):
    return subprocess.run([*ns, "ping", "-c", "2", "-W", "5", GUEST_IP], capture_output=True,
                          text=True, timeout=60)


def test_linux_with_disk_net_console_rng_across_a_snapshot(workdir, netns):
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

        # Each device is its own confined process, named by kind and id.
        from conftest import children_of, cmdline, proc_status
        devices = {}
        for pid in children_of(vm.proc.pid):
            argv = cmdline(pid)
            if argv and os.path.basename(argv[0]).startswith("cloister-") and \
                    os.path.basename(argv[0]) != "cloister-vmm":
                devices[os.path.basename(argv[0])] = argv[1]
                st = proc_status(pid)
                assert st["Seccomp"] == "2" and int(st["CapEff"], 16) == 0, (argv, st["Seccomp"])
                assert int(st["CapPrm"], 16) == 0 and st["Uid"].split()[0] != "0", argv
        assert devices == {"cloister-rng": "rng0", "cloister-blk": "disk0",
                           "cloister-net": "net0", "cloister-console": "console0"}, devices

        # The four devices, each driven by its module.
        ids = vm.ask("cat /sys/bus/virtio/devices/*/device | sort | tr '\\n' ' '; echo",
                     r"^((0x\d{4} ){4})$").group(1).split()
        assert ids == ["0x0001", "0x0002", "0x0003", "0x0004"], ids

        # virtio-blk: a file system made, written and synced by the guest...
        vm.ask("mke2fs -q /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt && echo fs-ok",
               r"^fs-ok$", timeout=120)
        vm.ask("echo written-by-the-guest > /mnt/hello && sync && echo synced", r"^synced$")

        # virtio-rng, virtio-console.
        rnd = vm.ask("head -c 16 /dev/hwrng | od -An -tx1 | tr -d ' \\n'; echo",
                     r"^([0-9a-f]{32})$").group(1)
        assert rnd != "0" * 32
        vm.ask("echo hello-hvc0 > /dev/hvc0; echo sent", r"^sent$")
        deadline = time.time() + 10
        while "hello-hvc0" not in open(console).read() and time.time() < deadline:
            time.sleep(0.1)
        assert "hello-hvc0" in open(console).read()

        # virtio-net: the guest pings its peer, and the peer pings back.
        vm.ask(f"ip link set eth0 up && ip addr add {GUEST_IP}/24 dev eth0 && echo up", r"^up$")
        vm.ask(f"ping -c 2 -W 5 {PEER_IP} >/dev/null && echo ping-ok", r"^ping-ok$", timeout=60)
        assert host_ping(netns).returncode == 0

        # Snapshot while the disk is being written and a ping runs.
        vm.type("(i=0; while true; do i=$((i+1)); echo line $i >> /mnt/log; sync; sleep 0.2; done) &")
        vm.type(f"ping {PEER_IP} &")
        vm.wait(r"^\d+ bytes from .*seq=3 ", timeout=30)
        vm.remote("pause")
        seqs = [int(s) for s in re.findall(r"^\d+ bytes from .*seq=(\d+) ", vm.text(), re.M)]
        snapdir = os.path.join(workdir, "snap")
        os.mkdir(snapdir)
        vm.remote("snapshot", f"file://{snapdir}")
        vm.remote("shutdown-vmm")
        vm.proc.wait(timeout=20)

        vm2 = NetnsVM(workdir, "second", netns)
        made.append(vm2)
        vm2.out_path = vm.out_path + ".2"
        vm2.start("--restore", f"source_url=file://{snapdir},resume=true")
        # The ping goes on, past where it was.
        m = vm2.wait(r"^\d+ bytes from .*seq=(\d+) ", timeout=60)
        assert int(m.group(1)) > max(seqs)
        assert host_ping(netns).returncode == 0
        # The console goes on in the same file.
        vm2.ask("echo after-restore > /dev/hvc0; echo sent2", r"^sent2$")
        deadline = time.time() + 10
        while "after-restore" not in open(console).read() and time.time() < deadline:
            time.sleep(0.1)
        text = open(console).read()
        assert text.index("hello-hvc0") < text.index("after-restore")
        # The disk loop goes on; stop it and unmount cleanly.
        vm2.ask("sleep 1; kill %1 %2; wait; umount /mnt && echo unmounted", r"^unmounted$",
                timeout=60)
        vm2.remote("shutdown-vmm")
        vm2.proc.wait(timeout=20)
    finally:
        for v in made:
            v.stop()

    # The host sees a clean file system holding what the guest wrote.
    fsck = subprocess.run(["e2fsck", "-fn", disk], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    cat = subprocess.run(["debugfs", "-R", "cat /hello", disk], capture_output=True, text=True)
    assert cat.stdout.strip() == "written-by-the-guest"
    log = subprocess.run(["debugfs", "-R", "cat /log", disk], capture_output=True, text=True).stdout
    numbers = [int(n) for n in re.findall(r"^line (\d+)$", log, re.M)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 5, numbers[-5:]
