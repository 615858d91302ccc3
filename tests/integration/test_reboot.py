# SPDX-License-Identifier: Apache-2.0
"""Reboots of Debian's Linux guest: one the guest asks for (SBI system reset,
from `reboot -f` in its shell) and one asked for over the API (vm.reboot).
Each brings a fresh kernel and a shell back; the event monitor records them."""
import json
import os

from test_linux import BOOT_TIMEOUT, KERNEL, INITRAMFS, LinuxVM, linux, pytestmark  # noqa: F401


def boot_with_events(linux, workdir):
    events = os.path.join(workdir, "events.log")
    vm = linux("reboot").start("--cpus", "boot=2", "--memory", "size=512M", "--kernel", KERNEL,
                               "--initramfs", INITRAMFS, "--cmdline", "console=ttyS0",
                               "--serial", "tty", "--event-monitor", f"path={events}")
    vm.wait(r"cloister-guest: init reached", timeout=BOOT_TIMEOUT)
    vm.wait(r"~ # ")
    return vm, events


def boots_seen(vm):
    return vm.text().count("cloister-guest: init reached")


def event_names(path):
    with open(path) as f:
        return [json.loads(line)["event"] for line in f if line.strip()]


def test_reboot_from_guest_and_from_api(linux, workdir):
    vm, events = boot_with_events(linux, workdir)
    vm.wait_socket()
    assert vm.ask("echo first-$((40+2))", r"^first-(\d+)$").group(1) == "42"

    # The guest asks for a reset through SBI: the VM comes back, it does not stop.
    start = len(vm.text())
    vm.type("reboot -f")
    vm.wait(r"cloister-guest: init reached", start=start, timeout=BOOT_TIMEOUT)
    vm.wait(r"~ # ", start=start)
    assert boots_seen(vm) == 2
    assert '"Running"' in vm.remote("info")
    assert vm.ask("echo second-$((40+3))", r"^second-(\d+)$").group(1) == "43"

    # vm.reboot over the API does the same.
    start = len(vm.text())
    vm.remote("reboot")
    vm.wait(r"cloister-guest: init reached", start=start, timeout=BOOT_TIMEOUT)
    vm.wait(r"~ # ", start=start)
    assert boots_seen(vm) == 3
    assert vm.ask("echo third-$((40+4))", r"^third-(\d+)$").group(1) == "44"

    names = event_names(events)
    assert names[:4] == ["starting", "created", "booting", "booted"], names
    assert names.count("rebooting") == 2 and names.count("rebooted") == 2, names
    assert names.index("rebooting") < names.index("rebooted"), names
    vm.remote("shutdown")
    assert '"Created"' in vm.remote("info")
    assert event_names(events)[-1] == "shutdown"
