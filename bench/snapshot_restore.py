#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Pause, snapshot, restore-to-ready and resume: Cloister and QEMU side by side.

Both run the same bare-metal guest (tests/guest/countguest.elf) with 2 harts.
Every round boots a fresh VM, lets it count, pauses it, snapshots it into an
empty place, stops it, starts a new VMM from the snapshot, times how long that
takes until the VMM says the VM is paused, resumes it and checks that every
hart prints its very next count and that the guest's memory pattern held.

Run by hand, as root (it installs qemu-system-misc and opensbi if missing):
    bench/snapshot_restore.py [--build build] [--reps 3] [--sizes 4G,1G]
It is not part of the test suite: timings depend on the machine.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARTS = 2
MIN_COUNT = 5           # counts every hart prints before we pause
WAIT = 30               # seconds any single wait may take before the round fails
CONTINUE_WAIT = 10      # seconds a resumed guest has to print its next count (10 ticks)
POLL = 0.002            # seconds between polls of a socket or a file
QEMU = "qemu-system-riscv64"
QEMU_FIRMWARE = "/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin"
MIB = 1 << 20


class BenchError(Exception):
    pass


def now():
    return time.perf_counter()


def wait_for(predicate, what, timeout=WAIT, proc=None):
    deadline = now() + timeout
    while now() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what}: the process exited with {proc.returncode}")
        time.sleep(POLL)
    raise BenchError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- the guest

def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def hart_counts(text):
    """Highest count each hart printed."""
    counts = {}
    for h, c in re.findall(r"^hart (\d+) count (\d+)$", text, re.M):
        counts[int(h)] = max(counts.get(int(h), 0), int(c))
    return counts


def first_counts_after(text, offset):
    first = {}
    for h, c in re.findall(r"^hart (\d+) count (\d+)$", text[offset:], re.M):
        first.setdefault(int(h), int(c))
    return first


def wait_counting(serial, proc):
    def ready():
        text = read_text(serial)
        counts = hart_counts(text)
        return "pattern: written" in text and all(counts.get(h, 0) >= MIN_COUNT for h in range(HARTS))
    wait_for(ready, f"every hart to count to {MIN_COUNT}", proc=proc)


def check_continues(read, before, offset, proc):
    """Every hart prints its next count, and the next pattern check passes; read() gives the serial."""
    def next_counts():
        first = first_counts_after(read(), offset)
        return first if all(h in first for h in range(HARTS)) else None
    first = wait_for(next_counts, "every hart to count again after resume", CONTINUE_WAIT, proc)
    for h in range(HARTS):
        if first[h] != before[h] + 1:
            raise BenchError(f"hart {h} went from {before[h]} to {first[h]} over the restore")

    def checked():
        tail = read()[offset:]
        return "pattern: ok" in tail or "BAD" in tail
    wait_for(checked, "a pattern check after resume", CONTINUE_WAIT, proc)
    if "BAD" in read()[offset:]:
        raise BenchError("the guest found its memory pattern damaged after restore")


def continues(read, before, offset, proc):
    """True, or why the resumed guest did not go on: a finding to print, not a crash of the bench."""
    try:
        check_continues(read, before, offset, proc)
        return True
    except BenchError as e:
        return str(e)


def disk_usage(paths):
    """(apparent bytes, allocated bytes) as du --apparent-size and du give them."""
    apparent = allocated = 0
    for p in paths:
        st = os.stat(p)
        apparent += st.st_size
        allocated += st.st_blocks * 512
    return apparent, allocated


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def stop_process(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- Cloister

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=WAIT * 4)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def cloister_api(sock, method, path, body=None):
    conn = UnixHTTPConnection(sock)
    try:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, "/api/v1/" + path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
    finally:
        conn.close()
    return resp.status, (json.loads(text) if text.strip().startswith("{") else text)


def cloister_call(sock, method, path, body=None):
    """Timed API round trip that must succeed; returns seconds."""
    t0 = now()
    status, reply = cloister_api(sock, method, path, body)
    elapsed = now() - t0
    if status // 100 != 2:
        raise BenchError(f"cloister {path}: HTTP {status} {reply}")
    return elapsed


def cloister_state(sock):
    """vm.info's state, or None while nobody answers yet."""
    try:
        status, reply = cloister_api(sock, "GET", "vm.info")
    except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
        return None
    return reply.get("state") if status == 200 and isinstance(reply, dict) else None


class CloisterRound:
    name = "Cloister"

    def __init__(self, build, work, size, cold):
        self.cloister = os.path.join(build, "cloister")
        self.remote = os.path.join(build, "cloister-remote")
        self.guest = os.path.join(build, "tests", "guest", "countguest.elf")
        self.work, self.size, self.cold = work, size, cold
        self.serial = os.path.join(work, "serial.log")
        self.stderr = open(os.path.join(work, "stderr.log"), "ab")
        self.procs = []

    def spawn(self, sock, *args):
        proc = subprocess.Popen([self.cloister, "--api-socket", sock, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.procs.append(proc)
        return proc

    def run(self):
        r = {}
        sock = os.path.join(self.work, "a.sock")
        proc = self.spawn(sock, "--cpus", f"boot={HARTS}", "--memory", f"size={self.size}",
                          "--kernel", self.guest, "--serial", f"file={self.serial}", "--rng")
        wait_for(lambda: os.path.exists(sock), "the API socket", proc=proc)
        wait_counting(self.serial, proc)

        r["status query"] = cloister_call(sock, "GET", "vm.info")
        t0 = now()
        subprocess.run([self.remote, "--api-socket", sock, "info"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r["status query (CLI)"] = now() - t0
        r["pause"] = cloister_call(sock, "PUT", "vm.pause")
        if cloister_state(sock) != "Paused":
            raise BenchError("cloister: not Paused after vm.pause")
        paused_text = read_text(self.serial)
        before, offset = hart_counts(paused_text), len(paused_text)

        snap = os.path.join(self.work, "snap")
        os.mkdir(snap)
        r["snapshot"] = cloister_call(sock, "PUT", "vm.snapshot", {"destination_url": f"file://{snap}"})
        r["snapshot, durable"] = r["snapshot"]  # snapshotd fsyncs every file before answering
        files = [os.path.join(snap, f) for f in os.listdir(snap)]
        r["apparent size"], r["allocated size"] = disk_usage(files)
        r["touched RAM"] = disk_usage([f for f in files if "memory-region" in f])[1]

        t0 = now()
        cloister_call(sock, "PUT", "vmm.shutdown")
        if proc.wait(timeout=WAIT) != 0:
            raise BenchError(f"cloister exited with {proc.returncode} after vmm.shutdown")
        r["shutdown"] = now() - t0

        if self.cold:
            drop_caches()
        sock2 = os.path.join(self.work, "b.sock")
        t0 = now()
        proc = self.spawn(sock2, "--restore", f"source_url=file://{snap}")
        wait_for(lambda: cloister_state(sock2) == "Paused", "the restored VM to answer Paused", proc=proc)
        r["restore to ready"] = now() - t0
        if len(read_text(self.serial)) != offset:
            raise BenchError("cloister: the restored guest ran before resume")

        r["resume"] = cloister_call(sock2, "PUT", "vm.resume")
        r["continues"] = continues(lambda: read_text(self.serial), before, offset, proc)
        cloister_call(sock2, "PUT", "vmm.shutdown")
        proc.wait(timeout=WAIT)
        return r

    def close(self):
        for proc in self.procs:
            stop_process(proc)
        self.stderr.close()


# ---------------------------------------------------------------- QEMU

class QMP:
    """One QMP connection: JSON lines, events skipped."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT)
        self.sock.connect(path)
        self.reader = self.sock.makefile("r")
        self._read()                        # the greeting
        self.execute("qmp_capabilities")

    def _read(self):
        while True:
            line = self.reader.readline()
            if not line:
                raise BenchError("qmp: connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command, **arguments):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        reply = self._read()
        if "error" in reply:
            raise BenchError(f"qmp {command}: {reply['error']}")
        return reply.get("return")

    def timed(self, command, **arguments):
        t0 = now()
        self.execute(command, **arguments)
        return now() - t0

    def close(self):
        self.reader.close()
        self.sock.close()


def qmp_connect(path, proc):
    def attempt():
        try:
            return QMP(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
    return wait_for(attempt, "QEMU's QMP socket", proc=proc)


def children_named(pid, name):
    """Descendants of pid whose program is name (from /proc)."""
    kids = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except (OSError, IndexError):
            continue
        kids.setdefault(int(fields[1]), []).append((int(entry), comm))
    found, todo = [], [pid]
    while todo:
        for child, comm in kids.get(todo.pop(), []):
            todo.append(child)
            if comm == name:
                found.append(child)
    return found


class QemuRound:
    name = "QEMU"

    def __init__(self, build, work, size, cold):
        self.guest = os.path.join(build, "tests", "guest", "countguest.elf")
        self.work, self.size, self.cold = work, size, cold
        self.serial = os.path.join(work, "serial.log")
        self.stderr = open(os.path.join(work, "stderr.log"), "ab")
        self.procs = []

    def spawn(self, qmp_sock, serial, *extra):
        args = [QEMU, "-machine", "virt", "-cpu", "rv64", "-smp", str(HARTS), "-m", self.size,
                "-bios", "default", "-kernel", self.guest, "-nographic", "-monitor", "none",
                "-serial", f"file:{serial}", "-qmp", f"unix:{qmp_sock},server=on,wait=off", *extra]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=self.stderr)
        self.procs.append(proc)
        return proc

    def snapshot(self, qmp, proc, image, r):
        qmp.execute("migrate-set-parameters", **{"max-bandwidth": 100 << 30})
        t0 = now()
        qmp.execute("migrate", uri=f"exec:cat > {image}")

        def finished():
            info = qmp.execute("query-migrate")
            if info.get("status") in ("failed", "cancelled"):
                raise BenchError(f"qemu migrate: {info}")
            return info if info.get("status") == "completed" else None
        info = wait_for(finished, "QEMU's migration to complete", proc=proc)
        r["snapshot"] = now() - t0
        # The stream is in cat's hands when QEMU says completed; durable means cat is done and fsync.
        wait_for(lambda: not children_named(proc.pid, "cat"), "cat to finish the stream", proc=proc)
        with open(image, "rb") as f:
            os.fsync(f.fileno())
        r["snapshot, durable"] = now() - t0
        r["apparent size"], r["allocated size"] = disk_usage([image])
        r["touched RAM"] = info["ram"]["normal-bytes"]

    def run(self):
        r = {}
        sock = os.path.join(self.work, "a.qmp")
        proc = self.spawn(sock, self.serial)
        qmp = qmp_connect(sock, proc)
        wait_counting(self.serial, proc)

        r["status query"] = qmp.timed("query-status")
        r["pause"] = qmp.timed("stop")
        if qmp.execute("query-status")["status"] != "paused":
            raise BenchError("qemu: not paused after stop")
        paused_text = read_text(self.serial)
        before, offset = hart_counts(paused_text), len(paused_text)

        image = os.path.join(self.work, "vm.migration")
        self.snapshot(qmp, proc, image, r)

        t0 = now()
        try:
            qmp.execute("quit")
        except (BenchError, OSError):
            pass                            # QEMU may close the socket before answering
        qmp.close()
        proc.wait(timeout=WAIT)
        r["shutdown"] = now() - t0

        if self.cold:
            drop_caches()
        sock2 = os.path.join(self.work, "b.qmp")
        # -serial file: truncates, so the restored VM writes a second file.
        serial2 = os.path.join(self.work, "serial2.log")
        t0 = now()
        proc = self.spawn(sock2, serial2, "-incoming", f"exec:cat {image}")
        qmp = qmp_connect(sock2, proc)
        wait_for(lambda: qmp.execute("query-status")["status"] == "paused",
                 "QEMU's incoming migration to end paused", proc=proc)
        r["restore to ready"] = now() - t0
        if read_text(serial2):
            raise BenchError("qemu: the restored guest ran before cont")

        r["resume"] = qmp.timed("cont")
        r["continues"] = continues(lambda: paused_text + read_text(serial2), before, offset, proc)
        try:
            qmp.execute("quit")
        except (BenchError, OSError):
            pass
        qmp.close()
        proc.wait(timeout=WAIT)
        return r

    def close(self):
        for proc in self.procs:
            stop_process(proc)
        self.stderr.close()


# ---------------------------------------------------------------- driver

TIMES = ["status query", "status query (CLI)", "pause", "snapshot", "snapshot, durable", "shutdown",
         "restore to ready", "resume"]
SIZES = ["touched RAM", "allocated size", "apparent size"]


def run_round(kind, build, base, size, rep, cold):
    work = tempfile.mkdtemp(prefix=f"{kind.name.lower()}-{size}-{rep}-", dir=base)
    os.chmod(work, 0o755)                   # Cloister's children run as another uid
    bench = kind(build, work, size, cold)
    try:
        return bench.run()
    except BenchError as e:
        raise BenchError(f"{kind.name} {size} round {rep}: {e} (logs in {work})") from None
    finally:
        bench.close()


def summary(values, unit):
    if not values:
        return "-"
    med = statistics.median(values)
    if unit == "ms":
        return f"{med * 1e3:.1f} ms ({min(values) * 1e3:.1f}-{max(values) * 1e3:.1f})"
    return f"{med / MIB:.1f} MiB"


def ratio(a, b):
    if not a or not b or statistics.median(b) == 0:
        return "-"
    return f"{statistics.median(a) / statistics.median(b):.2f}"


def continued(rounds):
    if not rounds:
        return "-"
    return f"{sum(r['continues'] is True for r in rounds)}/{len(rounds)}"


def print_table(size, results, reps):
    print(f"\n### {HARTS} harts, {size} RAM, {reps} rounds: median (min-max); ratio = Cloister / QEMU\n")
    print("| operation | Cloister | QEMU | ratio |")
    print("| --- | --- | --- | --- |")
    for key, unit in [(k, "ms") for k in TIMES] + [(k, "MiB") for k in SIZES]:
        c = [r[key] for r in results["Cloister"] if key in r]
        q = [r[key] for r in results["QEMU"] if key in r]
        print(f"| {key} | {summary(c, unit)} | {summary(q, unit)} | {ratio(c, q)} |")
    print(f"| guest goes on after resume | {continued(results['Cloister'])} | "
          f"{continued(results['QEMU'])} | |")
    reasons = {f"{name}: {r['continues']}" for name, rounds in results.items()
               for r in rounds if r["continues"] is not True}
    for reason in sorted(reasons):
        print(f"\n- {reason}")
    if any(r["continues"] is not True for r in results["QEMU"]):
        print("- QEMU before 10.2 does not carry RISC-V timer events over a migration, so a guest "
              "waiting in wfi for its timer never wakes: see docs/performance.md")


def command_output(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def print_machine(build):
    cpu = next((l.split(":", 1)[1].strip() for l in read_text("/proc/cpuinfo").splitlines()
                if l.startswith("model name")), "?")
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    print(f"date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine: {os.cpu_count()} cpus, {cpu}, {mem_gib:.0f} GiB RAM, Linux {platform.release()}")
    print(f"qemu: {command_output(QEMU, '--version').splitlines()[0]}, "
          f"opensbi {command_output('dpkg-query', '-W', '-f=${Version}', 'opensbi')}")
    dirty = " + uncommitted changes" if command_output("git", "-C", ROOT, "status", "--porcelain") else ""
    print(f"cloister: {command_output('git', '-C', ROOT, 'rev-parse', '--short', 'HEAD')}{dirty} "
          f"({os.path.relpath(build, ROOT)})")
    print_load("load average at start")


def print_load(when):
    print(f"{when}: {' '.join(read_text('/proc/loadavg').split()[:3])}")


def ensure_qemu():
    if shutil.which(QEMU) and os.path.exists(QEMU_FIRMWARE):
        return
    if os.geteuid() != 0:
        sys.exit(f"{QEMU} or OpenSBI is missing: apt-get install qemu-system-misc opensbi (as root)")
    print("installing qemu-system-misc and opensbi", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "qemu-system-misc", "opensbi"],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.environ.get("CLOISTER_BUILD", os.path.join(ROOT, "build")),
                   help="Cloister build directory (default: build/)")
    p.add_argument("--reps", type=int, default=3, help="rounds per VMM and size (default 3)")
    p.add_argument("--sizes", default="4G,1G", help="guest RAM sizes (default 4G,1G)")
    p.add_argument("--dir", default="/var/tmp", help="where snapshots go (default /var/tmp)")
    p.add_argument("--cold", action="store_true",
                   help="drop the page cache before every restore (root)")
    p.add_argument("--keep", action="store_true", help="keep the snapshots and logs")
    p.add_argument("--vmm", choices=["both", "cloister", "qemu"], default="both")
    return p.parse_args()


def main():
    args = parse_args()
    args.build = os.path.abspath(args.build)
    guest = os.path.join(args.build, "tests", "guest", "countguest.elf")
    if not os.path.exists(guest):
        sys.exit(f"{guest} is missing: run scripts/build.sh {os.path.relpath(args.build, ROOT)} first")
    if not 1 <= args.reps <= 50:
        sys.exit("--reps: 1 to 50")
    kinds = {"both": [CloisterRound, QemuRound], "cloister": [CloisterRound], "qemu": [QemuRound]}[args.vmm]
    if QemuRound in kinds:
        ensure_qemu()
    base = tempfile.mkdtemp(prefix="cloister-bench-", dir=args.dir)
    os.chmod(base, 0o755)
    print_machine(args.build)
    print(f"page cache before restore: {'dropped' if args.cold else 'warm'}; snapshots in {base}")
    # A failed round is reported and the others go on; the exit status says so.
    failed = False
    try:
        for size in args.sizes.split(","):
            results = {"Cloister": [], "QEMU": []}
            # Interleaved, so a slow spell of the machine hits both.
            for rep in range(args.reps):
                for kind in kinds:
                    try:
                        results[kind.name].append(run_round(kind, args.build, base, size, rep, args.cold))
                    except BenchError as e:
                        print(f"FAILED: {e}", file=sys.stderr)
                        failed = True
                    print(".", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            print_table(size, results, args.reps)
            failed |= any(r["continues"] is not True for r in results["Cloister"])
        print()
        print_load("load average at end")
    finally:
        if not args.keep and not failed:
            shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
