#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plain, zstd and encrypted snapshots of a Linux guest holding 1 GiB of data.

Boots Debian's Linux (guest/linux/fetch.sh) with 2 GiB of memory, fills a
tmpfs with 512 MiB of random bytes and 512 MiB of text (512 copies of 1 MiB
of decimal numbers, one per line: each 1 MiB chunk compresses on its own, so
the copies do not help zstd), pauses it and writes the same paused VM
as a plain snapshot, a zstd one, an encrypted one and an encrypted zstd one.
Then restores each (Copy, page cache warm; and OnDemand for the sealed one),
timing vm.restore until the VM is paused, and checks once per format that the
guest's files keep their sha256.

Each write is followed by `dd conv=fdatasync` of as many bytes in the same
directory, for the snapshot's rate against the disk's. With --also-build,
every restore is also made with that build's cloister (alternating), so two
versions of snapshotd's restore are timed on the same snapshots in one run.

Run by hand, as root, on a quiet machine if possible:
    nice -n 10 bench/snapshot_seal.py [--build build] [--reps 3] [--also-build OTHER]
It is not part of the test suite: timings depend on the machine.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.path.expanduser("~/.cache/cloister/linux")
KERNEL = os.path.join(LINUX, "vmlinux")
INITRAMFS = os.path.join(LINUX, "initramfs.cpio.gz")
MIB = 1 << 20


class Guest:
    def __init__(self, build, work, name):
        self.build, self.work = build, work
        self.sock = os.path.join(work, f"{name}.sock")
        self.out = os.path.join(work, f"{name}.out")
        self.proc = None

    def start(self, *args):
        self.proc = subprocess.Popen([os.path.join(self.build, "cloister"), "--api-socket",
                                      self.sock, *args], stdin=subprocess.PIPE,
                                     stdout=open(self.out, "wb"),
                                     stderr=open(self.out + ".log", "wb"))
        deadline = time.time() + 60
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(open(self.out + ".log").read())
            time.sleep(0.01)
        return self

    def text(self):
        return open(self.out, "rb").read().decode(errors="replace").replace("\r", "")

    def ask(self, command, pattern, timeout=600):
        start = len(self.text())
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text()[start:], re.M)
            if m:
                return m
            time.sleep(0.1)
        raise SystemExit(f"no /{pattern}/ after {command}:\n{self.text()[-2000:]}")

    def remote(self, *args):
        r = subprocess.run([os.path.join(self.build, "cloister-remote"), "--api-socket",
                            self.sock, *args], capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise SystemExit(f"cloister-remote {args}: {r.stderr}")
        return r.stdout

    def stop(self):
        if self.proc and self.proc.poll() is None:
            subprocess.run([os.path.join(self.build, "cloister-remote"), "--api-socket",
                            self.sock, "shutdown-vmm"], capture_output=True, timeout=60)
            self.proc.wait(timeout=60)
        if os.path.exists(self.sock):
            os.unlink(self.sock)


def region_bytes(d):
    files = [os.path.join(d, n) for n in os.listdir(d) if n.startswith("memory-region-")]
    return sum(os.stat(f).st_blocks * 512 for f in files)


def dd_fdatasync(work, nbytes):
    """Seconds for dd to write nbytes (whole MiB) durably in work."""
    out = os.path.join(work, "dd.out")
    r = subprocess.run(["dd", "if=/dev/zero", f"of={out}", "bs=1M", f"count={nbytes // MIB}",
                        "conv=fdatasync"], capture_output=True, text=True)
    os.unlink(out)
    m = re.search(r"copied, ([\d.]+) s", r.stderr)
    return float(m.group(1)) if m else None


def fill(guest):
    t0 = time.time()
    guest.ask("mkdir -p /data && mount -t tmpfs -o size=1200m tmpfs /data && echo mounted",
              r"^mounted$")
    guest.ask("head -c 536870912 /dev/urandom > /data/random && echo random-done",
              r"^random-done$", timeout=1800)
    # seq writes slowly under emulation: 1 MiB of it, then copies of that.
    guest.ask("seq 1 200000 | head -c 1048576 > /tmp/text1 && echo text1-done",
              r"^text1-done$", timeout=1800)
    guest.ask("for i in $(seq 512); do cat /tmp/text1; done > /data/text && echo text-done",
              r"^text-done$", timeout=1800)
    sums = guest.ask("sha256sum /data/random /data/text | tr '\\n' ' '; echo",
                     r"^([0-9a-f]{64})  /data/random ([0-9a-f]{64})  /data/text", timeout=600)
    print(f"guest filled in {time.time() - t0:.0f} s")
    return sums.group(1), sums.group(2)


FORMATS = [
    ("plain", ()),
    ("zstd", ("compression=zstd",)),
    ("sealed", ("encryption_key_file={key}",)),
    ("sealed+zstd", ("compression=zstd", "encryption_key_file={key}")),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--also-build", help="another build tree whose restores alternate")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    builds = [build] + ([os.path.abspath(a.also_build)] if a.also_build else [])
    work = tempfile.mkdtemp(prefix="cloister-seal-bench-", dir="/var/tmp")
    key = os.path.join(work, "key")
    with open(key, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(key, 0o600)
    results = {}
    base = Guest(build, work, "base").start(
        "--cpus", "boot=2", "--memory", "size=2G", "--kernel", KERNEL, "--initramfs", INITRAMFS,
        "--cmdline", "console=ttyS0", "--serial", "tty")
    try:
        deadline = time.time() + 600
        while "~ # " not in base.text():
            if time.time() > deadline:
                raise SystemExit("the guest did not boot:\n" + base.text()[-2000:])
            time.sleep(0.2)
        base.ask("echo ready", r"^ready$")
        sums = fill(base)
        base.remote("pause")
        for name, args in FORMATS:
            times, vs_dd = [], []
            for rep in range(a.reps):
                d = os.path.join(work, f"{name}-{rep}")
                os.mkdir(d)
                t0 = time.perf_counter()
                base.remote("snapshot", f"file://{d}", *[x.format(key=key) for x in args])
                times.append(time.perf_counter() - t0)
                dd_s = dd_fdatasync(work, region_bytes(d))
                vs_dd.append(round(dd_s / times[-1], 2) if dd_s else None)
            results[name] = {"write_s": statistics.median(times), "write_vs_dd": vs_dd,
                             "bytes": region_bytes(os.path.join(work, f"{name}-0"))}
    finally:
        base.stop()
    for name, args in FORMATS:
        keyarg = [f"encryption_key_file={key}"] if "sealed" in name else []
        modes = ("Copy", "OnDemand") if name == "sealed+zstd" else ("Copy",)
        for mode in modes:
            times = {b: [] for b in builds}
            for rep in range(a.reps):
                for n, b in enumerate(builds):
                    g = Guest(b, work, f"r-{name}-{mode}-{rep}-{n}").start()
                    t0 = time.perf_counter()
                    g.remote("restore", f"source_url=file://{work}/{name}-0,"
                             f"memory_restore_mode={mode}", *keyarg)
                    times[b].append(time.perf_counter() - t0)
                    if rep == 0:
                        g.remote("resume")
                        got = g.ask("sha256sum /data/random /data/text | tr '\\n' ' '; echo",
                                    r"^([0-9a-f]{64})  /data/random ([0-9a-f]{64})  /data/text")
                        assert (got.group(1), got.group(2)) == sums, f"{name} {mode}: data differs"
                    g.stop()
            results[name][f"restore_{mode}_s"] = statistics.median(times[build])
            if a.also_build:
                results[name][f"restore_{mode}_s_also_build"] = statistics.median(
                    times[builds[1]])
    plain = results["plain"]["bytes"]
    print(f"\n{'format':<12} {'region files':>14} {'ratio':>6} {'write':>8} {'restore':>8}"
          f" {'OnDemand':>9}")
    for name, r in results.items():
        print(f"{name:<12} {r['bytes'] / MIB:>10.0f} MiB {plain / r['bytes']:>6.2f} "
              f"{r['write_s']:>7.2f}s {r['restore_Copy_s']:>7.2f}s "
              f"{r.get('restore_OnDemand_s', float('nan')):>8.2f}s")
    print(json.dumps(results))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
