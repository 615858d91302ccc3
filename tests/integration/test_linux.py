# SPDX-License-Identifier: Apache-2.0
"""Debian's riscv64 Linux on Cloister: a shell, a known answer, and a snapshot taken while it runs.

Slow (it boots a real kernel); the guest image comes from guest/linux/fetch.sh,
which scripts/test.sh runs first.
"""
import hashlib
import os
import re
import subprocess
import time

import pytest

from conftest import CLOISTER, REMOTE, UnixHTTPConnection  # noqa: F401

LINUX = os.environ.get("CLOISTER_LINUX_DIR",
                       os.path.join(os.path.expanduser("~"), ".cache", "cloister", "linux"))
KERNEL = os.path.join(LINUX, "vmlinux")
INITRAMFS = os.path.join(LINUX, "initramfs.cpio.gz")
BOOT_TIMEOUT = 240

pytestmark = pytest.mark.skipif(not os.path.exists(KERNEL) or not os.path.exists(INITRAMFS),
                                reason=f"no Linux guest in {LINUX}: run guest/linux/fetch.sh")


class LinuxVM:
    """cloister with --serial tty on pipes: we type on its stdin and read its stdout."""

    def __init__(self, workdir, name):
        self.sock = os.path.join(workdir, f"{name}.sock")
        self.out_path = os.path.join(workdir, f"{name}.out")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.proc = None

    def start(self, *args):
        self.out = open(self.out_path, "wb")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([CLOISTER, "--api-socket", self.sock, *args],
                                     stdin=subprocess.PIPE, stdout=self.out, stderr=self.log)
        return self

    def boot(self):
        return self.start("--cpus", "boot=2", "--memory", "size=1G", "--kernel", KERNEL,
                          "--initramfs", INITRAMFS, "--cmdline", "console=ttyS0 earlycon=sbi",
                          "--serial", "tty")

    def text(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace").replace("\r", "")

    def type(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait(self, pattern, start=0, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text()[start:], re.M)
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        with open(self.log_path, errors="replace") as f:
            log = f.read()[-3000:]
        raise AssertionError(f"no /{pattern}/ in time; output tail:\n{self.text()[-3000:]}\nlog:\n{log}")

    def ask(self, command, answer_pattern, timeout=60):
        """Types a command and returns the first match of answer_pattern after it."""
        start = len(self.text())
        self.type(command)
        return self.wait(answer_pattern, start, timeout)

    def remote(self, *args):
        r = subprocess.run([REMOTE, "--api-socket", self.sock, *args], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def wait_socket(self):
        deadline = time.time() + 60
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None, open(self.log_path).read()
            assert time.time() < deadline, "no API socket"
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in ("out", "log"):
            if hasattr(self, f):
                getattr(self, f).close()


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


def uptime(vm):
    return float(vm.ask("cat /proc/uptime", r"^(\d+\.\d+) \d+\.\d+$").group(1))


WARNINGS = r"rcu.*stall|soft lockup|hung task|clocksource.*(unstable|skew)|watchdog"


def test_linux_shell_workload_and_snapshot_while_running(linux, workdir):
    vm = linux("first").boot()
    vm.wait(r"cloister-guest: init reached", timeout=BOOT_TIMEOUT)
    vm.wait(r"^cloister-guest: 2 cpus$")
    vm.wait(r"~ # ")

    # A known answer, computed in the guest and on the host.
    n = 20000
    expected = hashlib.sha256("".join(f"{i}\n" for i in range(1, n + 1)).encode()).hexdigest()
    got = vm.ask(f"seq 1 {n} | sha256sum", r"^([0-9a-f]{64})  -$", timeout=120).group(1)
    assert got == expected

    # Kernel messages (the restore's "crng reseeded due to virtual machine fork")
    # would share the console with the ticks and could cut a tick's line in two.
    vm.ask("dmesg -n 1; echo quiet", r"^quiet$")
    # A shell loop printing a counter once a second, running while we snapshot.
    vm.type('i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done &')
    vm.wait(r"^tick 3$", timeout=60)
    before_uptime, host_before = uptime(vm), time.time()

    vm.remote("pause")
    paused = vm.text()
    last = max(int(t) for t in re.findall(r"^tick (\d+)$", paused, re.M))
    time.sleep(1.5)
    assert vm.text() == paused, "the guest ran while paused"
    snapdir = os.path.join(workdir, "snap")
    os.mkdir(snapdir)
    vm.remote("snapshot", f"file://{snapdir}")
    vm.remote("shutdown-vmm")
    assert vm.proc.wait(timeout=20) == 0
    time.sleep(3)   # the VM spends a while on disk

    vm2 = linux("second").start("--restore", f"source_url=file://{snapdir}")
    vm2.wait_socket()
    assert '"Paused"' in vm2.remote("info")
    vm2.remote("resume")
    vm2.wait(r"^tick (\d+)$", timeout=60)
    # A pause may fall between two bytes of a line: "tick " before it, "4" after.
    # The console is one stream across the restore: a tick's start carries over.
    tail = paused.rsplit("\n", 1)[-1]
    carried = tail if re.fullmatch(r"t(i(c(k( \d*)?)?)?)?", tail) else ""
    after = int(re.search(r"^tick (\d+)$", carried + vm2.text(), re.M).group(1))
    assert after == last + 1, (last, after, paused[-40:], vm2.text()[:80])
    # sleep 1 still takes about a second: three more ticks take two to five seconds.
    t0 = time.time()
    vm2.wait(rf"^tick {last + 4}$", timeout=30)
    assert 2.0 <= time.time() - t0 <= 6.0

    # The guest's clock did not jump by the time the VM was paused or on disk.
    guest_elapsed = uptime(vm2) - before_uptime
    host_elapsed = time.time() - host_before
    assert guest_elapsed < host_elapsed - 3.5, (guest_elapsed, host_elapsed)

    # The shell still answers typed input, and the kernel did not complain.
    assert vm2.ask("echo alive-$((2+3))", r"^alive-(\d+)$").group(1) == "5"
    count = vm2.ask(f"dmesg | grep -ciE '{WARNINGS}'; echo checked", r"^(\d+)\nchecked$").group(1)
    assert count == "0", vm2.ask(f"dmesg | grep -iE '{WARNINGS}'; echo end", r"(?s)(.*)end$").group(1)
