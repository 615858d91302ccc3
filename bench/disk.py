#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Disk I/O in the Linux guest: Cloister's virtio-blk against QEMU's, and the host.

    bench/disk.py [--build build] [--cache DIR] [--dir /var/tmp] [--size-mib 64]
                  [--ops 500] [--cpus 2] [--memory 1G] [--only qemu|cloister] [--keep]

One run boots guest/linux/fetch.sh's kernel and initramfs in Cloister
(--disk path=IMG) and then in QEMU (virtio-blk-device on -machine virt), each
with a fresh sparse image of --size-mib in --dir, the same vCPUs, memory and
command line, and types into the guest's shell on ttyS0 (stdio pipes):

- sequential write: dd bs=1M of the whole image, oflag=direct conv=fsync;
- sequential read: drop the guest's and the host's page cache, then dd bs=1M
  iflag=direct;
- random 4 KiB write/read: --ops single-block dd runs (oflag/iflag=direct) at
  offsets from a fixed LCG, so every side touches the same blocks in the same
  order; one busybox dd process per operation, so it is fork+exec bound.

Each test is timed by the guest's own clock (/proc/uptime: busybox date has no
%N) around the command.
The host row runs the same commands with the host's dd on a file in --dir.
Run by hand, as root; it is not part of the test suite.
"""
import argparse
import datetime
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QEMU = "qemu-system-riscv64"
CMDLINE = "console=ttyS0 earlycon=sbi"
MARKER = r"cloister-guest: init reached"
PROMPT = r"^~ # "
BOOT_TIMEOUT = 300
LCG_SEED = 12345
MIB = 1 << 20
TESTS = ("seq write", "seq read", "rand 4k write", "rand 4k read")


class BenchError(Exception):
    pass


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").replace("\r", "")
    except FileNotFoundError:
        return ""


class Guest:
    """A VMM whose guest serial console is its stdin/stdout; we type and read."""

    def __init__(self, name, argv, work):
        self.name = name
        self.out_path = os.path.join(work, f"{name.lower()}.out")
        self.err_path = os.path.join(work, f"{name.lower()}.err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                         start_new_session=True)

    def text(self):
        return read_text(self.out_path)

    def type(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait(self, pattern, start=0, timeout=60, whole_lines=True):
        """Searches the output after start; whole_lines leaves out a line still
        being written, so a half-echoed command cannot match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()[start:]
            if whole_lines:
                text = text[:text.rfind("\n") + 1]
            m = re.search(pattern, text, re.M)
            if m:
                return m
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}; "
                                 f"output tail:\n{self.tail()}")
            time.sleep(0.05)
        raise BenchError(f"{self.name}: no /{pattern}/ in {timeout:g} s; output tail:\n{self.tail()}")

    def ask(self, command, pattern, timeout=60):
        start = len(self.text())
        self.type(command)
        return self.wait(pattern, start, timeout)

    def boot(self, timeout=BOOT_TIMEOUT):
        t0 = time.monotonic()
        self.wait(MARKER, timeout=timeout)
        self.wait(PROMPT, timeout=60, whole_lines=False)
        return time.monotonic() - t0

    def tail(self, lines=15):
        text = self.text() + read_text(self.err_path)
        return "\n".join("    | " + l for l in text.splitlines()[-lines:])

    def stop(self):
        """SIGTERM so Cloister takes its children down, then SIGKILL the group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc.stdin.close()


def cloister_argv(build, kernel, initramfs, cpus, memory, *extra):
    return [os.path.join(build, "cloister"), "--cpus", f"boot={cpus}", "--memory", f"size={memory}",
            "--kernel", kernel, "--initramfs", initramfs, "--cmdline", CMDLINE,
            "--serial", "tty", *extra]


def qemu_argv(kernel, initramfs, cpus, memory, *extra):
    return [QEMU, "-machine", "virt", "-cpu", "rv64", "-smp", str(cpus), "-m", memory,
            "-bios", "default", "-kernel", kernel, "-initrd", initramfs, "-append", CMDLINE,
            "-display", "none", "-monitor", "none", "-serial", "stdio", *extra]


# ---------------------------------------------------------------- the workload

def rand_loop(ops, blocks, dd):
    """A POSIX sh loop running dd once per pseudo-random 4 KiB block; dd holds
    $o. The LCG (glibc's constants, mod 2^31) fits 64-bit shell arithmetic."""
    return (f"x={LCG_SEED}; i=0; while [ $i -lt {ops} ]; do "
            f"x=$(( (x * 1103515245 + 12345) % 2147483648 )); o=$(( x % {blocks} )); "
            f"{dd} 2>/dev/null || break; i=$((i + 1)); done; [ $i -eq {ops} ]")


def commands(dev, size_mib, ops, direct):
    """The four tests as shell commands on dev (a block device or a file)."""
    odir = " oflag=direct" if direct else ""
    idir = " iflag=direct" if direct else ""
    blocks = size_mib * 256
    return {
        "seq write": f"dd if=/dev/zero of={dev} bs=1M count={size_mib}{odir} conv=fsync,notrunc 2>/dev/null",
        "seq read": f"dd if={dev} of=/dev/null bs=1M count={size_mib}{idir} 2>/dev/null",
        "rand 4k write": rand_loop(ops, blocks, f"dd if=/dev/zero of={dev} bs=4k count=1 seek=$o "
                                                f"conv=notrunc{odir}"),
        "rand 4k read": rand_loop(ops, blocks, f"dd if={dev} of=/dev/null bs=4k count=1 skip=$o{idir}"),
    }


def guest_time(guest, n, command, timeout):
    """Runs command in the guest between two reads of its clock: busybox date
    has no %N, so /proc/uptime (10 ms steps). Returns (guest s, host s)."""
    line = (f"read t0 x < /proc/uptime; {{ {command} ; }}; r=$?; read t1 x < /proc/uptime; "
            f"echo \"T{n} $t0 $t1 $r\"")
    h0 = time.monotonic()
    m = guest.ask(line, rf"^T{n} ([\d.]+) ([\d.]+) (\d+)$", timeout=timeout)
    host = time.monotonic() - h0
    if m.group(3) != "0":
        raise BenchError(f"{guest.name}: test {n} failed with status {m.group(3)}; tail:\n{guest.tail()}")
    return float(m.group(2)) - float(m.group(1)), host


def run_guest(guest, args):
    """Boots, checks the disk and the clock, runs the four tests; {test: s}."""
    guest.boot()
    size = guest.ask("cat /sys/block/vda/size", r"^(\d+)$").group(1)
    if int(size) * 512 != args.size_mib * MIB:
        raise BenchError(f"{guest.name}: /dev/vda has {size} sectors, not {args.size_mib} MiB")
    direct = guest.ask("dd if=/dev/vda of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null; "
                       "echo \"D=$?\"", r"^D=(\d+)$").group(1) == "0"
    if not direct:
        print(f"{guest.name}: busybox dd has no iflag=direct; the reads go through the page cache",
              file=sys.stderr)
    result = {}
    for n, (test, cmd) in enumerate(commands("/dev/vda", args.size_mib, args.ops, direct).items()):
        if "read" in test:
            # Both caches: the guest's, and the host's copy of the image that
            # the write just left there, or the read measures host memory.
            guest.ask("sync; echo 3 > /proc/sys/vm/drop_caches; echo \"C=$?\"", r"^C=0$")
            drop_host_caches()
        result[test] = guest_time(guest, n, cmd, args.timeout)
    guest.type("sync")
    return result


def drop_host_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def host_run(args, work):
    """The same commands with the host's dd on a file in the same directory."""
    img = os.path.join(work, "host.img")
    with open(img, "wb"):
        pass
    result = {}
    for test, cmd in commands(img, args.size_mib, args.ops, True).items():
        if "read" in test:
            drop_host_caches()
        t0 = time.monotonic()
        r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
        result[test] = (time.monotonic() - t0, None)
        if r.returncode != 0:
            raise BenchError(f"host {test}: status {r.returncode} {r.stderr}")
    return result


def fresh_image(work, name, size_mib):
    img = os.path.join(work, name)
    with open(img, "wb") as f:
        f.truncate(size_mib * MIB)
    return img


def run_side(side, args, kernel, initramfs, work):
    img = fresh_image(work, f"{side.lower()}.img", args.size_mib)
    if side == "Cloister":
        argv = cloister_argv(args.build, kernel, initramfs, args.cpus, args.memory,
                             "--api-socket", os.path.join(work, "api.sock"),
                             "--disk", f"path={img}")
    else:
        argv = qemu_argv(kernel, initramfs, args.cpus, args.memory,
                         "-drive", f"file={img},if=none,format=raw,id=d0",
                         "-device", "virtio-blk-device,drive=d0")
    guest = Guest(side, argv, work)
    try:
        return run_guest(guest, args)
    finally:
        guest.stop()
        os.unlink(img)


# ---------------------------------------------------------------- report

def figure(test, times, args):
    """times: (seconds by the clock that timed it, seconds the host saw from
    typing the command to its answer, or None on the host itself)."""
    if times is None:
        return "-"
    seconds, seen = times
    rate = (f"{args.size_mib / seconds:.1f} MiB/s" if test.startswith("seq")
            else f"{args.ops / seconds:.0f} op/s")
    return f"{rate} ({seconds:.2f} s" + (f"; host saw {seen:.2f} s)" if seen is not None else ")")


def print_table(results, args):
    print(f"\n{args.size_mib} MiB sequential (bs=1M), {args.ops} random 4 KiB ops; "
          f"time by the guest's clock; 'host saw': from typing the command to its answer\n")
    print("| test | Cloister | QEMU | host |")
    print("| --- | --- | --- | --- |")
    for test in TESTS:
        cells = [figure(test, results.get(side, {}).get(test), args)
                 for side in ("Cloister", "QEMU", "host")]
        print(f"| {test} | {' | '.join(cells)} |")


def command_output(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def print_machine(args):
    cpu = next((l.split(":", 1)[1].strip() for l in read_text("/proc/cpuinfo").splitlines()
                if l.startswith("model name")), "?")
    print(f"date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine: {os.cpu_count()} cpus, {cpu}, Linux {platform.release()}, "
          f"load {' '.join(read_text('/proc/loadavg').split()[:3])}")
    print(f"qemu: {command_output(QEMU, '--version').splitlines()[0]}")
    dirty = " + uncommitted changes" if command_output("git", "-C", ROOT, "status", "--porcelain") else ""
    print(f"cloister: {command_output('git', '-C', ROOT, 'rev-parse', '--short', 'HEAD')}{dirty}")
    fs = command_output("df", "--output=source,fstype", args.dir).splitlines()[-1]
    print(f"images in {args.dir} ({fs}); guest: {args.cpus} vCPUs, {args.memory}")


def parse_args():
    cache = os.path.join(os.environ.get("CLOISTER_CACHE", os.path.expanduser("~/.cache/cloister")),
                         "linux")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--cache", default=cache, help="where fetch.sh put the guest")
    p.add_argument("--dir", default="/var/tmp", help="where the images go")
    p.add_argument("--size-mib", type=int, default=64)
    p.add_argument("--ops", type=int, default=500, help="random 4 KiB operations per test")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--memory", default="1G")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for any one test")
    p.add_argument("--only", choices=("qemu", "cloister"))
    p.add_argument("--keep", action="store_true", help="keep the logs")
    args = p.parse_args()
    if not 1 <= args.size_mib <= 4096 or not 1 <= args.ops <= 100000 or not 1 <= args.cpus <= 64:
        p.error("--size-mib 1..4096, --ops 1..100000, --cpus 1..64")
    args.build = os.path.abspath(args.build)
    return args


def check_inputs(args):
    kernel = os.path.join(args.cache, "vmlinux")
    initramfs = os.path.join(args.cache, "initramfs.cpio.gz")
    for f in (kernel, initramfs):
        if not os.path.isfile(f):
            sys.exit(f"{f} missing: run guest/linux/fetch.sh")
    if os.geteuid() != 0:
        sys.exit("run as root: the reads drop the host's page cache")
    if args.only != "cloister" and not shutil.which(QEMU):
        sys.exit(f"{QEMU} missing: apt-get install qemu-system-misc opensbi")
    if args.only != "qemu" and not os.access(os.path.join(args.build, "cloister"), os.X_OK):
        sys.exit(f"{args.build}/cloister missing: build first or pass --build")
    return kernel, initramfs


def main():
    args = parse_args()
    kernel, initramfs = check_inputs(args)
    work = tempfile.mkdtemp(prefix="cloister-disk-", dir=args.dir)
    os.chmod(work, 0o755)
    print_machine(args)
    sides = [s for s in ("Cloister", "QEMU") if args.only in (None, s.lower())]
    results, failed = {}, False
    for side in sides:
        try:
            results[side] = run_side(side, args, kernel, initramfs, work)
        except BenchError as e:
            print(f"FAILED {side}: {e}", file=sys.stderr)
            failed = True
    try:
        results["host"] = host_run(args, work)
    except BenchError as e:
        print(f"FAILED host: {e}", file=sys.stderr)
        failed = True
    print_table(results, args)
    if args.keep or failed:
        print(f"\nlogs kept in {work}")
    else:
        shutil.rmtree(work)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
