# SPDX-License-Identifier: Apache-2.0
"""--serial socket=PATH with a slow reader: the guest waits for it, no byte is lost.

A Linux shell prints far more (about 590 KB) than the socket buffers between
the guest and the client hold (about 420 KB), while the client does not read
for a while; every line must arrive, in order. The wait only makes the host
side slow: nothing here measures time, and a slower guest only makes the
test easier to pass.
Slow (it boots a real kernel); the guest image comes from guest/linux/fetch.sh.
"""
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import CLOISTER

LINUX = os.environ.get("CLOISTER_LINUX_DIR",
                       os.path.join(os.path.expanduser("~"), ".cache", "cloister", "linux"))
KERNEL = os.path.join(LINUX, "vmlinux")
INITRAMFS = os.path.join(LINUX, "initramfs.cpio.gz")
BOOT_TIMEOUT = 240
LINES = 100000
STALL_S = 12

pytestmark = pytest.mark.skipif(not os.path.exists(KERNEL) or not os.path.exists(INITRAMFS),
                                reason=f"no Linux guest in {LINUX}: run guest/linux/fetch.sh")


class SocketConsole:
    """A client on the serial socket: what it read so far, and a way to type."""

    def __init__(self, path):
        deadline = time.time() + 30
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                assert time.time() < deadline, "the serial socket never appeared"
                time.sleep(0.05)
        self.data = bytearray()

    def text(self):
        return self.data.decode(errors="replace").replace("\r", "")

    def read_until(self, pattern, timeout, chunk=65536, pause=0.0):
        """Reads (chunk bytes at a time, pause seconds apart) until pattern shows up."""
        deadline = time.time() + timeout
        self.sock.settimeout(1)
        while time.time() < deadline:
            try:
                got = self.sock.recv(chunk)
            except socket.timeout:
                got = None
            if got == b"":
                break
            if got:
                self.data += got
                if re.search(pattern, self.text(), re.M):
                    return
            if pause:
                time.sleep(pause)
        raise AssertionError(f"no /{pattern}/ in time; tail:\n{self.text()[-2000:]}")

    def type(self, line):
        self.sock.sendall(line.encode() + b"\n")


def test_slow_socket_reader_loses_no_serial_byte(workdir):
    sock_path = os.path.join(workdir, "serial.sock")
    api = os.path.join(workdir, "api.sock")
    log = open(os.path.join(workdir, "cloister.log"), "wb")
    proc = subprocess.Popen([CLOISTER, "--api-socket", api, "--cpus", "boot=2",
                             "--memory", "size=1G", "--kernel", KERNEL, "--initramfs", INITRAMFS,
                             "--cmdline", "console=ttyS0 earlycon=sbi",
                             "--serial", f"socket={sock_path}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    try:
        con = SocketConsole(sock_path)
        con.read_until(r"~ # ", BOOT_TIMEOUT)
        # Kernel messages on the console would land between the lines.
        con.type("dmesg -n 1; echo quiet-$((6*7))")
        con.read_until(r"^quiet-42$", 60)
        start = len(con.text())
        con.type(f"seq 1 {LINES}; echo end-$((6*7))")
        # A reader that stalls: the buffers fill, the guest must wait for it.
        time.sleep(STALL_S)
        con.read_until(r"^end-42$", 180)
        out = con.text()[start:]
        numbers = [int(n) for n in re.findall(r"^(\d+)$", out, re.M)]
        assert numbers == list(range(1, LINES + 1)), \
            f"{len(numbers)} lines; first gap after {next((a for a, b in zip(numbers, numbers[1:]) if b != a + 1), None)}"
        assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
