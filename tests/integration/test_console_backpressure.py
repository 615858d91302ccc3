# SPDX-License-Identifier: Apache-2.0
"""hvc0 loses no byte when its host end is slow: the guest waits instead.

The console's host end is a pty nobody reads at first. A pty holds about
12 KiB and the device 64 KiB; 30,000 lines are 165 KiB. Once the pty is
full (the console process's writes to it stop growing in /proc/PID/io)
and its 64 KiB are full, the device leaves the guest's buffers queued:
the writer in the guest cannot have finished. (Linux's virtio-console
driver waits for each buffer with interrupts off, so the whole guest
waits, as on a UART whose transmitter never empties.) Then the test
reads: every line arrives, once and in order, and the writer finishes.
A console that dropped what did not fit would lose lines here, or let
the writer finish early. No wait here decides the outcome by its length:
each ends on progress or on its lack.
"""
import json
import os
import select
import time

from conftest import children_of, cmdline
from test_linux import INITRAMFS, KERNEL, linux, pytestmark  # noqa: F401

LINES = 30000
QUIET = 60


def read_until_quiet(fd, end):
    """Reads fd until data ends with end or nothing has come for QUIET seconds."""
    data = b""
    last = time.time()
    while not data.endswith(end) and time.time() - last < QUIET:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if chunk:
                data += chunk
                last = time.time()
    return data


def console_pid(vm):
    for pid in children_of(vm.proc.pid):
        argv = cmdline(pid)
        if argv and os.path.basename(argv[0]) == "cloister-console":
            return pid
    raise AssertionError("no cloister-console child")


def host_writes(pid):
    with open(f"/proc/{pid}/io") as f:
        return int(next(line for line in f if line.startswith("wchar:")).split()[1])


def test_slow_console_reader_loses_nothing(linux):
    vm = linux("hvc0")
    vm.start("--cpus", "boot=2", "--memory", "size=1G", "--kernel", KERNEL,
             "--initramfs", INITRAMFS, "--cmdline", "console=ttyS0", "--serial", "tty",
             "--console", "pty")
    vm.wait(r"~ # ", timeout=240)
    path = json.loads(vm.remote("info"))["config"]["console"]["file"]
    pid = console_pid(vm)
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        start = len(vm.text())
        vm.type(f"seq 1 {LINES} | dd bs=512 of=/dev/hvc0 2>/dev/null; echo dd-done")
        # Nobody reads: wait until the console process has filled the pty and writes no more.
        samples = [host_writes(pid)]
        while samples[-1] == 0 or samples[-3:] != [samples[-1]] * 3:
            time.sleep(1)
            samples.append(host_writes(pid))
        assert "\ndd-done" not in vm.text()[start:], \
            "with nobody reading, the guest's writer must be held back, not finish"
        data = read_until_quiet(fd, f"{LINES}\n".encode())
        lines = data.decode().split()
        assert len(lines) == LINES, f"{LINES - len(lines)} of {LINES} lines missing"
        assert lines == [str(i) for i in range(1, LINES + 1)], "lines out of order"
        vm.wait(r"^dd-done", start, timeout=120)
    finally:
        os.close(fd)
