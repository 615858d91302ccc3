#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Pause and resume of a Linux guest with every vCPU busy: Cloister and QEMU.

    bench/pause.py [--build build] [--cache DIR] [--cpus 4] [--memory 1G]
                   [--rounds 20] [--only qemu|cloister] [--keep]

Boots guest/linux/fetch.sh's kernel and initramfs in Cloister (--cpus boot=4)
and then in QEMU (-smp 4), starts one shell busy loop per vCPU in the guest,
checks in /proc/stat that the guest's CPUs are busy, and then times --rounds
pause/resume pairs: Cloister's PUT /api/v1/vm.pause and vm.resume over the API
socket, QEMU's QMP stop and cont. The guest runs --gap seconds between a
resume and the next pause. It prints the API round trip (HTTP, the gateway,
vmm-core stopping every vCPU thread, every device process) and vmm-core's
own figure from its log (request in to everything stopped).
Run by hand; it is not part of the test suite.
"""
import argparse
import os
import re
import statistics
import sys
import tempfile
import shutil
import time

from disk import (BenchError, Guest, QEMU, cloister_argv, command_output, qemu_argv,
                  read_text)
from snapshot_restore import cloister_api, cloister_call, qmp_connect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# jobs in a pipeline runs in a subshell that has none: count through a file.
BUSY_LOOPS = ("for i in $(seq {n}); do (while :; do :; done) & done; "
              "jobs > /tmp/jobs; echo \"B=$(wc -l < /tmp/jobs)\"")


def busy_share(guest, seconds=2):
    """Fraction of the guest's CPU time that was user time over a few seconds,
    from the aggregate line of /proc/stat read twice."""
    cmd = (f"head -1 /proc/stat; sleep {seconds}; head -1 /proc/stat")
    start = len(guest.text())
    guest.type(cmd)
    guest.wait(r"^cpu .*\n(.*\n)*cpu .*$", start, timeout=60)
    lines = [l for l in guest.text()[start:].splitlines() if l.startswith("cpu ")]
    a, b = ([int(v) for v in l.split()[1:]] for l in lines[:2])
    delta = [y - x for x, y in zip(a, b)]
    total = sum(delta[:8])
    return (delta[0] + delta[1]) / total if total else 0.0


def start_busy(guest, cpus):
    n = guest.ask(BUSY_LOOPS.format(n=cpus), r"^B=(\d+)$").group(1)
    if int(n) != cpus:
        raise BenchError(f"{guest.name}: {n} busy loops running, not {cpus}")
    share = busy_share(guest)
    print(f"  {guest.name}: {cpus} busy loops, guest CPUs {share * 100:.0f}% in user mode",
          file=sys.stderr)
    return share


def inner_pauses(log_path):
    """vmm-core's own figure for each pause: request in, every hart and device stopped."""
    with open(log_path, errors="replace") as f:
        return [float(ms) / 1000 for ms in re.findall(r"paused in ([0-9.]+) ms", f.read())]


def cloister_rounds(args, kernel, initramfs, work):
    sock = os.path.join(work, "api.sock")
    guest = Guest("Cloister", cloister_argv(args.build, kernel, initramfs, args.cpus, args.memory,
                                            "--api-socket", sock), work)
    try:
        guest.boot()
        share = start_busy(guest, args.cpus)
        pauses, resumes = [], []
        for _ in range(args.rounds):
            pauses.append(cloister_call(sock, "PUT", "vm.pause"))
            status, info = cloister_api(sock, "GET", "vm.info")
            if status != 200 or info.get("state") != "Paused":
                raise BenchError(f"Cloister: state {info} after vm.pause")
            resumes.append(cloister_call(sock, "PUT", "vm.resume"))
            time.sleep(args.gap)
        # The guest must still be alive and answering after all that.
        guest.ask("echo \"alive=$((6 * 7))\"", r"^alive=42$")
        return pauses, resumes, share, inner_pauses(guest.err_path)
    finally:
        guest.stop()


def qemu_rounds(args, kernel, initramfs, work):
    qmp_sock = os.path.join(work, "qmp.sock")
    guest = Guest("QEMU", qemu_argv(kernel, initramfs, args.cpus, args.memory,
                                    "-qmp", f"unix:{qmp_sock},server=on,wait=off"), work)
    qmp = None
    try:
        guest.boot()
        share = start_busy(guest, args.cpus)
        qmp = qmp_connect(qmp_sock, guest.proc)
        pauses, resumes = [], []
        for _ in range(args.rounds):
            pauses.append(qmp.timed("stop"))
            if qmp.execute("query-status").get("status") != "paused":
                raise BenchError("QEMU: not paused after stop")
            resumes.append(qmp.timed("cont"))
            time.sleep(args.gap)
        guest.ask("echo \"alive=$((6 * 7))\"", r"^alive=42$")
        return pauses, resumes, share
    finally:
        if qmp:
            qmp.close()
        guest.stop()


def p90(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def cell(values):
    if not values:
        return "-"
    return (f"{statistics.median(values) * 1e3:.2f} / {p90(values) * 1e3:.2f} / "
            f"{max(values) * 1e3:.2f}")


def parse_args():
    cache = os.path.join(os.environ.get("CLOISTER_CACHE", os.path.expanduser("~/.cache/cloister")),
                         "linux")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--cache", default=cache, help="where fetch.sh put the guest")
    p.add_argument("--cpus", type=int, default=4)
    p.add_argument("--memory", default="1G")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--gap", type=float, default=0.2, help="seconds the guest runs between rounds")
    p.add_argument("--only", choices=("qemu", "cloister"))
    p.add_argument("--keep", action="store_true", help="keep the logs")
    args = p.parse_args()
    if not 1 <= args.cpus <= 64 or not 1 <= args.rounds <= 1000 or not 0 <= args.gap <= 10:
        p.error("--cpus 1..64, --rounds 1..1000, --gap 0..10")
    args.build = os.path.abspath(args.build)
    return args


def main():
    args = parse_args()
    kernel = os.path.join(args.cache, "vmlinux")
    initramfs = os.path.join(args.cache, "initramfs.cpio.gz")
    for f in (kernel, initramfs):
        if not os.path.isfile(f):
            sys.exit(f"{f} missing: run guest/linux/fetch.sh")
    work = tempfile.mkdtemp(prefix="cloister-pause-")
    os.chmod(work, 0o755)
    print(f"machine: {os.cpu_count()} cpus, load {' '.join(read_text('/proc/loadavg').split()[:3])}; "
          f"{command_output(QEMU, '--version').splitlines()[0]}; cloister "
          f"{command_output('git', '-C', ROOT, 'rev-parse', '--short', 'HEAD')}")
    print(f"guest: {args.cpus} vCPUs each in a busy loop, {args.memory}, {args.rounds} rounds, "
          f"{args.gap:g} s between rounds")
    runs = [("Cloister", cloister_rounds), ("QEMU", qemu_rounds)]
    results, failed = {}, False
    for name, fn in runs:
        if args.only not in (None, name.lower()):
            continue
        try:
            results[name] = fn(args, kernel, initramfs, work)
        except BenchError as e:
            print(f"FAILED {name}: {e}", file=sys.stderr)
            failed = True
    print("\nmedian / p90 / max, ms (API round trips: Cloister HTTP over the unix socket, QEMU QMP)\n")
    print("| operation | Cloister | QEMU |")
    print("| --- | --- | --- |")
    for i, op in enumerate(("pause", "resume")):
        print(f"| {op} | {cell(results.get('Cloister', ([], []))[i])} | "
              f"{cell(results.get('QEMU', ([], []))[i])} |")
    shares = " | ".join(f"{results[n][2] * 100:.0f}%" if n in results else "-"
                        for n in ("Cloister", "QEMU"))
    print(f"| guest CPUs busy (user) | {shares} |")
    if "Cloister" in results:
        print(f"\nCloister inside vmm-core (request in, all {args.cpus} harts and every device "
              f"stopped): {cell(results['Cloister'][3])}")
    if args.keep or failed:
        print(f"logs kept in {work}")
    else:
        shutil.rmtree(work)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
