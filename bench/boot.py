#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Boot time of the Linux guest to its /init marker: QEMU (TCG) and Cloister.

    bench/boot.py [--build build] [--cache DIR] [--cpus 2] [--memory 1G]
                  [--timeout 120] [--runs 1] [--only qemu|cloister] [--keep]
                  [--interpreter]

Boots guest/linux/fetch.sh's vmlinux + initramfs.cpio.gz on both, one after
the other in the same run (absolute times on shared machines drift: only the
ratio means much), with the same vCPUs, memory and command line, and prints
the wall time from spawn to the line "cloister-guest: init reached". A side
that does not get there within --timeout (or panics, or exits) is stopped and
the tail of its output printed. With --interpreter, Cloister also boots with
CLOISTER_JIT=0 (the interpreter alone, without the x86-64 translator), as a
third side. Run by hand; it is not part of the test suite.
"""
import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MARKER = b"cloister-guest: init reached"
PANIC = b"Kernel panic - not syncing"
CMDLINE = "console=ttyS0 earlycon=sbi"
TAIL_LINES = 20


class Result:
    def __init__(self, name, seconds, failure, log_path):
        self.name = name
        self.seconds = seconds  # None: failure says why
        self.failure = failure
        self.log_path = log_path


def tail(path, lines=TAIL_LINES):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return "(no output file)"
    text = data.decode("utf-8", "replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def stop(proc):
    """SIGTERM first so Cloister can take its children down, then SIGKILL the
    process group the run was started in."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def wait_for_marker(proc, watch_path, start, timeout):
    """Returns (seconds from start until watch_path holds the marker, None)
    or (None, why not)."""
    offset = 0
    window = b""
    keep = max(len(MARKER), len(PANIC))
    while time.monotonic() - start < timeout:
        try:
            with open(watch_path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            # keep a line that straddles two reads
            window = window[-keep:] + chunk
            if MARKER in window:
                return time.monotonic() - start, None
            if PANIC in window:
                return None, f"kernel panic after {time.monotonic() - start:.2f} s"
        elif proc.poll() is not None:
            return None, f"exited with status {proc.returncode} after {time.monotonic() - start:.2f} s"
        select.select([], [], [], 0.01)
    return None, f"did not reach the marker in {timeout:g} s"


def run_side(name, argv, stdout_path, watch_path, timeout, env=None):
    """Spawns argv with stdout+stderr into stdout_path, waits for the marker
    in watch_path."""
    with open(stdout_path, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        seconds, failure = wait_for_marker(proc, watch_path, start, timeout)
    finally:
        stop(proc)
    return Result(name, seconds, failure, watch_path)


def qemu_argv(args, kernel, initramfs, cmdline=CMDLINE):
    return ["qemu-system-riscv64", "-machine", "virt", "-cpu", "rv64",
            "-smp", str(args.cpus), "-m", args.memory, "-bios", "default",
            "-kernel", kernel, "-initrd", initramfs, "-append", cmdline,
            "-nographic", "-monitor", "none"]


def cloister_argv(args, kernel, initramfs, serial_log, cmdline=CMDLINE):
    return [os.path.join(args.build, "cloister"),
            "--cpus", f"boot={args.cpus}", "--memory", f"size={args.memory}",
            "--kernel", kernel, "--initramfs", initramfs,
            "--cmdline", cmdline, "--serial", f"file={serial_log}"]


def report(result):
    if result.seconds is not None:
        print(f"{result.name:12} {result.seconds:8.2f} s to the marker")
        return
    print(f"{result.name:12} {result.failure} "
          f"(see {os.path.basename(result.log_path)} tail):")
    for line in tail(result.log_path).splitlines():
        print(f"    | {line}")


def parse_args():
    cache = os.path.join(os.environ.get("CLOISTER_CACHE",
                                        os.path.expanduser("~/.cache/cloister")), "linux")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default="build", help="meson build dir with cloister")
    p.add_argument("--cache", default=cache, help="where fetch.sh put the guest")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--memory", default="1G")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--only", choices=("qemu", "cloister"))
    p.add_argument("--interpreter", action="store_true",
                   help="also boot Cloister with CLOISTER_JIT=0 (interpreter only)")
    p.add_argument("--keep", action="store_true",
                   help="keep the logs directory (kept anyway when a side fails)")
    args = p.parse_args()
    if not 1 <= args.cpus <= 64 or not 1 <= args.runs <= 100 or not 0 < args.timeout <= 3600:
        p.error("--cpus 1..64, --runs 1..100, --timeout up to 3600 s")
    return args


def check_inputs(args):
    kernel = os.path.abspath(os.path.join(args.cache, "vmlinux"))
    initramfs = os.path.abspath(os.path.join(args.cache, "initramfs.cpio.gz"))
    for f in (kernel, initramfs):
        if not os.path.isfile(f):
            sys.exit(f"boot.py: {f} missing: run guest/linux/fetch.sh")
    if args.only != "cloister" and not shutil.which("qemu-system-riscv64"):
        sys.exit("boot.py: qemu-system-riscv64 missing (apt-get install qemu-system-misc opensbi)")
    if args.only != "qemu" and not os.access(os.path.join(args.build, "cloister"), os.X_OK):
        sys.exit(f"boot.py: {args.build}/cloister missing: build first or pass --build")
    return kernel, initramfs


def best(results):
    times = [r.seconds for r in results if r.seconds is not None]
    return min(times) if len(times) == len(results) and times else None


def main():
    args = parse_args()
    kernel, initramfs = check_inputs(args)
    logs = tempfile.mkdtemp(prefix="cloister-boot-")
    sides = [s for s in ("qemu", "cloister") if args.only in (None, s)]
    if args.interpreter and args.only != "qemu":
        sides.append("interpreter")
    print(f"guest: {kernel} + initramfs, {args.cpus} vCPUs, {args.memory}, "
          f"cmdline \"{CMDLINE}\", logs in {logs}")
    results = {s: [] for s in sides}
    for run in range(args.runs):
        for side in sides:
            out = os.path.join(logs, f"{side}-{run}.out")
            if side == "qemu":
                r = run_side(side, qemu_argv(args, kernel, initramfs), out, out, args.timeout)
            else:
                serial = os.path.join(logs, f"{side}-{run}.serial")
                env = dict(os.environ)
                if side == "interpreter":
                    env["CLOISTER_JIT"] = "0"
                else:
                    env.pop("CLOISTER_JIT", None)
                r = run_side(side, cloister_argv(args, kernel, initramfs, serial),
                             out, serial, args.timeout, env)
                if r.seconds is None:
                    print(f"cloister process output ({os.path.basename(out)}):")
                    for line in tail(out, 8).splitlines():
                        print(f"    | {line}")
            report(r)
            results[side].append(r)
    if "qemu" in sides:
        q = best(results["qemu"])
        for side in sides[1:]:
            c = best(results[side])
            if q and c:
                print(f"ratio {side}/qemu: {c / q:.2f} (best of {args.runs})")
            else:
                print(f"ratio {side}/qemu: n/a (a side did not reach the marker)")
    ok = all(r.seconds is not None for rs in results.values() for r in rs)
    if args.keep or not ok:
        print(f"logs kept in {logs}")
    else:
        shutil.rmtree(logs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
