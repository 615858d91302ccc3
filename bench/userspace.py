#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""User-space workloads in Debian's riscv64 Linux: QEMU (TCG) and Cloister.

    bench/userspace-guest.sh           # once: builds the guest, cached
    bench/userspace.py [--build build] [--cpus 1] [--memory 1G] [--runs 1]
                       [--only qemu|cloister] [--workloads gzip,sort,...]
                       [--timeout 900] [--keep]

Boots guest/linux/fetch.sh's kernel with bench/userspace-guest.sh's
initramfs, whose /init runs each workload (gzip, sort, awk and perl with
floating point, a pure-Python loop, Python's zlib, sha512sum, a fork/exec
loop, a memory-bound copy) between two marker lines, on QEMU and on Cloister
one after the other in the same run, and prints the seconds each took, timed
from the host as the marker lines appear on the serial console, and the
ratio. Run by hand; it is not part of the test suite.
"""
import argparse
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boot  # noqa: E402 - the QEMU and Cloister command lines and stop(), shared

CMDLINE = "console=ttyS0 quiet"
START = re.compile(rb"bench: start (\S+)")
END = re.compile(rb"bench: end (\S+) status=(\d+)")
DONE = b"bench: done"
PANIC = b"Kernel panic - not syncing"


def watch(proc, path, timeout):
    """{workload: seconds or 'status N'} as the markers show up in path, and why it stopped."""
    times, started, offset, pending = {}, {}, 0, b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        now = time.monotonic()
        if chunk:
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                m = START.search(line)
                if m:
                    started[m.group(1).decode()] = now
                m = END.search(line)
                if m and m.group(1).decode() in started:
                    name = m.group(1).decode()
                    times[name] = (now - started[name] if m.group(2) == b"0"
                                   else f"status {m.group(2).decode()}")
                if DONE in line:
                    return times, None
                if PANIC in line:
                    return times, "kernel panic"
        elif proc.poll() is not None:
            return times, f"exited with status {proc.returncode}"
        select.select([], [], [], 0.01)
    return times, f"timed out after {timeout:g} s"


def cmdline(args):
    return CMDLINE + (f" bench.only={args.workloads}" if args.workloads else "")


def argv_for(side, args, kernel, initramfs, serial):
    if side == "qemu":
        return boot.qemu_argv(args, kernel, initramfs, cmdline(args))
    return boot.cloister_argv(args, kernel, initramfs, serial, cmdline(args))


def run_side(side, args, kernel, initramfs, logs, run):
    out = os.path.join(logs, f"{side}-{run}.out")
    serial = out if side == "qemu" else os.path.join(logs, f"{side}-{run}.serial")
    env = dict(os.environ)
    env.pop("CLOISTER_JIT", None)
    if side == "interpreter":
        env["CLOISTER_JIT"] = "0"
    with open(out, "wb") as f:
        proc = subprocess.Popen(argv_for(side, args, kernel, initramfs, serial),
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    try:
        times, failure = watch(proc, serial, args.timeout)
    finally:
        boot.stop(proc)
    if failure:
        print(f"{side}: {failure}; log {serial}")
    return times, failure


def fmt(v):
    return f"{v:8.2f}" if isinstance(v, float) else f"{v or '-':>8}"


def parse_args():
    cache = os.environ.get("CLOISTER_CACHE", os.path.expanduser("~/.cache/cloister"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default="build")
    p.add_argument("--kernel", default=os.path.join(cache, "linux", "vmlinux"))
    p.add_argument("--initramfs", default=os.path.join(cache, "userspace", "initramfs.cpio.gz"))
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", default="1G")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--only", choices=("qemu", "cloister"))
    p.add_argument("--interpreter", action="store_true",
                   help="also run Cloister with CLOISTER_JIT=0")
    p.add_argument("--workloads", default="", help="comma-separated names (default: all)")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    if not re.fullmatch(r"[a-z0-9,-]*", args.workloads):
        p.error("--workloads: names separated by commas")
    for f in (args.kernel, args.initramfs):
        if not os.path.isfile(f):
            sys.exit(f"userspace.py: {f} missing: run guest/linux/fetch.sh and "
                     "bench/userspace-guest.sh")
    return args


def main():
    args = parse_args()
    logs = tempfile.mkdtemp(prefix="cloister-userspace-")
    sides = [s for s in ("qemu", "cloister") if args.only in (None, s)]
    if args.interpreter and args.only != "qemu":
        sides.append("interpreter")
    print(f"guest: {args.kernel} + {args.initramfs}, {args.cpus} vCPU, {args.memory}; "
          f"logs in {logs}")
    best = {s: {} for s in sides}
    ok = True
    for run in range(args.runs):
        for side in sides:
            times, failure = run_side(side, args, args.kernel, args.initramfs, logs, run)
            ok = ok and failure is None
            for name, t in times.items():
                prev = best[side].get(name)
                if not isinstance(prev, float) or (isinstance(t, float) and t < prev):
                    best[side][name] = t
            print(f"run {run + 1} {side}: " +
                  ", ".join(f"{n} {fmt(t).strip()}" for n, t in times.items()), flush=True)
    names = []
    for s in sides:
        names += [n for n in best[s] if n not in names]
    print(f"\nseconds, best of {args.runs}" + "".join(f"{s:>12}" for s in sides) +
          ("   cloister/qemu" if "qemu" in sides and "cloister" in sides else ""))
    for n in names:
        row = f"{n:24}" + "".join(f"{fmt(best[s].get(n)):>12}" for s in sides)
        q, c = best.get("qemu", {}).get(n), best.get("cloister", {}).get(n)
        if isinstance(q, float) and isinstance(c, float):
            row += f"   {c / q:13.2f}"
        print(row)
    if args.keep or not ok:
        print(f"logs kept in {logs}")
    else:
        shutil.rmtree(logs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
