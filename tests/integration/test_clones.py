# SPDX-License-Identifier: Apache-2.0
"""Clones of one snapshot: each gets a fresh VMGenID (and so a reseeded RNG),
reads the host's wall clock through the goldfish RTC, and, with a disk
checkpoint, its own copy of the disk as it was at the snapshot.

Slow (real Linux guests); the guest comes from guest/linux/fetch.sh.
"""
import os
import re
import time

import pytest

from test_linux import BOOT_TIMEOUT, INITRAMFS, KERNEL, LINUX, LinuxVM

pytestmark = pytest.mark.skipif(not os.path.exists(KERNEL) or not os.path.exists(INITRAMFS),
                                reason=f"no Linux guest in {LINUX}: run guest/linux/fetch.sh")

FORK = "crng reseeded due to virtual machine fork"


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

    clones = []
    for i in range(2):
        c = linux(f"clone{i}").start("--restore", f"source_url=file://{snapdir}")
        c.wait_socket()
        assert '"Paused"' in c.remote("info")
        clones.append(c)
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
